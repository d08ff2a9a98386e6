//! Upstream connections that remember whether the upstream began its answer. Envoy answers
//! an upstream that closes before sending a byte with 503 (connection termination) and one
//! that closes inside its response head with 502 (protocol error); hyper's client reports
//! both as the same incomplete message, so the connection itself keeps the difference.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use hyper::Uri;
use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// Set when the upstream sent bytes after the request last written on the connection.
#[derive(Debug, Clone, Default)]
pub struct Answering(Arc<AtomicBool>);

impl Answering {
    /// True when the connection an upstream client error happened on had begun to receive
    /// its response.
    pub fn of(error: &hyper_util::client::legacy::Error) -> bool {
        let Some(connected) = error.connect_info() else {
            return false;
        };
        let mut extensions = hyper::http::Extensions::new();
        connected.get_extras(&mut extensions);
        extensions
            .get::<Answering>()
            .is_some_and(|a| a.0.load(Ordering::Relaxed))
    }
}

/// An upstream connection: a write (a request going out) clears [`Answering`], a read sets
/// it. A request body still being written when the upstream starts answering clears it
/// again; its failure then reads as before any answer (503), which Envoy may call 502.
pub struct Tracked {
    stream: TcpStream,
    answering: Answering,
}

impl AsyncRead for Tracked {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.stream).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.answering.0.store(true, Ordering::Relaxed);
        }
        polled
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.stream).poll_write(cx, buf);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.answering.0.store(false, Ordering::Relaxed);
        }
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.stream).poll_write_vectored(cx, bufs);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.answering.0.store(false, Ordering::Relaxed);
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

impl Connection for Tracked {
    fn connected(&self) -> Connected {
        self.stream.connected().extra(self.answering.clone())
    }
}

/// Connects as [`super::forward::connector`] does, handing out [`Tracked`] connections.
#[derive(Clone)]
pub struct TrackingConnector {
    inner: HttpConnector,
}

impl TrackingConnector {
    pub fn new(inner: HttpConnector) -> Self {
        TrackingConnector { inner }
    }
}

type Connecting = Pin<Box<dyn Future<Output = Result<TokioIo<Tracked>, io::Error>> + Send>>;

impl tower_service::Service<Uri> for TrackingConnector {
    type Response = TokioIo<Tracked>;
    type Error = io::Error;
    type Future = Connecting;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), io::Error>> {
        self.inner.poll_ready(cx).map_err(io::Error::other)
    }

    fn call(&mut self, uri: Uri) -> Connecting {
        let connecting = self.inner.call(uri);
        Box::pin(async move {
            let io = connecting.await.map_err(io::Error::other)?;
            Ok(TokioIo::new(Tracked {
                stream: io.into_inner(),
                answering: Answering::default(),
            }))
        })
    }
}
