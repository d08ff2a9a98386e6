//! The proxy-wasm layer: one root context per plugin (configuration, health polling) and one
//! HTTP context per request, each callback delegating to the plain-Rust logic.

mod allocator;
mod health;
mod host;
mod http;
mod lease;
mod openapi;
mod root;
mod stats;

use proxy_wasm::types::LogLevel;

#[global_allocator]
static ALLOCATOR: allocator::Classes = allocator::Classes::new();

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|_| Box::new(root::PluginRoot::default()));
}}

/// Logs through the host; a host that refuses the log line leaves nothing else to do.
fn log(level: LogLevel, message: &str) {
    let _ = proxy_wasm::hostcalls::log(level, message);
}

fn now_nanos(time: std::time::SystemTime) -> u64 {
    time.duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}
