//! Arguments several commands take, read one way: `KEY=VALUE` entries of the filter's
//! environment, the plugin configuration file, and where the module as shipped is.

use std::path::{Path, PathBuf};

use prompter_host::envoy_config::DEFAULT_WASM;

/// `--env KEY=VALUE`: a non-empty key, and a value that may be empty.
pub fn key_value(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.into(), value.into())),
        _ => Err(format!("`{text}` is not KEY=VALUE")),
    }
}

/// The bytes of `--plugin-config PATH`, else `default`.
pub fn plugin_config(path: Option<&Path>, default: &str) -> Result<Vec<u8>, String> {
    match path {
        Some(path) => std::fs::read(path)
            .map_err(|e| format!("cannot read --plugin-config {}: {e}", path.display())),
        None => Ok(default.as_bytes().to_vec()),
    }
}

/// The module as shipped, when no `--wasm` is given, found wherever the command runs:
/// beside the binary (`target/debug/prompter-host` → `target/wasm/`), in the checkout it was
/// built from, or under the current directory.
pub fn shipped_module() -> Result<PathBuf, String> {
    let file = Path::new(DEFAULT_WASM).file_name().unwrap_or_default();
    let beside_binary = std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.parent()?.join("wasm").join(file)));
    let candidates: Vec<PathBuf> = beside_binary
        .into_iter()
        .chain([
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("..")
                .join(DEFAULT_WASM),
            PathBuf::from(DEFAULT_WASM),
        ])
        .collect();
    if let Some(found) = candidates.iter().find(|p| p.is_file()) {
        return Ok(found.clone());
    }
    let looked: Vec<String> = candidates.iter().map(|p| p.display().to_string()).collect();
    Err(format!(
        "no filter module (looked for {}): build it with scripts/build-wasm, or give --wasm PATH",
        looked.join(", ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_environment_entry_needs_a_key() {
        assert_eq!(
            key_value("METRICS_ENV=prod"),
            Ok(("METRICS_ENV".into(), "prod".into()))
        );
        assert_eq!(key_value("EMPTY="), Ok(("EMPTY".into(), String::new())));
        assert_eq!(key_value("A=b=c"), Ok(("A".into(), "b=c".into())));
        for bad in ["=v", "novalue", ""] {
            assert!(
                key_value(bad).unwrap_err().contains("is not KEY=VALUE"),
                "{bad}"
            );
        }
    }
}
