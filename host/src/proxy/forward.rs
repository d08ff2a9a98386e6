//! The reverse proxy's request path: headers and body through the filter on the way in, the
//! upstream's answer (or the proxy's own reply, as Envoy makes it) through the filter on the
//! way out, bodies streamed both ways. Where Envoy refuses a request, answers for a failed
//! upstream or hangs up on a client, the host does the same (`docs/host-proxy.md`).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Incoming};
use hyper::header::{HeaderName, HeaderValue, CONNECTION};
use hyper::{Method, Request, Response, StatusCode, Uri};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;

use super::hop_by_hop::{self, Nominated};
use super::refusals::{self, Refusal};
use super::request_heads::Heads;
use super::stream::{Channel, FilterStream, Filtered, Prefixed};
use super::upstream_io::{Answering, TrackingConnector};
use super::workers::Pool;
use crate::state::{HeaderMap, LocalResponse};
use crate::vm::Action;

pub type ProxyBody = BoxBody<Bytes, hyper::Error>;
type UpstreamClient = Client<TrackingConnector, ProxyBody>;

/// The client went away before its request ended. There is nobody to answer: the service
/// fails with this, and hyper closes the connection without writing a response.
#[derive(Debug)]
pub struct Hangup;

impl std::fmt::Display for Hangup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the client went away before the end of its request")
    }
}

impl std::error::Error for Hangup {}

/// A request as hyper hands it over: answered at once, or an exchange to forward.
enum Opened {
    Answered(Response<ProxyBody>),
    Forward {
        stream: Arc<FilterStream>,
        headers: HeaderMap,
        action: Action,
        body: Incoming,
    },
}

/// Upstream connections without Nagle's algorithm: a request's headers and body go out as
/// separate writes, and Nagle would hold the second until the first is acknowledged
/// (delayed ACKs: tens of milliseconds per request).
pub fn connector() -> HttpConnector {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    connector
}

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
        let client = Client::builder(hyper_util::rt::TokioExecutor::new())
            .build(TrackingConnector::new(connector()));
        Forwarder {
            pool,
            client,
            upstream,
            timeout,
            fail_closed,
        }
    }

    /// Handles one request. Its headers go through the filter now, when hyper hands the
    /// request over, not when the returned future first runs: a client that hangs up right
    /// after its request still leaves an exchange, counted without a status as in Envoy.
    pub fn handle(
        self: &Arc<Self>,
        request: Request<Incoming>,
        heads: &Heads,
    ) -> impl Future<Output = Result<Response<ProxyBody>, Hangup>> + Send + 'static {
        let opened = self.open(request, heads);
        let forwarder = Arc::clone(self);
        async move {
            match opened {
                Opened::Answered(response) => Ok(response),
                Opened::Forward {
                    stream,
                    headers,
                    action,
                    body,
                } => forwarder.forward(stream, headers, action, body).await,
            }
        }
    }

    /// What Envoy does before its router: refuse what its codec and connection manager
    /// refuse (the filter sees only the reply), run the request headers through the filter,
    /// and answer 404 for CONNECT, which no route of ours matches.
    fn open(&self, request: Request<Incoming>, heads: &Heads) -> Opened {
        let (parts, body) = request.into_parts();
        let framing = heads.take(parts.method.as_str(), &parts.uri.to_string());
        let stream = FilterStream::open(Arc::clone(&self.pool));
        if let Some(refusal) = refusals::before_filters(&parts, framing) {
            return Opened::Answered(self.refuse(&stream, refusal));
        }
        let (headers, action) = stream.headers(false, request_map(&parts), body.is_end_stream());
        if let Some(local) = stream.take_local_response() {
            return Opened::Answered(self.local_reply(&stream, local));
        }
        if self.fail_closed && stream.failed() {
            return Opened::Answered(self.local_reply(&stream, envoy_reply(503, "filter failed")));
        }
        if parts.method == Method::CONNECT {
            let no_route = Refusal {
                status: 404,
                body: "",
                closes: true,
            };
            return Opened::Answered(self.refuse(&stream, no_route));
        }
        Opened::Forward {
            stream,
            headers,
            action,
            body,
        }
    }

    /// Counts a request hyper's parser refused (it already answered `status` and closed):
    /// the filter sees the reply, as Envoy's sees its codec's.
    pub fn count_parser_refusal(&self, status: u16) {
        let stream = FilterStream::open(Arc::clone(&self.pool));
        let reason = StatusCode::from_u16(status)
            .ok()
            .and_then(|s| s.canonical_reason())
            .unwrap_or_default();
        let _ = self.local_reply(&stream, envoy_reply(status, reason));
    }

    async fn forward(
        &self,
        stream: Arc<FilterStream>,
        headers: HeaderMap,
        action: Action,
        body: Incoming,
    ) -> Result<Response<ProxyBody>, Hangup> {
        let headers_before = headers.clone();
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
            return Ok(self.local_reply(&stream, local));
        }
        let upstream_request = match self.upstream_request(&headers, body) {
            Ok(r) => r,
            Err(reason) => return Ok(self.local_reply(&stream, envoy_reply(400, &reason))),
        };
        let response =
            match tokio::time::timeout(self.timeout, self.client.request(upstream_request)).await {
                Ok(Ok(response)) => response,
                Ok(Err(error)) => {
                    let body_end = tokio::time::timeout(BODY_GRACE, pump).await;
                    return match body_end {
                        // Envoy's codec answers a body it cannot read with 400 and closes.
                        Ok(Ok(BodyEnd::Malformed)) => {
                            Ok(self.refuse(&stream, refusals::BAD_REQUEST))
                        }
                        // The client went away mid-request: nobody to answer, and Envoy ends
                        // such an exchange without a status (`status="0"`).
                        Ok(Ok(BodyEnd::Gone)) => {
                            stream.finish();
                            Err(Hangup)
                        }
                        _ => Ok(self.local_reply(&stream, upstream_failure(&error))),
                    };
                }
                Err(_) => {
                    let _ = tokio::time::timeout(BODY_GRACE, pump).await;
                    return Ok(
                        self.local_reply(&stream, envoy_reply(504, "upstream request timeout"))
                    );
                }
            };
        let (parts, body) = response.into_parts();
        let (headers, _) = stream.headers(true, response_map(&parts), body.is_end_stream());
        if let Some(local) = stream.take_local_response() {
            return Ok(self.local_reply(&stream, local));
        }
        let body = Filtered::new(body, stream, true);
        Ok(build_response(&headers, body.boxed()))
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
        let named = |name: &'static [u8]| {
            headers
                .iter()
                .filter(move |(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_slice())
        };
        // Refused before the filter if the client's own headers nominate what may not go;
        // what the filter added is only ever stripped.
        let hop =
            Nominated::of_request(named(b"connection"), named(b"te").next()).unwrap_or_default();
        for (name, value) in headers.iter().filter(|(k, _)| !k.starts_with(b":")) {
            let name = HeaderName::from_bytes(name).map_err(|e| e.to_string())?;
            let Some(value) = hop.forward(name.as_str(), value) else {
                continue;
            };
            request = request.header(
                name,
                HeaderValue::from_bytes(&value).map_err(|e| e.to_string())?,
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

    /// A request refused as Envoy refuses it (see [`refusals`]), through the filter.
    fn refuse(&self, stream: &Arc<FilterStream>, refusal: Refusal) -> Response<ProxyBody> {
        let mut reply = envoy_reply(refusal.status, refusal.body);
        if refusal.body.is_empty() {
            reply.headers.clear();
        }
        let mut response = self.local_reply(stream, reply);
        if refusal.closes {
            response
                .headers_mut()
                .insert(CONNECTION, HeaderValue::from_static("close"));
        }
        response
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
/// upstream answered something that is not HTTP or stopped inside its response head (a
/// protocol error), else 503 (it refused, reset or closed before answering).
fn upstream_failure(error: &hyper_util::client::legacy::Error) -> LocalResponse {
    let unparsable = std::error::Error::source(error)
        .and_then(|source| source.downcast_ref::<hyper::Error>())
        .is_some_and(hyper::Error::is_parse);
    if unparsable || Answering::of(error) {
        envoy_reply(502, "upstream connect error or disconnect/reset before headers. reset reason: protocol error")
    } else {
        envoy_reply(503, "upstream connect error or disconnect/reset before headers. reset reason: connection failure")
    }
}

/// How long a failed exchange waits for the rest of the request body to pass the filter.
const BODY_GRACE: Duration = Duration::from_secs(1);

/// How a request body ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BodyEnd {
    Complete,
    /// Not readable as HTTP (a malformed chunk).
    Malformed,
    /// The connection ended first (the client closed or half-closed it mid-body).
    Gone,
}

impl BodyEnd {
    /// hyper's body errors carry the decoder's `io::Error`: invalid input or data for framing
    /// it cannot read, anything else (an early end of file) for a client gone.
    fn of(error: &hyper::Error) -> BodyEnd {
        let mut source = std::error::Error::source(error);
        while let Some(error) = source {
            if let Some(io) = error.downcast_ref::<std::io::Error>() {
                use std::io::ErrorKind::{InvalidData, InvalidInput};
                return if matches!(io.kind(), InvalidData | InvalidInput) {
                    BodyEnd::Malformed
                } else {
                    BodyEnd::Gone
                };
            }
            source = error.source();
        }
        BodyEnd::Gone
    }
}

/// Reads the downstream body through the filter and hands what it lets through to the
/// upstream; once the upstream is gone it keeps reading, so the filter still sees it all.
async fn pump(
    mut body: Filtered<Incoming>,
    frames: tokio::sync::mpsc::Sender<Result<hyper::body::Frame<Bytes>, hyper::Error>>,
) -> BodyEnd {
    let mut upstream_open = true;
    while let Some(frame) = body.frame().await {
        let end = frame.as_ref().err().map(BodyEnd::of);
        if upstream_open && frames.send(frame).await.is_err() {
            upstream_open = false;
        }
        if let Some(end) = end {
            return end;
        }
    }
    BodyEnd::Complete
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
    let mut map = vec![(
        b":method".to_vec(),
        parts.method.as_str().as_bytes().to_vec(),
    )];
    // CONNECT names an authority, not a path: Envoy's filters see no `:path` for it.
    if parts.method != Method::CONNECT {
        map.push((b":path".to_vec(), path.as_bytes().to_vec()));
    }
    map.push((b":authority".to_vec(), authority));
    map.push((b":scheme".to_vec(), b"http".to_vec()));
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
        // Only the fixed list: Envoy passes on what an upstream's `Connection` names.
        if !hop_by_hop::ALWAYS.contains(&name.as_str()) {
            response = response.header(name, value);
        }
    }
    response
        .body(body)
        .unwrap_or_else(|_| Response::new(full(Bytes::new())))
}
