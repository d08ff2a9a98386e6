//! The plugin configuration: its defaults, every field it accepts, and each refusal with the
//! field and the reason.

use super::*;

fn no_env(_: &str) -> Option<String> {
    None
}

#[test]
fn empty_configuration_means_the_documented_defaults() {
    let config = Config::parse(b"", no_env).unwrap();
    assert_eq!(config.service, "prompter-api");
    assert_eq!(config.env, "dev");
    assert_eq!(config.routes.len(), 5);
    assert_eq!(config.routes.template(config.run.route), DEFAULT_RUN_ROUTE);
    let create = config.routes.id_of("/api/prompt-templates").unwrap();
    assert_eq!(
        config.unique_table("POST", create),
        Some("prompt_templates")
    );
    assert_eq!(config.unique_table("GET", create), None);
    assert_eq!(config.request_buckets.labels.len(), 15);
    assert_eq!(config.health.interval, Duration::from_secs(15));
    let openapi = config.openapi.as_ref().unwrap();
    assert_eq!(
        (openapi.path.as_str(), openapi.cluster.as_str()),
        ("/openapi.json", "prompter_api")
    );
    assert_eq!(openapi.interval, Duration::from_secs(60));
    assert_eq!(openapi.limits, Limits::default());
    assert_eq!(Config::parse(b" {} ", no_env).unwrap(), config);
}

#[test]
fn service_and_env_fall_back_to_the_environment() {
    let env = |k: &str| match k {
        "METRICS_SERVICE" => Some("svc-a".to_string()),
        "METRICS_ENV" => Some("prod".to_string()),
        _ => None,
    };
    let config = Config::parse(b"{}", env).unwrap();
    assert_eq!(
        (config.service.as_str(), config.env.as_str()),
        ("svc-a", "prod")
    );
    let config = Config::parse(br#"{"env":"staging"}"#, env).unwrap();
    assert_eq!(
        (config.service.as_str(), config.env.as_str()),
        ("svc-a", "staging")
    );
    let err = Config::parse(b"{}", |_| Some("bad;value".into())).unwrap_err();
    assert_eq!(err.field, "service (from $METRICS_SERVICE)");
}

#[test]
fn broken_configurations_name_the_field_and_the_reason() {
    let cases: &[(&str, &str, &str)] = &[
        ("{", "(document)", "not JSON: the document ends early at line 1 column 2"),
        (r#"[]"#, "(document)", "must be an object, not an array"),
        (r#"{"servce":"x"}"#, "servce", "unknown field; (document) takes service, env"),
        (r#"{"env":"a","env":"b"}"#, "env", "given twice"),
        (r#"{"service":5}"#, "service", "must be a string, not a number"),
        (r#"{"routes":"/x"}"#, "routes", "must be an array, not a string"),
        (r#"{"providers":["openai",null]}"#, "providers[1]", "must be a string, not null"),
        (r#"{"health":[]}"#, "health", "must be an object, not an array"),
        (r#"{"probe":{"route":"/healthz"}}"#, "probe.method", "is required"),
        (
            r#"{"routes":["/healthz"]}"#,
            "probe.route",
            "`/api/prompt-templates/{template_id}/ensure-version` is not one of `routes` (the default)",
        ),
        (
            r#"{"routes":["/a/{id}/ensure-version","/a/{id}/run"],"probe":{"method":"POST","route":"/a/{id}/ensure-version"},"run":{"method":"POST","route":"/a/{id}/run"}}"#,
            "unique_violations[0].route",
            "(the default)",
        ),
        (r#"{"models":{"max_length":1.5}}"#, "models.max_length", "whole number, not 1.5"),
        (r#"{"openapi":{"enabled":"no"}}"#, "openapi.enabled", "must be true or false, not a string"),
        (
            r#"{"service":"a b"}"#,
            "service",
            "not a usable label value",
        ),
        (r#"{"routes":["nope"]}"#, "routes", "start with"),
        (
            r#"{"run":{"method":"POST","route":"/x"}}"#,
            "run.route",
            "not one of `routes`",
        ),
        (
            r#"{"probe":{"method":"FETCH","route":"/healthz"}}"#,
            "probe.method",
            "not an HTTP method",
        ),
        (
            r#"{"unique_violations":[{"method":"POST","route":"/healthz","table":"a;b"}]}"#,
            "unique_violations[0].table",
            "usable",
        ),
        (
            r#"{"providers":["openai","other"]}"#,
            "providers[1]",
            "usable",
        ),
        (
            r#"{"providers":["google"]}"#,
            "fingerprint_provider",
            "not in `providers`",
        ),
        (r#"{"fields":{"model":"provider"}}"#, "fields", "twice"),
        (
            r#"{"buckets":{"request_seconds":[1,0.5]}}"#,
            "buckets.request_seconds",
            "increasing",
        ),
        (
            r#"{"buckets":{"ensure_version_seconds":[]}}"#,
            "buckets.ensure_version_seconds",
            "at least one",
        ),
        (
            r#"{"health":{"timeout_ms":0}}"#,
            "health.timeout_ms",
            "between",
        ),
        (
            r#"{"health":{"path":"healthz"}}"#,
            "health.path",
            "starting with",
        ),
        (
            r#"{"models":{"max_length":0}}"#,
            "models.max_length",
            "between",
        ),
        (
            r#"{"openapi":{"path":"/openapi.json?x=1"}}"#,
            "openapi.path",
            "without query",
        ),
        (r#"{"openapi":{"cluster":""}}"#, "openapi.cluster", "empty"),
        (
            r#"{"openapi":{"interval_seconds":86401}}"#,
            "openapi.interval_seconds",
            "at most",
        ),
        (
            r#"{"openapi":{"timeout_ms":0}}"#,
            "openapi.timeout_ms",
            "between",
        ),
        (
            r#"{"openapi":{"max_bytes":0}}"#,
            "openapi.max_bytes",
            "between",
        ),
        (
            r#"{"openapi":{"max_paths":10001}}"#,
            "openapi.max_paths",
            "between",
        ),
        (
            r#"{"openapi":{"enabled":false,"max_paths":0}}"#,
            "openapi.max_paths",
            "between",
        ),
        (
            r#"{"openapi":{"url":"/x"}}"#,
            "openapi.url",
            "unknown field; openapi takes enabled, path",
        ),
        (
            r#"{"unique_violations":[{"method":"POST","route":"/healthz","table":"t","x":1}]}"#,
            "unique_violations[0].x",
            "unknown field; unique_violations[0] takes method, route, table",
        ),
    ];
    for (json, field, reason) in cases {
        let err = Config::parse(json.as_bytes(), no_env).unwrap_err();
        assert_eq!(&err.field, field, "{json}: {err}");
        assert!(err.reason.contains(reason), "{json}: {err}");
        assert!(err.to_string().contains(field));
    }
}

/// Values that parse but would break at run time, or in the log line that refuses them:
/// every case is checked and all failures shown at once.
#[test]
fn values_that_would_fail_later_are_refused_and_quoted_printably() {
    let cases: &[(&str, &str, &str)] = &[
        (
            r#"{"health":{"authority":"api\r\nx-evil: 1"}}"#,
            "health.authority",
            r"`api\r\nx-evil: 1` is not a host[:port]",
        ),
        (
            r#"{"health":{"authority":""}}"#,
            "health.authority",
            "not a host",
        ),
        (
            r#"{"openapi":{"authority":"api/openapi"}}"#,
            "openapi.authority",
            "not a host",
        ),
        (
            r#"{"providers":["openai","OpenAI"]}"#,
            "providers[1]",
            "`OpenAI` repeats `openai` (providers match case-insensitively)",
        ),
        (r#"{"providers":["x","x"]}"#, "providers[1]", "repeats `x`"),
        // A refused value is quoted with its control characters escaped.
        (
            r#"{"service":"a\u0000b"}"#,
            "service",
            r"`a\0b` is not a usable",
        ),
        (r#"{"a\u0000\u001b":1}"#, r"a\0\u{1b}", "unknown field"),
    ];
    let failures: Vec<String> = cases
        .iter()
        .filter_map(
            |(json, field, reason)| match Config::parse(json.as_bytes(), no_env) {
                Err(e)
                    if e.field == *field
                        && e.reason.contains(reason)
                        && !e.to_string().contains(char::is_control) =>
                {
                    None
                }
                other => Some(format!("{json}: {other:?}")),
            },
        )
        .collect();
    assert!(failures.is_empty(), "{failures:#?}");
    let health = |authority: &str| {
        let json = format!(r#"{{"health":{{"authority":"{authority}"}}}}"#);
        Config::parse(json.as_bytes(), no_env).map(|c| c.health.authority)
    };
    for good in ["prompter-api", "api.svc.cluster.local:8000", "[::1]:8000"] {
        assert_eq!(health(good).as_deref(), Ok(good));
    }
}

#[test]
fn the_vm_configuration_says_whether_the_host_takes_native_histograms() {
    assert_eq!(VmOptions::parse(b"").unwrap(), VmOptions::default());
    assert_eq!(VmOptions::default().stats_flush, Duration::from_secs(1));
    let host = VmOptions::parse(NATIVE_HISTOGRAMS_VM_CONFIG.as_bytes()).unwrap();
    assert!(host.native_histograms);
    assert_eq!(host.stats_flush, Duration::ZERO);
    let err = VmOptions::parse(br#"{"stats_flush_interval_ms":600000}"#).unwrap_err();
    assert_eq!(err.field, "stats_flush_interval_ms");
    let err = VmOptions::parse(br#"{"native":true}"#).unwrap_err();
    assert_eq!(err.field, "native");
    assert!(err
        .reason
        .contains("unknown field; (vm configuration) takes"));
    let err = VmOptions::parse(b"{").unwrap_err();
    assert_eq!(err.field, "(vm configuration)");
}

#[test]
fn the_openapi_fetch_follows_the_health_check_unless_told_and_can_be_off() {
    let config = Config::parse(
        br#"{"health":{"cluster":"api","authority":"api.local"},"openapi":{"path":"/docs/openapi.json","interval_seconds":0,"max_bytes":1024,"max_paths":5}}"#,
        no_env,
    )
    .unwrap();
    let openapi = config.openapi.unwrap();
    assert_eq!(
        (openapi.cluster.as_str(), openapi.authority.as_str()),
        ("api", "api.local")
    );
    assert_eq!(openapi.path, "/docs/openapi.json");
    assert!(openapi.interval.is_zero());
    assert_eq!(
        openapi.limits,
        Limits {
            max_bytes: 1024,
            max_paths: 5
        }
    );
    let config = Config::parse(br#"{"openapi":{"enabled":false}}"#, no_env).unwrap();
    assert_eq!(config.openapi, None);
}

#[test]
fn shared_state_is_scoped_by_the_configuration() {
    // FNV-1a's published test values.
    assert_eq!(shared_state_scope(b""), "cbf29ce484222325");
    assert_eq!(shared_state_scope(b"a"), "af63dc4c8601ec8c");
    let a = shared_state_scope(br#"{"health":{"path":"/a"}}"#);
    let b = shared_state_scope(br#"{"health":{"path":"/b"}}"#);
    assert_ne!(a, b);
    assert_eq!(a, shared_state_scope(br#"{"health":{"path":"/a"}}"#));
}

#[test]
fn buckets_find_the_first_bound_holding_a_value() {
    let config = Config::parse(b"", no_env).unwrap();
    let b = &config.request_buckets;
    assert_eq!(b.first_bucket(0), 0);
    assert_eq!(b.first_bucket(5_000_000), 0);
    assert_eq!(b.first_bucket(5_000_001), 1);
    assert_eq!(b.first_bucket(10_000_000_000), 13);
    assert_eq!(b.first_bucket(11_000_000_000), 14);
    assert_eq!(b.labels[14], "+Inf");
}

#[test]
fn bucket_bounds_are_read_exactly_in_nanoseconds() {
    let config = Config::parse(
        br#"{"buckets":{"request_seconds":[1e-9, 0.0000025, 0.1, 1, 2.50E0, 100000],
                        "ensure_version_seconds":[0.25e1]}}"#,
        no_env,
    )
    .unwrap();
    let b = &config.request_buckets;
    assert_eq!(
        b.bounds,
        [
            1,
            2_500,
            100_000_000,
            1_000_000_000,
            2_500_000_000,
            100_000 * 1_000_000_000
        ]
    );
    assert_eq!(
        b.labels.join(","),
        "1e-09,2.5e-06,0.1,1.0,2.5,100000.0,+Inf"
    );
    assert_eq!(config.ensure_version_buckets.bounds, [2_500_000_000]);
    assert_eq!(b.seconds()[2], 0.1);

    for refused in [
        "0",
        "-1",
        "0.0",
        "1e-10",
        "0.0000000015",
        "100000.000000001",
        "1e6",
        "1e999999999999",
        "1e-99999999999999999999",
    ] {
        let json = format!(r#"{{"buckets":{{"request_seconds":[{refused}]}}}}"#);
        let err = Config::parse(json.as_bytes(), no_env).unwrap_err();
        assert_eq!(err.field, "buckets.request_seconds", "{refused}");
        assert!(err.reason.contains("whole nanoseconds"), "{refused}: {err}");
    }
    for (text, nanos) in [
        ("5e-3", 5_000_000),
        ("0.0050", 5_000_000),
        ("100000", 100_000_000_000_000),
        ("1.000000000", 1_000_000_000),
        ("10E-1", 1_000_000_000),
    ] {
        assert_eq!(seconds_as_nanos(text), Some(nanos), "{text}");
    }
}
