//! The reverse proxy's request path: headers and body through the filter on the way in, the
//! upstream's answer (or the proxy's own 503/504, as Envoy makes them) through the filter on
//! the way out, bodies streamed both ways.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Incoming};
use hyper::header::{HeaderName, HeaderValue};
use hyper::{Request, Response, StatusCode, Uri};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;

use super::stream::{Channel, FilterStream, Filtered, Prefixed};
use super::workers::Pool;
use crate::state::{HeaderMap, LocalResponse};
use crate::vm::Action;

pub type ProxyBody = BoxBody<Bytes, hyper::Error>;
type UpstreamClient = Client<HttpConnector, ProxyBody>;

/// Upstream connections without Nagle's algorithm: a request's headers and body go out as
/// separate writes, and Nagle would hold the second until the first is acknowledged
/// (delayed ACKs: tens of milliseconds per request).
pub fn connector() -> HttpConnector {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    connector
}

/// Hop-by-hop headers, never forwarded.
const HOP_BY_HOP: [&str; 7] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

pub struct Forwarder {
    pub pool: Arc<Pool>,
    client: UpstreamClient,
    upstream: Uri,
    timeout: Duration,
    fail_closed: bool,
}

fn full(bytes: impl Into<Bytes>) -> ProxyBody {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed()
}

impl Forwarder {
    pub fn new(pool: Arc<Pool>, upstream: Uri, timeout: Duration, fail_closed: bool) -> Self {
        let client = Client::builder(hyper_util::rt::TokioExecutor::new()).build(connector());
        Forwarder {
            pool,
            client,
            upstream,
            timeout,
            fail_closed,
        }
    }

    pub async fn handle(&self, request: Request<Incoming>) -> Response<ProxyBody> {
        let stream = FilterStream::open(Arc::clone(&self.pool));
        let (parts, body) = request.into_parts();
        let (headers, action) = stream.headers(false, request_map(&parts), body.is_end_stream());
        let headers_before = headers.clone();
        if let Some(local) = stream.take_local_response() {
            return self.local_reply(&stream, local);
        }
        if self.fail_closed && stream.failed() {
            return self.local_reply(&stream, envoy_reply(503, "filter failed"));
        }
        // The request body goes through the filter as it arrives, whether or not the upstream
        // takes it (as in Envoy, where the filters before the router see it either way).
        let (frames, receiver) = tokio::sync::mpsc::channel(8);
        let pump = tokio::spawn(pump(
            Filtered::new(body, Arc::clone(&stream), false),
            frames,
        ));
        let mut channel = Channel::new(receiver);
        let (headers, body) = if action == Action::Pause {
            // The filter holds the request until it lets (part of) the body through; then the
            // headers go as it left them.
            let first = channel.recv().await;
            let headers = stream
                .with(|vm, id| Ok(vm.stream(id).map(|s| s.request_headers.clone())))
                .flatten();
            let held: Vec<_> = first.into_iter().filter_map(Result::ok).collect();
            (
                headers.unwrap_or(headers_before),
                Prefixed::new(held, channel).boxed(),
            )
        } else {
            (headers, channel.boxed())
        };
        if let Some(local) = stream.take_local_response() {
            return self.local_reply(&stream, local);
        }
        let upstream_request = match self.upstream_request(&headers, body) {
            Ok(r) => r,
            Err(reason) => return self.local_reply(&stream, envoy_reply(400, &reason)),
        };
        let response =
            match tokio::time::timeout(self.timeout, self.client.request(upstream_request)).await {
                Ok(Ok(response)) => response,
                Ok(Err(error)) => {
                    let client_gone =
                        matches!(tokio::time::timeout(BODY_GRACE, pump).await, Ok(Ok(true)));
                    if client_gone {
                        // The client went away mid-request: nobody to answer, and Envoy ends
                        // such an exchange without a status (`status="0"`), not with a 503.
                        stream.finish();
                        return Response::new(full(Bytes::new()));
                    }
                    return self.local_reply(&stream, upstream_failure(&error));
                }
                Err(_) => {
                    let _ = tokio::time::timeout(BODY_GRACE, pump).await;
                    return self.local_reply(&stream, envoy_reply(504, "upstream request timeout"));
                }
            };
        let (parts, body) = response.into_parts();
        let (headers, _) = stream.headers(true, response_map(&parts), body.is_end_stream());
        if let Some(local) = stream.take_local_response() {
            return self.local_reply(&stream, local);
        }
        let body = Filtered::new(body, stream, true);
        build_response(&headers, body.boxed())
    }

    fn upstream_request(
        &self,
        headers: &HeaderMap,
        body: ProxyBody,
    ) -> Result<Request<ProxyBody>, String> {
        let pseudo = |name: &[u8]| {
            headers
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_slice())
        };
        let method = hyper::Method::from_bytes(pseudo(b":method").unwrap_or(b"GET"))
            .map_err(|e| e.to_string())?;
        let path =
            std::str::from_utf8(pseudo(b":path").unwrap_or(b"/")).map_err(|e| e.to_string())?;
        let uri = format!(
            "{}{}",
            self.upstream.to_string().trim_end_matches('/'),
            path
        );
        let mut request = Request::builder().method(method).uri(uri);
        for (name, value) in headers.iter().filter(|(k, _)| !k.starts_with(b":")) {
            let name = HeaderName::from_bytes(name).map_err(|e| e.to_string())?;
            if HOP_BY_HOP.contains(&name.as_str()) {
                continue;
            }
            request = request.header(
                name,
                HeaderValue::from_bytes(value).map_err(|e| e.to_string())?,
            );
        }
        if let Some(authority) = pseudo(b":authority") {
            request = request.header(
                hyper::header::HOST,
                HeaderValue::from_bytes(authority).map_err(|e| e.to_string())?,
            );
        }
        request.body(body).map_err(|e| e.to_string())
    }

    /// A reply the proxy makes itself: like Envoy's local replies, the filter sees it.
    fn local_reply(&self, stream: &Arc<FilterStream>, reply: LocalResponse) -> Response<ProxyBody> {
        let mut headers = vec![(b":status".to_vec(), reply.status.to_string().into_bytes())];
        headers.extend(reply.headers.iter().cloned());
        if !reply.body.is_empty() {
            headers.push((
                b"content-length".to_vec(),
                reply.body.len().to_string().into_bytes(),
            ));
        }
        let (headers, _) = stream.headers(true, headers, reply.body.is_empty());
        let body = if reply.body.is_empty() {
            Bytes::new()
        } else {
            stream.body(true, Bytes::from(reply.body), true)
        };
        stream.finish();
        build_response(&headers, full(body))
    }
}

/// Envoy-style local reply: text/plain with the reason.
fn envoy_reply(status: u16, reason: &str) -> LocalResponse {
    LocalResponse {
        status,
        headers: vec![(b"content-type".to_vec(), b"text/plain".to_vec())],
        body: reason.as_bytes().to_vec(),
    }
}

/// Envoy's reply when the upstream exchange fails before response headers: 502 when the
/// upstream answered something that is not HTTP (a protocol error), else 503.
fn upstream_failure(error: &hyper_util::client::legacy::Error) -> LocalResponse {
    let protocol_error = std::error::Error::source(error)
        .and_then(|source| source.downcast_ref::<hyper::Error>())
        .is_some_and(hyper::Error::is_parse);
    if protocol_error {
        envoy_reply(502, "upstream connect error or disconnect/reset before headers. reset reason: protocol error")
    } else {
        envoy_reply(503, "upstream connect error or disconnect/reset before headers. reset reason: connection failure")
    }
}

/// How long a failed exchange waits for the rest of the request body to pass the filter.
const BODY_GRACE: Duration = Duration::from_secs(1);

/// Reads the downstream body through the filter and hands what it lets through to the
/// upstream; once the upstream is gone it keeps reading, so the filter still sees it all.
/// True when the client went away before the end of its body.
async fn pump(
    mut body: Filtered<Incoming>,
    frames: tokio::sync::mpsc::Sender<Result<hyper::body::Frame<Bytes>, hyper::Error>>,
) -> bool {
    let mut upstream_open = true;
    while let Some(frame) = body.frame().await {
        let failed = frame.is_err();
        if upstream_open && frames.send(frame).await.is_err() {
            upstream_open = false;
        }
        if failed {
            return true;
        }
    }
    false
}

fn request_map(parts: &hyper::http::request::Parts) -> HeaderMap {
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let authority = parts
        .headers
        .get(hyper::header::HOST)
        .map(|h| h.as_bytes().to_vec())
        .or_else(|| {
            parts
                .uri
                .authority()
                .map(|a| a.as_str().as_bytes().to_vec())
        })
        .unwrap_or_default();
    let mut map = vec![
        (
            b":method".to_vec(),
            parts.method.as_str().as_bytes().to_vec(),
        ),
        (b":path".to_vec(), path.as_bytes().to_vec()),
        (b":authority".to_vec(), authority),
        (b":scheme".to_vec(), b"http".to_vec()),
    ];
    map.extend(
        parts
            .headers
            .iter()
            .filter(|(k, _)| *k != hyper::header::HOST)
            .map(|(k, v)| (k.as_str().as_bytes().to_vec(), v.as_bytes().to_vec())),
    );
    map
}

fn response_map(parts: &hyper::http::response::Parts) -> HeaderMap {
    let mut map = vec![(
        b":status".to_vec(),
        parts.status.as_str().as_bytes().to_vec(),
    )];
    map.extend(
        parts
            .headers
            .iter()
            .map(|(k, v)| (k.as_str().as_bytes().to_vec(), v.as_bytes().to_vec())),
    );
    map
}

fn build_response(headers: &HeaderMap, body: ProxyBody) -> Response<ProxyBody> {
    let status = headers
        .iter()
        .find(|(k, _)| k == b":status")
        .and_then(|(_, v)| StatusCode::from_bytes(v).ok())
        .unwrap_or(StatusCode::BAD_GATEWAY);
    let mut response = Response::builder().status(status);
    for (name, value) in headers.iter().filter(|(k, _)| !k.starts_with(b":")) {
        let (Ok(name), Ok(value)) = (HeaderName::from_bytes(name), HeaderValue::from_bytes(value))
        else {
            continue;
        };
        if !HOP_BY_HOP.contains(&name.as_str()) {
            response = response.header(name, value);
        }
    }
    response
        .body(body)
        .unwrap_or_else(|_| Response::new(full(Bytes::new())))
}
