//! One proxied exchange as the filter sees it: the stream in its worker's instance, the
//! body adapters that run each chunk through the filter as it passes, and the end of the
//! stream (`proxy_on_log`) whether the response completes or the client goes away.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::{Body, Frame};

use super::workers::{Pool, Worker};
use crate::state::HeaderMap;
use crate::vm::{Action, FilterInstance, StreamId};

/// A stream in a worker's instance. When the filter fails mid-stream, the stream carries on
/// without it (fail open) and `failed` tells the caller (fail closed answers 503).
pub struct FilterStream {
    pool: Arc<Pool>,
    worker: Arc<Mutex<Worker>>,
    id: Option<StreamId>,
    finished: AtomicBool,
    failed: AtomicBool,
}

impl FilterStream {
    pub fn open(pool: Arc<Pool>) -> Arc<FilterStream> {
        let worker = pool.pick();
        let id = pool.with(&worker, |vm| vm.create_stream());
        let failed = AtomicBool::new(id.is_none());
        Arc::new(FilterStream {
            pool,
            worker,
            id,
            finished: AtomicBool::new(false),
            failed,
        })
    }

    pub fn failed(&self) -> bool {
        self.failed.load(Ordering::Relaxed)
    }

    /// Runs `f` on this stream unless the filter already failed on it.
    pub fn with<T>(
        &self,
        f: impl FnOnce(&mut FilterInstance, StreamId) -> crate::Result<T>,
    ) -> Option<T> {
        let id = self.id?;
        if self.failed() || self.finished.load(Ordering::Relaxed) {
            return None;
        }
        let result = self.pool.with(&self.worker, |vm| f(vm, id));
        if result.is_none() {
            self.failed.store(true, Ordering::Relaxed);
        }
        result
    }

    /// Request or response headers through the filter; returns the headers as the filter
    /// left them (unchanged when it failed) and its action.
    pub fn headers(
        &self,
        response: bool,
        headers: HeaderMap,
        end_of_stream: bool,
    ) -> (HeaderMap, Action) {
        let fallback = headers.clone();
        self.with(|vm, id| {
            let action = if response {
                vm.on_response_headers(id, headers, end_of_stream)?
            } else {
                vm.on_request_headers(id, headers, end_of_stream)?
            };
            let stream = vm.stream(id);
            let headers = stream.map(|s| {
                if response {
                    s.response_headers.clone()
                } else {
                    s.request_headers.clone()
                }
            });
            Ok((headers.unwrap_or_default(), action))
        })
        .unwrap_or((fallback, Action::Continue))
    }

    /// A body chunk through the filter: the bytes to forward now (empty while it buffers).
    pub fn body(&self, response: bool, chunk: Bytes, end_of_stream: bool) -> Bytes {
        let passthrough = chunk.clone();
        self.with(|vm, id| {
            let action = if response {
                vm.on_response_body(id, &chunk, end_of_stream)?
            } else {
                vm.on_request_body(id, &chunk, end_of_stream)?
            };
            if action == Action::Pause && !end_of_stream {
                return Ok(Bytes::new());
            }
            let stream = vm.stream(id).map(|s| {
                std::mem::take(if response {
                    &mut s.response_body
                } else {
                    &mut s.request_body
                })
            });
            Ok(Bytes::from(stream.unwrap_or_default()))
        })
        .unwrap_or(passthrough)
    }

    pub fn take_local_response(&self) -> Option<crate::state::LocalResponse> {
        self.with(|vm, id| Ok(vm.take_local_response(id))).flatten()
    }

    /// Ends the stream once (`proxy_on_log`, `proxy_on_done`, `proxy_on_delete`). After a
    /// failure there is nothing to end: the instance that trapped is gone.
    pub fn finish(&self) {
        if self.finished.swap(true, Ordering::Relaxed) || self.failed() {
            return;
        }
        if let Some(id) = self.id {
            // Even after a failure the stream must leave its instance.
            self.pool.with(&self.worker, |vm| vm.finish_stream(id));
        }
    }
}

impl Drop for FilterStream {
    fn drop(&mut self) {
        self.finish();
    }
}

/// A body whose data frames pass through the filter as they stream (no buffering unless the
/// filter pauses); the response side ends the stream when the body ends.
pub struct Filtered<B> {
    inner: B,
    stream: Arc<FilterStream>,
    response: bool,
    ended: bool,
}

impl<B> Filtered<B> {
    /// Wraps `inner`; a body that is already complete (headers-only) is never shown to the
    /// filter, as Envoy does not call body callbacks for it.
    pub fn new(inner: B, stream: Arc<FilterStream>, response: bool) -> Self
    where
        B: Body,
    {
        let mut body = Filtered {
            ended: false,
            inner,
            stream,
            response,
        };
        if body.inner.is_end_stream() {
            body.end();
        }
        body
    }
}

impl<B> Body for Filtered<B>
where
    B: Body<Data = Bytes> + Unpin,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        loop {
            if self.ended {
                return Poll::Ready(None);
            }
            match Pin::new(&mut self.inner).poll_frame(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e))),
                Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                    Ok(data) => {
                        let end = self.inner.is_end_stream();
                        let out = self.stream.body(self.response, data, end);
                        if end {
                            self.end();
                        }
                        if !out.is_empty() {
                            return Poll::Ready(Some(Ok(Frame::data(out))));
                        }
                    }
                    Err(frame) => return Poll::Ready(Some(Ok(frame))),
                },
                Poll::Ready(None) => {
                    // The body ended after its last data frame: tell the filter, and flush
                    // whatever it held back.
                    let out = self.stream.body(self.response, Bytes::new(), true);
                    self.end();
                    return Poll::Ready((!out.is_empty()).then(|| Ok(Frame::data(out))));
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.ended
    }
}

impl<B> Filtered<B> {
    fn end(&mut self) {
        self.ended = true;
        if self.response {
            self.stream.finish();
        }
    }
}

/// Frames already read (while the filter held the request), then the rest of the body.
pub struct Prefixed<B> {
    held: std::collections::VecDeque<Frame<Bytes>>,
    rest: B,
}

impl<B> Prefixed<B> {
    pub fn new(held: Vec<Frame<Bytes>>, rest: B) -> Self {
        Prefixed {
            held: held.into(),
            rest,
        }
    }
}

impl<B> Body for Prefixed<B>
where
    B: Body<Data = Bytes> + Unpin,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        if let Some(frame) = self.held.pop_front() {
            return Poll::Ready(Some(Ok(frame)));
        }
        Pin::new(&mut self.rest).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.held.is_empty() && self.rest.is_end_stream()
    }
}

/// The request body as the upstream client reads it: frames the pump let through the filter.
pub struct Channel {
    frames: tokio::sync::mpsc::Receiver<Result<Frame<Bytes>, hyper::Error>>,
}

impl Channel {
    pub fn new(frames: tokio::sync::mpsc::Receiver<Result<Frame<Bytes>, hyper::Error>>) -> Self {
        Channel { frames }
    }

    pub async fn recv(&mut self) -> Option<Result<Frame<Bytes>, hyper::Error>> {
        self.frames.recv().await
    }
}

impl Body for Channel {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        self.frames.poll_recv(cx)
    }
}
