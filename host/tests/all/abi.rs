//! The ABI against hostile or broken modules: errors and traps, never a host crash.
//!
//! Each test writes a minimal proxy-wasm filter in WAT ([`Wat`]) whose callback misbehaves,
//! then checks the host's answer and that the real filter still works in the same process.

mod bounds;
mod endless_allocation;
mod envoy_format;
mod every_callback_traps;
mod exports_nothing;
mod hostile_arguments;
mod modules;
mod runaway;
mod statuses;

use prompter_host::testing::{Harness, Request};
use prompter_host::vm::FilterModule;
use prompter_host::HostError;

/// Every ABI function the tests call, imported under a short name.
const IMPORTS: &str = r#"
  (import "env" "proxy_log" (func $log (param i32 i32 i32) (result i32)))
  (import "env" "proxy_get_header_map_value" (func $get_value (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_get_header_map_pairs" (func $get_pairs (param i32 i32 i32) (result i32)))
  (import "env" "proxy_set_header_map_pairs" (func $set_pairs (param i32 i32 i32) (result i32)))
  (import "env" "proxy_get_buffer_bytes" (func $get_buffer (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_set_buffer_bytes" (func $set_buffer (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_define_metric" (func $define (param i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_increment_metric" (func $increment (param i32 i64) (result i32)))
  (import "env" "proxy_record_metric" (func $record (param i32 i64) (result i32)))
  (import "env" "proxy_http_call" (func $http_call (param i32 i32 i32 i32 i32 i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_get_property" (func $get_property (param i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_set_shared_data" (func $set_shared (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_send_local_response" (func $local_response (param i32 i32 i32 i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_get_current_time_nanoseconds" (func $now (param i32) (result i32)))
  (import "env" "proxy_set_effective_context" (func $set_context (param i32) (result i32)))
  (import "env" "proxy_continue_stream" (func $continue (param i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "random_get" (func $random_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "environ_sizes_get" (func $environ_sizes (param i32 i32) (result i32)))
"#;

/// A minimal proxy-wasm filter in WAT. One 64 KiB page of memory, laid out as:
/// 0..16 return slots, 16..64 scratch for `$report`, 256.. the test's `data`, 1024.. the
/// heap of a bump allocator. `$report` logs an i32 as an unsigned decimal (statuses).
pub struct Wat {
    imports: String,
    fields: String,
    allocate: &'static str,
    configure: &'static str,
}

impl Wat {
    pub fn new() -> Self {
        Wat {
            imports: String::new(),
            fields: String::new(),
            allocate: "(global.get $heap)
                       (global.set $heap (i32.add (global.get $heap) (local.get $size)))",
            configure: "(i32.const 1)",
        }
    }

    /// A filter whose `proxy_on_request_headers` runs `body` (which leaves the action).
    pub fn on_request_headers(body: &str) -> Self {
        Self::new().with(&format!(
            r#"(func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32) {body})"#
        ))
    }

    /// An import beside the usual ones (they come first in a module).
    pub fn import(mut self, import: &str) -> Self {
        self.imports.push_str(import);
        self.imports.push('\n');
        self
    }

    /// Module fields: functions, exports, `data` segments, ….
    pub fn with(mut self, fields: &str) -> Self {
        self.fields.push_str(fields);
        self.fields.push('\n');
        self
    }

    /// The body of `proxy_on_memory_allocate (param $size i32) (result i32)`.
    pub fn allocate(mut self, body: &'static str) -> Self {
        self.allocate = body;
        self
    }

    /// The body of `proxy_on_configure`, which answers 1 (accept) by default.
    pub fn configure(mut self, body: &'static str) -> Self {
        self.configure = body;
        self
    }

    pub fn text(&self) -> String {
        let Wat {
            imports,
            fields,
            allocate,
            configure,
        } = self;
        format!(
            r#"(module
  {IMPORTS}
  {imports}
  (memory (export "memory") 1)
  (global $heap (mut i32) (i32.const 1024))
  (func (export "proxy_abi_version_0_2_1"))
  (func (export "proxy_on_memory_allocate") (param $size i32) (result i32) {allocate})
  (func (export "proxy_on_context_create") (param i32 i32))
  (func (export "proxy_on_vm_start") (param i32 i32) (result i32) (i32.const 1))
  (func (export "proxy_on_configure") (param i32 i32) (result i32) {configure})
  (func $report (param $value i32) (local $at i32)
    (local.set $at (i32.const 64))
    (loop $digits
      (local.set $at (i32.sub (local.get $at) (i32.const 1)))
      (i32.store8 (local.get $at)
        (i32.add (i32.const 48) (i32.rem_u (local.get $value) (i32.const 10))))
      (local.set $value (i32.div_u (local.get $value) (i32.const 10)))
      (br_if $digits (local.get $value)))
    (drop (call $log (i32.const 2) (local.get $at) (i32.sub (i32.const 64) (local.get $at)))))
  {fields}
)"#
        )
    }

    pub fn module(&self) -> FilterModule {
        FilterModule::from_bytes(self.text().as_bytes())
            .unwrap_or_else(|e| panic!("{e}\n{}", self.text()))
    }

    /// The filter, started with a small plugin configuration (buffer 7 is not empty).
    pub fn harness(&self) -> Harness {
        Harness::builder()
            .module(self.module())
            .plugin_config(r#"{"wat":true}"#)
            .cluster("upstream")
            .build()
            .unwrap_or_else(|e| panic!("{e}"))
    }
}

/// The message of a trap in `callback`; panics on any other outcome.
pub fn trap_in<T: std::fmt::Debug>(outcome: prompter_host::Result<T>, callback: &str) -> String {
    match outcome {
        Err(HostError::Trap {
            callback: trapped,
            message,
        }) if trapped == callback => message,
        other => panic!("expected a trap in {callback}, got {other:?}"),
    }
}

/// Runs one exchange through a filter that must trap in `proxy_on_request_headers`; the
/// instance is then marked failed and refuses further work. Returns the trap's message.
pub fn request_headers_trap(wat: &Wat) -> String {
    let filter = wat.harness();
    let message = trap_in(
        filter.exchange(&Request::get("/")),
        "proxy_on_request_headers",
    );
    assert!(filter.instance().has_failed());
    let again = trap_in(
        filter.exchange(&Request::get("/")),
        "proxy_on_context_create",
    );
    assert!(again.contains("instance failed earlier"), "{again}");
    assert!(
        filter
            .logs()
            .iter()
            .any(|l| l.starts_with("proxy_on_request_headers trapped")),
        "{:?}",
        filter.logs()
    );
    message
}

/// A fresh instance of the real filter still serves, in the process the hostile module ran in.
pub fn the_real_filter_still_works() {
    let filter = Harness::with_config(r#"{"health":{"interval_seconds":0}}"#);
    let outcome = filter.exchange(&Request::get("/healthz")).unwrap();
    assert!(outcome.local_response.is_none());
    assert!(!filter.instance().has_failed());
}
