//! Scrapes Envoy's `/stats/prometheus`, keeping the series of our catalog.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use prompter_filter::catalog::{
    Metric, MetricKind, BUCKET_SUFFIX, COUNT_SUFFIX, SUM_MICROS_SUFFIX, SUM_SUFFIX,
};
pub use prompter_host::testing::series::{key, Series};

use crate::client;

/// The series names our catalog can produce in Envoy.
pub fn catalog_series_names() -> Vec<String> {
    let mut names = Vec::new();
    for metric in Metric::ALL {
        let name = metric.name();
        match metric.kind() {
            MetricKind::Histogram => {
                names.push(format!("{name}{BUCKET_SUFFIX}"));
                names.push(format!("{name}{COUNT_SUFFIX}"));
                names.push(format!("{name}{SUM_MICROS_SUFFIX}"));
            }
            _ => names.push(name.to_string()),
        }
    }
    names
}

/// Parses Prometheus text, keeping only our catalog's series.
pub fn parse(text: &str) -> Series {
    let names = catalog_series_names();
    prompter_host::testing::series::parse_filtered(text, |name| names.iter().any(|n| n == name))
}

/// Envoy's admin `/stats/prometheus`, our series only.
pub fn envoy(admin: SocketAddr) -> Series {
    let response = client::get(admin, "/stats/prometheus");
    assert_eq!(response.status, 200, "{}", response.text());
    parse(&response.text())
}

/// Scrapes until `done` holds (stats reach the admin endpoint asynchronously), or panics
/// with the last scrape after `timeout`.
pub fn envoy_until(admin: SocketAddr, timeout: Duration, done: impl Fn(&Series) -> bool) -> Series {
    let start = Instant::now();
    loop {
        let series = envoy(admin);
        if done(&series) {
            return series;
        }
        if start.elapsed() > timeout {
            panic!(
                "scrape never satisfied the condition; last scrape, buckets left out:\n{}",
                series.without_buckets().diff(&Series::default())
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Scrapes Envoy until our series other than histogram buckets equal `expected`; panics
/// with the difference otherwise.
pub fn envoy_until_equal(admin: SocketAddr, expected: &Series) -> Series {
    until_equal("Envoy's", expected, || envoy(admin))
}

/// The same for the host exporter (its `_sum` series left out of the comparison, as
/// Envoy's `_sum_microseconds`: they depend on timing).
pub fn host_until_equal(metrics: SocketAddr, expected: &Series) -> Series {
    until_equal("the host's", expected, || host(metrics))
}

fn until_equal(whose: &str, expected: &Series, scrape: impl Fn() -> Series) -> Series {
    let start = Instant::now();
    loop {
        let series = scrape();
        let diff = without_sums(&series).without_buckets().diff(expected);
        if diff.is_empty() {
            return series;
        }
        if start.elapsed() > Duration::from_secs(10) {
            panic!("{whose} series differ from the in-app module's:\n{diff}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The host exporter's `/metrics`: our catalog's series, histograms with `_sum`.
pub fn host(metrics: SocketAddr) -> Series {
    let response = client::get(metrics, prompter_host::exporter::METRICS_PATH);
    assert_eq!(response.status, 200, "{}", response.text());
    let mut names = catalog_series_names();
    for metric in Metric::ALL
        .iter()
        .filter(|m| m.kind() == MetricKind::Histogram)
    {
        names.push(format!("{}{SUM_SUFFIX}", metric.name()));
    }
    prompter_host::testing::series::parse_filtered(&response.text(), |name| {
        names.iter().any(|n| n == name)
    })
}

/// Everything but histogram sums: the host's `_sum`, Envoy's `_sum_microseconds` (their
/// values depend on timing; [`crate::scenario::assert_histograms_consistent`] checks them
/// against the buckets).
pub fn without_sums(series: &Series) -> Series {
    let suffixes = [SUM_SUFFIX, SUM_MICROS_SUFFIX].map(|s| format!("{s}{{"));
    Series(
        series
            .0
            .iter()
            .filter(|(k, _)| !suffixes.iter().any(|s| k.contains(s)))
            .map(|(k, v)| (k.clone(), *v))
            .collect(),
    )
}
