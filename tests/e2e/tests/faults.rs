//! Injected faults, each through real Envoy with the filter and through the host proxy: a
//! misbehaving upstream (refusing, resetting mid-body, hanging, answering garbage), clients
//! that go away mid-request and mid-response, a health endpoint that hangs or answers
//! nonsense, and a filter instance that is replaced. Each asserts what the client gets and
//! what the scrape counts, and that both proxies count the same.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use prompter_e2e::faulty_upstream::{Fault, FaultyUpstream};
use prompter_e2e::proxies::{Kind, Proxy, BOTH};
use prompter_e2e::scenario::{assert_histograms_consistent, Expected, CREATE, ENSURE, ONE};
use prompter_e2e::scrape::Series;
use prompter_filter::catalog::{label, Metric};

/// No health poll, no OpenAPI fetch: only the traffic a test sends reaches the upstream.
const QUIET: &str = r#"{"health": {"interval_seconds": 0}, "openapi": {"enabled": false}}"#;
const PATIENT: Duration = Duration::from_secs(30);
const ENSURE_PATH: &str = "/api/prompt-templates/t-1/ensure-version";
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

/// Runs `test` against Envoy and against the host proxy at the same time (each in front of
/// its own upstream), returning what each scraped at the end, so that a test can also
/// assert that both agree.
fn through_both(test: impl Fn(Kind) -> Series + Sync) -> Vec<(Kind, Series)> {
    std::thread::scope(|scope| {
        let runs: Vec<_> = BOTH
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
        assert_eq!(
            series.without_buckets(),
            first.without_buckets(),
            "{kind:?} and {first_kind:?} count differently"
        );
    }
}

#[test]
fn a_refused_upstream_is_a_counted_503_and_served_again_once_it_listens() {
    let runs = through_both(|kind| {
        let port = prompter_e2e::free_port();
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let proxy = Proxy::start(kind, addr, QUIET, PATIENT);
        let refused = exchange(proxy.listener(), &get_request(CREATE));
        assert_eq!(refused.status, Some(503), "{kind:?}: {refused:?}");

        // The upstream comes up on the refused port: the next request reaches it.
        let upstream = FaultyUpstream::serve(TcpListener::bind(addr).expect("rebind"));
        let served = exchange(proxy.listener(), &get_request(CREATE));
        assert_eq!(served.status, Some(200), "{kind:?}: {served:?}");
        assert_eq!(upstream.hits(CREATE), 1);

        let mut want = expected();
        want.request("GET", CREATE, 503);
        want.request("GET", CREATE, 200);
        let series = proxy.until_equal(&want.series());
        assert_histograms_consistent(&series);
        series
    });
    assert_same_everywhere(&runs);
}

#[test]
fn an_upstream_reset_mid_body_cuts_the_client_short_and_counts_the_status_it_sent() {
    let runs = through_both(|kind| {
        let upstream = FaultyUpstream::start();
        upstream.set(
            ENSURE_PATH,
            Fault::ResetMidBody {
                declared: 4096,
                sent: 100,
            },
        );
        let proxy = Proxy::start(kind, upstream.addr, QUIET, PATIENT);
        let cut = exchange(proxy.listener(), &request("POST", ENSURE_PATH, PROBE_BODY));
        assert_eq!(cut.status, Some(200), "{kind:?}: the headers got through");
        assert!(
            !cut.complete && cut.body.len() < 4096,
            "{kind:?}: the body is cut short: {} bytes",
            cut.body.len()
        );
        assert_serves_next(&proxy, CREATE);

        let mut want = expected();
        want.request("POST", ENSURE, 200);
        want.probe("openai", "gpt-4o", false);
        want.request("GET", CREATE, 200);
        proxy.until_equal(&want.series())
    });
    assert_same_everywhere(&runs);
}

#[test]
fn an_upstream_hung_past_the_timeout_is_a_counted_504_and_a_failed_probe() {
    let runs = through_both(|kind| {
        let upstream = FaultyUpstream::start();
        upstream.set(ENSURE_PATH, Fault::Hang);
        let proxy = Proxy::start(kind, upstream.addr, QUIET, Duration::from_millis(500));
        let started = Instant::now();
        let timed_out = exchange(proxy.listener(), &request("POST", ENSURE_PATH, PROBE_BODY));
        assert_eq!(timed_out.status, Some(504), "{kind:?}: {timed_out:?}");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{kind:?}: the timeout, not the upstream, ended it"
        );
        assert_serves_next(&proxy, CREATE);

        let mut want = expected();
        want.request("POST", ENSURE, 504);
        want.probe("openai", "gpt-4o", true);
        want.request("GET", CREATE, 200);
        proxy.until_equal(&want.series())
    });
    assert_same_everywhere(&runs);
}

#[test]
fn an_upstream_answering_garbage_is_a_counted_error_reply() {
    let runs = through_both(|kind| {
        let upstream = FaultyUpstream::start();
        upstream.set(CREATE, Fault::Garbage);
        let proxy = Proxy::start(kind, upstream.addr, QUIET, PATIENT);
        let garbage = exchange(proxy.listener(), &get_request(CREATE));
        // Envoy: "upstream connect error or disconnect/reset before headers. reset reason:
        // protocol error"; the host answers as Envoy does.
        assert_eq!(garbage.status, Some(502), "{kind:?}: {garbage:?}");
        assert_serves_next(&proxy, "/api/prompt-templates/t-1");

        let mut want = expected();
        want.request("GET", CREATE, 502);
        want.request("GET", ONE, 200);
        proxy.until_equal(&want.series())
    });
    assert_same_everywhere(&runs);
}

#[test]
fn a_client_gone_mid_request_body_is_counted_without_a_status() {
    let runs = through_both(|kind| {
        let upstream = FaultyUpstream::start();
        let proxy = Proxy::start(kind, upstream.addr, QUIET, PATIENT);
        // Headers promise more body than the client sends before it goes away; the
        // upstream waits for the rest.
        let mut stream = TcpStream::connect(proxy.listener()).unwrap();
        let head = format!(
            "POST {ENSURE_PATH} HTTP/1.1\r\nHost: prompter-api\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            PROBE_BODY.len() + 1000
        );
        stream.write_all(head.as_bytes()).unwrap();
        stream.write_all(PROBE_BODY.as_bytes()).unwrap();
        wait_for("the request reaches the upstream", || {
            upstream.hits(ENSURE_PATH) == 1
        });
        std::thread::sleep(Duration::from_millis(200));
        drop(stream);

        assert_serves_next(&proxy, CREATE);
        // Envoy ends the exchange without a status: `status="0"`, and the probe, never
        // answered, is an attempt and a failure with the labels from the body it did get.
        let mut want = expected();
        want.request("POST", ENSURE, 0);
        want.probe("openai", "gpt-4o", true);
        want.request("GET", CREATE, 200);
        proxy.until_equal(&want.series())
    });
    assert_same_everywhere(&runs);
}

#[test]
fn a_client_gone_mid_response_body_is_counted_with_the_status_it_got() {
    let runs = through_both(|kind| {
        let upstream = FaultyUpstream::start();
        upstream.set(
            CREATE,
            Fault::StallMidBody {
                declared: 1 << 20,
                sent: 1000,
            },
        );
        let proxy = Proxy::start(kind, upstream.addr, QUIET, PATIENT);
        let mut stream = TcpStream::connect(proxy.listener()).unwrap();
        stream.set_read_timeout(Some(PATIENT)).unwrap();
        stream.write_all(&get_request(CREATE)).unwrap();
        // Read the headers and the first body bytes, then go away.
        let mut raw = Vec::new();
        let mut buf = [0; 4096];
        while !raw.windows(4).any(|w| w == b"\r\n\r\n") || raw.len() < 200 {
            let n = stream.read(&mut buf).unwrap();
            assert!(n > 0, "{kind:?}: the proxy closed first");
            raw.extend_from_slice(&buf[..n]);
        }
        assert_eq!(parse_outcome(&raw).status, Some(200), "{kind:?}");
        drop(stream);

        assert_serves_next(&proxy, "/api/prompt-templates/t-1");
        // The status was sent before the client went away: it is the one counted.
        let mut want = expected();
        want.request("GET", CREATE, 200);
        want.request("GET", ONE, 200);
        proxy.until_equal(&want.series())
    });
    assert_same_everywhere(&runs);
}

fn redis_up(series: &Series) -> Option<f64> {
    series.get(
        Metric::RedisUp.name(),
        &[(label::SERVICE, "prompter-api"), (label::ENV, "dev")],
    )
}

#[test]
fn a_health_endpoint_that_hangs_or_answers_nonsense_reads_as_redis_down_and_traffic_flows() {
    const HEALTH_PATH: &str = "/healthz";
    let healthy = Fault::json(200, r#"{"status":"ok","redis":true}"#);
    let faults = [
        ("hangs", Fault::Hang),
        (
            "answers HTML that mentions the field",
            Fault::Answer {
                status: 200,
                content_type: "text/html",
                body: r#"<p>"redis": true</p>"#.into(),
            },
        ),
        (
            "answers 500",
            Fault::Answer {
                status: 500,
                content_type: "text/plain",
                body: "Internal Server Error".into(),
            },
        ),
    ];
    let runs = through_both(|kind| {
        let upstream = FaultyUpstream::start();
        upstream.set(HEALTH_PATH, healthy.clone());
        let config = r#"{"health": {"interval_seconds": 1, "timeout_ms": 300}, "openapi": {"enabled": false}}"#;
        let proxy = Proxy::start(kind, upstream.addr, config, PATIENT);
        proxy.until(Duration::from_secs(10), |s| redis_up(s) == Some(1.0));
        let mut want = expected();
        for (what, fault) in &faults {
            upstream.set(HEALTH_PATH, fault.clone());
            let polls = upstream.hits(HEALTH_PATH);
            proxy.until(Duration::from_secs(10), |s| {
                redis_up(s) == Some(0.0) && upstream.hits(HEALTH_PATH) > polls
            });
            let served = exchange(proxy.listener(), &get_request(CREATE));
            assert_eq!(served.status, Some(200), "{kind:?}: health {what}");
            want.request("GET", CREATE, 200);
            upstream.set(HEALTH_PATH, healthy.clone());
            proxy.until(Duration::from_secs(10), |s| redis_up(s) == Some(1.0));
        }
        upstream.release_held();
        // The polls are not requests: only the traffic is counted.
        want.set(Metric::RedisUp, 1.0);
        proxy.until_equal(&want.series())
    });
    assert_same_everywhere(&runs);
}
