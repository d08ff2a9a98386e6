//! The OpenAPI `paths` reader (a validating JSON push parser fed by the upstream) against
//! serde_json: never panics; fed whole or chunked it gives the same answer; a document
//! serde_json reads gives exactly its `paths` keys (or the matching refusal), and a document
//! serde_json refuses is refused too unless serde_json is stricter on purpose (lone
//! surrogates, invalid UTF-8 inside strings, numbers out of f64's range, its own depth limit).
#![no_main]

use libfuzzer_sys::fuzz_target;
use prompter_filter::openapi::{read_paths, DocumentError, Limits, PathsReader, MAX_KEY_LEN};
use prompter_filter_fuzz::split_input;
use serde_json::Value;

const LIMITS: Limits = Limits {
    max_bytes: 1 << 20,
    max_paths: 64,
};

fn chunked(chunks: &[&[u8]]) -> Result<Vec<String>, DocumentError> {
    let mut reader = PathsReader::new(LIMITS);
    for chunk in chunks {
        reader.feed(chunk)?;
    }
    reader.finish().map(|p| p.keys)
}

/// What serde_json refuses and the reader may accept, by serde_json's message.
fn stricter_on_purpose(error: &serde_json::Error) -> bool {
    let message = error.to_string();
    [
        "surrogate",
        "unicode code point",
        "invalid escape",
        "end of hex escape",
        "recursion limit",
        "number out of range",
        "invalid unicode",
    ]
    .iter()
    .any(|m| message.contains(m))
}

fuzz_target!(|data: &[u8]| {
    let (document, chunks) = split_input(data);
    let whole = read_paths(document, LIMITS);
    assert_eq!(chunked(&chunks), whole.clone().map(|p| p.keys), "chunked");
    if let Ok(paths) = &whole {
        assert!(paths.keys.len() + paths.unusable.len() <= LIMITS.max_paths);
        assert!(paths.keys.iter().all(|k| k.len() <= MAX_KEY_LEN));
    }

    match serde_json::from_slice::<Value>(document) {
        Err(e) => assert!(
            whole.is_err() || stricter_on_purpose(&e),
            "serde_json refused ({e}), the reader read {whole:?}"
        ),
        Ok(Value::Object(object)) => match (object.get("paths"), &whole) {
            (_, Err(DocumentError::TooDeep | DocumentError::PathsTwice)) => {}
            (Some(Value::Object(paths)), Err(DocumentError::TooManyPaths { .. })) => {
                assert!(paths.len() > LIMITS.max_paths)
            }
            (Some(Value::Object(paths)), Ok(read)) => {
                let mut keys = read.keys.clone();
                keys.sort();
                keys.dedup();
                let want: Vec<&String> = paths.keys().filter(|k| k.len() <= MAX_KEY_LEN).collect();
                assert_eq!(keys.iter().collect::<Vec<_>>(), want);
                let long = paths.keys().any(|k| k.len() > MAX_KEY_LEN);
                assert_eq!(!read.unusable.is_empty(), long, "{:?}", read.unusable);
            }
            (Some(_), Err(DocumentError::PathsNotAnObject))
            | (None, Err(DocumentError::NoPaths)) => {}
            (paths, whole) => panic!("serde_json read `paths` {paths:?}, the reader {whole:?}"),
        },
        Ok(_) => assert_eq!(whole, Err(DocumentError::NotAnObject)),
    }
});
