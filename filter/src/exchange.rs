//! One request/response exchange seen from the proxy, turned into metric events.
//!
//! The proxy-wasm glue (or a test) feeds it what passes by: request line, body chunks,
//! status, response body chunks. It keeps no body, only the few top-level JSON fields the
//! metrics need, and only on the routes that need them. A run answered with an event stream
//! is read event by event ([`crate::sse`]) and counted like a JSON one.

use std::ops::Range;

use crate::catalog::Metric;
use crate::config::{Config, FIELD_FINGERPRINT, FIELD_MODEL, FIELD_PROVIDER};
use crate::declared::{Candidates, ResponseKind};
use crate::events::{Event, Series, ValuesKey};
use crate::labels::{self, ModelLabels, OTHER};
use crate::routes::{RouteId, RouteTable, UNMATCHED};
use crate::scanner::{FieldSet, FieldValue, JsonFieldScanner};
use crate::sse::{self, SseFieldScanner};
use crate::tail::JsonBody;

/// What a route means for the metrics beyond the request counter and latency.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Probe,
    Run,
    Health,
    Plain,
}

/// How a response body is read: one JSON document (skipping the middle of a long value, see
/// [`crate::tail`]), or the events of an event stream. Both are boxed, as is the request's
/// scanner: a scanner holds its fields' values inline (over a kilobyte), and an exchange kept
/// them out of the per-request state that every request allocates and the glues move, even
/// the requests whose bodies are never read. One allocation per body read costs less than
/// moving them.
#[derive(Debug, Clone)]
enum ResponseScanner {
    Json(Box<JsonBody>),
    Events(Box<SseFieldScanner>),
}

impl ResponseScanner {
    fn next_read(&self, done: usize, len: usize) -> Option<Range<usize>> {
        match self {
            ResponseScanner::Json(body) => body.next_read(done, len),
            ResponseScanner::Events(_) => (done < len).then_some(done..len),
        }
    }

    fn feed(&mut self, fields: &FieldSet, part: &[u8], span: usize) {
        match self {
            ResponseScanner::Json(body) => body.feed(fields, part, span),
            ResponseScanner::Events(scanner) => scanner.feed(fields, part),
        }
    }

    /// The fields once the body has ended.
    fn settled(&self, fields: &FieldSet) -> ResponseFields<'_> {
        match self {
            ResponseScanner::Json(body) => ResponseFields::Json(body.settled(fields)),
            ResponseScanner::Events(scanner) => ResponseFields::Events(scanner),
        }
    }
}

/// The response's fields at the end of the exchange. It lives on the stack for one `finish`;
/// boxing the scanner would cost an allocation per response.
#[allow(clippy::large_enum_variant)]
enum ResponseFields<'a> {
    Json(std::borrow::Cow<'a, JsonFieldScanner>),
    Events(&'a SseFieldScanner),
}

impl ResponseFields<'_> {
    fn field(&self, index: usize) -> &FieldValue {
        match self {
            ResponseFields::Json(scanner) => scanner.field(index),
            ResponseFields::Events(scanner) => scanner.field(index),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Exchange {
    method: &'static str,
    /// `method`'s index in [`labels::METHODS`] (a part of [`Exchange::values_key`]).
    method_index: u8,
    route: Option<RouteId>,
    /// A route learned from the OpenAPI document, by text: the learned table may be
    /// replaced while the exchange runs.
    learned_route: Option<Box<str>>,
    role: Role,
    started_nanos: u64,
    status: Option<u16>,
    request: Option<Box<JsonFieldScanner>>,
    response: Option<ResponseScanner>,
    /// What declared metrics this exchange may record need; `None` when it can record none.
    declared: Option<Box<DeclaredNeeds>>,
}

/// What an exchange keeps for the declared metrics it may record.
#[derive(Debug, Clone, Default)]
pub(crate) struct DeclaredNeeds {
    pub(crate) candidates: Candidates,
    /// The request headers declared labels read, by index (cut at [`MAX_HEADER_BYTES`]).
    pub(crate) headers: Vec<Option<Box<[u8]>>>,
    pub(crate) response_kind: Option<ResponseKind>,
    /// The response headers were handed over (and `response_kind` read from them).
    pub(crate) response_kind_known: bool,
    pub(crate) response_headers_nanos: Option<u64>,
    pub(crate) first_byte_nanos: Option<u64>,
}

/// Longest request header value kept for a label (labels are cut shorter still).
const MAX_HEADER_BYTES: usize = 128;

impl Exchange {
    /// Starts an exchange from the request's `:method` and `:path`; `now_nanos` is the clock.
    pub fn start(
        config: &Config,
        method: Option<&str>,
        path: Option<&str>,
        now_nanos: u64,
    ) -> Self {
        Self::start_with(config, &RouteTable::default(), method, path, now_nanos)
    }

    /// Like [`start`](Self::start), with routes learned from the OpenAPI document beside the
    /// configured ones: as if appended to `routes`, so a learned route is the label only when
    /// it is more literal than every configured route that matches.
    pub fn start_with(
        config: &Config,
        learned: &RouteTable,
        method: Option<&str>,
        path: Option<&str>,
        now_nanos: u64,
    ) -> Self {
        let method_index = method.map_or(labels::METHODS.len(), labels::method_index);
        let method = labels::METHODS.get(method_index).copied().unwrap_or(OTHER);
        let path = path.unwrap_or_default();
        let configured = config.routes.find_ranked(path);
        let learned_route = learned
            .find_ranked(path)
            .filter(|(_, literals)| configured.is_none_or(|(_, c)| *literals > c))
            .map(|(id, _)| Box::from(learned.template(id)));
        let route = configured
            .filter(|_| learned_route.is_none())
            .map(|(id, _)| id);
        let is = |endpoint: &crate::config::Endpoint| {
            route == Some(endpoint.route) && method == endpoint.method
        };
        let role = if is(&config.probe) {
            Role::Probe
        } else if is(&config.run) {
            Role::Run
        } else if crate::routes::without_query(path) == config.health.path {
            Role::Health
        } else {
            Role::Plain
        };
        let declared = if config.declared.entries.is_empty() {
            None
        } else {
            let route_label = match (&learned_route, route) {
                (Some(learned), _) => learned,
                (None, Some(id)) => config.routes.template(id),
                (None, None) => UNMATCHED,
            };
            let candidates = config.declared.candidates(method, route_label);
            (candidates.entries != 0).then(|| {
                let headers = if candidates.headers {
                    vec![None; config.declared.headers.len()]
                } else {
                    Vec::new()
                };
                Box::new(DeclaredNeeds {
                    candidates,
                    headers,
                    ..DeclaredNeeds::default()
                })
            })
        };
        let scans_request = matches!(role, Role::Probe | Role::Run)
            || declared
                .as_ref()
                .is_some_and(|d| d.candidates.request_fields);
        Exchange {
            method,
            method_index: method_index as u8,
            route,
            learned_route,
            role,
            started_nanos: now_nanos,
            status: None,
            request: scans_request.then(crate::recycle::scanner),
            response: None,
            declared,
        }
    }

    /// True when declared metrics read request headers: the glue then hands each of
    /// `config.declared.headers` to [`request_header`](Self::request_header).
    pub fn wants_request_headers(&self) -> bool {
        self.declared.as_ref().is_some_and(|d| d.candidates.headers)
    }

    /// The value of the request header `config.declared.headers[index]`, if the request has it.
    pub fn request_header(&mut self, index: usize, value: Option<&[u8]>) {
        let slot = self
            .declared
            .as_mut()
            .and_then(|d| d.headers.get_mut(index));
        if let (Some(slot), Some(value)) = (slot, value) {
            *slot = Some(Box::from(value.get(..MAX_HEADER_BYTES).unwrap_or(value)));
        }
    }

    /// True when declared metrics want the time of what arrives next: before the response
    /// headers are handed over, their time; after, the time of the body's first byte, until
    /// it is known. The clock is a host call, asked for only then.
    pub fn wants_response_time(&self) -> bool {
        self.declared.as_ref().is_some_and(|d| {
            if d.response_kind_known {
                d.candidates.first_byte_time && d.first_byte_nanos.is_none()
            } else {
                d.candidates.response_headers_time
            }
        })
    }

    /// The response's headers (`body_bytes` 0) or a body chunk arrived at `now_nanos`.
    pub fn response_time(&mut self, now_nanos: u64, body_bytes: usize) {
        if let Some(d) = self.declared.as_mut() {
            d.response_headers_nanos.get_or_insert(now_nanos);
            if body_bytes > 0 {
                d.first_byte_nanos.get_or_insert(now_nanos);
            }
        }
    }

    /// True when the request body carries fields the metrics need.
    pub fn wants_request_body(&self) -> bool {
        self.request.is_some()
    }

    pub fn request_body(&mut self, config: &Config, chunk: &[u8]) {
        if let Some(scanner) = &mut self.request {
            scanner.feed(&config.fields.request, chunk);
        }
    }

    /// True when the response body carries fields the metrics need (known once the response
    /// headers were handed over): a glue may skip the body's chunks otherwise.
    pub fn wants_response_body(&self) -> bool {
        self.response.is_some()
    }

    /// True when the response's `content-type` matters: a run may answer an event stream, and
    /// declared metrics may ask which kind of body a response has.
    pub fn reads_content_type(&self) -> bool {
        self.role == Role::Run
            || self
                .declared
                .as_ref()
                .is_some_and(|d| d.candidates.content_type)
    }

    /// True once a valid response status is known.
    pub fn has_status(&self) -> bool {
        self.status.is_some()
    }

    /// Records the response status (`:status`, possibly missing or odd) and how the body will
    /// be read: a run answered `text/event-stream` is read as events, else bodies are JSON.
    pub fn response_headers(&mut self, status: Option<&str>, content_type: Option<&str>) {
        self.status = labels::status(status);
        let declared_fields = match self.declared.as_mut() {
            Some(d) => {
                d.response_kind = crate::declared::response_kind(content_type);
                d.response_kind_known = true;
                d.candidates.response_fields
            }
            None => false,
        };
        let reads_body = declared_fields
            || match self.role {
                // The request named both: the response has nothing more to say.
                Role::Probe => !self.request_named_provider_and_model(),
                Role::Plain => false,
                Role::Run | Role::Health => true,
            };
        let streams =
            (self.role == Role::Run || declared_fields) && sse::is_event_stream(content_type);
        self.response = match (reads_body, streams) {
            (_, true) => Some(ResponseScanner::Events(Box::default())),
            (true, false) => Some(ResponseScanner::Json(crate::recycle::json_body())),
            (false, false) => None,
        };
    }

    /// True when the request body gave the provider and the model (values the response's
    /// could not replace: see [`Fields::field`]).
    fn request_named_provider_and_model(&self) -> bool {
        let given = |index| {
            self.request.as_ref().is_some_and(|s| match s.field(index) {
                FieldValue::Str(s) => !s.as_str().is_empty(),
                FieldValue::TooLong => true,
                _ => false,
            })
        };
        given(FIELD_PROVIDER) && given(FIELD_MODEL)
    }

    /// Status from another source (e.g. Envoy's `response.code` when no headers were seen).
    pub fn status_if_unknown(&mut self, status: Option<u16>) {
        if self.status.is_none() {
            self.status = status.filter(|s| labels::STATUS_CODES.contains(s));
        }
    }

    pub fn response_body(&mut self, config: &Config, chunk: &[u8]) {
        self.response_chunk(config, chunk.len(), |range| chunk.get(range));
    }

    /// A `len`-byte response chunk, of which only the parts the exchange needs are copied out
    /// through `read` (a range of the chunk → its bytes): none on routes that need no body,
    /// the whole chunk in steps, but only its end while a long JSON value nobody asked for is
    /// skipped (see [`crate::tail`]).
    pub fn response_chunk<B: AsRef<[u8]>>(
        &mut self,
        config: &Config,
        len: usize,
        mut read: impl FnMut(Range<usize>) -> Option<B>,
    ) {
        let fields = &config.fields.response;
        let Some(scanner) = &mut self.response else {
            return;
        };
        let mut done = 0;
        while let Some(range) = scanner.next_read(done, len) {
            // The bytes between the previous read and this one are skipped, unread.
            let span = range.end - done;
            done = range.end;
            let part = read(range);
            scanner.feed(fields, part.as_ref().map_or(&[], AsRef::as_ref), span);
        }
    }

    /// Ends the exchange: every event it produces goes to `emit`.
    pub fn finish(
        &self,
        config: &Config,
        models: &mut ModelLabels,
        now_nanos: u64,
        emit: &mut impl FnMut(Event<'_>),
    ) {
        let nanos = now_nanos.saturating_sub(self.started_nanos);
        let fields = self.settled_fields(config);
        let route = match (&self.learned_route, self.route) {
            (Some(learned), _) => learned,
            (None, Some(id)) => config.routes.template(id),
            (None, None) => UNMATCHED,
        };
        let digits = self.status.map(labels::status_digits);
        let status = digits
            .as_ref()
            .and_then(|d| std::str::from_utf8(d).ok())
            .unwrap_or(labels::NO_STATUS);
        let (service, env) = (config.service.as_str(), config.env.as_str());
        let class = self.status.map(|s| s / 100);
        // Every series below but the provider's and model's is determined by this key.
        let key = self.values_key();

        emit(Event::Count(
            Series::new(
                Metric::RequestsTotal,
                &[service, env, self.method, route, status],
            )
            .with_key(key),
        ));
        emit(Event::Observe(
            Series::new(Metric::RequestSeconds, &[service, env, self.method, route]).with_key(key),
            nanos,
        ));

        match self.role {
            // A 4xx never reached the provider. Without any status the client hung up before
            // the answer (an upstream that could not answer gets Envoy's own 503 or 504): what
            // the provider did is unknown, so it is no attempt, and no failure.
            Role::Probe if matches!(class, Some(2) | Some(5)) => {
                let provider = fields.provider(config);
                let model = fields.model(config, models, provider);
                let values = [service, env, provider, model.as_str()];
                emit(Event::Count(Series::new(Metric::ProbeAttempts, &values)));
                if class != Some(2) {
                    emit(Event::Count(Series::new(Metric::ProbeFailures, &values)));
                }
                emit(Event::Observe(
                    Series::new(Metric::EnsureVersionSeconds, &[service, env, provider]),
                    nanos,
                ));
            }
            Role::Run if class == Some(2) => {
                emit(Event::Count(
                    Series::new(Metric::ResultsInsert, &[service, env]).with_key(key),
                ));
                let provider =
                    ModelLabels::provider(&config.providers, fields.string_field(FIELD_PROVIDER));
                let fingerprint = fields.response_field(FIELD_FINGERPRINT);
                let has_fingerprint = match fingerprint {
                    FieldValue::Str(s) => !s.as_str().is_empty(),
                    FieldValue::TooLong => true,
                    _ => false,
                };
                if has_fingerprint && provider == config.fingerprint_provider {
                    emit(Event::Count(
                        Series::new(Metric::FingerprintPresent, &[service, env]).with_key(key),
                    ));
                }
            }
            Role::Health => {
                if let Some(up) = fields.response_field(config.fields.redis).as_bool() {
                    emit(Event::Set(
                        Series::new(Metric::RedisUp, &[service, env]).with_key(key),
                        u64::from(up),
                    ));
                }
            }
            _ => {}
        }

        if let (Some(409), Some(id)) = (self.status, self.route) {
            if let Some(table) = config.unique_table(self.method, id) {
                emit(Event::Count(
                    Series::new(Metric::UniqueViolations, &[service, env, table]).with_key(key),
                ));
            }
        }
        if self.status == Some(429) {
            emit(Event::Count(
                Series::new(Metric::RateLimitHits, &[service, env, route]).with_key(key),
            ));
        }

        if let Some(declared) = &self.declared {
            let exchange = crate::declared::record::Ended {
                method: self.method,
                route,
                status,
                status_code: self.status,
                started_nanos: self.started_nanos,
                ended_nanos: now_nanos,
                needs: declared,
                fields: &fields,
            };
            exchange.record(config, models, emit);
        }
    }

    /// The exchange's method, configured route and status as one number: with the metric and
    /// the configuration, it determines the values of every series the exchange records but
    /// the probes' (whose provider and model come from the bodies). A learned route is text
    /// (its table may be replaced at any time): no key.
    fn values_key(&self) -> Option<ValuesKey> {
        let route = match (&self.learned_route, self.route) {
            (Some(_), _) => return None,
            (None, Some(id)) => id.0 as u64 + 1,
            (None, None) => 0,
        };
        let status = u64::from(self.status.unwrap_or(0));
        Some(ValuesKey(
            route << 24 | u64::from(self.method_index) << 16 | status,
        ))
    }

    fn settled_fields<'a>(&'a self, config: &Config) -> Fields<'a> {
        Fields {
            request: self.request.as_deref(),
            response: self
                .response
                .as_ref()
                .map(|r| r.settled(&config.fields.response)),
        }
    }
}

impl Drop for Exchange {
    /// The scanners go back to this thread's lists for the next exchanges.
    fn drop(&mut self) {
        if let Some(scanner) = self.request.take() {
            crate::recycle::give_back_scanner(scanner);
        }
        if let Some(ResponseScanner::Json(body)) = self.response.take() {
            crate::recycle::give_back_json_body(body);
        }
    }
}

/// The body fields of an ended exchange.
pub(crate) struct Fields<'a> {
    request: Option<&'a JsonFieldScanner>,
    response: Option<ResponseFields<'a>>,
}

impl Fields<'_> {
    pub(crate) fn response_field(&self, index: usize) -> &FieldValue {
        const ABSENT: FieldValue = FieldValue::Absent;
        self.response.as_ref().map_or(&ABSENT, |s| s.field(index))
    }

    pub(crate) fn request_field(&self, index: usize) -> &FieldValue {
        const ABSENT: FieldValue = FieldValue::Absent;
        self.request.map_or(&ABSENT, |s| s.field(index))
    }

    /// The provider label as the probe metrics derive it: the request's, else the
    /// response's, in `providers`; an over-long one is `other`.
    pub(crate) fn provider<'c>(&self, config: &'c Config) -> &'c str {
        match self.field(FIELD_PROVIDER) {
            Some(FieldValue::TooLong) => OTHER,
            value => ModelLabels::provider(&config.providers, value.and_then(FieldValue::as_str)),
        }
    }

    /// The model label as the probe metrics derive it, within `provider`'s budget.
    pub(crate) fn model(
        &self,
        config: &Config,
        models: &mut ModelLabels,
        provider: &str,
    ) -> String {
        match self.field(FIELD_MODEL) {
            Some(FieldValue::TooLong) => OTHER.to_string(),
            value => models.model(&config.models, provider, value.and_then(FieldValue::as_str)),
        }
    }

    /// A field from the request body, else from the response body (`None` when neither has
    /// it). An empty string is no value: it gives way to the other body.
    fn field(&self, index: usize) -> Option<&FieldValue> {
        let from_request = self.request.map(|s| s.field(index));
        [from_request, Some(self.response_field(index))]
            .into_iter()
            .flatten()
            .find(|v| match v {
                FieldValue::Str(s) => !s.as_str().is_empty(),
                FieldValue::TooLong => true,
                _ => false,
            })
    }

    fn string_field(&self, index: usize) -> Option<&str> {
        self.field(index).and_then(FieldValue::as_str)
    }
}

/// The `prompter_redis_up` value from a polled health check: the body's `redis` field, and
/// 0 when the check got no answer or an answer without it.
pub fn health_poll_value(config: &Config, body: Option<&[u8]>) -> u64 {
    let Some(body) = body else { return 0 };
    let mut scanner = JsonFieldScanner::new();
    scanner.feed(&config.fields.response, body);
    u64::from(scanner.field(config.fields.redis).as_bool() == Some(true))
}

/// Emits the `prompter_redis_up` gauge for a polled health check.
pub fn emit_redis_up(config: &Config, value: u64, emit: &mut impl FnMut(Event<'_>)) {
    let values = [config.service.as_str(), config.env.as_str()];
    emit(Event::Set(Series::new(Metric::RedisUp, &values), value));
}

#[cfg(test)]
#[path = "exchange_tests.rs"]
mod tests;
