//! The panic boundary: every hook Envoy calls runs its body through [`guarded`], so a panic in
//! the module never unwinds into Envoy (which would abort the process). The hook returns what
//! lets the traffic pass untouched, and the failure is counted and logged.

use std::panic::{catch_unwind, AssertUnwindSafe};

/// A panic caught at the boundary, with its message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Panicked(pub String);

/// Runs `body`, catching a panic instead of letting it unwind into Envoy. The caller reports
/// it and returns what lets the traffic pass untouched; state a panicking body left
/// half-updated is not used by its request again (the per-request glue drops its exchange).
pub fn guarded<R>(body: impl FnOnce() -> R) -> Result<R, Panicked> {
    catch_unwind(AssertUnwindSafe(body)).map_err(|payload| {
        let message = payload
            .downcast_ref::<&str>()
            .map(|s| (*s).to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "(no message)".to_string());
        // The payload's own destructor could panic; it is forgotten rather than dropped.
        std::mem::forget(payload);
        Panicked(message)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_is_caught_with_its_message() {
        let result = guarded(|| -> i32 {
            let index = "abc".len() + 1;
            let bytes = b"abc";
            i32::from(bytes[index])
        });
        let Err(Panicked(message)) = result else {
            panic!("{result:?}")
        };
        assert!(message.starts_with("index out of bounds"), "{message}");
        let owned = guarded(|| panic!("{}", String::from("owned message")));
        assert_eq!(owned, Err::<(), _>(Panicked("owned message".into())));
    }

    #[test]
    fn a_body_that_returns_is_untouched() {
        assert_eq!(guarded(|| 42), Ok(42));
    }
}
