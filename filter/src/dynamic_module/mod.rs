//! The filter as a native Envoy dynamic module (Envoy 1.40's `envoy.filters.http.dynamic_modules`),
//! on the same core as the Wasm build: a configuration per filter config ([`plugin`]), a
//! filter per stream ([`filter`]), Envoy's stats as sinks ([`stats`]), the health poll and the
//! OpenAPI fetch on the main thread. This file holds the hooks Envoy calls: each runs its body
//! behind the panic boundary ([`guard`]) and delegates; a hook that panicked lets the request
//! go on untouched and counts `prompter_filter_failures_total`.
//!
//! Built only with the `envoy-dynamic-module` feature (`scripts/build-native`): the hooks
//! call Envoy's `envoy_dynamic_module_callback_*` functions, which only Envoy defines.

mod abi;
mod filter;
mod guard;
mod health;
mod openapi;
mod plugin;
mod stats;

use std::ffi::{c_char, c_void};

use abi::{CalloutAnswer, EnvoyBuffer, EnvoyConfig, EnvoyFilter, EnvoyHttpHeader, CONTINUE};
use filter::RequestMetrics;
use guard::{guarded, Panicked};
use plugin::Plugin;

/// Why a callout was not sent (`envoy_dynamic_module_type_http_callout_init_result`).
fn callout_init_error(result: u32) -> &'static str {
    match result {
        1 => "MissingRequiredHeaders",
        2 => "ClusterNotFound",
        3 => "DuplicateCalloutId",
        4 => "CannotCreateRequest",
        _ => "unknown result",
    }
}

fn report(hook: &str, Panicked(message): &Panicked) {
    abi::log(
        abi::LOG_ERROR,
        &format!("prompter-filter: {hook} panicked ({message}); the traffic goes on untouched"),
    );
}

/// The filter Envoy got when one could not be built: every hook lets its stream pass.
static INERT: u8 = 0;

fn inert() -> *const c_void {
    std::ptr::from_ref(&INERT).cast()
}

/// Runs a stream hook on the filter at `module`; a panic abandons the stream's exchange and
/// is counted.
fn stream_hook(
    hook: &str,
    envoy: *mut c_void,
    module: *const c_void,
    body: impl FnOnce(&mut RequestMetrics, EnvoyFilter<'_>),
) {
    if module.is_null() || module == inert() {
        return;
    }
    // SAFETY: a non-inert `module` is the `RequestMetrics` `on_http_filter_new` boxed, which
    // Envoy passes only to this stream's hooks, one at a time, on its worker thread, until
    // `on_http_filter_destroy`.
    let metrics = unsafe { &mut *module.cast_mut().cast::<RequestMetrics>() };
    let filter = EnvoyFilter::in_hook(envoy);
    if let Err(panicked) = guarded(|| body(metrics, filter)) {
        metrics.abandon();
        report(hook, &panicked);
        let _ = guarded(|| metrics.count_failure(filter));
    }
}

/// Runs a main-thread hook of the configuration at `module`.
fn config_hook(hook: &str, module: *const c_void, body: impl FnOnce(&Plugin)) {
    if module.is_null() {
        return;
    }
    // SAFETY: `module` is the `Plugin` `on_http_filter_config_new` boxed, live until
    // `on_http_filter_config_destroy`.
    let plugin = unsafe { &*module.cast::<Plugin>() };
    if let Err(panicked) = guarded(|| body(plugin)) {
        report(hook, &panicked);
        let _ = guarded(|| plugin.count_failure());
    }
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_program_init() -> *const c_char {
    abi::ABI_VERSION.as_ptr()
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_config_new(
    config_envoy: *mut c_void,
    _name: EnvoyBuffer,
    config: EnvoyBuffer,
) -> *const c_void {
    let built = guarded(|| {
        // SAFETY: Envoy's configuration bytes, valid during this hook.
        let raw = unsafe { abi::bytes(config.ptr, config.length) };
        Plugin::new(EnvoyConfig::new(config_envoy), raw)
    });
    match built {
        Ok(Ok(plugin)) => Box::into_raw(Box::new(plugin)).cast_const().cast(),
        // A null configuration is refused: Envoy does not start with it.
        Ok(Err(line)) => {
            abi::log(abi::LOG_ERROR, &line);
            std::ptr::null()
        }
        Err(panicked) => {
            report("on_http_filter_config_new", &panicked);
            std::ptr::null()
        }
    }
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_config_destroy(module: *const c_void) {
    if module.is_null() {
        return;
    }
    // SAFETY: the `Plugin` boxed by `on_http_filter_config_new`, destroyed once, here.
    let plugin = unsafe { Box::from_raw(module.cast_mut().cast::<Plugin>()) };
    if let Err(panicked) = guarded(move || drop(plugin)) {
        report("on_http_filter_config_destroy", &panicked);
    }
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_config_scheduled(
    _config_envoy: *mut c_void,
    module: *const c_void,
    event_id: u64,
) {
    config_hook("on_http_filter_config_scheduled", module, |plugin| {
        plugin.on_scheduled(event_id)
    });
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_config_http_callout_done(
    _config_envoy: *mut c_void,
    module: *const c_void,
    callout_id: u64,
    result: u32,
    headers: *const EnvoyHttpHeader,
    headers_size: usize,
    chunks: *const EnvoyBuffer,
    chunks_size: usize,
) {
    config_hook(
        "on_http_filter_config_http_callout_done",
        module,
        |plugin| {
            // SAFETY: the arrays and counts Envoy passed to this hook.
            let answer =
                unsafe { CalloutAnswer::from_hook(headers, headers_size, chunks, chunks_size) };
            plugin.on_callout_done(callout_id, result, &answer);
        },
    );
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_new(
    config_module: *const c_void,
    _filter_envoy: *mut c_void,
) -> *const c_void {
    if config_module.is_null() {
        return inert();
    }
    // SAFETY: as in `config_hook`; Envoy creates filters while the configuration lives.
    let plugin = unsafe { &*config_module.cast::<Plugin>() };
    match guarded(|| RequestMetrics::new(&plugin.shared)) {
        Ok(metrics) => Box::into_raw(Box::new(metrics)).cast_const().cast(),
        // A null filter would close the stream; the inert one lets it pass.
        Err(panicked) => {
            report("on_http_filter_new", &panicked);
            inert()
        }
    }
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_request_headers(
    envoy: *mut c_void,
    module: *const c_void,
    _end_of_stream: bool,
) -> u32 {
    stream_hook("on_http_filter_request_headers", envoy, module, |m, f| {
        m.on_request_headers(f)
    });
    CONTINUE
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_request_body(
    envoy: *mut c_void,
    module: *const c_void,
    _end_of_stream: bool,
) -> u32 {
    stream_hook("on_http_filter_request_body", envoy, module, |m, f| {
        m.on_request_body(f)
    });
    CONTINUE
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_response_headers(
    envoy: *mut c_void,
    module: *const c_void,
    _end_of_stream: bool,
) -> u32 {
    stream_hook("on_http_filter_response_headers", envoy, module, |m, f| {
        m.on_response_headers(f)
    });
    CONTINUE
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_response_body(
    envoy: *mut c_void,
    module: *const c_void,
    _end_of_stream: bool,
) -> u32 {
    stream_hook("on_http_filter_response_body", envoy, module, |m, f| {
        m.on_response_body(f)
    });
    CONTINUE
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_stream_complete(
    envoy: *mut c_void,
    module: *const c_void,
) {
    stream_hook("on_http_filter_stream_complete", envoy, module, |m, f| {
        m.on_stream_complete(f)
    });
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_destroy(module: *const c_void) {
    if module.is_null() || module == inert() {
        return;
    }
    // SAFETY: the `RequestMetrics` boxed by `on_http_filter_new`, destroyed once, here.
    let metrics = unsafe { Box::from_raw(module.cast_mut().cast::<RequestMetrics>()) };
    if let Err(panicked) = guarded(move || drop(metrics)) {
        report("on_http_filter_destroy", &panicked);
    }
}

// Hooks Envoy resolves for every HTTP filter module, which this filter has no use for: it
// never reads trailers, starts no per-stream callout, schedules no per-stream event, and has
// no per-route configuration.

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_request_trailers(
    _envoy: *mut c_void,
    _module: *const c_void,
) -> u32 {
    CONTINUE
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_response_trailers(
    _envoy: *mut c_void,
    _module: *const c_void,
) -> u32 {
    CONTINUE
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_local_reply(
    _envoy: *mut c_void,
    _module: *const c_void,
    _response_code: u32,
    _details: EnvoyBuffer,
    _reset_imminent: bool,
) -> u32 {
    CONTINUE
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_http_callout_done(
    _envoy: *mut c_void,
    _module: *const c_void,
    _callout_id: u64,
    _result: u32,
    _headers: *const EnvoyHttpHeader,
    _headers_size: usize,
    _chunks: *const EnvoyBuffer,
    _chunks_size: usize,
) {
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_http_stream_headers(
    _envoy: *mut c_void,
    _module: *const c_void,
    _stream_id: u64,
    _headers: *const EnvoyHttpHeader,
    _headers_size: usize,
    _end_stream: bool,
) {
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_http_stream_data(
    _envoy: *mut c_void,
    _module: *const c_void,
    _stream_id: u64,
    _data: *const EnvoyBuffer,
    _data_count: usize,
    _end_stream: bool,
) {
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_http_stream_trailers(
    _envoy: *mut c_void,
    _module: *const c_void,
    _stream_id: u64,
    _trailers: *const EnvoyHttpHeader,
    _trailers_size: usize,
) {
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_http_stream_complete(
    _envoy: *mut c_void,
    _module: *const c_void,
    _stream_id: u64,
) {
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_http_stream_reset(
    _envoy: *mut c_void,
    _module: *const c_void,
    _stream_id: u64,
    _reason: u32,
) {
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_scheduled(
    _envoy: *mut c_void,
    _module: *const c_void,
    _event_id: u64,
) {
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_downstream_above_write_buffer_high_watermark(
    _envoy: *mut c_void,
    _module: *const c_void,
) {
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_downstream_below_write_buffer_low_watermark(
    _envoy: *mut c_void,
    _module: *const c_void,
) {
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_config_http_stream_headers(
    _config_envoy: *mut c_void,
    _module: *const c_void,
    _stream_id: u64,
    _headers: *const EnvoyHttpHeader,
    _headers_size: usize,
    _end_stream: bool,
) {
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_config_http_stream_data(
    _config_envoy: *mut c_void,
    _module: *const c_void,
    _stream_id: u64,
    _data: *const EnvoyBuffer,
    _data_count: usize,
    _end_stream: bool,
) {
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_config_http_stream_trailers(
    _config_envoy: *mut c_void,
    _module: *const c_void,
    _stream_id: u64,
    _trailers: *const EnvoyHttpHeader,
    _trailers_size: usize,
) {
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_config_http_stream_complete(
    _config_envoy: *mut c_void,
    _module: *const c_void,
    _stream_id: u64,
) {
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_config_http_stream_reset(
    _config_envoy: *mut c_void,
    _module: *const c_void,
    _stream_id: u64,
    _reason: u32,
) {
}

/// No per-route configuration: a route that sets one is refused.
#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_per_route_config_new(
    _name: EnvoyBuffer,
    _config: EnvoyBuffer,
) -> *const c_void {
    abi::log(
        abi::LOG_ERROR,
        "prompter-filter: takes no per-route configuration",
    );
    std::ptr::null()
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_per_route_config_destroy(
    _module: *const c_void,
) {
}
