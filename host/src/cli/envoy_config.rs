//! `prompter-host envoy-config`: the Envoy bootstrap that loads the filter, printed or
//! written to a file only once it is whole and valid.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use prompter_host::envoy_config::{Bootstrap, Endpoint, FilterModule, DEFAULT_WASM};

use super::args;

#[derive(Args)]
pub struct EnvoyConfigArgs {
    /// Address Envoy listens on for API traffic (an IP address).
    #[arg(long, default_value = "127.0.0.1:10000")]
    listen: Endpoint,
    /// Address of the Prompter API: `HOST:PORT` or `http://HOST:PORT`.
    #[arg(long, default_value = "127.0.0.1:8000")]
    upstream: Endpoint,
    /// Address of Envoy's admin interface (`/stats/prometheus`; an IP address).
    #[arg(long, default_value = "127.0.0.1:9901")]
    admin: Endpoint,
    /// Path of the filter's wasm module, as Envoy will open it.
    #[arg(long, default_value = DEFAULT_WASM)]
    wasm: String,
    /// Load the native dynamic module instead (`scripts/build-native`:
    /// target/native/libprompter_filter.so); run Envoy with ENVOY_DYNAMIC_MODULES_SEARCH_PATH
    /// set to its directory.
    #[arg(long, value_name = "PATH", conflicts_with = "wasm")]
    dynamic_module: Option<String>,
    /// Plugin configuration (JSON) file; checked before it is written into the bootstrap.
    #[arg(long)]
    plugin_config: Option<PathBuf>,
    /// Write the bootstrap to this file instead of standard output (only when it is valid).
    #[arg(long, short)]
    output: Option<PathBuf>,
}

pub fn run(args: EnvoyConfigArgs) -> ExitCode {
    match render(&args).and_then(|yaml| write(&args, &yaml)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("prompter-host envoy-config: {error}");
            ExitCode::FAILURE
        }
    }
}

fn render(args: &EnvoyConfigArgs) -> Result<String, String> {
    let plugin_config = args::plugin_config(args.plugin_config.as_deref(), "{}")?;
    Bootstrap {
        listen: args.listen.clone(),
        upstream: args.upstream.clone(),
        admin: args.admin.clone(),
        module: match &args.dynamic_module {
            Some(path) => FilterModule::Native(path.clone()),
            None => FilterModule::Wasm(args.wasm.clone()),
        },
        plugin_config: String::from_utf8(plugin_config)
            .map_err(|_| "--plugin-config: not UTF-8 text".to_string())?,
    }
    .render()
}

/// Standard output, or the file written aside and renamed: never an empty or half file.
fn write(args: &EnvoyConfigArgs, yaml: &str) -> Result<(), String> {
    let Some(path) = &args.output else {
        print!("{yaml}");
        return Ok(());
    };
    let partial = path.with_extension("partial");
    std::fs::write(&partial, yaml)
        .and_then(|()| std::fs::rename(&partial, path))
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}
