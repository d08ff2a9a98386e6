//! `prompter-host`: command-line entry point.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[path = "cli/proxy.rs"]
mod proxy;
#[path = "cli/replay.rs"]
mod replay;
use prompter_host::envoy_config::{Bootstrap, Endpoint, FilterModule};

#[derive(Parser)]
#[command(
    name = "prompter-host",
    version,
    about = "Run and deploy the Prompter metrics filter"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Reverse proxy running the filter, with a Prometheus exporter. Without --upstream it
    /// starts the built-in sample Prompter API behind it.
    Proxy(proxy::ProxyArgs),
    /// Feed recorded exchanges (JSON Lines or HAR) through the filter and print the metrics.
    Replay(replay::ReplayArgs),
    /// Print an Envoy bootstrap (YAML) that puts the filter in front of the Prompter API.
    EnvoyConfig {
        /// Address Envoy listens on for API traffic.
        #[arg(long, default_value = "127.0.0.1:10000")]
        listen: Endpoint,
        /// Address of the Prompter API (host or IP, and port).
        #[arg(long, default_value = "127.0.0.1:8000")]
        upstream: Endpoint,
        /// Address of Envoy's admin interface (`/stats/prometheus`).
        #[arg(long, default_value = "127.0.0.1:9901")]
        admin: Endpoint,
        /// Path of the filter's wasm module, as Envoy will open it.
        #[arg(long, default_value = prompter_host::envoy_config::DEFAULT_WASM)]
        wasm: String,
        /// Load the native dynamic module instead (`scripts/build-native`:
        /// target/native/libprompter_filter.so); run Envoy with
        /// ENVOY_DYNAMIC_MODULES_SEARCH_PATH set to its directory.
        #[arg(long, value_name = "PATH", conflicts_with = "wasm")]
        dynamic_module: Option<String>,
        /// Plugin configuration (JSON) file; checked before it is written into the bootstrap.
        #[arg(long)]
        plugin_config: Option<std::path::PathBuf>,
    },
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Proxy(args) => proxy::run(args),
        Command::Replay(args) => replay::run(args),
        Command::EnvoyConfig {
            listen,
            upstream,
            admin,
            wasm,
            dynamic_module,
            plugin_config,
        } => {
            let plugin_config = match plugin_config.map(std::fs::read_to_string).transpose() {
                Ok(text) => text.unwrap_or_else(|| "{}".to_string()),
                Err(error) => {
                    eprintln!("prompter-host: cannot read --plugin-config: {error}");
                    return ExitCode::FAILURE;
                }
            };
            let bootstrap = Bootstrap {
                listen,
                upstream,
                admin,
                module: dynamic_module.map_or(FilterModule::Wasm(wasm), FilterModule::Native),
                plugin_config,
            };
            match bootstrap.render() {
                Ok(yaml) => {
                    print!("{yaml}");
                    ExitCode::SUCCESS
                }
                Err(error) => {
                    eprintln!("prompter-host: {error}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}
