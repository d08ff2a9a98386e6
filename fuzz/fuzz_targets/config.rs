//! The plugin and VM configuration parsers on arbitrary bytes: never panic; an error names
//! the field at fault (`(document)` when the bytes are not JSON or not an object, the key
//! itself when it is unknown, `metrics[2].labels[0].name` inside declared metrics) and quotes
//! nothing unprintable; an accepted configuration only holds label values a stat name can
//! carry, providers distinct as traffic matches them, authorities Envoy can send, and declared
//! metrics the exporters can export: Prometheus names of their own, one shape per name,
//! `service` and `env` first, every source and bound within what the exchange can read.
#![no_main]

use libfuzzer_sys::fuzz_target;
use prompter_filter::catalog::{label, Metric, MetricKind};
use prompter_filter::config::{
    Buckets, Config, ConfigError, VmOptions, DOCUMENT, ENV_ENV_VAR, SERVICE_ENV_VAR, TOP_LEVEL,
    VM_DOCUMENT, VM_KEYS,
};
use prompter_filter::declared::{Body, LabelSource, ValueSource, MAX_ENTRIES, MAX_LABELS};
use prompter_filter::labels::{self, is_clean};
use prompter_filter::routes::UNMATCHED;
use prompter_filter::scanner::MAX_FIELDS;

fn assert_names_a_field(e: &ConfigError, document_field: &str, fields: &[&str]) {
    let head = e.field.split(['.', '[', ' ']).next().unwrap_or_default();
    assert!(
        e.field == document_field
            || fields.contains(&head)
            || e.reason.starts_with("unknown field;"),
        "error names no field: {e:?}"
    );
    assert!(!e.reason.is_empty(), "{e:?}");
    assert!(e.to_string().contains(&e.field));
    assert!(!e.to_string().contains(char::is_control), "{e:?}");
}

fn assert_usable(config: &Config) {
    assert!(is_clean(&config.service) && config.service.len() <= 128);
    assert!(is_clean(&config.env) && config.env.len() <= 128);
    for template in config.routes.templates() {
        assert!(is_clean(template), "{template:?}");
    }
    for (i, p) in config.providers.iter().enumerate() {
        assert!(is_clean(p), "{p:?}");
        assert!(
            !config.providers[..i]
                .iter()
                .any(|q| q.eq_ignore_ascii_case(p)),
            "{:?}",
            config.providers
        );
    }
    let authorities = [
        Some(&config.health.authority),
        config.openapi.as_ref().map(|o| &o.authority),
    ];
    for authority in authorities.into_iter().flatten() {
        assert!(
            !authority.is_empty() && authority.bytes().all(|b| b.is_ascii_graphic()),
            "{authority:?}"
        );
    }
    assert!(config.providers.contains(&config.fingerprint_provider));
    for u in &config.unique_violations {
        assert!(is_clean(&u.table), "{:?}", u.table);
    }
    for buckets in [&config.request_buckets, &config.ensure_version_buckets] {
        assert_usable_buckets(buckets);
    }
    assert!((1..=128).contains(&config.models.max_length));
    assert_usable_declared(config);
}

fn assert_usable_buckets(buckets: &Buckets) {
    assert_eq!(buckets.labels.len(), buckets.bounds.len() + 1);
    assert!(buckets.labels.iter().all(|l| is_clean(l)));
    assert!(buckets.bounds.windows(2).all(|w| w[0] < w[1]));
}

fn is_name(name: &str, colon: bool) -> bool {
    let mut bytes = name.bytes();
    let first = |b: u8| b.is_ascii_alphabetic() || b == b'_' || (colon && b == b':');
    matches!(bytes.next(), Some(b) if first(b))
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_' || (colon && b == b':'))
}

fn is_clean_setting(value: &str) -> bool {
    is_clean(value) && value.len() <= 128
}

fn assert_usable_declared(config: &Config) {
    let declared = &config.declared;
    assert!(declared.entries.len() <= MAX_ENTRIES);
    assert!(config.fields.request.len() <= MAX_FIELDS);
    assert!(config.fields.response.len() <= MAX_FIELDS);
    for (i, metric) in declared.metrics.iter().enumerate() {
        let name = metric.name.as_str();
        assert!(is_name(name, true) && !name.starts_with("__"), "{name:?}");
        assert!(
            !declared.metrics[..i].iter().any(|m| m.name == name),
            "{name:?} twice"
        );
        assert!(
            Metric::ALL.iter().all(|m| m.name() != name),
            "{name:?} is built in"
        );
        assert!(
            declared.entries.iter().any(|e| e.metric == i),
            "{name:?} has no entry"
        );
        match metric.kind {
            MetricKind::Counter => assert!(name.ends_with("_total"), "{name:?}"),
            MetricKind::Histogram => assert_usable_buckets(&metric.buckets),
            MetricKind::Gauge => {}
        }
        let keys: Vec<&str> = metric.labels.iter().map(|k| &**k).collect();
        assert_eq!(
            keys.get(..2),
            Some(&[label::SERVICE, label::ENV][..]),
            "{name:?}"
        );
        assert!(keys.len() <= MAX_LABELS + 2);
        for (j, key) in keys.iter().enumerate() {
            assert!(is_name(key, false) && !key.starts_with("__"), "{key:?}");
            assert!(
                *key != label::LE && !keys[..j].contains(key),
                "{name:?}: {keys:?}"
            );
        }
    }
    for (i, header) in declared.headers.iter().enumerate() {
        assert!(!header.is_empty() && header.len() <= 128, "{header:?}");
        assert!(header
            .bytes()
            .all(|b| b.is_ascii_graphic() && !b.is_ascii_uppercase()));
        assert!(!declared.headers[..i].contains(header), "{header:?} twice");
    }
    let body_fits = |body: &Body| match *body {
        Body::Request(i) => i < config.fields.request.len(),
        Body::Response(i) => i < config.fields.response.len(),
    };
    for entry in &declared.entries {
        let metric = &declared.metrics[entry.metric];
        assert_eq!(
            entry.labels.len() + 2,
            metric.labels.len(),
            "{:?}",
            metric.name
        );
        let when = &entry.when;
        assert!(when.methods.iter().all(|m| labels::METHODS.contains(m)));
        assert!(when
            .routes
            .iter()
            .all(|r| r.starts_with('/') || r == UNMATCHED));
        match &entry.value {
            ValueSource::One => assert_eq!(metric.kind, MetricKind::Counter),
            ValueSource::Duration(_) => assert_eq!(metric.kind, MetricKind::Histogram),
            ValueSource::Field(bodies) => {
                assert!(!bodies.is_empty() && bodies.iter().all(body_fits))
            }
        }
        for rule in &entry.labels {
            let bounds = &rule.bounds;
            match &rule.source {
                LabelSource::Constant(value) => assert!(is_clean_setting(value), "{value:?}"),
                LabelSource::Header(i) => assert!(*i < declared.headers.len()),
                LabelSource::Field(bodies) => {
                    assert!(!bodies.is_empty() && bodies.iter().all(body_fits))
                }
                _ => {}
            }
            assert!((1..=128).contains(&bounds.max_length));
            assert!(is_clean_setting(&bounds.absent), "{:?}", bounds.absent);
            for value in bounds.allow.iter().flatten() {
                assert!(is_clean_setting(value), "{value:?}");
            }
            assert!(bounds.max_values.is_none_or(|n| (1..=10_000).contains(&n)));
        }
    }
}

fuzz_target!(|data: &[u8]| {
    // The environment comes from the input too: its last line, when there is one.
    let (json, env) = match data.iter().rposition(|b| *b == b'\n') {
        Some(at) => (&data[..at], Some(String::from_utf8_lossy(&data[at + 1..]))),
        None => (data, None),
    };
    let env_var = |name: &str| {
        (name == SERVICE_ENV_VAR || name == ENV_ENV_VAR)
            .then(|| env.as_ref().map(|e| e.to_string()))
            .flatten()
    };
    match Config::parse(json, env_var) {
        Ok(config) => assert_usable(&config),
        Err(e) => assert_names_a_field(&e, DOCUMENT, TOP_LEVEL),
    }
    match VmOptions::parse(data) {
        Ok(options) => assert!(options.stats_flush.as_millis() <= 60_000),
        Err(e) => assert_names_a_field(&e, VM_DOCUMENT, VM_KEYS),
    }
});
