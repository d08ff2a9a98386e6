//! Logging, time, ticks, properties, contexts and stream control.

use wasmtime::{Caller, Linker};

use super::maps::deserialize_map;
use super::memory::{Guest, HostResult};
use super::{Status, MODULE};
use crate::logs::Level;
use crate::state::{HostState, LocalResponse};

/// Property paths are NUL-separated segments; the host keys them with dots.
fn property_key(path: &[u8]) -> String {
    String::from_utf8_lossy(path)
        .split('\0')
        .collect::<Vec<_>>()
        .join(".")
}

/// The longest log line kept: the host keeps the last lines, and a guest must not fill it with
/// copies of its whole memory.
pub(super) const MAX_LOG_LINE: usize = 64 << 10;

fn log(mut caller: Caller<'_, HostState>, level: i32, ptr: i32, len: i32) -> HostResult<i32> {
    let mut guest = Guest::new(&mut caller)?;
    guest.state().host_calls += 1;
    let message = guest.read_string_prefix(ptr, len, MAX_LOG_LINE)?;
    guest
        .state()
        .shared
        .logs
        .push(Level::from_abi(level), message);
    Ok(Status::Ok as i32)
}

fn get_property(
    mut caller: Caller<'_, HostState>,
    path_ptr: i32,
    path_len: i32,
    ret_ptr: i32,
    ret_len: i32,
) -> HostResult<i32> {
    let mut guest = Guest::new(&mut caller)?;
    guest.state().host_calls += 1;
    let key = property_key(&guest.read(path_ptr, path_len)?);
    let value = guest
        .state()
        .stream()
        .and_then(|s| s.properties.get(&key).cloned());
    match value {
        Some(value) => {
            guest.return_bytes(&value, ret_ptr, ret_len)?;
            Ok(Status::Ok as i32)
        }
        None => Ok(Status::NotFound as i32),
    }
}

fn set_property(
    mut caller: Caller<'_, HostState>,
    path_ptr: i32,
    path_len: i32,
    ptr: i32,
    len: i32,
) -> HostResult<i32> {
    let mut guest = Guest::new(&mut caller)?;
    guest.state().host_calls += 1;
    let key = property_key(&guest.read(path_ptr, path_len)?);
    let value = guest.read(ptr, len)?;
    match guest.state().stream() {
        Some(stream) => {
            stream.properties.insert(key, value);
            Ok(Status::Ok as i32)
        }
        None => Ok(Status::NotFound as i32),
    }
}

#[allow(clippy::too_many_arguments)]
fn send_local_response(
    mut caller: Caller<'_, HostState>,
    status: i32,
    _details_ptr: i32,
    _details_len: i32,
    body_ptr: i32,
    body_len: i32,
    headers_ptr: i32,
    headers_len: i32,
    _grpc_status: i32,
) -> HostResult<i32> {
    let mut guest = Guest::new(&mut caller)?;
    guest.state().host_calls += 1;
    let body = guest.read(body_ptr, body_len)?;
    let Some(headers) = deserialize_map(&guest.read(headers_ptr, headers_len)?) else {
        return Ok(Status::BadArgument as i32);
    };
    let Ok(status) = u16::try_from(status).map(|s| s.clamp(100, 599)) else {
        return Ok(Status::BadArgument as i32);
    };
    match guest.state().stream() {
        Some(stream) => {
            stream.local_response = Some(LocalResponse {
                status,
                headers,
                body,
            });
            Ok(Status::Ok as i32)
        }
        None => Ok(Status::NotFound as i32),
    }
}

/// `which`: 0 request, 1 response (the HTTP stream types of ABI 0.2.1).
fn stream_control(caller: &mut Caller<'_, HostState>, which: i32, close: bool) -> i32 {
    let state = caller.data_mut();
    state.host_calls += 1;
    let Some(stream) = state.stream() else {
        return Status::NotFound as i32;
    };
    match (which, close) {
        (0, false) => stream.resume_request = true,
        (1, false) => stream.resume_response = true,
        (0 | 1, true) => stream.closed = true,
        _ => return Status::BadArgument as i32,
    }
    Status::Ok as i32
}

pub fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    linker.func_wrap(MODULE, "proxy_log", log)?;
    linker.func_wrap(
        MODULE,
        "proxy_get_log_level",
        |mut caller: Caller<'_, HostState>, ret: i32| -> HostResult<i32> {
            let mut guest = Guest::new(&mut caller)?;
            guest.state().host_calls += 1;
            guest.write_u32(ret, Level::Trace as u32)?;
            Ok(Status::Ok as i32)
        },
    )?;
    linker.func_wrap(
        MODULE,
        "proxy_get_current_time_nanoseconds",
        |mut caller: Caller<'_, HostState>, ret: i32| -> HostResult<i32> {
            let mut guest = Guest::new(&mut caller)?;
            guest.state().host_calls += 1;
            let now = guest.state().shared.clock.now_nanos();
            guest.write_u64(ret, now)?;
            Ok(Status::Ok as i32)
        },
    )?;
    linker.func_wrap(
        MODULE,
        "proxy_set_tick_period_milliseconds",
        |mut caller: Caller<'_, HostState>, period: i32| -> i32 {
            let state = caller.data_mut();
            state.host_calls += 1;
            state.tick_period_ms = period as u32;
            Status::Ok as i32
        },
    )?;
    linker.func_wrap(MODULE, "proxy_get_property", get_property)?;
    linker.func_wrap(MODULE, "proxy_set_property", set_property)?;
    linker.func_wrap(
        MODULE,
        "proxy_set_effective_context",
        |mut caller: Caller<'_, HostState>, context: i32| -> i32 {
            let state = caller.data_mut();
            state.host_calls += 1;
            let context = context as u32;
            if context == state.root_context || state.streams.contains_key(&context) {
                state.effective_context = context;
                Status::Ok as i32
            } else {
                Status::BadArgument as i32
            }
        },
    )?;
    linker.func_wrap(
        MODULE,
        "proxy_done",
        |mut caller: Caller<'_, HostState>| -> i32 {
            caller.data_mut().host_calls += 1;
            Status::Ok as i32
        },
    )?;
    linker.func_wrap(
        MODULE,
        "proxy_continue_stream",
        |mut c: Caller<'_, HostState>, which: i32| stream_control(&mut c, which, false),
    )?;
    linker.func_wrap(
        MODULE,
        "proxy_close_stream",
        |mut c: Caller<'_, HostState>, which: i32| stream_control(&mut c, which, true),
    )?;
    linker.func_wrap(MODULE, "proxy_send_local_response", send_local_response)?;
    Ok(())
}
