//! Routes learned from the API's OpenAPI document, through real Envoy (with the Wasm module
//! and with the native one) and through the host proxy: a route only the document has gets its template as the `route` label; a broken or
//! huge document is refused with a log line (said once per VM, not at every fetch) and the
//! table stays; a new document replaces it;
//! the document is fetched once per interval per proxy, whatever the number of workers.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use prompter_e2e::client::{post, Framing};
use prompter_e2e::envoy::{Build, Envoy, EnvoyOptions};
use prompter_e2e::scenario::{call, Expected};
use prompter_e2e::{host, scrape};
use prompter_sample_api::BackgroundServer;

/// Polling off; the document fetched every second.
const CONFIG: &str = r#"{"health": {"interval_seconds": 0}, "openapi": {"interval_seconds": 1}}"#;
const STATS: &str = "/api/admin/stats";
const USER: &str = "/api/admin/users/{user_id}";
/// Every worker takes a table another one learned up on its next tick (each second).
const SETTLE: Duration = Duration::from_millis(2_500);
/// Envoy's worker threads, the host proxy's workers.
const WORKERS: u32 = 3;

/// Waits until a log line contains `text`.
fn wait_for_log(log: &dyn Fn() -> String, text: &str) {
    let start = Instant::now();
    while !log().contains(text) {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "no log line with {text:?}:\n{}",
            log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn serve_document(sample: &BackgroundServer, mode: &str) {
    let response = post(
        sample.addr,
        "/__sample/openapi",
        &format!(r#"{{"mode":"{mode}"}}"#),
    );
    assert_eq!(response.status, 204, "{}", response.text());
}

/// The scenario, through `at`; `until_equal` waits until the proxy's series are `expected`.
/// `loggers` is how many fetchers keep their own log (one per VM for the Wasm build, one per
/// proxy for the native module): the most times a failure may be said.
fn learn_keep_and_replace(
    at: SocketAddr,
    loggers: usize,
    sample: &BackgroundServer,
    log: &dyn Fn() -> String,
    until_equal: &dyn Fn(&scrape::Series),
) {
    wait_for_log(
        log,
        "OpenAPI document /openapi.json: learned 1 route (6 paths: 5 configured, 0 skipped): /api/admin/stats",
    );
    std::thread::sleep(SETTLE);
    let mut want = Expected::new("prompter-api", "dev");
    call(at, "GET", STATS, None, Framing::Whole, 200);
    want.request("GET", STATS, 200);
    call(at, "GET", "/api/admin/stats?x=1", None, Framing::Whole, 200);
    want.request("GET", STATS, 200);
    call(at, "GET", "/nope", None, Framing::Whole, 404);
    want.request("GET", "unmatched", 404);
    until_equal(&want.series());

    // Fetched once per interval per proxy, not once per worker.
    let before = sample.api().openapi_served();
    std::thread::sleep(Duration::from_secs(4));
    let fetches = sample.api().openapi_served() - before;
    // Four, one either side for where the window falls between fetches.
    assert!((3..=5).contains(&fetches), "{fetches} fetches in 4 s");

    for (mode, reason) in [
        ("broken", "refused: it is not JSON: it ends early"),
        (
            "huge",
            "refused: it is larger than 4194304 bytes (`openapi.max_bytes`)",
        ),
    ] {
        serve_document(sample, mode);
        let line = format!("OpenAPI document /openapi.json: {reason}; the route table stays as it was (1 learned route)");
        wait_for_log(log, &line);
        // Fetched twice more at least, failing the same way.
        std::thread::sleep(SETTLE);
        let said = log().matches(&line).count();
        assert!(
            said <= loggers,
            "said {said} times by {loggers} fetchers:\n{}",
            log()
        );
        call(at, "GET", STATS, None, Framing::Whole, 200);
        want.request("GET", STATS, 200);
        until_equal(&want.series());
    }

    serve_document(sample, "extended");
    wait_for_log(
        log,
        "learned 2 routes (7 paths: 5 configured, 0 skipped): /api/admin/stats /api/admin/users/{user_id}",
    );
    std::thread::sleep(SETTLE);
    call(at, "GET", "/api/admin/users/u-1", None, Framing::Whole, 200);
    want.request("GET", USER, 200);
    call(at, "GET", STATS, None, Framing::Whole, 200);
    want.request("GET", STATS, 200);
    until_equal(&want.series());
}

#[test]
fn envoy_labels_routes_learned_from_the_openapi_document() {
    envoy_learns_routes(Build::Wasm);
}

#[test]
fn envoy_with_the_native_module_labels_routes_learned_from_the_openapi_document() {
    envoy_learns_routes(Build::Native);
}

fn envoy_learns_routes(build: Build) {
    let sample = prompter_sample_api::spawn("127.0.0.1:0".parse().unwrap()).unwrap();
    let mut options = EnvoyOptions::new(sample.addr, CONFIG);
    options.concurrency = WORKERS;
    options.build = build;
    let envoy = Envoy::start(options);
    let log = || envoy.log();
    let until_equal = |expected: &scrape::Series| {
        scrape::envoy_until_equal(envoy.admin, expected);
    };
    // The Wasm build fetches from the VM that holds the lease, which may be any worker's.
    let loggers = match build {
        Build::Native => 1,
        _ => WORKERS as usize,
    };
    learn_keep_and_replace(envoy.listener, loggers, &sample, &log, &until_equal);
}

#[test]
fn the_host_proxy_labels_routes_learned_from_the_openapi_document() {
    let sample = prompter_sample_api::spawn("127.0.0.1:0".parse().unwrap()).unwrap();
    let mut options = host::options(sample.addr, CONFIG);
    options.workers = WORKERS as usize;
    let proxy = host::start(options);
    let log = || proxy.shared.logs.texts().join("\n");
    let until_equal = |expected: &scrape::Series| {
        let start = Instant::now();
        loop {
            let series = scrape::host(proxy.metrics);
            let diff = scrape::without_sums(&series)
                .without_buckets()
                .diff(expected);
            if diff.is_empty() {
                return;
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "host series differ:\n{diff}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    learn_keep_and_replace(proxy.listen, WORKERS as usize, &sample, &log, &until_equal);
}
