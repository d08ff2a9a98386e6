//! Streamed runs (`text/event-stream`) through real Envoy and through the host proxy: counted
//! exactly like JSON runs, events split across chunks included, and every event reaching the
//! client as soon as the API sends it.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use prompter_e2e::client::Framing;
use prompter_e2e::envoy::{Envoy, EnvoyOptions};
use prompter_e2e::scenario::{assert_histograms_consistent, call, Expected, CREATE, RUN};
use prompter_e2e::{host, scrape};
use prompter_filter::catalog::{label, Metric};

const NO_POLLING: &str = r#"{"health": {"interval_seconds": 0}}"#;
const RUN_PATH: &str = "/api/prompt-templates/t-1/run";
const OPENAI: &str = r#"{"provider":"openai","model_id":"gpt-4o","variables":{"who":"you"}}"#;
/// Between one event of a paced stream and the next.
const EVENT_DELAY: Duration = Duration::from_millis(200);

fn create_template(at: SocketAddr) {
    let template = r#"{"name":"greet","body":"Hello {who} and all"}"#;
    call(at, "POST", CREATE, Some(template), Framing::Whole, 201);
}

/// Streamed runs through `at`, and the series the in-app module would report for them.
fn drive_streams(at: SocketAddr) -> Expected {
    let mut want = Expected::new("prompter-api", "dev");
    create_template(at);
    want.request("POST", CREATE, 201);

    let streamed = |query: &str, body: &str, framing| {
        let response = call(
            at,
            "POST",
            &format!("{RUN_PATH}?{query}"),
            Some(body),
            framing,
            200,
        );
        assert!(
            response.body.starts_with(b": streamed run\n\ndata: {")
                && response.body.ends_with(b"data: [DONE]\n\n"),
            "{query}: {}",
            response.text()
        );
    };
    let insert = |want: &mut Expected, fingerprint: bool| {
        want.request("POST", RUN, 200);
        want.count(Metric::ResultsInsert, &[]);
        if fingerprint {
            want.count(Metric::FingerprintPresent, &[]);
        }
    };
    // Whole, then cut into 1-, 7- and 5-byte frames: events split across chunks.
    streamed("stream=1", OPENAI, Framing::Whole);
    insert(&mut want, true);
    streamed("stream=1&chunk=1", OPENAI, Framing::Whole);
    insert(&mut want, true);
    let in_body = r#"{"provider":"openai","model_id":"gpt-4o","stream":true}"#;
    streamed("chunk=7", in_body, Framing::Chunks(3));
    insert(&mut want, true);
    // Every event's fingerprint empty, or none for other providers.
    let nofp = r#"{"provider":"openai","model_id":"nofp-gpt","stream":true}"#;
    streamed("chunk=5", nofp, Framing::Whole);
    insert(&mut want, false);
    let google = r#"{"provider":"google","model_id":"gemini-1.5-pro"}"#;
    streamed("stream=1&chunk=2", google, Framing::Whole);
    insert(&mut want, false);
    // Errors before the stream starts are JSON, counted as ever.
    let limited = r#"{"provider":"openai","model_id":"ratelimited-gpt","stream":true}"#;
    call(at, "POST", RUN_PATH, Some(limited), Framing::Whole, 429);
    want.request("POST", RUN, 429);
    want.count(Metric::RateLimitHits, &[(label::ENDPOINT, RUN)]);
    let failed = r#"{"provider":"openai","model_id":"fail-gpt","stream":true}"#;
    call(at, "POST", RUN_PATH, Some(failed), Framing::Whole, 500);
    want.request("POST", RUN, 500);
    want
}

#[test]
fn streamed_runs_give_the_series_of_json_runs_through_envoy_and_the_host() {
    let envoy_upstream = prompter_sample_api::spawn("127.0.0.1:0".parse().unwrap()).unwrap();
    let envoy = Envoy::start(EnvoyOptions::new(envoy_upstream.addr, NO_POLLING));
    let host_upstream = prompter_sample_api::spawn("127.0.0.1:0".parse().unwrap()).unwrap();
    let proxy = host::start(host::options(host_upstream.addr, NO_POLLING));

    let through_envoy = drive_streams(envoy.listener).series();
    let through_host = drive_streams(proxy.listen).series();
    assert_eq!(through_envoy, through_host, "the script is deterministic");

    assert_histograms_consistent(&scrape::envoy_until_equal(envoy.admin, &through_envoy));
    assert_histograms_consistent(&scrape::host_until_equal(proxy.metrics, &through_host));
}

/// A streamed response as the client saw it arrive.
struct Arrival {
    content_type: String,
    body: Vec<u8>,
    /// When each `data` event was complete (its blank line received), from the request's start.
    events: Vec<Duration>,
    total: Duration,
}

/// Sends `body` to `path` and reads the response as it arrives, noting when each event is whole.
fn stream(addr: SocketAddr, path: &str, body: &str) -> Arrival {
    let started = Instant::now();
    let mut socket = TcpStream::connect(addr).unwrap();
    socket.set_nodelay(true).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: prompter-api\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    socket.write_all(request.as_bytes()).unwrap();
    let mut reader = BufReader::new(socket);
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    assert!(line.starts_with("HTTP/1.1 200"), "{line:?}");
    let (mut content_type, mut chunked) = (String::new(), false);
    loop {
        line.clear();
        reader.read_line(&mut line).unwrap();
        let header = line.trim_end();
        if header.is_empty() {
            break;
        }
        let (name, value) = header.split_once(':').unwrap();
        if name.eq_ignore_ascii_case("content-type") {
            content_type = value.trim().to_string();
        }
        if name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = value.trim().eq_ignore_ascii_case("chunked");
        }
    }
    assert!(chunked, "a stream has no length");

    let mut arrival = Arrival {
        content_type,
        body: Vec::new(),
        events: Vec::new(),
        total: Duration::ZERO,
    };
    let mut blocks_seen = 0;
    loop {
        line.clear();
        reader.read_line(&mut line).unwrap();
        let size = usize::from_str_radix(line.trim(), 16).unwrap();
        if size == 0 {
            break;
        }
        let start = arrival.body.len();
        arrival.body.resize(start + size, 0);
        reader.read_exact(&mut arrival.body[start..]).unwrap();
        reader.read_line(&mut line).unwrap();
        let now = started.elapsed();
        // Every block ended by a blank line since the last read is whole now.
        let text = String::from_utf8_lossy(&arrival.body).into_owned();
        let blocks: Vec<&str> = text.split("\n\n").collect();
        let whole = &blocks[..blocks.len() - 1];
        for block in &whole[blocks_seen..] {
            if block.starts_with("data:") {
                arrival.events.push(now);
            }
        }
        blocks_seen = whole.len();
    }
    arrival.total = started.elapsed();
    arrival
}

/// The stream with the result id left out, which differs from one run to the next.
fn without_ids(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let mut parts = text.split("\"id\":\"r-");
    let mut out = parts.next().unwrap_or_default().to_string();
    for part in parts {
        out.push_str("\"id\":\"r-?");
        out.push_str(part.trim_start_matches(|c: char| c.is_ascii_digit()));
    }
    out
}

#[test]
fn each_event_reaches_the_client_when_the_api_sends_it_through_envoy_and_the_host() {
    let sample = prompter_sample_api::spawn("127.0.0.1:0".parse().unwrap()).unwrap();
    create_template(sample.addr);
    let envoy = Envoy::start(EnvoyOptions::new(sample.addr, NO_POLLING));
    let proxy = host::start(host::options(sample.addr, NO_POLLING));
    let path = format!(
        "{RUN_PATH}?stream=1&event_delay_ms={}",
        EVENT_DELAY.as_millis()
    );

    let direct = stream(sample.addr, &path, OPENAI);
    // Start, "Hello ", "you ", "and ", "all", finish, [DONE].
    assert_eq!(
        direct.events.len(),
        7,
        "{}",
        String::from_utf8_lossy(&direct.body)
    );
    let paced = EVENT_DELAY * (direct.events.len() as u32 - 1);
    assert!(direct.total >= paced, "{:?}", direct.total);

    for (name, at) in [("envoy", envoy.listener), ("host", proxy.listen)] {
        let through = stream(at, &path, OPENAI);
        assert_eq!(through.content_type, "text/event-stream", "{name}");
        assert_eq!(
            without_ids(&through.body),
            without_ids(&direct.body),
            "{name}: the filter changes nothing"
        );
        // Event k leaves the API k × 200 ms after the first: it must reach the client before
        // the next one is even sent, so no event waits for more of the stream.
        let slack = EVENT_DELAY * 3 / 4;
        for (k, at) in through.events.iter().enumerate() {
            let sent = through.events[0] + EVENT_DELAY * k as u32;
            assert!(
                *at < sent + slack,
                "{name}: event {k} arrived at {at:?}, sent about {sent:?}: {:?}",
                through.events
            );
        }
        assert!(
            through.events[0] + paced - slack < through.total,
            "{name}: the first event arrived at {:?}, the stream ended at {:?}",
            through.events[0],
            through.total
        );
        assert!(
            through.events[0] < direct.events[0] + slack,
            "{name}: first event {:?} vs {:?} direct",
            through.events[0],
            direct.events[0]
        );
    }

    // Each proxy counted its one streamed run.
    let mut want = Expected::new("prompter-api", "dev");
    want.request("POST", RUN, 200);
    want.count(Metric::ResultsInsert, &[]);
    want.count(Metric::FingerprintPresent, &[]);
    let expected = want.series();
    scrape::envoy_until_equal(envoy.admin, &expected);
    scrape::host_until_equal(proxy.metrics, &expected);
}
