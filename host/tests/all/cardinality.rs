//! Cardinality under hostile traffic: 100,000+ distinct paths, model ids, providers and
//! methods (and their combinations) give no more series than the configuration allows, and the
//! filter's linear memory stops growing once the label budgets are full.
//!
//! The bound per metric is `prompter_host::testing::bounds::series_bound`.

use std::time::Instant;

use prompter_filter::catalog::{label, Metric};
use prompter_filter::config::Config;
use prompter_filter::labels::OTHER;
use prompter_filter::routes::UNMATCHED;
use prompter_host::testing::bounds::{series_bound, Exposition};
use prompter_host::testing::{Harness, Request, Series};

const CONFIG: &str = r#"{"health":{"interval_seconds":0}}"#;
/// Exchanges fed in the big run. Each carries a distinct path and, by turn, a distinct model
/// id, provider or method: 100,000 exchanges, 175,000 distinct hostile values in all.
const EXCHANGES: usize = 100_000;
/// The `i`-th hostile exchange: always a new path; by turn a new model id under a known
/// provider, a new provider, a new model without provider, or a new method on an unknown path;
/// statuses from the whole range, and odd ones.
fn hostile_exchange(i: usize) -> Request {
    let status = ["200", "500", "503", "201", "404", "2000", "abc", "099"][i % 8];
    let probe = format!("/api/prompt-templates/t-{i}/ensure-version?n={i}");
    let request = match i % 4 {
        0 => Request::post(
            &probe,
            &format!(r#"{{"provider":"openai","model_id":"gpt-{i}"}}"#),
        ),
        1 => Request::post(
            &probe,
            &format!(r#"{{"provider":"vendor-{i}","model_id":"m-{i}"}}"#),
        ),
        2 => Request::post(&probe, &format!(r#"{{"model_id":"x;.;env=.=prod;.;{i}"}}"#)),
        _ => Request::new(&format!("BREW{i}"), &format!("/no/such/{i}/path")),
    };
    request.raw_status(Some(status))
}

/// Label values of `key` over every series of `metric` (plain counter names).
fn label_values(series: &Series, metric: Metric, key: &str) -> Vec<String> {
    let needle = format!("{key}=\"");
    let mut values: Vec<String> = series
        .named(metric.name())
        .filter_map(|(k, _)| {
            let start = k.find(&needle)? + needle.len();
            Some(k[start..start + k[start..].find('"')?].to_string())
        })
        .collect();
    values.sort();
    values.dedup();
    values
}

#[test]
fn a_hundred_thousand_distinct_values_stay_under_the_configured_bound() {
    let config = Config::parse(CONFIG.as_bytes(), |_| None).unwrap();
    let filter = Harness::with_config(CONFIG);
    let started = Instant::now();
    let mut memory_at_tenth = 0;
    for i in 0..EXCHANGES {
        filter.exchange(&hostile_exchange(i)).unwrap();
        if i + 1 == EXCHANGES / 10 {
            memory_at_tenth = filter.instance().memory_size();
        }
    }
    let elapsed = started.elapsed();
    let memory_at_end = filter.instance().memory_size();
    let series = filter.series();

    let mut total_bound = 0;
    for metric in Metric::ALL {
        let (count, bound) = (
            series.count_of(metric),
            series_bound(&config, metric, Exposition::HOST),
        );
        assert!(
            count <= bound,
            "{}: {count} series > {bound}",
            metric.name()
        );
        total_bound += bound;
    }
    // Every exchange is counted once, whatever its values.
    let requests: f64 = series
        .named(Metric::RequestsTotal.name())
        .map(|(_, v)| v)
        .sum();
    assert_eq!(requests, EXCHANGES as f64);
    // The values themselves: routes are templates, methods standard or `other`, providers from
    // the allow-list, and `max_per_provider` models per provider at most.
    let routes = label_values(&series, Metric::RequestsTotal, label::ROUTE);
    let mut allowed: Vec<String> = config.routes.templates().map(str::to_string).collect();
    allowed.push(UNMATCHED.to_string());
    assert!(routes.iter().all(|r| allowed.contains(r)), "{routes:?}");
    let methods = label_values(&series, Metric::RequestsTotal, label::METHOD);
    assert_eq!(methods, ["POST", OTHER]);
    let providers = label_values(&series, Metric::ProbeAttempts, label::PROVIDER);
    assert_eq!(providers, ["openai", OTHER, "unknown"]);
    for provider in &providers {
        let models = series
            .named(Metric::ProbeAttempts.name())
            .filter(|(k, _)| k.contains(&format!("{}=\"{provider}\"", label::PROVIDER)))
            .count();
        assert_eq!(
            models,
            config.models.max_per_provider + 1,
            "{provider}: the budget, then `other`"
        );
    }
    // The label budgets were full after a tenth of the traffic: no growth after that.
    assert_eq!(
        memory_at_end, memory_at_tenth,
        "linear memory grew from {memory_at_tenth} to {memory_at_end} bytes with new distinct values"
    );
    eprintln!(
        "cardinality: {EXCHANGES} exchanges in {elapsed:?}; {} series (bound {total_bound}); linear memory {memory_at_tenth} B after {}, {memory_at_end} B after {EXCHANGES}",
        series.0.len(),
        EXCHANGES / 10
    );
    // The process's RSS is not asserted here: the other tests of this binary run beside this
    // one and allocate (one grows a VM to 512 MiB). The proxies' RSS under load is asserted
    // in tests/e2e/tests/soak.rs, each proxy in a process of its own.
}
