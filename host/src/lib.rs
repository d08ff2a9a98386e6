//! `prompter-host`: runs the Prompter metrics filter outside Envoy, on wasmtime. It
//! implements the proxy-wasm ABI (`abi`), drives filter instances (`vm`), keeps and exports
//! their metrics (`metrics`), and generates the Envoy bootstrap that loads the same module
//! (`envoy_config`).

pub mod abi;
pub mod clock;
pub mod envoy_config;
pub mod error;
pub mod exporter;
pub mod logs;
pub mod metrics;
pub mod proxy;
pub mod replay;
pub mod shared_data;
pub mod state;
pub mod testing;
pub mod vm;

pub use error::{HostError, Result};
