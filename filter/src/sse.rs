//! Streaming reader of `text/event-stream` bodies (server-sent events): a few top-level JSON
//! fields of each event's data, folded over the whole stream.
//!
//! A streamed run answers OpenAI-style `data: {...}` events and ends with `data: [DONE]`; the
//! fields a JSON run carries once (`provider`, `system_fingerprint`) are inside the events.
//! Like [`JsonFieldScanner`], this is a byte-level state machine of fixed size, so a chunk
//! boundary can fall anywhere. Lines are read as the SSE specification says: they end with
//! CR, LF or CRLF; a line starting with `:` is a comment; a field name runs to the first `:`,
//! and one space after it is dropped; the `data` lines of one event are joined with LF; a
//! blank line ends the event; an event still open when the stream ends is never dispatched;
//! a leading BOM is skipped. An event's data goes into a JSON scanner as it arrives, so no
//! line and no event is ever held: memory stays the same whatever the stream.

use memchr::memchr2;

use crate::scanner::{FieldSet, FieldValue, JsonFieldScanner, MAX_FIELDS};

const DATA: &[u8] = b"data";
const DONE: &[u8] = b"[DONE]";
const BOM: &[u8] = "\u{FEFF}".as_bytes();
static ABSENT: FieldValue = FieldValue::Absent;

/// True when a `content-type` names an event stream (`text/event-stream`, any case, with or
/// without parameters).
pub fn is_event_stream(content_type: Option<&str>) -> bool {
    content_type
        .and_then(|value| value.split(';').next())
        .is_some_and(|media| media.trim().eq_ignore_ascii_case("text/event-stream"))
}

/// Where the reader is within a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Line {
    /// Start of the stream: how many bytes of a BOM have been seen.
    Bom(u8),
    /// First byte of a line.
    Start,
    /// Inside a field name, which so far is the first `n` bytes of `data`.
    Name(u8),
    /// Just after `data:`, where one space may follow.
    DataStart,
    /// Inside a `data` value.
    Data,
    /// The rest of a line nobody reads: a comment, another field, a name that is not `data`.
    Skip,
}

/// Per-body state. Feeding it never allocates on the heap.
#[derive(Debug, Clone)]
pub struct SseFieldScanner {
    line: Line,
    /// The last byte was a CR: a LF right after it ends the same line.
    after_cr: bool,
    /// The current event has had a `data` line.
    has_data: bool,
    /// How many bytes of the current event's data spell the start of `[DONE]` (`None`: not it).
    done_prefix: Option<u8>,
    /// The current event's data, as JSON.
    event: JsonFieldScanner,
    /// Per field, the first non-empty value (string or number) an event carried.
    first: [FieldValue; MAX_FIELDS],
    events: u32,
    done: bool,
}

impl Default for SseFieldScanner {
    fn default() -> Self {
        Self::new()
    }
}

impl SseFieldScanner {
    pub fn new() -> Self {
        Self {
            line: Line::Bom(0),
            after_cr: false,
            has_data: false,
            done_prefix: Some(0),
            event: JsonFieldScanner::new(),
            first: [const { FieldValue::Absent }; MAX_FIELDS],
            events: 0,
            done: false,
        }
    }

    /// Feed the next chunk. `fields` must be the same FieldSet for every call on one body.
    pub fn feed(&mut self, fields: &FieldSet, chunk: &[u8]) {
        let mut i = 0;
        while let Some(rest) = chunk.get(i..).filter(|r| !r.is_empty()) {
            if std::mem::take(&mut self.after_cr) && rest.first() == Some(&b'\n') {
                i += 1;
                continue;
            }
            if matches!(self.line, Line::Data | Line::Skip) {
                let end = memchr2(b'\r', b'\n', rest).unwrap_or(rest.len());
                if self.line == Line::Data {
                    self.data(fields, rest.get(..end).unwrap_or_default());
                }
                i += end;
                if let Some(&b) = rest.get(end) {
                    self.end_line(fields, b);
                    i += 1;
                }
            } else {
                self.step(fields, rest.first().copied().unwrap_or_default());
                i += 1;
            }
        }
    }

    /// Per field, the first non-empty string (or over-long one) or number any dispatched
    /// event carried in its data; `Absent` when none did.
    pub fn field(&self, index: usize) -> &FieldValue {
        self.first.get(index).unwrap_or(&ABSENT)
    }

    /// Events dispatched so far (`[DONE]` and events whose data is not JSON included).
    pub fn events(&self) -> u32 {
        self.events
    }

    /// True once an event whose data is exactly `[DONE]` was dispatched.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// One byte outside `data` values and skipped lines.
    fn step(&mut self, fields: &FieldSet, b: u8) {
        if matches!(b, b'\r' | b'\n') {
            return self.end_line(fields, b);
        }
        self.line = match self.line {
            Line::Bom(n) if BOM.get(usize::from(n)) == Some(&b) => {
                if usize::from(n) + 1 == BOM.len() {
                    Line::Start
                } else {
                    Line::Bom(n + 1)
                }
            }
            // Part of a BOM and then something else: a line no field can come from.
            Line::Bom(1..) => Line::Skip,
            Line::Bom(0) | Line::Start if b == b':' => Line::Skip,
            Line::Bom(0) | Line::Start | Line::Name(_) => {
                let matched = match self.line {
                    Line::Name(n) => n,
                    _ => 0,
                };
                match (b, DATA.get(usize::from(matched))) {
                    (b':', None) => {
                        self.begin_data(fields);
                        Line::DataStart
                    }
                    (_, Some(&expected)) if b == expected => Line::Name(matched + 1),
                    _ => Line::Skip,
                }
            }
            Line::DataStart | Line::Data => {
                if b != b' ' || self.line == Line::Data {
                    self.data(fields, &[b]);
                }
                Line::Data
            }
            Line::Skip => Line::Skip,
        };
    }

    fn end_line(&mut self, fields: &FieldSet, b: u8) {
        match self.line {
            Line::Bom(0) | Line::Start => self.dispatch(fields),
            // `data` alone on its line is a data line with an empty value.
            Line::Name(n) if usize::from(n) == DATA.len() => self.begin_data(fields),
            _ => {}
        }
        self.line = Line::Start;
        self.after_cr = b == b'\r';
    }

    /// A `data` line starts: it is joined to the event's earlier ones with a LF.
    fn begin_data(&mut self, fields: &FieldSet) {
        if self.has_data {
            self.data(fields, b"\n");
        }
        self.has_data = true;
    }

    fn data(&mut self, fields: &FieldSet, bytes: &[u8]) {
        self.event.feed(fields, bytes);
        self.done_prefix = self.done_prefix.and_then(|n| {
            let start = usize::from(n);
            let end = start + bytes.len();
            (DONE.get(start..end) == Some(bytes))
                .then(|| u8::try_from(end).ok())
                .flatten()
        });
    }

    /// A blank line: the event ends, and its fields are folded into the stream's.
    fn dispatch(&mut self, fields: &FieldSet) {
        if !std::mem::take(&mut self.has_data) {
            return;
        }
        self.events = self.events.saturating_add(1);
        self.done |= self.done_prefix == Some(DONE.len() as u8);
        for (i, slot) in self.first.iter_mut().enumerate().take(fields.len()) {
            let value = self.event.field(i);
            let non_empty = match value {
                FieldValue::Str(s) => !s.as_str().is_empty(),
                FieldValue::TooLong | FieldValue::Number(_) => true,
                _ => false,
            };
            if *slot == FieldValue::Absent && non_empty {
                *slot = value.clone();
            }
        }
        self.event.reset();
        self.done_prefix = Some(0);
    }
}

#[cfg(test)]
#[path = "sse_tests.rs"]
mod tests;
