//! Hostile clients and upstreams through real Envoy and through the host proxy: a malformed
//! chunked body, a client half-closing mid-body, an upstream closing inside its response
//! head, statuses Envoy passes on or refuses, a 101 to a plain POST, heads over Envoy's
//! limits, hop-by-hop headers named in `Connection`, CONNECT, `OPTIONS *`, a repeated
//! `Content-Length`, and the other requests Envoy's codec refuses. Each case pins what
//! Envoy 1.40 answers (measured) and requires the host to answer the same, and both proxies
//! must count the same series. Where they cannot agree (a limit of hyper's parser), the case
//! says exactly how the host differs, and the comparison allows that and nothing else.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use prompter_e2e::faulty_upstream::{Fault, FaultyUpstream};
use prompter_e2e::proxies::{Kind, Proxy};
use prompter_e2e::scenario::{Expected, CREATE, ENSURE};
use prompter_e2e::scrape::{self, key, Series};
use prompter_filter::catalog::{label, Metric};

/// No health poll, no OpenAPI fetch: only the cases reach the upstream.
const QUIET: &str = r#"{"health": {"interval_seconds": 0}, "openapi": {"enabled": false}}"#;
const PATIENT: Duration = Duration::from_secs(20);
const PROBE_BODY: &str = r#"{"provider":"openai","model_id":"gpt-4o"}"#;
/// Envoy's `max_request_headers_kb` default, in bytes of the whole head.
const HEAD_LIMIT: usize = 60 * 1024;

/// How a case's client behaves.
enum Send {
    /// These bytes, then read the answer.
    Raw(Vec<u8>),
    /// These bytes, then (once the upstream has the request, when it is to get one) a
    /// half-close of the client's side; then read whatever comes.
    HalfClose {
        bytes: Vec<u8>,
        after_upstream: bool,
    },
    /// The head and a first chunk; once the upstream has the request, `then`.
    Later { first: Vec<u8>, then: Vec<u8> },
}

/// What the client got: the final status line's code, none if the connection closed first.
type Answer = Option<u16>;

/// What a proxy answers and counts (a `starlette_requests_total` series).
#[derive(Debug, Clone, Copy)]
struct Outcome {
    answer: Answer,
    method: &'static str,
    route: &'static str,
    status: &'static str,
}

const fn outcome(
    answer: Answer,
    method: &'static str,
    route: &'static str,
    status: &'static str,
) -> Outcome {
    Outcome {
        answer,
        method,
        route,
        status,
    }
}

/// A request Envoy refuses before its filters: they see only the reply.
const fn refused(status: u16, label: &'static str) -> Outcome {
    outcome(Some(status), "other", "unmatched", label)
}

struct Case {
    name: &'static str,
    /// The upstream path that gets `fault`.
    path: &'static str,
    fault: Option<Fault>,
    send: Send,
    /// What Envoy 1.40 does (measured).
    envoy: Outcome,
    /// Where the host cannot do the same, what it does instead; `None`: as Envoy.
    host: Option<Outcome>,
}

fn post(path: &str, extra: &str, body: &str) -> Vec<u8> {
    format!(
        "POST {path} HTTP/1.1\r\nHost: prompter-api\r\nConnection: close\r\nContent-Type: application/json\r\n{extra}\r\n{body}"
    )
    .into_bytes()
}

fn probe(path: &str) -> Vec<u8> {
    post(
        path,
        &format!("Content-Length: {}\r\n", PROBE_BODY.len()),
        PROBE_BODY,
    )
}

fn get(path: &str, extra: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: prompter-api\r\nConnection: close\r\n{extra}\r\n")
        .into_bytes()
}

/// A response head and body from the upstream.
fn answer(status_line: &str) -> Fault {
    Fault::Raw(
        format!("HTTP/1.1 {status_line}\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{{}}")
            .into_bytes(),
    )
}

/// A GET whose head is exactly `size` bytes.
fn head_of(path: &str, size: usize) -> Vec<u8> {
    let start =
        format!("GET {path} HTTP/1.1\r\nHost: prompter-api\r\nConnection: close\r\nX-Fill: ");
    let fill = size - start.len() - 4;
    format!("{start}{}\r\n\r\n", "f".repeat(fill)).into_bytes()
}

fn cases() -> Vec<Case> {
    let chunked_head = |path: &str| {
        post(
            path,
            "Transfer-Encoding: chunked\r\n",
            &format!("{:x}\r\n{PROBE_BODY}\r\n", PROBE_BODY.len()),
        )
    };
    let short_body = |path: &str| {
        post(
            path,
            &format!("Content-Length: {}\r\n", PROBE_BODY.len() + 1000),
            PROBE_BODY,
        )
    };
    let probe_route = |answer, status| outcome(answer, "POST", ENSURE, status);
    vec![
        // The client's side.
        Case {
            name: "malformed chunk with the head",
            path: "/api/prompt-templates/chunk-early/ensure-version",
            fault: None,
            send: Send::Raw([chunked_head("/api/prompt-templates/chunk-early/ensure-version"), b"zz\r\nxx\r\n".to_vec()].concat()),
            envoy: probe_route(Some(400), "400"),
            host: None,
        },
        Case {
            name: "malformed chunk once the upstream has the request",
            path: "/api/prompt-templates/chunk-late/ensure-version",
            fault: Some(Fault::Hang),
            send: Send::Later {
                first: chunked_head("/api/prompt-templates/chunk-late/ensure-version"),
                then: b"zz\r\nxx\r\n".to_vec(),
            },
            envoy: probe_route(Some(400), "400"),
            host: None,
        },
        Case {
            name: "half-close before Content-Length is complete",
            path: "/api/prompt-templates/half-early/ensure-version",
            fault: None,
            send: Send::HalfClose {
                bytes: short_body("/api/prompt-templates/half-early/ensure-version"),
                after_upstream: false,
            },
            envoy: probe_route(None, "0"),
            host: None,
        },
        Case {
            name: "half-close before Content-Length is complete, the upstream waiting",
            path: "/api/prompt-templates/half-late/ensure-version",
            fault: Some(Fault::Hang),
            send: Send::HalfClose {
                bytes: short_body("/api/prompt-templates/half-late/ensure-version"),
                after_upstream: true,
            },
            envoy: probe_route(None, "0"),
            host: None,
        },
        Case {
            name: "half-close after a whole request",
            path: "/whole",
            fault: Some(Fault::Hang),
            send: Send::HalfClose {
                bytes: b"GET /whole HTTP/1.1\r\nHost: prompter-api\r\n\r\n".to_vec(),
                after_upstream: false,
            },
            envoy: outcome(None, "GET", "unmatched", "0"),
            host: None,
        },
        Case {
            name: "a 100 KB path",
            path: "/long",
            fault: None,
            send: Send::Raw(get(&format!("/long/{}", "a".repeat(100 * 1024)), "")),
            envoy: refused(431, "431"),
            host: None,
        },
        Case {
            name: "a head of exactly 60 KiB",
            path: "/head-at-limit",
            fault: None,
            send: Send::Raw(head_of("/head-at-limit", HEAD_LIMIT)),
            envoy: outcome(Some(200), "GET", "unmatched", "200"),
            host: None,
        },
        Case {
            name: "a head one byte over 60 KiB",
            path: "/head-over-limit",
            fault: None,
            send: Send::Raw(head_of("/head-over-limit", HEAD_LIMIT + 1)),
            envoy: refused(431, "431"),
            host: None,
        },
        Case {
            name: "150 headers",
            path: "/many",
            fault: None,
            send: Send::Raw(get("/many", &(0..150).map(|i| format!("X-H-{i}: v\r\n")).collect::<String>())),
            envoy: refused(431, "431"),
            host: None,
        },
        Case {
            name: "100 headers",
            path: "/hundred",
            fault: None,
            // Host and Connection, and 98 more.
            send: Send::Raw(get("/hundred", &(0..98).map(|i| format!("X-H-{i}: v\r\n")).collect::<String>())),
            envoy: outcome(Some(200), "GET", "unmatched", "200"),
            host: None,
        },
        Case {
            name: "hop-by-hop headers named in Connection",
            path: "/hop",
            fault: None,
            send: Send::Raw(b"GET /hop HTTP/1.1\r\nHost: prompter-api\r\nConnection: close, X-Secret\r\nX-Secret: 1\r\nX-Kept: 1\r\nTE: gzip, trailers\r\nKeep-Alive: 5\r\n\r\n".to_vec()),
            envoy: outcome(Some(200), "GET", "unmatched", "200"),
            host: None,
        },
        Case {
            name: "Connection naming Host",
            path: "/nominated-host",
            fault: None,
            send: Send::Raw(get("/nominated-host", "Connection: host\r\n")),
            envoy: refused(400, "400"),
            host: None,
        },
        Case {
            name: "CONNECT",
            path: "/",
            fault: None,
            send: Send::Raw(b"CONNECT prompter-api:443 HTTP/1.1\r\nHost: prompter-api:443\r\n\r\n".to_vec()),
            envoy: outcome(Some(404), "CONNECT", "unmatched", "404"),
            host: None,
        },
        Case {
            name: "OPTIONS *",
            path: "/",
            fault: None,
            send: Send::Raw(b"OPTIONS * HTTP/1.1\r\nHost: prompter-api\r\nConnection: close\r\n\r\n".to_vec()),
            envoy: refused(404, "404"),
            host: None,
        },
        Case {
            name: "Content-Length twice, the same",
            path: CREATE,
            fault: None,
            send: Send::Raw(post(CREATE, "Content-Length: 2\r\nContent-Length: 2\r\n", "{}")),
            envoy: refused(400, "400"),
            host: None,
        },
        Case {
            name: "Content-Length twice, differing",
            path: CREATE,
            fault: None,
            send: Send::Raw(post(CREATE, "Content-Length: 2\r\nContent-Length: 3\r\n", "{}x")),
            envoy: refused(400, "400"),
            host: None,
        },
        Case {
            name: "Content-Length as a list",
            path: CREATE,
            fault: None,
            send: Send::Raw(post(CREATE, "Content-Length: 2, 2\r\n", "{}")),
            envoy: refused(400, "400"),
            host: None,
        },
        Case {
            name: "Content-Length beside Transfer-Encoding",
            path: CREATE,
            fault: None,
            send: Send::Raw(post(CREATE, "Transfer-Encoding: chunked\r\nContent-Length: 7\r\n", "2\r\n{}\r\n0\r\n\r\n")),
            envoy: refused(400, "400"),
            host: None,
        },
        Case {
            name: "a transfer coding other than chunked",
            path: CREATE,
            fault: None,
            send: Send::Raw(post(CREATE, "Transfer-Encoding: gzip\r\n", "")),
            envoy: refused(501, "501"),
            // hyper refuses it as a malformed head: 400.
            host: Some(refused(400, "400")),
        },
        Case {
            name: "HTTP/1.0",
            path: "/old",
            fault: None,
            send: Send::Raw(b"GET /old HTTP/1.0\r\nHost: prompter-api\r\n\r\n".to_vec()),
            envoy: refused(426, "426"),
            host: None,
        },
        Case {
            name: "HTTP/1.0 with Transfer-Encoding",
            path: CREATE,
            fault: None,
            send: Send::Raw(
                b"POST /api/prompt-templates HTTP/1.0\r\nHost: prompter-api\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
                    .to_vec(),
            ),
            envoy: refused(426, "426"),
            // hyper refuses the head (no Transfer-Encoding before HTTP/1.1) before the
            // version could be answered.
            host: Some(refused(400, "400")),
        },
        Case {
            name: "a request line cut by a bare LF",
            path: CREATE,
            fault: None,
            send: Send::Raw(b"a\nb\r\nc /api/prompt-templates HTTP/1.1\r\nHost: prompter-api\r\nConnection: close\r\n\r\n".to_vec()),
            envoy: refused(400, "400"),
            host: None,
        },
        Case {
            name: "a WebSocket upgrade",
            path: "/ws",
            fault: None,
            send: Send::Raw(get("/ws", "Connection: upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n")),
            envoy: refused(403, "403"),
            host: None,
        },
        Case {
            name: "an h2c upgrade offer (served as HTTP/1.1)",
            path: "/h2c",
            fault: None,
            send: Send::Raw(get("/h2c", "Connection: close, Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n")),
            envoy: outcome(Some(200), "GET", "unmatched", "200"),
            host: None,
        },
        // The upstream's side.
        Case {
            name: "upstream closes inside its response head",
            path: "/api/prompt-templates/mid-head/ensure-version",
            fault: Some(Fault::Raw(b"HTTP/1.1 200 OK\r\nContent-Type: appl".to_vec())),
            send: Send::Raw(probe("/api/prompt-templates/mid-head/ensure-version")),
            envoy: probe_route(Some(502), "502"),
            host: None,
        },
        Case {
            name: "upstream closes after its status line",
            path: "/status-line-only",
            fault: Some(Fault::Raw(b"HTTP/1.1 200 OK\r\n".to_vec())),
            send: Send::Raw(get("/status-line-only", "")),
            envoy: outcome(Some(502), "GET", "unmatched", "502"),
            host: None,
        },
        Case {
            name: "upstream closes before answering",
            path: "/silent",
            fault: Some(Fault::Raw(Vec::new())),
            send: Send::Raw(get("/silent", "")),
            envoy: outcome(Some(503), "GET", "unmatched", "503"),
            host: None,
        },
        Case {
            name: "status 2000",
            path: "/status-2000",
            fault: Some(answer("2000 Odd")),
            send: Send::Raw(get("/status-2000", "")),
            envoy: outcome(Some(2000), "GET", "unmatched", "0"),
            // hyper's client reads three-digit statuses only: the upstream's answer is not
            // HTTP to it, and the host answers as Envoy does for such an upstream.
            host: Some(outcome(Some(502), "GET", "unmatched", "502")),
        },
        Case {
            name: "status 099",
            path: "/api/prompt-templates/status-099/ensure-version",
            fault: Some(answer("099 Odd")),
            send: Send::Raw(probe("/api/prompt-templates/status-099/ensure-version")),
            envoy: probe_route(Some(502), "502"),
            host: None,
        },
        Case {
            name: "status 600",
            path: "/api/prompt-templates/status-600/ensure-version",
            fault: Some(answer("600 Odd")),
            send: Send::Raw(probe("/api/prompt-templates/status-600/ensure-version")),
            envoy: probe_route(Some(600), "600"),
            host: None,
        },
        Case {
            name: "status 999",
            path: "/status-999",
            fault: Some(answer("999 Odd")),
            send: Send::Raw(get("/status-999", "")),
            envoy: outcome(Some(999), "GET", "unmatched", "999"),
            host: None,
        },
        Case {
            name: "101 to a plain POST",
            path: "/api/prompt-templates/switch/ensure-version",
            fault: Some(Fault::Raw(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n".to_vec())),
            send: Send::Raw(probe("/api/prompt-templates/switch/ensure-version")),
            envoy: probe_route(Some(101), "101"),
            host: None,
        },
    ]
}

/// Reads until the proxy closes the connection (or `PATIENT` passes).
fn read_all(mut stream: TcpStream) -> Vec<u8> {
    stream.set_read_timeout(Some(PATIENT)).unwrap();
    let mut raw = Vec::new();
    let mut buf = [0; 8192];
    while let Ok(n @ 1..) = stream.read(&mut buf) {
        raw.extend_from_slice(&buf[..n]);
    }
    raw
}

/// The code of the final status line read: an interim 100, 102 or 103 is followed by it.
fn final_status(raw: &[u8]) -> Answer {
    let text = String::from_utf8_lossy(raw);
    text.split("\r\n")
        .filter(|line| line.starts_with("HTTP/1."))
        .filter_map(|line| line.split_whitespace().nth(1)?.parse().ok())
        .find(|status| !matches!(status, 100 | 102 | 103))
}

fn wait_for_upstream(upstream: &FaultyUpstream, path: &str, before: usize) {
    let start = Instant::now();
    while upstream.hits(path) == before {
        assert!(
            start.elapsed() < PATIENT,
            "the request never reached the upstream"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    // Let what the client sent so far pass the proxy.
    std::thread::sleep(Duration::from_millis(200));
}

fn run(case: &Case, at: SocketAddr, upstream: &FaultyUpstream) -> Answer {
    let hits = upstream.hits(case.path);
    let mut stream = TcpStream::connect(at).unwrap();
    stream.set_nodelay(true).unwrap();
    let raw = match &case.send {
        Send::Raw(bytes) => {
            // A proxy may answer and close before it read everything.
            let _ = stream.write_all(bytes);
            read_all(stream)
        }
        Send::HalfClose {
            bytes,
            after_upstream,
        } => {
            stream.write_all(bytes).unwrap();
            if *after_upstream {
                wait_for_upstream(upstream, case.path, hits);
            } else {
                std::thread::sleep(Duration::from_millis(200));
            }
            stream.shutdown(Shutdown::Write).unwrap();
            read_all(stream)
        }
        Send::Later { first, then } => {
            stream.write_all(first).unwrap();
            wait_for_upstream(upstream, case.path, hits);
            let _ = stream.write_all(then);
            read_all(stream)
        }
    };
    upstream.release_held();
    final_status(&raw)
}

fn requests(series: &Series) -> Series {
    Series(
        series
            .named(Metric::RequestsTotal.name())
            .map(|(k, v)| (k.clone(), v))
            .collect(),
    )
}

/// Runs every case through one proxy of `kind`; returns what each client got, and the
/// proxy's series once its requests counter holds every case.
fn through(kind: Kind, cases: &[Case]) -> (Vec<Answer>, Series) {
    let upstream = FaultyUpstream::start();
    let proxy = Proxy::start(kind, upstream.addr, QUIET, Duration::from_secs(5));
    let mut want = Expected::new("prompter-api", "dev");
    let mut answers = Vec::new();
    for case in cases {
        if let Some(fault) = &case.fault {
            upstream.set(case.path, fault.clone());
        }
        answers.push(run(case, proxy.listener(), &upstream));
        let o = match kind {
            Kind::Host => case.host.unwrap_or(case.envoy),
            // The native module runs in the same Envoy: the same wire.
            Kind::Envoy | Kind::NativeEnvoy => case.envoy,
        };
        want.count(
            Metric::RequestsTotal,
            &[
                (label::METHOD, o.method),
                (label::ROUTE, o.route),
                (label::STATUS, o.status),
            ],
        );
    }
    // Scraped until it counts every case as expected (stats reach the scrape a flush
    // later), or until `PATIENT`: the comparison below then shows what differs.
    let want = requests(&want.series());
    let start = Instant::now();
    let series = loop {
        let series = proxy.scrape();
        if requests(&series) == want || start.elapsed() > PATIENT {
            break series;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    // Sums (the host's `_sum`, Envoy's `_sum_microseconds`) depend on timing, as buckets do.
    (answers, scrape::without_sums(&series).without_buckets())
}

/// Envoy's series as the host must count them: each allowed difference moves its one
/// request from Envoy's status label to the host's.
fn as_the_host_counts(envoy: &Series, cases: &[Case]) -> Series {
    let mut series = envoy.clone();
    for case in cases {
        let Some(host) = case.host else { continue };
        let labels = |o: &Outcome| {
            [
                (label::SERVICE, "prompter-api"),
                (label::ENV, "dev"),
                (label::METHOD, o.method),
                (label::ROUTE, o.route),
                (label::STATUS, o.status),
            ]
        };
        let name = Metric::RequestsTotal.name();
        let from = key(name, &labels(&case.envoy));
        let count = series.0.get_mut(&from).expect("Envoy counted the case");
        *count -= 1.0;
        if *count == 0.0 {
            series.0.remove(&from);
        }
        *series.0.entry(key(name, &labels(&host))).or_default() += 1.0;
    }
    series
}

#[test]
fn hostile_clients_and_upstreams_get_what_envoy_gives_them_and_count_alike() {
    let cases = cases();
    let (envoy, host) = std::thread::scope(|scope| {
        let envoy = scope.spawn(|| through(Kind::Envoy, &cases));
        let host = scope.spawn(|| through(Kind::Host, &cases));
        let join = |run: std::thread::ScopedJoinHandle<'_, _>| {
            run.join().unwrap_or_else(|e| std::panic::resume_unwind(e))
        };
        (join(envoy), join(host))
    });
    let mut wrong = Vec::new();
    for (i, case) in cases.iter().enumerate() {
        let host_outcome = case.host.unwrap_or(case.envoy);
        if envoy.0[i] != case.envoy.answer {
            wrong.push(format!(
                "Envoy, {}: {:?}, measured {:?}",
                case.name, envoy.0[i], case.envoy.answer
            ));
        }
        if host.0[i] != host_outcome.answer {
            wrong.push(format!(
                "host, {}: {:?}, Envoy's {:?}",
                case.name, host.0[i], case.envoy.answer
            ));
        }
    }
    assert!(wrong.is_empty(), "answers differ:\n{}", wrong.join("\n"));
    let diff = host.1.diff(&as_the_host_counts(&envoy.1, &cases));
    assert!(
        diff.is_empty(),
        "the host counts differently from Envoy:\n{diff}"
    );
}

/// The headers `Connection` names, and the hop-by-hop ones, stop at the proxy: the
/// upstream sees the same request head from both.
#[test]
fn headers_named_in_connection_never_reach_the_upstream() {
    let case = cases()
        .into_iter()
        .find(|c| c.name == "hop-by-hop headers named in Connection")
        .unwrap();
    for kind in [Kind::Envoy, Kind::Host] {
        let upstream = FaultyUpstream::start();
        let proxy = Proxy::start(kind, upstream.addr, QUIET, Duration::from_secs(5));
        assert_eq!(run(&case, proxy.listener(), &upstream), Some(200));
        let head = upstream.last_head(case.path).unwrap().to_ascii_lowercase();
        for gone in ["x-secret", "keep-alive", "connection:"] {
            assert!(!head.contains(gone), "{kind:?} forwarded {gone}:\n{head}");
        }
        assert!(head.contains("x-kept: 1"), "{kind:?}:\n{head}");
        assert!(head.contains("te: trailers\r\n"), "{kind:?}:\n{head}");
    }
}
