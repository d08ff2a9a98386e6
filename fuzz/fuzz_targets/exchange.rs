//! Whole exchanges driven with arbitrary methods, paths, statuses, content types, bodies and
//! chunking: never panics, and every event carries one value per catalog label key, each a
//! bounded value a stat name can carry (`labels::is_clean`: no `;`, `=`, newline, never
//! empty), from the set that key allows; recorded stat names decode back to those labels.
#![no_main]

use std::collections::{HashMap, HashSet};
use std::sync::OnceLock;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use prompter_filter::catalog::{label, Metric};
use prompter_filter::config::Config;
use prompter_filter::events::{Event, Recorder, Stat, StatSink};
use prompter_filter::exchange::Exchange;
use prompter_filter::labels::{self, is_clean, ModelLabels};
use prompter_filter::openapi;
use prompter_filter::routes::{RouteTable, UNMATCHED};
use prompter_filter::stat_name;
use prompter_filter_fuzz::chunks;

/// The default configuration, and one with tight model bounds and extra routes.
fn configs() -> &'static [Config; 2] {
    static CONFIGS: OnceLock<[Config; 2]> = OnceLock::new();
    CONFIGS.get_or_init(|| {
        let tight = br#"{"models":{"max_length":4,"max_per_provider":2},
            "providers":["openai","x"],"fingerprint_provider":"x",
            "routes":["/api/prompt-templates","/api/prompt-templates/{template_id}",
              "/api/prompt-templates/{template_id}/ensure-version",
              "/api/prompt-templates/{template_id}/run","/healthz","/{a}/{b}","/"]}"#;
        [
            Config::parse(b"", |_| None).expect("default config"),
            Config::parse(tight, |_| None).expect("tight config"),
        ]
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

#[derive(Arbitrary, Debug)]
enum Body {
    Raw(Vec<u8>),
    /// A JSON object with the fields the filter reads.
    Fields {
        provider: Option<String>,
        model: Option<String>,
        fingerprint: Option<String>,
        redis: Option<bool>,
        /// Sent as server-sent events, one field per event, when true.
        as_events: bool,
    },
}

#[derive(Arbitrary, Debug)]
struct Call {
    method: Option<String>,
    path: Option<Path>,
    status: Option<String>,
    fallback_status: Option<u16>,
    content_type: Option<String>,
    request: Body,
    response: Body,
    cuts: Vec<u16>,
    nanos: u64,
}

#[derive(Arbitrary, Debug)]
struct Input {
    tight: bool,
    learned: Vec<String>,
    calls: Vec<Call>,
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
            as_events,
        } => {
            let mut fields = serde_json::Map::new();
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
            if !as_events {
                return serde_json::to_vec(&fields).expect("json");
            }
            let mut out = Vec::new();
            for (key, value) in fields {
                let event = serde_json::json!({ key: value });
                out.extend_from_slice(format!("data: {event}\n\n").as_bytes());
            }
            out.extend_from_slice(b"data: [DONE]\n\n");
            out
        }
    }
}

/// Checks a value against what its label key allows.
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
            value == labels::OTHER
                || value == labels::UNKNOWN
                || config.providers.iter().any(|p| p == value)
        }
        label::MODEL => value.len() <= config.models.max_length,
        _ => false,
    };
    assert!(allowed, "{key}={value:?}");
}

/// A sink that decodes every stat name it is asked to define (each distinct name once: the
/// regexes are the slow part of an execution). Updates go nowhere.
struct DecodingSink<'a>(&'a mut HashSet<String>);

impl DecodingSink<'_> {
    fn check(&mut self, name: &str) -> Option<u32> {
        if !self.0.contains(name) {
            if self.0.len() > 100_000 {
                self.0.clear();
            }
            self.0.insert(name.to_string());
            let decoded = stat_name::decode(name).expect("decodes");
            let labels = decoded.labels.clone();
            prompter_filter_fuzz::assert_round_trip(name, decoded.series, &labels);
        }
        Some(0)
    }
}

impl StatSink for DecodingSink<'_> {
    fn counter(&mut self, stat: &Stat<'_>) -> Option<u32> {
        self.check(stat.encode_into(&mut String::new()))
    }
    fn gauge(&mut self, stat: &Stat<'_>) -> Option<u32> {
        self.check(stat.encode_into(&mut String::new()))
    }
    fn histogram(&mut self, stat: &Stat<'_>) -> Option<u32> {
        self.check(stat.encode_into(&mut String::new()))
    }
    fn add(&mut self, _counter: u32, _delta: u64) {}
    fn set(&mut self, _gauge: u32, _value: u64) {}
    fn observe(&mut self, _histogram: u32, _nanos: u64) {}
}

/// Stat names already read back, kept across executions.
static CHECKED: std::sync::Mutex<Option<HashSet<String>>> = std::sync::Mutex::new(None);

fuzz_target!(|input: Input| {
    let config = &configs()[usize::from(input.tight)];
    let learned = openapi::learn(&input.learned, &config.routes).table;
    let mut models = ModelLabels::default();
    let mut models_seen: HashMap<String, HashSet<String>> = HashMap::new();
    let mut recorder = Recorder::default();
    let mut guard = CHECKED.lock().unwrap_or_else(|e| e.into_inner());
    let checked = guard.get_or_insert_with(HashSet::new);
    for call in input.calls {
        let path = call.path.map(|p| path(config, p));
        let mut exchange =
            Exchange::start_with(config, &learned, call.method.as_deref(), path.as_deref(), 0);
        let request = body(call.request);
        if exchange.wants_request_body() {
            for chunk in chunks(&request, &call.cuts) {
                exchange.request_body(config, chunk);
            }
        }
        exchange.response_headers(call.status.as_deref(), call.content_type.as_deref());
        exchange.status_if_unknown(call.fallback_status);
        let response = body(call.response);
        for chunk in chunks(&response, &call.cuts) {
            exchange.response_body(config, chunk);
        }
        exchange.finish(config, &mut models, call.nanos, &mut |event: Event<'_>| {
            let (Event::Count(series)
            | Event::Add(series, _)
            | Event::Observe(series, _)
            | Event::Set(series, _)) = event;
            let keys = config.shape(series.metric).labels;
            assert_eq!(keys.len(), series.values.len(), "{:?}", series.metric);
            for (key, value) in keys.iter().zip(series.values) {
                check_value(config, &learned, key, value);
            }
            if series.metric == Metric::ProbeAttempts.into() {
                models_seen
                    .entry(series.values[2].to_string())
                    .or_default()
                    .insert(series.values[3].to_string());
            }
            recorder.record(config, event, &mut DecodingSink(checked));
        });
    }
    // Each provider keeps its model budget, plus `other` and `unknown`.
    for (provider, seen) in models_seen {
        assert!(
            seen.len() <= config.models.max_per_provider + 2,
            "{provider}: {} models",
            seen.len()
        );
    }
});
