//! Metric events and how they become stat-name updates.
//!
//! An [`Event`] names a catalog metric and its label values. A [`Recorder`] turns it into
//! updates of tag-encoded stats: a histogram observation becomes cumulative `_bucket{le}`
//! counters, a `_count` counter and a `_sum_microseconds` counter, because a proxy-wasm
//! histogram records integers and Envoy would export its buckets in that unit, never in
//! seconds.

use crate::catalog::{
    label, nanos_to_micros, Metric, MetricKind, BUCKET_SUFFIX, COUNT_SUFFIX, SUM_MICROS_SUFFIX,
};
use crate::config::Config;
use crate::series_cache::SeriesCache;
use crate::stat_name;

/// A metric of the catalog, or one the configuration declares (by its index in
/// [`crate::declared::Declared::metrics`]); [`Config::shape`] says what it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MetricId {
    Catalog(Metric),
    Declared(usize),
}

impl MetricId {
    /// A number of its own per metric, cheap to hash.
    pub fn key(self) -> u64 {
        match self {
            MetricId::Catalog(metric) => metric as u64,
            MetricId::Declared(index) => (1 << 32) + index as u64,
        }
    }
}

impl From<Metric> for MetricId {
    fn from(metric: Metric) -> Self {
        MetricId::Catalog(metric)
    }
}

/// Label values of one series, in the order of the metric's label keys.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Series<'a> {
    pub metric: MetricId,
    pub values: &'a [&'a str],
    /// The values as a number, when their producer knows one: see [`ValuesKey`].
    pub key: Option<ValuesKey>,
}

impl<'a> Series<'a> {
    pub fn new(metric: impl Into<MetricId>, values: &'a [&'a str]) -> Self {
        Series {
            metric: metric.into(),
            values,
            key: None,
        }
    }

    /// The same series, found by `key` (which must determine its values).
    pub fn with_key(self, key: Option<ValuesKey>) -> Self {
        Series { key, ..self }
    }
}

/// A number that, with the metric and the recorder's configuration, determines a series'
/// label values: the exchange knows its method, configured route and status as small
/// integers before it spells them. The recorder finds a keyed series by this number, without
/// hashing and comparing the values' text (most of what recording an event cost). A series
/// whose values come from traffic (a provider, a model, a learned route, a declared label) has
/// none.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ValuesKey(pub u64);

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Event<'a> {
    /// Add one to a counter.
    Count(Series<'a>),
    /// Add a number to a counter.
    Add(Series<'a>, u64),
    /// Observe a duration, in nanoseconds, in a histogram (exported in seconds); a declared
    /// histogram of another unit observes its value × 10⁹ the same way.
    Observe(Series<'a>, u64),
    /// Set a gauge.
    Set(Series<'a>, u64),
}

/// One stat of a series, as the catalog names it: the metric's name, the suffix of the
/// Prometheus series it is exported as (`_bucket`, `_count`, or none), and the series' label
/// pairs (with `le` for a bucket). Each sink spells it its own way: proxy-wasm as a tag-encoded
/// stat name ([`Stat::encode_into`]), Envoy's dynamic modules as a metric defined with label
/// names and updated with label values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat<'a> {
    pub name: &'a str,
    pub suffix: &'a str,
    pub labels: &'a [(&'a str, &'a str)],
}

impl Stat<'_> {
    /// The tag-encoded stat name (`key=.=value;.;…<name><suffix>`), built in `out`.
    pub fn encode_into<'s>(&self, out: &'s mut String) -> &'s str {
        out.clear();
        stat_name::encode_into(out, self.name, self.labels);
        out.push_str(self.suffix);
        out
    }
}

/// Where stat updates go: Envoy's stats through proxy-wasm or a dynamic module, or a test's
/// map. A stat is resolved once (defined at 0, so that a histogram's empty buckets are
/// exported as 0 like the in-app module does) to a handle; updates name the handle. Resolving
/// a stat again (a series retried after a refusal) gives the same handle.
pub trait StatSink {
    /// The handle of the counter `stat`; `None` when the host refused to define it.
    fn counter(&mut self, stat: &Stat<'_>) -> Option<u32>;
    /// The handle of the gauge `stat`.
    fn gauge(&mut self, stat: &Stat<'_>) -> Option<u32>;
    /// The handle of the native histogram `stat` (no suffix), which records nanoseconds. Only
    /// for hosts that said they export real histograms in seconds (`_sum` included); see
    /// [`crate::config::VmOptions`].
    fn histogram(&mut self, stat: &Stat<'_>) -> Option<u32>;
    fn add(&mut self, counter: u32, delta: u64);
    /// Adds one to each of `counters[first..]`: a histogram observation's cumulative
    /// `_bucket{le}` counters from its first bucket on, then `_count`. A sink that batches
    /// may keep one mark per observation and add the running sums up when it flushes.
    fn add_cumulative(&mut self, counters: &[u32], first: usize) {
        for counter in counters.get(first..).unwrap_or_default() {
            self.add(*counter, 1);
        }
    }
    fn set(&mut self, gauge: u32, value: u64);
    fn observe(&mut self, histogram: u32, nanos: u64);
}

/// What one series became in the sink.
#[derive(Debug)]
enum Resolved {
    Counter(u32),
    Gauge(u32),
    /// A histogram kept as counters: the cumulative `_bucket{le}` counters in bound order,
    /// then `_count`; its sum in microseconds, or the native histogram when the host takes
    /// one (which has a sum of its own).
    Histogram {
        counters: Box<[u32]>,
        sum: Sum,
    },
}

/// Where a histogram's sum goes.
#[derive(Debug)]
enum Sum {
    /// A counter of whole microseconds ([`SUM_MICROS_SUFFIX`]).
    Micros(u32),
    /// The host's native histogram, observing nanoseconds.
    Native(u32),
}

/// Turns events into stat updates. Each series is resolved to its sink handles once and
/// cached ([`SeriesCache`]): an event then costs a hash of its label values and one update
/// per stat, with no stat name built.
#[derive(Debug, Default)]
pub struct Recorder {
    series: SeriesCache<Resolved>,
}

impl Recorder {
    /// Applies one event to `sink`.
    pub fn record(&mut self, config: &Config, event: Event<'_>, sink: &mut impl StatSink) {
        let series = event.series();
        debug_assert_eq!(
            config.shape(series.metric).labels.len(),
            series.values.len(),
            "{:?}",
            series.metric
        );
        let resolved = match self.series.get(&series) {
            Some(resolved) => resolved,
            None => {
                // A refused definition is logged by the sink; the event is dropped and the
                // series tried again next time.
                let Some(resolved) = resolve(config, &series, sink) else {
                    return;
                };
                self.series.insert(&series, resolved)
            }
        };
        match (event, resolved) {
            (Event::Count(_), Resolved::Counter(counter)) => sink.add(*counter, 1),
            (Event::Add(_, delta), Resolved::Counter(counter)) => sink.add(*counter, delta),
            (Event::Set(_, value), Resolved::Gauge(gauge)) => sink.set(*gauge, value),
            (Event::Observe(_, nanos), Resolved::Histogram { counters, sum }) => {
                let first = config.buckets(series.metric).first_bucket(nanos);
                sink.add_cumulative(counters, first);
                match sum {
                    Sum::Micros(counter) => sink.add(*counter, nanos_to_micros(nanos)),
                    Sum::Native(histogram) => sink.observe(*histogram, nanos),
                }
            }
            // The kind of a series is its metric's: an event of another kind is a bug in the
            // exchange, and counts nothing rather than the wrong stat.
            _ => debug_assert!(false, "{event:?} does not fit its metric's kind"),
        }
    }

    /// How many series have been resolved.
    pub fn series(&self) -> usize {
        self.series.len()
    }
}

impl Event<'_> {
    fn series(&self) -> Series<'_> {
        match *self {
            Event::Count(s) | Event::Add(s, _) | Event::Observe(s, _) | Event::Set(s, _) => s,
        }
    }
}

/// Resolves the stats of a series in `sink`.
fn resolve(config: &Config, series: &Series<'_>, sink: &mut impl StatSink) -> Option<Resolved> {
    let shape = config.shape(series.metric);
    // The label pairs, with room for `le`.
    let mut pairs: Vec<(&str, &str)> = shape
        .labels
        .iter()
        .zip(series.values.iter().copied())
        .collect();
    let n = pairs.len();
    pairs.push(("", ""));
    let name = shape.name;
    let stat = |labels, suffix| Stat {
        name,
        suffix,
        labels,
    };
    match shape.kind {
        MetricKind::Counter => sink.counter(&stat(&pairs[..n], "")).map(Resolved::Counter),
        MetricKind::Gauge => sink.gauge(&stat(&pairs[..n], "")).map(Resolved::Gauge),
        MetricKind::Histogram => {
            let buckets = config.buckets(series.metric);
            let mut counters = Vec::with_capacity(buckets.labels.len() + 1);
            for le in &buckets.labels {
                let mut with_le = pairs.clone();
                with_le[n] = (label::LE, le);
                let bucket = Stat {
                    name,
                    suffix: BUCKET_SUFFIX,
                    labels: &with_le[..=n],
                };
                counters.push(sink.counter(&bucket)?);
            }
            counters.push(sink.counter(&stat(&pairs[..n], COUNT_SUFFIX))?);
            let sum = if config.native_histograms {
                Sum::Native(sink.histogram(&stat(&pairs[..n], ""))?)
            } else {
                Sum::Micros(sink.counter(&stat(&pairs[..n], SUM_MICROS_SUFFIX))?)
            };
            Some(Resolved::Histogram {
                counters: counters.into_boxed_slice(),
                sum,
            })
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::collections::BTreeMap;

    /// A sink that keeps every stat in a map, as Envoy's stat store would: counters and
    /// gauges by name, native histogram observations in order; a handle is an index into
    /// the names.
    #[derive(Debug, Default)]
    pub(crate) struct MapSink {
        pub stats: BTreeMap<String, u64>,
        pub observed: Vec<(String, u64)>,
        names: Vec<String>,
    }

    impl MapSink {
        fn define(&mut self, name: &str) -> Option<u32> {
            self.stats.entry(name.to_string()).or_default();
            self.handle(name)
        }
        fn handle(&mut self, name: &str) -> Option<u32> {
            let index = match self.names.iter().position(|n| n == name) {
                Some(index) => index,
                None => {
                    self.names.push(name.to_string());
                    self.names.len() - 1
                }
            };
            u32::try_from(index).ok()
        }
        fn name(&self, handle: u32) -> String {
            self.names[handle as usize].clone()
        }
    }

    impl StatSink for MapSink {
        fn counter(&mut self, stat: &Stat<'_>) -> Option<u32> {
            self.define(stat.encode_into(&mut String::new()))
        }
        fn gauge(&mut self, stat: &Stat<'_>) -> Option<u32> {
            self.define(stat.encode_into(&mut String::new()))
        }
        fn histogram(&mut self, stat: &Stat<'_>) -> Option<u32> {
            self.handle(stat.encode_into(&mut String::new()))
        }
        fn add(&mut self, counter: u32, delta: u64) {
            *self.stats.entry(self.name(counter)).or_default() += delta;
        }
        fn set(&mut self, gauge: u32, value: u64) {
            self.stats.insert(self.name(gauge), value);
        }
        fn observe(&mut self, histogram: u32, nanos: u64) {
            self.observed.push((self.name(histogram), nanos));
        }
    }

    #[test]
    fn an_observation_fills_cumulative_buckets_and_the_count() {
        let mut config = Config::parse(b"", |_| None).unwrap();
        let mut sink = MapSink::default();
        let mut recorder = Recorder::default();
        let series = Series::new(
            Metric::EnsureVersionSeconds,
            &["prompter-api", "dev", "openai"],
        );
        recorder.record(&config, Event::Observe(series, 300_000_000), &mut sink);
        recorder.record(&config, Event::Observe(series, 9_999_501), &mut sink);
        let prefix = "service=.=prompter-api;.;env=.=dev;.;provider=.=openai;.;";
        let bucket = |sink: &MapSink, le: &str| {
            sink.stats[&format!("{prefix}le=.={le};.;prompter_ensure_version_seconds_bucket")]
        };
        assert_eq!(bucket(&sink, "0.005"), 0);
        assert_eq!(bucket(&sink, "0.01"), 1);
        assert_eq!(bucket(&sink, "0.25"), 1);
        assert_eq!(bucket(&sink, "0.5"), 2);
        assert_eq!(bucket(&sink, "+Inf"), 2);
        assert_eq!(
            sink.stats[&format!("{prefix}prompter_ensure_version_seconds_count")],
            2
        );
        assert_eq!(
            sink.stats[&format!("{prefix}prompter_ensure_version_seconds_sum_microseconds")],
            310_000,
            "each observation rounded to the nearest microsecond"
        );
        assert_eq!(sink.stats.len(), 17);
        assert!(
            sink.observed.is_empty(),
            "no native histogram unless the host takes them"
        );

        config.native_histograms = true;
        let mut sink = MapSink::default();
        let mut recorder = Recorder::default();
        recorder.record(&config, Event::Observe(series, 300_000_000), &mut sink);
        recorder.record(&config, Event::Observe(series, 10_000_000), &mut sink);
        let native = format!("{prefix}prompter_ensure_version_seconds");
        assert_eq!(
            sink.observed,
            vec![(native.clone(), 300_000_000), (native, 10_000_000)]
        );
        assert_eq!(bucket(&sink, "0.5"), 2, "the buckets are kept too");
        assert!(
            !sink.stats.keys().any(|k| k.ends_with(SUM_MICROS_SUFFIX)),
            "the native histogram has the sum"
        );
    }

    #[test]
    fn counters_and_gauges_are_single_stats() {
        let config = Config::parse(b"", |_| None).unwrap();
        let mut sink = MapSink::default();
        let mut recorder = Recorder::default();
        let values = ["prompter-api", "dev"];
        let series = Series::new(Metric::RedisUp, &values);
        recorder.record(&config, Event::Set(series, 1), &mut sink);
        recorder.record(&config, Event::Set(series, 0), &mut sink);
        let series = Series::new(Metric::ResultsInsert, &values);
        recorder.record(&config, Event::Count(series), &mut sink);
        recorder.record(&config, Event::Count(series), &mut sink);
        assert_eq!(
            sink.stats["service=.=prompter-api;.;env=.=dev;.;prompter_redis_up"],
            0
        );
        assert_eq!(
            sink.stats["service=.=prompter-api;.;env=.=dev;.;prompter_prompt_results_insert_total"],
            2
        );
        assert_eq!(recorder.series(), 2);
    }

    /// A [`MapSink`] that refuses a definition when `refuse(name)` says so (as Envoy may),
    /// counting every definition asked for.
    struct RefusingSink<F> {
        inner: MapSink,
        refuse: F,
        definitions: usize,
    }

    impl<F: FnMut(&str) -> bool> RefusingSink<F> {
        fn new(refuse: F) -> Self {
            RefusingSink {
                inner: MapSink::default(),
                refuse,
                definitions: 0,
            }
        }

        fn define(
            &mut self,
            stat: &Stat<'_>,
            define: fn(&mut MapSink, &Stat<'_>) -> Option<u32>,
        ) -> Option<u32> {
            self.definitions += 1;
            if (self.refuse)(stat.encode_into(&mut String::new())) {
                return None;
            }
            define(&mut self.inner, stat)
        }
    }

    impl<F: FnMut(&str) -> bool> StatSink for RefusingSink<F> {
        fn counter(&mut self, stat: &Stat<'_>) -> Option<u32> {
            self.define(stat, MapSink::counter)
        }
        fn gauge(&mut self, stat: &Stat<'_>) -> Option<u32> {
            self.define(stat, MapSink::gauge)
        }
        fn histogram(&mut self, stat: &Stat<'_>) -> Option<u32> {
            self.define(stat, MapSink::histogram)
        }
        fn add(&mut self, counter: u32, delta: u64) {
            self.inner.add(counter, delta)
        }
        fn set(&mut self, gauge: u32, value: u64) {
            self.inner.set(gauge, value)
        }
        fn observe(&mut self, histogram: u32, nanos: u64) {
            self.inner.observe(histogram, nanos)
        }
    }

    #[test]
    fn each_series_is_resolved_once_and_a_refused_one_is_tried_again() {
        let config = Config::parse(b"", |_| None).unwrap();
        // Refuses the first definition it is asked for.
        let mut refused = false;
        let mut sink = RefusingSink::new(move |_: &str| !std::mem::replace(&mut refused, true));
        let mut recorder = Recorder::default();
        let series = Series::new(Metric::ResultsInsert, &["prompter-api", "dev"]);
        for _ in 0..3 {
            recorder.record(&config, Event::Count(series), &mut sink);
        }
        let name = "service=.=prompter-api;.;env=.=dev;.;prompter_prompt_results_insert_total";
        assert_eq!(sink.inner.stats[name], 2, "the refused event is dropped");
        assert_eq!(
            sink.definitions, 2,
            "defined again after the refusal, then cached"
        );
        // Label values that concatenate alike are other series.
        let other = Series::new(Metric::ResultsInsert, &["prompter-apid", "ev"]);
        recorder.record(&config, Event::Count(other), &mut sink);
        assert_eq!(sink.definitions, 3);
        assert_eq!(sink.inner.stats[name], 2);
    }

    #[test]
    fn a_histogram_refused_halfway_is_counted_once_resolved() {
        let config = Config::parse(b"", |_| None).unwrap();
        // Refuses the `_count` stat the first time: the buckets before it were defined.
        let mut refused = false;
        let mut sink = RefusingSink::new(move |name: &str| {
            name.ends_with(COUNT_SUFFIX) && !std::mem::replace(&mut refused, true)
        });
        let mut recorder = Recorder::default();
        let series = Series::new(
            Metric::EnsureVersionSeconds,
            &["prompter-api", "dev", "openai"],
        );
        for _ in 0..3 {
            recorder.record(&config, Event::Observe(series, 10_000_000), &mut sink);
        }
        let prefix = "service=.=prompter-api;.;env=.=dev;.;provider=.=openai;.;";
        let stats = &sink.inner.stats;
        assert_eq!(
            stats[&format!("{prefix}prompter_ensure_version_seconds_count")],
            2
        );
        assert_eq!(
            stats[&format!("{prefix}le=.=+Inf;.;prompter_ensure_version_seconds_bucket")],
            2,
            "the first observation is dropped, the next two counted once each"
        );
        assert_eq!(stats.len(), 17);
        assert_eq!(
            sink.inner.names.len(),
            17,
            "a stat defined twice has one handle"
        );
    }
}
