//! The part of Envoy's dynamic-module ABI (`source/extensions/dynamic_modules/abi/abi.h` of
//! Envoy 1.40) this module uses, declared by hand, and the safe wrappers the glue calls. Every
//! `unsafe` of the native build is in this file: a raw pointer from Envoy is only ever turned
//! into a slice here, for the length Envoy gave, for as long as the hook that received it runs.
//!
//! Names and signatures follow `abi.h` as of a tree with `ENVOY_DYNAMIC_MODULES_ABI_VERSION`
//! "v0.2.0", Envoy 1.40's (read at agrawroh/envoy@05f72c01, a fork of envoyproxy/envoy: its 30
//! HTTP-filter hooks are the ones the 1.40 binary names, and its hook signatures are the
//! binary's `getFunctionPointer<...>` instantiations). The header's compatibility policy never
//! changes a released entity in place, so the declarations of 1.40's entities hold for it.
//! `tests/e2e/tests/native_symbols.rs` checks the built module against the installed Envoy
//! (every hook it resolves is exported here, every callback imported here is one it exports).

use std::ffi::c_void;
use std::marker::PhantomData;

/// The ABI version this module was written against (`ENVOY_DYNAMIC_MODULES_ABI_VERSION` of
/// Envoy 1.40), returned from `envoy_dynamic_module_on_program_init`. Envoy compares it with
/// its own and logs `Dynamic module ABI version v0.2.0 matched.` (a mismatch is only a warning).
pub const ABI_VERSION: &std::ffi::CStr = c"v0.2.0";

/// `envoy_dynamic_module_type_envoy_buffer`: bytes Envoy owns.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct EnvoyBuffer {
    pub ptr: *const u8,
    pub length: usize,
}

/// `envoy_dynamic_module_type_module_buffer`: bytes the module owns, read during the call.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct ModuleBuffer {
    ptr: *const u8,
    length: usize,
}

impl ModuleBuffer {
    pub fn of(bytes: &[u8]) -> Self {
        ModuleBuffer {
            ptr: bytes.as_ptr(),
            length: bytes.len(),
        }
    }
}

/// `envoy_dynamic_module_type_envoy_http_header`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct EnvoyHttpHeader {
    key_ptr: *const u8,
    key_length: usize,
    value_ptr: *const u8,
    value_length: usize,
}

/// `envoy_dynamic_module_type_module_http_header`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct ModuleHttpHeader {
    key_ptr: *const u8,
    key_length: usize,
    value_ptr: *const u8,
    value_length: usize,
}

impl ModuleHttpHeader {
    pub fn of(key: &str, value: &str) -> Self {
        ModuleHttpHeader {
            key_ptr: key.as_ptr(),
            key_length: key.len(),
            value_ptr: value.as_ptr(),
            value_length: value.len(),
        }
    }
}

// C enums, passed as `int`.
pub type HeaderType = u32;
pub const REQUEST_HEADER: HeaderType = 0;
pub const RESPONSE_HEADER: HeaderType = 2;

pub type BodyType = u32;
pub const RECEIVED_REQUEST_BODY: BodyType = 0;
pub const RECEIVED_RESPONSE_BODY: BodyType = 2;

pub type LogLevel = u32;
pub const LOG_INFO: LogLevel = 2;
pub const LOG_WARN: LogLevel = 3;
pub const LOG_ERROR: LogLevel = 4;

/// `envoy_dynamic_module_type_attribute_id_RequestPath`.
const ATTRIBUTE_REQUEST_PATH: u32 = 0;
/// `envoy_dynamic_module_type_attribute_id_RequestMethod`.
const ATTRIBUTE_REQUEST_METHOD: u32 = 4;
/// `envoy_dynamic_module_type_attribute_id_ResponseCode`.
const ATTRIBUTE_RESPONSE_CODE: u32 = 15;
/// `envoy_dynamic_module_type_metrics_result_Success`.
const METRICS_SUCCESS: u32 = 0;
/// `envoy_dynamic_module_type_http_callout_init_result_Success`.
const CALLOUT_INIT_SUCCESS: u32 = 0;
/// `envoy_dynamic_module_type_http_callout_result_Success`.
pub const CALLOUT_SUCCESS: u32 = 0;
/// Every `envoy_dynamic_module_type_on_http_filter_*_status_Continue`.
pub const CONTINUE: u32 = 0;

unsafe extern "C" {
    fn envoy_dynamic_module_callback_log_v2(
        level: LogLevel,
        message: ModuleBuffer,
        source_file: ModuleBuffer,
        source_line: u32,
    );
    fn envoy_dynamic_module_callback_http_filter_config_define_counter(
        config: *mut c_void,
        name: ModuleBuffer,
        label_names: *const ModuleBuffer,
        label_names_length: usize,
        id: *mut usize,
    ) -> u32;
    fn envoy_dynamic_module_callback_http_filter_config_define_gauge(
        config: *mut c_void,
        name: ModuleBuffer,
        label_names: *const ModuleBuffer,
        label_names_length: usize,
        id: *mut usize,
    ) -> u32;
    fn envoy_dynamic_module_callback_http_filter_config_increment_counter(
        config: *mut c_void,
        id: usize,
        label_values: *const ModuleBuffer,
        label_values_length: usize,
        value: u64,
    ) -> u32;
    fn envoy_dynamic_module_callback_http_filter_config_set_gauge(
        config: *mut c_void,
        id: usize,
        label_values: *const ModuleBuffer,
        label_values_length: usize,
        value: u64,
    ) -> u32;
    fn envoy_dynamic_module_callback_http_filter_increment_counter(
        filter: *mut c_void,
        id: usize,
        label_values: *const ModuleBuffer,
        label_values_length: usize,
        value: u64,
    ) -> u32;
    fn envoy_dynamic_module_callback_http_get_header(
        filter: *mut c_void,
        header_type: HeaderType,
        key: ModuleBuffer,
        result: *mut EnvoyBuffer,
        index: usize,
        optional_size: *mut usize,
    ) -> bool;
    fn envoy_dynamic_module_callback_http_get_body_chunks_size(
        filter: *mut c_void,
        body_type: BodyType,
    ) -> usize;
    fn envoy_dynamic_module_callback_http_get_body_chunks(
        filter: *mut c_void,
        body_type: BodyType,
        result: *mut EnvoyBuffer,
    ) -> bool;
    fn envoy_dynamic_module_callback_http_filter_get_attribute_string(
        filter: *mut c_void,
        attribute_id: u32,
        result: *mut EnvoyBuffer,
    ) -> bool;
    fn envoy_dynamic_module_callback_http_filter_get_attribute_int(
        filter: *mut c_void,
        attribute_id: u32,
        result: *mut u64,
    ) -> bool;
    fn envoy_dynamic_module_callback_http_filter_config_scheduler_new(
        config: *mut c_void,
    ) -> *mut c_void;
    fn envoy_dynamic_module_callback_http_filter_config_scheduler_commit(
        scheduler: *mut c_void,
        event_id: u64,
    );
    fn envoy_dynamic_module_callback_http_filter_config_scheduler_delete(scheduler: *mut c_void);
    fn envoy_dynamic_module_callback_http_filter_config_http_callout(
        config: *mut c_void,
        callout_id: *mut u64,
        cluster_name: ModuleBuffer,
        headers: *const ModuleHttpHeader,
        headers_size: usize,
        body: ModuleBuffer,
        timeout_milliseconds: u64,
    ) -> u32;
}

/// Logs under Envoy's `dynamic_modules` logger.
pub fn log(level: LogLevel, message: &str) {
    // SAFETY: both buffers are read during the call only.
    unsafe {
        envoy_dynamic_module_callback_log_v2(
            level,
            ModuleBuffer::of(message.as_bytes()),
            ModuleBuffer::of(b""),
            0,
        )
    }
}

/// Label values as the ABI takes them, on the stack for the catalog's few labels.
fn with_buffers<R>(values: &[&str], f: impl FnOnce(&[ModuleBuffer]) -> R) -> R {
    const INLINE: usize = 8;
    if values.len() <= INLINE {
        let mut buffers = [ModuleBuffer::of(b""); INLINE];
        for (buffer, value) in buffers.iter_mut().zip(values) {
            *buffer = ModuleBuffer::of(value.as_bytes());
        }
        f(&buffers[..values.len()])
    } else {
        let buffers: Vec<ModuleBuffer> = values
            .iter()
            .map(|v| ModuleBuffer::of(v.as_bytes()))
            .collect();
        f(&buffers)
    }
}

/// A metric family Envoy defined: its id, to update with label values in the order of the
/// label names it was defined with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetricId(usize);

/// Envoy's `DynamicModuleHttpFilterConfig` (`filter_config_envoy_ptr`). Its callbacks run on
/// the main thread: while the configuration is created (metric definitions), and from the
/// hooks Envoy calls there (scheduled events, callout answers, destruction).
#[derive(Debug, Clone, Copy)]
pub struct EnvoyConfig(*mut c_void);

// SAFETY: the module only calls through it from hooks Envoy runs on the main thread (creation,
// scheduled events, callout answers, destruction); it moves between threads inside the
// configuration, which workers share, but they never use it.
unsafe impl Send for EnvoyConfig {}
unsafe impl Sync for EnvoyConfig {}

impl EnvoyConfig {
    pub fn new(ptr: *mut c_void) -> Self {
        EnvoyConfig(ptr)
    }

    /// Defines a counter family; only while Envoy creates the configuration.
    pub fn define_counter(&self, name: &str, label_names: &[&str]) -> Option<MetricId> {
        let mut id = 0;
        // SAFETY: the buffers are read during the call; `id` outlives it.
        let result = with_buffers(label_names, |labels| unsafe {
            envoy_dynamic_module_callback_http_filter_config_define_counter(
                self.0,
                ModuleBuffer::of(name.as_bytes()),
                labels.as_ptr(),
                labels.len(),
                &mut id,
            )
        });
        (result == METRICS_SUCCESS).then_some(MetricId(id))
    }

    /// Defines a gauge family; only while Envoy creates the configuration.
    pub fn define_gauge(&self, name: &str, label_names: &[&str]) -> Option<MetricId> {
        let mut id = 0;
        // SAFETY: as in `define_counter`.
        let result = with_buffers(label_names, |labels| unsafe {
            envoy_dynamic_module_callback_http_filter_config_define_gauge(
                self.0,
                ModuleBuffer::of(name.as_bytes()),
                labels.as_ptr(),
                labels.len(),
                &mut id,
            )
        });
        (result == METRICS_SUCCESS).then_some(MetricId(id))
    }

    pub fn increment_counter(&self, id: MetricId, label_values: &[&str], delta: u64) -> bool {
        // SAFETY: the buffers are read during the call.
        with_buffers(label_values, |labels| unsafe {
            envoy_dynamic_module_callback_http_filter_config_increment_counter(
                self.0,
                id.0,
                labels.as_ptr(),
                labels.len(),
                delta,
            ) == METRICS_SUCCESS
        })
    }

    pub fn set_gauge(&self, id: MetricId, label_values: &[&str], value: u64) -> bool {
        // SAFETY: the buffers are read during the call.
        with_buffers(label_values, |labels| unsafe {
            envoy_dynamic_module_callback_http_filter_config_set_gauge(
                self.0,
                id.0,
                labels.as_ptr(),
                labels.len(),
                value,
            ) == METRICS_SUCCESS
        })
    }

    /// A scheduler that delivers events to this configuration on the main thread
    /// (`envoy_dynamic_module_on_http_filter_config_scheduled`), from any thread.
    pub fn scheduler(&self) -> Option<Scheduler> {
        // SAFETY: plain call; the result is owned by the module until `Scheduler` drops it.
        let ptr = unsafe { envoy_dynamic_module_callback_http_filter_config_scheduler_new(self.0) };
        (!ptr.is_null()).then_some(Scheduler(ptr))
    }

    /// Sends a GET to `cluster`; the answer comes to
    /// `envoy_dynamic_module_on_http_filter_config_http_callout_done` with the returned id.
    pub fn http_get(
        &self,
        cluster: &str,
        headers: &[(&str, &str)],
        timeout_ms: u64,
    ) -> Result<u64, u32> {
        let headers: Vec<ModuleHttpHeader> = headers
            .iter()
            .map(|(k, v)| ModuleHttpHeader::of(k, v))
            .collect();
        let mut id = 0;
        // SAFETY: every buffer is read during the call; `id` outlives it.
        let result = unsafe {
            envoy_dynamic_module_callback_http_filter_config_http_callout(
                self.0,
                &mut id,
                ModuleBuffer::of(cluster.as_bytes()),
                headers.as_ptr(),
                headers.len(),
                ModuleBuffer::of(b""),
                timeout_ms,
            )
        };
        if result == CALLOUT_INIT_SUCCESS {
            Ok(id)
        } else {
            Err(result)
        }
    }
}

/// Envoy's scheduler of main-thread events for one configuration. Envoy documents its commit
/// as safe from any thread, which is what it is for.
#[derive(Debug)]
pub struct Scheduler(*mut c_void);

// SAFETY: `scheduler_commit` may be called from any thread (abi.h); `scheduler_delete` runs
// once, from `Drop`, after the thread that commits has been joined.
unsafe impl Send for Scheduler {}
unsafe impl Sync for Scheduler {}

impl Scheduler {
    pub fn commit(&self, event_id: u64) {
        // SAFETY: the pointer is live until `Drop`.
        unsafe {
            envoy_dynamic_module_callback_http_filter_config_scheduler_commit(self.0, event_id)
        }
    }
}

impl Drop for Scheduler {
    fn drop(&mut self) {
        // SAFETY: created by `scheduler_new`, deleted once.
        unsafe { envoy_dynamic_module_callback_http_filter_config_scheduler_delete(self.0) }
    }
}

/// Envoy's `DynamicModuleHttpFilter` (`filter_envoy_ptr`) for the length of one hook: what it
/// hands out borrows from the hook (`'h`), as Envoy only keeps header and body bytes valid
/// until the hook returns.
#[derive(Debug, Clone, Copy)]
pub struct EnvoyFilter<'h> {
    ptr: *mut c_void,
    hook: PhantomData<&'h ()>,
}

impl<'h> EnvoyFilter<'h> {
    /// The filter Envoy passed to the running hook.
    pub fn in_hook(ptr: *mut c_void) -> Self {
        EnvoyFilter {
            ptr,
            hook: PhantomData,
        }
    }

    /// The request's `:path`, as Envoy's `request.path` attribute: Envoy looks it up under its
    /// own header name, where a header read by name first copies and lowercases the name (~150
    /// of the ~440 instructions a read took).
    pub fn request_path(&self) -> Option<&'h [u8]> {
        self.attribute_string(ATTRIBUTE_REQUEST_PATH)
    }

    /// The request's `:method` (`request.method`), as [`request_path`](Self::request_path).
    pub fn request_method(&self) -> Option<&'h [u8]> {
        self.attribute_string(ATTRIBUTE_REQUEST_METHOD)
    }

    fn attribute_string(&self, attribute_id: u32) -> Option<&'h [u8]> {
        // SAFETY: `result` outlives the call.
        self.lent(|result| unsafe {
            envoy_dynamic_module_callback_http_filter_get_attribute_string(
                self.ptr,
                attribute_id,
                result,
            )
        })
    }

    fn header(&self, header_type: HeaderType, key: &str) -> Option<&'h [u8]> {
        // SAFETY: `key` is read during the call; `result` outlives it.
        self.lent(|result| unsafe {
            envoy_dynamic_module_callback_http_get_header(
                self.ptr,
                header_type,
                ModuleBuffer::of(key.as_bytes()),
                result,
                0,
                std::ptr::null_mut(),
            )
        })
    }

    /// Bytes Envoy lends for the running hook, written into `result` by `fill`, which says
    /// whether Envoy had them.
    fn lent(&self, fill: impl FnOnce(&mut EnvoyBuffer) -> bool) -> Option<&'h [u8]> {
        let mut result = EnvoyBuffer {
            ptr: std::ptr::null(),
            length: 0,
        };
        let found = fill(&mut result);
        // SAFETY: Envoy keeps what it lends valid until the hook returns.
        (found && !result.ptr.is_null())
            .then(|| unsafe { std::slice::from_raw_parts(result.ptr, result.length) })
    }

    pub fn request_header(&self, key: &str) -> Option<&'h [u8]> {
        self.header(REQUEST_HEADER, key)
    }

    pub fn response_header(&self, key: &str) -> Option<&'h [u8]> {
        self.header(RESPONSE_HEADER, key)
    }

    /// Calls `f` with the body bytes of the running body hook, in place, as Envoy's buffer
    /// slices them. A body event has a slice or two: their list stays on the stack.
    pub fn with_received_body<R>(&self, body_type: BodyType, f: impl FnOnce(&[&[u8]]) -> R) -> R {
        const INLINE: usize = 8;
        let empty = EnvoyBuffer {
            ptr: std::ptr::null(),
            length: 0,
        };
        // SAFETY: plain call.
        let count =
            unsafe { envoy_dynamic_module_callback_http_get_body_chunks_size(self.ptr, body_type) };
        let mut inline = [empty; INLINE];
        let mut spilled = Vec::new();
        let buffers = match inline.get_mut(..count) {
            Some(buffers) => buffers,
            None => {
                spilled.resize(count, empty);
                &mut spilled[..]
            }
        };
        // SAFETY: `buffers` has room for the `count` buffers Envoy said it has.
        let ok = count > 0
            && unsafe {
                envoy_dynamic_module_callback_http_get_body_chunks(
                    self.ptr,
                    body_type,
                    buffers.as_mut_ptr(),
                )
            };
        let live = buffers
            .iter()
            .filter(|b| ok && !b.ptr.is_null() && b.length > 0)
            // SAFETY: Envoy keeps the slices valid until the hook returns.
            .map(|b| unsafe { std::slice::from_raw_parts(b.ptr, b.length) });
        if count > INLINE {
            return f(&live.collect::<Vec<_>>());
        }
        let mut slices: [&[u8]; INLINE] = [&[]; INLINE];
        let mut len = 0;
        for (slot, slice) in slices.iter_mut().zip(live) {
            *slot = slice;
            len += 1;
        }
        f(&slices[..len])
    }

    /// The stream's response code (`response.code`), set even when no response headers were
    /// seen (a local reply, a reset with a code).
    pub fn response_code(&self) -> Option<u64> {
        let mut code = 0;
        // SAFETY: `code` outlives the call.
        let ok = unsafe {
            envoy_dynamic_module_callback_http_filter_get_attribute_int(
                self.ptr,
                ATTRIBUTE_RESPONSE_CODE,
                &mut code,
            )
        };
        ok.then_some(code)
    }

    pub fn increment_counter(&self, id: MetricId, label_values: &[&str], delta: u64) -> bool {
        // SAFETY: the buffers are read during the call.
        with_buffers(label_values, |labels| unsafe {
            envoy_dynamic_module_callback_http_filter_increment_counter(
                self.ptr,
                id.0,
                labels.as_ptr(),
                labels.len(),
                delta,
            ) == METRICS_SUCCESS
        })
    }
}

/// Headers and body chunks of a callout's answer, as Envoy passes them to
/// `..._http_callout_done`, valid while that hook runs.
pub struct CalloutAnswer<'h> {
    headers: &'h [EnvoyHttpHeader],
    chunks: &'h [EnvoyBuffer],
}

impl<'h> CalloutAnswer<'h> {
    /// # Safety
    /// The pointers and counts are those Envoy passed to the running callout hook.
    pub unsafe fn from_hook(
        headers: *const EnvoyHttpHeader,
        headers_size: usize,
        chunks: *const EnvoyBuffer,
        chunks_size: usize,
    ) -> Self {
        // SAFETY: (caller) Envoy keeps both arrays valid until the hook returns; either may
        // be null when empty.
        unsafe {
            CalloutAnswer {
                headers: if headers.is_null() {
                    &[]
                } else {
                    std::slice::from_raw_parts(headers, headers_size)
                },
                chunks: if chunks.is_null() {
                    &[]
                } else {
                    std::slice::from_raw_parts(chunks, chunks_size)
                },
            }
        }
    }

    pub fn header(&self, key: &str) -> Option<&'h [u8]> {
        self.headers.iter().find_map(|h| {
            // SAFETY: Envoy's header bytes, valid while the hook runs.
            let name = unsafe { bytes(h.key_ptr, h.key_length) };
            name.eq_ignore_ascii_case(key.as_bytes())
                .then(|| unsafe { bytes(h.value_ptr, h.value_length) })
        })
    }

    pub fn body_len(&self) -> usize {
        self.chunks.iter().map(|c| c.length).sum()
    }

    pub fn body_chunks(&self) -> impl Iterator<Item = &'h [u8]> + '_ {
        // SAFETY: Envoy's body bytes, valid while the hook runs.
        self.chunks
            .iter()
            .map(|c| unsafe { bytes(c.ptr, c.length) })
    }
}

/// # Safety
/// `ptr` is null (then `len` is ignored) or points at `len` readable bytes.
pub unsafe fn bytes<'a>(ptr: *const u8, len: usize) -> &'a [u8] {
    if ptr.is_null() {
        &[]
    } else {
        // SAFETY: (caller).
        unsafe { std::slice::from_raw_parts(ptr, len) }
    }
}
