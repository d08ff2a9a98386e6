//! Streaming scanner that pulls a few top-level fields out of a JSON object as it streams past.
//!
//! Bodies arrive in chunks of any size and are never buffered: the scanner is a byte-level state
//! machine whose whole state (including the one string value being captured) lives in a
//! fixed-size struct, so a chunk boundary can fall anywhere (inside a key, an escape, `true`...).
//! Only top-level keys are matched. Nested containers are skipped by counting brackets on a fixed
//! bit-stack, and strings nobody asked for are skipped with `memchr2`, so a multi-megabyte value
//! costs little more than a memory scan.

use core::fmt;
use memchr::memchr2;

use crate::bytes;

/// Most fields one scanner tracks.
pub const MAX_FIELDS: usize = 8;
/// Longest string value kept, in bytes (UTF-8). Longer strings are reported as `FieldValue::TooLong`.
pub const MAX_VALUE_LEN: usize = 128;

/// Deepest nesting inside a top-level value: the bracket stack stays a fixed array instead of
/// growing on the heap. A document nesting deeper is read no further: the fields before the
/// deep value are kept (as when a body is cut short), the ones after it are not read.
pub const MAX_DEPTH: usize = 256;
const REPLACEMENT: &[u8] = "\u{FFFD}".as_bytes();
static ABSENT: FieldValue = FieldValue::Absent;

/// The fields to look for, built once (from configuration) and shared read-only by every
/// request: top-level keys, and paths into nested objects (`usage.prompt_tokens`), as a tree
/// of the objects on the way.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FieldSet {
    top: Level,
    len: usize,
}

/// The keys wanted in one object: each a field, the way to deeper fields, or both.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
struct Level {
    keys: Vec<Key>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Key {
    name: String,
    field: Option<u8>,
    nested: Option<Box<Level>>,
}

/// Most segments of a nested path.
pub const MAX_PATH_SEGMENTS: usize = 8;

impl FieldSet {
    /// Top-level keys, field `i` being `keys[i]`. Returns a reason instead of panicking,
    /// since keys come from operator configuration.
    pub fn new(keys: &[&str]) -> Result<Self, String> {
        let mut set = Self::default();
        for key in keys {
            if set.top.keys.iter().any(|k| k.name == *key) {
                return Err(format!("field name `{key}` is listed twice"));
            }
            set.add_path(&[key])?;
        }
        Ok(set)
    }

    /// The field at `path` (keys from the top-level object down), added unless already
    /// there: its index.
    pub fn add_path(&mut self, path: &[&str]) -> Result<usize, String> {
        if path.is_empty() || path.len() > MAX_PATH_SEGMENTS {
            return Err(format!(
                "a field path has 1 to {MAX_PATH_SEGMENTS} keys, got {}",
                path.len()
            ));
        }
        for key in path {
            if key.is_empty() {
                return Err("field names must not be empty".to_string());
            }
            if key.len() > MAX_VALUE_LEN {
                return Err(format!(
                    "field name `{key}` is longer than {MAX_VALUE_LEN} bytes"
                ));
            }
        }
        let (Some(last), objects) = (path.last(), path.get(..path.len() - 1).unwrap_or_default())
        else {
            return Err("a field path needs a key".to_string());
        };
        let mut level = &mut self.top;
        for segment in objects {
            level = level
                .key_mut(segment)
                .nested
                .get_or_insert_with(Box::default);
        }
        let next = self.len;
        let key = level.key_mut(last);
        if let Some(existing) = key.field {
            return Ok(usize::from(existing));
        }
        if next >= MAX_FIELDS {
            return Err(format!(
                "at most {MAX_FIELDS} fields can be extracted, got {}",
                next + 1
            ));
        }
        key.field = Some(next as u8);
        self.len += 1;
        Ok(next)
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl Level {
    fn find(&self, decoded_key: &[u8]) -> Option<u8> {
        let index = self
            .keys
            .iter()
            .position(|k| bytes::eq(k.name.as_bytes(), decoded_key))?;
        u8::try_from(index).ok()
    }

    fn key(&self, index: u8) -> Option<&Key> {
        self.keys.get(usize::from(index))
    }

    /// The key `name`, added when new.
    fn key_mut(&mut self, name: &str) -> &mut Key {
        let position = match self.keys.iter().position(|k| k.name == name) {
            Some(position) => position,
            None => {
                self.keys.push(Key {
                    name: name.to_string(),
                    field: None,
                    nested: None,
                });
                self.keys.len() - 1
            }
        };
        &mut self.keys[position]
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum FieldValue {
    /// Key not seen at top level.
    Absent,
    /// Decoded string value, at most `MAX_VALUE_LEN` bytes.
    Str(InlineStr),
    /// A string longer than `MAX_VALUE_LEN` bytes (decoded).
    TooLong,
    Bool(bool),
    Null,
    /// A number, read only for a wanted field (JSON numbers are read as `f64`).
    Number(f64),
    /// Object or array, or a number whose text does not fit.
    Other,
}

impl FieldValue {
    pub fn as_str(&self) -> Option<&str> {
        match self {
            FieldValue::Str(s) => Some(s.as_str()),
            _ => None,
        }
    }

    pub fn as_number(&self) -> Option<f64> {
        match self {
            FieldValue::Number(n) => Some(*n),
            _ => None,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match self {
            FieldValue::Bool(b) => Some(*b),
            _ => None,
        }
    }
}

/// Fixed-capacity string stored inline (no heap).
///
/// Invariant: `bytes[..len]` is valid UTF-8 and the tail is zeroed, so the derived `PartialEq`
/// compares contents only.
#[derive(Clone, PartialEq, Eq)]
pub struct InlineStr {
    bytes: [u8; MAX_VALUE_LEN],
    len: u8,
}

impl InlineStr {
    pub fn as_str(&self) -> &str {
        let bytes = self.bytes.get(..usize::from(self.len)).unwrap_or_default();
        core::str::from_utf8(bytes).unwrap_or_default()
    }

    /// Appends `s`, or returns false if it would not fit.
    fn push(&mut self, s: &[u8]) -> bool {
        let start = usize::from(self.len);
        let end = start + s.len();
        match (self.bytes.get_mut(start..end), u8::try_from(end)) {
            (Some(dst), Ok(len)) => {
                dst.copy_from_slice(s);
                self.len = len;
                true
            }
            _ => false,
        }
    }

    /// Invalid UTF-8 becomes U+FFFD; `None` if the repaired string no longer fits.
    fn from_lossy(decoded: &[u8]) -> Option<Self> {
        let mut out = Self {
            bytes: [0; MAX_VALUE_LEN],
            len: 0,
        };
        // Valid text (ASCII above all, the common case) is copied in one step.
        if std::str::from_utf8(decoded).is_ok() {
            return out.push(decoded).then_some(out);
        }
        for chunk in decoded.utf8_chunks() {
            let invalid = !chunk.invalid().is_empty();
            if !out.push(chunk.valid().as_bytes()) || (invalid && !out.push(REPLACEMENT)) {
                return None;
            }
        }
        Some(out)
    }
}

impl fmt::Debug for InlineStr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

/// A JSON number's value: exact for integers up to 2⁵³, and within a few units in the last
/// place otherwise (token counts and seconds need no better). `None` for text JSON refuses
/// (`01`, `1.`, `+1`, `.5`) or a value beyond `f64`. Written by hand: the standard parser
/// would add a tenth to the size of the Wasm module.
fn parse_number(text: &[u8]) -> Option<f64> {
    let (negative, rest) = match text.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, text),
    };
    let int_len = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    let (int, rest) = rest.split_at(int_len);
    if int.is_empty() || (int.len() > 1 && int.first() == Some(&b'0')) {
        return None;
    }
    let (fraction, rest) = match rest.split_first() {
        Some((b'.', after)) => {
            let n = after.iter().take_while(|b| b.is_ascii_digit()).count();
            if n == 0 {
                return None;
            }
            after.split_at(n)
        }
        _ => (&[][..], rest),
    };
    let exponent: i32 = match rest.split_first() {
        None => 0,
        Some((b'e' | b'E', after)) => {
            let (sign, digits) = match after.split_first() {
                Some((b'-', d)) => (-1, d),
                Some((b'+', d)) => (1, d),
                _ => (1, after),
            };
            if digits.is_empty() || digits.len() > 4 || !digits.iter().all(u8::is_ascii_digit) {
                return None;
            }
            sign * digits
                .iter()
                .fold(0i32, |e, d| e * 10 + i32::from(d - b'0'))
        }
        Some(_) => return None,
    };
    // Up to 19 significant digits are kept; the ones beyond only scale the value.
    let mut mantissa: u64 = 0;
    let mut scale = exponent;
    let mut kept = 0;
    for (i, d) in int.iter().chain(fraction).enumerate() {
        let in_fraction = i >= int.len();
        if kept < 19 {
            mantissa = mantissa * 10 + u64::from(d - b'0');
            kept += u32::from(mantissa > 0);
            scale -= i32::from(in_fraction);
        } else if !in_fraction {
            scale += 1;
        }
    }
    let value = mantissa as f64 * 10f64.powi(scale);
    value
        .is_finite()
        .then_some(if negative { -value } else { value })
}

/// Where a string sits, which decides what its closing quote leads to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StrKind {
    Key,
    Value,
    Nested,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Before the `{`; `bom` counts BOM bytes seen (3 = no BOM allowed any more).
    Start {
        bom: u8,
    },
    /// Just after `{`: a key or `}`.
    KeyOrClose,
    /// Just after `,`: a key is mandatory.
    Key,
    Colon,
    Value,
    CommaOrClose,
    Str(StrKind),
    /// `true`/`false`/`null` and how many of its bytes have matched.
    Literal(&'static [u8], u8),
    Number,
    /// Inside an object/array that is the value of a top-level key.
    Nested,
    /// Inside an object whose keys lead to wanted fields: its own scanner reads it.
    Delegated,
    Done,
    /// Nested deeper than [`MAX_DEPTH`]: nothing more is read, what was read stays.
    TooDeep,
    Invalid,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Esc {
    None,
    Backslash,
    /// `\u` escape: hex digits read so far and the UTF-16 code unit they spell.
    Hex(u8, u16),
}

/// Where the string being read ends or escapes: the first `"` or `\` of `rest` (the rest of
/// the chunk). Most strings end within a few words, read a word at a time; past them,
/// `memchr2` (vectorized natively) skips long values.
fn quote_or_backslash(rest: &[u8]) -> Option<usize> {
    const HEAD: usize = 16;
    let (head, tail) = rest.split_at(rest.len().min(HEAD));
    bytes::find2(head, b'"', b'\\').or_else(|| Some(HEAD + memchr2(b'"', b'\\', tail)?))
}

/// What a one-byte escape (all but `\u`'s) stands for, by the byte after its backslash.
fn one_byte_escape(b: u8) -> Option<u8> {
    match b {
        b'"' | b'\\' | b'/' => Some(b),
        b'b' => Some(0x08),
        b'f' => Some(0x0c),
        b'n' => Some(b'\n'),
        b'r' => Some(b'\r'),
        b't' => Some(b'\t'),
        _ => None,
    }
}

/// Per-body state. Creating one and feeding it never allocates on the heap.
#[derive(Debug, Clone)]
pub struct JsonFieldScanner {
    state: State,
    esc: Esc,
    /// High surrogate from `\uD8xx`, held until we know whether a low half follows.
    pending_high: Option<u16>,
    /// Keys and wanted values are decoded into `buf`; every other string is only skipped.
    capture: bool,
    buf: [u8; MAX_VALUE_LEN],
    buf_len: usize,
    overflow: bool,
    /// Raw bytes of the current string seen so far (escapes not decoded).
    string_len: usize,
    /// Field whose value comes next (set by the key just read).
    target: Option<u8>,
    /// The key just read, when its value may be an object holding wanted fields.
    target_nested: Option<u8>,
    /// The scanner of such an object while it is read ([`State::Delegated`]).
    child: Option<Box<JsonFieldScanner>>,
    /// This scanner reads a nested object: it stops at its closing brace.
    is_child: bool,
    depth: u16,
    /// One bit per open container inside a top-level value: 1 = object, 0 = array.
    kinds: [u64; MAX_DEPTH / 64],
    values: [FieldValue; MAX_FIELDS],
}

impl Default for JsonFieldScanner {
    fn default() -> Self {
        Self::new()
    }
}

impl JsonFieldScanner {
    pub fn new() -> Self {
        Self {
            state: State::Start { bom: 0 },
            esc: Esc::None,
            pending_high: None,
            capture: false,
            buf: [0; MAX_VALUE_LEN],
            buf_len: 0,
            overflow: false,
            string_len: 0,
            target: None,
            target_nested: None,
            child: None,
            is_child: false,
            depth: 0,
            kinds: [0; MAX_DEPTH / 64],
            values: [const { FieldValue::Absent }; MAX_FIELDS],
        }
    }

    /// Feed the next chunk. `fields` must be the same FieldSet for every call on one body.
    pub fn feed(&mut self, fields: &FieldSet, chunk: &[u8]) {
        self.feed_level(&fields.top, chunk);
    }

    /// Reads `chunk` for the keys of `level`; returns how much of it was read (all of it,
    /// but for a nested object's scanner, which stops after its closing brace).
    fn feed_level(&mut self, level: &Level, chunk: &[u8]) -> usize {
        let mut i = 0;
        while let Some(&b) = chunk.get(i) {
            i = match self.state {
                State::Invalid | State::TooDeep => return i,
                State::Done if self.is_child => return i,
                State::Str(kind) => self.scan_string(level, kind, chunk, i),
                State::Nested => self.scan_nested(chunk, i),
                State::Delegated => self.scan_delegated(level, chunk, i),
                _ => {
                    self.step(b);
                    i + 1
                }
            };
        }
        i
    }

    /// Hands `input[i..]` to the scanner of the nested object being read, and takes its
    /// fields when the object ends.
    fn scan_delegated(&mut self, level: &Level, input: &[u8], i: usize) -> usize {
        let nested = self
            .target_nested
            .and_then(|k| level.key(k))
            .and_then(|k| k.nested.as_deref());
        let (Some(child), Some(nested)) = (self.child.as_mut(), nested) else {
            self.state = State::Invalid;
            return input.len();
        };
        let read = child.feed_level(nested, input.get(i..).unwrap_or_default());
        let ended = child.state;
        if matches!(ended, State::Done | State::TooDeep) {
            if let Some(child) = self.child.take() {
                self.adopt_later_fields(&child);
            }
        }
        self.state = match ended {
            State::Done => self.finish_value(FieldValue::Other),
            State::Invalid | State::TooDeep => ended,
            _ => State::Delegated,
        };
        i + read
    }

    /// True once the scanner has seen something that is not a JSON object.
    pub fn is_invalid(&self) -> bool {
        self.state == State::Invalid
    }

    /// True when the top-level object has been closed.
    pub fn is_complete(&self) -> bool {
        self.state == State::Done
    }

    /// Value of field number `index`; everything is `Absent` once the document proved malformed.
    pub fn field(&self, index: usize) -> &FieldValue {
        if self.is_invalid() {
            return &ABSENT;
        }
        // A body cut inside a nested object keeps what was read of it, as at the top level.
        let open = self.child.as_ref().map(|child| child.field(index));
        match open {
            Some(value) if *value != FieldValue::Absent => value,
            _ => self.values.get(index).unwrap_or(&ABSENT),
        }
    }

    /// True inside a top-level string value that no field wants, after at least `len` of its
    /// bytes and not in the middle of an escape: the point from which the rest of the value
    /// can be skipped unread.
    pub fn is_skipping_value(&self, len: usize) -> bool {
        self.state == State::Str(StrKind::Value)
            && !self.capture
            && self.esc == Esc::None
            && self.string_len >= len
    }

    /// Takes the fields `later` found (a scanner fed what followed a skipped value): they come
    /// later in the document, so they win, as a repeated key does.
    pub fn adopt_later_fields(&mut self, later: &JsonFieldScanner) {
        for (mine, theirs) in self.values.iter_mut().zip(&later.values) {
            if *theirs != FieldValue::Absent {
                *mine = theirs.clone();
            }
        }
    }

    /// Forget everything, ready for another body: as [`new`](Self::new) but in place, without
    /// rewriting the kilobyte of buffers (the value buffer is only read up to `buf_len`, an
    /// inline string only up to its length). Every field is named, so a new one cannot be
    /// forgotten here.
    pub fn reset(&mut self) {
        let JsonFieldScanner {
            state,
            esc,
            pending_high,
            capture,
            buf: _,
            buf_len,
            overflow,
            string_len,
            target,
            target_nested,
            child,
            is_child,
            depth,
            kinds,
            values,
        } = self;
        *state = State::Start { bom: 0 };
        *esc = Esc::None;
        *pending_high = None;
        *capture = false;
        *buf_len = 0;
        *overflow = false;
        *string_len = 0;
        *target = None;
        *target_nested = None;
        *child = None;
        *is_child = false;
        *depth = 0;
        *kinds = [0; MAX_DEPTH / 64];
        for value in values.iter_mut() {
            *value = FieldValue::Absent;
        }
    }

    /// Handles one byte outside strings and nested containers.
    fn step(&mut self, b: u8) {
        let ws = matches!(b, b' ' | b'\t' | b'\n' | b'\r');
        self.state = match (self.state, b) {
            // The bytes between a compact object's strings, and inside numbers and literals,
            // first: with guards below, the table is tried arm by arm. The order changes no
            // outcome: none of these bytes is whitespace, none of these states is `Start`, and
            // whitespace ends a number or breaks a literal wherever its arm is.
            (State::Colon, b':') => State::Value,
            (State::Value, b'"') => self.begin_string(StrKind::Value, self.target.is_some()),
            (State::CommaOrClose, b',') => State::Key,
            (State::KeyOrClose | State::Key, b'"') => self.begin_string(StrKind::Key, true),
            (State::Number, b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E') => {
                self.push_number_byte(b);
                State::Number
            }
            (State::Number, _) => {
                // The byte ending a number belongs to what follows it.
                let value = self.number_value();
                self.state = self.finish_value(value);
                return self.step(b);
            }
            (State::Literal(word, matched), _) if word.get(usize::from(matched)) == Some(&b) => {
                if usize::from(matched) + 1 < word.len() {
                    State::Literal(word, matched + 1)
                } else {
                    self.finish_value(match word.first() {
                        Some(b't') => FieldValue::Bool(true),
                        Some(b'f') => FieldValue::Bool(false),
                        _ => FieldValue::Null,
                    })
                }
            }
            (State::Start { bom: 0 }, 0xEF) => State::Start { bom: 1 },
            (State::Start { bom: 1 }, 0xBB) => State::Start { bom: 2 },
            (State::Start { bom: 2 }, 0xBF) => State::Start { bom: 3 },
            (State::Start { bom: 1 | 2 }, _) => State::Invalid,
            (State::Start { .. }, b'{') => State::KeyOrClose,
            (State::Start { .. }, _) if ws => State::Start { bom: 3 },
            (s, _) if ws && !matches!(s, State::Number | State::Literal(..)) => s,
            (State::KeyOrClose | State::CommaOrClose, b'}') => State::Done,
            (State::Value, b'{') if self.target_nested.is_some() => {
                let mut child = Box::new(JsonFieldScanner::new());
                child.state = State::KeyOrClose;
                child.is_child = true;
                self.child = Some(child);
                State::Delegated
            }
            (State::Value, b'{' | b'[') => {
                self.depth = 0;
                self.push_container(b == b'{');
                State::Nested
            }
            (State::Value, b't') => State::Literal(b"true", 1),
            (State::Value, b'f') => State::Literal(b"false", 1),
            (State::Value, b'n') => State::Literal(b"null", 1),
            // Numbers are only checked loosely: a wanted one is read by `f64`'s parser, which
            // refuses what JSON would.
            (State::Value, b'-' | b'0'..=b'9') => {
                self.begin_string(StrKind::Value, self.target.is_some());
                self.push_number_byte(b);
                State::Number
            }
            _ => State::Invalid,
        };
    }

    fn push_number_byte(&mut self, b: u8) {
        if self.capture {
            self.push(&[b]);
        }
    }

    fn number_value(&self) -> FieldValue {
        let text = self.buf.get(..self.buf_len).unwrap_or_default();
        match parse_number(text) {
            Some(n) if self.capture && !self.overflow => FieldValue::Number(n),
            _ => FieldValue::Other,
        }
    }

    fn begin_string(&mut self, kind: StrKind, capture: bool) -> State {
        self.capture = capture;
        self.buf_len = 0;
        self.overflow = false;
        self.string_len = 0;
        self.pending_high = None;
        self.esc = Esc::None;
        State::Str(kind)
    }

    /// Consumes string bytes from `input[i..]`, returning where scanning should resume.
    fn scan_string(&mut self, level: &Level, kind: StrKind, input: &[u8], mut i: usize) -> usize {
        while let Some(rest) = input.get(i..).filter(|r| !r.is_empty()) {
            if self.esc != Esc::None {
                i += 1;
                if !self.escape_byte(rest.first().copied().unwrap_or_default()) {
                    self.state = State::Invalid;
                    return i;
                }
                continue;
            }
            let Some(pos) = quote_or_backslash(rest) else {
                self.string_len += rest.len();
                self.emit(rest);
                return input.len();
            };
            self.string_len += pos + 1;
            self.emit(rest.get(..pos).unwrap_or_default());
            i += pos + 1;
            if rest.get(pos) == Some(&b'"') {
                self.end_string(level, kind);
                return i;
            }
            // In a string nobody wants, a one-byte escape (`\"`, `\n`...) needs checking, not
            // decoding: stepped over here, where a text full of escaped quotes stops the scan.
            let escaped = rest.get(pos + 1).copied();
            if !self.capture && escaped.and_then(one_byte_escape).is_some() {
                self.string_len += 1;
                i += 1;
                continue;
            }
            self.esc = Esc::Backslash;
        }
        i
    }

    /// One byte of an escape sequence; false if the escape is malformed.
    fn escape_byte(&mut self, b: u8) -> bool {
        let decoded = match (self.esc, b) {
            (Esc::Backslash, b'u') => {
                self.esc = Esc::Hex(0, 0);
                return true;
            }
            (Esc::Hex(digits, unit), _) => {
                let Some(d) = char::from(b).to_digit(16) else {
                    return false;
                };
                let unit = (unit << 4) | d as u16;
                if digits < 3 {
                    self.esc = Esc::Hex(digits + 1, unit);
                } else {
                    self.esc = Esc::None;
                    self.code_unit(unit);
                }
                return true;
            }
            (Esc::Backslash, _) => match one_byte_escape(b) {
                Some(decoded) => decoded,
                None => return false,
            },
            (Esc::None, _) => return false,
        };
        self.esc = Esc::None;
        self.emit(&[decoded]);
        true
    }

    fn end_string(&mut self, level: &Level, kind: StrKind) {
        self.flush_pending();
        let decoded = self.buf.get(..self.buf_len).unwrap_or_default();
        self.state = match kind {
            StrKind::Key => {
                // Over-long keys cannot match: configured keys are at most MAX_VALUE_LEN bytes.
                let found = if self.overflow {
                    None
                } else {
                    level.find(decoded)
                };
                let key = found.and_then(|k| level.key(k));
                self.target = key.and_then(|k| k.field);
                self.target_nested = found.filter(|_| key.is_some_and(|k| k.nested.is_some()));
                State::Colon
            }
            StrKind::Value if !self.capture => self.finish_value(FieldValue::Other),
            StrKind::Value => {
                let value = match InlineStr::from_lossy(decoded) {
                    Some(s) if !self.overflow => FieldValue::Str(s),
                    _ => FieldValue::TooLong,
                };
                self.finish_value(value)
            }
            StrKind::Nested => State::Nested,
        };
    }

    /// Decoded string bytes go to `buf` only while capturing; overflow just sets a flag so the
    /// rest of a long string is still skipped at memchr speed.
    fn emit(&mut self, bytes: &[u8]) {
        if !self.capture || bytes.is_empty() {
            return;
        }
        self.flush_pending();
        self.push(bytes);
    }

    fn push(&mut self, bytes: &[u8]) {
        let end = self.buf_len + bytes.len();
        match self.buf.get_mut(self.buf_len..end) {
            Some(dst) if !self.overflow => {
                dst.copy_from_slice(bytes);
                self.buf_len = end;
            }
            _ => self.overflow = true,
        }
    }

    /// A high surrogate not followed by a low one is replaced by U+FFFD.
    fn flush_pending(&mut self) {
        if self.pending_high.take().is_some() {
            self.push(REPLACEMENT);
        }
    }

    fn code_unit(&mut self, unit: u16) {
        if !self.capture {
            return;
        }
        if let Some(high) = self.pending_high.take() {
            if (0xDC00..=0xDFFF).contains(&unit) {
                let c = 0x10000 + ((u32::from(high) - 0xD800) << 10) + (u32::from(unit) - 0xDC00);
                return self.push_char(char::from_u32(c).unwrap_or(char::REPLACEMENT_CHARACTER));
            }
            self.push(REPLACEMENT);
        }
        if (0xD800..=0xDBFF).contains(&unit) {
            self.pending_high = Some(unit);
        } else {
            // A lone low surrogate is not a char: from_u32 turns it into U+FFFD.
            self.push_char(char::from_u32(unit.into()).unwrap_or(char::REPLACEMENT_CHARACTER));
        }
    }

    fn push_char(&mut self, c: char) {
        let mut utf8 = [0; 4];
        self.push(c.encode_utf8(&mut utf8).as_bytes());
    }

    fn finish_value(&mut self, value: FieldValue) -> State {
        self.target_nested = None;
        if let Some(slot) = self
            .target
            .take()
            .and_then(|t| self.values.get_mut(usize::from(t)))
        {
            *slot = value;
        }
        State::CommaOrClose
    }

    /// Skips nested containers; only brackets and strings matter here.
    fn scan_nested(&mut self, input: &[u8], mut i: usize) -> usize {
        while let Some(&b) = input.get(i) {
            i += 1;
            match b {
                b'"' => {
                    self.state = self.begin_string(StrKind::Nested, false);
                    return i;
                }
                b'{' | b'[' if !self.push_container(b == b'{') => {
                    self.state = State::TooDeep;
                    return i;
                }
                b'}' | b']' => match self.pop_container(b == b'}') {
                    None => {
                        self.state = State::Invalid;
                        return i;
                    }
                    Some(0) => {
                        self.state = self.finish_value(FieldValue::Other);
                        return i;
                    }
                    Some(_) => {}
                },
                _ => {}
            }
        }
        i
    }

    fn push_container(&mut self, is_object: bool) -> bool {
        let d = usize::from(self.depth);
        let Some(word) = self.kinds.get_mut(d / 64) else {
            return false;
        };
        let bit = 1u64 << (d % 64);
        if is_object {
            *word |= bit;
        } else {
            *word &= !bit;
        }
        self.depth += 1;
        true
    }

    /// Remaining depth, or `None` when the closing bracket does not match the open one.
    fn pop_container(&mut self, is_object: bool) -> Option<u16> {
        let d = self.depth.checked_sub(1)?;
        let word = self.kinds.get(usize::from(d) / 64)?;
        if (word >> (d % 64)) & 1 != u64::from(is_object) {
            return None;
        }
        self.depth = d;
        Some(d)
    }
}

#[cfg(test)]
#[path = "scanner_tests.rs"]
mod tests;
