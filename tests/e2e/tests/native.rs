//! The native build of the filter (`scripts/build-native`) in real Envoy, against the Wasm
//! build: one scenario through both gives the same series, and a configuration the Wasm build
//! refuses stops Envoy with the same message.

use std::time::{Duration, Instant};

use prompter_e2e::client::{send, Framing};
use prompter_e2e::envoy::{Envoy, EnvoyOptions, Launch};
use prompter_e2e::scenario::{self, call};
use prompter_e2e::scrape::{self, Series};
use prompter_filter::catalog::{label, Metric, BUCKET_SUFFIX, FILTER_FAILURES, SUM_MICROS_SUFFIX};
use prompter_sample_api::BackgroundServer;

/// Polls the health endpoint every second, and learns routes from the OpenAPI document.
const POLLING: &str = r#"{"health": {"interval_seconds": 1}}"#;
/// A route only the sample API's OpenAPI document knows.
const LEARNED_PATH: &str = "/api/admin/stats";

struct Stack {
    sample: BackgroundServer,
    envoy: Envoy,
}

fn stack(native: bool) -> Stack {
    let sample = prompter_sample_api::spawn("127.0.0.1:0".parse().unwrap()).unwrap();
    let mut options = EnvoyOptions::new(sample.addr, POLLING);
    options.concurrency = 1;
    if native {
        options = options.native();
    }
    let envoy = Envoy::start(options);
    Stack { sample, envoy }
}

/// Waits until the filter logged that it learned the document's routes.
fn wait_learned(envoy: &Envoy) {
    let start = Instant::now();
    while !envoy
        .log()
        .contains("OpenAPI document /openapi.json: learned 1 route")
    {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "routes never learned:\n{}",
            envoy.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Requests `drive_more` sends.
const MORE_REQUESTS: f64 = 8.0;

/// Every request counted in `starlette_requests_total`.
fn requests(series: &Series) -> f64 {
    series
        .named(Metric::RequestsTotal.name())
        .map(|(_, value)| value)
        .sum()
}

/// The traffic beyond the shared scenario: streamed runs, a learned route, a probe that fails
/// slowly, hostile label values, an odd method; meanwhile the health poll reads Redis down.
fn drive_more(stack: &Stack) {
    let at = stack.envoy.listener;
    let openai = r#"{"provider":"openai","model_id":"gpt-4o"}"#;
    let run = "/api/prompt-templates/t-1/run";
    for query in ["stream=1", "stream=1&chunk=1", "stream=1&event_delay_ms=20"] {
        call(
            at,
            "POST",
            &format!("{run}?{query}"),
            Some(openai),
            Framing::Whole,
            200,
        );
    }
    let google = r#"{"provider":"google","model_id":"gemini-1.5-pro"}"#;
    call(
        at,
        "POST",
        &format!("{run}?stream=1&chunk=2"),
        Some(google),
        Framing::Whole,
        200,
    );
    call(at, "GET", LEARNED_PATH, None, Framing::Whole, 200);
    call(
        at,
        "POST",
        "/api/prompt-templates/t-1/ensure-version?delay_ms=300",
        Some(r#"{"provider":"anthropic","model_id":"broken-slow"}"#),
        Framing::Whole,
        502,
    );
    // Hostile label values: odd methods, a provider and model built to inject labels.
    let hostile = r#"{"provider":"x\",env=\"prod","model_id":"a}b{c=\"d\"\n"}"#;
    let ensure = "/api/prompt-templates/t-1/ensure-version";
    send(
        at,
        "POST",
        ensure,
        Some(hostile.as_bytes()),
        Framing::Chunks(2),
    );
    send(at, "BREW", "/api/prompt-templates", None, Framing::Whole);
}

/// Bucket bounds below this are left out of the value comparison: two proxies measure the
/// same request a little differently, and a fast request may land on either side of a
/// millisecond bound. No request of the scenario takes a second.
const EXACT_FROM_SECONDS: f64 = 1.0;

/// The series to compare: every series' name and labels, and its value, but for the
/// sub-second histogram buckets and the sums (timing: two proxies measure the same request a
/// little differently), whose values are left at -1. `assert_histograms_consistent` checks
/// each sum against its buckets.
fn comparable(series: &Series) -> Series {
    let le = format!(",{}=\"", label::LE);
    Series(
        series
            .0
            .iter()
            .map(|(key, value)| {
                let bound = key
                    .contains(BUCKET_SUFFIX)
                    .then(|| key.split(&le).nth(1)?.split('"').next())
                    .flatten()
                    .map(|b| b.parse::<f64>().unwrap_or(f64::INFINITY));
                let sum = key.contains(&format!("{SUM_MICROS_SUFFIX}{{"));
                let value = match bound {
                    Some(bound) if bound < EXACT_FROM_SECONDS => -1.0,
                    _ if sum => -1.0,
                    _ => *value,
                };
                (key.clone(), value)
            })
            .collect(),
    )
}

#[test]
fn the_native_module_gives_every_series_of_the_wasm_build() {
    let wasm = stack(false);
    let native = stack(true);
    let mut sent = 0.0;
    for stack in [&wasm, &native] {
        wait_learned(&stack.envoy);
        // The shared scenario gives the in-app module's series in both builds...
        let expected = scenario::drive(stack.envoy.listener, stack.sample.api()).series();
        scrape::envoy_until_equal(stack.envoy.admin, &expected);
        // ...and the traffic beyond it the same series in both.
        drive_more(stack);
        sent = requests(&expected) + MORE_REQUESTS;
    }
    // Counters reach Envoy within a flush (a second) in both builds; the health poll has
    // Redis down by now in both.
    let start = Instant::now();
    loop {
        let from_wasm = comparable(&scrape::envoy(wasm.envoy.admin));
        let from_native = comparable(&scrape::envoy(native.envoy.admin));
        let diff = from_native.diff(&from_wasm);
        let all_counted = requests(&from_wasm) == sent && requests(&from_native) == sent;
        if diff.is_empty() && all_counted {
            scenario::assert_histograms_consistent(&scrape::envoy(native.envoy.admin));
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the native module's series differ from the Wasm build's:\n{diff}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let native_text = prompter_e2e::client::get(native.envoy.admin, "/stats/prometheus").text();
    for line in native_text.lines().filter(|l| !l.starts_with('#')) {
        assert!(
            !line.starts_with("envoy_dynamicmodulescustom")
                && !line.contains("dynamicmodulescustom"),
            "a module metric kept Envoy's prefix: {line}"
        );
    }
    assert!(
        native_text.contains(&format!("{FILTER_FAILURES}{{}} 0")),
        "no hook failed:\n{native_text}"
    );
}

#[test]
fn a_configuration_that_makes_no_sense_stops_envoy_with_the_wasm_builds_message() {
    let sample = prompter_sample_api::spawn("127.0.0.1:0".parse().unwrap()).unwrap();
    let bad = r#"{"run": {"method": "POST", "route": "/x"}}"#;
    // The bootstrap generator refuses the configuration too: it is written in by hand.
    let marker = r#"{"service": "to-be-replaced"}"#;
    let mut logs = Vec::new();
    for native in [false, true] {
        let mut options = EnvoyOptions::new(sample.addr, marker);
        if native {
            options = options.native();
        }
        let mut launch = Launch::generated(&options);
        launch.bootstrap = launch.bootstrap.replace(marker, bad);
        let mut envoy = Envoy::spawn_bootstrap(&launch, &options);
        let status = envoy.wait_exit(Duration::from_secs(30));
        let log = envoy.log();
        assert!(
            status.is_some_and(|s| !s.success()),
            "Envoy must refuse to start:\n{log}"
        );
        logs.push(log);
    }
    let message =
        "prompter-filter: invalid plugin configuration: `run.route`: `/x` is not one of `routes`";
    for log in &logs {
        assert!(
            log.contains(message),
            "the refusal names the field and the reason:\n{log}"
        );
    }
}
