//! The metrics the guest defines (`proxy_define_metric` …), shared by every instance of the
//! process, and their Prometheus exposition (prometheus-client).
//!
//! Names are read the way Envoy's bootstrap reads them: labels are cut out of the
//! tag-encoded name with the filter's catalog rules. Histograms the catalog declares in
//! seconds arrive in nanoseconds and are exported as real histograms in seconds; the
//! `_bucket`/`_count` counters the filter keeps for Envoy are then not exported twice.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::{Family, MetricConstructor};
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use prompter_filter::catalog::{
    format_bound, is_prometheus_name, Metric, MetricKind, BUCKET_SUFFIX, COUNT_SUFFIX,
    SUM_MICROS_SUFFIX,
};
use prompter_filter::stat_name;

use crate::logs::{Level, Logs};

/// proxy-wasm metric types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

impl Kind {
    pub fn from_abi(value: i32) -> Option<Kind> {
        match value {
            0 => Some(Kind::Counter),
            1 => Some(Kind::Gauge),
            2 => Some(Kind::Histogram),
            _ => None,
        }
    }
}

/// Why an operation on a metric was refused (mapped to proxy-wasm statuses by the ABI).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricError {
    NotFound,
    BadArgument,
}

type Labels = Vec<(String, String)>;

/// What the exporter knows of the filter's metrics, from the filter's catalog and its plugin
/// configuration (the metrics it declares): the histograms recorded in nanoseconds (or a
/// declared value × 10⁹) with their bounds in seconds (or the value's unit), by name, and
/// each metric's help.
#[derive(Debug, Clone, Default)]
pub struct SecondsHistograms {
    pub bounds: HashMap<String, Vec<f64>>,
    pub help: HashMap<String, String>,
    /// Label keys of declared metrics beyond the catalog's.
    pub declared_labels: Vec<String>,
}

#[derive(Clone)]
struct Buckets(Arc<[f64]>);

impl MetricConstructor<Histogram> for Buckets {
    fn new_metric(&self) -> Histogram {
        Histogram::new(self.0.iter().copied())
    }
}

enum Export {
    Counter(Counter),
    Gauge(Gauge),
    /// Observations divided by `scale` (1e9 for nanoseconds → seconds).
    Histogram(Histogram, f64),
    /// Kept for `proxy_get_metric`, not exported.
    Hidden,
}

struct Entry {
    kind: Kind,
    value: AtomicI64,
    export: Export,
}

#[derive(Default)]
struct Families {
    counters: HashMap<String, Family<Labels, Counter>>,
    gauges: HashMap<String, Family<Labels, Gauge>>,
    histograms: HashMap<String, Family<Labels, Histogram, Buckets>>,
}

struct Inner {
    ids: HashMap<(Kind, String), u32>,
    entries: Vec<Arc<Entry>>,
    registry: Registry,
    families: Families,
}

pub struct MetricStore {
    inner: Mutex<Inner>,
    seconds: SecondsHistograms,
    /// The catalog's spelling of each bound in `seconds` (see [`respell_bounds`]), by the
    /// bits of its float.
    bound_spelling: HashMap<u64, String>,
    logs: Arc<Logs>,
}

/// The catalog's histograms with the given bounds (the filter's configured buckets).
pub fn seconds_histograms(bounds: impl Fn(Metric) -> Vec<f64>) -> SecondsHistograms {
    SecondsHistograms {
        bounds: Metric::ALL
            .iter()
            .filter(|m| m.kind() == MetricKind::Histogram)
            .map(|m| (m.name().to_string(), bounds(*m)))
            .collect(),
        help: Metric::ALL
            .iter()
            .map(|m| (m.name().to_string(), m.def().help.to_string()))
            .collect(),
        declared_labels: Vec::new(),
    }
}

impl MetricStore {
    pub fn new(seconds: SecondsHistograms, logs: Arc<Logs>) -> Self {
        let bound_spelling = seconds
            .bounds
            .values()
            .flatten()
            .filter_map(|seconds| {
                // Bounds are whole nanoseconds (the filter refuses others).
                let nanos = (seconds * 1e9).round();
                (nanos >= 1.0 && nanos / 1e9 == *seconds)
                    .then(|| (seconds.to_bits(), format_bound(nanos as u64)))
            })
            .collect();
        MetricStore {
            bound_spelling,
            inner: Mutex::new(Inner {
                ids: HashMap::new(),
                entries: Vec::new(),
                registry: Registry::default(),
                families: Families::default(),
            }),
            seconds,
            logs,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The id of `name`, defining it on first use; the same name and kind give the same id.
    pub fn define(&self, kind: Kind, name: &str) -> u32 {
        let mut inner = self.lock();
        if let Some(id) = inner.ids.get(&(kind, name.to_string())) {
            return *id;
        }
        let export = self.export_for(&mut inner, kind, name);
        let id = inner.entries.len() as u32;
        inner.entries.push(Arc::new(Entry {
            kind,
            value: AtomicI64::new(0),
            export,
        }));
        inner.ids.insert((kind, name.to_string()), id);
        id
    }

    fn export_for(&self, inner: &mut Inner, kind: Kind, name: &str) -> Export {
        let Some(decoded) = stat_name::decode_with(name, &self.seconds.declared_labels) else {
            self.logs.push(
                Level::Warn,
                format!("metric `{name}` is not in the tag encoding; not exported"),
            );
            return Export::Hidden;
        };
        let series = decoded.series;
        let labels: Labels = decoded
            .labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        if !is_prometheus_name(series, true)
            || !labels.iter().all(|(k, _)| is_prometheus_name(k, false))
        {
            self.logs.push(
                Level::Warn,
                format!("metric `{name}` has no valid Prometheus name; not exported"),
            );
            return Export::Hidden;
        }
        // The filter's Envoy-shaped histogram counters, when a real histogram exists for them.
        let replaced_by_histogram =
            [BUCKET_SUFFIX, COUNT_SUFFIX, SUM_MICROS_SUFFIX]
                .iter()
                .any(|suffix| {
                    series
                        .strip_suffix(suffix)
                        .is_some_and(|base| self.seconds.bounds.contains_key(base))
                });
        let help = self
            .seconds
            .help
            .get(series)
            .map_or("Defined by the wasm filter", String::as_str);
        let registry = &mut inner.registry;
        let families = &mut inner.families;
        match kind {
            Kind::Counter if replaced_by_histogram => Export::Hidden,
            Kind::Counter => {
                let family = families
                    .counters
                    .entry(series.to_string())
                    .or_insert_with(|| {
                        let family = Family::<Labels, Counter>::default();
                        // The client adds `_total` to counter names itself.
                        let base = series.strip_suffix("_total").unwrap_or(series);
                        registry.register(base, help, family.clone());
                        family
                    });
                Export::Counter(family.get_or_create(&labels).clone())
            }
            Kind::Gauge => {
                let family = families
                    .gauges
                    .entry(series.to_string())
                    .or_insert_with(|| {
                        let family = Family::<Labels, Gauge>::default();
                        registry.register(series, help, family.clone());
                        family
                    });
                Export::Gauge(family.get_or_create(&labels).clone())
            }
            Kind::Histogram => {
                let (bounds, scale) = match self.seconds.bounds.get(series) {
                    Some(bounds) => (bounds.clone(), 1e9),
                    None => (
                        vec![1.0, 10.0, 100.0, 1_000.0, 10_000.0, 100_000.0, 1_000_000.0],
                        1.0,
                    ),
                };
                let family = families
                    .histograms
                    .entry(series.to_string())
                    .or_insert_with(|| {
                        let family = Family::new_with_constructor(Buckets(bounds.into()));
                        registry.register(series, help, family.clone());
                        family
                    });
                Export::Histogram(family.get_or_create(&labels).clone(), scale)
            }
        }
    }

    fn entry(&self, id: u32) -> Result<Arc<Entry>, MetricError> {
        self.lock()
            .entries
            .get(id as usize)
            .cloned()
            .ok_or(MetricError::NotFound)
    }

    pub fn increment(&self, id: u32, delta: i64) -> Result<(), MetricError> {
        let entry = self.entry(id)?;
        match (&entry.export, entry.kind) {
            (_, Kind::Histogram) => return Err(MetricError::BadArgument),
            (_, Kind::Counter) if delta < 0 => return Err(MetricError::BadArgument),
            (Export::Counter(c), _) => {
                c.inc_by(delta as u64);
            }
            (Export::Gauge(g), _) => {
                g.inc_by(delta);
            }
            _ => {}
        }
        entry.value.fetch_add(delta, Ordering::Relaxed);
        Ok(())
    }

    pub fn record(&self, id: u32, value: u64) -> Result<(), MetricError> {
        let entry = self.entry(id)?;
        let signed = i64::try_from(value).unwrap_or(i64::MAX);
        match &entry.export {
            Export::Histogram(h, scale) => h.observe(value as f64 / scale),
            Export::Gauge(g) => {
                g.set(signed);
            }
            Export::Counter(c) => {
                // Envoy sets a counter by adding the difference; it never goes down.
                let previous = entry.value.load(Ordering::Relaxed);
                if signed < previous {
                    return Err(MetricError::BadArgument);
                }
                c.inc_by(signed.abs_diff(previous));
            }
            Export::Hidden => {}
        }
        if entry.kind == Kind::Histogram {
            entry.value.fetch_add(1, Ordering::Relaxed);
        } else {
            entry.value.store(signed, Ordering::Relaxed);
        }
        Ok(())
    }

    pub fn get(&self, id: u32) -> Result<u64, MetricError> {
        let entry = self.entry(id)?;
        if entry.kind == Kind::Histogram {
            return Err(MetricError::BadArgument);
        }
        Ok(entry.value.load(Ordering::Relaxed).max(0) as u64)
    }

    /// Registers a counter of the host itself (not the filter's), exported beside the filter's.
    pub fn host_counter(&self, name: &str, help: &str) -> Counter {
        let counter = Counter::default();
        self.lock().registry.register(name, help, counter.clone());
        counter
    }

    /// The OpenMetrics text exposition of every exported metric.
    pub fn encode(&self) -> String {
        let inner = self.lock();
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &inner.registry);
        respell_bounds(&text, &self.bound_spelling)
    }
}

/// prometheus-client prints a bucket bound with its own float formatting (`0.00001`); the
/// filter through Envoy, and the Python client before it, print Python's `repr` (`1e-05`,
/// [`format_bound`]). Each `le` the library printed for one of our bounds is written the
/// catalog's way, so a selector or a panel naming a bucket by its `le` finds it behind either
/// proxy. Label values cannot hold `"` or `=` (they are sanitized), so `le="` only ever
/// starts the bucket bound.
fn respell_bounds(text: &str, spelling: &HashMap<u64, String>) -> String {
    const LE: &str = "le=\"";
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(LE) {
        let (before, from) = rest.split_at(at + LE.len());
        out.push_str(before);
        let end = from.find('"').unwrap_or(from.len());
        let (value, after) = from.split_at(end);
        let respelled = value
            .parse::<f64>()
            .ok()
            .and_then(|v| spelling.get(&v.to_bits()));
        out.push_str(respelled.map_or(value, String::as_str));
        rest = after;
    }
    out.push_str(rest);
    out
}

/// The content type of [`MetricStore::encode`]'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The histograms of the filter's catalog and of the metrics its plugin configuration
/// declares, with the bounds it sets, and every metric's help (the filter refuses a
/// configuration that does not parse; the catalog's defaults stand then).
pub fn filter_buckets(plugin_config: &[u8], env: &[(String, String)]) -> SecondsHistograms {
    let config = prompter_filter::config::Config::parse(plugin_config, |name| {
        env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
    });
    let Ok(config) = config else {
        return seconds_histograms(|_| prompter_filter::config::Buckets::default().seconds());
    };
    let mut known = SecondsHistograms {
        declared_labels: config
            .declared_label_keys()
            .into_iter()
            .map(String::from)
            .collect(),
        ..SecondsHistograms::default()
    };
    for metric in config.metric_ids() {
        let shape = config.shape(metric);
        if shape.kind == MetricKind::Histogram {
            let bounds = config.buckets(metric).seconds();
            known.bounds.insert(shape.name.to_string(), bounds);
        }
        known
            .help
            .insert(shape.name.to_string(), shape.help.to_string());
    }
    known
}
