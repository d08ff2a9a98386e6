//! When the counter increments batched in the VM go to the host: the schedule the root
//! context's tick consults. Plain Rust, so that the decision is tested natively.

use std::time::{Duration, SystemTime};

/// The longest tick period: the health poll and the OpenAPI refresh are scheduled in seconds.
const LONGEST_TICK: Duration = Duration::from_secs(1);

/// Flushes once per `interval`, on ticks of [`FlushSchedule::tick_period`].
///
/// Ticks are not punctual: Envoy arms the next tick from its event loop's cached time, so a
/// tick often comes a little before a whole period has passed since the clock reading of the
/// one before. A flush that waited for the full interval would then skip that tick and wait
/// for the next, and a series would lag by up to two intervals. A tick flushes once less
/// than half a tick period is left of the interval.
#[derive(Debug, Clone)]
pub struct FlushSchedule {
    interval: Duration,
    last: Option<SystemTime>,
}

impl FlushSchedule {
    /// `interval` zero: every increment goes to the host at once, nothing is batched.
    pub fn new(interval: Duration) -> Self {
        FlushSchedule {
            interval,
            last: None,
        }
    }

    /// True when increments are batched (and so need ticks to be flushed).
    pub fn batches(&self) -> bool {
        !self.interval.is_zero()
    }

    /// The tick period that serves this schedule: the interval, at most a second (the other
    /// tasks of the tick count in seconds).
    pub fn tick_period(&self) -> Duration {
        if self.batches() {
            self.interval.min(LONGEST_TICK)
        } else {
            LONGEST_TICK
        }
    }

    /// Whether a tick at `now` flushes; if so, `now` is the last flush from then on. The first
    /// tick always flushes, and so does one after the clock went back.
    pub fn tick(&mut self, now: SystemTime) -> bool {
        let due = match self.last {
            None => true,
            Some(last) => match now.duration_since(last) {
                Ok(elapsed) => elapsed + self.tick_period() / 2 >= self.interval,
                Err(_) => true,
            },
        };
        if due {
            self.last = Some(now);
        }
        due
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(millis: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_millis(1_000_000 + millis)
    }

    /// Ticks of 1 s arriving a little early or late each flush: none is skipped.
    #[test]
    fn a_tick_a_little_early_still_flushes() {
        let mut schedule = FlushSchedule::new(Duration::from_secs(1));
        assert_eq!(schedule.tick_period(), Duration::from_secs(1));
        let ticks = [0, 999, 1_998, 3_001, 3_999, 4_990, 6_100];
        let flushed: Vec<bool> = ticks.iter().map(|&t| schedule.tick(at(t))).collect();
        assert_eq!(flushed, vec![true; ticks.len()]);
    }

    /// A longer interval on 1 s ticks: every fifth tick, one early by a few ms included.
    #[test]
    fn a_longer_interval_flushes_on_the_tick_nearest_its_end() {
        let mut schedule = FlushSchedule::new(Duration::from_secs(5));
        assert_eq!(schedule.tick_period(), Duration::from_secs(1));
        let flushed: Vec<u64> = [0, 1_000, 2_000, 3_000, 4_000, 4_998, 6_000, 9_000, 9_996]
            .into_iter()
            .filter(|&t| schedule.tick(at(t)))
            .collect();
        assert_eq!(flushed, vec![0, 4_998, 9_996]);
    }

    #[test]
    fn a_short_interval_ticks_at_its_own_period_and_a_clock_gone_back_flushes() {
        let mut schedule = FlushSchedule::new(Duration::from_millis(200));
        assert_eq!(schedule.tick_period(), Duration::from_millis(200));
        assert!(schedule.tick(at(1_000)));
        assert!(!schedule.tick(at(1_050)));
        assert!(schedule.tick(at(1_190)));
        assert!(schedule.tick(at(500)));
        assert!(!FlushSchedule::new(Duration::ZERO).batches());
    }
}
