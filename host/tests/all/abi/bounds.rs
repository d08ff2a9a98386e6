//! Out-of-bounds pointers and lengths, in every argument position that carries one: the host
//! call traps the callback, the instance is marked failed, the process carries on.

use prompter_host::testing::Request;

use super::{request_headers_trap, the_real_filter_still_works, Wat};

/// `(what, body of proxy_on_request_headers)`; the memory is one 64 KiB page, `:path` is at 256.
const CASES: &[(&str, &str)] = &[
    (
        "proxy_log, length 0xFFFFFFFF",
        "(call $log (i32.const 2) (i32.const 256) (i32.const -1))",
    ),
    (
        "proxy_log, pointer near 4 GiB (pointer + length wraps in 32 bits)",
        "(call $log (i32.const 2) (i32.const -16) (i32.const 32))",
    ),
    (
        "proxy_log, one byte past the end of memory",
        "(call $log (i32.const 2) (i32.const 65535) (i32.const 2))",
    ),
    (
        "proxy_get_header_map_value, key out of bounds",
        "(call $get_value (i32.const 0) (i32.const 70000) (i32.const 5) (i32.const 0) (i32.const 4))",
    ),
    (
        "proxy_get_header_map_value, return pointer near 4 GiB",
        "(call $get_value (i32.const 0) (i32.const 256) (i32.const 5) (i32.const -4) (i32.const 4))",
    ),
    (
        "proxy_get_header_map_value, return length straddling the end",
        "(call $get_value (i32.const 0) (i32.const 256) (i32.const 5) (i32.const 0) (i32.const 65534))",
    ),
    (
        "proxy_define_metric, name length 0xFFFFFFFF",
        "(call $define (i32.const 0) (i32.const 256) (i32.const -1) (i32.const 0))",
    ),
    (
        "proxy_define_metric, id slot out of bounds",
        "(call $define (i32.const 0) (i32.const 256) (i32.const 5) (i32.const 65536))",
    ),
    (
        "proxy_get_buffer_bytes (plugin configuration), return pointers out of bounds",
        "(call $get_buffer (i32.const 7) (i32.const 0) (i32.const 100) (i32.const 65536) (i32.const 4))",
    ),
    (
        "proxy_get_buffer_bytes (empty request body), return length slot near 4 GiB",
        "(call $get_buffer (i32.const 0) (i32.const 0) (i32.const 100) (i32.const 0) (i32.const -2))",
    ),
    (
        "proxy_set_buffer_bytes, bytes of length 0xFFFFFFFF",
        "(call $set_buffer (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const -1))",
    ),
    (
        "proxy_get_header_map_pairs, return pointer out of bounds",
        "(call $get_pairs (i32.const 0) (i32.const 65533) (i32.const 4))",
    ),
    (
        "proxy_set_header_map_pairs, map running past the end of memory",
        "(call $set_pairs (i32.const 0) (i32.const 65000) (i32.const 1000))",
    ),
    (
        "proxy_http_call, upstream length 0xFFFFFFFF",
        "(call $http_call (i32.const 256) (i32.const -1) (i32.const 0) (i32.const 0)
           (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 1000) (i32.const 0))",
    ),
    (
        "proxy_http_call, headers pointer near 4 GiB",
        "(call $http_call (i32.const 256) (i32.const 5) (i32.const -8) (i32.const 16)
           (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 1000) (i32.const 0))",
    ),
    (
        "proxy_http_call, body out of bounds",
        "(call $http_call (i32.const 256) (i32.const 5) (i32.const 0) (i32.const 0)
           (i32.const 65536) (i32.const 1) (i32.const 0) (i32.const 0) (i32.const 1000) (i32.const 0))",
    ),
    (
        "proxy_get_property, path out of bounds",
        "(call $get_property (i32.const -1) (i32.const 1) (i32.const 0) (i32.const 4))",
    ),
    (
        "proxy_set_shared_data, value length 0xFFFFFFFF",
        "(call $set_shared (i32.const 256) (i32.const 5) (i32.const 0) (i32.const -1) (i32.const 0))",
    ),
    (
        "proxy_send_local_response, body out of bounds",
        "(call $local_response (i32.const 200) (i32.const 0) (i32.const 0) (i32.const 70000)
           (i32.const 10) (i32.const 0) (i32.const 0) (i32.const -1))",
    ),
    (
        "proxy_get_current_time_nanoseconds, 8 bytes into the last 4",
        "(call $now (i32.const 65532))",
    ),
    (
        "WASI fd_write, iovec array past the end",
        "(call $fd_write (i32.const 1) (i32.const 65532) (i32.const 1) (i32.const 0))",
    ),
    (
        "WASI fd_write, an iovec pointing near 4 GiB",
        "(call $fd_write (i32.const 1) (i32.const 512) (i32.const 1) (i32.const 0))",
    ),
    (
        "WASI random_get, 4 GiB into a 64 KiB memory",
        "(call $random_get (i32.const 0) (i32.const -1))",
    ),
    (
        "WASI environ_sizes_get, result out of bounds",
        "(call $environ_sizes (i32.const -1) (i32.const 0))",
    ),
];

#[test]
fn out_of_bounds_pointers_and_lengths_trap_the_callback() {
    for (what, body) in CASES {
        let wat = Wat::on_request_headers(body)
            .with(r#"(data (i32.const 256) ":path")"#)
            .with(r#"(data (i32.const 512) "\f0\ff\ff\ff\20\00\00\00")"#);
        let message = request_headers_trap(&wat);
        assert!(message.contains("out of bounds"), "{what}: {message}");
    }
    the_real_filter_still_works();
}

#[test]
fn an_allocator_that_answers_null_or_out_of_bounds_traps_the_callback() {
    let get_path =
        "(call $get_value (i32.const 0) (i32.const 256) (i32.const 5) (i32.const 0) (i32.const 4))";
    for (what, allocate, expected) in [
        ("null", "(i32.const 0)", "returned null"),
        ("past the end", "(i32.const 65536)", "out of bounds"),
        ("near 4 GiB", "(i32.const -1)", "out of bounds"),
        ("trapping", "(unreachable)", "unreachable"),
    ] {
        let wat = Wat::on_request_headers(get_path)
            .with(r#"(data (i32.const 256) ":path")"#)
            .allocate(allocate);
        let message = request_headers_trap(&wat);
        assert!(message.contains(expected), "{what}: {message}");
    }
    the_real_filter_still_works();
}

#[test]
fn what_the_host_keeps_of_guest_output_is_bounded() {
    // Two pages: a log line of all of it, then fd_write of 1024 iovecs that each cover all of
    // it. The host checks every byte but keeps one line's worth (64 KiB), not 128 MiB.
    let filter = Wat::new()
        .with(
            r#"(func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
                 (local $i i32)
                 (drop (memory.grow (i32.const 1)))
                 (drop (call $log (i32.const 2) (i32.const 0) (i32.const 131072)))
                 (loop $fill
                   (i32.store (i32.add (i32.const 8192) (i32.mul (local.get $i) (i32.const 8)))
                     (i32.const 0))
                   (i32.store (i32.add (i32.const 8196) (i32.mul (local.get $i) (i32.const 8)))
                     (i32.const 131072))
                   (local.set $i (i32.add (local.get $i) (i32.const 1)))
                   (br_if $fill (i32.lt_u (local.get $i) (i32.const 1024))))
                 (drop (call $fd_write (i32.const 1) (i32.const 8192) (i32.const 1024) (i32.const 16)))
                 (call $report (i32.load (i32.const 16)))
                 (i32.const 0))"#,
        )
        .harness();
    filter.exchange(&Request::get("/")).unwrap();
    let logs = filter.logs();
    let [logged, written, nwritten] = &logs[..] else {
        panic!("{} lines", logs.len());
    };
    assert!(
        logged.ends_with(" … (cut from 131072 bytes)"),
        "{}",
        logged.len()
    );
    assert!(logged.chars().count() < (64 << 10) + 32, "{}", logged.len());
    assert!(written.chars().count() <= 64 << 10, "{}", written.len());
    assert_eq!(
        nwritten,
        &(1024 * 131072).to_string(),
        "fd_write reports all as written"
    );
}
