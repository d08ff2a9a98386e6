//! A small JSON reader for the plugin and VM configurations: documents of a few hundred bytes,
//! read once when the plugin is configured.
//!
//! It is ours rather than serde_json's because the module ships it: a derive-based reader and
//! float parsing and printing were a third of `prompter_filter.wasm`. Numbers are kept as the
//! text they were written as, so integers and bucket bounds are read exactly by whoever asks
//! for them, and a document that is not JSON is refused with the line and column where it
//! goes wrong. It accepts what serde_json accepts (a test compares the two), and numbers beyond
//! `f64`'s range too: it does not read them as floats; whoever asks for one refuses it.

use std::fmt;

/// Deepest nesting accepted (serde_json's limit too): a hostile document cannot exhaust the
/// stack of the reader, which recurses per level.
pub const MAX_DEPTH: usize = 128;

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    /// The number as written (it follows JSON's number grammar).
    Number(String),
    String(String),
    Array(Vec<Value>),
    /// Members in document order; a repeated key is kept, for the reader of the object to
    /// refuse.
    Object(Vec<(String, Value)>),
}

impl Value {
    /// What kind of value this is, as an error message names it.
    pub fn kind(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "a boolean",
            Value::Number(_) => "a number",
            Value::String(_) => "a string",
            Value::Array(_) => "an array",
            Value::Object(_) => "an object",
        }
    }
}

/// Where a document stops being JSON (1-based line and column, columns in characters).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    pub line: usize,
    pub column: usize,
    pub reason: &'static str,
}

impl fmt::Display for SyntaxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "not JSON: {} at line {} column {}",
            self.reason, self.line, self.column
        )
    }
}

impl std::error::Error for SyntaxError {}

const ENDS_EARLY: &str = "the document ends early";

/// Reads one JSON document (whitespace around it allowed).
pub fn parse(bytes: &[u8]) -> Result<Value, SyntaxError> {
    let text = std::str::from_utf8(bytes)
        .map_err(|e| SyntaxError::at(bytes, e.valid_up_to(), "a byte that is not UTF-8"))?;
    let mut reader = Reader {
        text,
        pos: 0,
        depth: 0,
    };
    let value = reader.document();
    value.map_err(|Stop(reason)| SyntaxError::at(bytes, reader.pos, reason))
}

impl SyntaxError {
    fn at(text: &[u8], offset: usize, reason: &'static str) -> Self {
        let before = &text[..offset.min(text.len())];
        let line_start = before
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |i| i + 1);
        // UTF-8 continuation bytes do not start a character.
        let column = before[line_start..]
            .iter()
            .filter(|&&b| b & 0xC0 != 0x80)
            .count();
        SyntaxError {
            line: before.iter().filter(|&&b| b == b'\n').count() + 1,
            column: column + 1,
            reason,
        }
    }
}

/// Why reading stopped; where is the reader's position.
struct Stop(&'static str);

struct Reader<'a> {
    text: &'a str,
    pos: usize,
    depth: usize,
}

impl Reader<'_> {
    fn document(&mut self) -> Result<Value, Stop> {
        self.skip_whitespace();
        let value = self.value()?;
        self.skip_whitespace();
        if self.pos < self.text.len() {
            return Err(Stop("data after the document"));
        }
        Ok(value)
    }

    /// `reason` where there is a byte to blame, the end of the document otherwise.
    fn unexpected(&self, reason: &'static str) -> Stop {
        Stop(if self.pos < self.text.len() {
            reason
        } else {
            ENDS_EARLY
        })
    }

    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.pos).copied()
    }

    fn eat(&mut self, byte: u8) -> bool {
        let found = self.peek() == Some(byte);
        self.pos += usize::from(found);
        found
    }

    fn skip_whitespace(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.pos += 1;
        }
    }

    fn value(&mut self) -> Result<Value, Stop> {
        match self.peek() {
            Some(b'{') => self.nested(Self::object),
            Some(b'[') => self.nested(Self::array),
            Some(b'"') => self.string().map(Value::String),
            Some(b't') => self.literal(b"true", Value::Bool(true)),
            Some(b'f') => self.literal(b"false", Value::Bool(false)),
            Some(b'n') => self.literal(b"null", Value::Null),
            Some(b'-' | b'0'..=b'9') => self.number(),
            _ => Err(self.unexpected("a character that starts no value")),
        }
    }

    fn nested(&mut self, read: fn(&mut Self) -> Result<Value, Stop>) -> Result<Value, Stop> {
        if self.depth == MAX_DEPTH {
            return Err(Stop("nesting deeper than 128 levels"));
        }
        self.depth += 1;
        self.pos += 1; // the opening bracket
        let value = read(self);
        self.depth -= 1;
        value
    }

    fn object(&mut self) -> Result<Value, Stop> {
        let mut members = Vec::new();
        self.skip_whitespace();
        if self.eat(b'}') {
            return Ok(Value::Object(members));
        }
        loop {
            self.skip_whitespace();
            if self.peek() != Some(b'"') {
                return Err(self.unexpected("expected a key in double quotes"));
            }
            let key = self.string()?;
            self.skip_whitespace();
            if !self.eat(b':') {
                return Err(self.unexpected("expected `:`"));
            }
            self.skip_whitespace();
            members.push((key, self.value()?));
            self.skip_whitespace();
            if self.eat(b'}') {
                return Ok(Value::Object(members));
            }
            if !self.eat(b',') {
                return Err(self.unexpected("expected `,` or `}`"));
            }
        }
    }

    fn array(&mut self) -> Result<Value, Stop> {
        let mut items = Vec::new();
        self.skip_whitespace();
        if self.eat(b']') {
            return Ok(Value::Array(items));
        }
        loop {
            self.skip_whitespace();
            items.push(self.value()?);
            self.skip_whitespace();
            if self.eat(b']') {
                return Ok(Value::Array(items));
            }
            if !self.eat(b',') {
                return Err(self.unexpected("expected `,` or `]`"));
            }
        }
    }

    fn literal(&mut self, word: &[u8], value: Value) -> Result<Value, Stop> {
        for &expected in word {
            if self.peek() != Some(expected) {
                return Err(self.unexpected("a misspelt `true`, `false` or `null`"));
            }
            self.pos += 1;
        }
        Ok(value)
    }

    fn digits(&mut self) -> bool {
        let start = self.pos;
        while matches!(self.peek(), Some(b'0'..=b'9')) {
            self.pos += 1;
        }
        self.pos > start
    }

    fn number(&mut self) -> Result<Value, Stop> {
        const MALFORMED: &str = "a malformed number";
        let start = self.pos;
        self.eat(b'-');
        // No leading zeros: `0` stands alone, what follows it is not part of the number.
        if !self.eat(b'0') && !self.digits() {
            return Err(self.unexpected(MALFORMED));
        }
        if self.eat(b'.') && !self.digits() {
            return Err(self.unexpected(MALFORMED));
        }
        if self.eat(b'e') || self.eat(b'E') {
            let _ = self.eat(b'+') || self.eat(b'-');
            if !self.digits() {
                return Err(self.unexpected(MALFORMED));
            }
        }
        Ok(Value::Number(self.text_since(start).to_string()))
    }

    /// The text read since `start` (both positions are next to ASCII bytes).
    fn text_since(&self, start: usize) -> &str {
        self.text.get(start..self.pos).unwrap_or_default()
    }

    fn string(&mut self) -> Result<String, Stop> {
        self.pos += 1; // the opening quote
        let mut out = String::new();
        loop {
            let start = self.pos;
            while matches!(self.peek(), Some(b) if b != b'"' && b != b'\\' && b >= 0x20) {
                self.pos += 1;
            }
            out.push_str(self.text_since(start));
            match self.peek() {
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(out);
                }
                Some(b'\\') => {
                    self.pos += 1;
                    out.push(self.escape()?);
                }
                Some(_) => return Err(Stop("a control character in a string")),
                None => return Err(Stop(ENDS_EARLY)),
            }
        }
    }

    fn escape(&mut self) -> Result<char, Stop> {
        let Some(byte) = self.peek() else {
            return Err(Stop(ENDS_EARLY));
        };
        self.pos += 1;
        Ok(match byte {
            b'"' => '"',
            b'\\' => '\\',
            b'/' => '/',
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            b'u' => return self.unicode_escape(),
            _ => {
                self.pos -= 1;
                return Err(Stop("an unknown escape"));
            }
        })
    }

    /// After `\u`: one code point, or two escapes that make a surrogate pair.
    fn unicode_escape(&mut self) -> Result<char, Stop> {
        const LONE: &str = "a lone surrogate in a `\\u` escape";
        let first = self.hex4()?;
        let code = match first {
            0xD800..=0xDBFF => {
                if !(self.eat(b'\\') && self.eat(b'u')) {
                    return Err(self.unexpected(LONE));
                }
                let second = self.hex4()?;
                if !(0xDC00..=0xDFFF).contains(&second) {
                    return Err(Stop(LONE));
                }
                0x10000 + ((first - 0xD800) << 10) + (second - 0xDC00)
            }
            0xDC00..=0xDFFF => return Err(Stop(LONE)),
            _ => first,
        };
        char::from_u32(code).ok_or(Stop(LONE))
    }

    fn hex4(&mut self) -> Result<u32, Stop> {
        let mut code = 0;
        for _ in 0..4 {
            let digit = self
                .peek()
                .and_then(|b| (b as char).to_digit(16))
                .ok_or_else(|| self.unexpected("a malformed `\\u` escape"))?;
            code = code * 16 + digit;
            self.pos += 1;
        }
        Ok(code)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(members: &[(&str, Value)]) -> Value {
        Value::Object(
            members
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
        )
    }

    #[test]
    fn reads_every_kind_of_value_keeping_numbers_as_written() {
        let value = parse(
            br#" {"s":"a\"\\\/\b\f\n\r\t\u00e9\ud83d\ude00","n":[0,-1.50,2E+3],"b":[true,false,null],"o":{},"a":[]} "#,
        )
        .unwrap();
        let number = |s: &str| Value::Number(s.into());
        assert_eq!(
            value,
            object(&[
                (
                    "s",
                    Value::String("a\"\\/\u{8}\u{c}\n\r\t\u{e9}\u{1F600}".into())
                ),
                (
                    "n",
                    Value::Array(vec![number("0"), number("-1.50"), number("2E+3")])
                ),
                (
                    "b",
                    Value::Array(vec![Value::Bool(true), Value::Bool(false), Value::Null])
                ),
                ("o", object(&[])),
                ("a", Value::Array(vec![])),
            ])
        );
    }

    #[test]
    fn repeated_keys_are_kept_for_the_caller_to_refuse() {
        assert_eq!(
            parse(br#"{"k":1,"k":2}"#).unwrap(),
            object(&[
                ("k", Value::Number("1".into())),
                ("k", Value::Number("2".into()))
            ])
        );
    }

    #[test]
    fn errors_say_what_and_where() {
        let cases: &[(&[u8], &str, usize, usize)] = &[
            (b"{", ENDS_EARLY, 1, 2),
            (
                b"{\n  \"a\": tru }",
                "a misspelt `true`, `false` or `null`",
                2,
                11,
            ),
            (
                b"{\"\xc3\xa9\": x}",
                "a character that starts no value",
                1,
                7,
            ),
            (b"{} {}", "data after the document", 1, 4),
            (b"[1,]", "a character that starts no value", 1, 4),
            (b"{\"a\" 1}", "expected `:`", 1, 6),
            (b"\"\\q\"", "an unknown escape", 1, 3),
            (b"\"\\udc00\"", "a lone surrogate in a `\\u` escape", 1, 8),
            (b"\"a\xff\"", "a byte that is not UTF-8", 1, 3),
            (b"01", "data after the document", 1, 2),
            (b"-", ENDS_EARLY, 1, 2),
        ];
        for (text, reason, line, column) in cases {
            let err = parse(text).unwrap_err();
            let shown = String::from_utf8_lossy(text);
            assert_eq!(
                (err.reason, err.line, err.column),
                (*reason, *line, *column),
                "{shown}"
            );
        }
        assert_eq!(
            parse(b"[").unwrap_err().to_string(),
            "not JSON: the document ends early at line 1 column 2"
        );
    }

    #[test]
    fn nesting_is_bounded() {
        let deep = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
        assert!(parse(deep(MAX_DEPTH).as_bytes()).is_ok());
        let err = parse(deep(MAX_DEPTH + 1).as_bytes()).unwrap_err();
        assert_eq!(err.reason, "nesting deeper than 128 levels");
    }
}
