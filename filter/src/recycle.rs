//! Scanner state an ended exchange leaves, kept for the next exchange on the same thread.
//!
//! A body's scanner is over a kilobyte of state. Allocating and zeroing one for every body
//! read and freeing it after cost more than reading a small body (the route mix in the Wasm
//! build); a box an exchange gives back is reset in place (a few fields) and handed to the
//! next one. The lists are per thread (the VM's in the Wasm build, an Envoy worker's in the
//! native one), so no lock, and short: a thread rarely has more exchanges reading bodies at
//! once than it keeps.

use std::cell::RefCell;

use crate::scanner::JsonFieldScanner;
use crate::tail::JsonBody;

/// Boxes kept per kind and thread; beyond, a given-back box is freed.
const KEEP: usize = 16;

/// Boxes, not values: an exchange holds its scanners by `Box`, and handing one over moves a
/// pointer, not a kilobyte.
#[allow(clippy::vec_box)]
type Kept<T> = RefCell<Vec<Box<T>>>;

thread_local! {
    static SCANNERS: Kept<JsonFieldScanner> = const { RefCell::new(Vec::new()) };
    static BODIES: Kept<JsonBody> = const { RefCell::new(Vec::new()) };
}

/// A scanner ready for a new body.
pub fn scanner() -> Box<JsonFieldScanner> {
    SCANNERS
        .try_with(|kept| kept.borrow_mut().pop())
        .ok()
        .flatten()
        .unwrap_or_default()
}

/// A JSON body reader ready for a new body.
pub fn json_body() -> Box<JsonBody> {
    BODIES
        .try_with(|kept| kept.borrow_mut().pop())
        .ok()
        .flatten()
        .unwrap_or_default()
}

/// Takes a scanner back for a later body (reset now, so that it holds no nested scanner).
pub fn give_back_scanner(mut scanner: Box<JsonFieldScanner>) {
    scanner.reset();
    keep(&SCANNERS, scanner);
}

/// Takes a JSON body reader back for a later body.
pub fn give_back_json_body(mut body: Box<JsonBody>) {
    body.reset();
    keep(&BODIES, body);
}

fn keep<T: 'static>(list: &'static std::thread::LocalKey<Kept<T>>, item: Box<T>) {
    // A thread being torn down has no list any more: the box is freed.
    let _ = list.try_with(|kept| {
        let mut kept = kept.borrow_mut();
        if kept.len() < KEEP {
            kept.push(item);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scanner::FieldSet;

    /// Reads `doc` with `scanner` and lists every field (and whether the document ended).
    fn read(scanner: &mut JsonFieldScanner, fields: &FieldSet, doc: &str) -> String {
        scanner.feed(fields, doc.as_bytes());
        let values: Vec<_> = (0..fields.len())
            .map(|i| scanner.field(i).clone())
            .collect();
        format!("{values:?} complete={}", scanner.is_complete())
    }

    #[test]
    fn a_scanner_given_back_reads_the_next_body_as_a_new_one_would() {
        let mut fields = FieldSet::new(&["provider", "model_id"]).unwrap();
        fields.add_path(&["usage", "total_tokens"]).unwrap();
        // Bodies left in every kind of state: inside a nested object, in an escape, in a
        // number, invalid, complete.
        let left = [
            r#"{"provider":"openai","usage":{"total_tokens":12,"#,
            r#"{"provider":"op\u00"#,
            r#"{"model_id":"x","n":-12.5e"#,
            r#"[1,2]"#,
            r#"{"provider":"a","model_id":"b"}"#,
        ];
        for next in [
            r#"{"model_id":"gpt-4o"}"#,
            r#"{"model_id":"gpt-4o","usage":{"total_tokens":7}}"#,
        ] {
            let fresh = read(&mut JsonFieldScanner::new(), &fields, next);
            for doc in left {
                let mut used = scanner();
                read(&mut used, &fields, doc);
                give_back_scanner(used);
                let mut again = scanner();
                assert_eq!(read(&mut again, &fields, next), fresh, "{next} after {doc}");
                give_back_scanner(again);
            }
        }
    }

    #[test]
    fn at_most_keep_boxes_are_kept() {
        let taken: Vec<_> = (0..KEEP + 5).map(|_| scanner()).collect();
        taken.into_iter().for_each(give_back_scanner);
        assert_eq!(SCANNERS.with_borrow(Vec::len), KEEP);
    }
}
