//! Wall clock for the guest: the system's, or a manual one that tests set.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

#[derive(Debug, Clone, Default)]
pub enum Clock {
    #[default]
    System,
    Manual(Arc<AtomicU64>),
}

impl Clock {
    pub fn manual(start_nanos: u64) -> Self {
        Clock::Manual(Arc::new(AtomicU64::new(start_nanos)))
    }

    pub fn now_nanos(&self) -> u64 {
        match self {
            Clock::System => SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)),
            Clock::Manual(now) => now.load(Ordering::Relaxed),
        }
    }

    /// Moves a manual clock (no effect on the system clock).
    pub fn set_nanos(&self, nanos: u64) {
        if let Clock::Manual(now) = self {
            now.store(nanos, Ordering::Relaxed);
        }
    }

    pub fn advance_nanos(&self, delta: u64) {
        if let Clock::Manual(now) = self {
            now.fetch_add(delta, Ordering::Relaxed);
        }
    }
}
