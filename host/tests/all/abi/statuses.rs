//! Hostile contents inside valid memory (corrupt serialized maps, garbage http calls, unknown
//! types and ids, overflowing values) get a proxy-wasm status, not a trap and not a panic;
//! functions the host does not implement answer `Unimplemented`.

use prompter_host::abi::{Status, UNIMPLEMENTED};
use prompter_host::testing::Request;

use super::{the_real_filter_still_works, Wat};

/// What `$report` logged last while one exchange ran through `wat`.
fn report(wat: &Wat) -> String {
    let filter = wat.harness();
    filter
        .exchange(&Request::get("/"))
        .unwrap_or_else(|e| panic!("{e}"));
    filter.logs().last().cloned().unwrap_or_default()
}

/// The status `body` (a call, with `data` at 256) answers in `proxy_on_request_headers`.
fn status_of(data: &str, body: &str) -> String {
    report(
        &Wat::on_request_headers(&format!("(call $report {body}) (i32.const 0)"))
            .with(&format!(r#"(data (i32.const 256) "{data}")"#)),
    )
}

/// A serialized map: a count of 1, a key size of 0x7FFFFFFF, and nothing else.
const HUGE_KEY: &str = r"\01\00\00\00\ff\ff\ff\7f\00\00\00\00";
/// `:method`, `:path`, `:authority` in Envoy's pairs format, at 256 (77 bytes).
const CALL_HEADERS: &str = r"\03\00\00\00\07\00\00\00\04\00\00\00\05\00\00\00\01\00\00\00\0a\00\00\00\08\00\00\00:method\00POST\00:path\00/\00:authority\00upstream\00";

#[test]
fn corrupt_or_garbage_arguments_get_a_status() {
    let bad = Status::BadArgument as i32;
    let not_found = Status::NotFound as i32;
    let cases: &[(&str, &str, &str, i32)] = &[
        (
            "set_header_map_pairs, count 0xFFFFFFFF in a 4-byte map",
            r"\ff\ff\ff\ff",
            "(call $set_pairs (i32.const 0) (i32.const 256) (i32.const 4))",
            bad,
        ),
        (
            "set_header_map_pairs, count 3 in a 12-byte map",
            r"\03\00\00\00\01\00\00\00\01\00\00\00",
            "(call $set_pairs (i32.const 0) (i32.const 256) (i32.const 12))",
            bad,
        ),
        (
            "set_header_map_pairs, a key larger than the map",
            HUGE_KEY,
            "(call $set_pairs (i32.const 0) (i32.const 256) (i32.const 12))",
            bad,
        ),
        (
            "set_header_map_pairs, unknown map type",
            "",
            "(call $set_pairs (i32.const 42) (i32.const 256) (i32.const 0))",
            not_found,
        ),
        (
            "http_call, garbage headers",
            "upstreamgarbage!",
            "(call $http_call (i32.const 256) (i32.const 8) (i32.const 264) (i32.const 8)
               (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 1000) (i32.const 0))",
            bad,
        ),
        (
            "http_call, headers with a key larger than the map",
            &format!("upstream{HUGE_KEY}"),
            "(call $http_call (i32.const 256) (i32.const 8) (i32.const 264) (i32.const 12)
               (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 1000) (i32.const 0))",
            bad,
        ),
        (
            "http_call, an unknown cluster",
            CALL_HEADERS,
            "(call $http_call (i32.const 0) (i32.const 0) (i32.const 256) (i32.const 77)
               (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 1000) (i32.const 0))",
            bad,
        ),
        (
            "send_local_response, status -1",
            "",
            "(call $local_response (i32.const -1) (i32.const 0) (i32.const 0) (i32.const 0)
               (i32.const 0) (i32.const 0) (i32.const 0) (i32.const -1))",
            bad,
        ),
        (
            "define_metric, unknown metric type",
            "m",
            "(call $define (i32.const 9) (i32.const 256) (i32.const 1) (i32.const 0))",
            bad,
        ),
        (
            "increment_metric, unknown id",
            "",
            "(call $increment (i32.const -1) (i64.const 1))",
            not_found,
        ),
        (
            "get_header_map_value, unknown map type",
            ":path",
            "(call $get_value (i32.const 42) (i32.const 256) (i32.const 5) (i32.const 0) (i32.const 4))",
            not_found,
        ),
        (
            "set_effective_context, a context that does not exist",
            "",
            "(call $set_context (i32.const 12345))",
            bad,
        ),
        (
            "continue_stream, an unknown stream type",
            "",
            "(call $continue (i32.const 7))",
            bad,
        ),
        (
            "get_buffer_bytes, start and size near 4 GiB: an empty slice",
            "",
            "(call $get_buffer (i32.const 7) (i32.const -1) (i32.const -1) (i32.const 0) (i32.const 4))",
            Status::Ok as i32,
        ),
        (
            "proxy_log, zero bytes at the very end of memory (in bounds)",
            "",
            "(call $log (i32.const 2) (i32.const 65536) (i32.const 0))",
            Status::Ok as i32,
        ),
        (
            // Setting a counter adds the difference: this overflowed i64 (a host panic).
            "a counter incremented past i64::MAX, then set",
            "c",
            "(drop (call $define (i32.const 0) (i32.const 256) (i32.const 1) (i32.const 0)))
             (drop (call $increment (i32.load (i32.const 0)) (i64.const 0x7fffffffffffffff)))
             (drop (call $increment (i32.load (i32.const 0)) (i64.const 0x7fffffffffffffff)))
             (call $record (i32.load (i32.const 0)) (i64.const 0x7fffffffffffffff))",
            Status::Ok as i32,
        ),
    ];
    for (what, data, body, expected) in cases {
        let logs = status_of(data, body);
        assert_eq!(logs, expected.to_string(), "{what}");
    }
    the_real_filter_still_works();
}

#[test]
fn unimplemented_functions_answer_unimplemented() {
    for (name, params) in UNIMPLEMENTED {
        let types = vec!["i32"; params].join(" ");
        let zeros = vec!["(i32.const 0)"; params].join(" ");
        let wat =
            Wat::on_request_headers(&format!("(call $report (call $f {zeros})) (i32.const 0)"))
                .import(&format!(
                    r#"(import "env" "{name}" (func $f (param {types}) (result i32)))"#
                ));
        assert_eq!(
            report(&wat),
            (Status::Unimplemented as i32).to_string(),
            "{name}"
        );
    }
}
