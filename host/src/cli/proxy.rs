//! `prompter-host proxy`: arguments, checks before anything is bound, and the banner that
//! says where to look, and whether the filter really runs.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use prompter_host::envoy_config::{Endpoint, DEFAULT_WASM, UPSTREAM_TIMEOUT};
use prompter_host::exporter::METRICS_PATH;
use prompter_host::proxy::{self, ProxyOptions, RunningProxy};

use super::args;

#[derive(Args)]
pub struct ProxyArgs {
    /// Address the proxy listens on for API traffic.
    #[arg(long, default_value = "127.0.0.1:10000")]
    listen: SocketAddr,
    /// Address of the Prometheus exporter (`/metrics`).
    #[arg(long, default_value = "127.0.0.1:9464")]
    metrics: SocketAddr,
    /// The Prompter API: `HOST:PORT` or `http://HOST:PORT`. Without it, the built-in sample API.
    #[arg(long)]
    upstream: Option<Endpoint>,
    /// The filter module [default: target/wasm/prompter_filter.wasm of this checkout, found
    /// from wherever the command runs].
    #[arg(long)]
    wasm: Option<PathBuf>,
    /// Start even when the filter cannot be loaded: traffic then passes unmeasured.
    #[arg(long)]
    unmeasured: bool,
    /// Plugin configuration (JSON) file, as Envoy's plugin `configuration`.
    #[arg(long, visible_alias = "config")]
    plugin_config: Option<PathBuf>,
    /// A variable of the filter's environment, e.g. `METRICS_ENV=prod` (repeatable).
    #[arg(long = "env", value_name = "KEY=VALUE", value_parser = args::key_value)]
    env: Vec<(String, String)>,
    /// Worker threads, each with its own filter instance (as Envoy's workers).
    #[arg(long, default_value_t = std::thread::available_parallelism().map_or(2, |n| n.get()))]
    workers: usize,
    /// Give up on an upstream that has not answered after this many seconds (504), as the
    /// generated Envoy bootstrap's route timeout does.
    #[arg(long, default_value_t = UPSTREAM_TIMEOUT.as_secs_f64())]
    upstream_timeout: f64,
    /// Answer 503 when the filter fails instead of passing traffic through.
    #[arg(long)]
    fail_closed: bool,
}

/// `--wasm`, else the module as shipped; with `--unmeasured`, a missing one is no error.
fn module(args: &ProxyArgs) -> Result<PathBuf, String> {
    match (&args.wasm, args::shipped_module()) {
        (Some(path), _) => Ok(path.clone()),
        (None, Ok(found)) => Ok(found),
        (None, Err(_)) if args.unmeasured => Ok(PathBuf::from(DEFAULT_WASM)),
        (None, Err(missing)) => Err(format!(
            "{missing}, or --unmeasured to pass traffic without metrics"
        )),
    }
}

fn options(args: ProxyArgs) -> Result<ProxyOptions, String> {
    let wasm = module(&args)?;
    let plugin_config = args::plugin_config(args.plugin_config.as_deref(), "")?;
    let upstream = match &args.upstream {
        Some(endpoint) => Some(
            format!("http://{endpoint}")
                .parse()
                .map_err(|e| format!("--upstream {endpoint}: {e}"))?,
        ),
        None => None,
    };
    if !(args.upstream_timeout > 0.0 && args.upstream_timeout.is_finite()) {
        return Err("--upstream-timeout must be a positive number of seconds".into());
    }
    Ok(ProxyOptions {
        listen: args.listen,
        metrics: args.metrics,
        upstream,
        wasm,
        plugin_config,
        env: args.env,
        workers: args.workers.max(1),
        upstream_timeout: Duration::from_secs_f64(args.upstream_timeout),
        fail_closed: args.fail_closed,
        require_filter: !args.unmeasured,
        echo_logs: true,
    })
}

pub fn run(args: ProxyArgs) -> ExitCode {
    let options = match options(args) {
        Ok(options) => options,
        Err(error) => {
            eprintln!("prompter-host proxy: {error}");
            return ExitCode::FAILURE;
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(options.workers)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("prompter-host proxy: {error}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        let running = match proxy::start(options).await {
            Ok(running) => running,
            Err(error) => {
                eprintln!("prompter-host proxy: {error}");
                return ExitCode::FAILURE;
            }
        };
        banner(&running);
        let _ = tokio::signal::ctrl_c().await;
        ExitCode::SUCCESS
    })
}

/// Where to look; and, loudly, when the filter does not run.
fn banner(running: &RunningProxy) {
    let upstream = match &running.sample {
        Some(_) => format!("{} (the built-in sample Prompter API)", running.upstream),
        None => running.upstream.to_string(),
    };
    match &running.filter {
        Ok(module) => println!(
            "prompter-host proxy: the filter ({}) runs on every request",
            module.display()
        ),
        Err(reason) => {
            eprintln!(
                "prompter-host proxy: WARNING: the filter is NOT running ({reason}): traffic passes unmeasured"
            );
            println!("prompter-host proxy: the filter is NOT running: traffic passes unmeasured, /metrics has no Prompter series");
        }
    }
    println!(
        "  API through the proxy:  http://{}/api/prompt-templates",
        running.listen
    );
    println!(
        "  Prometheus metrics:     http://{}{METRICS_PATH}",
        running.metrics
    );
    println!("  upstream:               {upstream}");
    println!("Try: curl -X POST http://{}/api/prompt-templates -d '{{\"name\":\"greet\",\"body\":\"Hello\"}}'", running.listen);
    println!("Ctrl-C to stop.");
}
