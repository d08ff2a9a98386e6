//! Metric events and how they become stat-name updates.
//!
//! An [`Event`] names a catalog metric and its label values. [`record`] turns it into updates
//! of tag-encoded stats: a histogram observation becomes cumulative `_bucket{le}` counters and
//! a `_count` counter, because a proxy-wasm histogram records integers and Envoy would export
//! its buckets in that unit, never in seconds.

use crate::catalog::{label, Metric, MetricKind, BUCKET_SUFFIX, COUNT_SUFFIX};
use crate::config::{Buckets, Config};
use crate::stat_name;

/// Label values of one series, in the order of the metric's catalog label keys.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Series<'a> {
    pub metric: Metric,
    pub values: &'a [&'a str],
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Event<'a> {
    /// Add one to a counter.
    Count(Series<'a>),
    /// Observe a duration, in nanoseconds, in a histogram (exported in seconds).
    Observe(Series<'a>, u64),
    /// Set a gauge.
    Set(Series<'a>, u64),
}

/// Where stat updates go: Envoy's stats through proxy-wasm, or a test's map.
pub trait StatSink {
    /// Adds `delta` to the counter `name`, defining it first if needed (a `delta` of 0 only
    /// defines it, so that a histogram's empty buckets are exported as 0 like the in-app
    /// module does).
    fn add(&mut self, name: &str, delta: u64);
    /// Sets the gauge `name`.
    fn set(&mut self, name: &str, value: u64);
    /// Records one observation, in nanoseconds, in the histogram `name` (the catalog name,
    /// without suffix). Only for hosts that said they export real histograms in seconds
    /// (`_sum` included); see [`crate::config::VmOptions`].
    fn observe(&mut self, name: &str, nanos: u64);

    /// One observation of a histogram kept as counters: +1 on the bucket counters from
    /// `first` on and on the `_count` counter (all of them defined). `series` identifies the
    /// histogram series (its encoded name without `le`); `name(i, out)` writes the stat name
    /// of bucket `i`, or of `_count` for `i == buckets`. A sink that caches per `series` can
    /// skip building the names on every observation.
    fn add_buckets(
        &mut self,
        series: &str,
        buckets: usize,
        first: usize,
        name: &mut dyn FnMut(usize, &mut String),
    ) {
        let _ = series;
        let mut scratch = String::new();
        for i in 0..=buckets {
            scratch.clear();
            name(i, &mut scratch);
            self.add(&scratch, u64::from(i >= first));
        }
    }
}

/// Applies one event to `sink`. `scratch` is reused between calls to build stat names.
pub fn record(config: &Config, event: Event<'_>, scratch: &mut String, sink: &mut impl StatSink) {
    let (series, labels) = match event {
        Event::Count(s) | Event::Observe(s, _) | Event::Set(s, _) => (s, s.metric.def().labels),
    };
    debug_assert_eq!(labels.len(), series.values.len(), "{:?}", series.metric);
    let mut pairs: [(&str, &str); 6] = [("", ""); 6];
    let n = labels.len().min(series.values.len()).min(pairs.len() - 1);
    for i in 0..n {
        pairs[i] = (labels[i], series.values[i]);
    }
    let name = series.metric.name();
    match event {
        Event::Count(_) => {
            encode(scratch, name, "", &pairs[..n]);
            sink.add(scratch, 1);
        }
        Event::Set(_, value) => {
            encode(scratch, name, "", &pairs[..n]);
            sink.set(scratch, value);
        }
        Event::Observe(_, nanos) => {
            debug_assert_eq!(series.metric.kind(), MetricKind::Histogram);
            let buckets = buckets_of(config, series.metric);
            let first = buckets.first_bucket(nanos as f64 / 1e9);
            encode(scratch, name, "", &pairs[..n]);
            let count = buckets.labels.len();
            sink.add_buckets(scratch, count, first, &mut |i, out| {
                if let Some(le) = buckets.labels.get(i) {
                    let mut with_le = pairs;
                    with_le[n] = (label::LE, le);
                    stat_name::encode_into(out, name, &with_le[..=n]);
                    out.push_str(BUCKET_SUFFIX);
                } else {
                    stat_name::encode_into(out, name, &pairs[..n]);
                    out.push_str(COUNT_SUFFIX);
                }
            });
            if config.native_histograms {
                sink.observe(scratch, nanos);
            }
        }
    }
}

fn buckets_of(config: &Config, metric: Metric) -> &Buckets {
    match metric {
        Metric::EnsureVersionSeconds => &config.ensure_version_buckets,
        _ => &config.request_buckets,
    }
}

fn encode(out: &mut String, name: &str, suffix: &str, labels: &[(&str, &str)]) {
    out.clear();
    stat_name::encode_into(out, name, labels);
    out.push_str(suffix);
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::collections::BTreeMap;

    /// A sink that keeps every stat in a map, as Envoy's stat store would.
    #[derive(Debug, Default)]
    pub(crate) struct MapSink(pub BTreeMap<String, u64>, pub Vec<(String, u64)>);

    impl StatSink for MapSink {
        fn add(&mut self, name: &str, delta: u64) {
            *self.0.entry(name.to_string()).or_default() += delta;
        }
        fn set(&mut self, name: &str, value: u64) {
            self.0.insert(name.to_string(), value);
        }
        fn observe(&mut self, name: &str, nanos: u64) {
            self.1.push((name.to_string(), nanos));
        }
    }

    #[test]
    fn an_observation_fills_cumulative_buckets_and_the_count() {
        let mut config = Config::parse(b"", |_| None).unwrap();
        let mut sink = MapSink::default();
        let mut scratch = String::new();
        let series = Series {
            metric: Metric::EnsureVersionSeconds,
            values: &["prompter-api", "dev", "openai"],
        };
        record(
            &config,
            Event::Observe(series, 300_000_000),
            &mut scratch,
            &mut sink,
        );
        record(
            &config,
            Event::Observe(series, 10_000_000),
            &mut scratch,
            &mut sink,
        );
        let prefix = "service=.=prompter-api;.;env=.=dev;.;provider=.=openai;.;";
        let bucket = |le: &str| {
            sink.0[&format!("{prefix}le=.={le};.;prompter_ensure_version_seconds_bucket")]
        };
        assert_eq!(bucket("0.005"), 0);
        assert_eq!(bucket("0.01"), 1);
        assert_eq!(bucket("0.25"), 1);
        assert_eq!(bucket("0.5"), 2);
        assert_eq!(bucket("+Inf"), 2);
        assert_eq!(
            sink.0[&format!("{prefix}prompter_ensure_version_seconds_count")],
            2
        );
        assert_eq!(sink.0.len(), 16);
        assert!(
            sink.1.is_empty(),
            "no native histogram unless the host takes them"
        );
        config.native_histograms = true;
        sink.0.clear();
        record(
            &config,
            Event::Observe(series, 300_000_000),
            &mut scratch,
            &mut sink,
        );
        record(
            &config,
            Event::Observe(series, 10_000_000),
            &mut scratch,
            &mut sink,
        );
        let native = format!("{prefix}prompter_ensure_version_seconds");
        assert_eq!(
            sink.1,
            vec![(native.clone(), 300_000_000), (native, 10_000_000)]
        );
    }

    #[test]
    fn counters_and_gauges_are_single_stats() {
        let config = Config::parse(b"", |_| None).unwrap();
        let mut sink = MapSink::default();
        let mut scratch = String::new();
        let values = ["prompter-api", "dev"];
        let series = Series {
            metric: Metric::RedisUp,
            values: &values,
        };
        record(&config, Event::Set(series, 1), &mut scratch, &mut sink);
        record(&config, Event::Set(series, 0), &mut scratch, &mut sink);
        let series = Series {
            metric: Metric::ResultsInsert,
            values: &values,
        };
        record(&config, Event::Count(series), &mut scratch, &mut sink);
        record(&config, Event::Count(series), &mut scratch, &mut sink);
        assert_eq!(
            sink.0["service=.=prompter-api;.;env=.=dev;.;prompter_redis_up"],
            0
        );
        assert_eq!(
            sink.0["service=.=prompter-api;.;env=.=dev;.;prompter_prompt_results_insert_total"],
            2
        );
    }
}
