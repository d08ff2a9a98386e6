//! The host's one error type.

use std::fmt;

#[derive(Debug)]
pub enum HostError {
    /// The wasm file could not be read.
    Read {
        path: String,
        source: std::io::Error,
    },
    /// The bytes are not a usable wasm module (corrupt, or imports we cannot satisfy).
    Compile(String),
    /// The module does not speak a proxy-wasm ABI version we implement.
    Abi(String),
    /// The module trapped (panic, out-of-bounds access, deadline) in a callback.
    Trap {
        callback: &'static str,
        message: String,
    },
    /// The plugin refused to start (`proxy_on_vm_start` or `proxy_on_configure` said no).
    Refused {
        callback: &'static str,
        logs: Vec<String>,
    },
    /// A stream or token that does not exist.
    Unknown(String),
}

impl fmt::Display for HostError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HostError::Read { path, source } => {
                write!(f, "cannot read wasm module {path}: {source}")
            }
            HostError::Compile(m) => write!(f, "invalid wasm module: {m}"),
            HostError::Abi(m) => write!(f, "unsupported module: {m}"),
            HostError::Trap { callback, message } => {
                write!(f, "filter trapped in {callback}: {message}")
            }
            HostError::Refused { callback, logs } => {
                write!(f, "filter refused to start ({callback} returned false)")?;
                if !logs.is_empty() {
                    write!(f, ": {}", logs.join(" | "))?;
                }
                Ok(())
            }
            HostError::Unknown(m) => write!(f, "{m}"),
        }
    }
}

impl std::error::Error for HostError {}

pub type Result<T, E = HostError> = std::result::Result<T, E>;
