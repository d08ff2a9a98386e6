//! The request heads of a connection as the client wrote them, read beside hyper: hyper's
//! parser folds a repeated `Content-Length` into one and drops `Content-Length` beside
//! `Transfer-Encoding`, both of which Envoy's codec refuses (400). The socket is wrapped so
//! that every byte hyper reads also passes a small reader that finds each head (skipping
//! bodies by their framing) and notes how the head framed its body.

use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// How a head framed its body, on the points where hyper and Envoy part.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    Plain,
    /// `Content-Length` more than once, or a list of lengths in one.
    RepeatedLength,
    /// `Content-Length` and `Transfer-Encoding` both.
    LengthAndEncoding,
}

/// One head as read off the wire: enough to tell it is the request hyper hands over next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    pub method: Vec<u8>,
    pub target: Vec<u8>,
    pub framing: Framing,
}

/// The heads read so far on one connection, oldest first, for the service to take in the
/// order hyper dispatches the requests.
#[derive(Debug, Default)]
pub struct Heads {
    queue: Mutex<VecDeque<Head>>,
}

impl Heads {
    /// How the head of the request with this method and target framed its body. `Plain`
    /// when the reader lost track of the connection (it never guesses): a request is only
    /// refused on a head it read whole.
    pub fn take(&self, method: &str, target: &str) -> Framing {
        let mut queue = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        match queue.pop_front() {
            Some(head) if head.method == method.as_bytes() && head.target == target.as_bytes() => {
                head.framing
            }
            _ => {
                queue.clear();
                Framing::Plain
            }
        }
    }

    fn push(&self, head: Head) {
        self.queue
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push_back(head);
    }
}

/// Where the reader is in the byte stream.
#[derive(Debug)]
enum State {
    /// Collecting a request head.
    Head(Vec<u8>),
    /// Inside a body of known length: bytes left.
    Body(u64),
    /// A chunk-size line: the size so far, whether a digit came, whether an extension began.
    ChunkSize {
        size: u64,
        digits: bool,
        extension: bool,
    },
    /// Chunk data: bytes left.
    ChunkData(u64),
    /// The line end after chunk data.
    ChunkEnd,
    /// Trailer lines after the last chunk: bytes of the current line.
    Trailers(usize),
    /// Lost track (a head hyper refuses, a framing it cannot follow): reads no further.
    Lost,
}

/// Finds the request heads in the bytes a connection receives. `max_head` bounds what it
/// keeps of one head (hyper refuses a longer one anyway).
#[derive(Debug)]
pub struct HeadReader {
    state: State,
    heads: Arc<Heads>,
    max_head: usize,
}

impl HeadReader {
    pub fn new(heads: Arc<Heads>, max_head: usize) -> Self {
        HeadReader {
            state: State::Head(Vec::new()),
            heads,
            max_head,
        }
    }

    /// The next bytes the client sent.
    pub fn feed(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            bytes = match &mut self.state {
                State::Lost => return,
                State::Body(left) => {
                    let n = usize::try_from(*left)
                        .unwrap_or(usize::MAX)
                        .min(bytes.len());
                    *left -= n as u64;
                    if *left == 0 {
                        self.state = State::Head(Vec::new());
                    }
                    &bytes[n..]
                }
                State::ChunkData(left) => {
                    let n = usize::try_from(*left)
                        .unwrap_or(usize::MAX)
                        .min(bytes.len());
                    *left -= n as u64;
                    if *left == 0 {
                        self.state = State::ChunkEnd;
                    }
                    &bytes[n..]
                }
                State::Head(head) => {
                    // Blank lines before a request line are allowed (RFC 9112 §2.2).
                    if head.is_empty() {
                        let skip = bytes.iter().take_while(|b| matches!(b, b'\r' | b'\n'));
                        let skip = skip.count();
                        if skip > 0 {
                            bytes = &bytes[skip..];
                            continue;
                        }
                    }
                    let before = head.len();
                    let room = self.max_head.saturating_sub(before);
                    let take = bytes.len().min(room.max(1));
                    head.extend_from_slice(&bytes[..take]);
                    // The end is searched from just before the new bytes.
                    let from = before.saturating_sub(3);
                    match find_head_end(&head[from..]) {
                        Some(end) => {
                            let end = from + end;
                            let rest_in_head = head.len() - end;
                            let complete = std::mem::take(head);
                            self.on_head(&complete[..end]);
                            &bytes[take - rest_in_head..]
                        }
                        None if head.len() >= self.max_head => {
                            self.state = State::Lost;
                            return;
                        }
                        None => &bytes[take..],
                    }
                }
                _ => {
                    let (&b, rest) = bytes.split_first().unwrap_or((&0, &[]));
                    self.chunk_byte(b);
                    rest
                }
            };
        }
    }

    fn chunk_byte(&mut self, b: u8) {
        self.state = match std::mem::replace(&mut self.state, State::Lost) {
            State::ChunkSize {
                size,
                digits,
                extension,
            } => match b {
                b'\n' if !digits => State::Lost,
                b'\n' if size == 0 => State::Trailers(0),
                b'\n' => State::ChunkData(size),
                b'\r' => State::ChunkSize {
                    size,
                    digits,
                    extension,
                },
                _ if extension => State::ChunkSize {
                    size,
                    digits,
                    extension,
                },
                b';' | b' ' | b'\t' => State::ChunkSize {
                    size,
                    digits,
                    extension: true,
                },
                _ => match (b as char)
                    .to_digit(16)
                    .and_then(|d| size.checked_mul(16)?.checked_add(u64::from(d)))
                {
                    Some(size) => State::ChunkSize {
                        size,
                        digits: true,
                        extension,
                    },
                    None => State::Lost,
                },
            },
            State::ChunkEnd => match b {
                b'\r' => State::ChunkEnd,
                b'\n' => new_chunk(),
                _ => State::Lost,
            },
            State::Trailers(line) => match b {
                b'\n' if line == 0 => State::Head(Vec::new()),
                b'\n' => State::Trailers(0),
                b'\r' => State::Trailers(line),
                _ => State::Trailers(line + 1),
            },
            other => other,
        };
    }

    /// A complete head (through its blank line): noted, and the reader set to skip its body.
    fn on_head(&mut self, head: &[u8]) {
        let mut lines = head
            .split(|&b| b == b'\n')
            .map(|line| line.strip_suffix(b"\r").unwrap_or(line));
        let request_line = lines.next().unwrap_or_default();
        let mut parts = request_line.split(|&b| b == b' ').filter(|p| !p.is_empty());
        let (Some(method), Some(target)) = (parts.next(), parts.next()) else {
            self.state = State::Lost;
            return;
        };
        let (mut lengths, mut length, mut encodings) = (0, None, Vec::new());
        for line in lines.filter(|l| !l.is_empty()) {
            let Some(colon) = line.iter().position(|&b| b == b':') else {
                self.state = State::Lost;
                return;
            };
            let (name, value) = (&line[..colon], line[colon + 1..].trim_ascii());
            if name.eq_ignore_ascii_case(b"content-length") {
                lengths += value.split(|&b| b == b',').count();
                length = same_length(value);
            } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
                encodings.push(value.to_ascii_lowercase());
            }
        }
        let framing = match (lengths, encodings.is_empty()) {
            (0, _) => Framing::Plain,
            (_, false) => Framing::LengthAndEncoding,
            (1, true) => Framing::Plain,
            _ => Framing::RepeatedLength,
        };
        self.heads.push(Head {
            method: method.to_vec(),
            target: target.to_vec(),
            framing,
        });
        // The body as hyper reads it: chunked when the last coding is, by length otherwise.
        let chunked = encodings
            .last()
            .and_then(|e| e.split(|&b| b == b',').next_back())
            .map(|coding| coding.trim_ascii() == b"chunked");
        self.state = match (chunked, length) {
            (Some(true), _) => new_chunk(),
            (Some(false), _) => State::Lost,
            (None, Some(0)) => State::Head(Vec::new()),
            (None, Some(n)) => State::Body(n),
            (None, None) if lengths > 0 => State::Lost,
            (None, None) => State::Head(Vec::new()),
        };
    }
}

/// The length a `Content-Length` value gives, a list of equal lengths included (hyper
/// reads one so); `None` for anything else.
fn same_length(value: &[u8]) -> Option<u64> {
    let mut lengths = value.split(|&b| b == b',').map(|v| {
        std::str::from_utf8(v.trim_ascii())
            .ok()?
            .parse::<u64>()
            .ok()
    });
    let first = lengths.next()??;
    lengths.all(|l| l == Some(first)).then_some(first)
}

fn new_chunk() -> State {
    State::ChunkSize {
        size: 0,
        digits: false,
        extension: false,
    }
}

/// Where a head ends (just past its blank line), if it is complete in `bytes`.
fn find_head_end(bytes: &[u8]) -> Option<usize> {
    let crlf = bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| i + 4);
    let lf = bytes.windows(2).position(|w| w == b"\n\n").map(|i| i + 2);
    match (crlf, lf) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// A client connection whose incoming bytes also pass a [`HeadReader`].
pub struct Inspected<S> {
    inner: S,
    reader: HeadReader,
}

impl<S> Inspected<S> {
    pub fn new(inner: S, reader: HeadReader) -> Self {
        Inspected { inner, reader }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Inspected<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = polled {
            let this = &mut *self;
            this.reader.feed(&buf.filled()[before..]);
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Inspected<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `stream` in pieces of `chunk` bytes; the heads found, in order.
    fn heads(stream: &[u8], chunk: usize) -> Vec<Head> {
        let heads = Arc::new(Heads::default());
        let mut reader = HeadReader::new(Arc::clone(&heads), 61_440);
        for piece in stream.chunks(chunk) {
            reader.feed(piece);
        }
        let found = heads.queue.lock().unwrap().drain(..).collect();
        found
    }

    fn head(method: &str, target: &str, framing: Framing) -> Head {
        Head {
            method: method.into(),
            target: target.into(),
            framing,
        }
    }

    /// Keep-alive requests with bodies of every framing, each head found whatever the
    /// chunking of the stream: the bodies (which look like heads) are skipped.
    #[test]
    fn every_head_of_a_connection_is_found_past_every_body() {
        let stream = concat!(
            "\r\nPOST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 22\r\n\r\n",
            "GET /fake HTTP/1.1\r\n\r\n",
            "POST /b?q=1 HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
            "5;ext=1\r\nGET /\r\n1a\r\nGET /fake2 HTTP/1.1\r\n\r\nxx\r\n0\r\nX-Trailer: 1\r\n\r\n",
            "GET /c HTTP/1.1\nHost: x\n\n",
            "PUT /d HTTP/1.1\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\n{}",
            "PUT /e HTTP/1.1\r\nContent-Length: 2, 2\r\n\r\n{}",
            "PUT /f HTTP/1.1\r\ncontent-length: 7\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n",
            "GET /g HTTP/1.1\r\n\r\n",
        )
        .as_bytes();
        let want = vec![
            head("POST", "/a", Framing::Plain),
            head("POST", "/b?q=1", Framing::Plain),
            head("GET", "/c", Framing::Plain),
            head("PUT", "/d", Framing::RepeatedLength),
            head("PUT", "/e", Framing::RepeatedLength),
            head("PUT", "/f", Framing::LengthAndEncoding),
            head("GET", "/g", Framing::Plain),
        ];
        for chunk in [1, 2, 3, 7, 64, stream.len()] {
            assert_eq!(heads(stream, chunk), want, "chunks of {chunk}");
        }
    }

    /// What hyper refuses or cannot be followed stops the reading: nothing after it counts.
    #[test]
    fn a_stream_it_cannot_follow_is_read_no_further() {
        let bad_chunk =
            b"POST /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nGET /b HTTP/1.1\r\n\r\n";
        assert_eq!(
            heads(bad_chunk, 5),
            vec![head("POST", "/a", Framing::Plain)]
        );
        let gzip = b"POST /a HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\nGET /b HTTP/1.1\r\n\r\n";
        assert_eq!(heads(gzip, 5).len(), 1);
        let huge = [
            &b"GET /"[..],
            &vec![b'a'; 70_000],
            b" HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\n\r\n",
        ]
        .concat();
        assert_eq!(heads(&huge, 4096), vec![]);
    }

    #[test]
    fn a_head_is_only_taken_by_the_request_it_belongs_to() {
        let queue = Heads::default();
        queue.push(head("PUT", "/d", Framing::RepeatedLength));
        queue.push(head("GET", "/x", Framing::LengthAndEncoding));
        assert_eq!(queue.take("PUT", "/d"), Framing::RepeatedLength);
        // Out of step: nothing is trusted, nothing refused.
        assert_eq!(queue.take("GET", "/other"), Framing::Plain);
        assert_eq!(queue.take("GET", "/x"), Framing::Plain);
    }
}
