//! Cardinality through real Envoy: thousands of distinct paths, methods, providers and model
//! ids give no more series on `/stats/prometheus` than the configuration allows, and Envoy's
//! memory does not grow with further distinct values once the label budgets are full.
//!
//! The bound per metric is `prompter_host::testing::bounds::series_bound` for Envoy: no
//! `_sum`, a model budget per worker (one VM each).

use std::net::SocketAddr;

use prompter_e2e::envoy::{Envoy, EnvoyOptions};
use prompter_e2e::load;
use prompter_e2e::{client, scrape};
use prompter_filter::catalog::Metric;
use prompter_filter::config::Config;
use prompter_host::testing::bounds::{series_bound, Exposition};

const CONFIG: &str = r#"{"health": {"interval_seconds": 0}}"#;
const WORKERS: u32 = 2;
/// Distinct values per kind; three kinds (model ids, providers with their models, paths with
/// methods), so 3 × this many requests and 4 × this many distinct values.
const DISTINCT: usize = 5_000;

fn request(method: &str, path: &str, body: &str) -> Vec<u8> {
    format!(
        "{method} {path} HTTP/1.1\r\nHost: prompter-api\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Requests `from..to` of the hostile sequence: a new model id, a new provider with a new
/// model, and a new path with a new method, by turn.
fn hostile(from: usize, to: usize) -> Vec<Vec<u8>> {
    (from..to)
        .flat_map(|i| {
            let probe = "/api/prompt-templates/t-1/ensure-version";
            [
                request(
                    "POST",
                    probe,
                    &format!(r#"{{"provider":"openai","model_id":"gpt-{i}"}}"#),
                ),
                request(
                    "POST",
                    probe,
                    &format!(r#"{{"provider":"vendor-{i}","model_id":"m-{i}"}}"#),
                ),
                request(&format!("BREW{i}"), &format!("/no/such/{i}/path"), ""),
            ]
        })
        .collect()
}

/// Envoy's heap (`/memory` `allocated`) and all its series lines (its own included).
fn envoy_state(admin: SocketAddr) -> (u64, usize) {
    let memory: serde_json::Value =
        serde_json::from_slice(&client::get(admin, "/memory").body).unwrap();
    let allocated = memory["allocated"].as_str().unwrap().parse().unwrap();
    let lines = client::get(admin, "/stats/prometheus")
        .text()
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .count();
    (allocated, lines)
}

#[test]
fn thousands_of_distinct_values_through_envoy_stay_under_the_bound() {
    let config = Config::parse(CONFIG.as_bytes(), |_| None).unwrap();
    let sample = prompter_sample_api::spawn("127.0.0.1:0".parse().unwrap()).unwrap();
    assert_eq!(
        client::post(
            sample.addr,
            "/api/prompt-templates",
            r#"{"name":"t","body":"x"}"#
        )
        .status,
        201
    );
    let mut options = EnvoyOptions::new(sample.addr, CONFIG);
    options.concurrency = WORKERS;
    let envoy = Envoy::start(options);

    // The first fifth fills every budget; the rest only brings more distinct values.
    let first = load::run_each(envoy.listener, 8, &hostile(0, DISTINCT / 5));
    let sent_first = first.completed as f64;
    let wait_counted = |n: f64| {
        scrape::envoy_until(envoy.admin, std::time::Duration::from_secs(15), |s| {
            s.named(Metric::RequestsTotal.name())
                .map(|(_, v)| v)
                .sum::<f64>()
                == n
        })
    };
    wait_counted(sent_first);
    let (heap_after_fifth, lines_after_fifth) = envoy_state(envoy.admin);
    let rest = load::run_each(envoy.listener, 8, &hostile(DISTINCT / 5, DISTINCT));
    assert_eq!(first.errors + rest.errors, 0);
    let total = (first.completed + rest.completed) as f64;
    assert_eq!(total, 3.0 * DISTINCT as f64);
    let series = wait_counted(total);
    let (heap_at_end, lines_at_end) = envoy_state(envoy.admin);

    let mut bound_total = 0;
    for metric in Metric::ALL {
        let (count, bound) = (
            series.count_of(metric),
            series_bound(&config, metric, Exposition::envoy(WORKERS as usize)),
        );
        assert!(
            count <= bound,
            "{}: {count} series > {bound}",
            metric.name()
        );
        bound_total += bound;
    }
    // No new series at all after the budgets were full: Envoy's whole exposition has the
    // same number of lines.
    assert_eq!(lines_at_end, lines_after_fifth);
    eprintln!(
        "Envoy: {} requests, {} distinct values in {:?}; {} series of ours (bound {bound_total}), {lines_at_end} lines in all; heap {heap_after_fifth} B after a fifth, {heap_at_end} B at the end",
        total,
        4 * DISTINCT,
        first.elapsed + rest.elapsed,
        series.0.len()
    );
    // Heap: stats are bounded, so only allocator noise remains (measured: within ±40 KiB).
    assert!(
        heap_at_end < heap_after_fifth + 512 * 1024,
        "Envoy's heap grew from {heap_after_fifth} to {heap_at_end} bytes"
    );
}
