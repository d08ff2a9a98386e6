//! A filter that traps in any one of the callbacks it exports, and one that traps in all of
//! them: each trap is an error naming its callback; a trap at start refuses the filter (the
//! harness and the proxy say which callback), a trap later fails the instance, a fresh one
//! starts and meets the same error, and the proxy keeps passing traffic and counts each.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use prompter_host::abi::serialize_map;
use prompter_host::proxy::{self, ProxyOptions};
use prompter_host::state::HttpCallResponse;
use prompter_host::testing::{series, Harness};
use prompter_host::vm::FilterModule;
use prompter_host::HostError;

use super::the_real_filter_still_works;

/// Callbacks run while the filter starts: a trap there refuses it.
const AT_START: [&str; 4] = [
    "_initialize",
    "proxy_on_context_create",
    "proxy_on_vm_start",
    "proxy_on_configure",
];
/// Callbacks run per request, on ticks and for http calls, in the order they come.
const LATER: [&str; 13] = [
    "stream proxy_on_context_create",
    "proxy_on_request_headers",
    "proxy_on_request_body",
    "proxy_on_request_trailers",
    "proxy_on_response_headers",
    "proxy_on_response_body",
    "proxy_on_response_trailers",
    "proxy_on_log",
    "proxy_on_done",
    "proxy_on_delete",
    "proxy_on_tick",
    "proxy_on_http_call_response",
    // Not a callback of its own but run inside host calls: the allocator, first needed
    // when the filter reads its request headers.
    "proxy_on_memory_allocate",
];

fn wat_bytes(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("\\{b:02x}")).collect()
}

/// A filter exporting every callback; those `traps` names (`"all"`: every one) run
/// `unreachable`. The others behave: configure asks for a 50 ms tick, a tick sends an http
/// call to `prompter_api`, the request headers are read (through the allocator).
fn filter(traps: &str, with_initialize: bool) -> String {
    let t = |callback: &str| {
        if traps == "all" || traps == callback {
            "(unreachable)"
        } else {
            ""
        }
    };
    let header = |k: &str, v: &str| (k.as_bytes().to_vec(), v.as_bytes().to_vec());
    let headers = serialize_map(&vec![
        header(":method", "GET"),
        header(":path", "/healthz"),
        header(":authority", "prompter-api"),
    ]);
    let context_create = match traps {
        "all" | "proxy_on_context_create" => "(unreachable)",
        "stream proxy_on_context_create" => {
            "(if (i32.ne (local.get $id) (i32.const 1)) (then (unreachable)))"
        }
        _ => "",
    };
    let initialize = if with_initialize {
        format!(r#"(func (export "_initialize") {})"#, t("_initialize"))
    } else {
        String::new()
    };
    format!(
        r#"(module
  (import "env" "proxy_set_tick_period_milliseconds" (func $tick (param i32) (result i32)))
  (import "env" "proxy_get_header_map_pairs" (func $get_pairs (param i32 i32 i32) (result i32)))
  (import "env" "proxy_http_call" (func $http_call (param i32 i32 i32 i32 i32 i32 i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 256) "prompter_api")
  (data (i32.const 512) "{headers}")
  (func (export "proxy_abi_version_0_2_1"))
  (func (export "proxy_on_memory_allocate") (param i32) (result i32) {allocate} (i32.const 4096))
  {initialize}
  (func (export "proxy_on_context_create") (param $id i32) (param i32) {context_create})
  (func (export "proxy_on_vm_start") (param i32 i32) (result i32) {vm_start} (i32.const 1))
  (func (export "proxy_on_configure") (param i32 i32) (result i32) {configure}
    (drop (call $tick (i32.const 50))) (i32.const 1))
  (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32) {request_headers}
    (drop (call $get_pairs (i32.const 0) (i32.const 0) (i32.const 4))) (i32.const 0))
  (func (export "proxy_on_request_body") (param i32 i32 i32) (result i32) {request_body} (i32.const 0))
  (func (export "proxy_on_request_trailers") (param i32 i32) (result i32) {request_trailers} (i32.const 0))
  (func (export "proxy_on_response_headers") (param i32 i32 i32) (result i32) {response_headers} (i32.const 0))
  (func (export "proxy_on_response_body") (param i32 i32 i32) (result i32) {response_body} (i32.const 0))
  (func (export "proxy_on_response_trailers") (param i32 i32) (result i32) {response_trailers} (i32.const 0))
  (func (export "proxy_on_log") (param i32) {log})
  (func (export "proxy_on_done") (param i32) (result i32) {done} (i32.const 1))
  (func (export "proxy_on_delete") (param i32) {delete})
  (func (export "proxy_on_tick") (param i32) {on_tick}
    (drop (call $http_call (i32.const 256) (i32.const 12) (i32.const 512) (i32.const {headers_len})
      (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 1000) (i32.const 16))))
  (func (export "proxy_on_http_call_response") (param i32 i32 i32 i32 i32) {call_response})
)"#,
        headers = wat_bytes(&headers),
        headers_len = headers.len(),
        allocate = t("proxy_on_memory_allocate"),
        vm_start = t("proxy_on_vm_start"),
        configure = t("proxy_on_configure"),
        request_headers = t("proxy_on_request_headers"),
        request_body = t("proxy_on_request_body"),
        request_trailers = t("proxy_on_request_trailers"),
        response_headers = t("proxy_on_response_headers"),
        response_body = t("proxy_on_response_body"),
        response_trailers = t("proxy_on_response_trailers"),
        log = t("proxy_on_log"),
        done = t("proxy_on_done"),
        delete = t("proxy_on_delete"),
        on_tick = t("proxy_on_tick"),
        call_response = t("proxy_on_http_call_response"),
    )
}

fn harness(wat: &str) -> prompter_host::Result<Harness> {
    let module = FilterModule::from_bytes(wat.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
    Harness::builder()
        .module(module)
        .cluster("prompter_api")
        .build()
}

/// Every callback once, in order: a stream with bodies and trailers, a tick, the answer to
/// the http call the tick sent.
fn lifecycle(filter: &Harness) -> prompter_host::Result<()> {
    let header = |k: &str, v: &str| (k.as_bytes().to_vec(), v.as_bytes().to_vec());
    {
        let mut vm = filter.instance();
        let id = vm.create_stream()?;
        let request = vec![header(":method", "POST"), header(":path", "/")];
        vm.on_request_headers(id, request, false)?;
        vm.on_request_body(id, b"{}", false)?;
        vm.on_request_trailers(id, vec![header("x-end", "1")])?;
        vm.on_response_headers(id, vec![header(":status", "200")], false)?;
        vm.on_response_body(id, b"{}", false)?;
        vm.on_response_trailers(id, vec![header("x-end", "1")])?;
        vm.finish_stream(id)?;
    }
    filter.advance_seconds(1.0);
    filter.tick()?;
    let calls = filter.take_http_calls();
    assert_eq!(calls.len(), 1, "the tick sends one http call");
    let response = HttpCallResponse {
        headers: vec![header(":status", "200")],
        body: b"{}".to_vec(),
        trailers: Vec::new(),
    };
    filter.answer_http_call(calls[0].token, Some(response))
}

/// The callback a trap in `callback` is reported under: its own name, but the allocator
/// runs inside a host call of the callback that needed memory.
fn reported_as(callback: &str) -> &str {
    match callback {
        "proxy_on_memory_allocate" => "proxy_on_request_headers",
        other => other.trim_start_matches("stream "),
    }
}

/// The message of a trap in `callback`; panics on any other outcome.
fn trapped_in(outcome: prompter_host::Result<()>, callback: &str) -> String {
    let name = reported_as(callback);
    match outcome {
        Err(HostError::Trap {
            callback: trapped,
            message,
        }) if trapped == name => message,
        other => panic!("{callback}: expected a trap in {name}, got {other:?}"),
    }
}

#[test]
fn a_filter_that_traps_nowhere_runs_every_callback() {
    let filter = harness(&filter("none", true)).unwrap();
    lifecycle(&filter).unwrap();
    lifecycle(&filter).unwrap();
    assert!(!filter.instance().has_failed());
}

#[test]
fn a_trap_in_a_start_callback_refuses_the_filter_naming_it() {
    for callback in AT_START {
        let message = trapped_in(harness(&filter(callback, true)).map(drop), callback);
        assert!(message.contains("unreachable"), "{callback}: {message}");
    }
    // Every callback traps: the first one run says so.
    let outcome = harness(&filter("all", true)).map(drop);
    assert!(trapped_in(outcome, "_initialize").contains("unreachable"));
    let outcome = harness(&filter("all", false)).map(drop);
    assert!(trapped_in(outcome, "proxy_on_context_create").contains("unreachable"));
    the_real_filter_still_works();
}

#[test]
fn a_trap_in_any_later_callback_fails_the_instance_and_a_fresh_one_meets_it_again() {
    for callback in LATER {
        let wat = filter(callback, true);
        let filter = harness(&wat).unwrap_or_else(|e| panic!("{callback}: {e}"));
        let message = trapped_in(lifecycle(&filter), callback);
        assert!(message.contains("unreachable"), "{callback}: {message}");
        assert!(filter.instance().has_failed(), "{callback}");
        assert!(
            filter
                .logs()
                .iter()
                .any(|l| l.contains("trapped") && l.contains("unreachable")),
            "{callback}: {:?}",
            filter.logs()
        );
        // The failed instance refuses further work with a clear error...
        match filter.instance().create_stream() {
            Err(HostError::Trap { message, .. }) => {
                assert!(message.contains("instance failed earlier"), "{message}")
            }
            other => panic!("{callback}: {other:?}"),
        }
        // ...and a fresh one starts and meets the same trap, nothing left over.
        let fresh = harness(&wat).unwrap();
        trapped_in(lifecycle(&fresh), callback);
    }
    the_real_filter_still_works();
}

/// A run request with a body (so that both body callbacks run); the answer's status (the
/// sample API answers 404: no such template, but the body is read on both sides).
fn run(addr: SocketAddr) -> u16 {
    let body = r#"{"provider":"openai","model_id":"gpt-4o"}"#;
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "POST /api/prompt-templates/t-1/run HTTP/1.1\r\nHost: prompter-api\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

fn failures(proxy: &proxy::BackgroundProxy) -> f64 {
    let name = format!("{}_total", prompter_host::exporter::FILTER_FAILURES);
    series::parse(&proxy.shared.metrics.encode())
        .get(&name, &[])
        .unwrap_or(0.0)
}

fn options(wat: &str, callback: &str) -> ProxyOptions {
    let name = callback.replace(' ', "-");
    let path =
        std::env::temp_dir().join(format!("prompter-trap-{}-{name}.wat", std::process::id()));
    std::fs::write(&path, wat).unwrap();
    ProxyOptions {
        listen: ([127, 0, 0, 1], 0).into(),
        metrics: ([127, 0, 0, 1], 0).into(),
        // The built-in sample API, which also answers the filter's http calls.
        upstream: None,
        wasm: path,
        plugin_config: Vec::new(),
        env: Vec::new(),
        workers: 1,
        upstream_timeout: Duration::from_secs(10),
        fail_closed: false,
        require_filter: false,
        echo_logs: false,
    }
}

#[test]
fn the_proxy_refuses_a_filter_that_traps_at_start_and_serves_through_later_traps() {
    for callback in AT_START {
        let options = options(&filter(callback, true), callback);
        let refused = proxy::spawn(options.clone()).err().unwrap_or_default();
        let _ = std::fs::remove_file(&options.wasm);
        assert!(refused.contains(callback), "{callback}: {refused:?}");
    }
    // The proxy speaks HTTP/1.1 without trailers: the trailer callbacks never run there
    // (the harness test above runs them).
    for callback in LATER.iter().filter(|c| !c.ends_with("trailers")) {
        let options = options(&filter(callback, true), callback);
        let proxy = proxy::spawn(options.clone()).unwrap_or_else(|e| panic!("{callback}: {e}"));
        let _ = std::fs::remove_file(&options.wasm);
        let upstream: SocketAddr = proxy
            .upstream
            .authority()
            .unwrap()
            .as_str()
            .parse()
            .unwrap();
        let direct = run(upstream);
        assert_eq!(direct, 404);
        for _ in 0..3 {
            assert_eq!(run(proxy.listen), direct, "{callback}: fail open");
        }
        // Ticks and http calls run in the background: wait (bounded) until two have failed.
        let deadline = Instant::now() + Duration::from_secs(10);
        let wanted = if callback.contains("tick") || callback.contains("http_call") {
            2.0
        } else {
            3.0
        };
        while failures(&proxy) < wanted && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(
            failures(&proxy) >= wanted,
            "{callback}: {}",
            failures(&proxy)
        );
        let name = reported_as(callback);
        let logs = proxy.shared.logs.texts();
        assert!(
            logs.iter().any(|l| l.contains(&format!("{name} trapped"))),
            "{callback}: {logs:?}"
        );
        assert_eq!(run(proxy.listen), direct, "{callback}: still serving");
    }
}
