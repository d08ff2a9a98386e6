//! ABI functions this host does not implement: they answer `Unimplemented` (the README lists
//! them). A filter that needs them gets a clear status, not a missing import.

use wasmtime::{Caller, FuncType, Linker, Val, ValType};

use super::{Status, MODULE};
use crate::state::HostState;

/// Name and parameter count of each unimplemented function (all parameters are i32).
pub const UNIMPLEMENTED: [(&str, usize); 11] = [
    ("proxy_grpc_call", 12),
    ("proxy_grpc_stream", 9),
    ("proxy_grpc_send", 4),
    ("proxy_grpc_cancel", 1),
    ("proxy_grpc_close", 1),
    ("proxy_get_status", 3),
    ("proxy_register_shared_queue", 3),
    ("proxy_resolve_shared_queue", 5),
    ("proxy_dequeue_shared_queue", 3),
    ("proxy_enqueue_shared_queue", 3),
    ("proxy_call_foreign_function", 6),
];

pub fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    for (name, params) in UNIMPLEMENTED {
        let ty = FuncType::new(linker.engine(), vec![ValType::I32; params], [ValType::I32]);
        linker.func_new(
            MODULE,
            name,
            ty,
            |mut caller: Caller<'_, HostState>, _params: &[Val], results: &mut [Val]| {
                caller.data_mut().host_calls += 1;
                results[0] = Val::I32(Status::Unimplemented as i32);
                Ok(())
            },
        )?;
    }
    Ok(())
}
