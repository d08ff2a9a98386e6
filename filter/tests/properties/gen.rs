//! Generators: JSON documents written with every escape JSON has, unicode of every UTF-8
//! length, nesting and long values; chunkings of a byte string; and the oracle, what
//! `serde_json` reads from the same text.

use prompter_filter::scanner::{FieldSet, FieldValue, MAX_VALUE_LEN};
use proptest::prelude::*;
use proptest::sample::Index;

/// The fields the tests ask the scanners for (those of the Prompter API's bodies).
pub const KEYS: [&str; 4] = ["provider", "model_id", "system_fingerprint", "redis"];

pub fn fields() -> FieldSet {
    FieldSet::new(&KEYS).expect("valid keys")
}

/// A field value as a test compares it (the scanner's `InlineStr` has no public constructor).
#[derive(Debug, Clone, PartialEq)]
pub enum Seen {
    Absent,
    Str(String),
    TooLong,
    Bool(bool),
    Null,
    /// A number, to 7 significant digits (the scanner and `serde_json` parse it with
    /// parsers that may differ in the last bit).
    Number(String),
    Other,
}

fn number(n: f64) -> Seen {
    Seen::Number(format!("{n:.6e}"))
}

impl Seen {
    pub fn of(value: &FieldValue) -> Seen {
        match value {
            FieldValue::Absent => Seen::Absent,
            FieldValue::Str(s) => Seen::Str(s.as_str().to_string()),
            FieldValue::TooLong => Seen::TooLong,
            FieldValue::Bool(b) => Seen::Bool(*b),
            FieldValue::Null => Seen::Null,
            FieldValue::Number(n) => number(*n),
            FieldValue::Other => Seen::Other,
        }
    }

    /// What the scanner must report for a top-level value, read by `serde_json`.
    pub fn expected(value: Option<&serde_json::Value>) -> Seen {
        use serde_json::Value;
        match value {
            None => Seen::Absent,
            Some(Value::String(s)) if s.len() > MAX_VALUE_LEN => Seen::TooLong,
            Some(Value::String(s)) => Seen::Str(s.clone()),
            Some(Value::Bool(b)) => Seen::Bool(*b),
            Some(Value::Null) => Seen::Null,
            Some(Value::Number(n)) => n.as_f64().map_or(Seen::Other, number),
            Some(_) => Seen::Other,
        }
    }

    /// A value the event-stream reader keeps: a non-empty string, one too long to keep, or a
    /// number.
    pub fn is_kept_from_an_event(&self) -> bool {
        matches!(self, Seen::Str(s) if !s.is_empty())
            || matches!(self, Seen::TooLong | Seen::Number(_))
    }
}

/// The top-level fields `serde_json` reads from `text` (`None` if it is not a JSON object).
pub fn oracle(text: &[u8]) -> Option<Vec<Seen>> {
    let value: serde_json::Value = serde_json::from_slice(text).ok()?;
    let object = value.as_object()?;
    Some(
        KEYS.iter()
            .map(|k| Seen::expected(object.get(*k)))
            .collect(),
    )
}

/// A character, and whether it is written as an escape (`\n`, `\u00e9`, a surrogate pair…).
pub type Char = (char, bool);

/// A JSON value before it is written out.
#[derive(Debug, Clone)]
pub enum Json {
    Str(Vec<Char>),
    Number(&'static str),
    Bool(bool),
    Null,
    Array(Vec<Json>),
    Object(Vec<(Vec<Char>, Json)>),
}

fn character() -> impl Strategy<Value = char> {
    prop_oneof![
        4 => proptest::char::range('a', 'z'),
        1 => Just('"'),
        1 => Just('\\'),
        1 => Just('/'),
        1 => proptest::char::range('\u{0}', '\u{1f}'),
        1 => proptest::char::range('\u{80}', '\u{7ff}'),
        1 => proptest::char::range('\u{800}', '\u{ffff}'),
        1 => proptest::char::range('\u{10000}', '\u{10ffff}'),
        1 => prop::sample::select(vec!['{', '}', '[', ']', ':', ',', ' ', 'é', '€', '😀']),
    ]
}

fn string_chars() -> impl Strategy<Value = Vec<Char>> {
    prop_oneof![
        6 => prop::collection::vec((character(), any::<bool>()), 0..24),
        // Around and past what the scanner keeps (128 bytes).
        1 => prop::collection::vec((character(), any::<bool>()), 100..200),
    ]
}

/// A key: one the scanner looks for (maybe escaped, maybe a near miss), or any string.
fn key() -> impl Strategy<Value = Vec<Char>> {
    let known = prop::sample::select(
        KEYS.iter()
            .copied()
            .chain(["Provider", "providers", "model", "re"])
            .collect::<Vec<_>>(),
    );
    prop_oneof![
        3 => (known, prop::collection::vec(any::<bool>(), 20)).prop_map(|(k, escapes)| {
            k.chars().zip(escapes).collect()
        }),
        1 => string_chars(),
    ]
}

const NUMBERS: [&str; 8] = [
    "0",
    "-1",
    "12.5e3",
    "-0.0E-7",
    "1e+2",
    "3.25",
    "123456789012345678901234567890",
    "-9007199254740993",
];

pub fn json_value() -> impl Strategy<Value = Json> {
    let leaf = prop_oneof![
        3 => string_chars().prop_map(Json::Str),
        1 => prop::sample::select(NUMBERS.to_vec()).prop_map(Json::Number),
        1 => any::<bool>().prop_map(Json::Bool),
        1 => Just(Json::Null),
    ];
    leaf.prop_recursive(4, 40, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Json::Array),
            prop::collection::vec((key(), inner), 0..6).prop_map(Json::Object),
        ]
    })
}

/// A top-level object: members whose keys are often the wanted ones, and whose values are
/// often strings (what the scanner keeps) but also anything else, nested.
pub fn json_object() -> impl Strategy<Value = Vec<(Vec<Char>, Json)>> {
    let value = prop_oneof![
        3 => string_chars().prop_map(Json::Str),
        1 => any::<bool>().prop_map(Json::Bool),
        1 => Just(Json::Null),
        2 => json_value(),
    ];
    prop::collection::vec((key(), value), 0..8)
}

/// Whitespace between tokens, picked from `choices` by a running seed.
pub struct Spacing {
    seed: u64,
    choices: &'static [&'static str],
}

/// Whitespace a JSON document may have anywhere between tokens.
pub const ANY_SPACE: &[&str] = &["", "", " ", "\n", "\t ", "\r\n"];
/// Whitespace that keeps a document on one line (an event-stream `data` line).
pub const LINE_SPACE: &[&str] = &["", "", " ", "\t"];

impl Spacing {
    pub fn new(seed: u64, choices: &'static [&'static str]) -> Self {
        Spacing {
            seed: seed | 1,
            choices,
        }
    }

    fn put(&mut self, out: &mut String) {
        self.seed ^= self.seed << 13;
        self.seed ^= self.seed >> 7;
        self.seed ^= self.seed << 17;
        out.push_str(self.choices[(self.seed % self.choices.len() as u64) as usize]);
    }
}

fn write_char(out: &mut String, c: char, escaped: bool) {
    match c {
        '"' => out.push_str("\\\""),
        '\\' => out.push_str("\\\\"),
        '\n' if escaped => out.push_str("\\n"),
        '\t' if escaped => out.push_str("\\t"),
        '/' if escaped => out.push_str("\\/"),
        c if escaped || (c as u32) < 0x20 => {
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                out.push_str(&format!("\\u{unit:04X}"));
            }
        }
        c => out.push(c),
    }
}

pub fn write_string(out: &mut String, chars: &[Char]) {
    out.push('"');
    for (c, escaped) in chars {
        write_char(out, *c, *escaped);
    }
    out.push('"');
}

pub fn write_value(out: &mut String, value: &Json, space: &mut Spacing) {
    match value {
        Json::Str(chars) => write_string(out, chars),
        Json::Number(n) => out.push_str(n),
        Json::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Json::Null => out.push_str("null"),
        Json::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                space.put(out);
                write_value(out, item, space);
                space.put(out);
            }
            out.push(']');
        }
        Json::Object(members) => write_members(out, members, space, |out| out.push(',')),
    }
}

/// `{` members `}`; `between` writes what separates two members (a comma, maybe more).
pub fn write_members(
    out: &mut String,
    members: &[(Vec<Char>, Json)],
    space: &mut Spacing,
    mut between: impl FnMut(&mut String),
) {
    out.push('{');
    for (i, (key, value)) in members.iter().enumerate() {
        if i > 0 {
            between(out);
        }
        space.put(out);
        write_string(out, key);
        space.put(out);
        out.push(':');
        space.put(out);
        write_value(out, value, space);
        space.put(out);
    }
    out.push('}');
}

/// A whole document, with whitespace around it.
pub fn document(members: &[(Vec<Char>, Json)], seed: u64) -> String {
    let mut space = Spacing::new(seed, ANY_SPACE);
    let mut out = String::new();
    space.put(&mut out);
    write_members(&mut out, members, &mut space, |out| out.push(','));
    space.put(&mut out);
    out
}

/// Cut points of a chunking, as proptest indexes (resolved against the text's length).
pub fn cuts() -> impl Strategy<Value = Vec<Index>> {
    prop::collection::vec(any::<Index>(), 0..12)
}

/// `bytes` cut at `cuts` (sorted; empty chunks included, as a host may deliver them).
pub fn split<'a>(bytes: &'a [u8], cuts: &[Index]) -> Vec<&'a [u8]> {
    let mut at: Vec<usize> = cuts.iter().map(|i| i.index(bytes.len() + 1)).collect();
    at.sort_unstable();
    let mut chunks = Vec::with_capacity(at.len() + 1);
    let mut previous = 0;
    for cut in at.into_iter().chain([bytes.len()]) {
        chunks.push(&bytes[previous..cut]);
        previous = cut;
    }
    chunks
}
