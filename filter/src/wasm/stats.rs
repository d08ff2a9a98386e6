//! Envoy's stats as a [`StatSink`]. A stat costs one `proxy_define_metric` for the life of
//! the VM (the recorder resolves each series once), and counter increments are batched: a
//! request only adds to in-VM deltas, and [`EnvoyStats::flush`] sends one
//! `proxy_increment_metric` per changed series when the root context ticks. A host that makes
//! host calls cheap can ask for every update at once (`stats_flush_interval_ms: 0` in the VM
//! configuration).

use proxy_wasm::hostcalls;
use proxy_wasm::types::{LogLevel, MetricType};
use rustc_hash::FxHashMap;

use crate::events::{Stat, StatSink};

/// Counters are handed out as slots in `ids` and `pending` (where their batched deltas
/// wait); gauges and histograms as Envoy's metric ids. The [`crate::events::Recorder`] asks
/// for each series' stats once.
#[derive(Debug, Default)]
pub struct EnvoyStats {
    /// Batch counter increments until [`EnvoyStats::flush`].
    batched: bool,
    /// Envoy's id of each counter slot.
    ids: Vec<u32>,
    /// The delta of each counter slot not sent yet. An increment only adds here: the flush,
    /// once a second, finds what changed.
    pending: Vec<u64>,
    /// Histogram observations not sent yet, by the slot of their first bucket: an observation
    /// is one mark, not an add to each of a dozen cumulative counters.
    marks: Vec<u64>,
    /// The slot after this one is the same histogram's next counter: the flush carries the
    /// running sum of the marks over to it (a run of slots ends at its `_count`).
    carries: Vec<bool>,
    /// Envoy's id of each counter → its slot. A series whose histogram was refused halfway is
    /// resolved again later, and two series may sanitize to one name: the same stat gets the
    /// same slot, so the slots stay as many as the stats Envoy holds.
    slots: FxHashMap<u32, u32>,
    /// Set once a host call failed, so that the log says it once, not per request.
    failed: bool,
    /// Where a stat's tag-encoded name is built.
    scratch: String,
}

impl EnvoyStats {
    pub fn new(batched: bool) -> Self {
        EnvoyStats {
            batched,
            ..EnvoyStats::default()
        }
    }

    fn define(&mut self, kind: MetricType, stat: &Stat<'_>) -> Option<u32> {
        let mut scratch = std::mem::take(&mut self.scratch);
        let name = stat.encode_into(&mut scratch);
        let defined = match hostcalls::define_metric(kind, name) {
            Ok(id) => Some(id),
            Err(status) => {
                self.report(&format!("define_metric({name}) failed: {status:?}"));
                None
            }
        };
        self.scratch = scratch;
        defined
    }

    /// Sends every pending counter delta to the host, a histogram's marks added up into its
    /// cumulative counters.
    pub fn flush(&mut self) {
        let mut running = 0u64;
        for slot in 0..self.pending.len() {
            let (Some(pending), Some(mark), Some(&carries), Some(&id)) = (
                self.pending.get_mut(slot),
                self.marks.get_mut(slot),
                self.carries.get(slot),
                self.ids.get(slot),
            ) else {
                continue;
            };
            running = running.saturating_add(std::mem::take(mark));
            let delta = std::mem::take(pending).saturating_add(running);
            if !carries {
                running = 0;
            }
            if delta > 0 {
                self.increment(id, delta);
            }
        }
    }

    /// True when `counters` hold consecutive slots whose carries are set, setting them the
    /// first time. A histogram's counters are resolved in a row, so they are consecutive but
    /// for a series resolved again after a refusal: that one is added to counter by counter.
    /// Runs never overlap, and a run is a histogram's (its first slot is its first bucket's
    /// stat, the same number of buckets for every series of a metric): once registered, a
    /// run is known by its first and last slot.
    fn is_run(&mut self, counters: &[u32]) -> bool {
        let (Some(&start), Some(&last)) = (counters.first(), counters.last()) else {
            return false;
        };
        let (start, last) = (start as usize, last as usize);
        if self.carries.get(start) == Some(&true) && last == start + counters.len() - 1 {
            return true;
        }
        let consecutive = counters
            .iter()
            .enumerate()
            .all(|(i, &c)| c as usize == start + i);
        let free = self
            .carries
            .get(start..=last)
            .is_some_and(|carries| carries.iter().all(|c| !c));
        if !consecutive || !free || counters.len() < 2 {
            return false;
        }
        for carry in self.carries.get_mut(start..last).unwrap_or_default() {
            *carry = true;
        }
        true
    }

    fn increment(&mut self, id: u32, delta: u64) {
        let delta = i64::try_from(delta).unwrap_or(i64::MAX);
        if let Err(status) = hostcalls::increment_metric(id, delta) {
            self.report(&format!("increment_metric({id}) failed: {status:?}"));
        }
    }

    fn record(&mut self, id: u32, value: u64) {
        if let Err(status) = hostcalls::record_metric(id, value) {
            self.report(&format!("record_metric({id}) failed: {status:?}"));
        }
    }

    fn report(&mut self, message: &str) {
        if !self.failed {
            self.failed = true;
            super::log(LogLevel::Warn, message);
        }
    }
}

impl StatSink for EnvoyStats {
    fn counter(&mut self, stat: &Stat<'_>) -> Option<u32> {
        let id = self.define(MetricType::Counter, stat)?;
        if let Some(slot) = self.slots.get(&id) {
            return Some(*slot);
        }
        let slot = u32::try_from(self.ids.len()).ok()?;
        self.ids.push(id);
        self.pending.push(0);
        self.marks.push(0);
        self.carries.push(false);
        self.slots.insert(id, slot);
        Some(slot)
    }

    fn gauge(&mut self, stat: &Stat<'_>) -> Option<u32> {
        self.define(MetricType::Gauge, stat)
    }

    fn histogram(&mut self, stat: &Stat<'_>) -> Option<u32> {
        self.define(MetricType::Histogram, stat)
    }

    fn add(&mut self, counter: u32, delta: u64) {
        let slot = counter as usize;
        if self.batched {
            if let Some(pending) = self.pending.get_mut(slot) {
                *pending = pending.saturating_add(delta);
            }
        } else if let Some(&id) = self.ids.get(slot).filter(|_| delta > 0) {
            self.increment(id, delta);
        }
    }

    fn add_cumulative(&mut self, counters: &[u32], first: usize) {
        let Some(&from) = counters.get(first) else {
            return;
        };
        if self.batched && from as usize == counters[0] as usize + first && self.is_run(counters) {
            if let Some(mark) = self.marks.get_mut(from as usize) {
                *mark = mark.saturating_add(1);
            }
        } else {
            for counter in counters.get(first..).unwrap_or_default() {
                self.add(*counter, 1);
            }
        }
    }

    fn set(&mut self, gauge: u32, value: u64) {
        self.record(gauge, value);
    }

    fn observe(&mut self, histogram: u32, nanos: u64) {
        self.record(histogram, nanos);
    }
}
