//! Envoy's stats as [`StatSink`]s of a dynamic module.
//!
//! Envoy takes metric definitions only while it creates the configuration, each a name and
//! label names; updates name the definition and pass label values. [`Families`] defines every
//! stat the [`Recorder`] can resolve for the catalog then (found by resolving one series of
//! each metric, so a new stat of the recorder is defined without a list here), and the sinks
//! map each resolved stat to its family and keeps its label values.
//!
//! On a worker, a request only adds to counters in the module ([`WorkerStats`]): each counter
//! is an atomic cell that only its worker writes, and the main thread ([`Flusher`]) sends what
//! changed to Envoy once per tick, as the Wasm build batches its increments. No lock is taken
//! on the request path; a new series is handed to the main thread over a channel. A gauge
//! series has one cell that every thread sets (the last value set wins, as in the Wasm build)
//! and the tick sends when it was set: a call into Envoy's stats per set cost a health check
//! request more than the rest of its metrics.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, Sender};
use std::sync::{Arc, Mutex, MutexGuard};

use rustc_hash::FxHashMap;

use super::abi::{EnvoyConfig, MetricId};
use crate::catalog::{MetricKind, FILTER_FAILURES};
use crate::config::Config;
use crate::events::{Event, Recorder, Series, Stat, StatSink};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Counter,
    Gauge,
}

#[derive(Debug)]
struct Family {
    id: MetricId,
    kind: Kind,
    label_names: Box<[Box<str>]>,
}

/// The metric families defined in Envoy, by full name (`<name><suffix>`).
#[derive(Debug)]
pub struct Families {
    by_name: FxHashMap<String, Family>,
    /// `prompter_filter_failures_total`: hooks that panicked.
    pub failures: Option<MetricId>,
    /// Every gauge series set so far, with its cell. Locked only to add a series (the first
    /// time a thread sets it) and by the main thread's flush.
    gauges: Mutex<Vec<(Labelled, Arc<GaugeCell>)>>,
}

/// A gauge series' value as last set by any thread, until the main thread sends it to Envoy.
#[derive(Debug, Default)]
struct GaugeCell {
    value: AtomicU64,
    /// Set after each value, cleared by the flush that sends the value.
    pending: AtomicBool,
}

impl GaugeCell {
    fn set(&self, value: u64) {
        self.value.store(value, Ordering::Relaxed);
        self.pending.store(true, Ordering::Release);
    }
}

impl Families {
    /// Defines in Envoy every stat the recorder resolves for the catalog's metrics, and the
    /// failure counter. Only while Envoy creates the configuration.
    pub fn define(config: &Config, envoy: EnvoyConfig) -> Result<Families, String> {
        let mut definer = Definer {
            envoy,
            families: FxHashMap::default(),
            refused: None,
        };
        let mut recorder = Recorder::default();
        for metric in config.metric_ids() {
            // One series whose label values are its label names: the stats it resolves to are
            // the families the metric needs.
            let shape = config.shape(metric);
            let values: Vec<&str> = shape.labels.iter().collect();
            let series = Series::new(metric, &values);
            let event = match shape.kind {
                MetricKind::Counter => Event::Count(series),
                MetricKind::Gauge => Event::Set(series, 0),
                MetricKind::Histogram => Event::Observe(series, 0),
            };
            recorder.record(config, event, &mut definer);
        }
        if let Some(name) = definer.refused {
            return Err(format!("Envoy refused to define the metric `{name}`"));
        }
        let failures = envoy.define_counter(FILTER_FAILURES, &[]);
        Ok(Families {
            by_name: definer.families,
            failures,
            gauges: Mutex::default(),
        })
    }

    /// The cell of the gauge series `stat`, shared by every thread that sets it.
    fn gauge_cell(&self, stat: &Stat<'_>) -> Option<Arc<GaugeCell>> {
        let gauge = Labelled::resolve(self, stat, Kind::Gauge)?;
        let mut gauges = lock(&self.gauges);
        if let Some((_, cell)) = gauges.iter().find(|(known, _)| *known == gauge) {
            return Some(Arc::clone(cell));
        }
        let cell = Arc::new(GaugeCell::default());
        gauges.push((gauge, Arc::clone(&cell)));
        Some(cell)
    }

    /// The family of `stat`, if it is one of `kind` defined with the stat's label names.
    fn of(&self, stat: &Stat<'_>, kind: Kind) -> Option<&Family> {
        let mut name = String::with_capacity(stat.name.len() + stat.suffix.len());
        name.push_str(stat.name);
        name.push_str(stat.suffix);
        self.by_name.get(&name).filter(|family| {
            family.kind == kind
                && family.label_names.len() == stat.labels.len()
                && family
                    .label_names
                    .iter()
                    .zip(stat.labels)
                    .all(|(defined, (key, _))| **defined == **key)
        })
    }
}

/// The sink that defines families: every stat the recorder resolves is defined once.
struct Definer {
    envoy: EnvoyConfig,
    families: FxHashMap<String, Family>,
    refused: Option<String>,
}

impl Definer {
    fn define(&mut self, stat: &Stat<'_>, kind: Kind) -> Option<u32> {
        let name = format!("{}{}", stat.name, stat.suffix);
        if self.families.contains_key(&name) {
            return Some(0);
        }
        let label_names: Vec<&str> = stat.labels.iter().map(|(key, _)| *key).collect();
        let id = match kind {
            Kind::Counter => self.envoy.define_counter(&name, &label_names),
            Kind::Gauge => self.envoy.define_gauge(&name, &label_names),
        };
        let Some(id) = id else {
            self.refused.get_or_insert(name);
            return None;
        };
        let label_names = label_names.iter().map(|l| Box::from(*l)).collect();
        self.families.insert(
            name,
            Family {
                id,
                kind,
                label_names,
            },
        );
        Some(0)
    }
}

impl StatSink for Definer {
    fn counter(&mut self, stat: &Stat<'_>) -> Option<u32> {
        self.define(stat, Kind::Counter)
    }
    fn gauge(&mut self, stat: &Stat<'_>) -> Option<u32> {
        self.define(stat, Kind::Gauge)
    }
    fn histogram(&mut self, _stat: &Stat<'_>) -> Option<u32> {
        // Envoy would print its own buckets, not the configured ones: the recorder keeps
        // histograms as counters (`native_histograms` is off in this build).
        None
    }
    fn add(&mut self, _counter: u32, _delta: u64) {}
    fn set(&mut self, _gauge: u32, _value: u64) {}
    fn observe(&mut self, _histogram: u32, _nanos: u64) {}
}

/// A poisoned lock only means a panic was caught while it was held: the list is still whole.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// One resolved series of a family: the family's id and the series' label values.
#[derive(Debug, PartialEq, Eq)]
struct Labelled {
    id: MetricId,
    values: Box<[Box<str>]>,
}

impl Labelled {
    fn resolve(families: &Families, stat: &Stat<'_>, kind: Kind) -> Option<Labelled> {
        let family = families.of(stat, kind)?;
        Some(Labelled {
            id: family.id,
            values: stat.labels.iter().map(|(_, v)| Box::from(*v)).collect(),
        })
    }

    fn with_values<R>(&self, f: impl FnOnce(MetricId, &[&str]) -> R) -> R {
        const INLINE: usize = 8;
        let mut values = [""; INLINE];
        if self.values.len() <= INLINE {
            for (slot, value) in values.iter_mut().zip(self.values.iter()) {
                *slot = value;
            }
            f(self.id, &values[..self.values.len()])
        } else {
            let values: Vec<&str> = self.values.iter().map(|v| &**v).collect();
            f(self.id, &values)
        }
    }
}

/// A worker's counter, handed to the main thread when first resolved.
#[derive(Debug)]
pub struct Registration {
    counter: Labelled,
    /// The counter's total so far. Only its worker adds to it.
    total: Arc<AtomicU64>,
}

/// One worker's stats for one configuration; lives on that worker's thread.
#[derive(Debug)]
pub struct WorkerStats {
    families: Arc<Families>,
    counters: Vec<Arc<AtomicU64>>,
    gauges: Vec<Arc<GaugeCell>>,
    register: Sender<Registration>,
}

impl WorkerStats {
    pub fn new(families: Arc<Families>, register: Sender<Registration>) -> Self {
        WorkerStats {
            families,
            counters: Vec::new(),
            gauges: Vec::new(),
            register,
        }
    }
}

impl StatSink for WorkerStats {
    fn counter(&mut self, stat: &Stat<'_>) -> Option<u32> {
        let counter = Labelled::resolve(&self.families, stat, Kind::Counter)?;
        let handle = u32::try_from(self.counters.len()).ok()?;
        let total = Arc::new(AtomicU64::new(0));
        // The main thread has gone only while the configuration is being destroyed.
        self.register
            .send(Registration {
                counter,
                total: Arc::clone(&total),
            })
            .ok()?;
        self.counters.push(total);
        Some(handle)
    }

    fn gauge(&mut self, stat: &Stat<'_>) -> Option<u32> {
        let cell = self.families.gauge_cell(stat)?;
        let handle = u32::try_from(self.gauges.len()).ok()?;
        self.gauges.push(cell);
        Some(handle)
    }

    fn histogram(&mut self, _stat: &Stat<'_>) -> Option<u32> {
        None
    }

    fn add(&mut self, counter: u32, delta: u64) {
        if let Some(total) = self.counters.get(counter as usize) {
            // Only this worker writes the cell, so a load and a store add without a locked
            // instruction; the main thread only reads it.
            let sum = total.load(Ordering::Relaxed).saturating_add(delta);
            total.store(sum, Ordering::Relaxed);
        }
    }

    fn set(&mut self, gauge: u32, value: u64) {
        if let Some(cell) = self.gauges.get(gauge as usize) {
            cell.set(value);
        }
    }

    fn observe(&mut self, _histogram: u32, _nanos: u64) {}
}

/// The main thread's side: sends each worker counter's increase since the last flush, and
/// each gauge set since, to Envoy.
#[derive(Debug)]
pub struct Flusher {
    families: Arc<Families>,
    registered: Receiver<Registration>,
    counters: Vec<(Registration, u64)>,
}

impl Flusher {
    pub fn new(families: Arc<Families>, registered: Receiver<Registration>) -> Self {
        Flusher {
            families,
            registered,
            counters: Vec::new(),
        }
    }

    pub fn flush(&mut self, envoy: EnvoyConfig) {
        for registration in self.registered.try_iter() {
            // Defined at 0 (Envoy creates a labelled counter when it is first updated), so
            // that a histogram's empty buckets are exported as 0, as the Wasm build does.
            registration
                .counter
                .with_values(|id, values| envoy.increment_counter(id, values, 0));
            self.counters.push((registration, 0));
        }
        for (registration, flushed) in &mut self.counters {
            let total = registration.total.load(Ordering::Relaxed);
            if total > *flushed {
                let delta = total - *flushed;
                let sent = registration
                    .counter
                    .with_values(|id, values| envoy.increment_counter(id, values, delta));
                if sent {
                    *flushed = total;
                }
            }
        }
        for (gauge, cell) in lock(&self.families.gauges).iter() {
            if cell.pending.swap(false, Ordering::Acquire) {
                let value = cell.value.load(Ordering::Relaxed);
                if !gauge.with_values(|id, values| envoy.set_gauge(id, values, value)) {
                    cell.pending.store(true, Ordering::Relaxed);
                }
            }
        }
    }
}

/// The main thread's own events (the health poll's gauge): counters straight to Envoy, gauges
/// through their cells (sent by the next flush, so that a worker's older value cannot follow).
#[derive(Debug)]
pub struct MainStats {
    families: Arc<Families>,
    envoy: EnvoyConfig,
    counters: Vec<Labelled>,
    gauges: Vec<Arc<GaugeCell>>,
}

impl MainStats {
    pub fn new(families: Arc<Families>, envoy: EnvoyConfig) -> Self {
        MainStats {
            families,
            envoy,
            counters: Vec::new(),
            gauges: Vec::new(),
        }
    }
}

impl StatSink for MainStats {
    fn counter(&mut self, stat: &Stat<'_>) -> Option<u32> {
        let counter = Labelled::resolve(&self.families, stat, Kind::Counter)?;
        self.counters.push(counter);
        u32::try_from(self.counters.len() - 1).ok()
    }

    fn gauge(&mut self, stat: &Stat<'_>) -> Option<u32> {
        let cell = self.families.gauge_cell(stat)?;
        self.gauges.push(cell);
        u32::try_from(self.gauges.len() - 1).ok()
    }

    fn histogram(&mut self, _stat: &Stat<'_>) -> Option<u32> {
        None
    }

    fn add(&mut self, counter: u32, delta: u64) {
        if let Some(counter) = self.counters.get(counter as usize) {
            counter.with_values(|id, values| self.envoy.increment_counter(id, values, delta));
        }
    }

    fn set(&mut self, gauge: u32, value: u64) {
        if let Some(cell) = self.gauges.get(gauge as usize) {
            cell.set(value);
        }
    }

    fn observe(&mut self, _histogram: u32, _nanos: u64) {}
}
