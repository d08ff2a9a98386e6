//! Envoy's stats as a [`StatSink`]. Metric ids are resolved once per stat name and cached (a
//! series costs one `proxy_define_metric` for the life of the VM), and counter increments are
//! batched: a request only adds to in-VM deltas, and [`EnvoyStats::flush`] sends one
//! `proxy_increment_metric` per changed series when the root context ticks. A host that makes
//! host calls cheap can ask for every update at once (`stats_flush_interval_ms: 0` in the VM
//! configuration).

use rustc_hash::FxHashMap as HashMap;

use proxy_wasm::hostcalls;
use proxy_wasm::types::{LogLevel, MetricType};

use crate::events::StatSink;

#[derive(Debug)]
struct Counter {
    id: u32,
    pending: u64,
}

#[derive(Debug, Default)]
pub struct EnvoyStats {
    /// Batch counter increments until [`EnvoyStats::flush`].
    batched: bool,
    counters: Vec<Counter>,
    counter_slots: HashMap<String, usize>,
    /// The counter slots of each histogram series' buckets and `_count` (an index into
    /// `histograms`), so that an observation costs one lookup, not one per bucket.
    histogram_slots: HashMap<String, usize>,
    histograms: Vec<Vec<usize>>,
    /// Counters with a pending delta, each once.
    dirty: Vec<usize>,
    ids: HashMap<String, u32>,
    /// Set once a host call failed, so that the log says it once, not per request.
    failed: bool,
}

impl EnvoyStats {
    pub fn new(batched: bool) -> Self {
        EnvoyStats {
            batched,
            ..EnvoyStats::default()
        }
    }

    fn define(&mut self, kind: MetricType, name: &str) -> Option<u32> {
        match hostcalls::define_metric(kind, name) {
            Ok(id) => Some(id),
            Err(status) => {
                self.report(&format!("define_metric({name}) failed: {status:?}"));
                None
            }
        }
    }

    fn id(&mut self, kind: MetricType, name: &str) -> Option<u32> {
        if let Some(id) = self.ids.get(name) {
            return Some(*id);
        }
        let id = self.define(kind, name)?;
        self.ids.insert(name.to_string(), id);
        Some(id)
    }

    fn counter_slot(&mut self, name: &str) -> Option<usize> {
        if let Some(slot) = self.counter_slots.get(name) {
            return Some(*slot);
        }
        let id = self.define(MetricType::Counter, name)?;
        let slot = self.counters.len();
        self.counters.push(Counter { id, pending: 0 });
        self.counter_slots.insert(name.to_string(), slot);
        Some(slot)
    }

    /// Sends every pending counter delta to the host.
    pub fn flush(&mut self) {
        let mut dirty = std::mem::take(&mut self.dirty);
        for slot in dirty.drain(..) {
            let counter = &mut self.counters[slot];
            let delta = std::mem::take(&mut counter.pending);
            let id = counter.id;
            self.increment(id, delta);
        }
        // Keep the allocation for the next batch.
        self.dirty = dirty;
    }

    fn increment(&mut self, id: u32, delta: u64) {
        let delta = i64::try_from(delta).unwrap_or(i64::MAX);
        if let Err(status) = hostcalls::increment_metric(id, delta) {
            self.report(&format!("increment_metric({id}) failed: {status:?}"));
        }
    }

    fn report(&mut self, message: &str) {
        if !self.failed {
            self.failed = true;
            super::log(LogLevel::Warn, message);
        }
    }
}

impl EnvoyStats {
    fn add_to_slot(&mut self, slot: usize, delta: u64) {
        if delta == 0 {
            return;
        }
        if !self.batched {
            let id = self.counters[slot].id;
            return self.increment(id, delta);
        }
        let counter = &mut self.counters[slot];
        if counter.pending == 0 {
            self.dirty.push(slot);
        }
        counter.pending = counter.pending.saturating_add(delta);
    }
}

impl StatSink for EnvoyStats {
    fn add(&mut self, name: &str, delta: u64) {
        if let Some(slot) = self.counter_slot(name) {
            self.add_to_slot(slot, delta);
        }
    }

    fn add_buckets(
        &mut self,
        series: &str,
        buckets: usize,
        first: usize,
        name: &mut dyn FnMut(usize, &mut String),
    ) {
        if !self.histogram_slots.contains_key(series) {
            let mut slots = Vec::with_capacity(buckets + 1);
            let mut scratch = String::new();
            for i in 0..=buckets {
                scratch.clear();
                name(i, &mut scratch);
                match self.counter_slot(&scratch) {
                    Some(slot) => slots.push(slot),
                    // A failed definition is logged; the observation is dropped.
                    None => return,
                }
            }
            self.histogram_slots
                .insert(series.to_string(), self.histograms.len());
            self.histograms.push(slots);
        }
        let Some(&histogram) = self.histogram_slots.get(series) else {
            return;
        };
        // The cumulative buckets from `first` on, and `_count` (the last slot). The list is
        // lent out while the counters change, and put back: no copy per observation.
        let Some(slots) = self.histograms.get_mut(histogram).map(std::mem::take) else {
            return;
        };
        for &slot in slots.get(first..).unwrap_or_default() {
            self.add_to_slot(slot, 1);
        }
        if let Some(lent) = self.histograms.get_mut(histogram) {
            *lent = slots;
        }
    }

    fn observe(&mut self, name: &str, nanos: u64) {
        let Some(id) = self.id(MetricType::Histogram, name) else {
            return;
        };
        if let Err(status) = hostcalls::record_metric(id, nanos) {
            self.report(&format!("record_metric({name}) failed: {status:?}"));
        }
    }

    fn set(&mut self, name: &str, value: u64) {
        let Some(id) = self.id(MetricType::Gauge, name) else {
            return;
        };
        if let Err(status) = hostcalls::record_metric(id, value) {
            self.report(&format!("record_metric({name}) failed: {status:?}"));
        }
    }
}
