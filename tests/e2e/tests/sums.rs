//! Histogram sums behind Envoy: the filter keeps each histogram's sum as a counter of whole
//! microseconds, and `dashboards/recording.yml` records `<histogram>_sum` in seconds from it,
//! so real Prometheus scraping real Envoy has the `_sum` series the in-app module exported,
//! with its labels, and an average panel reads the same as on the host.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use prompter_e2e::client::{self, Framing};
use prompter_e2e::envoy::{Envoy, EnvoyOptions};
use prompter_e2e::prometheus::{Prometheus, Sample, Target};
use prompter_e2e::scenario::{CREATE, ENSURE};
use prompter_e2e::scrape;
use prompter_filter::catalog::{label, Metric, COUNT_SUFFIX, SUM_MICROS_SUFFIX, SUM_SUFFIX};

const PROBES: usize = 4;
const DELAY_MS: u64 = 40;

/// The labels of a Prometheus sample but the target's own (`job`, `instance`).
fn in_app_labels(sample: &Sample) -> BTreeMap<&str, &str> {
    sample
        .labels
        .iter()
        .filter(|(k, _)| !matches!(k.as_str(), "job" | "instance" | "__name__"))
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect()
}

/// Queries until `expr` returns exactly one sample equal to `want` (the scrape and the rule
/// evaluation run every second), or panics with the last answer.
fn settled(prometheus: &Prometheus, expr: &str, want: f64) -> Sample {
    let start = Instant::now();
    loop {
        let samples = prometheus.query(expr);
        if let Ok([sample]) = samples.as_deref() {
            if (sample.value - want).abs() < 1e-9 {
                return sample.clone();
            }
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "{expr}: {samples:?}, expected one sample of {want}\n{}",
            prometheus.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn prometheus_with_the_projects_rules_has_both_sums_in_seconds_behind_envoy() {
    let sample = prompter_sample_api::spawn("127.0.0.1:0".parse().unwrap()).unwrap();
    let envoy = Envoy::start(EnvoyOptions::new(
        sample.addr,
        r#"{"health": {"interval_seconds": 0}}"#,
    ));

    let created = client::post(
        envoy.listener,
        CREATE,
        r#"{"name":"greet","body":"Hello {who}"}"#,
    );
    assert_eq!(created.status, 201, "{}", created.text());
    // Probes the sample API holds for DELAY_MS each: Envoy's durations lie between that and
    // what the client measured around each exchange.
    let path = format!("/api/prompt-templates/t-1/ensure-version?delay_ms={DELAY_MS}");
    let mut client_seconds = 0.0;
    for _ in 0..PROBES {
        let started = Instant::now();
        let response = client::send(
            envoy.listener,
            "POST",
            &path,
            Some(br#"{"provider":"openai","model_id":"gpt-4o"}"#),
            Framing::Whole,
        );
        client_seconds += started.elapsed().as_secs_f64();
        assert_eq!(response.status, 200, "{}", response.text());
    }

    let (service, env) = ("prompter-api", "dev");
    let probe_labels = [
        (label::SERVICE, service),
        (label::ENV, env),
        (label::PROVIDER, "openai"),
    ];
    let request_labels = [
        (label::SERVICE, service),
        (label::ENV, env),
        (label::METHOD, "POST"),
        (label::ROUTE, ENSURE),
    ];
    let counted = |s: &scrape::Series, metric: Metric, labels: &[(&str, &str)]| {
        s.get(&format!("{}{COUNT_SUFFIX}", metric.name()), labels) == Some(PROBES as f64)
    };
    let scraped = scrape::envoy_until(envoy.admin, Duration::from_secs(10), |s| {
        counted(s, Metric::EnsureVersionSeconds, &probe_labels)
            && counted(s, Metric::RequestSeconds, &request_labels)
    });

    let prometheus = Prometheus::start(&prompter_e2e::prometheus::static_config(&[Target::new(
        "prompter-envoy",
        envoy.admin,
    )]));
    for (metric, labels) in [
        (Metric::EnsureVersionSeconds, &probe_labels[..]),
        (Metric::RequestSeconds, &request_labels[..]),
    ] {
        let micros = scraped
            .get(&format!("{}{SUM_MICROS_SUFFIX}", metric.name()), labels)
            .expect("Envoy exports the sum in microseconds");
        let sum_name = format!("{}{SUM_SUFFIX}", metric.name());
        let selector = labels
            .iter()
            .map(|(k, v)| format!("{k}=\"{v}\""))
            .collect::<Vec<_>>()
            .join(",");
        let recorded = settled(
            &prometheus,
            &format!("{sum_name}{{{selector}}}"),
            micros / 1e6,
        );

        assert_eq!(
            in_app_labels(&recorded),
            labels.iter().copied().collect::<BTreeMap<_, _>>(),
            "{sum_name} has the in-app labels, no others"
        );
        // In seconds: at least the time the API held each probe, at most what the client saw
        // (plus half a microsecond of rounding per observation).
        let held = PROBES as f64 * DELAY_MS as f64 / 1e3;
        assert!(
            recorded.value >= held && recorded.value <= client_seconds + PROBES as f64 * 0.5e-6,
            "{sum_name} = {} s; the API held the probes {held} s, the client waited {client_seconds} s",
            recorded.value
        );
        // The average a dashboard panel computes: the recorded sum over the scraped count.
        let average = prometheus
            .query(&format!(
                "{sum_name}{{{selector}}} / {}{COUNT_SUFFIX}{{{selector}}}",
                metric.name()
            ))
            .unwrap();
        assert_eq!(average.len(), 1, "{average:?}");
        assert!(
            average[0].value >= DELAY_MS as f64 / 1e3,
            "average {} s",
            average[0].value
        );
    }
}
