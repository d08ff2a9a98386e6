//! Whole exchanges driven with arbitrary methods, paths, request headers, statuses, content
//! types, bodies, chunking and timings, the way the proxy-wasm glue drives them, under the
//! default configuration, a tight one, and two that declare metrics (the example
//! `envoy/examples/custom-metrics.json`, and `seeds/config/declared-everything.json`: every
//! kind of label, value and condition). Never panics, and:
//! - every event carries one value per label key of its metric, each a bounded value a stat
//!   name can carry (`labels::is_clean`: no `;`, `=`, newline, never empty), from the set that
//!   key allows;
//! - a declared series comes from an entry the exchange matches (method, route, status,
//!   response kind), with the values its label rules allow and the value its source gives
//!   (the duration exactly); an entry that counts exchanges counts every one it matches;
//! - budgets of distinct values hold: models per provider, `max_values` of declared labels;
//! - recorded stat names decode back to their labels, through Envoy's tags (the declared
//!   keys' too, as `envoy-config` writes them) and through our decoder.
#![no_main]

use std::collections::{HashMap, HashSet};
use std::sync::OnceLock;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use prompter_filter::catalog::{label, Metric, MetricKind};
use prompter_filter::config::Config;
use prompter_filter::declared::{self, Duration, Entry, LabelRule, LabelSource, ValueSource};
use prompter_filter::events::{Event, MetricId, Recorder, Stat, StatSink};
use prompter_filter::exchange::Exchange;
use prompter_filter::labels::{self, is_clean, ModelLabels, OTHER, UNKNOWN};
use prompter_filter::openapi;
use prompter_filter::routes::{RouteTable, UNMATCHED};
use prompter_filter_fuzz::{assert_round_trip_with, chunks, Tags};
use serde_json::{json, Map, Value};

/// A configuration and the `stats_tags` Envoy would have for it.
struct Setup {
    config: Config,
    tags: Tags,
}

fn setups() -> &'static [Setup] {
    static SETUPS: OnceLock<Vec<Setup>> = OnceLock::new();
    SETUPS.get_or_init(|| {
        let tight: &[u8] = br#"{"models":{"max_length":4,"max_per_provider":2},
            "providers":["openai","x"],"fingerprint_provider":"x",
            "routes":["/api/prompt-templates","/api/prompt-templates/{template_id}",
              "/api/prompt-templates/{template_id}/ensure-version",
              "/api/prompt-templates/{template_id}/run","/healthz","/{a}/{b}","/"]}"#;
        let sources: [(&str, &[u8]); 4] = [
            ("default", b""),
            ("tight", tight),
            (
                "custom-metrics",
                include_bytes!("../../envoy/examples/custom-metrics.json"),
            ),
            (
                "declared-everything",
                include_bytes!("../seeds/config/declared-everything.json"),
            ),
        ];
        sources
            .into_iter()
            .map(|(name, json)| {
                let config =
                    Config::parse(json, |_| None).unwrap_or_else(|e| panic!("{name}: {e}"));
                let tags = Tags::with_declared(&config.declared_label_keys());
                Setup { config, tags }
            })
            .collect()
    })
}

#[derive(Arbitrary, Debug)]
enum Path {
    Raw(String),
    /// One of the configured templates with its parameters filled in.
    Route {
        index: u8,
        param: String,
        query: Option<String>,
    },
}

/// A JSON value for a field declared metrics read: as a label, as a number to add or observe.
#[derive(Arbitrary, Debug)]
enum Scalar {
    Str(String),
    Int(i64),
    Whole(u64),
    Float(f64),
    Bool(bool),
    Null,
    Object,
}

impl Scalar {
    fn json(self) -> Value {
        match self {
            Scalar::Str(s) => s.into(),
            Scalar::Int(n) => n.into(),
            Scalar::Whole(n) => n.into(),
            // Not finite: serde_json writes null.
            Scalar::Float(n) => n.into(),
            Scalar::Bool(b) => b.into(),
            Scalar::Null => Value::Null,
            Scalar::Object => json!({ "nested": 1 }),
        }
    }
}

#[derive(Arbitrary, Debug)]
enum Body {
    Raw(Vec<u8>),
    /// A JSON object with the fields the filter reads, the declared ones included.
    Fields {
        provider: Option<String>,
        model: Option<String>,
        fingerprint: Option<String>,
        redis: Option<bool>,
        tier: Option<Scalar>,
        /// `usage.prompt_tokens` and `usage.completion_tokens`, OpenAI's way.
        usage: Option<(Option<Scalar>, Option<Scalar>)>,
        /// `meta.score`.
        score: Option<Scalar>,
        /// Sent as server-sent events, one top-level field per event, when true.
        as_events: bool,
    },
}

/// A method Envoy could send: one the labels know, or any text.
#[derive(Arbitrary, Debug)]
enum Method {
    Known(u8),
    Raw(String),
}

/// A `:status`: a number (valid or not), or any text.
#[derive(Arbitrary, Debug)]
enum Status {
    Code(u16),
    Raw(String),
}

/// A response's `content-type`: the kinds declared metrics tell apart, or any text.
#[derive(Arbitrary, Debug)]
enum ContentType {
    Json,
    EventStream,
    Raw(String),
}

#[derive(Arbitrary, Debug)]
struct Call {
    method: Option<Method>,
    path: Option<Path>,
    /// The request headers declared labels read, by index in `config.declared.headers`.
    headers: Vec<Option<Vec<u8>>>,
    status: Option<Status>,
    fallback_status: Option<u16>,
    content_type: Option<ContentType>,
    request: Body,
    response: Body,
    cuts: Vec<u16>,
    /// When the response headers arrive, then its first chunk, then the end (from the
    /// request's start at 0).
    to_headers: u32,
    to_body: u32,
    to_end: u64,
}

#[derive(Arbitrary, Debug)]
struct Input {
    config: u8,
    learned: Vec<String>,
    calls: Vec<Call>,
}

impl Method {
    fn text(self) -> String {
        match self {
            Method::Known(i) => labels::METHODS[usize::from(i) % labels::METHODS.len()].into(),
            Method::Raw(raw) => raw,
        }
    }
}

impl Status {
    fn text(self) -> String {
        match self {
            Status::Code(code) => code.to_string(),
            Status::Raw(raw) => raw,
        }
    }
}

impl ContentType {
    fn text(self) -> String {
        match self {
            ContentType::Json => "application/json; charset=utf-8".into(),
            ContentType::EventStream => "text/event-stream".into(),
            ContentType::Raw(raw) => raw,
        }
    }
}

fn path(config: &Config, path: Path) -> String {
    match path {
        Path::Raw(raw) => raw,
        Path::Route {
            index,
            param,
            query,
        } => {
            let templates: Vec<&str> = config.routes.templates().collect();
            let template = templates[usize::from(index) % templates.len()];
            let filled: Vec<&str> = template
                .split('/')
                .map(|s| if s.starts_with('{') { &param } else { s })
                .collect();
            let mut out = filled.join("/");
            if let Some(q) = query {
                out = format!("{out}?{q}");
            }
            out
        }
    }
}

fn body(body: Body) -> Vec<u8> {
    match body {
        Body::Raw(raw) => raw,
        Body::Fields {
            provider,
            model,
            fingerprint,
            redis,
            tier,
            usage,
            score,
            as_events,
        } => {
            let mut fields = Map::new();
            let strings = [
                ("provider", provider),
                ("model_id", model),
                ("system_fingerprint", fingerprint),
            ];
            for (key, value) in strings {
                if let Some(v) = value {
                    fields.insert(key.into(), v.into());
                }
            }
            if let Some(r) = redis {
                fields.insert("redis".into(), r.into());
            }
            if let Some(t) = tier {
                fields.insert("tier".into(), t.json());
            }
            if let Some(s) = score {
                fields.insert("meta".into(), json!({ "score": s.json() }));
            }
            // Last, as OpenAI puts it.
            if let Some((prompt, completion)) = usage {
                let mut counts = Map::new();
                let tokens = [("prompt_tokens", prompt), ("completion_tokens", completion)];
                for (key, value) in tokens {
                    if let Some(v) = value {
                        counts.insert(key.into(), v.json());
                    }
                }
                fields.insert("usage".into(), counts.into());
            }
            if !as_events {
                return serde_json::to_vec(&fields).expect("json");
            }
            let mut out = Vec::new();
            for (key, value) in fields {
                let event = json!({ key: value });
                out.extend_from_slice(format!("data: {event}\n\n").as_bytes());
            }
            out.extend_from_slice(b"data: [DONE]\n\n");
            out
        }
    }
}

/// Checks a catalog metric's value against what its label key allows.
fn check_value(config: &Config, learned: &RouteTable, key: &str, value: &str) {
    assert!(is_clean(value), "{key}={value:?}");
    let allowed = match key {
        label::SERVICE => value == config.service,
        label::ENV => value == config.env,
        label::METHOD | label::TABLE => value.len() <= 128,
        label::ROUTE | label::ENDPOINT => {
            value == UNMATCHED
                || config.routes.id_of(value).is_some()
                || learned.id_of(value).is_some()
        }
        label::STATUS => value == labels::NO_STATUS || labels::status(Some(value)).is_some(),
        label::PROVIDER => {
            value == OTHER || value == UNKNOWN || config.providers.iter().any(|p| p == value)
        }
        label::MODEL => value.len() <= config.models.max_length,
        _ => false,
    };
    assert!(allowed, "{key}={value:?}");
}

/// A declared event, kept until the exchange has ended.
#[derive(Debug)]
struct DeclaredEvent {
    metric: usize,
    values: Vec<String>,
    /// `Count`, `Add` or `Observe`.
    kind: &'static str,
    value: u64,
}

/// What the exchange was, as the oracle sees it: its built-in labels and what it was sent.
struct Seen<'a> {
    method: &'a str,
    route: &'a str,
    status: &'a str,
    response_kind: Option<declared::ResponseKind>,
    /// Raw request headers by index in `config.declared.headers`.
    headers: &'a [Option<Vec<u8>>],
    headers_at: u64,
    first_byte_at: Option<u64>,
    end_at: u64,
}

impl Seen<'_> {
    fn status_code(&self) -> Option<u16> {
        (self.status != labels::NO_STATUS).then(|| self.status.parse().expect("status digits"))
    }

    /// The entry matches the exchange: method, route, status, response kind.
    fn matches(&self, entry: &Entry) -> bool {
        let when = &entry.when;
        (when.methods.is_empty() || when.methods.contains(&self.method))
            && (when.routes.is_empty() || when.routes.iter().any(|r| r == self.route))
            && when.matches_response(self.status_code(), self.response_kind)
    }

    /// The event is what `entry` records: its kind and value, and a value each label rule allows.
    fn recorded_by(&self, config: &Config, entry: &Entry, event: &DeclaredEvent) -> bool {
        let kind = config.declared.metrics[entry.metric].kind;
        let value_fits = match (&entry.value, kind) {
            (ValueSource::One, _) => event.kind == "Count",
            (ValueSource::Field(_), MetricKind::Histogram) => event.kind == "Observe",
            (ValueSource::Field(_), _) => event.kind == "Add",
            (ValueSource::Duration(d), _) => {
                let at = match d {
                    Duration::Exchange => Some(self.end_at),
                    Duration::ResponseHeaders => Some(self.headers_at),
                    Duration::FirstByte => self.first_byte_at,
                };
                event.kind == "Observe" && at == Some(event.value)
            }
        };
        let (fixed, rest) = event.values.split_at(2);
        value_fits
            && fixed == [config.service.as_str(), config.env.as_str()]
            && rest.len() == entry.labels.len()
            && entry
                .labels
                .iter()
                .zip(rest)
                .all(|(rule, value)| self.allows(config, rule, value))
    }

    fn allows(&self, config: &Config, rule: &LabelRule, value: &str) -> bool {
        let bounds = &rule.bounds;
        let bounded = |value: &str| {
            value == bounds.absent
                || value == OTHER
                || (value.len() <= bounds.max_length
                    && bounds
                        .allow
                        .as_ref()
                        .is_none_or(|a| a.iter().any(|v| v == value)))
        };
        match &rule.source {
            LabelSource::Constant(c) => value == c,
            LabelSource::Method => value == self.method,
            LabelSource::Route => value == self.route,
            LabelSource::Status => value == self.status,
            LabelSource::Provider => {
                value == OTHER || value == UNKNOWN || config.providers.iter().any(|p| p == value)
            }
            LabelSource::Model => value.len() <= config.models.max_length,
            LabelSource::Header(i) => {
                let raw = self.headers.get(*i).and_then(Option::as_deref);
                match raw.filter(|r| !r.is_empty()) {
                    None => value == bounds.absent,
                    Some(raw) => {
                        bounded(value)
                            && (value == OTHER || value == labels::sanitize(raw, bounds.max_length))
                    }
                }
            }
            LabelSource::Field(_) => bounded(value),
        }
    }
}

/// A sink that reads back every stat name it is asked to define (each distinct name once:
/// the regexes are the slow part of an execution). Updates go nowhere.
struct DecodingSink<'a> {
    tags: &'a Tags,
    checked: &'a mut HashSet<String>,
}

impl DecodingSink<'_> {
    fn check(&mut self, stat: &Stat<'_>) -> Option<u32> {
        let name = stat.encode_into(&mut String::new()).to_string();
        if !self.checked.contains(&name) {
            if self.checked.len() > 100_000 {
                self.checked.clear();
            }
            let series = format!("{}{}", stat.name, stat.suffix);
            assert_round_trip_with(self.tags, &name, &series, stat.labels);
            self.checked.insert(name);
        }
        Some(0)
    }
}

impl StatSink for DecodingSink<'_> {
    fn counter(&mut self, stat: &Stat<'_>) -> Option<u32> {
        self.check(stat)
    }
    fn gauge(&mut self, stat: &Stat<'_>) -> Option<u32> {
        self.check(stat)
    }
    fn histogram(&mut self, stat: &Stat<'_>) -> Option<u32> {
        self.check(stat)
    }
    fn add(&mut self, _counter: u32, _delta: u64) {}
    fn set(&mut self, _gauge: u32, _value: u64) {}
    fn observe(&mut self, _histogram: u32, _nanos: u64) {}
}

/// Stat names already read back, per configuration, kept across executions.
static CHECKED: std::sync::Mutex<Vec<HashSet<String>>> = std::sync::Mutex::new(Vec::new());

fuzz_target!(|input: Input| {
    let setups = setups();
    let which = usize::from(input.config) % setups.len();
    let Setup { config, tags } = &setups[which];
    let learned = openapi::learn(&input.learned, &config.routes).table;
    let mut models = ModelLabels::default();
    let mut models_seen: HashMap<String, HashSet<String>> = HashMap::new();
    // Distinct values of declared labels bounded by `max_values`, by metric and position.
    let mut budgets: HashMap<(usize, usize), HashSet<String>> = HashMap::new();
    let mut recorder = Recorder::default();
    let mut guard = CHECKED.lock().unwrap_or_else(|e| e.into_inner());
    if guard.len() < setups.len() {
        guard.resize_with(setups.len(), HashSet::new);
    }
    let checked = &mut guard[which];
    for call in input.calls {
        // The glue's order of calls, and of its clock.
        let path = call.path.map(|p| path(config, p));
        let method = call.method.map(Method::text);
        let mut exchange =
            Exchange::start_with(config, &learned, method.as_deref(), path.as_deref(), 0);
        if exchange.wants_request_headers() {
            for index in 0..config.declared.headers.len() {
                let value = call.headers.get(index).and_then(Option::as_deref);
                exchange.request_header(index, value);
            }
        }
        let request = body(call.request);
        if exchange.wants_request_body() {
            for chunk in chunks(&request, &call.cuts) {
                exchange.request_body(config, chunk);
            }
        }
        let headers_at = u64::from(call.to_headers);
        let content_type = call.content_type.map(ContentType::text);
        let read_content_type = content_type
            .as_deref()
            .filter(|_| exchange.reads_content_type());
        let status = call.status.map(Status::text);
        // As the glues do: the headers' time is asked for before they are handed over.
        let headers_time = exchange.wants_response_time();
        exchange.response_headers(status.as_deref(), read_content_type);
        if headers_time {
            exchange.response_time(headers_at, 0);
        }
        exchange.status_if_unknown(call.fallback_status);
        let response = body(call.response);
        let mut at = headers_at + u64::from(call.to_body);
        let mut first_byte_at = None;
        for chunk in chunks(&response, &call.cuts) {
            if !chunk.is_empty() {
                first_byte_at.get_or_insert(at);
            }
            if exchange.wants_response_time() {
                exchange.response_time(at, chunk.len());
            }
            exchange.response_body(config, chunk);
            at += 1;
        }
        let end_at = at.saturating_add(call.to_end);

        let mut built_in: Option<[String; 3]> = None;
        let mut declared_events = Vec::new();
        exchange.finish(config, &mut models, end_at, &mut |event: Event<'_>| {
            let (kind, series, value) = match event {
                Event::Count(s) => ("Count", s, 1),
                Event::Add(s, v) => ("Add", s, v),
                Event::Observe(s, v) => ("Observe", s, v),
                Event::Set(s, v) => ("Set", s, v),
            };
            let keys = config.shape(series.metric).labels;
            assert_eq!(keys.len(), series.values.len(), "{:?}", series.metric);
            match series.metric {
                MetricId::Catalog(metric) => {
                    for (key, value) in keys.iter().zip(series.values) {
                        check_value(config, &learned, key, value);
                    }
                    if metric == Metric::ProbeAttempts {
                        models_seen
                            .entry(series.values[2].to_string())
                            .or_default()
                            .insert(series.values[3].to_string());
                    }
                    if metric == Metric::RequestsTotal {
                        let v = series.values;
                        built_in = Some([v[2].to_string(), v[3].to_string(), v[4].to_string()]);
                    }
                }
                MetricId::Declared(metric) => {
                    for value in series.values {
                        assert!(is_clean(value) && value.len() <= 128, "{value:?}");
                    }
                    declared_events.push(DeclaredEvent {
                        metric,
                        values: series.values.iter().map(|v| v.to_string()).collect(),
                        kind,
                        value,
                    });
                }
            }
            recorder.record(
                config,
                event,
                &mut DecodingSink {
                    tags,
                    checked: &mut *checked,
                },
            );
        });

        let [method, route, status] = built_in.expect("every exchange counts a request");
        let seen = Seen {
            method: &method,
            route: &route,
            status: &status,
            response_kind: declared::response_kind(content_type.as_deref()),
            headers: &call.headers,
            headers_at,
            first_byte_at,
            end_at,
        };
        let entries = &config.declared.entries;
        let matching: Vec<&Entry> = entries.iter().filter(|e| seen.matches(e)).collect();
        for event in &declared_events {
            let entry = matching
                .iter()
                .find(|e| e.metric == event.metric && seen.recorded_by(config, e, event))
                .unwrap_or_else(|| panic!("{event:?}: no matching entry records it"));
            // A declared model counts against its provider's budget, as the probes' do.
            let position =
                |source: &LabelSource| entry.labels.iter().position(|l| l.source == *source);
            if let (Some(p), Some(m)) = (
                position(&LabelSource::Provider),
                position(&LabelSource::Model),
            ) {
                models_seen
                    .entry(event.values[p + 2].clone())
                    .or_default()
                    .insert(event.values[m + 2].clone());
            }
            for (j, value) in event.values[2..].iter().enumerate() {
                if value != OTHER && entry.labels[j].bounds.max_values.is_some() {
                    budgets
                        .entry((event.metric, j))
                        .or_default()
                        .insert(value.clone());
                }
            }
        }
        // An entry counting exchanges counts each one it matches; one observing the whole
        // exchange's duration always has it.
        for (metric, _) in config.declared.metrics.iter().enumerate() {
            let of = |value: &ValueSource| {
                matching
                    .iter()
                    .filter(|e| e.metric == metric && e.value == *value)
                    .count()
            };
            let events = |kind| {
                declared_events
                    .iter()
                    .filter(|e| e.metric == metric && e.kind == kind)
                    .count()
            };
            assert_eq!(events("Count"), of(&ValueSource::One), "metric {metric}");
            assert!(events("Observe") >= of(&ValueSource::Duration(Duration::Exchange)));
        }
    }
    // Each provider keeps its model budget, plus `other` and `unknown`.
    for (provider, seen) in models_seen {
        assert!(
            seen.len() <= config.models.max_per_provider + 2,
            "{provider}: {} models",
            seen.len()
        );
    }
    // A declared label keeps at most `max_values` distinct values besides `other` (and the
    // value for absence, which takes none of the budget).
    for ((metric, j), values) in budgets {
        let rules: Vec<&LabelRule> = config
            .declared
            .entries
            .iter()
            .filter(|e| e.metric == metric)
            .map(|e| &e.labels[j])
            .collect();
        // A label some entry leaves unbounded has no budget to check.
        let maxes: Option<Vec<usize>> = rules.iter().map(|r| r.bounds.max_values).collect();
        let Some(max) = maxes.and_then(|m| m.into_iter().max()) else {
            continue;
        };
        let absent: HashSet<&str> = rules
            .iter()
            .map(|r| r.bounds.absent.as_str())
            .filter(|a| values.contains(*a))
            .collect();
        let absent = absent.len();
        assert!(
            values.len() <= max + absent,
            "metric {metric} label {j}: {values:?}"
        );
    }
});
