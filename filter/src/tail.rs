//! A JSON response body read in full only where its fields can be.
//!
//! A run's response carries the generated text (`output`, megabytes at times) beside the few
//! short fields the metrics need, which usually follow it. Scanning every byte of that text
//! inside the Wasm VM costs more than everything else the proxy does with the body, so once
//! the scanner is deep inside a top-level string value that no field wants, the body stops
//! being read: of each later chunk only its last [`TAIL`] bytes are copied out, into a window
//! holding the body's last [`TAIL`] bytes. When the body has ended, the fields that follow the
//! skipped value are read from that window.
//!
//! The window starts right where the scanner stopped when the whole rest of the body fits in
//! it, and is then simply fed to the scanner: the result is exact. Otherwise the skipped value
//! ends at the window's first unescaped quote, as a string cannot hold one, and what follows
//! it is read as the rest of the top-level object; a document that does not end that way
//! (fields more than [`TAIL`] bytes after the long value) leaves those fields unread.

use std::borrow::Cow;
use std::ops::Range;

use memchr::memchr;

use crate::scanner::{FieldSet, FieldValue, JsonFieldScanner};

/// Bytes of one unwanted top-level string value read before the rest of it is skipped (at
/// most twice this, as the scanner is fed in steps of it). Kept small: every byte before the
/// skip goes through the scanner, and a generated text escapes a character every few dozen
/// bytes, the scanner's slowest case; what follows a longer value is still read exactly when
/// it fits the [`TAIL`] window, as the Prompter API's short fields do.
pub const SKIP_AFTER: usize = 4 * 1024;
/// Bytes kept from the end of the body while skipping.
pub const TAIL: usize = 4 * 1024;
/// Most bytes of a chunk copied at once while reading in full (into the VM, or out of Envoy's
/// buffer slices a read straddles): a large chunk is read in steps, so that once a long value
/// is found the rest of the chunk is not copied. Twice the scanner's step: with 64 KiB, a 2 MB
/// response copied 60 KiB it never scanned, 30 % of what the native module added to Envoy's
/// work for it; a step is a host call in the Wasm build (~1,500 instructions), against ~10
/// instructions per byte scanned, so smaller steps cost a body read in full little.
pub const READ_STEP: usize = 2 * SKIP_AFTER;

/// Stands in for the document up to the skipped value's closing quote, so that what follows
/// it parses as the rest of a top-level object (no field is named "").
const RESUME_PREFIX: &[u8] = b"{\"\":\"\"";

#[derive(Debug, Clone)]
pub struct JsonBody {
    scanner: JsonFieldScanner,
    tail: Option<Box<Tail>>,
}

#[derive(Debug, Clone)]
struct Tail {
    bytes: [u8; TAIL],
    len: usize,
    /// Nothing was dropped between where the scanner stopped and the window.
    contiguous: bool,
}

impl Default for JsonBody {
    fn default() -> Self {
        Self::new()
    }
}

impl JsonBody {
    pub fn new() -> Self {
        JsonBody {
            scanner: JsonFieldScanner::new(),
            tail: None,
        }
    }

    /// Forget everything, ready for another body.
    pub fn reset(&mut self) {
        self.scanner.reset();
        self.tail = None;
    }

    /// The bytes of a `len`-byte chunk to read next when its first `done` bytes are dealt
    /// with: the next step while reading in full, the chunk's last [`TAIL`] bytes while
    /// skipping; `None` once nothing more is wanted. Feed them with `len - done` as the span.
    pub fn next_read(&self, done: usize, len: usize) -> Option<Range<usize>> {
        if done >= len {
            None
        } else if self.tail.is_some() {
            Some(len - (len - done).min(TAIL)..len)
        } else {
            Some(done..len.min(done + READ_STEP))
        }
    }

    /// The last `part.len()` bytes of the next `len` bytes of the body: all of them, or at
    /// least what [`next_read`](Self::next_read) asked for.
    pub fn feed(&mut self, fields: &FieldSet, part: &[u8], len: usize) {
        if let Some(tail) = &mut self.tail {
            return tail.push(part, len);
        }
        // In steps, so that a long value is left early even inside one large chunk.
        let mut from = 0;
        while from < part.len() {
            let to = part.len().min(from + SKIP_AFTER);
            self.scanner
                .feed(fields, part.get(from..to).unwrap_or_default());
            from = to;
            if self.scanner.is_skipping_value(SKIP_AFTER) {
                let rest = part.get(from..).unwrap_or_default();
                let mut tail = Box::new(Tail::new());
                tail.push(rest, rest.len());
                self.tail = Some(tail);
                return;
            }
        }
    }

    /// The fields once the body has ended: what was scanned, and what followed a skipped value.
    pub fn settled(&self, fields: &FieldSet) -> Cow<'_, JsonFieldScanner> {
        let Some(tail) = &self.tail else {
            return Cow::Borrowed(&self.scanner);
        };
        let window = tail.bytes.get(..tail.len).unwrap_or_default();
        let mut settled = self.scanner.clone();
        if tail.contiguous {
            settled.feed(fields, window);
        } else if let Some(later) = read_after_skipped_string(fields, window) {
            settled.adopt_later_fields(&later);
        }
        Cow::Owned(settled)
    }

    pub fn field(&self, index: usize) -> &FieldValue {
        self.scanner.field(index)
    }
}

impl Tail {
    fn new() -> Self {
        Tail {
            bytes: [0; TAIL],
            len: 0,
            contiguous: true,
        }
    }

    fn push(&mut self, part: &[u8], len: usize) {
        let part = part
            .get(part.len().saturating_sub(TAIL)..)
            .unwrap_or_default();
        if len > part.len() {
            self.contiguous = false;
        }
        let keep = self.len.min(TAIL - part.len());
        if keep < self.len {
            self.contiguous = false;
            self.bytes.copy_within(self.len - keep..self.len, 0);
        }
        if let Some(dst) = self.bytes.get_mut(keep..keep + part.len()) {
            dst.copy_from_slice(part);
        }
        self.len = keep + part.len();
    }
}

/// The fields after the end of the string `window` starts inside: its closing quote is the
/// first `"` of `window` not escaped by a backslash, and what follows must be the rest of the
/// top-level object. A quote that only backslashes precede may or may not be escaped (what
/// came before the window decides, and it is gone): it is tried, and passed over when what
/// follows does not read as the end of the object.
fn read_after_skipped_string(fields: &FieldSet, window: &[u8]) -> Option<JsonFieldScanner> {
    let mut from = 0;
    loop {
        let quote = from + memchr(b'"', window.get(from..)?)?;
        let before = window.get(..quote)?;
        let backslashes = before.iter().rev().take_while(|&&b| b == b'\\').count();
        let known = backslashes < before.len();
        from = quote + 1;
        if known && backslashes % 2 == 1 {
            continue;
        }
        let mut later = JsonFieldScanner::new();
        later.feed(fields, RESUME_PREFIX);
        later.feed(fields, window.get(from..)?);
        if later.is_complete() {
            return Some(later);
        }
        if known {
            return None;
        }
    }
}

#[cfg(test)]
#[path = "tail_tests.rs"]
mod tests;
