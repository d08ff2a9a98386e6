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

#[derive(Debug)]
struct Counter {
    id: u32,
    pending: u64,
}

/// Counters are handed out as slots in `counters` (where their batched deltas wait); gauges
/// and histograms as Envoy's metric ids. The [`crate::events::Recorder`] asks for each
/// series' stats once.
#[derive(Debug, Default)]
pub struct EnvoyStats {
    /// Batch counter increments until [`EnvoyStats::flush`].
    batched: bool,
    counters: Vec<Counter>,
    /// Envoy's id of each counter → its slot. A series whose histogram was refused halfway is
    /// resolved again later, and two series may sanitize to one name: the same stat gets the
    /// same slot, so `counters` stays as long as the stats Envoy holds.
    slots: FxHashMap<u32, u32>,
    /// Counters with a pending delta, each once.
    dirty: Vec<usize>,
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
        let slot = u32::try_from(self.counters.len()).ok()?;
        self.counters.push(Counter { id, pending: 0 });
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
        let Some(counter) = self.counters.get_mut(slot) else {
            return;
        };
        if delta == 0 {
            return;
        }
        if !self.batched {
            let id = counter.id;
            return self.increment(id, delta);
        }
        if counter.pending == 0 {
            self.dirty.push(slot);
        }
        counter.pending = counter.pending.saturating_add(delta);
    }

    fn set(&mut self, gauge: u32, value: u64) {
        self.record(gauge, value);
    }

    fn observe(&mut self, histogram: u32, nanos: u64) {
        self.record(histogram, nanos);
    }
}
