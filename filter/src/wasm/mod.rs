//! The proxy-wasm layer: one root context per plugin (configuration, health polling) and one
//! HTTP context per request, each callback delegating to the plain-Rust logic.

mod health;
mod http;
mod lease;
mod openapi;
mod root;
mod stats;

use proxy_wasm::types::{LogLevel, MapType, Status};

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

/// A whole header map in one host call, serialized (read with [`crate::header_map`]). The
/// SDK's map getters copy every pair into its own `String`s; the request path only needs two
/// values, read in place.
fn header_map_bytes(map: MapType) -> Option<Vec<u8>> {
    #[link(wasm_import_module = "env")]
    extern "C" {
        fn proxy_get_header_map_pairs(
            map_type: MapType,
            return_map_data: *mut *mut u8,
            return_map_size: *mut usize,
        ) -> Status;
    }
    let mut data: *mut u8 = std::ptr::null_mut();
    let mut size: usize = 0;
    // SAFETY: on `Ok` the host has written a buffer of `size` bytes that it allocated through
    // this module's `proxy_on_memory_allocate` (the SDK's, a boxed slice of exactly `size`
    // bytes); ownership passes to us, as in the SDK's own map getters.
    unsafe {
        match proxy_get_header_map_pairs(map, &mut data, &mut size) {
            Status::Ok if !data.is_null() => Some(Vec::from_raw_parts(data, size, size)),
            _ => None,
        }
    }
}
