//! `Exchange`: the events of an exchange do not depend on how its request and response
//! bodies were chunked, for every kind of route (probe, run with JSON or an event stream,
//! health, unique violation, plain) and status, with bodies that are JSON, broken or streams.

use prompter_filter::config::Config;
use prompter_filter::events::Event;
use prompter_filter::exchange::Exchange;
use prompter_filter::labels::ModelLabels;
use proptest::prelude::*;
use proptest::sample::Index;

use super::config;
use super::gen::{cuts, document, json_object, split};

/// An event with owned values, to compare runs.
#[derive(Debug, Clone, PartialEq)]
enum Seen {
    Count(String, Vec<String>),
    Add(String, Vec<String>, u64),
    Observe(String, Vec<String>, u64),
    Set(String, Vec<String>, u64),
}

fn owned(event: Event<'_>) -> Seen {
    let values = |v: &[&str]| v.iter().map(|s| s.to_string()).collect();
    match event {
        Event::Count(s) => Seen::Count(format!("{:?}", s.metric), values(s.values)),
        Event::Add(s, n) => Seen::Add(format!("{:?}", s.metric), values(s.values), n),
        Event::Observe(s, n) => Seen::Observe(format!("{:?}", s.metric), values(s.values), n),
        Event::Set(s, v) => Seen::Set(format!("{:?}", s.metric), values(s.values), v),
    }
}

const PATHS: [(&str, &str); 6] = [
    ("POST", "/api/prompt-templates/t-1/ensure-version"),
    ("POST", "/api/prompt-templates/t-1/run?stream=1"),
    ("GET", "/healthz"),
    ("POST", "/api/prompt-templates"),
    ("GET", "/api/prompt-templates/t-1"),
    ("BREW", "/nowhere"),
];
const STATUSES: [Option<&str>; 9] = [
    Some("200"),
    Some("201"),
    Some("409"),
    Some("429"),
    Some("404"),
    Some("500"),
    Some("503"),
    Some("2000"),
    None,
];
const CONTENT_TYPES: [Option<&str>; 3] = [
    None,
    Some("application/json"),
    Some("Text/Event-Stream; charset=utf-8"),
];

/// A body: a JSON document, the same as an event stream, or the document cut short.
fn body() -> impl Strategy<Value = Vec<u8>> {
    (json_object(), any::<u64>(), 0..3u8, any::<Index>()).prop_map(|(members, seed, form, cut)| {
        let doc = document(&members, seed);
        match form {
            0 => doc.into_bytes(),
            1 => format!(
                "data: {}\n\ndata: [DONE]\n\n",
                doc.replace(['\r', '\n'], " ")
            )
            .into_bytes(),
            _ => doc.as_bytes()[..cut.index(doc.len() + 1)].to_vec(),
        }
    })
}

struct Case<'a> {
    method: &'a str,
    path: &'a str,
    status: Option<&'a str>,
    content_type: Option<&'a str>,
    request: Vec<&'a [u8]>,
    response: Vec<&'a [u8]>,
}

fn events(config: &Config, case: &Case<'_>) -> Vec<Seen> {
    let start = 1_000_000_000;
    let mut exchange = Exchange::start(config, Some(case.method), Some(case.path), start);
    for chunk in &case.request {
        exchange.request_body(config, chunk);
    }
    exchange.response_headers(case.status, case.content_type);
    for chunk in &case.response {
        exchange.response_body(config, chunk);
    }
    let mut seen = Vec::new();
    let mut models = ModelLabels::default();
    exchange.finish(config, &mut models, start + 123_456_789, &mut |e| {
        seen.push(owned(e))
    });
    seen
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn any_chunking_of_both_bodies_gives_the_same_events(
        (method, path) in prop::sample::select(PATHS.to_vec()),
        status in prop::sample::select(STATUSES.to_vec()),
        content_type in prop::sample::select(CONTENT_TYPES.to_vec()),
        request in body(),
        response in body(),
        request_cuts in cuts(),
        response_cuts in cuts(),
    ) {
        let config = Config::parse(b"", |_| None).expect("the default configuration");
        let whole = Case {
            method, path, status, content_type,
            request: vec![&request[..]],
            response: vec![&response[..]],
        };
        let expected = events(&config, &whole);
        // Every exchange is counted and timed, whatever else it reports.
        prop_assert!(expected.len() >= 2, "{:?}", expected);
        let chunked = Case {
            request: split(&request, &request_cuts),
            response: split(&response, &response_cuts),
            ..whole
        };
        prop_assert_eq!(&events(&config, &chunked), &expected);
        let bytewise = Case {
            request: request.chunks(1).collect(),
            response: response.chunks(1).collect(),
            ..chunked
        };
        prop_assert_eq!(events(&config, &bytewise), expected);
    }
}
