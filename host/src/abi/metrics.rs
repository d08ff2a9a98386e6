//! Metrics: define, increment, record, get; the store is shared by every instance.

use wasmtime::{Caller, Linker};

use super::memory::{Guest, HostResult};
use super::{Status, MODULE};
use crate::metrics::{Kind, MetricError};
use crate::state::HostState;

fn status(result: Result<(), MetricError>) -> i32 {
    match result {
        Ok(()) => Status::Ok as i32,
        Err(MetricError::NotFound) => Status::NotFound as i32,
        Err(MetricError::BadArgument) => Status::BadArgument as i32,
    }
}

fn define(
    mut caller: Caller<'_, HostState>,
    kind: i32,
    name_ptr: i32,
    name_len: i32,
    ret_id: i32,
) -> HostResult<i32> {
    let mut guest = Guest::new(&mut caller)?;
    guest.state().host_calls += 1;
    let Some(kind) = Kind::from_abi(kind) else {
        return Ok(Status::BadArgument as i32);
    };
    let name = guest.read_string(name_ptr, name_len)?;
    let id = guest.state().shared.metrics.define(kind, &name);
    guest.write_u32(ret_id, id)?;
    Ok(Status::Ok as i32)
}

fn get(mut caller: Caller<'_, HostState>, id: i32, ret_value: i32) -> HostResult<i32> {
    let mut guest = Guest::new(&mut caller)?;
    guest.state().host_calls += 1;
    match guest.state().shared.metrics.get(id as u32) {
        Ok(value) => {
            guest.write_u64(ret_value, value)?;
            Ok(Status::Ok as i32)
        }
        Err(e) => Ok(status(Err(e))),
    }
}

pub fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    linker.func_wrap(MODULE, "proxy_define_metric", define)?;
    linker.func_wrap(MODULE, "proxy_get_metric", get)?;
    linker.func_wrap(
        MODULE,
        "proxy_increment_metric",
        |mut caller: Caller<'_, HostState>, id: i32, offset: i64| -> i32 {
            let state = caller.data_mut();
            state.host_calls += 1;
            status(state.shared.metrics.increment(id as u32, offset))
        },
    )?;
    linker.func_wrap(
        MODULE,
        "proxy_record_metric",
        |mut caller: Caller<'_, HostState>, id: i32, value: i64| -> i32 {
            let state = caller.data_mut();
            state.host_calls += 1;
            status(state.shared.metrics.record(id as u32, value as u64))
        },
    )?;
    Ok(())
}
