//! `prompter-host envoy-config`: the Envoy bootstrap that loads the filter (or, with
//! `--no-filter`, bare Envoy), printed or written to a file only once it is whole and valid.

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
    /// No filter at all, only the router: bare Envoy, the baseline to measure the filter
    /// against (every other flag as with the filter; no plugin configuration to read).
    #[arg(long, conflicts_with_all = ["wasm", "dynamic_module", "plugin_config"])]
    no_filter: bool,
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
        module: match (args.no_filter, &args.dynamic_module) {
            (true, _) => FilterModule::Bare,
            (false, Some(path)) => FilterModule::Native(path.clone()),
            (false, None) => FilterModule::Wasm(args.wasm.clone()),
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

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct EnvoyConfig {
        #[command(flatten)]
        args: EnvoyConfigArgs,
    }

    /// A bare bootstrap that silently dropped a module or a plugin configuration asked for
    /// would measure, or deploy, something else than was meant.
    #[test]
    fn no_filter_is_refused_with_a_module_or_a_plugin_configuration() {
        for (flag, value) in [
            ("--wasm", "x.wasm"),
            ("--dynamic-module", "libx.so"),
            ("--plugin-config", "x.json"),
        ] {
            for args in [["--no-filter", flag, value], [flag, value, "--no-filter"]] {
                let refused = EnvoyConfig::try_parse_from(["envoy-config"].into_iter().chain(args))
                    .err()
                    .unwrap_or_else(|| panic!("{args:?} accepted"));
                assert_eq!(refused.kind(), clap::error::ErrorKind::ArgumentConflict);
                // clap names the two flags, in the order given.
                let message = refused.to_string();
                assert!(
                    message.contains("cannot be used with")
                        && message.contains("'--no-filter'")
                        && message.contains(&format!("'{flag} <")),
                    "{message}"
                );
            }
        }
        let bare = EnvoyConfig::try_parse_from(["envoy-config", "--no-filter"]).unwrap();
        assert!(bare.args.no_filter);
    }
}
