//! One filter instance fed whole exchanges the way Envoy feeds them, for measurements: the
//! bench (`benches/request.rs`) and the instruction counts (`examples/request_mix.rs`) drive
//! their exchanges here, so that both measure the same work.

use super::{shared_for, Request};
use crate::clock::Clock;
use crate::error::Result;
use crate::state::PluginSetup;
use crate::vm::{FilterInstance, FilterModule};

/// A filter instance with a manual clock, fed exchanges with Envoy-like header maps. Unlike
/// [`Harness::exchange`](super::Harness::exchange) it keeps nothing of what the filter did,
/// so that a measurement counts only the filter's and the host's work.
pub struct EnvoyDriver {
    pub vm: FilterInstance,
    clock: Clock,
}

impl EnvoyDriver {
    /// An instance of `module` with `setup`, metrics of its own and a manual clock at
    /// `start_nanos`.
    pub fn start(module: &FilterModule, setup: PluginSetup, start_nanos: u64) -> Result<Self> {
        let clock = Clock::manual(start_nanos);
        let shared = shared_for(&setup.plugin_config, &setup.env, clock.clone());
        let vm = FilterInstance::new(module, shared, setup)?;
        Ok(EnvoyDriver { vm, clock })
    }

    /// Every callback of one exchange: create, request headers (and body), response headers
    /// (and body), log, done, delete. Envoy's usual headers come first, then the request's
    /// own; each body is one chunk (`chunk` is not read), no status is `200`, and the clock
    /// moves by `duration_nanos` between the request and the response.
    pub fn exchange(&mut self, request: &Request) -> Result<()> {
        let vm = &mut self.vm;
        let id = vm.create_stream()?;
        let mut headers = vec![
            header(":authority", "prompter-api"),
            header(":path", &request.path),
            header(":method", &request.method),
            header(":scheme", "http"),
            header("user-agent", "wrk"),
            header("content-type", "application/json"),
            header("x-forwarded-proto", "http"),
            header("x-request-id", "0b8c3f6e-6a43-4c1e-9f1e-3f2d0c1a7b55"),
        ];
        // Only when there are any: an empty extend is a call that would be counted too.
        if !request.headers.is_empty() {
            headers.extend_from_slice(&request.headers);
        }
        let body = &request.body;
        vm.on_request_headers(id, headers, body.is_empty())?;
        if !body.is_empty() {
            vm.on_request_body(id, body, true)?;
        }
        self.clock.advance_nanos(request.duration_nanos);
        let response = &request.response_body;
        let mut headers = vec![
            header(":status", request.status.as_deref().unwrap_or("200")),
            header("content-type", "application/json"),
            header("content-length", &response.len().to_string()),
            header("x-envoy-upstream-service-time", "1"),
        ];
        if !request.response_headers.is_empty() {
            headers.extend_from_slice(&request.response_headers);
        }
        vm.on_response_headers(id, headers, response.is_empty())?;
        if !response.is_empty() {
            vm.on_response_body(id, response, true)?;
        }
        vm.finish_stream(id)
    }
}

fn header(name: &str, value: &str) -> (Vec<u8>, Vec<u8>) {
    (name.as_bytes().to_vec(), value.as_bytes().to_vec())
}
