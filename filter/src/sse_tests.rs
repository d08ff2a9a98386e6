//! The event-stream reader: what it reads from each event, whatever the chunking and line ends.

use super::*;
use crate::scanner::MAX_VALUE_LEN;

const KEYS: [&str; 3] = ["provider", "model_id", "system_fingerprint"];

/// What a stream gave: provider, model, fingerprint (as text, `-` when absent), events, done.
#[derive(Debug, PartialEq)]
struct Read {
    fields: [String; 3],
    events: u32,
    done: bool,
}

fn show(value: &FieldValue) -> String {
    match value {
        FieldValue::Str(s) => s.as_str().to_string(),
        FieldValue::TooLong => "<too long>".to_string(),
        _ => "-".to_string(),
    }
}

fn scan<'a>(chunks: impl IntoIterator<Item = &'a [u8]>) -> Read {
    let fields = FieldSet::new(&KEYS).unwrap();
    let mut s = SseFieldScanner::new();
    for chunk in chunks {
        s.feed(&fields, chunk);
    }
    Read {
        fields: [0, 1, 2].map(|i| show(s.field(i))),
        events: s.events(),
        done: s.is_done(),
    }
}

fn whole(stream: &str) -> Read {
    scan([stream.as_bytes()])
}

fn read(fields: [&str; 3], events: u32, done: bool) -> Read {
    Read {
        fields: fields.map(str::to_string),
        events,
        done,
    }
}

/// An OpenAI-style stream: the provider in the first event, the fingerprint in every one.
const OPENAI: &str = concat!(
    ": keep-alive\n\n",
    r#"data: {"id":"r-1","provider":"openai","model_id":"gpt-4o","system_fingerprint":"fp_1","choices":[{"delta":{"role":"assistant"}}]}"#,
    "\n\n",
    r#"data: {"id":"r-1","system_fingerprint":"fp_1","choices":[{"delta":{"content":"Hello \"you\"\n"}}]}"#,
    "\n\n",
    r#"data: {"id":"r-1","system_fingerprint":"fp_1","choices":[{"delta":{},"finish_reason":"stop"}]}"#,
    "\n\n",
    "data: [DONE]\n\n",
);

#[test]
fn event_stream_content_types() {
    for yes in [
        "text/event-stream",
        "Text/Event-Stream",
        "text/event-stream; charset=utf-8",
        " text/event-stream ;charset=utf-8",
    ] {
        assert!(is_event_stream(Some(yes)), "{yes}");
    }
    for no in [
        "application/json",
        "text/event-streams",
        "text/plain; x=text/event-stream",
        "",
    ] {
        assert!(!is_event_stream(Some(no)), "{no}");
    }
    assert!(!is_event_stream(None));
}

#[test]
fn an_openai_stream_gives_its_provider_model_and_fingerprint() {
    assert_eq!(whole(OPENAI), read(["openai", "gpt-4o", "fp_1"], 4, true));
}

#[test]
fn every_split_point_and_every_chunk_size_read_the_same() {
    let expected = whole(OPENAI);
    let bytes = OPENAI.as_bytes();
    for at in 0..=bytes.len() {
        let (a, b) = bytes.split_at(at);
        assert_eq!(scan([a, b]), expected, "split at {at}");
    }
    for size in 1..=bytes.len() {
        assert_eq!(scan(bytes.chunks(size)), expected, "chunks of {size}");
    }
}

#[test]
fn lines_may_end_with_lf_cr_or_crlf_even_split_between_chunks() {
    for end in ["\n", "\r", "\r\n"] {
        // The escaped `\n` inside a JSON string is not a line end, and stays.
        let stream = OPENAI.replace('\n', end);
        let bytes = stream.as_bytes();
        for at in 0..=bytes.len() {
            let (a, b) = bytes.split_at(at);
            assert_eq!(
                scan([a, b]),
                read(["openai", "gpt-4o", "fp_1"], 4, true),
                "{end:?} split at {at}"
            );
        }
    }
    // CR then LF is one line end; LF then CR, or CR CR, are two: a blank line between ends
    // the event early.
    assert_eq!(
        whole("data: {\"provider\":\r\ndata: \"openai\"}\r\n\r\n"),
        read(["openai", "-", "-"], 1, false)
    );
    assert_eq!(
        whole("data: {\"provider\":\n\rdata: \"openai\"}\n\n"),
        read(["-", "-", "-"], 2, false)
    );
    assert_eq!(
        whole("data: {\"provider\":\r\rdata: \"openai\"}\r\r"),
        read(["-", "-", "-"], 2, false)
    );
}

#[test]
fn data_lines_of_one_event_are_joined_with_line_feeds() {
    let stream = "data: {\ndata: \"provider\"\ndata:\n  data:   :  \"openai\",\ndata\ndata:\"system_fingerprint\": \"fp\"}\n\n";
    // `  data:` is not a data line (a field named `  data`), so the JSON stays whole.
    assert_eq!(whole(stream), read(["-", "-", "-"], 1, false));
    let stream = "data: {\ndata: \"provider\"\ndata:\ndata:   :  \"openai\",\ndata\ndata:\"system_fingerprint\": \"fp\"}\n\n";
    assert_eq!(whole(stream), read(["openai", "-", "fp"], 1, false));
}

#[test]
fn comments_and_other_fields_are_skipped() {
    let stream = concat!(
        ":comment with data: {\"provider\":\"google\"}\n",
        "event: message\n",
        "id: 7\n",
        "retry: 100\n",
        "datum: {\"provider\":\"google\"}\n",
        "dat: {\"provider\":\"google\"}\n",
        "data2: {\"provider\":\"google\"}\n",
        "Data: {\"provider\":\"google\"}\n",
        " data: {\"provider\":\"google\"}\n",
        "data:{\"provider\":\"openai\"}\n",
        ": a comment inside the event\n",
        "\n",
        "event: ping\n\n",
    );
    // The event with only `event: ping` has no data: it is not dispatched.
    assert_eq!(whole(stream), read(["openai", "-", "-"], 1, false));
}

#[test]
fn the_first_non_empty_value_of_each_field_is_kept() {
    let stream = concat!(
        "data: {\"provider\":\"\",\"system_fingerprint\":null}\n\n",
        "data: {\"choices\":[{\"provider\":\"nested\",\"system_fingerprint\":\"nested\"}]}\n\n",
        "data: {\"provider\":\"anthropic\",\"system_fingerprint\":\"\"}\n\n",
        "data: {\"provider\":\"openai\",\"model_id\":\"m\"}\n\n",
        "data: {\"system_fingerprint\":\"fp_late\"}\n\n",
        "data: {\"system_fingerprint\":\"fp_later\"}\n\n",
    );
    assert_eq!(whole(stream), read(["anthropic", "m", "fp_late"], 6, false));
    let empty = "data: {\"provider\":\"openai\",\"system_fingerprint\":\"\"}\n\n".repeat(3);
    assert_eq!(whole(&empty), read(["openai", "-", "-"], 3, false));
}

#[test]
fn an_event_still_open_at_the_end_is_not_dispatched() {
    assert_eq!(
        whole("data: {\"provider\":\"openai\"}\n"),
        read(["-", "-", "-"], 0, false)
    );
    assert_eq!(
        whole("data: {\"provider\":\"openai\"}"),
        read(["-", "-", "-"], 0, false)
    );
    assert_eq!(whole("data: [DONE]\n"), read(["-", "-", "-"], 0, false));
}

#[test]
fn done_is_only_the_exact_marker() {
    assert!(whole("data: [DONE]\n\n").done);
    assert!(whole("data:[DONE]\r\n\r\n").done);
    for not_done in [
        "data: [DONE] \n\n",
        "data: [DONE\n\n",
        "data: [DONE]]\n\n",
        "data: [DONE]\ndata: \n\n",
        "data:  [DONE]\n\n",
        "data: [done]\n\n",
    ] {
        assert!(!whole(not_done).done, "{not_done:?}");
    }
}

#[test]
fn a_leading_bom_is_skipped() {
    let stream = format!("\u{FEFF}{OPENAI}");
    assert_eq!(whole(&stream), whole(OPENAI));
    // A broken BOM spoils its own line only.
    let mut bytes = vec![0xEF, 0xBB];
    bytes.extend_from_slice(b"data: {\"provider\":\"google\"}\n");
    bytes.extend_from_slice(OPENAI.as_bytes());
    assert_eq!(scan([&bytes[..]]), whole(OPENAI));
}

#[test]
fn garbage_reads_nothing_and_never_panics() {
    assert_eq!(
        whole("<html><body>{\"provider\":\"openai\"}</body></html>\n\n"),
        read(["-", "-", "-"], 0, false)
    );
    assert_eq!(
        whole("data: not json\n\ndata: {\"provider\":\"openai\" \"x\"}\n\n"),
        read(["-", "-", "-"], 2, false)
    );
    // A deterministic walk through bytes that matter to the reader.
    let alphabet: &[&[u8]] = &[
        b"data",
        b":",
        b" ",
        b"\r",
        b"\n",
        b"{",
        b"}",
        b"\"",
        b"provider",
        b"[DONE]",
        b"\xEF",
        b"\xBB\xBF",
        b"\\",
        b"x",
    ];
    let fields = FieldSet::new(&KEYS).unwrap();
    let mut s = SseFieldScanner::new();
    let mut seed = 0x2545_f491_4f6c_dd1d_u64;
    for _ in 0..200_000 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let token = alphabet[(seed % alphabet.len() as u64) as usize];
        s.feed(&fields, token);
    }
    for i in 0..MAX_FIELDS {
        if let FieldValue::Str(v) = s.field(i) {
            assert!(!v.as_str().is_empty());
        }
    }
}

#[test]
fn huge_lines_and_events_cost_no_memory() {
    // The whole state is a fixed-size struct (its size grows with MAX_FIELDS, not with the
    // stream); nothing is kept per line or per event.
    assert!(std::mem::size_of::<SseFieldScanner>() < 4096);
    let big = "y".repeat(8 << 20);
    let stream = format!(
        ": {big}\n{big}: {{\"provider\":\"google\"}}\nevent: {big}\ndata: {{\"output\":\"{big}\",\ndata: \"provider\":\"openai\",\"model_id\":\"{big}\",\ndata: \"system_fingerprint\":\"fp_9\"}}\n\ndata: [DONE]\n\n"
    );
    let fields = FieldSet::new(&KEYS).unwrap();
    let mut s = SseFieldScanner::new();
    for chunk in stream.as_bytes().chunks(65_536) {
        s.feed(&fields, chunk);
    }
    assert_eq!(show(s.field(0)), "openai");
    assert_eq!(s.field(1), &FieldValue::TooLong);
    assert_eq!(show(s.field(2)), "fp_9");
    assert_eq!((s.events(), s.is_done()), (2, true));
    // An over-long fingerprint is still a fingerprint.
    let long = format!(
        "data: {{\"system_fingerprint\":\"{}\"}}\n\n",
        "f".repeat(MAX_VALUE_LEN + 1)
    );
    assert_eq!(whole(&long).fields[2], "<too long>");
}
