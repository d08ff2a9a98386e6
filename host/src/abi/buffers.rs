//! Buffers: the current request/response body chunk, an http call's response body, and the
//! VM and plugin configurations.

use wasmtime::{Caller, Linker};

use super::memory::{Guest, HostResult};
use super::{Status, MODULE};
use crate::state::HostState;

fn buffer(state: &mut HostState, buffer_type: i32) -> Option<&mut Vec<u8>> {
    match buffer_type {
        0 => state.stream().map(|s| &mut s.request_body),
        1 => state.stream().map(|s| &mut s.response_body),
        4 => state.call_response.as_mut().map(|r| &mut r.body),
        6 => Some(&mut state.setup.vm_config),
        7 => Some(&mut state.setup.plugin_config),
        _ => None,
    }
}

fn get_bytes(
    mut caller: Caller<'_, HostState>,
    buffer_type: i32,
    start: i32,
    max_size: i32,
    ret_ptr: i32,
    ret_len: i32,
) -> HostResult<i32> {
    let mut guest = Guest::new(&mut caller)?;
    guest.state().host_calls += 1;
    let (start, max) = (start as u32 as usize, max_size as u32 as usize);
    let Some(data) = buffer(guest.state(), buffer_type) else {
        return Ok(Status::NotFound as i32);
    };
    let end = start.saturating_add(max).min(data.len());
    let slice = data.get(start.min(end)..end).unwrap_or_default().to_vec();
    guest.return_bytes(&slice, ret_ptr, ret_len)?;
    Ok(Status::Ok as i32)
}

fn set_bytes(
    mut caller: Caller<'_, HostState>,
    buffer_type: i32,
    start: i32,
    size: i32,
    ptr: i32,
    len: i32,
) -> HostResult<i32> {
    let mut guest = Guest::new(&mut caller)?;
    guest.state().host_calls += 1;
    let value = guest.read(ptr, len)?;
    if !(0..=1).contains(&buffer_type) {
        return Ok(Status::BadArgument as i32);
    }
    let Some(data) = buffer(guest.state(), buffer_type) else {
        return Ok(Status::NotFound as i32);
    };
    let start = (start as u32 as usize).min(data.len());
    let end = start.saturating_add(size as u32 as usize).min(data.len());
    data.splice(start..end, value);
    Ok(Status::Ok as i32)
}

fn get_status(
    mut caller: Caller<'_, HostState>,
    buffer_type: i32,
    len_ptr: i32,
    flags_ptr: i32,
) -> HostResult<i32> {
    let mut guest = Guest::new(&mut caller)?;
    guest.state().host_calls += 1;
    let Some(len) = buffer(guest.state(), buffer_type).map(|b| b.len() as u32) else {
        return Ok(Status::NotFound as i32);
    };
    guest.write_u32(len_ptr, len)?;
    guest.write_u32(flags_ptr, 0)?;
    Ok(Status::Ok as i32)
}

pub fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    linker.func_wrap(MODULE, "proxy_get_buffer_bytes", get_bytes)?;
    linker.func_wrap(MODULE, "proxy_set_buffer_bytes", set_bytes)?;
    linker.func_wrap(MODULE, "proxy_get_buffer_status", get_status)?;
    Ok(())
}
