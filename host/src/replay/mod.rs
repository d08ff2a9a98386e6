//! Offline replay: recorded request/response exchanges fed through the filter on a manual
//! clock, giving the metrics the filter would have reported for that traffic.
//!
//! A recording is read and checked whole before anything runs: a bad line or entry is an
//! error naming it, and nothing is replayed. Two formats:
//!
//! **JSON Lines** (`.jsonl`, `.ndjson`): one exchange per line; blank lines and lines
//! starting with `#` are ignored.
//!
//! ```json
//! {"method":"POST","path":"/api/prompt-templates/t-1/run?x=1","request_headers":{"content-type":"application/json"},"request_body":"{\"provider\":\"openai\"}","status":200,"response_body":"{\"system_fingerprint\":\"fp_1\"}","duration_ms":12.5,"start_time":"2026-01-01T00:00:00Z"}
//! ```
//!
//! | field | required | meaning |
//! |---|---|---|
//! | `method` | yes | request method |
//! | `path` | yes | request path with query, as in `:path` (starts with `/`) |
//! | `duration_ms` | yes | milliseconds from request start to end of response (≥ 0) |
//! | `status` | no | response status (100–999); `null`, absent or `0`: no response (the stream was reset) |
//! | `request_headers`, `response_headers` | no | objects of header name → value |
//! | `request_body`, `response_body` | no | bodies as text |
//! | `request_body_base64`, `response_body_base64` | no | bodies as base64 (at most one form per body) |
//! | `start_time` | no | RFC 3339 time the request started |
//!
//! Any other field is an error. **HAR 1.2** (`.har`, as browsers and proxies export it):
//! `log.entries[]` in file order, from `request.method`, `request.url` (path and query),
//! `request.headers` (pseudo-headers such as `:path` dropped), `request.postData.text`,
//! `response.status` (`0`: no response), `response.headers`, `response.content.text`
//! (`encoding: "base64"` honoured), `time` and `startedDateTime`; other HAR fields are
//! ignored. A body the HAR says existed but did not record gives a warning.
//!
//! The clock is manual: it moves to an exchange's start time when one is given and later
//! than the clock (else the exchange starts where the previous ended), and advances by the
//! exchange's duration between request and response, so every recorded duration lands in
//! the histograms exactly. Replay never ticks the filter, so it polls no health endpoint;
//! an http call it dispatches anyway is answered as failed.

mod har;
mod jsonl;
mod run;
mod timestamp;

use std::fmt;
use std::path::Path;

pub use run::{replay, DEFAULT_PLUGIN_CONFIG};
pub use timestamp::parse_rfc3339;

use crate::error::HostError;
use crate::state::HeaderMap;

/// Where an exchange is in its recording (for messages).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// 1-based line of a JSON Lines file.
    Line(usize),
    /// 0-based index in a HAR file's `log.entries`.
    Entry(usize),
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Line(n) => write!(f, "line {n}"),
            Origin::Entry(i) => write!(f, "log.entries[{i}]"),
        }
    }
}

/// One recorded request/response exchange, checked and ready to replay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exchange {
    pub origin: Origin,
    pub method: String,
    /// `:path`: path and query.
    pub path: String,
    pub authority: Option<String>,
    /// Regular headers, names lowercased (as Envoy hands them to filters).
    pub request_headers: HeaderMap,
    pub request_body: Vec<u8>,
    /// `None`: the stream ended without a response.
    pub status: Option<u16>,
    pub response_headers: HeaderMap,
    pub response_body: Vec<u8>,
    pub duration_nanos: u64,
    /// When the request started, in nanoseconds since the epoch.
    pub start_nanos: Option<u64>,
}

/// A problem with one line or entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub origin: Origin,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.origin, self.message)
    }
}

/// A checked recording.
#[derive(Debug, Clone, Default)]
pub struct Recording {
    pub exchanges: Vec<Exchange>,
    /// What was recorded only in part (e.g. a HAR saved without bodies); replayed anyway.
    pub warnings: Vec<Problem>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    JsonLines,
    Har,
}

impl Format {
    /// From the extension (`.har`; `.jsonl`, `.ndjson`), else from the content: a JSON
    /// document with a top-level `log` object is HAR.
    pub fn detect(path: &Path, text: &str) -> Format {
        match path.extension().and_then(|e| e.to_str()) {
            Some(e) if e.eq_ignore_ascii_case("har") => Format::Har,
            Some(e) if e.eq_ignore_ascii_case("jsonl") || e.eq_ignore_ascii_case("ndjson") => {
                Format::JsonLines
            }
            _ => match serde_json::from_str::<serde_json::Value>(text) {
                Ok(value) if value.get("log").is_some_and(|l| l.is_object()) => Format::Har,
                _ => Format::JsonLines,
            },
        }
    }
}

impl std::str::FromStr for Format {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "jsonl" => Ok(Format::JsonLines),
            "har" => Ok(Format::Har),
            other => Err(format!("`{other}` is not a format: use `jsonl` or `har`")),
        }
    }
}

/// Problems shown in an error message; the count of the rest follows.
const SHOWN_PROBLEMS: usize = 20;

#[derive(Debug)]
pub enum Error {
    /// The recording could not be read.
    Read {
        path: String,
        source: std::io::Error,
    },
    /// The file as a whole is not a usable recording (not JSON, no `log.entries`, empty).
    File(String),
    /// Lines or entries that are not valid exchanges (all of them, in file order).
    Invalid(Vec<Problem>),
    /// The filter would not start (bad wasm file, refused plugin configuration).
    Start(HostError),
    /// The filter failed (trapped) on an exchange.
    Filter { origin: Origin, source: HostError },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Read { path, source } => write!(f, "cannot read {path}: {source}"),
            Error::File(message) => f.write_str(message),
            Error::Invalid(problems) => {
                let count = problems.len();
                let entries =
                    matches!(problems.first(), Some(p) if matches!(p.origin, Origin::Entry(_)));
                let what = match (entries, count) {
                    (false, 1) => "line",
                    (false, _) => "lines",
                    (true, 1) => "entry",
                    (true, _) => "entries",
                };
                write!(f, "{count} bad {what}, nothing replayed:")?;
                for problem in problems.iter().take(SHOWN_PROBLEMS) {
                    write!(f, "\n  {problem}")?;
                }
                if count > SHOWN_PROBLEMS {
                    write!(f, "\n  … and {} more", count - SHOWN_PROBLEMS)?;
                }
                Ok(())
            }
            Error::Start(source) => write!(f, "the filter did not start: {source}"),
            Error::Filter { origin, source } => write!(f, "{origin}: {source}"),
        }
    }
}

impl std::error::Error for Error {}

/// Reads and checks a recording: all of it, before anything is replayed.
pub fn parse(text: &str, format: Format) -> Result<Recording, Error> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let recording = match format {
        Format::JsonLines => jsonl::parse(text)?,
        Format::Har => har::parse(text)?,
    };
    if recording.exchanges.is_empty() {
        return Err(Error::File(match format {
            Format::JsonLines => "no exchanges: the file has only blank and comment lines".into(),
            Format::Har => "no exchanges: `log.entries` is empty".into(),
        }));
    }
    Ok(recording)
}

/// The file name that stands for standard input (`prompter-host replay -`).
pub const STDIN: &str = "-";

/// Reads a recording file (`-`: standard input); `format` `None` detects it ([`Format::detect`]).
pub fn load(path: &Path, format: Option<Format>) -> Result<Recording, Error> {
    let read = if path == Path::new(STDIN) {
        std::io::read_to_string(std::io::stdin())
    } else {
        std::fs::read_to_string(path)
    };
    let text = read.map_err(|source| Error::Read {
        path: path.display().to_string(),
        source,
    })?;
    parse(&text, format.unwrap_or_else(|| Format::detect(path, &text)))
}

/// A body given as text or as base64 (never both).
fn body(
    text: Option<String>,
    base64: Option<String>,
    text_field: &str,
    base64_field: &str,
) -> Result<Vec<u8>, String> {
    match (text, base64) {
        (Some(_), Some(_)) => Err(format!(
            "both `{text_field}` and `{base64_field}`: give the body once"
        )),
        (Some(text), None) => Ok(text.into_bytes()),
        (None, Some(encoded)) => {
            decode_base64(&encoded).map_err(|e| format!("`{base64_field}`: {e}"))
        }
        (None, None) => Ok(Vec::new()),
    }
}

/// Standard-alphabet base64; padding optional, line breaks allowed.
fn decode_base64(encoded: &str) -> Result<Vec<u8>, String> {
    use base64::engine::{general_purpose, DecodePaddingMode, Engine as _, GeneralPurpose};
    const ENGINE: GeneralPurpose = GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        general_purpose::GeneralPurposeConfig::new()
            .with_decode_padding_mode(DecodePaddingMode::Indifferent),
    );
    let compact: String = encoded
        .chars()
        .filter(|c| !c.is_ascii_whitespace())
        .collect();
    ENGINE
        .decode(compact)
        .map_err(|e| format!("invalid base64 ({e})"))
}

/// Checks the parts every format shares and builds the exchange.
struct Draft {
    origin: Origin,
    method: String,
    path: String,
    authority: Option<String>,
    request_headers: Vec<(String, String)>,
    request_body: Vec<u8>,
    status: Option<u16>,
    response_headers: Vec<(String, String)>,
    response_body: Vec<u8>,
    duration_ms: f64,
    start_nanos: Option<u64>,
}

/// The status a recording gives: `0` is no response.
fn status(value: i64, field: &str) -> Result<Option<u16>, String> {
    match value {
        0 => Ok(None),
        100..=999 => Ok(Some(value as u16)),
        _ => Err(format!(
            "`{field}`: {value} is not an HTTP status (100–999, or 0 for no response)"
        )),
    }
}

fn start_time(text: &str, field: &str) -> Result<u64, String> {
    parse_rfc3339(text).ok_or_else(|| {
        format!("`{field}`: `{text}` is not an RFC 3339 time such as 2026-01-01T00:00:00Z")
    })
}

impl Draft {
    fn build(self, duration_field: &str) -> Result<Exchange, String> {
        let is_token = |s: &str| {
            !s.is_empty()
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
        };
        if !is_token(&self.method) {
            return Err(format!("`method`: `{}` is not an HTTP method", self.method));
        }
        if !(self.path.starts_with('/') || self.path == "*") {
            return Err(format!(
                "`path`: `{}` does not start with `/` (give the path and query, not a URL)",
                self.path
            ));
        }
        let max_ms = u64::MAX as f64 / 1e6;
        if !(self.duration_ms.is_finite() && self.duration_ms >= 0.0 && self.duration_ms < max_ms) {
            return Err(format!(
                "`{duration_field}`: {} is not a duration in milliseconds (≥ 0)",
                self.duration_ms
            ));
        }
        Ok(Exchange {
            origin: self.origin,
            method: self.method,
            path: self.path,
            authority: self.authority,
            request_headers: headers(self.request_headers, "request")?,
            request_body: self.request_body,
            status: self.status,
            response_headers: headers(self.response_headers, "response")?,
            response_body: self.response_body,
            duration_nanos: (self.duration_ms * 1e6).round() as u64,
            start_nanos: self.start_nanos,
        })
    }
}

/// Header pairs with lowercased names; pseudo-headers are the replay's to set.
fn headers(pairs: Vec<(String, String)>, side: &str) -> Result<HeaderMap, String> {
    pairs
        .into_iter()
        .map(|(name, value)| {
            if name.is_empty() || name.starts_with(':') {
                return Err(format!(
                    "{side} header `{name}`: pseudo-headers and empty names are not headers \
                     (method, path and status have their own fields)"
                ));
            }
            Ok((name.to_ascii_lowercase().into_bytes(), value.into_bytes()))
        })
        .collect()
}
