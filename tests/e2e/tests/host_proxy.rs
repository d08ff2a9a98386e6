//! The host proxy (`prompter-host proxy`) with the same module Envoy loads: same traffic,
//! same series; full histograms like the in-app module; and what it does when things break.

use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

use prompter_e2e::client::{get, post};
use prompter_e2e::envoy::{Envoy, EnvoyOptions};
use prompter_e2e::scenario::{self, assert_histograms_consistent, Expected, CREATE, ENSURE};
use prompter_e2e::{host, scrape};
use prompter_filter::catalog::{label, Metric, SUM_SUFFIX};

const NO_POLLING: &str = r#"{"health": {"interval_seconds": 0}}"#;

#[test]
fn the_same_traffic_gives_the_same_series_through_envoy_and_the_host() {
    let envoy_upstream = prompter_sample_api::spawn("127.0.0.1:0".parse().unwrap()).unwrap();
    let envoy = Envoy::start(EnvoyOptions::new(envoy_upstream.addr, NO_POLLING));
    let host_upstream = prompter_sample_api::spawn("127.0.0.1:0".parse().unwrap()).unwrap();
    let proxy = host::start(host::options(host_upstream.addr, NO_POLLING));

    let through_envoy = scenario::drive(envoy.listener, envoy_upstream.api()).series();
    let through_host = scenario::drive(proxy.listen, host_upstream.api()).series();
    assert_eq!(through_envoy, through_host, "the script is deterministic");

    let envoy_series = scrape::envoy_until_equal(envoy.admin, &through_envoy);
    let host_series = scrape::host_until_equal(proxy.metrics, &through_host);
    // Same series, same values (counters, gauge, `_count`); and the same bucket series. Sums
    // are there on both sides: the host's `_sum`, Envoy's `_sum_microseconds`.
    assert_eq!(
        scrape::without_sums(&host_series).without_buckets(),
        scrape::without_sums(&envoy_series).without_buckets()
    );
    let bucket_keys = |s: &scrape::Series| {
        s.0.keys()
            .filter(|k| k.contains("_bucket{"))
            .cloned()
            .collect::<Vec<_>>()
    };
    assert_eq!(bucket_keys(&host_series), bucket_keys(&envoy_series));
    assert_histograms_consistent(&host_series);
    assert_histograms_consistent(&envoy_series);
}

#[test]
fn the_host_reports_full_histograms_with_sums_in_seconds() {
    let upstream = prompter_sample_api::spawn("127.0.0.1:0".parse().unwrap()).unwrap();
    let proxy = host::start(host::options(upstream.addr, NO_POLLING));
    let expected = scenario::drive(proxy.listen, upstream.api()).series();
    let series = scrape::host_until_equal(proxy.metrics, &expected);
    assert_histograms_consistent(&series);
    // Every histogram series has its `_sum`, in seconds: the 300 ms probe is the only openai one.
    for metric in [Metric::RequestSeconds, Metric::EnsureVersionSeconds] {
        let counts: Vec<_> = series.named(&format!("{}_count", metric.name())).collect();
        let sums: Vec<_> = series
            .named(&format!("{}{SUM_SUFFIX}", metric.name()))
            .collect();
        assert_eq!(counts.len(), sums.len(), "{}", metric.name());
        assert!(sums.iter().all(|(_, v)| *v > 0.0));
    }
    let openai_sum = series
        .get(
            &format!("{}{SUM_SUFFIX}", Metric::EnsureVersionSeconds.name()),
            &[
                (label::SERVICE, "prompter-api"),
                (label::ENV, "dev"),
                (label::PROVIDER, "openai"),
            ],
        )
        .unwrap();
    assert!((0.3..1.0).contains(&openai_sum), "{openai_sum}");
}

#[test]
fn an_unreachable_upstream_is_a_503_that_the_filter_counts() {
    let dead: SocketAddr = ([127, 0, 0, 1], prompter_e2e::free_port()).into();
    let proxy = host::start(host::options(
        dead,
        r#"{"health": {"interval_seconds": 1}}"#,
    ));
    assert_eq!(get(proxy.listen, CREATE).status, 503);
    assert_eq!(
        post(
            proxy.listen,
            "/api/prompt-templates/t-1/ensure-version",
            r#"{"provider":"openai","model_id":"gpt-4o"}"#
        )
        .status,
        503
    );
    let mut want = Expected::new("prompter-api", "dev");
    want.request("GET", CREATE, 503);
    want.request("POST", ENSURE, 503);
    want.probe("openai", "gpt-4o", true);
    want.set(Metric::RedisUp, 0.0);
    scrape::host_until_equal(proxy.metrics, &want.series());
}

#[test]
fn a_hung_upstream_times_out_with_a_504_that_the_filter_counts() {
    // Accepts connections and never answers.
    let hung = TcpListener::bind("127.0.0.1:0").unwrap();
    let mut options = host::options(hung.local_addr().unwrap(), NO_POLLING);
    options.upstream_timeout = Duration::from_millis(300);
    let proxy = host::start(options);
    assert_eq!(get(proxy.listen, CREATE).status, 504);
    let mut want = Expected::new("prompter-api", "dev");
    want.request("GET", CREATE, 504);
    scrape::host_until_equal(proxy.metrics, &want.series());
}

#[test]
fn a_corrupt_module_fails_open_logged_and_counted() {
    let upstream = prompter_sample_api::spawn("127.0.0.1:0".parse().unwrap()).unwrap();
    let mut options = host::options(upstream.addr, NO_POLLING);
    options.wasm = host::temp_file("corrupt.wasm", b"\0asm\x01\0\0\0garbage");
    let proxy = host::start(options.clone());
    assert_eq!(
        get(proxy.listen, "/healthz").status,
        200,
        "traffic keeps flowing"
    );
    assert_eq!(host::filter_failures(proxy.metrics), 1.0);
    assert!(
        proxy
            .shared
            .logs
            .texts()
            .iter()
            .any(|l| l.contains("invalid wasm module")),
        "{:?}",
        proxy.shared.logs.texts()
    );
    drop(proxy);
    options.fail_closed = true;
    let refused = prompter_host::proxy::spawn(options)
        .err()
        .unwrap_or_default();
    assert!(refused.contains("invalid wasm module"), "{refused}");
}

/// A proxy-wasm filter that traps in `proxy_on_request_headers` on every request.
const TRAPPING_FILTER: &str = r#"(module
  (memory (export "memory") 1)
  (func (export "proxy_abi_version_0_2_1"))
  (func (export "proxy_on_memory_allocate") (param i32) (result i32) i32.const 1024)
  (func (export "proxy_on_context_create") (param i32 i32))
  (func (export "proxy_on_vm_start") (param i32 i32) (result i32) i32.const 1)
  (func (export "proxy_on_configure") (param i32 i32) (result i32) i32.const 1)
  (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32) unreachable))"#;

#[test]
fn a_filter_that_traps_mid_request_fails_open_or_closed_as_configured() {
    let upstream = prompter_sample_api::spawn("127.0.0.1:0".parse().unwrap()).unwrap();
    let mut options = host::options(upstream.addr, NO_POLLING);
    options.wasm = host::temp_file("trapping.wat", TRAPPING_FILTER.as_bytes());
    let proxy = host::start(options.clone());
    for _ in 0..3 {
        assert_eq!(
            get(proxy.listen, "/healthz").status,
            200,
            "fail open: traffic keeps flowing"
        );
    }
    assert_eq!(
        host::filter_failures(proxy.metrics),
        3.0,
        "each trap counted (a fresh instance each time)"
    );
    assert!(proxy
        .shared
        .logs
        .texts()
        .iter()
        .any(|l| l.contains("proxy_on_request_headers")));
    drop(proxy);
    options.fail_closed = true;
    let proxy = host::start(options);
    assert_eq!(get(proxy.listen, "/healthz").status, 503, "fail closed");
}
