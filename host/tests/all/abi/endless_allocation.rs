//! Filters that allocate without end stop at the host's memory limit: 512 MiB of linear
//! memory per instance (8192 pages of 64 KiB; `MEMORY_LIMIT` in `vm.rs`). Growing past it
//! answers -1 (as wasm says a failed `memory.grow` does), so a filter that loops on it
//! ends; an allocator that grows on every call ends with a null address, which traps the
//! callback. Either way the instance's memory is measured at the limit (to the step).

use std::time::{Duration, Instant};

use prompter_host::testing::Request;

use super::{request_headers_trap, the_real_filter_still_works, Wat};

/// The host's limit on one instance's linear memory.
const LIMIT: usize = 512 << 20;

#[test]
fn memory_grow_in_a_loop_stops_at_the_limit() {
    // Grows one page at a time until refused, then logs the page count.
    let started = Instant::now();
    let filter = Wat::on_request_headers(
        "(loop $more (br_if $more (i32.ne (memory.grow (i32.const 1)) (i32.const -1))))
         (call $report (memory.size))
         (i32.const 0)",
    )
    .harness();
    filter.exchange(&Request::get("/")).unwrap();
    let elapsed = started.elapsed();
    assert_eq!(filter.logs(), [(LIMIT >> 16).to_string()]);
    assert_eq!(filter.instance().memory_size(), LIMIT);
    assert!(!filter.instance().has_failed(), "a refused grow is no trap");
    // The instance serves on, at its limit.
    filter.exchange(&Request::get("/")).unwrap();
    assert_eq!(filter.instance().memory_size(), LIMIT);
    assert!(elapsed < Duration::from_secs(8), "{elapsed:?}");
    eprintln!("memory.grow loop: {} MiB in {elapsed:?}", LIMIT >> 20);
    the_real_filter_still_works();
}

#[test]
fn an_allocator_that_grows_on_every_call_ends_in_a_trap_at_the_limit() {
    // Each allocation grows the memory by 1 MiB and hands out the new part; the filter
    // reads its request headers in an endless loop, allocating every time.
    let wat = Wat::on_request_headers(
        "(loop $forever
           (drop (call $get_pairs (i32.const 0) (i32.const 0) (i32.const 4)))
           (br $forever))
         (i32.const 0)",
    )
    .allocate(
        "(local $page i32)
         (local.set $page (memory.grow (i32.const 16)))
         (if (result i32) (i32.eq (local.get $page) (i32.const -1))
           (then (i32.const 0))
           (else (i32.mul (local.get $page) (i32.const 65536))))",
    );
    let filter = wat.harness();
    let outcome = filter.exchange(&Request::get("/"));
    // One page, then 1 MiB steps while they fit: 1 + 16 × 511 pages, the next step refused.
    let memory = filter.instance().memory_size();
    assert_eq!(memory, (1 + 16 * 511) << 16, "{memory}");
    assert!(LIMIT - memory < 16 << 16);
    eprintln!("allocator growing 1 MiB a call: stopped at {memory} bytes");
    drop(filter);
    drop(outcome);
    // The same again through the shared checks: a trap naming the callback, the instance
    // failed, the log says so.
    let message = request_headers_trap(&wat);
    assert!(message.contains("returned null"), "{message}");
    the_real_filter_still_works();
}
