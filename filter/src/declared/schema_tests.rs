//! `metrics` as the configuration reader takes it or refuses it.

use crate::catalog::MetricKind;
use crate::config::Config;
use crate::declared::{Body, LabelSource, ResponseKind, StatusMatch, ValueSource};

const EXAMPLE: &str = include_str!("../../../envoy/examples/custom-metrics.json");

fn parse(json: &str) -> Result<Config, (String, String)> {
    Config::parse(json.as_bytes(), |_| None).map_err(|e| (e.field, e.reason))
}

/// The refusal of `metrics: [entry]`.
fn refusal(entry: &str) -> (String, String) {
    parse(&format!(r#"{{"metrics": [{entry}]}}"#)).expect_err(entry)
}

#[test]
fn the_example_declares_three_metrics_from_four_entries() {
    let config = parse(EXAMPLE).unwrap();
    let declared = &config.declared;
    let names: Vec<&str> = declared.metrics.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "prompter_run_tokens_total",
            "prompter_run_first_byte_seconds",
            "prompter_tenant_requests_total"
        ]
    );
    assert_eq!(declared.entries.len(), 4);
    let tokens = &declared.metrics[0];
    let keys: Vec<&str> = tokens.labels.iter().map(|k| &**k).collect();
    assert_eq!(keys, ["service", "env", "provider", "model", "kind"]);
    let first_byte = &declared.metrics[1];
    assert_eq!(first_byte.kind, MetricKind::Histogram);
    assert_eq!(
        first_byte.buckets.labels.first().map(String::as_str),
        Some("0.05")
    );
    assert_eq!(
        first_byte.buckets.labels.last().map(String::as_str),
        Some("+Inf")
    );
    assert_eq!(first_byte.buckets.labels.len(), 11);
    let run = &declared.entries[0].when;
    assert_eq!(run.statuses, [StatusMatch::Class(2)]);
    assert_eq!(run.methods, ["POST"]);
    // usage.* are read from the response only, after the built-ins' fields.
    let ValueSource::Field(bodies) = &declared.entries[1].value else {
        panic!("{:?}", declared.entries[1].value)
    };
    assert_eq!(bodies, &[Body::Response(5)]);
    assert_eq!(declared.headers, ["x-tenant-id"]);
    let tenant = &declared.entries[3].labels[0];
    assert_eq!(tenant.source, LabelSource::Header(0));
    assert_eq!(
        (tenant.bounds.max_values, tenant.bounds.absent.as_str()),
        (Some(20), "none")
    );
    assert_eq!(config.declared_label_keys(), ["kind", "tenant"]);
}

#[test]
fn a_configuration_without_metrics_declares_nothing() {
    let config = parse("{}").unwrap();
    assert!(config.declared.entries.is_empty());
    assert_eq!(config.fields.request.len(), 2);
    assert_eq!(config.fields.response.len(), 4);
    assert!(config.declared_label_keys().is_empty());
}

#[test]
fn the_when_section_reads_statuses_kinds_and_routes() {
    let config = parse(
        r#"{"metrics": [{"name": "x_total", "type": "counter",
            "when": {"status": ["409", "5xx"], "response": "event_stream",
                     "routes": ["/a/{id}", "unmatched"], "methods": ["get"]}}]}"#,
    )
    .unwrap();
    let when = &config.declared.entries[0].when;
    assert_eq!(
        when.statuses,
        [StatusMatch::Code(409), StatusMatch::Class(5)]
    );
    assert_eq!(when.response, ResponseKind::EventStream);
    assert_eq!(when.methods, ["GET"]);
    assert!(when.matches_response(Some(503), Some(ResponseKind::EventStream)));
    assert!(!when.matches_response(Some(503), Some(ResponseKind::Json)));
    assert!(!when.matches_response(Some(200), Some(ResponseKind::EventStream)));
    assert!(!when.matches_response(None, Some(ResponseKind::EventStream)));
}

#[test]
fn bad_entries_are_refused_with_the_field_and_the_reason() {
    let cases: &[(&str, &str, &str)] = &[
        (r#"{"type": "counter"}"#, "metrics[0].name", "is required"),
        (r#"{"name": "x_total"}"#, "metrics[0].type", "is required"),
        (
            r#"{"name": "x_total", "type": "gauge"}"#,
            "metrics[0].type",
            "not a type",
        ),
        (
            r#"{"name": "9x_total", "type": "counter"}"#,
            "metrics[0].name",
            "not a Prometheus metric name",
        ),
        (
            r#"{"name": "x", "type": "counter"}"#,
            "metrics[0].name",
            "ends with `_total`",
        ),
        (
            r#"{"name": "x_count", "type": "histogram", "value": {"duration": "exchange"}}"#,
            "metrics[0].name",
            "cannot end with `_count`",
        ),
        (
            r#"{"name": "starlette_requests_total", "type": "counter"}"#,
            "metrics[0].name",
            "clashes with the built-in `starlette_requests_total`",
        ),
        (
            r#"{"name": "prompter_host_x_total", "type": "counter"}"#,
            "metrics[0].name",
            "`prompter_host_` is the prefix of the host's own metrics",
        ),
        (
            r#"{"name": "prompter_filter_failures_total", "type": "counter"}"#,
            "metrics[0].name",
            "clashes with the built-in",
        ),
        (
            r#"{"name": "x_total", "type": "counter", "labels": [{"name": "le", "value": "a"}]}"#,
            "metrics[0].labels[0].name",
            "reserved",
        ),
        (
            r#"{"name": "x_total", "type": "counter", "labels": [{"name": "env", "value": "a"}]}"#,
            "metrics[0].labels[0].name",
            "on every series already",
        ),
        (
            r#"{"name": "x_total", "type": "counter", "labels": [{"name": "a-b", "value": "a"}]}"#,
            "metrics[0].labels[0].name",
            "not a Prometheus label name",
        ),
        (
            r#"{"name": "x_total", "type": "counter", "labels": [{"name": "a", "value": "x"}, {"name": "a", "value": "y"}]}"#,
            "metrics[0].labels[1].name",
            "given twice",
        ),
        (
            r#"{"name": "x_total", "type": "counter", "labels": [{"name": "a"}]}"#,
            "metrics[0].labels[0]",
            "one source",
        ),
        (
            r#"{"name": "x_total", "type": "counter", "labels": [{"name": "a", "value": "x", "header": "h"}]}"#,
            "metrics[0].labels[0]",
            "got 2",
        ),
        (
            r#"{"name": "x_total", "type": "counter", "labels": [{"name": "a", "builtin": "tenant"}]}"#,
            "metrics[0].labels[0].builtin",
            "not one of method, route, status, provider, model",
        ),
        (
            r#"{"name": "x_total", "type": "counter", "labels": [{"name": "a", "cookie": "x"}]}"#,
            "metrics[0].labels[0].cookie",
            "unknown field",
        ),
        (
            r#"{"name": "x_total", "type": "counter", "labels": [{"name": "a", "header": "x y"}]}"#,
            "metrics[0].labels[0].header",
            "not a header name",
        ),
        (
            r#"{"name": "x_total", "type": "counter", "labels": [{"name": "a", "value": "x", "max_values": 3}]}"#,
            "metrics[0].labels[0]",
            "bound a header or a field",
        ),
        (
            r#"{"name": "x_total", "type": "counter", "labels": [{"name": "a", "header": "h", "max_values": 0}]}"#,
            "metrics[0].labels[0].max_values",
            "between 1 and 10000",
        ),
        (
            r#"{"name": "x_total", "type": "counter", "labels": [{"name": "a", "header": "h", "absent": "no value"}]}"#,
            "metrics[0].labels[0].absent",
            "not a usable label value",
        ),
        (
            r#"{"name": "x_total", "type": "counter", "labels": [{"name": "a", "field": "x", "from": ["trailers"]}]}"#,
            "metrics[0].labels[0].from[0]",
            "not a body",
        ),
        (
            r#"{"name": "x_total", "type": "counter", "labels": [{"name": "a", "field": "x..y"}]}"#,
            "metrics[0].labels[0].field",
            "must not be empty",
        ),
        (
            r#"{"name": "x_seconds", "type": "histogram"}"#,
            "metrics[0].value",
            "needs a value",
        ),
        (
            r#"{"name": "x_seconds", "type": "histogram", "value": {"duration": "forever"}}"#,
            "metrics[0].value.duration",
            "not one of exchange, response_headers, first_byte",
        ),
        (
            r#"{"name": "x_total", "type": "counter", "value": {"duration": "exchange"}}"#,
            "metrics[0].value.duration",
            "observed by a histogram",
        ),
        (
            r#"{"name": "x_seconds", "type": "histogram", "value": {"field": "a", "duration": "exchange"}}"#,
            "metrics[0].value",
            "one `field`",
        ),
        (
            r#"{"name": "x_seconds", "type": "histogram", "buckets": [1, 0.5], "value": {"duration": "exchange"}}"#,
            "metrics[0].buckets",
            "strictly increasing",
        ),
        (
            r#"{"name": "x_seconds", "type": "histogram", "buckets": [], "value": {"duration": "exchange"}}"#,
            "metrics[0].buckets",
            "at least one bound",
        ),
        (
            r#"{"name": "x_total", "type": "counter", "buckets": [1]}"#,
            "metrics[0].buckets",
            "only a histogram",
        ),
        (
            r#"{"name": "x_total", "type": "counter", "when": {"status": ["2x"]}}"#,
            "metrics[0].when.status[0]",
            "not a status",
        ),
        (
            r#"{"name": "x_total", "type": "counter", "when": {"methods": ["BREW"]}}"#,
            "metrics[0].when.methods[0]",
            "not one of GET",
        ),
        (
            r#"{"name": "x_total", "type": "counter", "when": {"routes": ["api/x"]}}"#,
            "metrics[0].when.routes[0]",
            "not a route template",
        ),
        (
            r#"{"name": "x_total", "type": "counter", "when": {"response": "xml"}}"#,
            "metrics[0].when.response",
            "not one of any, json, event_stream",
        ),
    ];
    for (entry, field, reason) in cases {
        let (got_field, got_reason) = refusal(entry);
        assert_eq!(got_field, *field, "{entry}: {got_reason}");
        assert!(got_reason.contains(reason), "{entry}: {got_reason}");
    }
    // Not a clash: `_bucket_total` is another series than `_bucket`.
    let ok = r#"{"metrics": [{"name": "starlette_requests_processing_seconds_bucket_total", "type": "counter"}]}"#;
    assert!(parse(ok).is_ok());
}

#[test]
fn entries_of_one_name_must_agree_and_names_must_not_clash() {
    let entry = |labels: &str, kind: &str| {
        format!(
            r#"{{"name": "x_total", "type": "{kind}", "labels": [{labels}]{}}}"#,
            if kind == "histogram" {
                r#", "value": {"duration": "exchange"}"#
            } else {
                ""
            }
        )
    };
    let a = entry(r#"{"name": "kind", "value": "a"}"#, "counter");
    let b = entry(r#"{"name": "kind", "value": "b"}"#, "counter");
    let config = parse(&format!(r#"{{"metrics": [{a}, {b}]}}"#)).unwrap();
    assert_eq!(config.declared.metrics.len(), 1);
    assert_eq!(config.declared.entries[1].metric, 0);

    let other_labels = entry(r#"{"name": "sort", "value": "b"}"#, "counter");
    let (field, reason) = parse(&format!(r#"{{"metrics": [{a}, {other_labels}]}}"#)).unwrap_err();
    assert_eq!(field, "metrics[1].name");
    assert!(reason.contains("other label names"), "{reason}");

    let histogram = r#"{"name": "y", "type": "histogram", "value": {"duration": "exchange"}}"#;
    let bucket_counter = r#"{"name": "y_bucket_total", "type": "counter"}"#;
    let count_clash = r#"{"name": "y_count", "type": "counter"}"#;
    assert!(parse(&format!(
        r#"{{"metrics": [{histogram}, {bucket_counter}]}}"#
    ))
    .is_ok());
    let (field, reason) = parse(&format!(r#"{{"metrics": [{histogram}, {count_clash}]}}"#))
        .expect_err("y_count is y's count");
    // A counter's name ends with _total: `y_count` is refused for that first.
    assert_eq!(field, "metrics[1].name");
    assert!(reason.contains("_total"), "{reason}");

    let help = r#"{"name": "x_total", "type": "counter", "help": "other"}"#;
    let plain = r#"{"name": "x_total", "type": "counter"}"#;
    let (_, reason) = parse(&format!(r#"{{"metrics": [{plain}, {help}]}}"#)).unwrap_err();
    assert!(reason.contains("other help"), "{reason}");
}

#[test]
fn the_body_fields_have_room_for_what_is_declared() {
    let fields: Vec<String> = (0..5)
        .map(|i| format!(r#"{{"name": "l{i}", "field": "a.f{i}", "from": ["response"]}}"#))
        .collect();
    let entry = format!(
        r#"{{"name": "x_total", "type": "counter", "labels": [{}]}}"#,
        fields.join(",")
    );
    let (field, reason) = refusal(&entry);
    assert_eq!(field, "metrics[0].labels[4].field");
    assert!(reason.contains("at most 8 fields"), "{reason}");
}
