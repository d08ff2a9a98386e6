//! `prompter-host replay FILE`: checks a recording, replays it, prints the metrics.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use prompter_host::logs::Level;
use prompter_host::replay::{load, replay, Error, Format, DEFAULT_PLUGIN_CONFIG};
use prompter_host::state::PluginSetup;
use prompter_host::vm::FilterModule;
use prompter_host::HostError;

use super::args;

/// Feed recorded exchanges (JSON Lines or HAR) through the filter and print the metrics
/// `/metrics` would serve.
#[derive(Args)]
pub struct ReplayArgs {
    /// The recording: JSON Lines (one exchange per line) or HAR 1.2; `-` reads standard input.
    file: PathBuf,
    /// `jsonl` or `har` [default: from the extension, else from the content].
    #[arg(long)]
    format: Option<Format>,
    /// The filter's wasm module [default: the module as shipped, found as `proxy` finds it].
    #[arg(long)]
    wasm: Option<PathBuf>,
    /// Plugin configuration (JSON) file [default: the defaults, health polling off].
    #[arg(long)]
    plugin_config: Option<PathBuf>,
    /// A variable of the VM's environment, e.g. `METRICS_ENV=prod` (repeatable).
    #[arg(long = "env", value_name = "KEY=VALUE", value_parser = args::key_value)]
    env: Vec<(String, String)>,
}

/// Prints the metrics on stdout; warnings and errors go to stderr.
pub fn run(args: ReplayArgs) -> ExitCode {
    match metrics(&args) {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("prompter-host replay: {message}");
            ExitCode::FAILURE
        }
    }
}

fn metrics(args: &ReplayArgs) -> Result<String, String> {
    let file = args.file.display();
    let recording = load(&args.file, args.format).map_err(|e| format!("{file}: {e}"))?;
    for warning in &recording.warnings {
        eprintln!("prompter-host replay: warning: {file}: {warning}");
    }
    let plugin_config = args::plugin_config(args.plugin_config.as_deref(), DEFAULT_PLUGIN_CONFIG)?;
    let wasm = match &args.wasm {
        Some(path) => path.clone(),
        None => args::shipped_module()?,
    };
    let module = FilterModule::from_file(&wasm).map_err(|e| match e {
        HostError::Read { .. } => format!("{e} (build it with scripts/build-wasm, or give --wasm)"),
        e => e.to_string(),
    })?;
    let setup = PluginSetup {
        plugin_config,
        env: args.env.clone(),
        ..PluginSetup::default()
    };
    let shared = replay(&module, setup, &recording.exchanges).map_err(|e| match e {
        Error::Start(_) => e.to_string(),
        e => format!("{file}: {e}"),
    })?;
    for (level, line) in shared.logs.lines() {
        if level >= Level::Warn {
            eprintln!("prompter-host replay: filter: {line}");
        }
    }
    Ok(shared.metrics.encode())
}
