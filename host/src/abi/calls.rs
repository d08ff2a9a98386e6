//! Outgoing http calls (performed by the embedder, answered through
//! `proxy_on_http_call_response`) and shared data.

use wasmtime::{Caller, Linker};

use super::maps::deserialize_map;
use super::memory::{Guest, HostResult};
use super::{Status, MODULE};
use crate::shared_data::SetOutcome;
use crate::state::{HostState, HttpCallRequest};

#[allow(clippy::too_many_arguments)]
fn http_call(
    mut caller: Caller<'_, HostState>,
    upstream_ptr: i32,
    upstream_len: i32,
    headers_ptr: i32,
    headers_len: i32,
    body_ptr: i32,
    body_len: i32,
    _trailers_ptr: i32,
    _trailers_len: i32,
    timeout_ms: i32,
    ret_token: i32,
) -> HostResult<i32> {
    let mut guest = Guest::new(&mut caller)?;
    guest.state().host_calls += 1;
    let cluster = guest.read_string(upstream_ptr, upstream_len)?;
    let headers = deserialize_map(&guest.read(headers_ptr, headers_len)?);
    let body = guest.read(body_ptr, body_len)?;
    let state = guest.state();
    let Some(headers) = headers else {
        return Ok(Status::BadArgument as i32);
    };
    // Like Envoy: the cluster must exist and the pseudo-headers must be there.
    let has = |name: &[u8]| headers.iter().any(|(k, _)| k == name);
    if !state.setup.clusters.contains(&cluster)
        || !has(b":method")
        || !has(b":path")
        || !has(b":authority")
    {
        return Ok(Status::BadArgument as i32);
    }
    let token = state.next_token;
    state.next_token = state.next_token.wrapping_add(1).max(1);
    state.pending_calls.push(HttpCallRequest {
        token,
        cluster,
        headers,
        body,
        timeout_ms: timeout_ms as u32,
    });
    guest.write_u32(ret_token, token)?;
    Ok(Status::Ok as i32)
}

fn get_shared_data(
    mut caller: Caller<'_, HostState>,
    key_ptr: i32,
    key_len: i32,
    ret_ptr: i32,
    ret_len: i32,
    ret_cas: i32,
) -> HostResult<i32> {
    let mut guest = Guest::new(&mut caller)?;
    guest.state().host_calls += 1;
    let key = guest.read(key_ptr, key_len)?;
    match guest.state().shared.shared_data.get(&key) {
        Some((value, cas)) => {
            guest.return_bytes(&value, ret_ptr, ret_len)?;
            guest.write_u32(ret_cas, cas)?;
            Ok(Status::Ok as i32)
        }
        None => Ok(Status::NotFound as i32),
    }
}

fn set_shared_data(
    mut caller: Caller<'_, HostState>,
    key_ptr: i32,
    key_len: i32,
    ptr: i32,
    len: i32,
    cas: i32,
) -> HostResult<i32> {
    let mut guest = Guest::new(&mut caller)?;
    guest.state().host_calls += 1;
    let key = guest.read(key_ptr, key_len)?;
    let value = guest.read(ptr, len)?;
    Ok(
        match guest
            .state()
            .shared
            .shared_data
            .set(&key, &value, cas as u32)
        {
            SetOutcome::Stored => Status::Ok as i32,
            SetOutcome::CasMismatch => Status::CasMismatch as i32,
        },
    )
}

pub fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    linker.func_wrap(MODULE, "proxy_http_call", http_call)?;
    linker.func_wrap(MODULE, "proxy_get_shared_data", get_shared_data)?;
    linker.func_wrap(MODULE, "proxy_set_shared_data", set_shared_data)?;
    Ok(())
}
