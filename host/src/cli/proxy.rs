//! `prompter-host proxy`: arguments, checks before anything is bound, and the banner that
//! says where to look.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use prompter_host::exporter::METRICS_PATH;
use prompter_host::proxy::{self, ProxyOptions};

#[derive(Args)]
pub struct ProxyArgs {
    /// Address the proxy listens on for API traffic.
    #[arg(long, default_value = "127.0.0.1:10000")]
    listen: SocketAddr,
    /// Address of the Prometheus exporter (`/metrics`).
    #[arg(long, default_value = "127.0.0.1:9464")]
    metrics: SocketAddr,
    /// The Prompter API, e.g. `http://127.0.0.1:8000`. Without it, the built-in sample API.
    #[arg(long)]
    upstream: Option<String>,
    /// The filter module.
    #[arg(long, default_value = prompter_host::envoy_config::DEFAULT_WASM)]
    wasm: PathBuf,
    /// Plugin configuration (JSON) file, as Envoy's plugin `configuration`.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Environment of the filter's VM, `KEY=VALUE` (METRICS_SERVICE, METRICS_ENV).
    #[arg(long = "env", value_name = "KEY=VALUE")]
    env: Vec<String>,
    /// Worker threads, each with its own filter instance (as Envoy's workers).
    #[arg(long, default_value_t = std::thread::available_parallelism().map_or(2, |n| n.get()))]
    workers: usize,
    /// Give up on an upstream that has not answered after this many seconds (504).
    #[arg(long, default_value_t = 60.0)]
    upstream_timeout: f64,
    /// Answer 503 when the filter fails instead of passing traffic through.
    #[arg(long)]
    fail_closed: bool,
}

fn options(args: ProxyArgs) -> Result<ProxyOptions, String> {
    let plugin_config = match &args.config {
        Some(path) => {
            std::fs::read(path).map_err(|e| format!("--config {}: {e}", path.display()))?
        }
        None => Vec::new(),
    };
    let env = args
        .env
        .iter()
        .map(|kv| {
            kv.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .ok_or_else(|| format!("--env `{kv}`: expected KEY=VALUE"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let upstream = match &args.upstream {
        Some(raw) => {
            let with_scheme = if raw.contains("://") {
                raw.clone()
            } else {
                format!("http://{raw}")
            };
            let uri: hyper::Uri = with_scheme
                .parse()
                .map_err(|e| format!("--upstream `{raw}`: {e}"))?;
            if uri.scheme_str() != Some("http") || uri.authority().is_none() {
                return Err(format!("--upstream `{raw}`: expected http://HOST:PORT"));
            }
            Some(uri)
        }
        None => None,
    };
    if !(args.upstream_timeout > 0.0 && args.upstream_timeout.is_finite()) {
        return Err("--upstream-timeout must be a positive number of seconds".into());
    }
    Ok(ProxyOptions {
        listen: args.listen,
        metrics: args.metrics,
        upstream,
        wasm: args.wasm,
        plugin_config,
        env,
        workers: args.workers.max(1),
        upstream_timeout: Duration::from_secs_f64(args.upstream_timeout),
        fail_closed: args.fail_closed,
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
        let upstream = match &running.sample {
            Some(_) => format!("{} (the built-in sample Prompter API)", running.upstream),
            None => running.upstream.to_string(),
        };
        println!("prompter-host proxy: the filter runs on every request");
        println!("  API through the proxy:  http://{}/api/prompt-templates", running.listen);
        println!("  Prometheus metrics:     http://{}{METRICS_PATH}", running.metrics);
        println!("  upstream:               {upstream}");
        println!("Try: curl -X POST http://{}/api/prompt-templates -d '{{\"name\":\"greet\",\"body\":\"Hello\"}}'", running.listen);
        println!("Ctrl-C to stop.");
        let _ = tokio::signal::ctrl_c().await;
        ExitCode::SUCCESS
    })
}
