//! Histograms are cumulative, whatever is observed: bucket counts never decrease as `le`
//! grows, the `+Inf` bucket is `_count`, each bucket holds exactly the observations at or
//! under its bound, and `_sum` is the sum of the observed seconds. Checked on the exporter's
//! histograms (its API directly, and the filter's durations through the harness) and on the
//! Envoy view: the `_bucket{le}`/`_count` counters the filter emits for Envoy, which must
//! count the same as the exporter's histogram for the same durations.

use std::sync::Arc;

use prompter_filter::catalog::{label, Metric, BUCKET_SUFFIX, COUNT_SUFFIX, SUM_SUFFIX};
use prompter_filter::stat_name;
use prompter_host::clock::Clock;
use prompter_host::logs::Logs;
use prompter_host::metrics::{seconds_histograms, Kind, MetricStore};
use prompter_host::shared_data::SharedData;
use prompter_host::state::{PluginSetup, Shared};
use prompter_host::testing::{default_module, series, Harness, Request, Series};
use prompter_host::vm::FilterInstance;
use proptest::prelude::*;

use super::config;

/// One histogram series as exported: `(le, cumulative count)` in exposition order, `_count`
/// and `_sum` (absent in the Envoy view).
#[derive(Debug)]
struct Histogram {
    buckets: Vec<(f64, f64)>,
    count: f64,
    sum: Option<f64>,
}

fn le_of(key: &str) -> f64 {
    let start = key.find("le=\"").expect("a bucket has `le`") + 4;
    let end = start + key[start..].find('"').expect("closed");
    match &key[start..end] {
        "+Inf" => f64::INFINITY,
        text => text.parse().unwrap_or_else(|_| panic!("le {text:?}")),
    }
}

/// The series of histogram `name` whose labels include `labels`; `bucket`, `count` and
/// `sum` are the names of its parts as this exposition spells them.
fn histogram(series: &Series, parts: [&str; 3], labels: &[(&str, &str)]) -> Histogram {
    let [bucket, count, sum] = parts;
    let has_labels = |key: &str| {
        labels
            .iter()
            .all(|(k, v)| key.contains(&format!("{k}=\"{v}\"")))
    };
    let buckets: Vec<(f64, f64)> = series
        .named(bucket)
        .filter(|(k, _)| has_labels(k))
        .map(|(k, v)| (le_of(k), v))
        .collect();
    let mut sorted = buckets.clone();
    sorted.sort_by(|a, b| a.0.total_cmp(&b.0));
    Histogram {
        buckets: sorted,
        count: series.get(count, labels).unwrap_or(f64::NAN),
        sum: series.get(sum, labels),
    }
}

/// Every invariant, against the observations (in nanoseconds) and the configured bounds.
fn check(h: &Histogram, bounds: &[f64], observed: &[u64]) -> Result<(), TestCaseError> {
    let seconds: Vec<f64> = observed.iter().map(|n| *n as f64 / 1e9).collect();
    let les: Vec<f64> = h.buckets.iter().map(|(le, _)| *le).collect();
    let mut want_les = bounds.to_vec();
    want_les.push(f64::INFINITY);
    // The configured bounds, up to one unit in the last place: the configuration is read by
    // serde_json, whose default float parsing (no `float_roundtrip`) may land one ULP off
    // (`976.2697144692027` is read as `…028`); the buckets then use that bound throughout.
    let close = |a: f64, b: f64| a == b || (a - b).abs() <= 2.0 * f64::EPSILON * b.abs();
    prop_assert!(
        les.len() == want_les.len() && les.iter().zip(&want_les).all(|(a, b)| close(*a, *b)),
        "bounds {:?}, configured {:?}",
        les,
        want_les
    );
    for pair in h.buckets.windows(2) {
        prop_assert!(pair[0].1 <= pair[1].1, "not cumulative: {:?}", h.buckets);
    }
    for (le, count) in &h.buckets {
        let want = seconds.iter().filter(|s| **s <= *le).count() as f64;
        prop_assert_eq!(*count, want, "bucket le={} of {:?}", le, h.buckets);
    }
    let inf = h.buckets.last().map(|(_, c)| *c);
    prop_assert_eq!(inf, Some(h.count), "+Inf bucket and _count");
    prop_assert_eq!(h.count, observed.len() as f64, "_count");
    if let Some(sum) = h.sum {
        let want: f64 = seconds.iter().sum();
        let tolerance = 1e-9 * want.abs().max(1.0);
        prop_assert!((sum - want).abs() <= tolerance, "_sum {} != {}", sum, want);
    }
    Ok(())
}

/// Strictly increasing bounds in seconds: the default ones, or any the filter takes (whole
/// nanoseconds, from 1 µs to 1000 s).
fn bounds() -> impl Strategy<Value = Vec<f64>> {
    prop_oneof![
        Just(prompter_filter::config::Buckets::default().seconds()),
        prop::collection::vec(1_000..1_000_000_000_000u64, 1..12).prop_map(|mut nanos| {
            nanos.sort_unstable();
            nanos.dedup();
            nanos.into_iter().map(|n| n as f64 / 1e9).collect()
        }),
    ]
}

/// A duration in nanoseconds: anything below `max`, or a bound give or take a nanosecond
/// (where a float comparison could go either way).
fn duration(bounds: &[f64], max: u64) -> impl Strategy<Value = u64> {
    let at_bounds: Vec<u64> = bounds.iter().map(|b| (b * 1e9).round() as u64).collect();
    prop_oneof![
        2 => 0..max,
        2 => (prop::sample::select(at_bounds), -1i64..=1)
            .prop_map(|(at, d)| at.saturating_add_signed(d)),
        1 => Just(0u64),
    ]
}

fn bounds_and_durations(max: u64, n: usize) -> impl Strategy<Value = (Vec<f64>, Vec<(u8, u64)>)> {
    bounds().prop_flat_map(move |bounds| {
        let durations = prop::collection::vec((0..3u8, duration(&bounds, max)), 0..n);
        (Just(bounds), durations)
    })
}

const SERIES: [&str; 3] = ["/a", "/b", "/c"];

fn parts(metric: Metric) -> [String; 3] {
    [BUCKET_SUFFIX, COUNT_SUFFIX, SUM_SUFFIX].map(|s| format!("{}{s}", metric.name()))
}

proptest! {
    #![proptest_config(config(128))]

    /// The exporter's histograms, fed through its API with any nanosecond values (up to
    /// `u64::MAX`, 584 years), for three series of one family.
    #[test]
    fn exporter_histograms_are_cumulative_and_sum_the_observations(
        (bounds, observations) in bounds_and_durations(u64::MAX, 40),
    ) {
        let metric = Metric::RequestSeconds;
        let store = MetricStore::new(
            seconds_histograms(|_| bounds.clone()),
            Arc::new(Logs::new(None)),
        );
        let labels = |route| [(label::SERVICE, "s"), (label::ENV, "e"), (label::METHOD, "GET"), (label::ROUTE, route)];
        let ids: Vec<u32> = SERIES
            .iter()
            .map(|route| store.define(Kind::Histogram, &stat_name::encode(metric.name(), &labels(route))))
            .collect();
        for (which, nanos) in &observations {
            prop_assert!(store.record(ids[usize::from(*which)], *nanos).is_ok());
        }
        let exported = series::parse(&store.encode());
        let parts = parts(metric);
        for (i, route) in SERIES.iter().enumerate() {
            let observed: Vec<u64> = observations
                .iter()
                .filter(|(w, _)| usize::from(*w) == i)
                .map(|(_, n)| *n)
                .collect();
            let h = histogram(&exported, parts.each_ref().map(String::as_str), &labels(route));
            prop_assert!(h.sum.is_some(), "the exporter has _sum");
            check(&h, &bounds, &observed)?;
        }
    }
}

/// Paths of three routes the default configuration labels differently.
const PATHS: [(&str, &str); 3] = [
    ("/api/prompt-templates", "/api/prompt-templates"),
    ("/healthz", "/healthz"),
    ("/somewhere/else", "unmatched"),
];

fn plugin_config(bounds: &[f64]) -> String {
    serde_json::json!({
        "health": {"interval_seconds": 0},
        "openapi": {"enabled": false},
        "buckets": {"request_seconds": bounds},
    })
    .to_string()
}

/// The filter as Envoy runs it: no VM configuration (no native histograms, counters batched
/// until a tick), its counters exported as they are (no histogram takes their place).
fn envoy_view(plugin_config: &str, durations: &[(u8, u64)]) -> Series {
    let logs = Arc::new(Logs::new(None));
    let clock = Clock::manual(1_700_000_000_000_000_000);
    let shared = Shared {
        metrics: Arc::new(MetricStore::new(Default::default(), Arc::clone(&logs))),
        shared_data: Arc::new(SharedData::default()),
        logs,
        clock: clock.clone(),
    };
    let setup = PluginSetup {
        plugin_config: plugin_config.as_bytes().to_vec(),
        vm_config: Vec::new(),
        ..PluginSetup::default()
    };
    let mut vm = FilterInstance::new(&default_module(), shared.clone(), setup).expect("starts");
    let header = |k: &str, v: &str| (k.as_bytes().to_vec(), v.as_bytes().to_vec());
    for (which, nanos) in durations {
        let id = vm.create_stream().expect("stream");
        let path = PATHS[usize::from(*which)].0;
        let request = vec![
            header(":method", "GET"),
            header(":path", path),
            header(":authority", "a"),
        ];
        vm.on_request_headers(id, request, true)
            .expect("request headers");
        clock.advance_nanos(*nanos);
        vm.on_response_headers(id, vec![header(":status", "200")], true)
            .expect("response headers");
        vm.finish_stream(id).expect("log");
    }
    // The batched counters reach the host on the next tick.
    clock.advance_nanos(2_000_000_000);
    vm.tick().expect("tick");
    series::parse(&shared.metrics.encode())
}

proptest! {
    #![proptest_config(config(48))]

    /// The filter's durations (the clock moved by hand between request and response), in
    /// the host exporter's histogram and in the counters Envoy would export: both satisfy
    /// every invariant, so they count alike, with any configured bounds.
    #[test]
    fn the_filters_histograms_are_cumulative_in_the_exporter_and_in_envoys_view(
        (bounds, durations) in bounds_and_durations(100_000_000_000_000, 16),
    ) {
        let config = plugin_config(&bounds);
        let harness = Harness::with_config(&config);
        for (which, nanos) in &durations {
            let mut request = Request::get(PATHS[usize::from(*which)].0);
            request.duration_nanos = *nanos;
            harness.exchange(&request).expect("exchange");
        }
        let exporter = harness.series();
        let envoy = envoy_view(&config, &durations);
        let metric = Metric::RequestSeconds;
        // Envoy's view: plain counters, which the exposition spells with `_total`.
        let envoy_parts = [BUCKET_SUFFIX, COUNT_SUFFIX, SUM_SUFFIX]
            .map(|s| format!("{}{s}_total", metric.name()));
        for (i, (_, route)) in PATHS.iter().enumerate() {
            let observed: Vec<u64> = durations
                .iter()
                .filter(|(w, _)| usize::from(*w) == i)
                .map(|(_, n)| *n)
                .collect();
            let labels = [(label::SERVICE, "prompter-api"), (label::ENV, "dev"), (label::METHOD, "GET"), (label::ROUTE, *route)];
            if observed.is_empty() {
                prop_assert!(exporter.get(&parts(metric)[1], &labels).is_none());
                continue;
            }
            let h = histogram(&exporter, parts(metric).each_ref().map(String::as_str), &labels);
            prop_assert!(h.sum.is_some(), "the exporter has _sum");
            check(&h, &bounds, &observed)?;
            let e = histogram(&envoy, envoy_parts.each_ref().map(String::as_str), &labels);
            prop_assert!(e.sum.is_none(), "Envoy's view has no _sum");
            check(&e, &bounds, &observed)?;
        }
    }
}
