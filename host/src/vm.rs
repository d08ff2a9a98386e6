//! The filter module, compiled once per process, and its instances, one per worker (as Envoy
//! runs one VM per worker thread). An instance drives the guest through the proxy-wasm
//! lifecycle: start, configure, streams, ticks and http call responses.

use std::sync::Arc;
use std::time::Duration;

use wasmtime::{
    Config, Engine, Linker, Module, Store, StoreLimitsBuilder, TypedFunc, WasmParams, WasmResults,
};

use crate::abi;
use crate::error::{HostError, Result};
use crate::logs::Level;
use crate::state::{
    GuestExports, HeaderMap, HostState, HttpCallRequest, HttpCallResponse, LocalResponse,
    PluginSetup, Shared, StreamState,
};

/// How long one callback may run before it is interrupted (an endless loop must not hang a
/// worker): `EPOCH_DEADLINE` ticks of `EPOCH_TICK`.
const EPOCH_TICK: Duration = Duration::from_millis(10);
const EPOCH_DEADLINE: u64 = 200;
/// Linear memory one instance may grow to.
const MEMORY_LIMIT: usize = 512 << 20;
/// Table entries one instance may grow to (unlimited, `table.grow` could take gigabytes of
/// host memory; a Rust filter has a few hundred).
const TABLE_LIMIT: usize = 1 << 20;
const ROOT_CONTEXT: u32 = 1;

/// What a stream callback answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Continue,
    /// Stop iteration: the host holds what it has (and buffers body chunks) until resumed.
    Pause,
}

/// A compiled filter, shareable by every instance of the process.
#[derive(Clone)]
pub struct FilterModule {
    engine: Engine,
    module: Module,
    linker: Arc<Linker<HostState>>,
}

impl FilterModule {
    pub fn from_file(path: &std::path::Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|source| HostError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_bytes(&bytes)
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let mut config = Config::new();
        config.epoch_interruption(true);
        let engine = Engine::new(&config).map_err(|e| HostError::Compile(format!("{e:#}")))?;
        let module =
            Module::new(&engine, bytes).map_err(|e| HostError::Compile(format!("{e:#}")))?;
        let has_export = |name: &str| module.exports().any(|e| e.name() == name);
        if !has_export("proxy_abi_version_0_2_1") && !has_export("proxy_abi_version_0_2_0") {
            return Err(HostError::Abi(
                "no `proxy_abi_version_0_2_1` export: not a proxy-wasm 0.2 filter".into(),
            ));
        }
        if !has_export("memory") || !has_export("proxy_on_memory_allocate") {
            return Err(HostError::Abi(
                "a proxy-wasm filter exports `memory` and `proxy_on_memory_allocate`".into(),
            ));
        }
        let mut linker = Linker::new(&engine);
        abi::add_to_linker(&mut linker).map_err(|e| HostError::Compile(format!("{e:#}")))?;
        // Imports we do not provide (other WASI calls) trap when called, not at load.
        linker
            .define_unknown_imports_as_traps(&module)
            .map_err(|e| HostError::Compile(format!("{e:#}")))?;
        spawn_epoch_ticker(&engine);
        Ok(FilterModule {
            engine,
            module,
            linker: Arc::new(linker),
        })
    }
}

fn spawn_epoch_ticker(engine: &Engine) {
    let weak = engine.weak();
    std::thread::spawn(move || {
        while let Some(engine) = weak.upgrade() {
            engine.increment_epoch();
            drop(engine);
            std::thread::sleep(EPOCH_TICK);
        }
    });
}

/// `proxy_on_http_call_response(context, token, headers, body size, trailers)`.
type OnHttpCallResponse = TypedFunc<(i32, i32, i32, i32, i32), ()>;

struct Exports {
    on_context_create: Option<TypedFunc<(i32, i32), ()>>,
    on_vm_start: Option<TypedFunc<(i32, i32), i32>>,
    on_configure: Option<TypedFunc<(i32, i32), i32>>,
    on_request_headers: Option<TypedFunc<(i32, i32, i32), i32>>,
    on_request_body: Option<TypedFunc<(i32, i32, i32), i32>>,
    on_request_trailers: Option<TypedFunc<(i32, i32), i32>>,
    on_response_headers: Option<TypedFunc<(i32, i32, i32), i32>>,
    on_response_body: Option<TypedFunc<(i32, i32, i32), i32>>,
    on_response_trailers: Option<TypedFunc<(i32, i32), i32>>,
    on_log: Option<TypedFunc<i32, ()>>,
    on_done: Option<TypedFunc<i32, i32>>,
    on_delete: Option<TypedFunc<i32, ()>>,
    on_tick: Option<TypedFunc<i32, ()>>,
    on_http_call_response: Option<OnHttpCallResponse>,
}

/// One running instance of the filter.
pub struct FilterInstance {
    store: Store<HostState>,
    exports: Exports,
    memory: Option<wasmtime::Memory>,
    next_context: u32,
    failed: Option<String>,
}

/// A stream (one HTTP request/response) inside an instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct StreamId(u32);

impl FilterInstance {
    /// Instantiates, starts and configures the filter; a filter that refuses its
    /// configuration is an error carrying its log lines.
    pub fn new(module: &FilterModule, shared: Shared, setup: PluginSetup) -> Result<Self> {
        let limits = StoreLimitsBuilder::new()
            .memory_size(MEMORY_LIMIT)
            .table_elements(TABLE_LIMIT)
            .instances(1)
            .build();
        let mut store = Store::new(&module.engine, HostState::new(shared, setup, limits));
        store.limiter(|state| &mut state.limits);
        store.set_epoch_deadline(EPOCH_DEADLINE);
        let instance = module
            .linker
            .instantiate(&mut store, &module.module)
            .map_err(|e| HostError::Compile(format!("{e:#}")))?;
        let typed = |store: &mut Store<HostState>, name: &str| -> Option<wasmtime::Func> {
            instance.get_func(&mut *store, name)
        };
        macro_rules! export {
            ($name:literal) => {
                match typed(&mut store, $name) {
                    Some(f) => Some(
                        f.typed(&store)
                            .map_err(|e| HostError::Abi(format!("`{}`: {e}", $name)))?,
                    ),
                    None => None,
                }
            };
        }
        let exports = Exports {
            on_context_create: export!("proxy_on_context_create"),
            on_vm_start: export!("proxy_on_vm_start"),
            on_configure: export!("proxy_on_configure"),
            on_request_headers: export!("proxy_on_request_headers"),
            on_request_body: export!("proxy_on_request_body"),
            on_request_trailers: export!("proxy_on_request_trailers"),
            on_response_headers: export!("proxy_on_response_headers"),
            on_response_body: export!("proxy_on_response_body"),
            on_response_trailers: export!("proxy_on_response_trailers"),
            on_log: export!("proxy_on_log"),
            on_done: export!("proxy_on_done"),
            on_delete: export!("proxy_on_delete"),
            on_tick: export!("proxy_on_tick"),
            on_http_call_response: export!("proxy_on_http_call_response"),
        };
        let start: Option<TypedFunc<(), ()>> =
            match typed(&mut store, "_initialize").or_else(|| typed(&mut store, "_start")) {
                Some(f) => Some(
                    f.typed(&store)
                        .map_err(|e| HostError::Abi(format!("`_initialize`: {e}")))?,
                ),
                None => None,
            };
        let memory = instance.get_memory(&mut store, "memory");
        let allocate = typed(&mut store, "proxy_on_memory_allocate")
            .and_then(|f| f.typed::<i32, i32>(&store).ok());
        store.data_mut().guest = GuestExports { memory, allocate };
        let mut vm = FilterInstance {
            store,
            exports,
            memory,
            next_context: ROOT_CONTEXT + 1,
            failed: None,
        };
        if let Some(start) = start {
            vm.call("_initialize", &start, ())?;
        }
        let root = ROOT_CONTEXT as i32;
        if let Some(f) = vm.exports.on_context_create.clone() {
            vm.call("proxy_on_context_create", &f, (root, 0))?;
        }
        let vm_config_len = vm.store.data().setup.vm_config.len() as i32;
        if let Some(f) = vm.exports.on_vm_start.clone() {
            if vm.call("proxy_on_vm_start", &f, (root, vm_config_len))? == 0 {
                return Err(vm.refused("proxy_on_vm_start"));
            }
        }
        let plugin_config_len = vm.store.data().setup.plugin_config.len() as i32;
        if let Some(f) = vm.exports.on_configure.clone() {
            if vm.call("proxy_on_configure", &f, (root, plugin_config_len))? == 0 {
                return Err(vm.refused("proxy_on_configure"));
            }
        }
        Ok(vm)
    }

    fn refused(&self, callback: &'static str) -> HostError {
        let logs = self.store.data().shared.logs.lines();
        let logs = logs
            .into_iter()
            .filter(|(level, _)| *level >= Level::Warn)
            .map(|(_, l)| l)
            .collect();
        HostError::Refused { callback, logs }
    }

    /// Calls a guest export with the time limit; a trap marks the instance failed.
    fn call<P: WasmParams, R: WasmResults>(
        &mut self,
        callback: &'static str,
        f: &TypedFunc<P, R>,
        params: P,
    ) -> Result<R> {
        if let Some(message) = &self.failed {
            return Err(HostError::Trap {
                callback,
                message: format!("instance failed earlier: {message}"),
            });
        }
        self.store.set_epoch_deadline(EPOCH_DEADLINE);
        f.call(&mut self.store, params).map_err(|e| {
            let message = format!("{e:#}");
            self.failed = Some(message.clone());
            self.store
                .data()
                .shared
                .logs
                .push(Level::Error, format!("{callback} trapped: {message}"));
            HostError::Trap { callback, message }
        })
    }

    /// True once a callback trapped: the instance must be replaced.
    pub fn has_failed(&self) -> bool {
        self.failed.is_some()
    }

    pub fn create_stream(&mut self) -> Result<StreamId> {
        let id = self.next_context;
        self.next_context = self.next_context.wrapping_add(1).max(ROOT_CONTEXT + 1);
        self.store
            .data_mut()
            .streams
            .insert(id, StreamState::default());
        if let Some(f) = self.exports.on_context_create.clone() {
            self.enter(id);
            self.call(
                "proxy_on_context_create",
                &f,
                (id as i32, ROOT_CONTEXT as i32),
            )?;
        }
        Ok(StreamId(id))
    }

    fn enter(&mut self, context: u32) {
        self.store.data_mut().effective_context = context;
    }

    fn stream_state(&mut self, id: StreamId) -> Result<&mut StreamState> {
        self.store
            .data_mut()
            .streams
            .get_mut(&id.0)
            .ok_or_else(|| HostError::Unknown(format!("no stream {}", id.0)))
    }

    /// The stream's current state: headers as the filter left them, local response, ….
    pub fn stream(&mut self, id: StreamId) -> Option<&mut StreamState> {
        self.store.data_mut().streams.get_mut(&id.0)
    }

    fn action(answer: i32) -> Action {
        if answer == 0 {
            Action::Continue
        } else {
            Action::Pause
        }
    }

    /// Calls a `(context, count or size, end_of_stream) -> action` stream callback.
    fn stream_callback(
        &mut self,
        id: StreamId,
        callback: &'static str,
        f: Option<TypedFunc<(i32, i32, i32), i32>>,
        size: usize,
        end_of_stream: bool,
    ) -> Result<Action> {
        let Some(f) = f else {
            return Ok(Action::Continue);
        };
        self.enter(id.0);
        let answer = self.call(
            callback,
            &f,
            (id.0 as i32, size as i32, end_of_stream as i32),
        )?;
        Ok(Self::action(answer))
    }

    /// Calls a `(context, count) -> action` trailers callback.
    fn trailers_callback(
        &mut self,
        id: StreamId,
        callback: &'static str,
        f: Option<TypedFunc<(i32, i32), i32>>,
        count: usize,
    ) -> Result<Action> {
        let Some(f) = f else {
            return Ok(Action::Continue);
        };
        self.enter(id.0);
        Ok(Self::action(self.call(
            callback,
            &f,
            (id.0 as i32, count as i32),
        )?))
    }

    /// A body chunk for the filter: appended to what it held back if its last body callback
    /// paused (as Envoy buffers), else replacing the previous chunk.
    fn body(
        &mut self,
        id: StreamId,
        response: bool,
        chunk: &[u8],
        end_of_stream: bool,
    ) -> Result<Action> {
        let stream = self.stream_state(id)?;
        let (body, buffering) = if response {
            (&mut stream.response_body, stream.buffering_response)
        } else {
            (&mut stream.request_body, stream.buffering_request)
        };
        if !buffering {
            body.clear();
        }
        body.extend_from_slice(chunk);
        let size = body.len();
        let (callback, f) = if response {
            (
                "proxy_on_response_body",
                self.exports.on_response_body.clone(),
            )
        } else {
            (
                "proxy_on_request_body",
                self.exports.on_request_body.clone(),
            )
        };
        let action = self.stream_callback(id, callback, f, size, end_of_stream)?;
        let stream = self.stream_state(id)?;
        let buffering = if response {
            &mut stream.buffering_response
        } else {
            &mut stream.buffering_request
        };
        *buffering = action == Action::Pause;
        Ok(action)
    }

    pub fn on_request_headers(
        &mut self,
        id: StreamId,
        headers: HeaderMap,
        end_of_stream: bool,
    ) -> Result<Action> {
        let count = headers.len();
        self.stream_state(id)?.request_headers = headers;
        let f = self.exports.on_request_headers.clone();
        self.stream_callback(id, "proxy_on_request_headers", f, count, end_of_stream)
    }

    /// Hands a body chunk to the filter; afterwards `request_body` holds what to forward.
    pub fn on_request_body(
        &mut self,
        id: StreamId,
        chunk: &[u8],
        end_of_stream: bool,
    ) -> Result<Action> {
        self.body(id, false, chunk, end_of_stream)
    }

    pub fn on_request_trailers(&mut self, id: StreamId, trailers: HeaderMap) -> Result<Action> {
        let count = trailers.len();
        self.stream_state(id)?.request_trailers = trailers;
        let f = self.exports.on_request_trailers.clone();
        self.trailers_callback(id, "proxy_on_request_trailers", f, count)
    }

    /// Response headers; `:status` also becomes the `response.code` property, as in Envoy.
    pub fn on_response_headers(
        &mut self,
        id: StreamId,
        headers: HeaderMap,
        end_of_stream: bool,
    ) -> Result<Action> {
        let count = headers.len();
        let code = headers
            .iter()
            .find(|(k, _)| k == b":status")
            .and_then(|(_, v)| std::str::from_utf8(v).ok()?.parse::<u64>().ok());
        let stream = self.stream_state(id)?;
        if let Some(code) = code {
            stream
                .properties
                .insert("response.code".into(), code.to_le_bytes().to_vec());
        }
        stream.response_headers = headers;
        let f = self.exports.on_response_headers.clone();
        self.stream_callback(id, "proxy_on_response_headers", f, count, end_of_stream)
    }

    /// Hands a body chunk to the filter; afterwards `response_body` holds what to forward.
    pub fn on_response_body(
        &mut self,
        id: StreamId,
        chunk: &[u8],
        end_of_stream: bool,
    ) -> Result<Action> {
        self.body(id, true, chunk, end_of_stream)
    }

    pub fn on_response_trailers(&mut self, id: StreamId, trailers: HeaderMap) -> Result<Action> {
        let count = trailers.len();
        self.stream_state(id)?.response_trailers = trailers;
        let f = self.exports.on_response_trailers.clone();
        self.trailers_callback(id, "proxy_on_response_trailers", f, count)
    }

    /// The stream ended (completed, reset or answered locally): log, done, delete.
    pub fn finish_stream(&mut self, id: StreamId) -> Result<()> {
        self.stream_state(id)?;
        self.enter(id.0);
        let ctx = id.0 as i32;
        let outcome = (|| {
            if let Some(f) = self.exports.on_log.clone() {
                self.call("proxy_on_log", &f, ctx)?;
            }
            if let Some(f) = self.exports.on_done.clone() {
                self.call("proxy_on_done", &f, ctx)?;
            }
            if let Some(f) = self.exports.on_delete.clone() {
                self.call("proxy_on_delete", &f, ctx)?;
            }
            Ok(())
        })();
        self.store.data_mut().streams.remove(&id.0);
        self.enter(ROOT_CONTEXT);
        outcome
    }

    pub fn take_local_response(&mut self, id: StreamId) -> Option<LocalResponse> {
        self.stream(id)?.local_response.take()
    }

    /// The tick period the filter asked for, if any.
    pub fn tick_period(&self) -> Option<Duration> {
        let ms = self.store.data().tick_period_ms;
        (ms > 0).then(|| Duration::from_millis(u64::from(ms)))
    }

    pub fn tick(&mut self) -> Result<()> {
        let Some(f) = self.exports.on_tick.clone() else {
            return Ok(());
        };
        self.enter(ROOT_CONTEXT);
        self.call("proxy_on_tick", &f, ROOT_CONTEXT as i32)
    }

    /// Http calls dispatched since the last call, for the embedder to perform.
    pub fn take_http_calls(&mut self) -> Vec<HttpCallRequest> {
        std::mem::take(&mut self.store.data_mut().pending_calls)
    }

    /// Delivers an http call's outcome (`None`: it failed) to the filter.
    pub fn on_http_call_response(
        &mut self,
        token: u32,
        response: Option<HttpCallResponse>,
    ) -> Result<()> {
        let Some(f) = self.exports.on_http_call_response.clone() else {
            return Ok(());
        };
        let (headers, body, trailers) = response.as_ref().map_or((0, 0, 0), |r| {
            (
                r.headers.len() as i32,
                r.body.len() as i32,
                r.trailers.len() as i32,
            )
        });
        self.store.data_mut().call_response = response;
        self.enter(ROOT_CONTEXT);
        let outcome = self.call(
            "proxy_on_http_call_response",
            &f,
            (ROOT_CONTEXT as i32, token as i32, headers, body, trailers),
        );
        self.store.data_mut().call_response = None;
        outcome
    }

    /// Host calls the guest has made so far.
    pub fn host_calls(&self) -> u64 {
        self.store.data().host_calls
    }

    /// Size of the guest's linear memory, in bytes.
    pub fn memory_size(&self) -> usize {
        self.memory.map_or(0, |m| m.data_size(&self.store))
    }
}
