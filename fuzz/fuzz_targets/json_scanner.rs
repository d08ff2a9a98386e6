//! The streaming JSON field scanner against serde_json: whatever the body and wherever the
//! chunk boundaries fall, it never panics, gives the same result fed whole, chunked or byte by
//! byte, and, on a body serde_json reads as an object, reports exactly serde_json's top-level
//! fields (last duplicate wins, strings decoded, longer than MAX_VALUE_LEN bytes = TooLong).
#![no_main]

use libfuzzer_sys::fuzz_target;
use prompter_filter::scanner::{FieldSet, FieldValue, JsonFieldScanner, MAX_VALUE_LEN};
use prompter_filter_fuzz::split_input;
use serde_json::Value;

/// A short key the fuzzer hits often, the real ones, and keys that need escapes.
const KEYS: [&str; 4] = ["a", "provider", "b\"\\", "é\u{1F600}"];

#[derive(Debug, PartialEq)]
struct Outcome {
    invalid: bool,
    complete: bool,
    values: Vec<FieldValue>,
}

fn scan<'a>(fields: &FieldSet, chunks: impl IntoIterator<Item = &'a [u8]>) -> Outcome {
    let mut scanner = JsonFieldScanner::new();
    for chunk in chunks {
        scanner.feed(fields, chunk);
    }
    Outcome {
        invalid: scanner.is_invalid(),
        complete: scanner.is_complete(),
        values: (0..fields.len())
            .map(|i| scanner.field(i).clone())
            .collect(),
    }
}

/// True when `got` is what the scanner promises for a top-level value serde_json read.
fn agrees(got: &FieldValue, value: Option<&Value>) -> bool {
    match (got, value) {
        (FieldValue::Absent, None) | (FieldValue::Null, Some(Value::Null)) => true,
        (FieldValue::Bool(b), Some(Value::Bool(want))) => b == want,
        (FieldValue::Str(s), Some(Value::String(want))) => {
            want.len() <= MAX_VALUE_LEN && s.as_str() == want
        }
        (FieldValue::TooLong, Some(Value::String(want))) => want.len() > MAX_VALUE_LEN,
        // A number within a few units in the last place (the scanner's reader is not
        // correctly rounded); too long to keep, it is `Other`.
        (FieldValue::Number(n), Some(Value::Number(want))) => want
            .as_f64()
            .is_some_and(|want| (n - want).abs() <= 1e-9 * n.abs().max(want.abs()) + 1e-300),
        (FieldValue::Other, Some(Value::Number(_) | Value::Array(_) | Value::Object(_))) => true,
        _ => false,
    }
}

fuzz_target!(|data: &[u8]| {
    let fields = FieldSet::new(&KEYS).expect("valid keys");
    let (body, chunked) = split_input(data);

    let whole = scan(&fields, [body]);
    assert_eq!(scan(&fields, chunked), whole, "chunked");
    assert_eq!(scan(&fields, body.chunks(1)), whole, "byte by byte");

    let Ok(Value::Object(object)) = serde_json::from_slice::<Value>(body) else {
        return;
    };
    assert!(
        !whole.invalid && whole.complete,
        "serde_json read an object"
    );
    for (key, got) in KEYS.iter().zip(&whole.values) {
        let value = object.get(*key);
        assert!(
            agrees(got, value),
            "{key:?}: scanner {got:?}, serde_json {value:?}"
        );
    }
});
