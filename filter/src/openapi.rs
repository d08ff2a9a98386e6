//! Route templates learned from the API's OpenAPI document: the keys of its top-level `paths`
//! object, read as the document streams in, within bounds on its size and number of paths.
//!
//! [`PathsReader`] is a validating JSON push parser that keeps nothing but those keys: a
//! chunk boundary can fall anywhere, nested objects (`components`, the operations under each
//! path) are checked and skipped, and a document that is not JSON, not an object, has no
//! `paths` object, or is beyond the bounds is refused as a whole. [`learn`] turns the keys
//! into a [`RouteTable`] beside the configured one: a key whose route is configured is left
//! to the configuration, and a key that cannot be a route label is skipped and reported
//! (one odd path does not cost the others their labels).

use std::fmt;

use memchr::memchr2;

use crate::routes::RouteTable;

pub const DEFAULT_MAX_BYTES: usize = 4 * 1024 * 1024;
pub const DEFAULT_MAX_PATHS: usize = 1000;
/// Longest `paths` key kept; a longer one is skipped (the `route` label is at most this long).
pub const MAX_KEY_LEN: usize = 256;
/// Deepest nesting accepted (FastAPI documents stay under 20).
pub const MAX_DEPTH: usize = 128;
/// Skipped keys named in a log line; the rest are counted.
const SKIPPED_SHOWN: usize = 5;
/// Learned templates named in a log line; the rest are counted.
const LEARNED_SHOWN: usize = 30;

/// Bounds on one document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_bytes: usize,
    pub max_paths: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_bytes: DEFAULT_MAX_BYTES,
            max_paths: DEFAULT_MAX_PATHS,
        }
    }
}

/// Why a document was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DocumentError {
    TooLarge {
        limit: usize,
    },
    TooManyPaths {
        limit: usize,
    },
    TooDeep,
    /// Not JSON: what was wrong, and the offset of the byte where it showed.
    Malformed {
        offset: usize,
        reason: &'static str,
    },
    /// The document ended inside a value.
    Truncated,
    NotAnObject,
    NoPaths,
    PathsNotAnObject,
    PathsTwice,
}

impl fmt::Display for DocumentError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooLarge { limit } => {
                write!(f, "it is larger than {limit} bytes (`openapi.max_bytes`)")
            }
            Self::TooManyPaths { limit } => {
                write!(f, "it has more than {limit} paths (`openapi.max_paths`)")
            }
            Self::TooDeep => write!(f, "it nests deeper than {MAX_DEPTH} levels"),
            Self::Malformed { offset, reason } => {
                write!(f, "it is not JSON: {reason} at byte {offset}")
            }
            Self::Truncated => write!(f, "it is not JSON: it ends early"),
            Self::NotAnObject => write!(f, "it is not a JSON object"),
            Self::NoPaths => write!(f, "it has no top-level `paths` object"),
            Self::PathsNotAnObject => write!(f, "its `paths` is not an object"),
            Self::PathsTwice => write!(f, "it has `paths` twice"),
        }
    }
}

impl std::error::Error for DocumentError {}

/// The keys of a document's `paths` object, in document order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DocumentPaths {
    pub keys: Vec<String>,
    /// Keys not kept (too long, not UTF-8), each with the reason.
    pub unusable: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// Before the document's `{`.
    Start,
    /// After `:` or `,` in an array.
    Value,
    /// After `[`.
    ValueOrClose,
    /// After `{`.
    KeyOrClose,
    /// After `,` in an object.
    Key,
    Colon,
    CommaOrClose,
    /// After the document's `}`: only whitespace.
    End,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Number {
    Minus,
    Zero,
    Int,
    Dot,
    Frac,
    Exp,
    ExpSign,
    ExpDigits,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Escape {
    None,
    Backslash,
    /// `\u`: hex digits read so far and the code unit they spell.
    Hex(u8, u16),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Structural(Expect),
    /// Inside a string; `key` when it is an object key.
    Str {
        key: bool,
    },
    Number(Number),
    /// `true`/`false`/`null` and how many of its bytes matched.
    Literal(&'static [u8], u8),
}

/// Reads a document chunk by chunk; [`finish`](Self::finish) gives its `paths` keys.
#[derive(Debug, Clone)]
pub struct PathsReader {
    limits: Limits,
    state: State,
    escape: Escape,
    /// High surrogate of a `\uD8xx\uDCxx` pair, waiting for its low half.
    high: Option<u16>,
    /// Open containers, `true` for objects.
    stack: Vec<bool>,
    /// Depth of the `paths` object while inside it.
    paths_depth: Option<usize>,
    paths_seen: bool,
    /// The value about to start is the top-level `paths`.
    paths_next: bool,
    /// The string being read is a key that matters: decoded into `key`.
    capture: bool,
    key: Vec<u8>,
    key_overflow: bool,
    offset: usize,
    paths: DocumentPaths,
    error: Option<DocumentError>,
}

impl PathsReader {
    pub fn new(limits: Limits) -> Self {
        PathsReader {
            limits,
            state: State::Structural(Expect::Start),
            escape: Escape::None,
            high: None,
            stack: Vec::new(),
            paths_depth: None,
            paths_seen: false,
            paths_next: false,
            capture: false,
            key: Vec::new(),
            key_overflow: false,
            offset: 0,
            paths: DocumentPaths::default(),
            error: None,
        }
    }

    /// Reads the next chunk. Once the document is refused, every later call says why.
    pub fn feed(&mut self, chunk: &[u8]) -> Result<(), DocumentError> {
        if let Some(error) = &self.error {
            return Err(error.clone());
        }
        let fits = self
            .offset
            .checked_add(chunk.len())
            .is_some_and(|end| end <= self.limits.max_bytes);
        let result = if fits {
            self.read(chunk)
        } else {
            Err(DocumentError::TooLarge {
                limit: self.limits.max_bytes,
            })
        };
        if let Err(error) = &result {
            self.error = Some(error.clone());
        }
        result
    }

    /// The `paths` keys of a complete document.
    pub fn finish(self) -> Result<DocumentPaths, DocumentError> {
        if let Some(error) = self.error {
            return Err(error);
        }
        match self.state {
            State::Structural(Expect::End) if self.paths_seen => Ok(self.paths),
            State::Structural(Expect::End) => Err(DocumentError::NoPaths),
            State::Structural(Expect::Start) => Err(DocumentError::NotAnObject),
            _ => Err(DocumentError::Truncated),
        }
    }

    fn read(&mut self, chunk: &[u8]) -> Result<(), DocumentError> {
        let mut i = 0;
        while let Some(&b) = chunk.get(i) {
            if let State::Str { key } = self.state {
                i = self.string(key, chunk, i)?;
                continue;
            }
            if self.step(b)? {
                i += 1;
            }
        }
        Ok(())
    }

    fn malformed(&self, at: usize, reason: &'static str) -> DocumentError {
        DocumentError::Malformed {
            offset: self.offset + at,
            reason,
        }
    }

    /// One byte outside strings; false when the byte ended a number and must be read again.
    fn step(&mut self, b: u8) -> Result<bool, DocumentError> {
        let whitespace = matches!(b, b' ' | b'\t' | b'\n' | b'\r');
        let consumed = match self.state {
            State::Number(number) => return self.number(number, b),
            State::Literal(word, matched) => {
                if word.get(usize::from(matched)) != Some(&b) {
                    return Err(self.malformed(0, "a misspelt `true`, `false` or `null`"));
                }
                self.state = if usize::from(matched) + 1 == word.len() {
                    self.after_value()
                } else {
                    State::Literal(word, matched + 1)
                };
                true
            }
            // Never reached: `read` hands strings to `string`.
            State::Str { .. } => true,
            State::Structural(_) if whitespace => true,
            State::Structural(expect) => {
                self.structural(expect, b)?;
                true
            }
        };
        self.offset += 1;
        Ok(consumed)
    }

    fn structural(&mut self, expect: Expect, b: u8) -> Result<(), DocumentError> {
        let in_object = self.stack.last() == Some(&true);
        self.state = match (expect, b) {
            (Expect::Start, b'{') => self.open(true)?,
            (Expect::Start, _) => return Err(DocumentError::NotAnObject),
            (Expect::KeyOrClose, b'}') | (Expect::CommaOrClose, b'}') if in_object => self.close(),
            (Expect::ValueOrClose, b']') | (Expect::CommaOrClose, b']') if !in_object => {
                self.close()
            }
            (Expect::KeyOrClose | Expect::Key, b'"') => {
                let depth = self.stack.len();
                self.begin_string(depth == 1 || self.paths_depth == Some(depth));
                State::Str { key: true }
            }
            (Expect::Colon, b':') => State::Structural(Expect::Value),
            (Expect::CommaOrClose, b',') if in_object => State::Structural(Expect::Key),
            (Expect::CommaOrClose, b',') => State::Structural(Expect::Value),
            (Expect::Value | Expect::ValueOrClose, _) => self.value(b)?,
            (Expect::End, _) => return Err(self.malformed(0, "data after the document")),
            _ => return Err(self.malformed(0, "an unexpected character")),
        };
        Ok(())
    }

    /// The first byte of a value.
    fn value(&mut self, b: u8) -> Result<State, DocumentError> {
        if std::mem::take(&mut self.paths_next) {
            if b != b'{' {
                return Err(DocumentError::PathsNotAnObject);
            }
            self.paths_seen = true;
            self.paths_depth = Some(self.stack.len() + 1);
        }
        Ok(match b {
            b'{' => self.open(true)?,
            b'[' => self.open(false)?,
            b'"' => {
                self.begin_string(false);
                State::Str { key: false }
            }
            b'-' => State::Number(Number::Minus),
            b'0' => State::Number(Number::Zero),
            b'1'..=b'9' => State::Number(Number::Int),
            b't' => State::Literal(b"true", 1),
            b'f' => State::Literal(b"false", 1),
            b'n' => State::Literal(b"null", 1),
            _ => return Err(self.malformed(0, "an unexpected character")),
        })
    }

    fn open(&mut self, object: bool) -> Result<State, DocumentError> {
        if self.stack.len() >= MAX_DEPTH {
            return Err(DocumentError::TooDeep);
        }
        self.stack.push(object);
        Ok(State::Structural(if object {
            Expect::KeyOrClose
        } else {
            Expect::ValueOrClose
        }))
    }

    fn close(&mut self) -> State {
        if self.paths_depth == Some(self.stack.len()) {
            self.paths_depth = None;
        }
        self.stack.pop();
        self.after_value()
    }

    fn after_value(&self) -> State {
        State::Structural(if self.stack.is_empty() {
            Expect::End
        } else {
            Expect::CommaOrClose
        })
    }

    /// One byte of a number; false when the byte ended it (it belongs to what follows).
    fn number(&mut self, number: Number, b: u8) -> Result<bool, DocumentError> {
        use Number::*;
        let next = match (number, b) {
            (Minus, b'0') => Zero,
            (Minus | Int, b'0'..=b'9') => Int,
            (Zero | Int, b'.') => Dot,
            (Dot | Frac, b'0'..=b'9') => Frac,
            (Zero | Int | Frac, b'e' | b'E') => Exp,
            (Exp, b'+' | b'-') => ExpSign,
            (Exp | ExpSign | ExpDigits, b'0'..=b'9') => ExpDigits,
            (Zero | Int | Frac | ExpDigits, _) => {
                self.state = self.after_value();
                return Ok(false);
            }
            _ => return Err(self.malformed(0, "a malformed number")),
        };
        self.state = State::Number(next);
        self.offset += 1;
        Ok(true)
    }

    fn begin_string(&mut self, capture: bool) {
        self.capture = capture;
        self.key.clear();
        self.key_overflow = false;
        self.escape = Escape::None;
        self.high = None;
    }

    /// Reads string bytes from `chunk[i..]`; returns where to go on.
    fn string(&mut self, key: bool, chunk: &[u8], mut i: usize) -> Result<usize, DocumentError> {
        while let Some(rest) = chunk.get(i..).filter(|r| !r.is_empty()) {
            if self.escape != Escape::None {
                let b = rest.first().copied().unwrap_or_default();
                self.escape_byte(b)
                    .ok_or_else(|| self.malformed(0, "a malformed escape"))?;
                self.offset += 1;
                i += 1;
                continue;
            }
            let end = memchr2(b'"', b'\\', rest).unwrap_or(rest.len());
            let plain = rest.get(..end).unwrap_or_default();
            if let Some(at) = plain.iter().position(|&b| b < 0x20) {
                return Err(self.malformed(at, "a control character in a string"));
            }
            self.text(plain);
            self.offset += end;
            i += end;
            match rest.get(end) {
                None => return Ok(i),
                Some(b'"') => {
                    self.offset += 1;
                    self.end_string(key)?;
                    return Ok(i + 1);
                }
                Some(_) => {
                    self.offset += 1;
                    i += 1;
                    self.escape = Escape::Backslash;
                }
            }
        }
        Ok(i)
    }

    /// One byte of an escape; `None` when it is malformed.
    fn escape_byte(&mut self, b: u8) -> Option<()> {
        let decoded = match (self.escape, b) {
            (Escape::Backslash, b'"' | b'\\' | b'/') => b,
            (Escape::Backslash, b'b') => 0x08,
            (Escape::Backslash, b'f') => 0x0c,
            (Escape::Backslash, b'n') => b'\n',
            (Escape::Backslash, b'r') => b'\r',
            (Escape::Backslash, b't') => b'\t',
            (Escape::Backslash, b'u') => {
                self.escape = Escape::Hex(0, 0);
                return Some(());
            }
            (Escape::Hex(digits, unit), _) => {
                let unit = (unit << 4) | char::from(b).to_digit(16)? as u16;
                self.escape = if digits < 3 {
                    Escape::Hex(digits + 1, unit)
                } else {
                    self.code_unit(unit);
                    Escape::None
                };
                return Some(());
            }
            _ => return None,
        };
        self.escape = Escape::None;
        self.text(&[decoded]);
        Some(())
    }

    fn code_unit(&mut self, unit: u16) {
        let c = match self.high.take() {
            Some(high) if (0xDC00..=0xDFFF).contains(&unit) => {
                0x10000 + ((u32::from(high) - 0xD800) << 10) + (u32::from(unit) - 0xDC00)
            }
            high => {
                if high.is_some() {
                    self.push_char(char::REPLACEMENT_CHARACTER);
                }
                if (0xD800..=0xDBFF).contains(&unit) {
                    self.high = Some(unit);
                    return;
                }
                u32::from(unit)
            }
        };
        self.push_char(char::from_u32(c).unwrap_or(char::REPLACEMENT_CHARACTER));
    }

    fn push_char(&mut self, c: char) {
        let mut utf8 = [0; 4];
        self.push(c.encode_utf8(&mut utf8).as_bytes());
    }

    /// Decoded string bytes (a pending high surrogate without its low half goes first).
    fn text(&mut self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        if self.high.take().is_some() {
            self.push_char(char::REPLACEMENT_CHARACTER);
        }
        self.push(bytes);
    }

    fn push(&mut self, bytes: &[u8]) {
        if !self.capture {
            return;
        }
        if self.key.len() + bytes.len() > MAX_KEY_LEN {
            self.key_overflow = true;
        } else {
            self.key.extend_from_slice(bytes);
        }
    }

    fn end_string(&mut self, key: bool) -> Result<(), DocumentError> {
        if !key {
            self.state = self.after_value();
            return Ok(());
        }
        self.state = State::Structural(Expect::Colon);
        if !self.capture {
            return Ok(());
        }
        if self.high.take().is_some() {
            self.push_char(char::REPLACEMENT_CHARACTER);
        }
        if self.stack.len() == 1 {
            let is_paths = !self.key_overflow && self.key == b"paths";
            if is_paths && self.paths_seen {
                return Err(DocumentError::PathsTwice);
            }
            self.paths_next = is_paths;
            return Ok(());
        }
        let paths = &mut self.paths;
        if paths.keys.len() + paths.unusable.len() >= self.limits.max_paths {
            return Err(DocumentError::TooManyPaths {
                limit: self.limits.max_paths,
            });
        }
        let key = std::mem::take(&mut self.key);
        if self.key_overflow {
            let start = String::from_utf8_lossy(key.get(..40).unwrap_or(&key)).into_owned();
            paths
                .unusable
                .push(format!("`{start}…` is longer than {MAX_KEY_LEN} bytes"));
        } else {
            match String::from_utf8(key) {
                Ok(key) => paths.keys.push(key),
                Err(e) => paths.unusable.push(format!(
                    "`{}` is not UTF-8",
                    String::from_utf8_lossy(e.as_bytes())
                )),
            }
        }
        Ok(())
    }
}

/// Reads a whole document at once.
pub fn read_paths(document: &[u8], limits: Limits) -> Result<DocumentPaths, DocumentError> {
    let mut reader = PathsReader::new(limits);
    reader.feed(document)?;
    reader.finish()
}

/// Routes learned from a document, beside the configured ones.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Learned {
    /// The templates the configured table did not have, in document order.
    pub table: RouteTable,
    /// `paths` keys in the document.
    pub paths: usize,
    /// Keys whose route is configured already (the configured template is the label).
    pub configured: usize,
    /// Keys that cannot be route templates, each with the reason.
    pub skipped: Vec<String>,
}

/// Builds the learned table from `paths` keys: configured routes win, keys that cannot be a
/// route template (characters a label cannot carry, a parameter that is not a whole segment,
/// the same route twice...) are skipped with the reason.
pub fn learn<S: AsRef<str>>(keys: &[S], configured: &RouteTable) -> Learned {
    let mut learned = Learned {
        paths: keys.len(),
        ..Learned::default()
    };
    for key in keys {
        let key = key.as_ref();
        if configured.covers(key) {
            learned.configured += 1;
        } else if let Err(reason) = learned.table.push(key) {
            learned.skipped.push(reason);
        }
    }
    learned
}

/// Learns from a document's keys, counting its unusable keys as skipped too.
pub fn learn_document(document: DocumentPaths, configured: &RouteTable) -> Learned {
    let mut learned = learn(&document.keys, configured);
    learned.paths += document.unusable.len();
    let mut skipped = document.unusable;
    skipped.append(&mut learned.skipped);
    learned.skipped = skipped;
    learned
}

impl Learned {
    /// The learned templates as one text (one per line), the form shared between VMs.
    pub fn to_text(&self) -> String {
        self.table.templates().collect::<Vec<_>>().join("\n")
    }

    /// The table shared by another VM (see [`to_text`](Self::to_text)).
    pub fn from_text(text: &str, configured: &RouteTable) -> Learned {
        let keys: Vec<&str> = text.lines().filter(|l| !l.is_empty()).collect();
        learn(&keys, configured)
    }

    /// A log line's worth: counts, the learned templates, and why keys were skipped.
    pub fn summary(&self) -> String {
        let mut out = format!(
            "{} route{} ({} path{}: {} configured, {} skipped)",
            self.table.len(),
            plural(self.table.len()),
            self.paths,
            plural(self.paths),
            self.configured,
            self.skipped.len()
        );
        let mut templates = self.table.templates();
        let shown: Vec<&str> = templates.by_ref().take(LEARNED_SHOWN).collect();
        if !shown.is_empty() {
            out.push_str(": ");
            out.push_str(&shown.join(" "));
        }
        let more = templates.count();
        if more > 0 {
            out.push_str(&format!(" and {more} more"));
        }
        if !self.skipped.is_empty() {
            out.push_str("; skipped: ");
            let shown: Vec<&str> = self
                .skipped
                .iter()
                .take(SKIPPED_SHOWN)
                .map(String::as_str)
                .collect();
            out.push_str(&shown.join("; "));
            if self.skipped.len() > SKIPPED_SHOWN {
                out.push_str(&format!(" and {} more", self.skipped.len() - SKIPPED_SHOWN));
            }
        }
        out
    }
}

pub(crate) fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

#[cfg(test)]
#[path = "openapi_tests.rs"]
mod tests;
