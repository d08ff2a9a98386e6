//! `prompter-host`: command-line entry point.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[path = "cli/args.rs"]
mod args;
#[path = "cli/envoy_config.rs"]
mod envoy_config;
#[path = "cli/proxy.rs"]
mod proxy;
#[path = "cli/replay.rs"]
mod replay;

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
    EnvoyConfig(envoy_config::EnvoyConfigArgs),
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Proxy(args) => proxy::run(args),
        Command::Replay(args) => replay::run(args),
        Command::EnvoyConfig(args) => envoy_config::run(args),
    }
}
