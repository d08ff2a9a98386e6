//! The filter's behaviour, driven deterministically through the host: every metric of the
//! catalog, as the in-app module would report it (counters, gauge, full histograms).

use prompter_filter::catalog::{label, Metric, BUCKET_SUFFIX, COUNT_SUFFIX, SUM_SUFFIX};
use prompter_host::testing::{Harness, Request};

const NO_POLLING: &str = r#"{"health":{"interval_seconds":0}}"#;
const SE: [(&str, &str); 2] = [(label::SERVICE, "prompter-api"), (label::ENV, "dev")];

fn with_se<'a>(labels: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut all = SE.to_vec();
    all.extend_from_slice(labels);
    all
}

#[test]
fn a_request_gives_its_counter_and_a_real_histogram_in_seconds() {
    let filter = Harness::with_config(NO_POLLING);
    let outcome = filter
        .exchange(
            &Request::get("/api/prompt-templates/t-1?x=1")
                .status(200)
                .taking_seconds(0.3),
        )
        .unwrap();
    assert!(outcome.local_response.is_none());
    let series = filter.series();
    let route = "/api/prompt-templates/{template_id}";
    let request = with_se(&[(label::METHOD, "GET"), (label::ROUTE, route)]);
    let mut counted = request.clone();
    counted.push((label::STATUS, "200"));
    assert_eq!(
        series.get(Metric::RequestsTotal.name(), &counted),
        Some(1.0)
    );
    let histogram = Metric::RequestSeconds.name();
    assert_eq!(
        series.get(&format!("{histogram}{COUNT_SUFFIX}"), &request),
        Some(1.0)
    );
    let sum = series
        .get(&format!("{histogram}{SUM_SUFFIX}"), &request)
        .unwrap();
    assert!((sum - 0.3).abs() < 1e-9, "{sum}");
    let bucket = |le: &str| {
        let mut labels = request.clone();
        labels.push((label::LE, le));
        series.get(&format!("{histogram}{BUCKET_SUFFIX}"), &labels)
    };
    assert_eq!(bucket("0.25"), Some(0.0));
    assert_eq!(bucket("0.5"), Some(1.0));
    assert_eq!(bucket("1.0"), Some(1.0));
    assert_eq!(bucket("+Inf"), Some(1.0));
}

#[test]
fn the_exposition_has_help_and_type_from_the_catalog() {
    let filter = Harness::with_config(NO_POLLING);
    filter
        .exchange(&Request::get("/healthz").respond(r#"{"redis":true}"#))
        .unwrap();
    let text = filter.metrics_text();
    for metric in [
        Metric::RequestsTotal,
        Metric::RequestSeconds,
        Metric::RedisUp,
    ] {
        let def = metric.def();
        let family = def.name.strip_suffix("_total").unwrap_or(def.name);
        assert!(
            text.contains(&format!("# HELP {family} {}", def.help)),
            "{text}"
        );
        assert!(
            text.contains(&format!("# TYPE {family} {}", def.kind.prometheus_type())),
            "{text}"
        );
    }
}

/// Every `le` the host prints is the filter's own spelling of the bound (Python's `repr`, as
/// Envoy's scrape shows it): compared as text, not as numbers.
#[test]
fn bucket_bounds_are_printed_as_the_filter_spells_them() {
    let config = r#"{"health":{"interval_seconds":0},
        "buckets":{"request_seconds":[0.00001,0.000025,0.0001,0.005,1,2.5,100000]}}"#;
    let filter = Harness::with_config(config);
    filter
        .exchange(&Request::get("/healthz").status(200).taking_seconds(0.3))
        .unwrap();
    let spelled = prompter_filter::config::Config::parse(config.as_bytes(), |_| None)
        .unwrap()
        .request_buckets
        .labels;
    assert_eq!(
        spelled,
        ["1e-05", "2.5e-05", "0.0001", "0.005", "1.0", "2.5", "100000.0", "+Inf"]
    );
    let bucket = format!("{}{BUCKET_SUFFIX}{{", Metric::RequestSeconds.name());
    let printed: Vec<String> = filter
        .metrics_text()
        .lines()
        .filter(|line| line.starts_with(&bucket))
        .filter_map(|line| Some(line.split("le=\"").nth(1)?.split('"').next()?.to_string()))
        .collect();
    assert_eq!(printed, spelled);
}

/// A body nested deeper than the scanner follows (`scanner::MAX_DEPTH`) after the fields:
/// the probe is labelled with the provider and model read before it, not `unknown`.
#[test]
fn a_probe_nested_too_deep_after_its_fields_keeps_them() {
    let filter = Harness::with_config(NO_POLLING);
    let depth = prompter_filter::scanner::MAX_DEPTH + 1;
    let body = format!(
        r#"{{"provider":"google","model_id":"m1","v":{}{}}}"#,
        "[".repeat(depth),
        "]".repeat(depth)
    );
    filter
        .exchange(
            &Request::post("/api/prompt-templates/t-1/ensure-version", &body)
                .status(200)
                .chunked(7),
        )
        .unwrap();
    let labels = with_se(&[(label::PROVIDER, "google"), (label::MODEL, "m1")]);
    assert_eq!(
        filter.series().get(Metric::ProbeAttempts.name(), &labels),
        Some(1.0),
        "{}",
        filter.metrics_text()
    );
}
