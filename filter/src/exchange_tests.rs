//! What one exchange reports, metric by metric, as PROMPTER_API.md defines it.

use super::*;

/// An event with owned values, easy to compare.
#[derive(Debug, Clone, PartialEq)]
enum Seen {
    Count(Metric, Vec<String>),
    Observe(Metric, Vec<String>, f64),
    Set(Metric, Vec<String>, u64),
}

/// The catalog metric of a built-in's event (these tests declare no metric).
fn catalog(metric: crate::events::MetricId) -> Metric {
    match metric {
        crate::events::MetricId::Catalog(metric) => metric,
        declared => panic!("nothing is declared here: {declared:?}"),
    }
}

fn owned(values: &[&str]) -> Vec<String> {
    values.iter().map(|v| v.to_string()).collect()
}

fn config() -> Config {
    Config::parse(b"", |_| None).unwrap()
}

/// Runs one exchange: request line and body, then status and response body, all at once or
/// in `chunk`-byte pieces; the response ends 0.25 s after the request started.
struct Run<'a> {
    method: &'a str,
    path: &'a str,
    request: &'a str,
    status: Option<&'a str>,
    content_type: Option<&'a str>,
    response: &'a str,
    chunk: usize,
}

impl Default for Run<'_> {
    fn default() -> Self {
        Run {
            method: "GET",
            path: "/",
            request: "",
            status: Some("200"),
            content_type: None,
            response: "",
            chunk: usize::MAX,
        }
    }
}

impl Run<'_> {
    fn events_with(&self, config: &Config, models: &mut ModelLabels) -> Vec<Seen> {
        let start = 1_000_000_000;
        let mut exchange = Exchange::start(config, Some(self.method), Some(self.path), start);
        for piece in self.request.as_bytes().chunks(self.chunk.max(1)) {
            exchange.request_body(config, piece);
        }
        exchange.response_headers(self.status, self.content_type);
        for piece in self.response.as_bytes().chunks(self.chunk.max(1)) {
            exchange.response_body(config, piece);
        }
        let mut seen = Vec::new();
        exchange.finish(config, models, start + 250_000_000, &mut |event| {
            seen.push(match event {
                Event::Count(s) => Seen::Count(catalog(s.metric), owned(s.values)),
                Event::Observe(s, v) => {
                    Seen::Observe(catalog(s.metric), owned(s.values), v as f64 / 1e9)
                }
                Event::Set(s, v) => Seen::Set(catalog(s.metric), owned(s.values), v),
                Event::Add(..) => panic!("the built-ins add one at a time: {event:?}"),
            })
        });
        seen
    }

    fn events(&self) -> Vec<Seen> {
        self.events_with(&config(), &mut ModelLabels::default())
    }

    /// The events other than the request counter and latency every exchange has.
    fn domain_events(&self) -> Vec<Seen> {
        let mut events = self.events();
        events.drain(..2);
        events
    }
}

fn count(metric: Metric, values: &[&str]) -> Seen {
    Seen::Count(metric, owned(values))
}

const ENSURE: &str = "/api/prompt-templates/t-1/ensure-version";
const RUN: &str = "/api/prompt-templates/t-1/run";
const SE: [&str; 2] = ["prompter-api", "dev"];

#[test]
fn every_request_is_counted_with_its_route_template_and_timed_in_seconds() {
    let events = Run {
        path: "/api/prompt-templates/t-9?x=1",
        status: Some("404"),
        ..Run::default()
    }
    .events();
    let route = "/api/prompt-templates/{template_id}";
    assert_eq!(
        events,
        vec![
            count(
                Metric::RequestsTotal,
                &["prompter-api", "dev", "GET", route, "404"]
            ),
            Seen::Observe(
                Metric::RequestSeconds,
                owned(&["prompter-api", "dev", "GET", route]),
                0.25
            ),
        ]
    );
}

#[test]
fn unmatched_paths_odd_methods_and_odd_statuses_stay_bounded() {
    let events = Run {
        method: "BREW",
        path: "/users/42/secret",
        status: Some("2000"),
        ..Run::default()
    }
    .events();
    assert_eq!(
        events[0],
        count(
            Metric::RequestsTotal,
            &["prompter-api", "dev", "other", "unmatched", "0"]
        )
    );
    let events = Run {
        path: "/healthz",
        status: None,
        ..Run::default()
    }
    .events();
    assert_eq!(
        events[0],
        count(
            Metric::RequestsTotal,
            &["prompter-api", "dev", "GET", "/healthz", "0"]
        )
    );
}

#[test]
fn probes_count_attempts_failures_and_their_duration() {
    let body = r#"{"provider":"openai","model_id":"gpt-4o"}"#;
    let probe = |status: Option<&'static str>| Run {
        method: "POST",
        path: ENSURE,
        request: body,
        status,
        ..Run::default()
    };
    let attempt = count(
        Metric::ProbeAttempts,
        &["prompter-api", "dev", "openai", "gpt-4o"],
    );
    let failure = count(
        Metric::ProbeFailures,
        &["prompter-api", "dev", "openai", "gpt-4o"],
    );
    let timing = Seen::Observe(
        Metric::EnsureVersionSeconds,
        owned(&["prompter-api", "dev", "openai"]),
        0.25,
    );

    assert_eq!(
        probe(Some("200")).domain_events(),
        vec![attempt.clone(), timing.clone()]
    );
    assert_eq!(
        probe(Some("502")).domain_events(),
        vec![attempt.clone(), failure.clone(), timing.clone()]
    );
    // Envoy's own answers when the upstream could not answer are failed attempts.
    for own in ["503", "504"] {
        assert_eq!(
            probe(Some(own)).domain_events(),
            vec![attempt.clone(), failure.clone(), timing.clone()]
        );
    }
    // No status at all: the client hung up before the answer, which may still have come.
    assert_eq!(probe(None).domain_events(), vec![]);
    // A 4xx never reached the provider.
    assert_eq!(probe(Some("404")).domain_events(), vec![]);
    assert_eq!(probe(Some("422")).domain_events(), vec![]);
    // Nor does a status past 599 say what the provider did: labelled with its number, no
    // probe counted.
    assert_eq!(probe(Some("600")).domain_events(), vec![]);
    assert_eq!(
        probe(Some("999")).events()[0],
        count(
            Metric::RequestsTotal,
            &[
                "prompter-api",
                "dev",
                "POST",
                "/api/prompt-templates/{template_id}/ensure-version",
                "999"
            ]
        )
    );
    // Another method on the same route is not a probe.
    assert_eq!(
        Run {
            method: "GET",
            path: ENSURE,
            request: body,
            ..Run::default()
        }
        .domain_events(),
        vec![]
    );
}

#[test]
fn provider_and_model_come_from_the_request_else_the_response_else_unknown() {
    let run = |request: &'static str, response: &'static str| {
        Run {
            method: "POST",
            path: ENSURE,
            request,
            response,
            ..Run::default()
        }
        .domain_events()[0]
            .clone()
    };
    let attempt = |p: &str, m: &str| count(Metric::ProbeAttempts, &["prompter-api", "dev", p, m]);
    assert_eq!(
        run(
            r#"{"model_id":"m1","provider":"google"}"#,
            r#"{"provider":"openai","model_id":"m2"}"#
        ),
        attempt("google", "m1")
    );
    assert_eq!(
        run("", r#"{"provider":"anthropic","model_id":"claude"}"#),
        attempt("anthropic", "claude")
    );
    assert_eq!(run("not json", "<html>"), attempt("unknown", "unknown"));
    // An empty string is no value: the response's is taken, as for a missing one.
    assert_eq!(
        run(
            r#"{"provider":"","model_id":""}"#,
            r#"{"provider":"google","model_id":"m2"}"#
        ),
        attempt("google", "m2")
    );
    assert_eq!(
        run(r#"{"provider":"","model_id":""}"#, "{}"),
        attempt("unknown", "unknown")
    );
    assert_eq!(
        run(r#"{"meta":{"provider":"openai"}}"#, "{}"),
        attempt("unknown", "unknown")
    );
    assert_eq!(
        run(
            r#"{"provider":"Mistral","model_id":"x;.;env=.=prod;.;"}"#,
            ""
        ),
        attempt("other", "x_._env_._prod_._")
    );
    let long = format!(
        r#"{{"provider":"openai","model_id":"{}"}}"#,
        "m".repeat(500)
    );
    let events = Run {
        method: "POST",
        path: ENSURE,
        request: &long,
        ..Run::default()
    }
    .domain_events();
    assert_eq!(events[0], attempt("openai", "other"));
}

#[test]
fn models_per_provider_are_capped() {
    let config = Config::parse(br#"{"models":{"max_per_provider":2}}"#, |_| None).unwrap();
    let mut models = ModelLabels::default();
    let mut model_of = |id: &str| {
        let body = format!(r#"{{"provider":"openai","model_id":"{id}"}}"#);
        let events = Run {
            method: "POST",
            path: ENSURE,
            request: &body,
            ..Run::default()
        }
        .events_with(&config, &mut models);
        match &events[2] {
            Seen::Count(_, values) => values[3].clone(),
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(model_of("a"), "a");
    assert_eq!(model_of("b"), "b");
    assert_eq!(model_of("c"), "other");
    assert_eq!(model_of("a"), "a");
}

#[test]
fn runs_insert_results_and_count_openai_fingerprints() {
    let run = |request: &'static str, status: &'static str, response: &'static str| {
        Run {
            method: "POST",
            path: RUN,
            request,
            status: Some(status),
            response,
            chunk: 1,
            ..Run::default()
        }
        .domain_events()
    };
    let insert = count(Metric::ResultsInsert, &SE);
    let fingerprint = count(Metric::FingerprintPresent, &SE);
    let openai = r#"{"provider":"openai","model_id":"gpt-4o"}"#;
    assert_eq!(
        run(
            openai,
            "200",
            r#"{"output":"a \"quoted\" {text}","system_fingerprint":"fp_1"}"#
        ),
        vec![insert.clone(), fingerprint.clone()]
    );
    assert_eq!(
        run(openai, "200", r#"{"system_fingerprint":""}"#),
        vec![insert.clone()]
    );
    assert_eq!(
        run(openai, "200", r#"{"system_fingerprint":null}"#),
        vec![insert.clone()]
    );
    assert_eq!(
        run(openai, "200", r#"{"meta":{"system_fingerprint":"fp"}}"#),
        vec![insert.clone()]
    );
    let google = r#"{"provider":"google","model_id":"gemini"}"#;
    assert_eq!(
        run(google, "200", r#"{"system_fingerprint":"fp_1"}"#),
        vec![insert.clone()]
    );
    // The provider may only be in the response.
    assert_eq!(
        run(
            "{}",
            "201",
            r#"{"provider":"openai","system_fingerprint":"fp_1"}"#
        ),
        vec![insert, fingerprint]
    );
    assert_eq!(run(openai, "500", r#"{"detail":"x"}"#), vec![]);
}

#[test]
fn the_fingerprint_provider_is_matched_like_providers_are() {
    let events = Run {
        method: "POST",
        path: RUN,
        request: r#"{"provider":" OpenAI "}"#,
        response: r#"{"system_fingerprint":"fp_1"}"#,
        ..Run::default()
    }
    .domain_events();
    assert_eq!(
        events,
        vec![
            count(Metric::ResultsInsert, &SE),
            count(Metric::FingerprintPresent, &SE)
        ]
    );
}

const EVENT_STREAM: Option<&str> = Some("text/event-stream; charset=utf-8");

/// A streamed run: the provider in the first event, the fingerprint only in a later one.
const STREAMED: &str = concat!(
    ": keep-alive\r\n\r\n",
    "data: {\"provider\":\"openai\",\"model_id\":\"gpt-4o\",\"system_fingerprint\":\"\"}\r\n\r\n",
    "data: {\"choices\":[{\"delta\":{\"content\":\"Hi\"}}],\r\n",
    "data: \"system_fingerprint\":\"fp_1\"}\r\n\r\n",
    "data: [DONE]\r\n\r\n",
);

#[test]
fn streamed_runs_count_like_json_ones_whatever_the_chunking() {
    let streamed = |request: &'static str, status: &'static str, response: &str, chunk| {
        Run {
            method: "POST",
            path: RUN,
            request,
            status: Some(status),
            content_type: EVENT_STREAM,
            response,
            chunk,
        }
        .domain_events()
    };
    let insert = count(Metric::ResultsInsert, &SE);
    let fingerprint = count(Metric::FingerprintPresent, &SE);
    for chunk in 1..=STREAMED.len() {
        assert_eq!(
            streamed("{}", "200", STREAMED, chunk),
            vec![insert.clone(), fingerprint.clone()],
            "chunk {chunk}"
        );
    }
    let openai = r#"{"provider":"openai","model_id":"gpt-4o"}"#;
    let no_fingerprint = STREAMED.replace("fp_1", "");
    assert_eq!(
        streamed(openai, "200", &no_fingerprint, 5),
        vec![insert.clone()]
    );
    // The request's provider wins over the stream's.
    let google = r#"{"provider":"google","model_id":"gemini"}"#;
    assert_eq!(
        streamed(google, "200", STREAMED, usize::MAX),
        vec![insert.clone()]
    );
    // An event left open when the stream ends is not an event.
    let open = "data: {\"provider\":\"openai\",\"system_fingerprint\":\"fp_1\"}\n";
    assert_eq!(streamed("{}", "200", open, 3), vec![insert.clone()]);
    assert_eq!(streamed(openai, "500", STREAMED, 7), vec![]);
    assert_eq!(
        streamed(openai, "429", STREAMED, 7),
        vec![count(
            Metric::RateLimitHits,
            &[
                "prompter-api",
                "dev",
                "/api/prompt-templates/{template_id}/run"
            ]
        )]
    );
}

#[test]
fn a_body_is_read_as_events_only_on_runs_announced_as_event_streams() {
    // The same bytes announced as JSON are not a JSON document: nothing but the insert.
    let as_json = Run {
        method: "POST",
        path: RUN,
        request: "{}",
        content_type: Some("application/json"),
        response: STREAMED,
        ..Run::default()
    };
    assert_eq!(
        as_json.domain_events(),
        vec![count(Metric::ResultsInsert, &SE)]
    );
    // A JSON run body announced as an event stream has no events.
    let json_as_events = Run {
        method: "POST",
        path: RUN,
        request: "{}",
        content_type: EVENT_STREAM,
        response: r#"{"provider":"openai","system_fingerprint":"fp_1"}"#,
        ..Run::default()
    };
    assert_eq!(
        json_as_events.domain_events(),
        vec![count(Metric::ResultsInsert, &SE)]
    );
    // Probes and health checks read JSON whatever the content type says.
    let probe = Run {
        method: "POST",
        path: ENSURE,
        content_type: EVENT_STREAM,
        response: r#"{"provider":"google","model_id":"gemini"}"#,
        ..Run::default()
    };
    assert_eq!(
        probe.domain_events()[0],
        count(
            Metric::ProbeAttempts,
            &["prompter-api", "dev", "google", "gemini"]
        )
    );
    let health = Run {
        path: "/healthz",
        content_type: EVENT_STREAM,
        response: r#"{"redis":true}"#,
        ..Run::default()
    };
    assert_eq!(
        health.domain_events(),
        vec![Seen::Set(Metric::RedisUp, owned(&SE), 1)]
    );
}

#[test]
fn a_2_mb_output_before_the_fingerprint_is_read_whatever_the_chunking() {
    let response = format!(
        r#"{{"output":"{}","provider":"openai","system_fingerprint":"fp_9"}}"#,
        "o".repeat(2 << 20)
    );
    for chunk in [7, 65_536, usize::MAX] {
        let events = Run {
            method: "POST",
            path: RUN,
            request: "{}",
            response: &response,
            chunk,
            ..Run::default()
        }
        .domain_events();
        assert_eq!(
            events,
            vec![
                count(Metric::ResultsInsert, &SE),
                count(Metric::FingerprintPresent, &SE)
            ],
            "chunk {chunk}"
        );
    }
}

#[test]
fn conflicts_on_mapped_routes_are_unique_violations() {
    let create = Run {
        method: "POST",
        path: "/api/prompt-templates",
        status: Some("409"),
        ..Run::default()
    };
    assert_eq!(
        create.domain_events(),
        vec![count(
            Metric::UniqueViolations,
            &["prompter-api", "dev", "prompt_templates"]
        )]
    );
    let elsewhere = Run {
        method: "PUT",
        path: "/api/prompt-templates",
        status: Some("409"),
        ..Run::default()
    };
    assert_eq!(elsewhere.domain_events(), vec![]);
}

#[test]
fn too_many_requests_are_rate_limit_hits_by_route_template() {
    let limited = Run {
        method: "POST",
        path: RUN,
        request: r#"{"provider":"openai"}"#,
        status: Some("429"),
        ..Run::default()
    };
    let endpoint = "/api/prompt-templates/{template_id}/run";
    assert_eq!(
        limited.domain_events(),
        vec![count(
            Metric::RateLimitHits,
            &["prompter-api", "dev", endpoint]
        )]
    );
    let unmatched = Run {
        path: "/elsewhere",
        status: Some("429"),
        ..Run::default()
    };
    assert_eq!(
        unmatched.domain_events(),
        vec![count(
            Metric::RateLimitHits,
            &["prompter-api", "dev", "unmatched"]
        )]
    );
}

#[test]
fn health_responses_passing_through_set_the_redis_gauge() {
    let health = |status: &'static str, response: &'static str| {
        Run {
            path: "/healthz?full=1",
            status: Some(status),
            response,
            chunk: 2,
            ..Run::default()
        }
        .domain_events()
    };
    assert_eq!(
        health("200", r#"{"status":"ok","redis":true}"#),
        vec![Seen::Set(Metric::RedisUp, owned(&SE), 1)]
    );
    assert_eq!(
        health("503", r#"{"status":"degraded","redis":false}"#),
        vec![Seen::Set(Metric::RedisUp, owned(&SE), 0)]
    );
    // Nothing to read: the gauge is left to the poller.
    assert_eq!(health("502", "upstream connect error"), vec![]);
    assert_eq!(health("200", r#"{"redis":"yes"}"#), vec![]);
}

#[test]
fn health_polls_read_the_redis_field_and_fail_to_zero() {
    let config = config();
    assert_eq!(
        health_poll_value(&config, Some(br#"{"status":"ok","redis":true}"#)),
        1
    );
    assert_eq!(health_poll_value(&config, Some(br#"{"redis":false}"#)), 0);
    assert_eq!(health_poll_value(&config, Some(b"<html>")), 0);
    assert_eq!(health_poll_value(&config, None), 0);
}

#[test]
fn only_routes_that_need_a_body_read_one() {
    let config = config();
    let list = Exchange::start(&config, Some("GET"), Some("/api/prompt-templates"), 0);
    assert!(!list.wants_request_body());
    let mut probe = Exchange::start(&config, Some("POST"), Some(ENSURE), 0);
    assert!(probe.wants_request_body());
    probe.response_headers(Some("200"), None);
    let mut asked = Vec::new();
    probe.response_chunk(&config, 100, |range| {
        asked.push((range.start, range.end));
        None::<&[u8]>
    });
    assert_eq!(asked, [(0, 100)]);
    let mut plain = Exchange::start(&config, Some("POST"), Some("/api/prompt-templates"), 0);
    plain.response_headers(Some("201"), None);
    plain.response_chunk(&config, 100, |range| -> Option<&[u8]> {
        panic!("{range:?} read on a route that needs no body")
    });
}

#[test]
fn a_probe_whose_request_named_provider_and_model_leaves_the_response_unread() {
    let config = config();
    let path = "/api/prompt-templates/t-1/ensure-version";
    let reads = |request: &str| {
        let mut exchange = Exchange::start(&config, Some("POST"), Some(path), 0);
        exchange.request_body(&config, request.as_bytes());
        exchange.response_headers(Some("200"), Some("application/json"));
        let mut reads = 0;
        exchange.response_chunk(&config, 10, |range| {
            reads += 1;
            Some(vec![b' '; range.len()])
        });
        reads
    };
    assert_eq!(reads(r#"{"provider":"openai","model_id":"gpt-4o"}"#), 0);
    assert_eq!(
        reads(r#"{"provider":"openai"}"#),
        1,
        "the model may be in the response"
    );
    assert_eq!(reads(r#"{"provider":"openai","model_id":""}"#), 1);
}
