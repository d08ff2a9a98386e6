//! The event-stream reader on arbitrary bytes: never panics, and fed whole, chunked or byte
//! by byte it reports the same fields, event count and `[DONE]`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use prompter_filter::scanner::{FieldSet, FieldValue, MAX_VALUE_LEN};
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

fuzz_target!(|data: &[u8]| {
    let fields = FieldSet::new(&KEYS).expect("valid keys");
    let (body, chunked) = split_input(data);
    let whole = scan(&fields, [body]);
    assert_eq!(scan(&fields, chunked), whole, "chunked");
    assert_eq!(scan(&fields, body.chunks(1)), whole, "byte by byte");
    // Only non-empty strings are folded into the stream's fields.
    for value in &whole.values {
        match value {
            FieldValue::Absent | FieldValue::TooLong => {}
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
