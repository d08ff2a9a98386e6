//! Metrics declared in the plugin configuration (`metrics`): counters and histograms beyond the
//! catalog, each recorded when an exchange matches its method, route, status and response
//! kind, with labels and a value taken from what the exchange already reads (its route and
//! status, request headers, body fields, its timings).
//!
//! The configuration is read and validated once ([`schema`]) into [`Declared`]; an exchange
//! picks the entries its method and route can match when it starts ([`Candidates`]), so a
//! request that matches none reads nothing more and records nothing more.

pub(crate) mod record;
#[cfg(test)]
mod record_tests;
mod schema;
#[cfg(test)]
mod schema_tests;

use crate::catalog::MetricKind;
use crate::config::Buckets;
use crate::labels::{self, OTHER};
use crate::scanner::FieldValue;

pub use schema::HOST_PREFIX;
pub(crate) use schema::{parse, ENTRY, TOP_LEVEL_KEY};

/// Most entries in `metrics` (an exchange keeps its candidates in a 64-bit mask).
pub const MAX_ENTRIES: usize = 64;
/// Most labels an entry declares, `service` and `env` not counted.
pub const MAX_LABELS: usize = 8;

/// A metric family the configuration declares: one per name, whatever the number of entries
/// recording into it.
#[derive(Debug, Clone, PartialEq)]
pub struct DeclaredMetric {
    pub name: String,
    pub kind: MetricKind,
    pub help: String,
    /// Label keys, `service` and `env` first, in the order of the series' values.
    pub labels: Vec<Box<str>>,
    /// Bounds of a histogram, in seconds or in the value's own unit (scaled by 10⁹ as
    /// nanoseconds are); unused by a counter.
    pub buckets: Buckets,
}

/// Everything `metrics` declares.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Declared {
    pub metrics: Vec<DeclaredMetric>,
    pub entries: Vec<Entry>,
    /// Request headers some entry reads (lower case), by index.
    pub headers: Vec<String>,
}

/// One entry of `metrics`: when it records, into which metric, with which labels and value.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// Index into [`Declared::metrics`].
    pub metric: usize,
    pub when: When,
    /// In the metric's label order, after `service` and `env`.
    pub labels: Vec<LabelRule>,
    pub value: ValueSource,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct When {
    /// Method labels; empty: any.
    pub methods: Vec<&'static str>,
    /// Route labels (templates, or `unmatched`); empty: any.
    pub routes: Vec<String>,
    /// Empty: any status, none included.
    pub statuses: Vec<StatusMatch>,
    pub response: ResponseKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusMatch {
    Code(u16),
    /// `2xx`: the hundreds digit.
    Class(u16),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ResponseKind {
    #[default]
    Any,
    /// `application/json` or a `+json` media type.
    Json,
    /// `text/event-stream`.
    EventStream,
}

/// Where a body field is looked for, in order: the first body that has it gives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Body {
    /// Index in the request's field set.
    Request(usize),
    /// Index in the response's field set (a JSON body, or the events of a stream).
    Response(usize),
}

#[derive(Debug, Clone, PartialEq)]
pub enum LabelSource {
    Constant(String),
    Method,
    Route,
    Status,
    /// As the probe metrics derive it: the request's, else the response's, in `providers`.
    Provider,
    /// As the probe metrics derive it, within the provider's model budget.
    Model,
    /// Index into [`Declared::headers`].
    Header(usize),
    Field(Vec<Body>),
}

/// How a label's value from traffic is kept bounded.
#[derive(Debug, Clone, PartialEq)]
pub struct LabelBounds {
    pub max_length: usize,
    /// Values kept as they are; any other is `other`.
    pub allow: Option<Vec<String>>,
    /// Distinct values kept per VM; later ones are `other`.
    pub max_values: Option<usize>,
    /// The value when the source has none.
    pub absent: String,
    /// The key of this label's budget of distinct values (one per metric and label).
    pub budget: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct LabelRule {
    pub source: LabelSource,
    pub bounds: LabelBounds,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Duration {
    /// From the request's start to the end of the exchange.
    Exchange,
    /// To the response headers.
    ResponseHeaders,
    /// To the first byte of the response body.
    FirstByte,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ValueSource {
    /// One per matching exchange (counters only).
    One,
    /// A number from a body field.
    Field(Vec<Body>),
    /// Seconds.
    Duration(Duration),
}

/// What the entries an exchange may match need from it, decided when it starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Candidates {
    /// Bit `i`: entry `i` matches the exchange's method and route.
    pub entries: u64,
    pub request_fields: bool,
    pub response_fields: bool,
    pub content_type: bool,
    pub response_headers_time: bool,
    pub first_byte_time: bool,
    pub headers: bool,
}

impl Declared {
    /// The entries whose method and route match, and what they need read.
    pub fn candidates(&self, method: &str, route: &str) -> Candidates {
        let mut found = Candidates::default();
        for (i, entry) in self.entries.iter().enumerate() {
            let when = &entry.when;
            if !(when.methods.is_empty() || when.methods.contains(&method))
                || !(when.routes.is_empty() || when.routes.iter().any(|r| r == route))
            {
                continue;
            }
            found.entries |= 1 << i;
            let mut bodies = entry.value.bodies().iter();
            let mut label_bodies = entry.labels.iter().flat_map(|l| l.source.bodies());
            for body in bodies.by_ref().chain(label_bodies.by_ref()) {
                match body {
                    Body::Request(_) => found.request_fields = true,
                    Body::Response(_) => found.response_fields = true,
                }
            }
            let derives_model = entry
                .labels
                .iter()
                .any(|l| matches!(l.source, LabelSource::Provider | LabelSource::Model));
            if derives_model {
                found.request_fields = true;
                found.response_fields = true;
            }
            found.content_type |= when.response != ResponseKind::Any || found.response_fields;
            found.response_headers_time |=
                entry.value == ValueSource::Duration(Duration::ResponseHeaders);
            found.first_byte_time |= entry.value == ValueSource::Duration(Duration::FirstByte);
            found.headers |= entry
                .labels
                .iter()
                .any(|l| matches!(l.source, LabelSource::Header(_)));
        }
        found
    }
}

impl ValueSource {
    fn bodies(&self) -> &[Body] {
        match self {
            ValueSource::Field(bodies) => bodies,
            _ => &[],
        }
    }
}

impl LabelSource {
    fn bodies(&self) -> &[Body] {
        match self {
            LabelSource::Field(bodies) => bodies,
            _ => &[],
        }
    }
}

impl When {
    /// True when the exchange's status and response kind match (method and route were
    /// matched when it started).
    pub fn matches_response(&self, status: Option<u16>, response: Option<ResponseKind>) -> bool {
        let status_matches = self.statuses.is_empty()
            || status.is_some_and(|code| {
                self.statuses.iter().any(|m| match *m {
                    StatusMatch::Code(c) => c == code,
                    StatusMatch::Class(class) => code / 100 == class,
                })
            });
        let kind_matches = self.response == ResponseKind::Any || response == Some(self.response);
        status_matches && kind_matches
    }
}

/// The response kind a `content-type` names.
pub fn response_kind(content_type: Option<&str>) -> Option<ResponseKind> {
    let media = content_type?.split(';').next()?.trim();
    if crate::sse::is_event_stream(Some(media)) {
        Some(ResponseKind::EventStream)
    } else if media.eq_ignore_ascii_case("application/json")
        || media
            .get(media.len().saturating_sub(5)..)
            .is_some_and(|suffix| suffix.eq_ignore_ascii_case("+json"))
    {
        Some(ResponseKind::Json)
    } else {
        None
    }
}

/// A body field's value as label text, cut at `max_length`: a string sanitized, a number as
/// JSON writes it, a boolean as `true`/`false`; `None` for null, objects, arrays and absence. An over-long
/// string is `other`, as an over-long model id is.
pub fn field_label(value: &FieldValue, max_length: usize) -> Option<String> {
    match value {
        FieldValue::Str(s) if !s.as_str().is_empty() => {
            Some(labels::sanitize(s.as_str().as_bytes(), max_length))
        }
        FieldValue::TooLong => Some(OTHER.to_string()),
        FieldValue::Number(n) => Some(labels::sanitize(number_text(*n).as_bytes(), max_length)),
        FieldValue::Bool(b) => Some(labels::sanitize(b.to_string().as_bytes(), max_length)),
        _ => None,
    }
}

/// A number as a label: whole numbers without a fraction (`12`, not `12.0`), others with at
/// most 6 decimals (`0.25`). Written by hand: float formatting would add a fifth to the size
/// of the Wasm module.
fn number_text(n: f64) -> String {
    if !n.is_finite() || n.abs() >= 1e15 {
        return OTHER.to_string();
    }
    let micros = (n.abs() * 1e6).round() as u64;
    let (whole, fraction) = (micros / 1_000_000, micros % 1_000_000);
    let sign = if n < 0.0 && micros > 0 { "-" } else { "" };
    if fraction == 0 {
        return format!("{sign}{whole}");
    }
    let digits = format!("{fraction:06}");
    format!("{sign}{whole}.{}", digits.trim_end_matches('0'))
}

/// A counter's increment from a body number: whole and not negative, rounded to the nearest
/// whole number; `None` for anything else.
pub fn counter_delta(n: f64) -> Option<u64> {
    (0.0..1.8e19).contains(&n).then(|| n.round() as u64)
}

/// A histogram observation from a body number, scaled as the bounds are (×10⁹, the
/// nanoseconds of a duration): `None` when negative or beyond what the scale holds.
pub fn observation(n: f64) -> Option<u64> {
    let scaled = n * 1e9;
    (0.0..1.8e19)
        .contains(&scaled)
        .then(|| scaled.round() as u64)
}
