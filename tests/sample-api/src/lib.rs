//! A stand-in for the Prompter API (FastAPI prompt-template service) speaking plain HTTP/1.1.
//!
//! It is the upstream behind Envoy in the metrics filter's end-to-end tests and
//! the demo upstream of the reverse proxy. Query knobs (`delay_ms`,
//! `output_bytes`, `chunk`, `chunked`, `output_first`, for streamed runs
//! `stream`, `event_delay_ms`, and for a run's token `usage` `prompt_tokens`,
//! `completion_tokens`, `usage=0`) and the `/__sample/*` control routes let
//! tests shape responses; see [`routes::Knobs`].
//!
//! A run reports OpenAI's `usage` object (`prompt_tokens`, `completion_tokens`,
//! `total_tokens`): the last member of its JSON, or on the last event before
//! `data: [DONE]` of a streamed run. A byte counts as a token: by default
//! `prompt_tokens` is the request body's length and `completion_tokens` the
//! output's, and `total_tokens` their sum.

pub mod body;
pub mod openapi;
pub mod routes;
pub mod store;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};
use tokio::task::{JoinHandle, JoinSet};

pub use store::SampleApi;

/// How long open connections get to finish their current response on shutdown.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(1);

/// A server running on the caller's tokio runtime.
#[derive(Debug)]
pub struct Running {
    pub addr: SocketAddr,
    api: Arc<SampleApi>,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Running {
    /// The state shared by every connection of this server.
    pub fn api(&self) -> &Arc<SampleApi> {
        &self.api
    }

    /// Stops accepting, lets in-flight responses finish briefly, then ends.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

/// Binds `addr` (port 0 picks a free port) and serves on the current runtime.
/// Returns once the socket is listening.
pub async fn serve(addr: SocketAddr) -> std::io::Result<Running> {
    serve_with(addr, Arc::new(SampleApi::new())).await
}

/// Like [`serve`], with caller-provided state (e.g. Redis starting down).
pub async fn serve_with(addr: SocketAddr, api: Arc<SampleApi>) -> std::io::Result<Running> {
    let listener = TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    let (stop, stopped) = watch::channel(false);
    let task = tokio::spawn(accept_loop(listener, Arc::clone(&api), stopped));
    Ok(Running {
        addr,
        api,
        stop,
        task,
    })
}

async fn accept_loop(
    listener: TcpListener,
    api: Arc<SampleApi>,
    mut stopped: watch::Receiver<bool>,
) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            _ = stopped.changed() => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            accepted = listener.accept() => {
                let Ok((stream, _peer)) = accepted else {
                    // Usually EMFILE or a connection reset before accept; back
                    // off briefly instead of spinning on the error.
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                };
                // Small paced frames (`?chunk=1`) must leave as separate segments.
                let _ = stream.set_nodelay(true);
                connections.spawn(serve_connection(stream, Arc::clone(&api), stopped.clone()));
            }
        }
    }
    drop(listener);
    let drain = async { while connections.join_next().await.is_some() {} };
    if tokio::time::timeout(DRAIN_TIMEOUT, drain).await.is_err() {
        connections.shutdown().await;
    }
}

async fn serve_connection(
    stream: tokio::net::TcpStream,
    api: Arc<SampleApi>,
    mut stopped: watch::Receiver<bool>,
) {
    let service = service_fn(move |req| {
        let api = Arc::clone(&api);
        async move { Ok::<_, std::convert::Infallible>(routes::handle(api, req).await) }
    });
    let conn = http1::Builder::new()
        .keep_alive(true)
        .serve_connection(TokioIo::new(stream), service);
    tokio::pin!(conn);
    tokio::select! {
        _ = conn.as_mut() => return,
        _ = stopped.changed() => conn.as_mut().graceful_shutdown(),
    }
    // Errors here are client disconnects and malformed requests: nothing to report.
    let _ = conn.await;
}

/// A server on its own thread and runtime, for synchronous tests. Dropping it stops the server.
#[derive(Debug)]
pub struct BackgroundServer {
    pub addr: SocketAddr,
    api: Arc<SampleApi>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl BackgroundServer {
    /// The state shared by every connection of this server.
    pub fn api(&self) -> &Arc<SampleApi> {
        &self.api
    }
}

impl Drop for BackgroundServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Starts a server on a dedicated thread with its own tokio runtime.
pub fn spawn(addr: SocketAddr) -> std::io::Result<BackgroundServer> {
    spawn_with(addr, Arc::new(SampleApi::new()))
}

/// Like [`spawn`], with caller-provided state.
pub fn spawn_with(addr: SocketAddr, api: Arc<SampleApi>) -> std::io::Result<BackgroundServer> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("sample-api")
        .enable_all()
        .build()?;
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let thread_api = Arc::clone(&api);
    let thread = std::thread::Builder::new()
        .name("sample-api".into())
        .spawn(move || {
            runtime.block_on(async move {
                let running = match serve_with(addr, thread_api).await {
                    Ok(running) => running,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                let _ = ready_tx.send(Ok(running.addr));
                // A dropped sender (handle leaked or dropped) also means stop.
                let _ = stop_rx.await;
                running.shutdown().await;
            });
        })?;
    let addr = match ready_rx.recv() {
        Ok(Ok(addr)) => addr,
        Ok(Err(e)) => {
            let _ = thread.join();
            return Err(e);
        }
        Err(_) => {
            let _ = thread.join();
            return Err(std::io::Error::other(
                "sample-api thread exited before listening",
            ));
        }
    };
    Ok(BackgroundServer {
        addr,
        api,
        stop: Some(stop_tx),
        thread: Some(thread),
    })
}
