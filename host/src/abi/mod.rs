//! The proxy-wasm ABI 0.2.1 as host functions on a wasmtime `Linker`, one module per area.
//! Functions the project does not implement answer `Unimplemented` (see [`unimplemented`]).

mod buffers;
mod calls;
mod context;
mod maps;
pub mod memory;
mod metrics;
mod unimplemented;
mod wasi;

pub use maps::{deserialize_map, serialize_map};
pub use unimplemented::UNIMPLEMENTED;

use wasmtime::Linker;

use crate::state::HostState;

/// proxy-wasm `WasmResult` codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i32)]
pub enum Status {
    Ok = 0,
    NotFound = 1,
    BadArgument = 2,
    SerializationFailure = 3,
    Empty = 7,
    CasMismatch = 8,
    InternalFailure = 10,
    Unimplemented = 12,
}

/// The module the ABI's functions are imported from.
pub const MODULE: &str = "env";

pub fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    context::add_to_linker(linker)?;
    maps::add_to_linker(linker)?;
    buffers::add_to_linker(linker)?;
    metrics::add_to_linker(linker)?;
    calls::add_to_linker(linker)?;
    unimplemented::add_to_linker(linker)?;
    wasi::add_to_linker(linker)?;
    Ok(())
}
