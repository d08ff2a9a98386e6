//! Response bodies: static JSON, generated "lorem" output streamed in frames, optional pacing,
//! server-sent events with optional waits between them.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::OnceLock;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use hyper::body::{Body, Frame, SizeHint};

/// Largest frame produced for generated output, so huge bodies are never held in memory.
pub const FRAME_BYTES: usize = 64 * 1024;
/// Upper bound for `?chunk=N`; bigger frames would only defeat the purpose of the knob.
pub const MAX_CHUNK_BYTES: usize = 1024 * 1024;

/// The decoded text that generated output repeats. The quotes make the JSON
/// encoding contain `\"` escapes, which a body scanner must not mistake for
/// the end of the string.
pub const LOREM: &str = "lorem ipsum \"dolor\" sit amet, ";
const LOREM_JSON: &str = "lorem ipsum \\\"dolor\\\" sit amet, ";

// One shared buffer of the encoded pattern, long enough that any frame is a
// zero-copy slice of it whatever its phase in the cycle.
fn lorem_cycle() -> &'static Bytes {
    static CYCLE: OnceLock<Bytes> = OnceLock::new();
    CYCLE.get_or_init(|| {
        let reps = FRAME_BYTES / LOREM_JSON.len() + 2;
        Bytes::from(LOREM_JSON.repeat(reps))
    })
}

/// Number of bytes the JSON-escaped form of `lorem_text(decoded)` takes.
pub fn lorem_json_len(decoded: u64) -> u64 {
    let pattern = LOREM.len() as u64;
    let full = decoded / pattern;
    // The remainder is below the pattern length, so it fits in usize.
    let rest = &LOREM.as_bytes()[..(decoded % pattern) as usize];
    let quotes = rest.iter().filter(|&&b| b == b'"').count() as u64;
    full * LOREM_JSON.len() as u64 + rest.len() as u64 + quotes
}

/// The decoded generated output of `len` bytes (for assertions in tests).
pub fn lorem_text(len: usize) -> String {
    LOREM.chars().cycle().take(len).collect()
}

#[derive(Debug)]
enum Part {
    Bytes(Bytes),
    /// Encoded lorem output; `offset` is the position in the encoded cycle.
    Lorem {
        offset: u64,
        len: u64,
    },
    /// A wait before what follows; no frame spans it.
    Pause(Duration),
}

/// The body type of every response of the sample.
#[derive(Debug)]
pub struct SampleBody {
    parts: VecDeque<Part>,
    remaining: u64,
    frame: usize,
    pace: bool,
    paused: bool,
    exact: bool,
    /// The wait of the `Pause` part in front, once started.
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl SampleBody {
    pub fn empty() -> Self {
        Self::from_parts(VecDeque::new())
    }

    pub fn full(bytes: impl Into<Bytes>) -> Self {
        Self::from_parts(VecDeque::from([Part::Bytes(bytes.into())]))
    }

    /// `prefix`, then `output_bytes` decoded bytes of lorem text JSON-escaped, then `suffix`.
    pub fn with_lorem(
        prefix: impl Into<Bytes>,
        output_bytes: u64,
        suffix: impl Into<Bytes>,
    ) -> Self {
        Self::from_parts(VecDeque::from([
            Part::Bytes(prefix.into()),
            Part::Lorem {
                offset: 0,
                len: lorem_json_len(output_bytes),
            },
            Part::Bytes(suffix.into()),
        ]))
    }

    /// Server-sent events, `pause` between one event and the next (none when zero). The
    /// length stays unknown, as a stream's would.
    pub fn events(events: impl IntoIterator<Item = Bytes>, pause: Duration) -> Self {
        let mut parts = VecDeque::new();
        for event in events {
            if !parts.is_empty() && !pause.is_zero() {
                parts.push_back(Part::Pause(pause));
            }
            parts.push_back(Part::Bytes(event));
        }
        Self::from_parts(parts).without_length()
    }

    fn from_parts(parts: VecDeque<Part>) -> Self {
        let remaining = parts
            .iter()
            .map(|p| match p {
                Part::Bytes(b) => b.len() as u64,
                Part::Lorem { len, .. } => *len,
                Part::Pause(_) => 0,
            })
            .sum();
        Self {
            parts,
            remaining,
            frame: FRAME_BYTES,
            pace: false,
            paused: false,
            exact: true,
            sleep: None,
        }
    }

    /// Sends frames of exactly `n` bytes (the last may be shorter), yielding to
    /// the connection after each so hyper flushes it as its own write instead
    /// of coalescing ready frames into one buffer.
    pub fn in_chunks_of(mut self, n: usize) -> Self {
        self.frame = n.clamp(1, MAX_CHUNK_BYTES);
        self.pace = true;
        self
    }

    /// Hides the length so hyper uses `Transfer-Encoding: chunked`.
    pub fn without_length(mut self) -> Self {
        self.exact = false;
        self
    }

    /// Bytes not yet handed out.
    pub fn remaining(&self) -> u64 {
        self.remaining
    }

    fn take_front(&mut self, max: usize) -> Option<Bytes> {
        loop {
            let part = self.parts.front_mut()?;
            match part {
                Part::Bytes(b) if !b.is_empty() => {
                    let n = max.min(b.len());
                    return Some(b.split_to(n));
                }
                Part::Lorem { offset, len } if *len > 0 => {
                    let cycle = lorem_cycle();
                    let n = (max.min(FRAME_BYTES) as u64).min(*len) as usize;
                    let start = (*offset % LOREM_JSON.len() as u64) as usize;
                    *offset += n as u64;
                    *len -= n as u64;
                    return Some(cycle.slice(start..start + n));
                }
                Part::Pause(_) => return None,
                _ => {
                    self.parts.pop_front();
                }
            }
        }
    }

    fn next_frame(&mut self) -> Option<Bytes> {
        let cap = self.frame;
        let first = self.take_front(cap)?;
        if first.len() == cap {
            return Some(first);
        }
        // Fill the frame across part boundaries so `?chunk=N` really means N.
        let mut buf = BytesMut::with_capacity(cap);
        buf.extend_from_slice(&first);
        while buf.len() < cap {
            match self.take_front(cap - buf.len()) {
                Some(more) => buf.extend_from_slice(&more),
                None => break,
            }
        }
        Some(buf.freeze())
    }
}

impl Body for SampleBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = self.get_mut();
        if this.remaining == 0 {
            return Poll::Ready(None);
        }
        if this.paused {
            // Returning Pending makes hyper flush what it has buffered; the
            // immediate wake keeps this a yield rather than a timed delay.
            this.paused = false;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        // Spent parts first, so a pause in front is seen; then wait it out.
        while let Some(part) = this.parts.front() {
            match part {
                Part::Bytes(b) if b.is_empty() => {}
                Part::Lorem { len: 0, .. } => {}
                Part::Pause(delay) => {
                    let delay = *delay;
                    let sleep = this
                        .sleep
                        .get_or_insert_with(|| Box::pin(tokio::time::sleep(delay)));
                    if sleep.as_mut().poll(cx).is_pending() {
                        return Poll::Pending;
                    }
                    this.sleep = None;
                }
                _ => break,
            }
            this.parts.pop_front();
        }
        match this.next_frame() {
            Some(frame) => {
                this.remaining = this.remaining.saturating_sub(frame.len() as u64);
                this.paused = this.pace;
                Poll::Ready(Some(Ok(Frame::data(frame))))
            }
            None => {
                this.remaining = 0;
                Poll::Ready(None)
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == 0
    }

    fn size_hint(&self) -> SizeHint {
        if self.exact {
            SizeHint::with_exact(self.remaining)
        } else {
            SizeHint::new()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(mut body: SampleBody) -> (Vec<u8>, Vec<usize>) {
        let mut out = Vec::new();
        let mut sizes = Vec::new();
        while let Some(frame) = body.next_frame() {
            sizes.push(frame.len());
            out.extend_from_slice(&frame);
        }
        (out, sizes)
    }

    #[test]
    fn lorem_encodes_to_the_announced_length() {
        for n in [0u64, 1, 12, 13, 14, 19, 30, 31, 100_000] {
            let body = SampleBody::with_lorem("{\"output\":\"", n, "\"}");
            let announced = body.remaining();
            let (bytes, _) = drain(body);
            assert_eq!(bytes.len() as u64, announced);
            let value: serde_json::Value = serde_json::from_slice(&bytes).expect("valid json");
            assert_eq!(
                value["output"].as_str(),
                Some(lorem_text(n as usize).as_str())
            );
        }
    }

    #[tokio::test]
    async fn events_leave_one_by_one_after_their_pause() {
        use http_body_util::BodyExt;
        let events = [&b"data: 1\n\n"[..], b"data: 2\n\n", b"data: 3\n\n"].map(Bytes::from_static);
        let mut body = SampleBody::events(events.clone(), Duration::from_millis(100));
        assert_eq!(body.size_hint().exact(), None);
        let start = std::time::Instant::now();
        let mut seen = Vec::new();
        while let Some(frame) = body.frame().await {
            let data = frame.unwrap().into_data().unwrap();
            seen.push((data, start.elapsed().as_millis()));
        }
        // Each event in its own frame, the first at once, each next one 100 ms later.
        let frames: Vec<_> = seen.iter().map(|(data, _)| data.clone()).collect();
        assert_eq!(frames, events);
        let at: Vec<_> = seen.iter().map(|(_, ms)| *ms).collect();
        assert!(
            at[0] < 100 && at[1] >= 100 && at[2] >= at[1] + 100,
            "{at:?}"
        );
        // Without pauses, `?chunk=N` cuts across events.
        let body = SampleBody::events(events.clone(), Duration::ZERO).in_chunks_of(4);
        let (bytes, sizes) = drain(body);
        assert_eq!(bytes, b"data: 1\n\ndata: 2\n\ndata: 3\n\n");
        assert_eq!(sizes, vec![4, 4, 4, 4, 4, 4, 3]);
    }

    #[test]
    fn chunks_have_the_requested_size() {
        let (bytes, sizes) = drain(SampleBody::with_lorem("ab", 10, "cd").in_chunks_of(3));
        assert!(sizes[..sizes.len() - 1].iter().all(|&s| s == 3));
        assert_eq!(bytes.len(), sizes.iter().sum::<usize>());
    }
}
