//! Corrupt, foreign or refusing modules: a clear error when loading or starting, or, for an
//! import the host lacks, a trap only if the filter calls it.

use prompter_host::testing::{default_wasm, Harness, Request};
use prompter_host::vm::FilterModule;
use prompter_host::HostError;

use super::{request_headers_trap, the_real_filter_still_works, Wat};

fn compile_error(bytes: &[u8]) -> String {
    match FilterModule::from_bytes(bytes).map(drop) {
        Err(HostError::Compile(message)) => message,
        other => panic!("expected a compile error, got {other:?}"),
    }
}

fn abi_error(wat: &str) -> String {
    match FilterModule::from_bytes(wat.as_bytes()).map(drop) {
        Err(HostError::Abi(message)) => message,
        other => panic!("expected an ABI error, got {other:?}"),
    }
}

#[test]
fn corrupt_bytes_are_a_compile_error_with_a_message() {
    // Garbage (a fixed xorshift sequence, so a failure can be replayed).
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let garbage: Vec<u8> = (0..4096)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    let real = std::fs::read(default_wasm()).expect("the filter is built");
    let mut flipped = real.clone();
    flipped[8..64].fill(0xff);
    for (what, bytes) in [
        ("random garbage", &garbage[..]),
        ("empty", &[][..]),
        ("the wasm magic alone", b"\0asm"),
        ("the real filter cut in half", &real[..real.len() / 2]),
        (
            "the real filter with its first section overwritten",
            &flipped,
        ),
        ("WAT that does not parse", b"(module (func (export"),
    ] {
        let message = compile_error(bytes);
        assert!(!message.is_empty(), "{what}");
        let shown = HostError::Compile(message).to_string();
        assert!(
            shown.starts_with("invalid wasm module: "),
            "{what}: {shown}"
        );
    }
    the_real_filter_still_works();
}

#[test]
fn a_module_that_is_not_a_proxy_wasm_filter_is_an_abi_error() {
    let message = abi_error(r#"(module (memory (export "memory") 1) (func (export "run")))"#);
    assert!(message.contains("proxy_abi_version_0_2_1"), "{message}");
    let message = abi_error(r#"(module (func (export "proxy_abi_version_0_2_1")))"#);
    assert!(message.contains("proxy_on_memory_allocate"), "{message}");
    // A callback with the wrong signature is refused when the instance is made.
    let wat = Wat::new().with(r#"(func (export "proxy_on_request_headers") (param i32))"#);
    match Harness::builder().module(wat.module()).build().map(drop) {
        Err(HostError::Abi(message)) => {
            assert!(message.contains("proxy_on_request_headers"), "{message}")
        }
        other => panic!("expected an ABI error, got {other:?}"),
    }
}

#[test]
fn an_abi_import_with_the_wrong_signature_is_refused_when_instantiated() {
    let wat = Wat::new()
        .import(r#"(import "env" "proxy_get_property" (func $wrong (param i64) (result i32)))"#);
    match Harness::builder().module(wat.module()).build().map(drop) {
        Err(HostError::Compile(message)) => {
            assert!(message.contains("proxy_get_property"), "{message}")
        }
        other => panic!("expected an instantiation error, got {other:?}"),
    }
}

#[test]
fn an_unknown_import_loads_and_traps_only_when_called() {
    let import =
        r#"(import "env" "proxy_does_not_exist" (func $missing (param i32) (result i32)))"#;
    // Never called: the filter serves.
    let quiet = Wat::on_request_headers("(i32.const 0)")
        .import(import)
        .harness();
    quiet.exchange(&Request::get("/")).unwrap();
    assert!(!quiet.instance().has_failed());
    // Called: a trap naming the import.
    let calling = Wat::on_request_headers("(call $missing (i32.const 1))").import(import);
    let message = request_headers_trap(&calling);
    assert!(message.contains("proxy_does_not_exist"), "{message}");
}

#[test]
fn a_refused_configuration_is_an_error_with_the_modules_log_lines() {
    let wat = Wat::new()
        .configure(
            "(drop (call $log (i32.const 4) (i32.const 256) (i32.const 21)))
             (i32.const 0)",
        )
        .with(r#"(data (i32.const 256) "bad config: no routes")"#);
    let error = Harness::builder()
        .module(wat.module())
        .build()
        .map(drop)
        .unwrap_err();
    let shown = error.to_string();
    match error {
        HostError::Refused { callback, logs } => {
            assert_eq!(callback, "proxy_on_configure");
            assert_eq!(logs, ["bad config: no routes"]);
            assert!(shown.contains("bad config: no routes"), "{shown}");
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
}
