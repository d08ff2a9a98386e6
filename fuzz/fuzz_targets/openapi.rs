//! The OpenAPI `paths` reader (a validating JSON push parser fed by the upstream) against
//! serde_json: never panics; fed whole or chunked it gives the same answer; a document
//! serde_json reads gives exactly its `paths` keys in document order, duplicates included (or
//! the matching refusal), and a document
//! serde_json refuses is refused too unless serde_json is stricter on purpose (lone
//! surrogates, invalid UTF-8 inside strings, numbers out of f64's range, its own depth limit).
#![no_main]

use libfuzzer_sys::fuzz_target;
use prompter_filter::openapi::{read_paths, DocumentError, Limits, PathsReader, MAX_KEY_LEN};
use prompter_filter_fuzz::split_input;
use serde::de::{Deserialize, Deserializer, IgnoredAny, MapAccess, Visitor};
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

/// The keys of a JSON object in document order, duplicates included (serde_json's `Value`
/// keeps one of each).
struct Keys(Vec<String>);

impl<'de> Deserialize<'de> for Keys {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeysVisitor;
        impl<'de> Visitor<'de> for KeysVisitor {
            type Value = Keys;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Keys, A::Error> {
                let mut keys = Vec::new();
                while let Some(key) = map.next_key::<String>()? {
                    map.next_value::<IgnoredAny>()?;
                    keys.push(key);
                }
                Ok(Keys(keys))
            }
        }
        deserializer.deserialize_map(KeysVisitor)
    }
}

/// A document's `paths` keys; serde refuses a document with `paths` twice.
#[derive(serde::Deserialize)]
struct Document {
    paths: Keys,
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
        Ok(Value::Object(object)) => {
            match (object.get("paths"), &whole) {
                (_, Err(DocumentError::TooDeep | DocumentError::PathsTwice)) => {}
                (Some(Value::Object(_)), _) => {}
                (Some(_), Err(DocumentError::PathsNotAnObject)) => {}
                (None, Err(DocumentError::NoPaths)) => {}
                (paths, whole) => panic!("serde_json read `paths` {paths:?}, the reader {whole:?}"),
            }
            if let Ok(Document { paths: Keys(keys) }) = serde_json::from_slice(document) {
                let usable: Vec<&String> = keys.iter().filter(|k| k.len() <= MAX_KEY_LEN).collect();
                let long = keys.len() - usable.len();
                match &whole {
                    Ok(read) => {
                        assert_eq!(read.keys.iter().collect::<Vec<_>>(), usable);
                        assert_eq!(read.unusable.len(), long, "{:?}", read.unusable);
                    }
                    Err(DocumentError::TooManyPaths { limit }) => assert!(keys.len() > *limit),
                    Err(DocumentError::TooDeep) => {}
                    Err(e) => panic!("serde_json read the paths {keys:?}, the reader refused: {e}"),
                }
            }
        }
        Ok(_) => assert_eq!(whole, Err(DocumentError::NotAnObject)),
    }
});
