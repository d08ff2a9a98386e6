//! The few WASI preview 1 functions a proxy-wasm filter built for `wasm32-wasip1` imports:
//! the environment (`METRICS_SERVICE`, …, from the VM's `environment_variables`), stdout and
//! stderr (into the log), randomness (hash-map seeds) and exit. Other WASI imports trap if
//! called (see `vm.rs`).

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};

use wasmtime::{Caller, Linker};

use super::context::MAX_LOG_LINE;
use super::memory::{Guest, HostResult};
use crate::logs::Level;
use crate::state::HostState;

const WASI: &str = "wasi_snapshot_preview1";
const ERRNO_SUCCESS: i32 = 0;
const ERRNO_BADF: i32 = 8;

fn environ_entries(state: &HostState) -> Vec<Vec<u8>> {
    state
        .setup
        .env
        .iter()
        .map(|(k, v)| format!("{k}={v}\0").into_bytes())
        .collect()
}

fn environ_sizes_get(
    mut caller: Caller<'_, HostState>,
    count_ptr: i32,
    size_ptr: i32,
) -> HostResult<i32> {
    let mut guest = Guest::new(&mut caller)?;
    let entries = environ_entries(guest.state());
    let size: usize = entries.iter().map(Vec::len).sum();
    guest.write_u32(count_ptr, entries.len() as u32)?;
    guest.write_u32(size_ptr, size as u32)?;
    Ok(ERRNO_SUCCESS)
}

fn environ_get(
    mut caller: Caller<'_, HostState>,
    environ_ptr: i32,
    buf_ptr: i32,
) -> HostResult<i32> {
    let mut guest = Guest::new(&mut caller)?;
    let entries = environ_entries(guest.state());
    let mut at = buf_ptr as u32;
    for (i, entry) in entries.iter().enumerate() {
        guest.write_u32(environ_ptr.wrapping_add(4 * i as i32), at)?;
        guest.write(at as i32, entry)?;
        at = at.wrapping_add(entry.len() as u32);
    }
    Ok(ERRNO_SUCCESS)
}

fn fd_write(
    mut caller: Caller<'_, HostState>,
    fd: i32,
    iovs: i32,
    iovs_len: i32,
    nwritten: i32,
) -> HostResult<i32> {
    let mut guest = Guest::new(&mut caller)?;
    let level = match fd {
        1 => Level::Info,
        2 => Level::Error,
        _ => return Ok(ERRNO_BADF),
    };
    let (mut text, mut written) = (Vec::new(), 0usize);
    for i in 0..iovs_len.clamp(0, 1024) {
        let base = iovs.wrapping_add(8 * i);
        let (ptr, len) = (guest.read_u32(base)?, guest.read_u32(base.wrapping_add(4))?);
        guest.check(ptr as i32, len as i32)?;
        written = written.saturating_add(len as usize);
        // One log line's worth is copied; the rest is checked and counted, not kept.
        let keep = (len as usize).min(MAX_LOG_LINE.saturating_sub(text.len()));
        text.extend(guest.read(ptr as i32, keep as i32)?);
    }
    guest.write_u32(nwritten, u32::try_from(written).unwrap_or(u32::MAX))?;
    let line = String::from_utf8_lossy(&text).trim_end().to_string();
    if !line.is_empty() {
        guest.state().shared.logs.push(level, line);
    }
    Ok(ERRNO_SUCCESS)
}

fn random_get(mut caller: Caller<'_, HostState>, buf: i32, len: i32) -> HostResult<i32> {
    let mut guest = Guest::new(&mut caller)?;
    // Checked before anything is generated: `len` may be 4 GiB.
    guest.check(buf, len)?;
    // Seeds for the guest's hash maps: unpredictable enough, without another dependency.
    let mut bytes = Vec::with_capacity(len as u32 as usize);
    while bytes.len() < len as u32 as usize {
        let mut hasher = RandomState::new().build_hasher();
        hasher.write_usize(bytes.len());
        bytes.extend_from_slice(&hasher.finish().to_le_bytes());
    }
    bytes.truncate(len as u32 as usize);
    guest.write(buf, &bytes)?;
    Ok(ERRNO_SUCCESS)
}

pub fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    linker.func_wrap(WASI, "environ_sizes_get", environ_sizes_get)?;
    linker.func_wrap(WASI, "environ_get", environ_get)?;
    linker.func_wrap(WASI, "fd_write", fd_write)?;
    linker.func_wrap(WASI, "random_get", random_get)?;
    linker.func_wrap(WASI, "proc_exit", |code: i32| -> HostResult<()> {
        wasmtime::bail!("the filter called proc_exit({code})")
    })?;
    Ok(())
}
