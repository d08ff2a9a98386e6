//! What exchanges record into declared metrics: the example configuration's three metrics,
//! from JSON bodies, event streams, headers and timings.

use crate::config::Config;
use crate::events::{Event, MetricId};
use crate::exchange::Exchange;
use crate::labels::ModelLabels;

const EXAMPLE: &str = include_str!("../../../envoy/examples/custom-metrics.json");
const RUN: &str = "/api/prompt-templates/t-1/run";
const RUN_ROUTE: &str = "/api/prompt-templates/{template_id}/run";

fn example() -> Config {
    Config::parse(EXAMPLE.as_bytes(), |_| None).unwrap()
}

/// A declared event: metric name, label values after service and env, value.
#[derive(Debug, Clone, PartialEq)]
struct Declared(String, Vec<String>, u64);

struct Request<'a> {
    method: &'a str,
    path: &'a str,
    tenant: Option<&'a [u8]>,
    body: &'a str,
    status: &'a str,
    content_type: &'a str,
    response: &'a [u8],
}

impl Default for Request<'_> {
    fn default() -> Self {
        Request {
            method: "POST",
            path: RUN,
            tenant: None,
            body: r#"{"provider":"openai","model_id":"gpt-4o"}"#,
            status: "200",
            content_type: "application/json",
            response: b"{}",
        }
    }
}

/// Runs `request` (started at 1 s, headers at 1.1 s, first body byte at 1.3 s, end at 2 s),
/// the response in 64 KiB chunks; returns the declared events and the built-ins' count.
fn run(config: &Config, models: &mut ModelLabels, request: &Request<'_>) -> (Vec<Declared>, usize) {
    let mut exchange = Exchange::start(
        config,
        Some(request.method),
        Some(request.path),
        1_000_000_000,
    );
    if exchange.wants_request_headers() {
        for (i, name) in config.declared.headers.iter().enumerate() {
            assert_eq!(name, "x-tenant-id");
            exchange.request_header(i, request.tenant);
        }
    }
    if exchange.wants_request_body() {
        exchange.request_body(config, request.body.as_bytes());
    }
    // As the glues do: whether the headers' time is wanted is asked before they are handed
    // over.
    let headers_time = exchange.wants_response_time();
    exchange.response_headers(Some(request.status), Some(request.content_type));
    if headers_time {
        exchange.response_time(1_100_000_000, 0);
    }
    for (i, chunk) in request.response.chunks(64 * 1024).enumerate() {
        if exchange.wants_response_time() {
            exchange.response_time(1_300_000_000 + i as u64, chunk.len());
        }
        exchange.response_body(config, chunk);
    }
    let (mut declared, mut builtin) = (Vec::new(), 0);
    exchange.finish(config, models, 2_000_000_000, &mut |event| {
        let (series, value) = match event {
            Event::Count(s) => (s, 1),
            Event::Add(s, v) | Event::Observe(s, v) | Event::Set(s, v) => (s, v),
        };
        match series.metric {
            MetricId::Declared(_) => {
                let name = config.shape(series.metric).name.to_string();
                assert_eq!(&series.values[..2], ["prompter-api", "dev"]);
                let labels = series.values[2..].iter().map(|v| v.to_string()).collect();
                declared.push(Declared(name, labels, value));
            }
            MetricId::Catalog(_) => builtin += 1,
        }
    });
    (declared, builtin)
}

fn tokens(provider: &str, model: &str, kind: &str, n: u64) -> Declared {
    let labels = [provider, model, kind].map(String::from).to_vec();
    Declared("prompter_run_tokens_total".into(), labels, n)
}

fn first_byte(provider: &str, nanos: u64) -> Declared {
    Declared(
        "prompter_run_first_byte_seconds".into(),
        vec![provider.into()],
        nanos,
    )
}

fn tenant(tenant: &str, route: &str, status: &str) -> Declared {
    let labels = [tenant, route, status].map(String::from).to_vec();
    Declared("prompter_tenant_requests_total".into(), labels, 1)
}

#[test]
fn usage_after_a_two_megabyte_output_is_read_from_a_json_run() {
    let config = example();
    let output = "x".repeat(2 << 20);
    let response = format!(
        r#"{{"output":"{output}","provider":"openai","system_fingerprint":"fp","usage":{{"prompt_tokens":12,"completion_tokens":2097152,"total_tokens":2097164}}}}"#
    );
    let request = Request {
        tenant: Some(b"acme"),
        response: response.as_bytes(),
        ..Request::default()
    };
    let (declared, builtin) = run(&config, &mut ModelLabels::default(), &request);
    assert_eq!(
        declared,
        [
            tokens("openai", "gpt-4o", "prompt", 12),
            tokens("openai", "gpt-4o", "completion", 2_097_152),
            first_byte("openai", 300_000_000),
            tenant("acme", RUN_ROUTE, "200"),
        ]
    );
    // The built-ins are what they are without declared metrics.
    let (_, alone) = run(
        &Config::parse(b"", |_| None).unwrap(),
        &mut ModelLabels::default(),
        &request,
    );
    assert_eq!(builtin, alone);
}

#[test]
fn usage_on_the_last_event_of_a_stream_is_read() {
    let config = example();
    let stream = concat!(
        "data: {\"provider\":\"google\",\"model_id\":\"gemini\",\"delta\":\"a\",\"usage\":null}\n\n",
        "data: {\"delta\":\"b\"}\n\n",
        "data: {\"finish_reason\":\"stop\",\"usage\":{\"prompt_tokens\":7,\"completion_tokens\":2}}\n\n",
        "data: [DONE]\n\n"
    );
    let request = Request {
        body: r#"{"stream":true}"#,
        content_type: "text/event-stream",
        response: stream.as_bytes(),
        ..Request::default()
    };
    let (declared, _) = run(&config, &mut ModelLabels::default(), &request);
    assert_eq!(
        declared,
        [
            tokens("google", "gemini", "prompt", 7),
            tokens("google", "gemini", "completion", 2),
            first_byte("google", 300_000_000),
            tenant("none", RUN_ROUTE, "200"),
        ]
    );
}

#[test]
fn a_run_without_usage_or_not_answered_2xx_adds_no_tokens() {
    let config = example();
    let mut models = ModelLabels::default();
    let no_usage = Request {
        response: br#"{"output":"hi","provider":"openai"}"#,
        ..Request::default()
    };
    let (declared, _) = run(&config, &mut models, &no_usage);
    assert_eq!(
        declared,
        [
            first_byte("openai", 300_000_000),
            tenant("none", RUN_ROUTE, "200")
        ]
    );
    let failed = Request {
        status: "500",
        response: br#"{"usage":{"prompt_tokens":1,"completion_tokens":1}}"#,
        ..Request::default()
    };
    let (declared, _) = run(&config, &mut models, &failed);
    assert_eq!(declared, [tenant("none", RUN_ROUTE, "500")]);
    // Negative and fractional counts: a counter adds whole numbers only.
    let odd = Request {
        response: br#"{"usage":{"prompt_tokens":-3,"completion_tokens":2.6}}"#,
        ..Request::default()
    };
    let (declared, _) = run(&config, &mut models, &odd);
    assert_eq!(declared[0], tokens("openai", "gpt-4o", "completion", 3));
}

#[test]
fn tenants_are_capped_sanitized_and_none_when_absent() {
    let config = example();
    let mut models = ModelLabels::default();
    let listing = |tenant: Option<&[u8]>, models: &mut ModelLabels| {
        let request = Request {
            method: "GET",
            path: "/api/prompt-templates?limit=5",
            tenant,
            ..Request::default()
        };
        let (declared, _) = run(&config, models, &request);
        assert_eq!(declared.len(), 1, "{declared:?}");
        declared[0].1[0].clone()
    };
    for i in 0..20 {
        let name = format!("t{i}");
        assert_eq!(listing(Some(name.as_bytes()), &mut models), name);
    }
    assert_eq!(listing(Some(b"t20"), &mut models), "other");
    assert_eq!(
        listing(Some(b"t3"), &mut models),
        "t3",
        "a known tenant stays"
    );
    assert_eq!(listing(None, &mut models), "none");
    assert_eq!(listing(Some(b""), &mut models), "none");
    // A hostile value is sanitized before it is counted: it cannot open a tag of its own.
    let mut fresh = ModelLabels::default();
    assert_eq!(
        listing(Some(b"a;.;env=.=prod;.;\xff"), &mut fresh),
        "a_._env_._prod_.__"
    );
    let long = [b'x'; 300];
    assert_eq!(
        super::field_label(&crate::scanner::FieldValue::Bool(false), 3).as_deref(),
        Some("fal")
    );
    assert_eq!(listing(Some(&long), &mut fresh).len(), 64);
}

#[test]
fn a_request_no_entry_matches_reads_and_records_nothing_more() {
    let json = r#"{"metrics": [{"name": "x_total", "type": "counter", "when": {"routes": ["/healthz"]},
        "labels": [{"name": "t", "header": "x-t"}, {"name": "f", "field": "a.b"}]}]}"#;
    let config = Config::parse(json.as_bytes(), |_| None).unwrap();
    let exchange = Exchange::start(&config, Some("GET"), Some("/api/prompt-templates"), 0);
    assert!(!exchange.wants_request_headers());
    assert!(!exchange.wants_request_body());
    assert!(!exchange.wants_response_time());
    assert!(!exchange.reads_content_type());
    let exchange = Exchange::start(&config, Some("GET"), Some("/healthz"), 0);
    assert!(exchange.wants_request_headers());
    assert!(
        exchange.wants_request_body(),
        "a field may be in either body"
    );
}

#[test]
fn durations_labels_from_fields_and_response_kinds() {
    let json = r#"{"metrics": [
        {"name": "h_seconds", "type": "histogram", "buckets": [0.1, 1],
         "value": {"duration": "response_headers"}, "when": {"response": "json"}},
        {"name": "e_seconds", "type": "histogram", "value": {"duration": "exchange"},
         "labels": [{"name": "mode", "field": "meta.mode", "allow": ["fast", "slow"], "absent": "none"}]},
        {"name": "size_bytes", "type": "histogram", "buckets": [10, 100],
         "value": {"field": "size", "from": ["request"]}}
    ]}"#;
    let config = Config::parse(json.as_bytes(), |_| None).unwrap();
    let mut models = ModelLabels::default();
    let request = Request {
        method: "PUT",
        path: "/x",
        body: r#"{"size": 42.5}"#,
        response: br#"{"meta":{"mode":"fast"}}"#,
        ..Request::default()
    };
    let (declared, _) = run(&config, &mut models, &request);
    assert_eq!(
        declared,
        [
            Declared("h_seconds".into(), vec![], 100_000_000),
            Declared("e_seconds".into(), vec!["fast".into()], 1_000_000_000),
            Declared("size_bytes".into(), vec![], 42_500_000_000),
        ]
    );
    let event_stream = Request {
        content_type: "text/event-stream",
        response: b"data: {\"meta\":{\"mode\":\"warp\"}}\n\n",
        ..request
    };
    let (declared, _) = run(&config, &mut models, &event_stream);
    assert_eq!(
        declared,
        [
            Declared("e_seconds".into(), vec!["other".into()], 1_000_000_000),
            Declared("size_bytes".into(), vec![], 42_500_000_000),
        ],
        "not JSON: no h_seconds; a mode outside the allow-list is other"
    );
}
