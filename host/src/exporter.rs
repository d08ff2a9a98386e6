//! The Prometheus endpoint: `GET /metrics` serves the filter's metrics (and the host's own)
//! in the OpenMetrics text format.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::metrics::{MetricStore, CONTENT_TYPE};

/// The host's own counter of filter failures (traps, refused restarts).
/// Its name starts with the prefix the filter keeps declared metrics away from.
pub const FILTER_FAILURES: &str = "prompter_host_filter_failures";
pub const FILTER_FAILURES_HELP: &str =
    "Filter callbacks that trapped or failed (the host failed open or closed)";

pub const METRICS_PATH: &str = "/metrics";

fn respond(
    metrics: &MetricStore,
    request: &Request<hyper::body::Incoming>,
) -> Response<Full<Bytes>> {
    let builder = Response::builder();
    let found = request.uri().path() == METRICS_PATH
        && matches!(*request.method(), Method::GET | Method::HEAD);
    let response = if found {
        builder
            .header(hyper::header::CONTENT_TYPE, CONTENT_TYPE)
            .body(Full::new(Bytes::from(metrics.encode())))
    } else {
        builder
            .status(StatusCode::NOT_FOUND)
            .body(Full::new(Bytes::from_static(b"try /metrics\n")))
    };
    response.unwrap_or_else(|_| Response::new(Full::new(Bytes::new())))
}

/// Serves `/metrics` on `listener` until the runtime stops.
pub fn spawn(listener: TcpListener, metrics: Arc<MetricStore>) -> SocketAddr {
    let addr = listener
        .local_addr()
        .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
    tokio::spawn(async move {
        loop {
            let Ok((socket, _)) = listener.accept().await else {
                continue;
            };
            let metrics = Arc::clone(&metrics);
            tokio::spawn(async move {
                let service = service_fn(move |request| {
                    let response = respond(&metrics, &request);
                    async move { Ok::<_, Infallible>(response) }
                });
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(socket), service)
                    .await;
            });
        }
    });
    addr
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_hosts_own_metrics_cannot_be_declared_by_the_filter() {
        assert!(super::FILTER_FAILURES.starts_with(prompter_filter::declared::HOST_PREFIX));
    }
}
