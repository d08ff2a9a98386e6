//! What the host keeps for one filter instance (one per worker, as Envoy keeps one VM per
//! worker): the streams in flight, pending http calls, the tick period, and handles to what
//! all instances share (metrics, shared data, logs, clock).

use std::collections::HashMap;
use std::sync::Arc;

use crate::clock::Clock;
use crate::logs::Logs;
use crate::metrics::MetricStore;
use crate::shared_data::SharedData;

/// A header map as proxy-wasm sees it: ordered pairs, names and values as bytes.
pub type HeaderMap = Vec<(Vec<u8>, Vec<u8>)>;

/// Everything every instance of a process shares.
#[derive(Clone)]
pub struct Shared {
    pub metrics: Arc<MetricStore>,
    pub shared_data: Arc<SharedData>,
    pub logs: Arc<Logs>,
    pub clock: Clock,
}

/// Configuration handed to the plugin, and the VM's environment (WASI `environ`).
#[derive(Debug, Clone)]
pub struct PluginSetup {
    pub plugin_config: Vec<u8>,
    pub vm_config: Vec<u8>,
    pub env: Vec<(String, String)>,
    /// Cluster names `proxy_http_call` may target.
    pub clusters: Vec<String>,
}

impl Default for PluginSetup {
    /// No plugin configuration; a VM configuration saying this host exports real histograms
    /// (so the filter records durations for them, see `prompter_filter::config::VmOptions`).
    fn default() -> Self {
        PluginSetup {
            plugin_config: Vec::new(),
            vm_config: prompter_filter::config::NATIVE_HISTOGRAMS_VM_CONFIG
                .as_bytes()
                .to_vec(),
            env: Vec::new(),
            clusters: Vec::new(),
        }
    }
}

/// A reply the filter asked the host to send instead of the upstream's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalResponse {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

/// One HTTP stream's maps, current body chunk and properties.
#[derive(Debug, Default)]
pub struct StreamState {
    pub request_headers: HeaderMap,
    pub request_trailers: HeaderMap,
    pub response_headers: HeaderMap,
    pub response_trailers: HeaderMap,
    pub request_body: Vec<u8>,
    pub response_body: Vec<u8>,
    pub properties: HashMap<String, Vec<u8>>,
    pub local_response: Option<LocalResponse>,
    pub resume_request: bool,
    pub resume_response: bool,
    /// The filter asked to reset the stream (`proxy_close_stream`).
    pub closed: bool,
    /// The last body callback paused: the next chunk is appended, as Envoy buffers.
    pub buffering_request: bool,
    pub buffering_response: bool,
}

/// An http call the filter dispatched; the embedder performs it and reports back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpCallRequest {
    pub token: u32,
    pub cluster: String,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
    pub timeout_ms: u32,
}

/// The answer to an http call (`None` where the call failed: reset, timeout, no upstream).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HttpCallResponse {
    pub headers: HeaderMap,
    pub body: Vec<u8>,
    pub trailers: HeaderMap,
}

pub struct HostState {
    pub shared: Shared,
    pub setup: PluginSetup,
    pub root_context: u32,
    pub effective_context: u32,
    pub streams: HashMap<u32, StreamState>,
    pub tick_period_ms: u32,
    pub next_token: u32,
    pub pending_calls: Vec<HttpCallRequest>,
    /// The response being delivered while `proxy_on_http_call_response` runs.
    pub call_response: Option<HttpCallResponse>,
    /// Host calls made by the guest, for the benchmark of host calls per request.
    pub host_calls: u64,
    pub limits: wasmtime::StoreLimits,
    /// The guest's memory and allocator, found once the instance exists.
    pub guest: GuestExports,
}

/// What host calls reach in the guest, looked up by name once after instantiation: a lookup
/// by name is a search of the module's exports, and host calls made two per call (the memory,
/// then the allocator for a returned value), ~1,500 instructions each time.
#[derive(Clone, Default)]
pub struct GuestExports {
    pub memory: Option<wasmtime::Memory>,
    /// `proxy_on_memory_allocate`, when the module exports it with the ABI's type.
    pub allocate: Option<wasmtime::TypedFunc<i32, i32>>,
}

impl HostState {
    pub fn new(shared: Shared, setup: PluginSetup, limits: wasmtime::StoreLimits) -> Self {
        HostState {
            shared,
            setup,
            root_context: 1,
            effective_context: 1,
            streams: HashMap::new(),
            tick_period_ms: 0,
            next_token: 1,
            pending_calls: Vec::new(),
            call_response: None,
            host_calls: 0,
            limits,
            guest: GuestExports::default(),
        }
    }

    /// The stream the guest is acting on, if its effective context is one.
    pub fn stream(&mut self) -> Option<&mut StreamState> {
        self.streams.get_mut(&self.effective_context)
    }
}
