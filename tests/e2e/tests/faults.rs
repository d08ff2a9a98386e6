//! Injected faults, each through real Envoy with the filter and through the host proxy: a
//! misbehaving upstream (refusing, resetting mid-body, hanging, answering garbage), clients
//! that go away mid-request and mid-response, a health endpoint that hangs or answers
//! nonsense, and a filter instance that is replaced. Each asserts what the client gets and
//! what the scrape counts, and that both proxies count the same.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use prompter_e2e::envoy::{Build, EnvoyOptions};
use prompter_e2e::faulty_upstream::{Fault, FaultyUpstream};
use prompter_e2e::lds::LdsEnvoy;
use prompter_e2e::proxies::{Kind, Proxy, ALL};
use prompter_e2e::scenario::{assert_histograms_consistent, Expected, CREATE, ENSURE, ONE};
use prompter_e2e::scrape::Series;
use prompter_e2e::{counting_trap, host, scrape};
use prompter_filter::catalog::{label, Metric};

/// No health poll, no OpenAPI fetch: only the traffic a test sends reaches the upstream.
const QUIET: &str = r#"{"health": {"interval_seconds": 0}, "openapi": {"enabled": false}}"#;
const PATIENT: Duration = Duration::from_secs(30);
const PROBE_BODY: &str = r#"{"provider":"openai","model_id":"gpt-4o"}"#;

fn expected() -> Expected {
    Expected::new("prompter-api", "dev")
}

/// What a client got: the status (none if the connection ended first), the body bytes it
/// read, and whether it read as many as `Content-Length` promised.
#[derive(Debug)]
struct Outcome {
    status: Option<u16>,
    body: Vec<u8>,
    complete: bool,
}

/// Sends `request` (raw bytes) on a new connection and reads until the proxy closes it,
/// without failing on a cut-short answer.
fn exchange(at: SocketAddr, request: &[u8]) -> Outcome {
    let mut stream = TcpStream::connect(at).unwrap();
    stream.set_read_timeout(Some(PATIENT)).unwrap();
    stream.write_all(request).unwrap();
    let mut raw = Vec::new();
    let mut buf = [0; 8192];
    loop {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
        }
    }
    parse_outcome(&raw)
}

fn parse_outcome(raw: &[u8]) -> Outcome {
    let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") else {
        return Outcome {
            status: None,
            body: Vec::new(),
            complete: false,
        };
    };
    let head = String::from_utf8_lossy(&raw[..end]);
    let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok());
    let length = head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case("content-length")
            .then(|| v.trim().parse::<usize>().ok())?
    });
    let body = raw[end + 4..].to_vec();
    Outcome {
        status,
        complete: length.is_some_and(|l| l == body.len()),
        body,
    }
}

fn request(method: &str, path: &str, body: &str) -> Vec<u8> {
    format!(
        "{method} {path} HTTP/1.1\r\nHost: prompter-api\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

fn get_request(path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: prompter-api\r\nConnection: close\r\n\r\n").into_bytes()
}

/// Polls `done` every 10 ms for up to 10 s.
fn wait_for(what: &str, done: impl Fn() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < Duration::from_secs(10), "never: {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Runs `test` against Envoy with the Wasm module, Envoy with the native module and the host
/// proxy at the same time (each in front of its own upstream), returning what each scraped at
/// the end, so that a test can also assert that all agree.
fn through_all(test: impl Fn(Kind) -> Series + Sync) -> Vec<(Kind, Series)> {
    std::thread::scope(|scope| {
        let runs: Vec<_> = ALL
            .iter()
            .map(|kind| {
                let test = &test;
                (*kind, scope.spawn(move || test(*kind)))
            })
            .collect();
        runs.into_iter()
            .map(|(kind, run)| {
                let series = run.join().unwrap_or_else(|e| std::panic::resume_unwind(e));
                (kind, series)
            })
            .collect()
    })
}

/// The proxy still serves: a request after the fault gets the upstream's 200.
fn assert_serves_next(proxy: &Proxy, path: &str) {
    let next = exchange(proxy.listener(), &get_request(path));
    assert_eq!(
        next.status,
        Some(200),
        "{:?}: the next request is served: {next:?}",
        proxy.kind()
    );
}

fn assert_same_everywhere(runs: &[(Kind, Series)]) {
    let (first_kind, first) = &runs[0];
    for (kind, series) in &runs[1..] {
        // Sums are the host's `_sum` and Envoy's `_sum_microseconds`, and depend on timing.
        assert_eq!(
            scrape::without_sums(series).without_buckets(),
            scrape::without_sums(first).without_buckets(),
            "{kind:?} and {first_kind:?} count differently"
        );
    }
}

/// The upstream timeout for the sequence below: what a hung upstream costs.
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(2);
/// Where each step checks that the proxy still serves (route `ONE`).
const NEXT: &str = "/api/prompt-templates/next";

/// Health polled every second, its answer given up after 300 ms; no OpenAPI fetch.
const POLLING: &str =
    r#"{"health": {"interval_seconds": 1, "timeout_ms": 300}, "openapi": {"enabled": false}}"#;
const HEALTH_PATH: &str = "/healthz";

fn healthy() -> Fault {
    Fault::json(200, r#"{"status":"ok","redis":true}"#)
}

/// Every fault one after the other through the same proxy: the upstream down, then up and
/// misbehaving, clients going away, the health endpoint misbehaving; each on a path of its
/// own, the client's outcome asserted and the scrape checked after each. One proxy pair for
/// all: the host compiles the module at start (seconds in a debug build, tens under load).
#[test]
fn every_fault_is_answered_and_counted_as_envoy_does() {
    let runs = through_all(|kind| {
        let addr: SocketAddr = ([127, 0, 0, 1], prompter_e2e::free_port()).into();
        let proxy = Proxy::start(kind, addr, POLLING, UPSTREAM_TIMEOUT);
        let mut want = expected();
        let upstream = upstream_refuses_then_comes_up(&proxy, addr, &mut want);
        let steps: [(&str, Step); 8] = [
            ("upstream reset mid-body", upstream_resets_mid_body),
            ("upstream hung past the timeout", upstream_hangs),
            ("upstream answers garbage", upstream_answers_garbage),
            ("client gone mid-request body", client_gone_mid_request_body),
            (
                "client gone mid-response body",
                client_gone_mid_response_body,
            ),
            ("health endpoint hangs", health_hangs),
            ("health endpoint answers HTML", health_answers_html),
            ("health endpoint answers 500", health_answers_500),
        ];
        for (what, step) in steps {
            step(&proxy, &upstream, &mut want);
            assert_serves_next(&proxy, NEXT);
            want.request("GET", ONE, 200);
            // Captured, shown if the scrape below fails: which fault it was.
            eprintln!("{kind:?}: series after {what}");
            proxy.until_equal(&want.series());
        }
        let series = proxy.until_equal(&want.series());
        assert_histograms_consistent(&series);
        series
    });
    assert_same_everywhere(&runs);
}

/// Nothing listens on the upstream's port: the proxy's own 503, counted. Then the upstream
/// comes up on that port, healthy: the next request reaches it, and the health poll reads
/// redis up.
fn upstream_refuses_then_comes_up(
    proxy: &Proxy,
    addr: SocketAddr,
    want: &mut Expected,
) -> FaultyUpstream {
    let kind = proxy.kind();
    let refused = exchange(proxy.listener(), &get_request(CREATE));
    assert_eq!(refused.status, Some(503), "{kind:?}: {refused:?}");
    want.request("GET", CREATE, 503);
    let upstream = FaultyUpstream::serve(TcpListener::bind(addr).expect("rebind"));
    upstream.set(HEALTH_PATH, healthy());
    let served = exchange(proxy.listener(), &get_request(CREATE));
    assert_eq!(served.status, Some(200), "{kind:?}: {served:?}");
    want.request("GET", CREATE, 200);
    proxy.until(PATIENT, |s| redis_up(s) == Some(1.0));
    want.set(Metric::RedisUp, 1.0);
    eprintln!("{kind:?}: series after the upstream came up");
    proxy.until_equal(&want.series());
    upstream
}

type Step = fn(&Proxy, &FaultyUpstream, &mut Expected);

/// Headers and 100 of 4096 body bytes, then a TCP reset: the client gets the status and a
/// short body; the status the upstream sent is counted, and the probe as answered.
fn upstream_resets_mid_body(proxy: &Proxy, upstream: &FaultyUpstream, want: &mut Expected) {
    const PATH: &str = "/api/prompt-templates/reset/ensure-version";
    upstream.set(
        PATH,
        Fault::ResetMidBody {
            declared: 4096,
            sent: 100,
        },
    );
    let cut = exchange(proxy.listener(), &request("POST", PATH, PROBE_BODY));
    let kind = proxy.kind();
    assert_eq!(cut.status, Some(200), "{kind:?}: the headers got through");
    assert!(
        !cut.complete && cut.body.len() < 4096,
        "{kind:?}: the body is cut short: {} bytes",
        cut.body.len()
    );
    want.request("POST", ENSURE, 200);
    want.probe("openai", "gpt-4o", false);
}

/// No answer within the upstream timeout: the proxy's own 504, counted, and the probe a
/// failure.
fn upstream_hangs(proxy: &Proxy, upstream: &FaultyUpstream, want: &mut Expected) {
    const PATH: &str = "/api/prompt-templates/hang/ensure-version";
    upstream.set(PATH, Fault::Hang);
    let started = Instant::now();
    let timed_out = exchange(proxy.listener(), &request("POST", PATH, PROBE_BODY));
    let kind = proxy.kind();
    assert_eq!(timed_out.status, Some(504), "{kind:?}: {timed_out:?}");
    assert!(
        started.elapsed() >= UPSTREAM_TIMEOUT - Duration::from_millis(100)
            && started.elapsed() < PATIENT / 2,
        "{kind:?}: the timeout, not the upstream, ended it after {:?}",
        started.elapsed()
    );
    upstream.release_held();
    want.request("POST", ENSURE, 504);
    want.probe("openai", "gpt-4o", true);
}

/// Bytes that are not HTTP: Envoy answers 502 ("upstream connect error or disconnect/reset
/// before headers. reset reason: protocol error"), and the host as Envoy does.
fn upstream_answers_garbage(proxy: &Proxy, upstream: &FaultyUpstream, want: &mut Expected) {
    upstream.set(CREATE, Fault::Garbage);
    let garbage = exchange(proxy.listener(), &get_request(CREATE));
    assert_eq!(garbage.status, Some(502), "{:?}: {garbage:?}", proxy.kind());
    want.request("GET", CREATE, 502);
}

/// Headers promise 1000 more body bytes than the client sends before it goes away (the
/// upstream waits for them). Envoy ends the exchange without a status: `status="0"`. The
/// client hung up, the provider did not fail: no probe attempt, no failure.
fn client_gone_mid_request_body(proxy: &Proxy, upstream: &FaultyUpstream, want: &mut Expected) {
    const PATH: &str = "/api/prompt-templates/gone/ensure-version";
    let mut stream = TcpStream::connect(proxy.listener()).unwrap();
    let head = format!(
        "POST {PATH} HTTP/1.1\r\nHost: prompter-api\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        PROBE_BODY.len() + 1000
    );
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(PROBE_BODY.as_bytes()).unwrap();
    wait_for("the request reaches the upstream", || {
        upstream.hits(PATH) == 1
    });
    // Let the body sent so far pass the filter.
    std::thread::sleep(Duration::from_millis(200));
    drop(stream);
    want.request("POST", ENSURE, 0);
}

/// The upstream sends headers and the first 1000 of 1 MiB, then stalls; the client reads
/// the headers and some body and goes away. The status it got is the one counted.
fn client_gone_mid_response_body(proxy: &Proxy, upstream: &FaultyUpstream, want: &mut Expected) {
    const PATH: &str = "/api/prompt-templates/stall";
    upstream.set(
        PATH,
        Fault::StallMidBody {
            declared: 1 << 20,
            sent: 1000,
        },
    );
    let kind = proxy.kind();
    let mut stream = TcpStream::connect(proxy.listener()).unwrap();
    stream.set_read_timeout(Some(PATIENT)).unwrap();
    stream.write_all(&get_request(PATH)).unwrap();
    let mut raw = Vec::new();
    let mut buf = [0; 4096];
    while !raw.windows(4).any(|w| w == b"\r\n\r\n") || raw.len() < 200 {
        let n = stream.read(&mut buf).unwrap();
        assert!(n > 0, "{kind:?}: the proxy closed first");
        raw.extend_from_slice(&buf[..n]);
    }
    assert_eq!(parse_outcome(&raw).status, Some(200), "{kind:?}");
    drop(stream);
    want.request("GET", ONE, 200);
}

fn redis_up(series: &Series) -> Option<f64> {
    series.get(
        Metric::RedisUp.name(),
        &[(label::SERVICE, "prompter-api"), (label::ENV, "dev")],
    )
}

/// While `/healthz` misbehaves, the next poll reads redis down and traffic flows (counted);
/// healthy again, the gauge is back to 1.
fn health_fault(proxy: &Proxy, upstream: &FaultyUpstream, want: &mut Expected, fault: Fault) {
    let polls = upstream.hits(HEALTH_PATH);
    upstream.set(HEALTH_PATH, fault);
    proxy.until(PATIENT, |s| {
        redis_up(s) == Some(0.0) && upstream.hits(HEALTH_PATH) > polls
    });
    assert_serves_next(proxy, NEXT);
    want.request("GET", ONE, 200);
    upstream.set(HEALTH_PATH, healthy());
    proxy.until(PATIENT, |s| redis_up(s) == Some(1.0));
    upstream.release_held();
}

/// No answer within `health.timeout_ms`.
fn health_hangs(proxy: &Proxy, upstream: &FaultyUpstream, want: &mut Expected) {
    health_fault(proxy, upstream, want, Fault::Hang);
}

/// Not JSON, though it mentions the field: the field is read from JSON only.
fn health_answers_html(proxy: &Proxy, upstream: &FaultyUpstream, want: &mut Expected) {
    let html = Fault::Answer {
        status: 200,
        content_type: "text/html",
        body: r#"<p>"redis": true</p>"#.into(),
    };
    health_fault(proxy, upstream, want, html);
}

fn health_answers_500(proxy: &Proxy, upstream: &FaultyUpstream, want: &mut Expected) {
    let error = Fault::Answer {
        status: 500,
        content_type: "text/plain",
        body: "Internal Server Error".into(),
    };
    health_fault(proxy, upstream, want, error);
}

/// Each instance traps on its second request and is replaced (two workers, eight requests:
/// four traps); the counter it adds to before trapping never goes back in a scrape.
#[test]
fn host_counters_never_go_back_when_a_trapping_instance_is_replaced() {
    let upstream = FaultyUpstream::start();
    let labels = [
        (label::SERVICE, "prompter-api"),
        (label::ENV, "dev"),
        (label::METHOD, "GET"),
        (label::ROUTE, CREATE),
        (label::STATUS, "200"),
    ];
    let wat = counting_trap::wat(Metric::RequestsTotal.name(), &labels, 2);
    let mut options = host::options(upstream.addr, QUIET);
    options.wasm = host::temp_file("counting-trap.wat", wat.as_bytes());
    options.workers = 2;
    let proxy = host::start(options);
    let count = || {
        scrape::host(proxy.metrics)
            .get(Metric::RequestsTotal.name(), &labels)
            .unwrap_or(0.0)
    };
    let mut scraped = Vec::new();
    for _ in 0..8 {
        let served = exchange(proxy.listen, &get_request(CREATE));
        assert_eq!(served.status, Some(200), "fail open: {served:?}");
        scraped.push(count());
    }
    assert!(
        scraped.windows(2).all(|w| w[0] <= w[1]),
        "a counter went back: {scraped:?}"
    );
    assert_eq!(scraped.last(), Some(&8.0), "{scraped:?}");
    assert_eq!(
        host::filter_failures(proxy.metrics),
        4.0,
        "one trap per instance's second request"
    );
}

/// Serves three requests, replaces the listener with another plugin configuration in the VM
/// `vm_id` (as a control plane's update does; the old listener drains for 1 s and is
/// destroyed), waits past the drain, serves three more and scrapes until the requests
/// counter reads `last`: every value the scrapes saw on the way, each change once.
fn counter_across_a_listener_update(build: Build, vm_id: &str, last: f64) -> Vec<f64> {
    let upstream = FaultyUpstream::start();
    let mut options = EnvoyOptions::new(upstream.addr, QUIET);
    options.concurrency = 1;
    options.build = build;
    let mut envoy = LdsEnvoy::start(options);
    let (listener, admin) = (envoy.envoy.listener, envoy.envoy.admin);
    let mut scraped: Vec<f64> = Vec::new();
    let scrape_until = |scraped: &mut Vec<f64>, done: &dyn Fn(f64) -> bool| {
        let start = Instant::now();
        loop {
            let value = scrape::envoy(admin)
                .get(Metric::RequestsTotal.name(), &requests_labels())
                .unwrap_or(0.0);
            if scraped.last() != Some(&value) {
                scraped.push(value);
            }
            if done(value) || start.elapsed() > Duration::from_secs(20) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    let serve_three = || {
        for _ in 0..3 {
            let served = exchange(listener, &get_request(CREATE));
            assert_eq!(served.status, Some(200), "{served:?}");
        }
    };
    serve_three();
    scrape_until(&mut scraped, &|v| v >= 3.0);
    let reconfigured = r#"{"health": {"interval_seconds": 0}, "openapi": {"enabled": false}, "models": {"max_length": 63}}"#;
    envoy.replace_listener(reconfigured, vm_id);
    // Past the drain: the old listener (and a VM only it used) is gone.
    let drained = Instant::now() + Duration::from_secs(3);
    scrape_until(&mut scraped, &|_| Instant::now() > drained);
    serve_three();
    scrape_until(&mut scraped, &|v| v == last);
    scraped
}

fn requests_labels() -> [(&'static str, &'static str); 5] {
    [
        (label::SERVICE, "prompter-api"),
        (label::ENV, "dev"),
        (label::METHOD, "GET"),
        (label::ROUTE, CREATE),
        (label::STATUS, "200"),
    ]
}

/// A new plugin configuration in the same VM (same `vm_id`, code and VM configuration: Envoy
/// keeps the VM and gives the filter a new root context): the counter carries on.
#[test]
fn envoy_counters_never_go_back_when_a_new_plugin_configuration_reuses_the_vm() {
    let scraped = counter_across_a_listener_update(Build::Wasm, "prompter_metrics", 6.0);
    assert!(
        scraped.windows(2).all(|w| w[0] < w[1]) && scraped.last() == Some(&6.0),
        "the counter went back or stopped short: {scraped:?}"
    );
}

/// A new VM (another `vm_id`; a new `.wasm` or VM configuration also makes one): its stats
/// are new ones in Envoy's store, and from the moment the new listener is in place what
/// Prometheus scrapes restarts from 0: a counter reset (which `rate()` and `increase()` read
/// as one), not a counter carrying on. This test pins that down.
#[test]
fn envoy_counters_restart_from_zero_when_a_new_vm_replaces_the_old_one() {
    let scraped =
        counter_across_a_listener_update(Build::Wasm, "prompter_metrics_reconfigured", 3.0);
    let reset = scraped
        .windows(2)
        .position(|w| w[1] < w[0])
        .unwrap_or_else(|| panic!("no reset: {scraped:?}"));
    assert_eq!(scraped[reset], 3.0, "{scraped:?}");
    assert!(
        scraped[reset + 1..].windows(2).all(|w| w[0] < w[1]) && scraped.last() == Some(&3.0),
        "after the reset the new VM counts from 0 to 3: {scraped:?}"
    );
}

/// The native module has no VM: its counters live in the stats scope of the filter
/// configuration that defined them, and Envoy deletes them with that configuration. A new
/// listener configuration (a new plugin configuration, or the same one pushed again) starts
/// them from 0 once the old listener is drained: a counter reset, as for the Wasm build's new
/// VM (`rate()` and `increase()` read it as one). This test pins that down.
#[test]
fn native_counters_restart_from_zero_when_a_new_configuration_replaces_the_old_one() {
    let scraped = counter_across_a_listener_update(Build::Native, "unused", 3.0);
    let reset = scraped
        .windows(2)
        .position(|w| w[1] < w[0])
        .unwrap_or_else(|| panic!("no reset: {scraped:?}"));
    assert_eq!(scraped[reset], 3.0, "{scraped:?}");
    assert!(
        scraped[reset + 1..].windows(2).all(|w| w[0] < w[1]) && scraped.last() == Some(&3.0),
        "after the reset the new configuration counts from 0 to 3: {scraped:?}"
    );
}
