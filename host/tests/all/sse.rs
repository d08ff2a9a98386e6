//! Streamed runs (`text/event-stream`) through the real filter module: counted like JSON runs,
//! whatever the chunking and line ends, and never paused or buffered.

use prompter_filter::catalog::{label, Metric};
use prompter_host::testing::{Harness, Request};
use prompter_host::vm::Action;

const NO_POLLING: &str = r#"{"health":{"interval_seconds":0}}"#;
const SE: [(&str, &str); 2] = [(label::SERVICE, "prompter-api"), (label::ENV, "dev")];
const RUN: &str = "/api/prompt-templates/t-1/run";

/// OpenAI-style: the provider in the first event, the fingerprint in a later one only.
const STREAM: &str = concat!(
    ": keep-alive\n\n",
    "data: {\"id\":\"r-1\",\"provider\":\"openai\",\"model_id\":\"gpt-4o\",\"choices\":[{\"delta\":{\"role\":\"assistant\"}}]}\n\n",
    "event: ping\nid: 2\n\n",
    "data: {\"id\":\"r-1\",\"choices\":[{\"delta\":{\"content\":\"Hello\"}}],\n",
    "data: \"system_fingerprint\":\"fp_44709d6fcb\"}\n\n",
    "data: [DONE]\n\n",
);

fn streamed(request: &str, body: &str) -> Request {
    Request::post(RUN, request)
        .response_header("content-type", "text/event-stream")
        .respond(body)
}

/// (results inserted, fingerprints present) so far.
fn counts(filter: &Harness) -> (f64, f64) {
    let series = filter.series();
    let get = |metric: Metric| series.get(metric.name(), &SE).unwrap_or(0.0);
    (get(Metric::ResultsInsert), get(Metric::FingerprintPresent))
}

#[test]
fn a_streamed_run_counts_once_whatever_the_chunking_and_is_never_held() {
    let filter = Harness::with_config(NO_POLLING);
    let sizes = 1..=STREAM.len();
    for size in sizes.clone() {
        let outcome = filter
            .exchange(&streamed(r#"{"model_id":"gpt-4o"}"#, STREAM).chunked(size))
            .unwrap();
        assert!(
            outcome.actions.iter().all(|a| *a == Action::Continue),
            "chunks of {size}: {:?}",
            outcome.actions
        );
        assert!(outcome.local_response.is_none());
    }
    let n = sizes.count() as f64;
    assert_eq!(counts(&filter), (n, n));
}

#[test]
fn crlf_and_cr_line_ends_read_the_same() {
    for end in ["\r\n", "\r"] {
        let filter = Harness::with_config(NO_POLLING);
        let stream = STREAM.replace('\n', end);
        for size in [1, 2, 3, 7, 64, usize::MAX] {
            filter
                .exchange(&streamed("{}", &stream).chunked(size))
                .unwrap();
        }
        assert_eq!(counts(&filter), (6.0, 6.0), "{end:?}");
    }
}

#[test]
fn fingerprints_count_only_when_an_event_has_a_non_empty_one_for_the_fingerprint_provider() {
    let filter = Harness::with_config(NO_POLLING);
    let no_fingerprint = STREAM.replace("fp_44709d6fcb", "");
    filter
        .exchange(&streamed("{}", &no_fingerprint).chunked(5))
        .unwrap();
    assert_eq!(counts(&filter), (1.0, 0.0));
    // The request's provider wins over the stream's.
    filter
        .exchange(&streamed(r#"{"provider":"google"}"#, STREAM).chunked(5))
        .unwrap();
    assert_eq!(counts(&filter), (2.0, 0.0));
    filter
        .exchange(&streamed(r#"{"provider":"OpenAI"}"#, STREAM).chunked(5))
        .unwrap();
    assert_eq!(counts(&filter), (3.0, 1.0));
    // Not a 2xx: no result was inserted.
    filter
        .exchange(&streamed("{}", STREAM).status(500).chunked(5))
        .unwrap();
    assert_eq!(counts(&filter), (3.0, 1.0));
}

#[test]
fn the_content_type_decides_how_the_body_is_read() {
    let filter = Harness::with_config(NO_POLLING);
    // Announced as JSON, an event stream is not a JSON document.
    filter
        .exchange(
            &Request::post(RUN, "{}")
                .response_header("content-type", "application/json")
                .respond(STREAM),
        )
        .unwrap();
    assert_eq!(counts(&filter), (1.0, 0.0));
    // Odd casing and parameters still announce an event stream; bytes that are not UTF-8
    // in the header do not break anything.
    filter
        .exchange(
            &Request::post(RUN, "{}")
                .response_header("Content-Type", "Text/Event-Stream; charset=utf-8")
                .respond(STREAM),
        )
        .unwrap();
    assert_eq!(counts(&filter), (2.0, 1.0));
    let mut odd = streamed("{}", STREAM);
    odd.response_headers = vec![(b"content-type".to_vec(), b"text/\xffevent-stream".to_vec())];
    filter.exchange(&odd).unwrap();
    assert_eq!(counts(&filter), (3.0, 1.0));
}

#[test]
fn a_long_stream_with_huge_events_is_read_to_its_end() {
    let filter = Harness::with_config(NO_POLLING);
    let delta = format!(
        "data: {{\"choices\":[{{\"delta\":{{\"content\":\"{}\"}}}}]}}\n\n",
        "x".repeat(1 << 20)
    );
    let mut stream = String::from("data: {\"provider\":\"openai\"}\n\n");
    for _ in 0..8 {
        stream.push_str(&delta);
    }
    stream.push_str("data: {\"system_fingerprint\":\"fp_late\"}\n\ndata: [DONE]\n\n");
    filter
        .exchange(&streamed("{}", &stream).chunked(16_384))
        .unwrap();
    assert_eq!(counts(&filter), (1.0, 1.0));
}
