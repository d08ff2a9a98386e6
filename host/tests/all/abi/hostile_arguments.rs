//! Every host function that takes guest pointers, called with generated arguments: pointers
//! and lengths at zero, inside memory, at and past its end, near `i32::MAX` and `u32::MAX`,
//! and anything else. Whatever they are, the host does not panic, the call answers a
//! proxy-wasm status (or a WASI errno) or traps the callback with an error naming it, and
//! the filter keeps serving: the same instance after a status, a fresh one after a trap.
//!
//! One module imports them all; its `proxy_on_request_body` reads the case (a function index
//! and twelve arguments) from the request body, makes the call and logs the status, so one
//! compiled module serves every case.

use std::collections::BTreeSet;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::OnceLock;

use prompter_host::abi::{self, UNIMPLEMENTED};
use prompter_host::clock::Clock;
use prompter_host::state::{HostState, PluginSetup};
use prompter_host::testing::{shared_for, Harness, Request};
use prompter_host::vm::FilterModule;
use prompter_host::HostError;
use proptest::prelude::*;

use super::Wat;
use crate::properties::config;

const ENV: &str = "env";
const WASI: &str = "wasi_snapshot_preview1";

/// The host functions that take a guest pointer, with their parameter counts (all i32).
const POINTER_FUNCTIONS: [(&str, &str, usize); 24] = [
    (ENV, "proxy_log", 3),
    (ENV, "proxy_get_log_level", 1),
    (ENV, "proxy_get_current_time_nanoseconds", 1),
    (ENV, "proxy_get_property", 4),
    (ENV, "proxy_set_property", 4),
    (ENV, "proxy_send_local_response", 8),
    (ENV, "proxy_get_header_map_pairs", 3),
    (ENV, "proxy_set_header_map_pairs", 3),
    (ENV, "proxy_get_header_map_value", 5),
    (ENV, "proxy_replace_header_map_value", 5),
    (ENV, "proxy_add_header_map_value", 5),
    (ENV, "proxy_remove_header_map_value", 3),
    (ENV, "proxy_get_buffer_bytes", 5),
    (ENV, "proxy_set_buffer_bytes", 5),
    (ENV, "proxy_get_buffer_status", 3),
    (ENV, "proxy_http_call", 10),
    (ENV, "proxy_get_shared_data", 5),
    (ENV, "proxy_set_shared_data", 5),
    (ENV, "proxy_define_metric", 4),
    (ENV, "proxy_get_metric", 2),
    (WASI, "environ_sizes_get", 2),
    (WASI, "environ_get", 2),
    (WASI, "fd_write", 4),
    (WASI, "random_get", 2),
];

/// The host's other functions: no pointer among their parameters.
const NO_POINTERS: [&str; 8] = [
    "proxy_set_tick_period_milliseconds",
    "proxy_set_effective_context",
    "proxy_done",
    "proxy_continue_stream",
    "proxy_close_stream",
    "proxy_increment_metric",
    "proxy_record_metric",
    "proc_exit",
];

/// Every function called here: those above, then the unimplemented ones (whose parameters
/// are pointers too, though the host never reads them).
fn functions() -> Vec<(&'static str, &'static str, usize)> {
    POINTER_FUNCTIONS
        .iter()
        .copied()
        .chain(UNIMPLEMENTED.iter().map(|(name, n)| (ENV, *name, *n)))
        .collect()
}

/// Where the case is read from: the allocator answers this address for everything.
const SCRATCH: usize = 32768;
/// A function index that calls nothing: an idle request.
const IDLE: u32 = u32::MAX;
/// Arguments in a case: the most any host function takes (`proxy_grpc_call`).
const ARGS: usize = 12;

fn module() -> &'static FilterModule {
    static MODULE: OnceLock<FilterModule> = OnceLock::new();
    MODULE.get_or_init(|| {
        let mut wat = Wat::new().allocate("(i32.const 32768)");
        let mut dispatch = String::new();
        for (i, (module, name, params)) in functions().iter().enumerate() {
            let types = vec!["i32"; *params].join(" ");
            wat = wat.import(&format!(
                r#"(import "{module}" "{name}" (func $h{i} (param {types}) (result i32)))"#
            ));
            let args: String = (0..*params).map(|a| format!("(local.get $a{a}) ")).collect();
            dispatch.push_str(&format!(
                "(if (i32.eq (local.get $f) (i32.const {i})) (then (call $report (call $h{i} {args}))))\n"
            ));
        }
        let loads: String = (0..ARGS)
            .map(|a| format!("(local.set $a{a} (i32.load (i32.const {})))\n", SCRATCH + 4 + 4 * a))
            .collect();
        let locals: String = (0..ARGS).map(|a| format!("(local $a{a} i32) ")).collect();
        wat = wat
            .with(&format!(
                r#"(func (export "proxy_on_request_body") (param i32 i32 i32) (result i32)
                     (local $f i32) {locals}
                     ;; The case: the request body, copied to the scratch area by the host.
                     (drop (call $get_buffer (i32.const 0) (i32.const 0) (i32.const {body})
                       (i32.const 0) (i32.const 4)))
                     (local.set $f (i32.load (i32.const {SCRATCH})))
                     {loads}
                     {dispatch}
                     (i32.const 0))"#,
                body = 4 + 4 * ARGS
            ))
            // Something for pointers into the first page to find: a name and a header map.
            .with(r#"(data (i32.const 256) ":path")"#)
            .with(
                r#"(data (i32.const 512) "\01\00\00\00\05\00\00\00\01\00\00\00:path\00/\00")"#,
            );
        wat.module()
    })
}

fn harness() -> Harness {
    Harness::builder()
        .module(module().clone())
        .plugin_config(r#"{"wat":true}"#)
        .cluster("upstream")
        .env("METRICS_ENV", "prod")
        .build()
        .unwrap_or_else(|e| panic!("{e}"))
}

fn request(function: u32, args: &[u32; ARGS]) -> Request {
    let mut body = function.to_le_bytes().to_vec();
    for arg in args {
        body.extend_from_slice(&arg.to_le_bytes());
    }
    let mut request = Request::new("POST", "/");
    request.body = body;
    request
}

/// Statuses a host function may answer: proxy-wasm's `WasmResult`, WASI's errno.
fn is_status(module: &str, status: &str) -> bool {
    let proxy = [0, 1, 2, 3, 7, 8, 10, 12];
    let wasi = [0, 8];
    let allowed: &[i32] = if module == WASI { &wasi } else { &proxy };
    status
        .parse::<i32>()
        .is_ok_and(|status| allowed.contains(&status))
}

/// What happened to one call.
#[derive(Debug, PartialEq)]
enum Answer {
    Status,
    Trap,
}

/// Runs one call; checks the answer, and that the filter serves the next request.
fn call(function: usize, args: &[u32; ARGS]) -> Result<Answer, String> {
    let (module, name, _) = functions()[function];
    let filter = harness();
    let before = filter.logs().len();
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        filter.exchange(&request(function as u32, args))
    }))
    .map_err(|_| format!("{name}{args:x?}: the host panicked"))?;
    match outcome {
        Ok(_) => {
            let logs = filter.logs();
            let status = logs[before..].last().cloned().unwrap_or_default();
            if !is_status(module, &status) {
                return Err(format!(
                    "{name}{args:x?}: answered {status:?}; logs {logs:?}"
                ));
            }
            // The same instance serves on.
            filter
                .exchange(&request(IDLE, &[0; ARGS]))
                .map_err(|e| format!("{name}{args:x?}: the next request failed: {e}"))?;
            if filter.instance().has_failed() {
                return Err(format!("{name}{args:x?}: instance failed after a status"));
            }
            Ok(Answer::Status)
        }
        Err(HostError::Trap { callback, message }) => {
            if callback != "proxy_on_request_body" || message.is_empty() {
                return Err(format!("{name}{args:x?}: trap in {callback}: {message:?}"));
            }
            if !filter.instance().has_failed() {
                return Err(format!("{name}{args:x?}: trapped but not marked failed"));
            }
            // A fresh instance of the same module serves, as the proxy makes one.
            harness()
                .exchange(&request(IDLE, &[0; ARGS]))
                .map_err(|e| format!("{name}{args:x?}: a fresh instance failed: {e}"))?;
            Ok(Answer::Trap)
        }
        Err(other) => Err(format!("{name}{args:x?}: unexpected error {other}")),
    }
}

/// Pointers and lengths where bounds checks go wrong: zero, inside, the last bytes of the
/// one 64 KiB page, just past it, `i32::MAX` and the top of the 32-bit range; and any value.
fn argument() -> impl Strategy<Value = u32> {
    prop_oneof![
        2 => Just(0u32),
        2 => 0u32..600,
        2 => (0u32..16).prop_map(|k| 65536 - k),
        2 => (0u32..16).prop_map(|k| 65536 + k),
        1 => (0u32..16).prop_map(|k| i32::MAX as u32 - k),
        1 => (0u32..16).prop_map(|k| i32::MAX as u32 + 1 + k),
        2 => (0u32..16).prop_map(|k| u32::MAX - k),
        2 => any::<u32>(),
    ]
}

proptest! {
    #![proptest_config(config(512))]

    #[test]
    fn generated_pointers_and_lengths_get_a_status_or_a_trap_never_a_crash(
        function in 0..functions().len(),
        args in prop::array::uniform12(argument()),
    ) {
        let answer = call(function, &args);
        prop_assert!(answer.is_ok(), "{}", answer.unwrap_err());
    }
}

/// The extremes in every argument position of every function, the others zero: each is
/// answered, and each function both answers a status and traps where it can (so the calls
/// get past the host's first checks).
#[test]
fn every_argument_position_at_every_extreme_is_answered() {
    const EXTREMES: [u32; 6] = [65535, 65536, 65537, 0x7fff_ffff, 0x8000_0000, u32::MAX];
    let mut answers = BTreeSet::new();
    let mut calls = 0;
    for (function, (_, name, params)) in functions().iter().enumerate() {
        for position in 0..*params {
            for extreme in EXTREMES {
                let mut args = [0u32; ARGS];
                args[position] = extreme;
                let answer = call(function, &args).unwrap_or_else(|e| panic!("{e}"));
                answers.insert((name.to_string(), format!("{answer:?}")));
                calls += 1;
            }
        }
    }
    assert!(calls > 500, "{calls}");
    let missing: Vec<String> = POINTER_FUNCTIONS
        .iter()
        .flat_map(|(_, name, _)| {
            ["Status", "Trap"]
                .into_iter()
                .filter(|a| !answers.contains(&(name.to_string(), a.to_string())))
                .map(move |a| format!("{name}: {a}"))
        })
        .collect();
    // Answers that cannot happen with the other arguments zero: a function whose every
    // argument is a pointer it writes always traps at an extreme; `proxy_get_metric` answers
    // NotFound (no metric defined) and `fd_write` to fd 0 answers EBADF before they touch
    // memory.
    let impossible = [
        "proxy_get_log_level: Status",
        "proxy_get_current_time_nanoseconds: Status",
        "proxy_get_metric: Trap",
        "environ_sizes_get: Status",
        "environ_get: Status",
        "fd_write: Trap",
    ];
    assert_eq!(missing, impossible);
}

/// The lists above are every function the host defines, so a new one cannot be missed.
#[test]
fn the_lists_cover_every_host_function() {
    let engine = wasmtime::Engine::default();
    let mut linker = wasmtime::Linker::new(&engine);
    abi::add_to_linker(&mut linker).unwrap();
    let limits = wasmtime::StoreLimitsBuilder::new().build();
    let shared = shared_for(b"", &[], Clock::manual(0));
    let mut store = wasmtime::Store::new(
        &engine,
        HostState::new(shared, PluginSetup::default(), limits),
    );
    let defined: BTreeSet<String> = linker
        .iter(&mut store)
        .map(|(_, name, _)| name.to_string())
        .collect();
    let listed: BTreeSet<String> = functions()
        .iter()
        .map(|(_, name, _)| name.to_string())
        .chain(NO_POINTERS.iter().map(|n| n.to_string()))
        .collect();
    assert_eq!(defined, listed);
}
