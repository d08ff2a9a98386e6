//! Modules that export nothing: an empty module is not a filter (an error saying what is
//! missing, at load); a filter with only what the ABI requires (its version, memory and
//! allocator) and no callback at all starts, lets every exchange, tick and http call answer
//! through untouched, and records nothing.

use prompter_host::state::HttpCallResponse;
use prompter_host::testing::{Harness, Request};
use prompter_host::vm::{Action, FilterModule};
use prompter_host::HostError;

use super::the_real_filter_still_works;

#[test]
fn an_empty_module_is_refused_at_load_saying_what_is_missing() {
    for wat in ["(module)", r#"(module (memory (export "memory") 1))"#] {
        match FilterModule::from_bytes(wat.as_bytes()).map(drop) {
            Err(HostError::Abi(message)) => {
                assert!(message.contains("proxy_abi_version_0_2_1"), "{message}")
            }
            other => panic!("{wat}: expected an ABI error, got {other:?}"),
        }
    }
    the_real_filter_still_works();
}

#[test]
fn a_filter_without_callbacks_passes_everything_through_and_records_nothing() {
    let wat = r#"(module
      (memory (export "memory") 1)
      (func (export "proxy_abi_version_0_2_1"))
      (func (export "proxy_on_memory_allocate") (param i32) (result i32) (i32.const 1024)))"#;
    let filter = Harness::builder()
        .module(FilterModule::from_bytes(wat.as_bytes()).unwrap())
        .plugin_config(r#"{"ignored":true}"#)
        .build()
        .expect("a filter without callbacks starts");
    for _ in 0..3 {
        let outcome = filter
            .exchange(
                &Request::post("/api/prompt-templates/t-1/run", r#"{"provider":"openai"}"#)
                    .respond(r#"{"system_fingerprint":"fp"}"#)
                    .chunked(5),
            )
            .unwrap();
        assert!(outcome.actions.iter().all(|a| *a == Action::Continue));
        assert!(outcome.local_response.is_none());
    }
    filter.advance_seconds(5.0);
    filter.tick().unwrap();
    assert!(filter.take_http_calls().is_empty());
    // An answer to a call it never made is delivered nowhere, without error.
    filter
        .answer_http_call(7, Some(HttpCallResponse::default()))
        .unwrap();
    let mut vm = filter.instance();
    let id = vm.create_stream().unwrap();
    assert_eq!(
        vm.on_request_trailers(id, Vec::new()).unwrap(),
        Action::Continue
    );
    assert_eq!(
        vm.on_response_trailers(id, Vec::new()).unwrap(),
        Action::Continue
    );
    vm.finish_stream(id).unwrap();
    assert!(!vm.has_failed());
    assert_eq!(vm.host_calls(), 0, "it never called the host");
    assert_eq!(vm.memory_size(), 64 << 10);
    drop(vm);
    assert!(filter.series().0.is_empty(), "{:?}", filter.series());
    assert!(filter.logs().is_empty(), "{:?}", filter.logs());
}
