//! The configuration's JSON reader against serde_json, and bucket bounds printed as Python's
//! `repr` prints their float.

use prompter_filter::catalog::format_bound;
use prompter_filter::json::{parse, Value};
use proptest::prelude::*;

use crate::config;

/// Our value as serde_json's, a repeated key keeping its last value (as serde_json does).
fn as_serde(value: &Value) -> serde_json::Value {
    match value {
        Value::Null => serde_json::Value::Null,
        Value::Bool(b) => serde_json::Value::Bool(*b),
        Value::Number(text) => serde_json::from_str(text).unwrap(),
        Value::String(s) => serde_json::Value::String(s.clone()),
        Value::Array(items) => serde_json::Value::Array(items.iter().map(as_serde).collect()),
        Value::Object(members) => serde_json::Value::Object(
            members
                .iter()
                .map(|(k, v)| (k.clone(), as_serde(v)))
                .collect(),
        ),
    }
}

fn agrees_with_serde(text: &[u8]) {
    let shown = String::from_utf8_lossy(text);
    match (
        parse(text),
        serde_json::from_slice::<serde_json::Value>(text),
    ) {
        (Ok(ours), Ok(theirs)) => assert_eq!(as_serde(&ours), theirs, "{shown}"),
        (Err(_), Err(_)) => {}
        // serde_json reads every number as a float; we keep the text.
        (Ok(_), Err(theirs)) if theirs.to_string().contains("number out of range") => {}
        (ours, theirs) => panic!("{shown}: ours {ours:?}, serde_json {theirs:?}"),
    }
}

#[test]
fn the_reader_accepts_exactly_what_serde_json_accepts() {
    let cases = [
        "0",
        "-0",
        "1.5",
        "-2.25e-3",
        "1E+2",
        "01",
        "1.",
        ".5",
        "-",
        "1e",
        "1e+",
        "+1",
        "1e400",
        "1 2",
        "true",
        "tru",
        "True",
        "nul",
        "[1, 2,]",
        "[,]",
        "[}",
        "{]",
        r#"{"k" 1}"#,
        r#"{"k": 1,}"#,
        r#"{1: 1}"#,
        r#"{"k":1,"k":2}"#,
        "{} x",
        "{}}",
        " {} ",
        "\"tab\tinside\"",
        r#""\x""#,
        r#""\u12G4""#,
        r#""\ud83d""#,
        r#""\ud83d\u0041""#,
        r#""\ude00""#,
        r#""\u0000""#,
        "",
        " ",
        "\u{feff}{}",
        "[\"é\"]",
        r#"{"a":{"b":[{"c":null}]}}"#,
    ];
    for case in cases {
        agrees_with_serde(case.as_bytes());
    }
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn the_reader_agrees_with_serde_json_on_any_text(
        text in r#"[\[\]{}:,"\\ a-z0-9.eE+\-u\n]{0,40}"#,
    ) {
        agrees_with_serde(text.as_bytes());
    }

    #[test]
    fn the_reader_agrees_with_serde_json_on_any_bytes(
        bytes in prop::collection::vec(any::<u8>(), 0..40),
    ) {
        agrees_with_serde(&bytes);
    }

    /// From 1e-4 s up, Python's `repr` and Rust's `{:?}` print a float alike: the shortest
    /// decimal that reads back as it.
    #[test]
    fn bounds_print_as_the_shortest_decimal_of_their_float(
        nanos in 100_000u64..1_000_000_000_000_000,
    ) {
        let seconds = nanos as f64 / 1e9;
        prop_assert_eq!(format_bound(nanos), format!("{seconds:?}"));
    }

    /// Below 1e-4 s, Python's exponent form (`2.5e-05`), which reads back as the float.
    #[test]
    fn small_bounds_read_back_as_their_float(nanos in 1u64..100_000) {
        let printed = format_bound(nanos);
        prop_assert!(printed.contains("e-0"), "{}", printed);
        prop_assert_eq!(printed.parse::<f64>().unwrap(), nanos as f64 / 1e9);
    }
}
