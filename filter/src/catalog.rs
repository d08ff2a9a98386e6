//! The metric catalog: every metric name, type, help text and label key, spelled once.
//!
//! The filter, the Envoy stats tags, the host's exporter and the dashboard tests all read
//! this table; nothing else in the project may spell a metric name or a label key.

/// Label keys. `LE` is the bucket bound of a histogram series.
pub mod label {
    pub const SERVICE: &str = "service";
    pub const ENV: &str = "env";
    pub const METHOD: &str = "method";
    pub const ROUTE: &str = "route";
    pub const STATUS: &str = "status";
    pub const PROVIDER: &str = "provider";
    pub const MODEL: &str = "model";
    pub const TABLE: &str = "table";
    pub const ENDPOINT: &str = "endpoint";
    pub const LE: &str = "le";

    /// Every label key a series can carry, the order in which they are encoded in a stat name.
    pub const ALL: [&str; 10] = [
        SERVICE, ENV, METHOD, ROUTE, STATUS, PROVIDER, MODEL, TABLE, ENDPOINT, LE,
    ];
}

/// Suffixes of the series a histogram is exported as (Prometheus conventions).
/// True for a Prometheus metric name (`[a-zA-Z_:][a-zA-Z0-9_:]*`), or with `colon` false a
/// label name (`[a-zA-Z_][a-zA-Z0-9_]*`).
pub fn is_prometheus_name(name: &str, colon: bool) -> bool {
    let mut bytes = name.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_alphabetic() || b == b'_' || (colon && b == b':'))
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_' || (colon && b == b':'))
}

pub const BUCKET_SUFFIX: &str = "_bucket";
pub const COUNT_SUFFIX: &str = "_count";
pub const SUM_SUFFIX: &str = "_sum";
/// Through Envoy a histogram's sum is a counter of whole microseconds, `<name>_sum_microseconds`
/// (proxy-wasm counters are integers, and Envoy's own histograms print their buckets in the
/// recorded unit). `dashboards/recording.yml` records `<name>_sum` in seconds from it, so an
/// average, `rate(x_sum[5m]) / rate(x_count[5m])`, reads the same behind Envoy and the host.
pub const SUM_MICROS_SUFFIX: &str = "_sum_microseconds";

/// A duration in nanoseconds as the whole microseconds the `_sum_microseconds` counters add:
/// rounded to the nearest, so the sum is within half a microsecond per observation.
pub fn nanos_to_micros(nanos: u64) -> u64 {
    nanos / 1_000 + u64::from(nanos % 1_000 >= 500)
}

/// Not a dashboard metric: hooks of the native Envoy module (`filter/src/dynamic_module/`)
/// that panicked and were let through untouched. The Wasm build's counterpart is the host's
/// `prompter_host_filter_failures_total` (Envoy counts Wasm failures itself, as
/// `wasm.envoy.wasm.runtime.v8.…` stats).
pub const FILTER_FAILURES: &str = "prompter_filter_failures_total";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MetricKind {
    Counter,
    Gauge,
    /// Observations in seconds, with bucket bounds from the configuration.
    Histogram,
}

impl MetricKind {
    /// The `# TYPE` word of the Prometheus text format.
    pub fn prometheus_type(self) -> &'static str {
        match self {
            MetricKind::Counter => "counter",
            MetricKind::Gauge => "gauge",
            MetricKind::Histogram => "histogram",
        }
    }
}

/// The metrics of the Prompter dashboard, as the in-app module defined them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Metric {
    RequestsTotal,
    RequestSeconds,
    ProbeAttempts,
    ProbeFailures,
    EnsureVersionSeconds,
    ResultsInsert,
    FingerprintPresent,
    RedisUp,
    UniqueViolations,
    RateLimitHits,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetricDef {
    pub name: &'static str,
    pub kind: MetricKind,
    pub help: &'static str,
    /// Label keys in the order the filter supplies values (service and env first).
    pub labels: &'static [&'static str],
}

use label::*;

impl Metric {
    pub const ALL: [Metric; 10] = [
        Metric::RequestsTotal,
        Metric::RequestSeconds,
        Metric::ProbeAttempts,
        Metric::ProbeFailures,
        Metric::EnsureVersionSeconds,
        Metric::ResultsInsert,
        Metric::FingerprintPresent,
        Metric::RedisUp,
        Metric::UniqueViolations,
        Metric::RateLimitHits,
    ];

    pub const fn def(self) -> &'static MetricDef {
        match self {
            Metric::RequestsTotal => &MetricDef {
                name: "starlette_requests_total",
                kind: MetricKind::Counter,
                help: "Total HTTP requests",
                labels: &[SERVICE, ENV, METHOD, ROUTE, STATUS],
            },
            Metric::RequestSeconds => &MetricDef {
                name: "starlette_requests_processing_seconds",
                kind: MetricKind::Histogram,
                help: "HTTP request processing time in seconds",
                labels: &[SERVICE, ENV, METHOD, ROUTE],
            },
            Metric::ProbeAttempts => &MetricDef {
                name: "prompter_probe_attempts_total",
                kind: MetricKind::Counter,
                help: "Provider probe attempts",
                labels: &[SERVICE, ENV, PROVIDER, MODEL],
            },
            Metric::ProbeFailures => &MetricDef {
                name: "prompter_probe_failures_total",
                kind: MetricKind::Counter,
                help: "Provider probe failures",
                labels: &[SERVICE, ENV, PROVIDER, MODEL],
            },
            Metric::EnsureVersionSeconds => &MetricDef {
                name: "prompter_ensure_version_seconds",
                kind: MetricKind::Histogram,
                help: "Ensure-version latency in seconds",
                labels: &[SERVICE, ENV, PROVIDER],
            },
            Metric::ResultsInsert => &MetricDef {
                name: "prompter_prompt_results_insert_total",
                kind: MetricKind::Counter,
                help: "Prompt results inserted",
                labels: &[SERVICE, ENV],
            },
            Metric::FingerprintPresent => &MetricDef {
                name: "prompter_openai_fingerprint_present_total",
                kind: MetricKind::Counter,
                help: "Results with an OpenAI system_fingerprint",
                labels: &[SERVICE, ENV],
            },
            Metric::RedisUp => &MetricDef {
                name: "prompter_redis_up",
                kind: MetricKind::Gauge,
                help: "Redis availability (1 up, 0 down)",
                labels: &[SERVICE, ENV],
            },
            Metric::UniqueViolations => &MetricDef {
                name: "prompter_db_unique_violation_total",
                kind: MetricKind::Counter,
                help: "Database unique constraint violations",
                labels: &[SERVICE, ENV, TABLE],
            },
            Metric::RateLimitHits => &MetricDef {
                name: "prompter_rate_limit_hit_total",
                kind: MetricKind::Counter,
                help: "Rate limit violations",
                labels: &[SERVICE, ENV, ENDPOINT],
            },
        }
    }

    pub fn name(self) -> &'static str {
        self.def().name
    }

    pub fn kind(self) -> MetricKind {
        self.def().kind
    }
}

const MS: u64 = 1_000_000;

/// The Python client's default histogram buckets (0.005 s to 10 s), in nanoseconds (`+Inf`
/// is implied).
pub const DEFAULT_BUCKETS: [u64; 14] = [
    5 * MS,
    10 * MS,
    25 * MS,
    50 * MS,
    75 * MS,
    100 * MS,
    250 * MS,
    500 * MS,
    750 * MS,
    1_000 * MS,
    2_500 * MS,
    5_000 * MS,
    7_500 * MS,
    10_000 * MS,
];

/// The `le` value of the last bucket.
pub const INF_BOUND: &str = "+Inf";

/// Formats a bucket bound of `nanos` nanoseconds in seconds the way the Python client does
/// (`1.0`, `0.005`, `1e-05`: Python's `repr` of the float), so that `le` label values match
/// series the in-app module would have written. Exact, from the integer: no float printing
/// in the module. Bounds up to 10^15 ns have at most 15 significant digits, so the exact
/// decimal is also the shortest one that reads back as the same float, which `repr` prints.
pub fn format_bound(nanos: u64) -> String {
    const NANOS_PER_SECOND: u64 = 1_000_000_000;
    if nanos >= 100_000 {
        // 1e-4 s and above: fixed notation, with at least one decimal.
        let fraction = format!("{:09}", nanos % NANOS_PER_SECOND);
        let fraction = fraction.trim_end_matches('0');
        let fraction = if fraction.is_empty() { "0" } else { fraction };
        format!("{}.{fraction}", nanos / NANOS_PER_SECOND)
    } else {
        // Below 1e-4 s `repr` switches to an exponent of at least two digits: `2.5e-05`.
        let digits = nanos.to_string();
        // `get`, not `split_at`: see `routes::without_query`.
        let (first, rest) = (
            digits.get(..1).unwrap_or("0"),
            digits.get(1..).unwrap_or(""),
        );
        let rest = rest.trim_end_matches('0');
        let dot = if rest.is_empty() { "" } else { "." };
        format!("{first}{dot}{rest}e-{:02}", 9 - (digits.len() - 1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn names_are_unique_and_follow_prometheus_conventions() {
        let mut seen = HashSet::new();
        for metric in Metric::ALL {
            let def = metric.def();
            assert!(seen.insert(def.name), "{} twice", def.name);
            assert!(def
                .name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b == b'_'));
            match def.kind {
                MetricKind::Counter => assert!(def.name.ends_with("_total"), "{}", def.name),
                MetricKind::Histogram => assert!(def.name.ends_with("_seconds"), "{}", def.name),
                MetricKind::Gauge => {}
            }
            assert_eq!(&def.labels[..2], &[SERVICE, ENV], "{}", def.name);
            assert!(!def.labels.contains(&LE));
            assert!(def.labels.iter().all(|l| label::ALL.contains(l)));
        }
    }

    #[test]
    fn sums_round_to_the_nearest_microsecond() {
        let cases = [
            (0, 0),
            (499, 0),
            (500, 1),
            (1_000, 1),
            (1_499, 1),
            (1_500, 2),
        ];
        for (nanos, micros) in cases {
            assert_eq!(nanos_to_micros(nanos), micros, "{nanos} ns");
        }
        assert_eq!(nanos_to_micros(u64::MAX), u64::MAX / 1_000 + 1);
    }

    #[test]
    fn bounds_print_like_the_python_client() {
        let printed: Vec<String> = DEFAULT_BUCKETS.iter().map(|b| format_bound(*b)).collect();
        assert_eq!(
            printed.join(","),
            "0.005,0.01,0.025,0.05,0.075,0.1,0.25,0.5,0.75,1.0,2.5,5.0,7.5,10.0"
        );
        // Python: repr(1e-05), repr(2.5e-05), repr(1e-09), repr(0.0001), repr(100000.0)
        let cases = [
            (10_000, "1e-05"),
            (25_000, "2.5e-05"),
            (1, "1e-09"),
            (99_999, "9.9999e-05"),
            (100_000, "0.0001"),
            (100_000 * 1_000_000_000, "100000.0"),
            (123_456_789_012_345, "123456.789012345"),
        ];
        for (nanos, python) in cases {
            assert_eq!(format_bound(nanos), python);
        }
    }
}
