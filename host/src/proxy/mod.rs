//! `prompter-host proxy`: a small reverse proxy that runs the filter on every exchange and
//! exports its metrics, the same `.wasm` Envoy loads. Without an upstream it starts the
//! sample Prompter API, so that one command shows the whole thing working.

mod forward;
mod hop_by_hop;
mod refusals;
mod request_heads;
mod stream;
mod upstream_io;
mod workers;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::Uri;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use prompter_filter::config::DEFAULT_HEALTH_CLUSTER;
use tokio::net::TcpListener;

use crate::clock::Clock;
use crate::exporter;
use crate::logs::{Level, Logs};
use crate::metrics::MetricStore;
use crate::shared_data::SharedData;
use crate::state::{HttpCallRequest, HttpCallResponse, PluginSetup, Shared};
use crate::vm::FilterModule;
use forward::Forwarder;
use request_heads::{HeadReader, Heads, Inspected};
use workers::{CallPerformer, Pool};

#[derive(Debug, Clone)]
pub struct ProxyOptions {
    pub listen: SocketAddr,
    pub metrics: SocketAddr,
    /// `None`: start the sample Prompter API and proxy to it.
    pub upstream: Option<Uri>,
    pub wasm: PathBuf,
    pub plugin_config: Vec<u8>,
    pub env: Vec<(String, String)>,
    pub workers: usize,
    pub upstream_timeout: Duration,
    /// Answer 503 when the filter fails, instead of passing traffic through.
    pub fail_closed: bool,
    /// Refuse to start when the module cannot be loaded, instead of passing traffic through
    /// unmeasured (`prompter-host proxy` without `--unmeasured`).
    pub require_filter: bool,
    /// Echo the filter's log lines to stderr.
    pub echo_logs: bool,
}

/// A running proxy; dropping its runtime stops it.
pub struct RunningProxy {
    pub listen: SocketAddr,
    pub metrics: SocketAddr,
    pub upstream: Uri,
    pub shared: Shared,
    /// The module that runs on every request, or why none does (traffic passes unmeasured).
    pub filter: Result<PathBuf, String>,
    /// Kept alive while the proxy runs (the built-in sample API, if any).
    pub sample: Option<prompter_sample_api::Running>,
}

/// Starts the proxy on the current tokio runtime. A configuration the filter refuses, or one
/// that calls a cluster other than the upstream, is an error here (nothing is bound); a
/// module that cannot be loaded fails open unless `fail_closed` or `require_filter`.
pub async fn start(options: ProxyOptions) -> Result<RunningProxy, String> {
    let env = |name: &str| {
        options
            .env
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    // A configuration the filter refuses is reported by the filter itself, below.
    if let Ok(config) = prompter_filter::config::Config::parse(&options.plugin_config, env) {
        crate::envoy_config::check_clusters(&config)?;
    }
    let logs = Arc::new(Logs::new(options.echo_logs.then_some(Level::Info)));
    let buckets = crate::metrics::filter_buckets(&options.plugin_config, &options.env);
    let shared = Shared {
        metrics: Arc::new(MetricStore::new(buckets, Arc::clone(&logs))),
        shared_data: Arc::new(SharedData::default()),
        logs,
        clock: Clock::System,
    };
    let failures = shared
        .metrics
        .host_counter(exporter::FILTER_FAILURES, exporter::FILTER_FAILURES_HELP);
    let (module, filter) = match FilterModule::from_file(&options.wasm) {
        Ok(module) => (Some(module), Ok(options.wasm.clone())),
        Err(error) if !options.fail_closed && !options.require_filter => {
            failures.inc();
            shared.logs.push(
                Level::Error,
                format!("prompter-host: {error}; failing open: traffic passes without metrics"),
            );
            (None, Err(error.to_string()))
        }
        Err(error) => return Err(error.to_string()),
    };

    let (upstream, sample) = match options.upstream.clone() {
        Some(uri) => (uri, None),
        None => {
            let sample = prompter_sample_api::serve(SocketAddr::from(([127, 0, 0, 1], 0)))
                .await
                .map_err(|e| format!("cannot start the sample API: {e}"))?;
            let uri: Uri = format!("http://{}", sample.addr)
                .parse()
                .map_err(|e| format!("{e}"))?;
            (uri, Some(sample))
        }
    };

    let setup = PluginSetup {
        plugin_config: options.plugin_config.clone(),
        env: options.env.clone(),
        clusters: vec![DEFAULT_HEALTH_CLUSTER.to_string()],
        ..PluginSetup::default()
    };
    let pool = Pool::new(module, shared.clone(), setup, options.workers, failures)
        .map_err(|e| e.to_string())?;
    pool.spawn_background(call_performer(upstream.clone()));

    let listener = TcpListener::bind(options.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", options.listen))?;
    let metrics_listener = TcpListener::bind(options.metrics)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", options.metrics))?;
    let listen = listener.local_addr().map_err(|e| e.to_string())?;
    let metrics = exporter::spawn(metrics_listener, Arc::clone(&shared.metrics));
    let forwarder = Arc::new(Forwarder::new(
        pool,
        upstream.clone(),
        options.upstream_timeout,
        options.fail_closed,
    ));
    tokio::spawn(accept_loop(listener, forwarder));
    Ok(RunningProxy {
        listen,
        metrics,
        upstream,
        shared,
        filter,
        sample,
    })
}

/// HTTP/1.1 connections with Envoy's limits on a request head. A head hyper's parser
/// refuses is answered by hyper and counted here, as Envoy's filters count its codec's
/// refusals.
async fn accept_loop(listener: TcpListener, forwarder: Arc<Forwarder>) {
    let mut http = http1::Builder::new();
    http.max_header_size(refusals::MAX_HEAD_BYTES);
    loop {
        let Ok((socket, _)) = listener.accept().await else {
            continue;
        };
        let _ = socket.set_nodelay(true);
        let forwarder = Arc::clone(&forwarder);
        let heads = Arc::new(Heads::default());
        let reader = HeadReader::new(Arc::clone(&heads), refusals::MAX_HEAD_BYTES);
        let connection = TokioIo::new(Inspected::new(socket, reader));
        let http = http.clone();
        tokio::spawn(async move {
            let service = {
                let forwarder = Arc::clone(&forwarder);
                service_fn(move |request| forwarder.handle(request, &heads))
            };
            if let Err(error) = http.serve_connection(connection, service).await {
                if let Some(status) = refusals::refused_by_parser(&error) {
                    forwarder.count_parser_refusal(status);
                }
            }
        });
    }
}

/// Performs the filter's http calls against the upstream (the only cluster the proxy knows).
fn call_performer(upstream: Uri) -> CallPerformer {
    let client: Client<_, Empty<Bytes>> =
        Client::builder(TokioExecutor::new()).build(forward::connector());
    Arc::new(move |call: HttpCallRequest| {
        let client = client.clone();
        let upstream = upstream.clone();
        tokio::spawn(async move {
            let header = |name: &[u8]| {
                call.headers
                    .iter()
                    .find(|(k, _)| k == name)
                    .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
            };
            let path = header(b":path").unwrap_or_else(|| "/".into());
            let method = header(b":method").unwrap_or_else(|| "GET".into());
            let uri = format!("{}{}", upstream.to_string().trim_end_matches('/'), path);
            let request = hyper::Request::builder()
                .method(method.as_str())
                .uri(uri)
                .body(Empty::new())
                .ok()?;
            let timeout = Duration::from_millis(u64::from(call.timeout_ms.max(1)));
            let response = tokio::time::timeout(timeout, client.request(request))
                .await
                .ok()?
                .ok()?;
            let (parts, body) = response.into_parts();
            let body = tokio::time::timeout(timeout, body.collect())
                .await
                .ok()?
                .ok()?
                .to_bytes();
            let mut headers = vec![(
                b":status".to_vec(),
                parts.status.as_str().as_bytes().to_vec(),
            )];
            headers.extend(
                parts
                    .headers
                    .iter()
                    .map(|(k, v)| (k.as_str().as_bytes().to_vec(), v.as_bytes().to_vec())),
            );
            Some(HttpCallResponse {
                headers,
                body: body.to_vec(),
                trailers: Vec::new(),
            })
        })
    })
}

/// A proxy on its own thread and runtime, for tests and tools that are not async.
pub struct BackgroundProxy {
    pub listen: SocketAddr,
    pub metrics: SocketAddr,
    pub upstream: Uri,
    pub shared: Shared,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

pub fn spawn(options: ProxyOptions) -> Result<BackgroundProxy, String> {
    let workers = options.workers.max(1);
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let thread = std::thread::spawn(move || {
        let runtime = match tokio::runtime::Builder::new_multi_thread()
            .worker_threads(workers)
            .enable_all()
            .build()
        {
            Ok(runtime) => runtime,
            Err(e) => {
                let _ = ready_tx.send(Err(e.to_string()));
                return;
            }
        };
        runtime.block_on(async move {
            match start(options).await {
                Ok(running) => {
                    let info = (
                        running.listen,
                        running.metrics,
                        running.upstream.clone(),
                        running.shared.clone(),
                    );
                    let _ = ready_tx.send(Ok(info));
                    let _ = stop_rx.await;
                    drop(running);
                }
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                }
            }
        });
    });
    let (listen, metrics, upstream, shared) = ready_rx.recv().map_err(|e| e.to_string())??;
    Ok(BackgroundProxy {
        listen,
        metrics,
        upstream,
        shared,
        stop: Some(stop_tx),
        thread: Some(thread),
    })
}

impl Drop for BackgroundProxy {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
