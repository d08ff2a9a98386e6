//! A tiny proxy-wasm filter (WAT) that counts one series on every request and traps on the
//! `trap_on`-th request of each instance: the proxy must replace the instance, and what it
//! counted must survive the replacement. The real filter never traps, so a test of instance
//! replacement needs one that does.

use prompter_filter::stat_name;

/// The filter's text: `proxy_on_request_headers` adds 1 to the counter `series` (encoded with
/// `labels` as the real filter encodes its stat names), then traps if it is the instance's
/// `trap_on`-th request.
pub fn wat(series: &str, labels: &[(&str, &str)], trap_on: u32) -> String {
    let name = stat_name::encode(series, labels);
    assert!(
        !name.contains(['"', '\\']),
        "{name} cannot go into a WAT string as is"
    );
    format!(
        r#"(module
  (import "env" "proxy_define_metric" (func $define (param i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_increment_metric" (func $increment (param i32 i64) (result i32)))
  (memory (export "memory") 1)
  ;; The stat name at 64, the metric id written at 8.
  (data (i32.const 64) "{name}")
  (global $requests (mut i32) (i32.const 0))
  (func (export "proxy_abi_version_0_2_1"))
  (func (export "proxy_on_memory_allocate") (param i32) (result i32) i32.const 4096)
  (func (export "proxy_on_context_create") (param i32 i32))
  (func (export "proxy_on_vm_start") (param i32 i32) (result i32) i32.const 1)
  (func (export "proxy_on_configure") (param i32 i32) (result i32) i32.const 1)
  (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
    ;; Counter is metric type 0.
    (drop (call $define (i32.const 0) (i32.const 64) (i32.const {len}) (i32.const 8)))
    (drop (call $increment (i32.load (i32.const 8)) (i64.const 1)))
    (global.set $requests (i32.add (global.get $requests) (i32.const 1)))
    (if (i32.ge_u (global.get $requests) (i32.const {trap_on})) (then unreachable))
    i32.const 0))"#,
        len = name.len(),
    )
}
