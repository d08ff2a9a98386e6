//! The second floor of the benchmarks: a proxy-wasm filter that reads, per request, only what
//! any filter labelling requests by method, route, status and duration must read from Envoy —
//! the request headers (one call for the map), the `:status` and the clock at both ends — and
//! then drops it. Whatever it costs over the empty filter is the price of those host calls in
//! Envoy's Wasm runtime; whatever `prompter_filter` costs over it is our own work.
//!
//! `cargo build -p prompter-reads-filter --target wasm32-wasip1 --release`
//! → `target/wasm32-wasip1/release/prompter_reads_filter.wasm`

use std::hint::black_box;

use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType};

/// Accepts any configuration and creates a [`ReadsHttp`] per request.
pub struct ReadsRoot;

impl Context for ReadsRoot {}

impl RootContext for ReadsRoot {
    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(ReadsHttp))
    }
}

/// Reads the request headers and the start time, the status, and the end time.
pub struct ReadsHttp;

impl Context for ReadsHttp {}

impl HttpContext for ReadsHttp {
    fn on_http_request_headers(&mut self, _headers: usize, _end_of_stream: bool) -> Action {
        black_box(proxy_wasm::hostcalls::get_map_bytes(
            proxy_wasm::types::MapType::HttpRequestHeaders,
        ))
        .ok();
        black_box(self.get_current_time());
        Action::Continue
    }

    fn on_http_response_headers(&mut self, _headers: usize, _end_of_stream: bool) -> Action {
        black_box(self.get_http_response_header_bytes(":status"));
        Action::Continue
    }

    fn on_log(&mut self) {
        black_box(self.get_current_time());
    }
}

#[cfg(target_arch = "wasm32")]
proxy_wasm::main! {{
    proxy_wasm::set_root_context(|_| Box::new(ReadsRoot));
}}
