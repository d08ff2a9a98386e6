//! A job done once per interval per proxy, not per worker: every worker's VM ticks, and a
//! compare-and-swap on a shared-data key holding the time the job is next due elects the one
//! that does it.

use std::time::Duration;

use proxy_wasm::hostcalls;

use crate::upkeep;

#[derive(Debug)]
pub struct Lease {
    /// Shared-data key holding when the job is next due (ms since the epoch).
    key: String,
}

impl Lease {
    /// The lease under `key`, due now if no VM created it before.
    pub fn new(key: String) -> Self {
        // Create it once so that later claims are all compare-and-swap: a first `set` on a
        // missing key would succeed in every worker.
        if let Ok((None, _)) = hostcalls::get_shared_data(&key) {
            let _ = hostcalls::set_shared_data(&key, Some(b"0"), None);
        }
        Lease { key }
    }

    /// If the job is due at `now_ms`, makes it next due an `interval` on
    /// ([`upkeep::next_due`]); true when this VM won.
    pub fn claim(&self, now_ms: u64, interval: Duration) -> bool {
        match self.due() {
            Some((due, cas)) if now_ms >= due => {
                let next = upkeep::next_due(
                    Duration::from_millis(due),
                    Duration::from_millis(now_ms),
                    interval,
                );
                // Never again: due at the end of time.
                let next_ms = next.map_or(u64::MAX, |next| {
                    u64::try_from(next.as_millis()).unwrap_or(u64::MAX)
                });
                hostcalls::set_shared_data(&self.key, Some(next_ms.to_string().as_bytes()), cas)
                    .is_ok()
            }
            _ => false,
        }
    }

    /// Makes the job due at `at_ms` at the latest (a retry sooner than the interval).
    pub fn due_by(&self, at_ms: u64) {
        match self.due() {
            Some((due, cas)) if due > at_ms => {
                let at = at_ms.to_string();
                let _ = hostcalls::set_shared_data(&self.key, Some(at.as_bytes()), cas);
            }
            _ => {}
        }
    }

    fn due(&self) -> Option<(u64, Option<u32>)> {
        let (value, cas) = hostcalls::get_shared_data(&self.key).ok()?;
        let due = value
            .and_then(|v| std::str::from_utf8(&v).ok()?.parse::<u64>().ok())
            .unwrap_or(0);
        Some((due, cas))
    }
}
