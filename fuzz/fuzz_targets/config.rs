//! The plugin and VM configuration parsers on arbitrary bytes: never panic; an error names
//! the field at fault (`(document)` when the bytes are not JSON or not an object, the key
//! itself when it is unknown) and quotes nothing unprintable; an accepted configuration only
//! holds label values a stat name can carry, providers distinct as traffic matches them, and
//! authorities Envoy can send.
#![no_main]

use libfuzzer_sys::fuzz_target;
use prompter_filter::config::{
    Config, ConfigError, VmOptions, DOCUMENT, ENV_ENV_VAR, SERVICE_ENV_VAR, TOP_LEVEL, VM_DOCUMENT,
    VM_KEYS,
};
use prompter_filter::labels::is_clean;

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
        assert_eq!(buckets.labels.len(), buckets.bounds.len() + 1);
        assert!(buckets.labels.iter().all(|l| is_clean(l)));
        assert!(buckets.bounds.windows(2).all(|w| w[0] < w[1]));
    }
    assert!((1..=128).contains(&config.models.max_length));
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
