//! Header maps: request/response headers and trailers of the current stream, and the headers
//! and trailers of an http call's response. Pairs are serialized as Envoy does: a count, the
//! sizes of every name and value, then each name and value followed by a NUL.

use wasmtime::{Caller, Linker};

use super::memory::{Guest, HostResult};
use super::{Status, MODULE};
use crate::state::{HeaderMap, HostState};

pub fn serialize_map(map: &HeaderMap) -> Vec<u8> {
    let size = 4 + map
        .iter()
        .map(|(k, v)| 10 + k.len() + v.len())
        .sum::<usize>();
    let mut out = Vec::with_capacity(size);
    out.extend_from_slice(&(map.len() as u32).to_le_bytes());
    for (k, v) in map {
        out.extend_from_slice(&(k.len() as u32).to_le_bytes());
        out.extend_from_slice(&(v.len() as u32).to_le_bytes());
    }
    for (k, v) in map {
        out.extend_from_slice(k);
        out.push(0);
        out.extend_from_slice(v);
        out.push(0);
    }
    out
}

/// Parses a serialized map; `None` when the bytes do not hold one.
pub fn deserialize_map(bytes: &[u8]) -> Option<HeaderMap> {
    let word = |at: usize| -> Option<usize> {
        Some(u32::from_le_bytes(bytes.get(at..at + 4)?.try_into().ok()?) as usize)
    };
    if bytes.is_empty() {
        return Some(Vec::new());
    }
    let count = word(0)?;
    // Each pair needs at least 10 bytes: refuse counts the buffer cannot hold.
    if count > bytes.len() / 10 + 1 {
        return None;
    }
    let mut sizes = Vec::with_capacity(count);
    for i in 0..count {
        sizes.push((word(4 + i * 8)?, word(8 + i * 8)?));
    }
    let mut at = 4 + count * 8;
    let mut map = Vec::with_capacity(count);
    for (k, v) in sizes {
        let key = bytes.get(at..at.checked_add(k)?)?.to_vec();
        at += k + 1;
        let value = bytes.get(at..at.checked_add(v)?)?.to_vec();
        at += v + 1;
        if at > bytes.len() {
            return None;
        }
        map.push((key, value));
    }
    Some(map)
}

/// The map `map_type` names, for reading.
fn map(state: &mut HostState, map_type: i32) -> Option<&mut HeaderMap> {
    match map_type {
        0..=3 => {
            let stream = state.stream()?;
            Some(match map_type {
                0 => &mut stream.request_headers,
                1 => &mut stream.request_trailers,
                2 => &mut stream.response_headers,
                _ => &mut stream.response_trailers,
            })
        }
        6 => state.call_response.as_mut().map(|r| &mut r.headers),
        7 => state.call_response.as_mut().map(|r| &mut r.trailers),
        _ => None,
    }
}

fn get_pairs(
    mut caller: Caller<'_, HostState>,
    map_type: i32,
    ret_ptr: i32,
    ret_len: i32,
) -> HostResult<i32> {
    let mut guest = Guest::new(&mut caller)?;
    guest.state().host_calls += 1;
    // The SDK treats anything but Ok as fatal here: an absent map is an empty one.
    let bytes = map(guest.state(), map_type)
        .map_or_else(|| serialize_map(&Vec::new()), |m| serialize_map(m));
    guest.return_bytes(&bytes, ret_ptr, ret_len)?;
    Ok(Status::Ok as i32)
}

fn set_pairs(
    mut caller: Caller<'_, HostState>,
    map_type: i32,
    ptr: i32,
    len: i32,
) -> HostResult<i32> {
    let mut guest = Guest::new(&mut caller)?;
    guest.state().host_calls += 1;
    let bytes = guest.read(ptr, len)?;
    let Some(pairs) = deserialize_map(&bytes) else {
        return Ok(Status::BadArgument as i32);
    };
    match map(guest.state(), map_type) {
        Some(m) => {
            *m = pairs;
            Ok(Status::Ok as i32)
        }
        None => Ok(Status::NotFound as i32),
    }
}

fn get_value(
    mut caller: Caller<'_, HostState>,
    map_type: i32,
    key_ptr: i32,
    key_len: i32,
    ret_ptr: i32,
    ret_len: i32,
) -> HostResult<i32> {
    let mut guest = Guest::new(&mut caller)?;
    guest.state().host_calls += 1;
    let key = guest.read(key_ptr, key_len)?;
    let value = map(guest.state(), map_type).and_then(|m| {
        m.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(&key))
            .map(|(_, v)| v.clone())
    });
    match value {
        Some(value) => {
            guest.return_bytes(&value, ret_ptr, ret_len)?;
            Ok(Status::Ok as i32)
        }
        None => Ok(Status::NotFound as i32),
    }
}

#[derive(Clone, Copy)]
enum Edit {
    Replace,
    Add,
}

fn edit_value(
    mut caller: Caller<'_, HostState>,
    edit: Edit,
    map_type: i32,
    key_ptr: i32,
    key_len: i32,
    value_ptr: i32,
    value_len: i32,
) -> HostResult<i32> {
    let mut guest = Guest::new(&mut caller)?;
    guest.state().host_calls += 1;
    let key = guest.read(key_ptr, key_len)?.to_ascii_lowercase();
    let value = guest.read(value_ptr, value_len)?;
    let Some(m) = map(guest.state(), map_type) else {
        return Ok(Status::NotFound as i32);
    };
    match edit {
        Edit::Add => m.push((key, value)),
        Edit::Replace => {
            m.retain(|(k, _)| !k.eq_ignore_ascii_case(&key));
            m.push((key, value));
        }
    }
    Ok(Status::Ok as i32)
}

fn remove_value(
    mut caller: Caller<'_, HostState>,
    map_type: i32,
    key_ptr: i32,
    key_len: i32,
) -> HostResult<i32> {
    let mut guest = Guest::new(&mut caller)?;
    guest.state().host_calls += 1;
    let key = guest.read(key_ptr, key_len)?;
    match map(guest.state(), map_type) {
        Some(m) => {
            m.retain(|(k, _)| !k.eq_ignore_ascii_case(&key));
            Ok(Status::Ok as i32)
        }
        None => Ok(Status::NotFound as i32),
    }
}

pub fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    linker.func_wrap(MODULE, "proxy_get_header_map_pairs", get_pairs)?;
    linker.func_wrap(MODULE, "proxy_set_header_map_pairs", set_pairs)?;
    linker.func_wrap(MODULE, "proxy_get_header_map_value", get_value)?;
    linker.func_wrap(
        MODULE,
        "proxy_replace_header_map_value",
        |c: Caller<'_, HostState>, t: i32, kp: i32, kl: i32, vp: i32, vl: i32| {
            edit_value(c, Edit::Replace, t, kp, kl, vp, vl)
        },
    )?;
    linker.func_wrap(
        MODULE,
        "proxy_add_header_map_value",
        |c: Caller<'_, HostState>, t: i32, kp: i32, kl: i32, vp: i32, vl: i32| {
            edit_value(c, Edit::Add, t, kp, kl, vp, vl)
        },
    )?;
    linker.func_wrap(MODULE, "proxy_remove_header_map_value", remove_value)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_round_trip_and_bad_bytes_are_refused() {
        let map: HeaderMap = vec![
            (b":status".to_vec(), b"200".to_vec()),
            (b"x".to_vec(), Vec::new()),
        ];
        let bytes = serialize_map(&map);
        assert_eq!(deserialize_map(&bytes), Some(map));
        assert_eq!(deserialize_map(&bytes[..bytes.len() - 1]), None);
        assert_eq!(deserialize_map(&[0xff, 0xff, 0xff, 0xff]), None);
        assert_eq!(
            deserialize_map(&[1, 0, 0, 0, 0xff, 0xff, 0xff, 0x7f, 0, 0, 0, 0]),
            None
        );
        assert_eq!(deserialize_map(&[]), Some(Vec::new()));
    }
}
