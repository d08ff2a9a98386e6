//! The floor of the benchmarks: a proxy-wasm filter with a root and an HTTP context that do
//! nothing, so whatever Envoy pays for it is the cost of any Wasm filter, before its own work.
//!
//! `scripts/build-wasm` builds it with the filter, the same way → `target/wasm/prompter_empty_filter.wasm`

use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::ContextType;

/// Accepts any configuration and creates an [`EmptyHttp`] per request.
pub struct EmptyRoot;

impl Context for EmptyRoot {}

impl RootContext for EmptyRoot {
    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(EmptyHttp))
    }
}

/// Lets every callback take the SDK's default: continue, touch nothing.
pub struct EmptyHttp;

impl Context for EmptyHttp {}

impl HttpContext for EmptyHttp {}

#[cfg(target_arch = "wasm32")]
proxy_wasm::main! {{
    proxy_wasm::set_root_context(|_| Box::new(EmptyRoot));
}}
