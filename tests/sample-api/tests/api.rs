//! End-to-end tests of the sample over real sockets, with a tiny HTTP/1.1 client.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use prompter_sample_api::{body::lorem_text, spawn, BackgroundServer};
use serde_json::{json, Value};

/// One keep-alive connection; every request reuses it.
struct Client {
    reader: BufReader<TcpStream>,
}

#[derive(Debug)]
struct Resp {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Resp {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn text(&self) -> &str {
        std::str::from_utf8(&self.body).expect("utf-8 body")
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("json body")
    }
}

impl Client {
    fn connect(addr: SocketAddr) -> Self {
        let stream = TcpStream::connect(addr).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        Client {
            reader: BufReader::new(stream),
        }
    }

    fn send(&mut self, method: &str, path: &str, body: Option<&str>) -> Resp {
        let body = body.unwrap_or("");
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: sample\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        self.reader
            .get_mut()
            .write_all(request.as_bytes())
            .expect("write");
        self.read_response(method == "HEAD")
    }

    fn line(&mut self) -> String {
        let mut line = String::new();
        self.reader.read_line(&mut line).expect("read line");
        line.trim_end_matches(['\r', '\n']).to_owned()
    }

    fn read_response(&mut self, head: bool) -> Resp {
        let status_line = self.line();
        let status = status_line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
        let mut headers = Vec::new();
        loop {
            let line = self.line();
            if line.is_empty() {
                break;
            }
            let (k, v) = line.split_once(':').expect("header line");
            headers.push((k.trim().to_owned(), v.trim().to_owned()));
        }
        let mut resp = Resp {
            status,
            headers,
            body: Vec::new(),
        };
        if head || status == 204 || status == 304 {
            return resp;
        }
        if resp
            .header("transfer-encoding")
            .is_some_and(|te| te.eq_ignore_ascii_case("chunked"))
        {
            loop {
                let size_line = self.line();
                let size =
                    usize::from_str_radix(size_line.split(';').next().unwrap_or("").trim(), 16)
                        .expect("chunk size");
                if size == 0 {
                    // Trailers end with an empty line.
                    while !self.line().is_empty() {}
                    break;
                }
                let start = resp.body.len();
                resp.body.resize(start + size, 0);
                self.reader
                    .read_exact(&mut resp.body[start..])
                    .expect("chunk");
                assert!(self.line().is_empty(), "chunk not followed by CRLF");
            }
        } else {
            let len: usize = resp
                .header("content-length")
                .map(|v| v.parse().expect("content-length"))
                .unwrap_or(0);
            resp.body.resize(len, 0);
            self.reader.read_exact(&mut resp.body).expect("body");
        }
        resp
    }
}

fn server() -> (BackgroundServer, Client) {
    let server = spawn("127.0.0.1:0".parse().expect("addr")).expect("spawn");
    let client = Client::connect(server.addr);
    (server, client)
}

const TEMPLATES: &str = "/api/prompt-templates";

fn create(c: &mut Client, name: &str, body: &str) -> Resp {
    c.send(
        "POST",
        TEMPLATES,
        Some(&json!({"name": name, "body": body}).to_string()),
    )
}

#[test]
fn templates_create_get_list_and_errors() {
    let (server, mut c) = server();
    let r = create(&mut c, "greet", "Hello {name}");
    assert_eq!(r.status, 201);
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(
        r.text(),
        r#"{"id":"t-1","name":"greet","body":"Hello {name}"}"#
    );

    let r = create(&mut c, "greet", "other");
    assert_eq!(
        (r.status, r.text()),
        (409, r#"{"detail":"template already exists"}"#)
    );

    let r = create(&mut c, "second", "x");
    assert_eq!(r.json()["id"], "t-2");

    let r = c.send("GET", "/api/prompt-templates/t-1", None);
    assert_eq!(r.status, 200);
    assert_eq!(
        r.json(),
        json!({"id":"t-1","name":"greet","body":"Hello {name}"})
    );

    let r = c.send("GET", "/api/prompt-templates/t-99", None);
    assert_eq!(
        (r.status, r.text()),
        (404, r#"{"detail":"template not found"}"#)
    );

    let r = c.send("GET", TEMPLATES, None);
    assert_eq!(r.status, 200);
    assert_eq!(r.json().as_array().map(Vec::len), Some(2));

    for bad in [
        r#"{"body":"x"}"#,
        r#"{"name":""}"#,
        r#"{"name":3}"#,
        "not json",
        "",
    ] {
        let r = c.send("POST", TEMPLATES, Some(bad));
        assert_eq!(r.status, 422, "body {bad:?}");
        assert!(r.json()["detail"].is_string());
    }

    let r = c.send("GET", "/api/admin/stats", None);
    assert_eq!((r.status, r.json()), (200, json!({"templates": 2})));
    assert_eq!(server.api().template_count(), 2);
}

#[test]
fn ensure_version_success_probe_failure_and_unknown() {
    let (_server, mut c) = server();
    create(&mut c, "greet", "Hello");
    let path = "/api/prompt-templates/t-1/ensure-version";

    let r = c.send(
        "POST",
        path,
        Some(r#"{"provider":"openai","model_id":"gpt-4o-2024-08-06","extra":1}"#),
    );
    assert_eq!(r.status, 200);
    assert_eq!(
        r.text(),
        r#"{"provider":"openai","model_id":"gpt-4o-2024-08-06","provider_version_key":"openai:gpt-4o-2024-08-06","captured_at":"2026-01-01T00:00:00Z","created":true}"#
    );

    let r = c.send(
        "POST",
        path,
        Some(r#"{"provider":"openai","model_id":"broken-x"}"#),
    );
    assert_eq!(
        (r.status, r.text()),
        (502, r#"{"detail":"provider probe failed"}"#)
    );

    let r = c.send(
        "POST",
        "/api/prompt-templates/t-7/ensure-version",
        Some(r#"{"provider":"openai","model_id":"m"}"#),
    );
    assert_eq!(
        (r.status, r.text()),
        (404, r#"{"detail":"template not found"}"#)
    );

    let r = c.send("POST", path, Some(r#"{"provider":"openai"}"#));
    assert_eq!(r.status, 422);
}

#[test]
fn run_outcomes() {
    let (_server, mut c) = server();
    create(&mut c, "greet", "Hello {name}");
    let path = "/api/prompt-templates/t-1/run";

    // 68 bytes of request (the prompt tokens), 9 of output (the completion tokens).
    let ada = r#"{"provider":"openai","model_id":"gpt-4o","variables":{"name":"Ada"}}"#;
    assert_eq!(ada.len(), 68);
    let r = c.send("POST", path, Some(ada));
    assert_eq!(r.status, 200);
    // RunTemplateOut's order, as the contract and FastAPI give it: `output` last of its
    // fields, then `usage` as OpenAI's bodies end.
    assert_eq!(
        r.text(),
        r#"{"result_id":"r-1","template_id":"t-1","provider":"openai","model_id":"gpt-4o","system_fingerprint":"fp_44709d6fcb","output":"Hello Ada","usage":{"prompt_tokens":68,"completion_tokens":9,"total_tokens":77}}"#
    );
    let first = c.send("POST", &format!("{path}?output_first=1"), Some(ada));
    assert_eq!(
        first.text(),
        r#"{"output":"Hello Ada","result_id":"r-2","template_id":"t-1","provider":"openai","model_id":"gpt-4o","system_fingerprint":"fp_44709d6fcb","usage":{"prompt_tokens":68,"completion_tokens":9,"total_tokens":77}}"#
    );

    let r = c.send(
        "POST",
        path,
        Some(r#"{"provider":"anthropic","model_id":"claude"}"#),
    );
    assert_eq!(r.json()["system_fingerprint"], Value::Null);
    assert_eq!(r.json()["result_id"], "r-3");

    let r = c.send(
        "POST",
        path,
        Some(r#"{"provider":"openai","model_id":"nofp-1"}"#),
    );
    assert_eq!(r.json()["system_fingerprint"], "");

    let r = c.send(
        "POST",
        path,
        Some(r#"{"provider":"openai","model_id":"ratelimited-1"}"#),
    );
    assert_eq!((r.status, r.text()), (429, r#"{"detail":"rate limited"}"#));

    let r = c.send(
        "POST",
        path,
        Some(r#"{"provider":"openai","model_id":"fail-1"}"#),
    );
    assert_eq!(
        (r.status, r.text()),
        (500, r#"{"detail":"provider error"}"#)
    );

    let r = c.send(
        "POST",
        "/api/prompt-templates/t-2/run",
        Some(r#"{"provider":"openai","model_id":"m"}"#),
    );
    assert_eq!(r.status, 404);

    let r = c.send("POST", path, Some(r#"{"model_id":"m"}"#));
    assert_eq!(r.status, 422);
}

/// The `,"usage":{...}}` a run's JSON ends with.
fn usage_tail(prompt: u64, completion: u64) -> String {
    format!(
        r#","usage":{{"prompt_tokens":{prompt},"completion_tokens":{completion},"total_tokens":{}}}}}"#,
        prompt + completion
    )
}

#[test]
fn runs_report_usage_last_from_their_sizes_or_the_knobs() {
    let (_server, mut c) = server();
    // Non-ASCII output: completion tokens are UTF-8 bytes, not characters.
    create(&mut c, "greet", "Grüße {name}");
    let path = "/api/prompt-templates/t-1/run";
    let body = r#"{"provider":"anthropic","model_id":"claude","variables":{"name":"Zoë"}}"#;
    let prompt = body.len() as u64;
    let output = "Grüße Zoë";
    assert_eq!((output.len(), output.chars().count()), (12, 9));

    for order in ["", "?output_first=1"] {
        let r = c.send("POST", &format!("{path}{order}"), Some(body));
        assert_eq!(r.status, 200);
        assert!(r.text().ends_with(&usage_tail(prompt, 12)), "{}", r.text());
        assert_eq!(r.text().starts_with(r#"{"output":"#), !order.is_empty());
        assert_eq!(r.json()["output"], output);
    }

    // Each knob replaces its own count; the total follows; a malformed one is ignored.
    for (query, want) in [
        ("prompt_tokens=1000&completion_tokens=2500", (1000, 2500)),
        ("completion_tokens=7", (prompt, 7)),
        ("prompt_tokens=0", (0, 12)),
        ("prompt_tokens=x&completion_tokens=-1", (prompt, 12)),
        ("usage=1&prompt_tokens=5", (5, 12)),
    ] {
        let r = c.send("POST", &format!("{path}?{query}"), Some(body));
        assert!(
            r.text().ends_with(&usage_tail(want.0, want.1)),
            "{query}: {}",
            r.text()
        );
    }
    let r = c.send(
        "POST",
        &format!("{path}?prompt_tokens={}&completion_tokens=1", u64::MAX),
        Some(body),
    );
    assert_eq!(r.json()["usage"]["total_tokens"], u64::MAX);

    // `usage=0`: the body as it was before runs reported tokens, knobs or not.
    for query in [
        "usage=0",
        "usage=false&prompt_tokens=3",
        "usage=0&output_first=1",
    ] {
        let r = c.send("POST", &format!("{path}?{query}"), Some(body));
        assert_eq!(r.status, 200);
        assert!(!r.text().contains("usage"), "{query}: {}", r.text());
        assert!(
            r.text().ends_with(if query.contains("output_first") {
                r#""system_fingerprint":null}"#
            } else {
                r#""output":"Grüße Zoë"}"#
            }),
            "{query}: {}",
            r.text()
        );
    }

    // Generated output: its length is the completion, `usage` after it in either order.
    for order in ["", "&output_first=1"] {
        let r = c.send(
            "POST",
            &format!("{path}?output_bytes=300&chunk=7{order}"),
            Some(body),
        );
        assert!(r.text().ends_with(&usage_tail(prompt, 300)), "{}", r.text());
        assert_eq!(r.json()["output"].as_str().map(str::len), Some(300));
    }

    // Failures carry no usage.
    let r = c.send(
        "POST",
        path,
        Some(r#"{"provider":"openai","model_id":"ratelimited-1"}"#),
    );
    assert_eq!((r.status, r.text()), (429, r#"{"detail":"rate limited"}"#));
}

#[test]
fn healthz_follows_redis_flag_and_requests_are_counted() {
    let (_server, mut c) = server();
    let r = c.send("GET", "/healthz", None);
    assert_eq!(
        (r.status, r.text()),
        (200, r#"{"status":"ok","redis":true}"#)
    );

    let r = c.send("POST", "/__sample/redis", Some(r#"{"up": false}"#));
    assert_eq!(r.status, 204);
    let r = c.send("GET", "/healthz", None);
    assert_eq!(
        (r.status, r.text()),
        (503, r#"{"status":"degraded","redis":false}"#)
    );

    assert_eq!(
        c.send("POST", "/__sample/redis", Some(r#"{"up": true}"#))
            .status,
        204
    );
    assert_eq!(c.send("GET", "/healthz", None).status, 200);
    assert_eq!(c.send("POST", "/__sample/redis", Some("{}")).status, 422);

    let r = c.send("GET", "/__sample/requests", None);
    assert_eq!(r.json(), json!({"total": 3}));
}

#[test]
fn large_generated_output_is_valid_json() {
    let (_server, mut c) = server();
    create(&mut c, "greet", "Hello");
    let body = r#"{"provider":"openai","model_id":"gpt-4o"}"#;
    for query in [
        "output_bytes=2000000",
        "output_bytes=2000000&chunked=1",
        "output_bytes=2000000&output_first=1",
    ] {
        let r = c.send(
            "POST",
            &format!("/api/prompt-templates/t-1/run?{query}"),
            Some(body),
        );
        assert_eq!(r.status, 200);
        assert_eq!(
            r.header("transfer-encoding").is_some(),
            query.contains("chunked")
        );
        let first = b"{\"output\":\"lorem ipsum \\\"dolor\\\"";
        let last = format!("\"{}", usage_tail(body.len() as u64, 2_000_000));
        if query.contains("output_first") {
            assert!(r.body.starts_with(first));
        } else {
            assert!(r.body.starts_with(b"{\"result_id\":") && r.text().ends_with(&last));
        }
        let v = r.json();
        let output = v["output"].as_str().expect("output");
        assert_eq!(output.len(), 2_000_000);
        assert_eq!(output, lorem_text(2_000_000));
        assert_eq!(v["system_fingerprint"], "fp_44709d6fcb");
    }
}

#[test]
fn chunk_one_matches_unchunked_body() {
    let (_server, mut c) = server();
    create(&mut c, "greet", "Hello");
    for path in ["/api/prompt-templates/t-1", "/openapi.json", "/nope"] {
        let whole = c.send("GET", path, None);
        let started = Instant::now();
        let chunked = c.send("GET", &format!("{path}?chunk=1"), None);
        assert!(
            started.elapsed() < Duration::from_millis(500),
            "{path} too slow"
        );
        assert_eq!(whole.status, chunked.status);
        assert_eq!(whole.body, chunked.body, "{path}");
    }
    // Generated output split at odd sizes, also through the escapes.
    let run = "/api/prompt-templates/t-1/run?output_bytes=300";
    let body = r#"{"provider":"openai","model_id":"m"}"#;
    let mut a = c.send("POST", run, Some(body)).json();
    let mut b = c.send("POST", &format!("{run}&chunk=1"), Some(body)).json();
    let mut d = c
        .send("POST", &format!("{run}&chunk=7&chunked=1"), Some(body))
        .json();
    for v in [&mut a, &mut b, &mut d] {
        v["result_id"] = Value::Null;
    }
    assert_eq!(a, b);
    assert_eq!(a, d);
}

#[test]
fn openapi_lists_the_paths() {
    let (_server, mut c) = server();
    let r = c.send("GET", "/openapi.json", None);
    assert_eq!(r.status, 200);
    let doc = r.json();
    assert!(doc["openapi"].as_str().is_some_and(|v| v.starts_with('3')));
    let paths = doc["paths"].as_object().expect("paths");
    for p in [
        "/api/prompt-templates",
        "/api/prompt-templates/{template_id}",
        "/api/prompt-templates/{template_id}/ensure-version",
        "/api/prompt-templates/{template_id}/run",
        "/healthz",
        "/api/admin/stats",
    ] {
        assert!(paths.contains_key(p), "missing {p}");
    }
    assert_eq!(paths.len(), 6);
    let schemas = &doc["components"]["schemas"];
    assert_eq!(
        schemas["RunTemplateOut"]["properties"]["usage"]["$ref"],
        "#/components/schemas/Usage"
    );
    assert_eq!(
        schemas["Usage"]["required"],
        json!(["prompt_tokens", "completion_tokens", "total_tokens"])
    );
}

#[test]
fn unknown_routes_are_404() {
    let (_server, mut c) = server();
    for (method, path) in [
        ("GET", "/nope"),
        ("DELETE", "/api/prompt-templates"),
        ("GET", "/api/prompt-templates/t-1/run"),
        ("GET", "/__sample/other"),
    ] {
        let r = c.send(method, path, None);
        assert_eq!(
            (r.status, r.text()),
            (404, r#"{"detail":"Not Found"}"#),
            "{method} {path}"
        );
    }
}

#[test]
fn delay_knob_waits() {
    let (_server, mut c) = server();
    let started = Instant::now();
    assert_eq!(c.send("GET", "/healthz?delay_ms=60", None).status, 200);
    assert!(started.elapsed() >= Duration::from_millis(60));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_then_shutdown_stops_listening() {
    let running = prompter_sample_api::serve("127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("serve");
    let addr = running.addr;
    let status = tokio::task::spawn_blocking(move || {
        Client::connect(addr).send("GET", "/healthz", None).status
    })
    .await
    .expect("client");
    assert_eq!(status, 200);
    running.shutdown().await;
    assert!(TcpStream::connect(addr).is_err());
}

#[test]
fn openapi_modes_switch_what_is_served() {
    let (server, mut c) = server();
    let paths = |c: &mut Client| {
        let doc = c.send("GET", "/openapi.json", None).json();
        let paths = doc["paths"].as_object().expect("paths").clone();
        paths.keys().cloned().collect::<Vec<_>>()
    };
    assert_eq!(paths(&mut c).len(), 6);
    let set = |c: &mut Client, mode: &str| {
        let r = c.send(
            "POST",
            "/__sample/openapi",
            Some(&format!(r#"{{"mode":"{mode}"}}"#)),
        );
        assert_eq!(r.status, 204, "{mode}");
    };
    set(&mut c, "extended");
    assert!(paths(&mut c).contains(&"/api/admin/users/{user_id}".to_string()));
    let r = c.send("GET", "/api/admin/users/u-1", None);
    assert_eq!((r.status, r.json()), (200, json!({"user_id": "u-1"})));
    set(&mut c, "broken");
    let r = c.send("GET", "/openapi.json", None);
    assert_eq!(r.status, 200);
    assert!(serde_json::from_slice::<Value>(&r.body).is_err());
    set(&mut c, "huge");
    let r = c.send("GET", "/openapi.json", None);
    assert_eq!(r.body.len(), prompter_sample_api::openapi::HUGE_BYTES);
    assert_eq!(r.json()["paths"].as_object().map(|p| p.len()), Some(6));
    assert_eq!(
        c.send("POST", "/__sample/openapi", Some(r#"{"mode":"odd"}"#))
            .status,
        422
    );
    assert_eq!(server.api().openapi_served(), 4);
}

/// The `data` of each event of a server-sent event stream, comments left out.
fn events(body: &[u8]) -> Vec<String> {
    let text = std::str::from_utf8(body).expect("utf-8 stream");
    assert!(text.ends_with("\n\n"), "{text:?}");
    text.split("\n\n")
        .filter(|event| !event.is_empty() && !event.starts_with(':'))
        .map(|event| {
            event
                .strip_prefix("data: ")
                .unwrap_or_else(|| panic!("{event:?}"))
                .to_owned()
        })
        .collect()
}

#[test]
fn streamed_runs_answer_server_sent_events() {
    let (_server, mut c) = server();
    create(&mut c, "greet", "Hello {name} and you");
    let path = "/api/prompt-templates/t-1/run";
    let openai = r#"{"provider":"openai","model_id":"gpt-4o","variables":{"name":"Ada"}}"#;
    let r = c.send("POST", &format!("{path}?stream=1"), Some(openai));
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("text/event-stream"));
    assert_eq!(r.header("transfer-encoding"), Some("chunked"));
    assert!(r.body.starts_with(b": streamed run\n\ndata: {"));
    let data = events(&r.body);
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"));
    let chunks: Vec<Value> = data[..data.len() - 1]
        .iter()
        .map(|d| serde_json::from_str(d).expect("json event"))
        .collect();
    assert_eq!(chunks[0]["provider"], "openai");
    assert_eq!(chunks[0]["model_id"], "gpt-4o");
    assert_eq!(chunks[0]["template_id"], "t-1");
    assert!(chunks[1..].iter().all(|c| c.get("provider").is_none()));
    assert!(chunks
        .iter()
        .all(|c| c["system_fingerprint"] == "fp_44709d6fcb" && c["id"] == "r-1"));
    let output: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(output, "Hello Ada and you");
    assert_eq!(
        chunks.last().unwrap()["choices"][0]["finish_reason"],
        "stop"
    );
    // The finish, the last event before [DONE], alone carries the run's usage: the request's
    // bytes and the output's.
    let (finish, deltas) = chunks.split_last().unwrap();
    let total = openai.len() + output.len();
    assert_eq!(
        finish["usage"],
        json!({"prompt_tokens": openai.len(), "completion_tokens": output.len(), "total_tokens": total})
    );
    assert!(deltas.iter().all(|c| c.get("usage").is_none()));
    let last = data[data.len() - 2].as_str();
    assert!(
        last.ends_with(&format!(
            r#""usage":{{"prompt_tokens":68,"completion_tokens":17,"total_tokens":{total}}}}}"#
        )),
        "{last}"
    );
    let usage_of = |c: &mut Client, query: &str| {
        let r = c.send("POST", &format!("{path}?stream=1&{query}"), Some(openai));
        let data = events(&r.body);
        let chunks: Vec<Value> = data[..data.len() - 1]
            .iter()
            .map(|d| serde_json::from_str(d).expect("json event"))
            .collect();
        assert!(chunks[..chunks.len() - 1]
            .iter()
            .all(|c| c.get("usage").is_none()));
        chunks.last().unwrap().get("usage").cloned()
    };
    assert_eq!(
        usage_of(&mut c, "prompt_tokens=11&completion_tokens=22"),
        Some(json!({"prompt_tokens": 11, "completion_tokens": 22, "total_tokens": 33}))
    );
    assert_eq!(usage_of(&mut c, "usage=0"), None);

    // `"stream": true` in the body does the same; fingerprints as in JSON runs.
    let fingerprints = |c: &mut Client, body: &str| {
        let r = c.send("POST", path, Some(body));
        assert_eq!(r.header("content-type"), Some("text/event-stream"));
        let data = events(&r.body);
        data[..data.len() - 1]
            .iter()
            .map(|d| serde_json::from_str::<Value>(d).unwrap()["system_fingerprint"].clone())
            .collect::<Vec<_>>()
    };
    let nofp = fingerprints(
        &mut c,
        r#"{"provider":"openai","model_id":"nofp-1","stream":true}"#,
    );
    assert!(nofp.len() > 2 && nofp.iter().all(|f| f == ""));
    let anthropic = fingerprints(
        &mut c,
        r#"{"provider":"anthropic","model_id":"claude","stream":true}"#,
    );
    assert!(anthropic.iter().all(Value::is_null));

    // Errors are still JSON.
    let r = c.send(
        "POST",
        &format!("{path}?stream=1"),
        Some(r#"{"provider":"openai","model_id":"ratelimited-1"}"#),
    );
    assert_eq!((r.status, r.text()), (429, r#"{"detail":"rate limited"}"#));
    assert_eq!(r.header("content-type"), Some("application/json"));
}

#[test]
fn streamed_runs_can_be_cut_anywhere_and_paced() {
    let (_server, mut c) = server();
    create(&mut c, "greet", "Hello {name}");
    let path = "/api/prompt-templates/t-1/run?stream=1";
    let body = r#"{"provider":"openai","model_id":"gpt-4o","variables":{"name":"Ada"}}"#;
    let without_id = |r: Resp| r.text().replace("\"r-1\"", "").replace("\"r-2\"", "");
    let whole = without_id(c.send("POST", path, Some(body)));
    let cut = without_id(c.send("POST", &format!("{path}&chunk=7"), Some(body)));
    assert_eq!(whole, cut);

    // Five events, 100 ms apart: the first at once, the rest paced.
    let started = Instant::now();
    let r = c.send("POST", &format!("{path}&event_delay_ms=100"), Some(body));
    let took = started.elapsed();
    assert_eq!(events(&r.body).len(), 5);
    assert!(took >= Duration::from_millis(400), "{took:?}");
    assert!(took < Duration::from_millis(2_000), "{took:?}");
}
