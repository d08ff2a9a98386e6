//! The event-stream reader on arbitrary bytes: never panics; fed whole, chunked or byte by
//! byte it reports the same fields, event count and `[DONE]`; and those are what a plain
//! line-by-line reading of the stream as the SSE specification says gives (each event's
//! data scanned whole by the JSON scanner).
#![no_main]

use libfuzzer_sys::fuzz_target;
use prompter_filter::scanner::{FieldSet, FieldValue, JsonFieldScanner, MAX_VALUE_LEN};
use prompter_filter::sse::SseFieldScanner;
use prompter_filter_fuzz::split_input;

const KEYS: [&str; 3] = ["a", "provider", "system_fingerprint"];

#[derive(Debug, PartialEq)]
struct Outcome {
    values: Vec<FieldValue>,
    events: u32,
    done: bool,
}

fn scan<'a>(fields: &FieldSet, chunks: impl IntoIterator<Item = &'a [u8]>) -> Outcome {
    let mut scanner = SseFieldScanner::new();
    for chunk in chunks {
        scanner.feed(fields, chunk);
    }
    Outcome {
        values: (0..fields.len())
            .map(|i| scanner.field(i).clone())
            .collect(),
        events: scanner.events(),
        done: scanner.is_done(),
    }
}

/// The specification's reading, on the whole stream: split into lines (CR, LF or CRLF), a
/// leading BOM dropped, `:` lines are comments, the field name runs to the first `:` and one
/// space after it is dropped, `data` values are joined with LF, a blank line dispatches the
/// event if it had data, and an event still open at the end is dropped.
fn reference(fields: &FieldSet, body: &[u8]) -> Outcome {
    let body = body.strip_prefix("\u{FEFF}".as_bytes()).unwrap_or(body);
    let mut out = Outcome {
        values: vec![FieldValue::Absent; fields.len()],
        events: 0,
        done: false,
    };
    let mut data: Option<Vec<u8>> = None;
    let mut rest = body;
    // Only lines that end are read: the last one, unterminated, can never dispatch.
    while let Some(end) = rest.iter().position(|b| matches!(b, b'\r' | b'\n')) {
        let line = &rest[..end];
        let crlf = rest[end] == b'\r' && rest.get(end + 1) == Some(&b'\n');
        rest = &rest[end + 1 + usize::from(crlf)..];
        if line.is_empty() {
            let Some(event) = data.take() else { continue };
            out.events += 1;
            out.done |= event == b"[DONE]";
            let mut scanner = JsonFieldScanner::new();
            scanner.feed(fields, &event);
            for (i, slot) in out.values.iter_mut().enumerate() {
                let value = scanner.field(i);
                let non_empty = match value {
                    FieldValue::Str(s) => !s.as_str().is_empty(),
                    FieldValue::TooLong | FieldValue::Number(_) => true,
                    _ => false,
                };
                if *slot == FieldValue::Absent && non_empty {
                    *slot = value.clone();
                }
            }
            continue;
        }
        let (name, value) = match line.iter().position(|b| *b == b':') {
            Some(colon) => {
                let value = &line[colon + 1..];
                (&line[..colon], value.strip_prefix(b" ").unwrap_or(value))
            }
            None => (line, &b""[..]),
        };
        if name == b"data" {
            match &mut data {
                Some(buffer) => {
                    buffer.push(b'\n');
                    buffer.extend_from_slice(value);
                }
                None => data = Some(value.to_vec()),
            }
        }
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let fields = FieldSet::new(&KEYS).expect("valid keys");
    let (body, chunked) = split_input(data);
    let whole = scan(&fields, [body]);
    assert_eq!(scan(&fields, chunked), whole, "chunked");
    assert_eq!(scan(&fields, body.chunks(1)), whole, "byte by byte");
    assert_eq!(
        reference(&fields, body),
        whole,
        "the specification's reading"
    );
    // Only non-empty strings and numbers are folded into the stream's fields.
    for value in &whole.values {
        match value {
            FieldValue::Absent | FieldValue::TooLong => {}
            FieldValue::Number(n) => assert!(n.is_finite()),
            FieldValue::Str(s) => {
                assert!(!s.as_str().is_empty() && s.as_str().len() <= MAX_VALUE_LEN)
            }
            other => panic!("{other:?} folded"),
        }
    }
    // Every dispatched event ends with a blank line, so there are at most half as many
    // events as line ends.
    let line_ends = body.iter().filter(|b| matches!(b, b'\r' | b'\n')).count();
    assert!(
        whole.events as usize <= line_ends / 2 + 1,
        "{} events",
        whole.events
    );
});
