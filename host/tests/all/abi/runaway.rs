//! Filters that trap mid-request, never return, recurse without end or grow without limit:
//! a trap (within the epoch deadline for loops), a failed instance, a bounded host.

use std::time::{Duration, Instant};

use prompter_host::testing::{Harness, Request};

use super::{request_headers_trap, the_real_filter_still_works, trap_in, Wat};

#[test]
fn a_trap_mid_request_is_an_error_naming_the_callback_and_fails_the_instance() {
    for (what, body, expected) in [
        ("unreachable", "(unreachable)", "unreachable"),
        (
            "division by zero",
            "(i32.div_u (i32.const 1) (i32.const 0))",
            "divide by zero",
        ),
        (
            "a load past the end of memory",
            "(i32.load (i32.const 65535))",
            "out of bounds",
        ),
        (
            "endless recursion",
            "(call $deep)",
            "call stack exhausted",
        ),
        (
            "endless recursion through the host's calls to the allocator",
            "(call $get_value (i32.const 0) (i32.const 256) (i32.const 5) (i32.const 0) (i32.const 4))",
            "call stack exhausted",
        ),
        (
            "WASI proc_exit",
            "(call $exit (i32.const 3)) (i32.const 0)",
            "proc_exit(3)",
        ),
    ] {
        let mut wat = Wat::on_request_headers(body)
            .import(r#"(import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))"#)
            .with("(func $deep (result i32) (call $deep))")
            .with(r#"(data (i32.const 256) ":path")"#);
        if what.contains("allocator") {
            wat = wat.allocate(
                "(drop (call $get_value (i32.const 0) (i32.const 256) (i32.const 5)
                   (i32.const 0) (i32.const 4)))
                 (i32.const 2048)",
            );
        }
        let message = request_headers_trap(&wat);
        assert!(message.contains(expected), "{what}: {message}");
    }
    the_real_filter_still_works();
}

#[test]
fn an_endless_loop_is_interrupted_by_the_epoch_deadline() {
    let started = Instant::now();
    let filter = Wat::on_request_headers("(loop $forever (br $forever)) (i32.const 0)").harness();
    let message = trap_in(
        filter.exchange(&Request::get("/")),
        "proxy_on_request_headers",
    );
    assert!(message.contains("interrupt"), "{message}");
    assert!(filter.instance().has_failed());
    // Generous: the point is that it ends at all, even on a loaded machine.
    assert!(started.elapsed() < Duration::from_secs(60), "{started:?}");
}

#[test]
fn an_endless_loop_while_starting_is_interrupted_too() {
    let started = Instant::now();
    let wat = Wat::new().with(r#"(func (export "_initialize") (loop $forever (br $forever)))"#);
    let outcome = Harness::builder().module(wat.module()).build().map(drop);
    let message = trap_in(outcome, "_initialize");
    assert!(message.contains("interrupt"), "{message}");
    // Generous: the point is that it ends at all, even on a loaded machine.
    assert!(started.elapsed() < Duration::from_secs(60), "{started:?}");
}

#[test]
fn memory_and_tables_do_not_grow_past_the_limits() {
    // One page is there; 8192 pages (512 MiB) is the limit; 0xFFFFFFFF is wasm's -1.
    let filter = Wat::on_request_headers(
        "(call $report (memory.grow (i32.const 1)))
         (call $report (memory.grow (i32.const 65535)))
         (call $report (memory.grow (i32.const 8191)))
         (call $report (memory.grow (i32.const 8190)))
         (call $report (memory.grow (i32.const 1)))
         (call $report (table.grow $table (ref.null func) (i32.const 0x7fffffff)))
         (call $report (table.grow $table (ref.null func) (i32.const 10)))
         (i32.const 0)",
    )
    .with("(table $table 1 funcref)")
    .harness();
    filter.exchange(&Request::get("/")).unwrap();
    let failed = u32::MAX.to_string();
    assert_eq!(
        filter.logs(),
        ["1", &failed, &failed, "2", &failed, &failed, "1"],
    );
    assert_eq!(filter.instance().memory_size(), 512 << 20);
    the_real_filter_still_works();
}
