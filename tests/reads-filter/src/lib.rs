//! The second floor of the benchmarks: a proxy-wasm filter that makes, per request, only the
//! host calls any filter labelling requests by method, route, status and duration must make —
//! `:method`, `:path`, `:status` and the clock at both ends, the calls `prompter_filter` makes
//! on a request whose bodies it does not read — and drops what it read. Whatever it
//! costs over the empty filter is the price of those host calls (and of the copies into the
//! VM they return) in Envoy's Wasm runtime; whatever `prompter_filter` costs over it is our
//! own work.
//!
//! `scripts/build-wasm` builds it with the filter, the same way → `target/wasm/prompter_reads_filter.wasm`

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

/// Reads the method, the path and the start time, the status, and the end time.
pub struct ReadsHttp;

impl Context for ReadsHttp {}

impl HttpContext for ReadsHttp {
    fn on_http_request_headers(&mut self, _headers: usize, _end_of_stream: bool) -> Action {
        black_box(self.get_http_request_header_bytes(":method"));
        black_box(self.get_http_request_header_bytes(":path"));
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
