//! The streaming scanner against whole documents: every split of each body, escapes, surrogates,
//! nesting, numbers, and what a broken document keeps.

use super::*;

const KEYS: [&str; 4] = ["provider", "model_id", "system_fingerprint", "redis"];

#[derive(Debug, PartialEq)]
struct Outcome {
    invalid: bool,
    complete: bool,
    values: Vec<FieldValue>,
}

fn fields() -> FieldSet {
    FieldSet::new(&KEYS).unwrap()
}

fn run<'a>(chunks: impl IntoIterator<Item = &'a [u8]>) -> Outcome {
    let fields = fields();
    let mut s = JsonFieldScanner::new();
    for c in chunks {
        s.feed(&fields, c);
    }
    let values = (0..fields.len()).map(|i| s.field(i).clone()).collect();
    Outcome {
        invalid: s.is_invalid(),
        complete: s.is_complete(),
        values,
    }
}

fn whole(doc: &str) -> Outcome {
    run([doc.as_bytes()])
}

fn st(v: &str) -> FieldValue {
    FieldValue::Str(InlineStr::from_lossy(v.as_bytes()).unwrap())
}

fn ok(values: [FieldValue; 4]) -> Outcome {
    Outcome {
        invalid: false,
        complete: true,
        values: values.to_vec(),
    }
}

fn invalid() -> Outcome {
    Outcome {
        invalid: true,
        complete: false,
        values: vec![FieldValue::Absent; 4],
    }
}

use FieldValue::{Absent, Bool, Null, Number, Other, TooLong};

#[test]
fn field_set_validation() {
    assert_eq!(fields().len(), 4);
    assert!(FieldSet::new(&[]).unwrap().is_empty());
    let too_many: Vec<String> = (0..=MAX_FIELDS).map(|i| format!("k{i}")).collect();
    let too_many: Vec<&str> = too_many.iter().map(String::as_str).collect();
    assert!(FieldSet::new(&too_many).is_err());
    assert!(FieldSet::new(&too_many[..MAX_FIELDS]).is_ok());
    assert!(FieldSet::new(&["a", ""]).is_err());
    assert!(FieldSet::new(&["a", "b", "a"]).is_err());
    assert!(FieldSet::new(&["k".repeat(MAX_VALUE_LEN).as_str()]).is_ok());
    assert!(FieldSet::new(&["k".repeat(MAX_VALUE_LEN + 1).as_str()]).is_err());
}

#[test]
fn any_key_order_and_accessors() {
    let doc = r#" {"redis": true, "model_id":"gpt-4o", "x":1, "provider" : "openai"}"#;
    assert_eq!(
        whole(doc),
        ok([st("openai"), st("gpt-4o"), Absent, Bool(true)])
    );
    let fields = fields();
    let mut s = JsonFieldScanner::default();
    s.feed(&fields, doc.as_bytes());
    assert_eq!(s.field(0).as_str(), Some("openai"));
    assert_eq!(s.field(3).as_bool(), Some(true));
    assert_eq!(s.field(0).as_bool(), None);
    assert_eq!(s.field(99), &Absent);
    assert_eq!(format!("{:?}", s.field(0)), r#"Str("openai")"#);
    s.reset();
    assert!(!s.is_complete());
    assert_eq!(s.field(0), &Absent);
    s.feed(&fields, b"{}");
    assert!(s.is_complete());
}

#[test]
fn nested_keys_are_ignored() {
    let doc = r#"{"meta":{"provider":"x","a":[{"redis":false}]},
        "list":[{"model_id":"y"},"provider",["redis"]],
        "s":"{\"provider\":\"z\"} ]}","provider":"top"}"#;
    assert_eq!(whole(doc), ok([st("top"), Absent, Absent, Absent]));
}

#[test]
fn escapes_in_values_and_keys() {
    let doc = r#"{"pro\u0076ider":"a\"b\\c\/d\b\f\n\r\t\u00e9\u20AC","model\u005fid":"\ud83d\ude00!",
        "system_fingerprint":"\ud800x\udc00\ud800\ud800\ude00\ud800","re\\dis":1,"redis\u0000":2}"#;
    let expected = [
        st("a\"b\\c/d\u{8}\u{c}\n\r\t\u{e9}\u{20ac}"),
        st("\u{1F600}!"),
        st("\u{FFFD}x\u{FFFD}\u{FFFD}\u{10200}\u{FFFD}"),
        Absent,
    ];
    assert_eq!(whole(doc), ok(expected));
    assert!(whole(r#"{"a":"\x"}"#).invalid);
    assert!(whole(r#"{"a":"\u12g4"}"#).invalid);
}

#[test]
fn invalid_utf8_is_replaced() {
    let mut doc = br#"{"provider":"a"#.to_vec();
    doc.extend_from_slice(&[0xFF, b'b', 0xE2, 0x82]);
    doc.extend_from_slice(br#""}"#);
    assert_eq!(run([&doc[..]]).values[0], st("a\u{FFFD}b\u{FFFD}"));
}

#[test]
fn long_values_are_too_long() {
    let fit = "x".repeat(MAX_VALUE_LEN);
    let doc = format!(
        r#"{{"provider":"{fit}","model_id":"{fit}y","redis":"{}"}}"#,
        r"\u00e9".repeat(64)
    );
    let out = whole(&doc);
    assert_eq!(out.values[..2], [st(&fit), TooLong]);
    assert_eq!(out.values[3], st(&"\u{e9}".repeat(64)));
    let doc = format!(
        r#"{{"redis":"{}","provider":"{}"}}"#,
        r"\u00e9".repeat(65),
        "é".repeat(65)
    );
    assert_eq!(whole(&doc), ok([TooLong, Absent, Absent, TooLong]));
}

#[test]
fn non_string_values() {
    let doc =
        r#"{"provider":null,"model_id":-1.5e+3,"system_fingerprint":{"a":[1,{}]},"redis":false}"#;
    assert_eq!(whole(doc), ok([Null, Number(-1500.0), Other, Bool(false)]));
    assert_eq!(
        whole(r#"{"provider":[],"redis":0}"#),
        ok([Other, Absent, Absent, Number(0.0)])
    );
    // A number too long to be kept is no number (JSON has no bound, the scanner does).
    let long = format!(r#"{{"redis":{}}}"#, "1".repeat(MAX_VALUE_LEN + 1));
    assert_eq!(whole(&long), ok([Absent, Absent, Absent, Other]));
}

/// The keys of the built-ins and three nested paths, as declared metrics add them.
fn nested_fields() -> FieldSet {
    let mut set = fields();
    assert_eq!(set.add_path(&["usage", "prompt_tokens"]), Ok(4));
    assert_eq!(set.add_path(&["usage", "completion_tokens"]), Ok(5));
    assert_eq!(set.add_path(&["a", "b", "c"]), Ok(6));
    assert_eq!(
        set.add_path(&["usage", "prompt_tokens"]),
        Ok(4),
        "added once"
    );
    assert_eq!(set.add_path(&["provider"]), Ok(0), "a built-in's key");
    assert!(set.add_path(&[]).is_err());
    assert!(set.add_path(&["usage", ""]).is_err());
    assert!(set.add_path(&["x"; MAX_PATH_SEGMENTS + 1]).is_err());
    set
}

fn run_nested<'a>(chunks: impl IntoIterator<Item = &'a [u8]>) -> Vec<FieldValue> {
    let fields = nested_fields();
    let mut s = JsonFieldScanner::new();
    for c in chunks {
        s.feed(&fields, c);
    }
    (0..fields.len()).map(|i| s.field(i).clone()).collect()
}

#[test]
fn nested_paths_are_read_at_any_split() {
    let doc = r#"{"provider":"openai","usage":{"x":{"prompt_tokens":99},"prompt_tokens":12,
        "completion_tokens":3.5e1,"details":[{"completion_tokens":1}]},
        "a":{"b":{"c":"deep","d":{}},"c":1},"redis":true}"#;
    let expected = run_nested([doc.as_bytes()]);
    assert_eq!(
        expected,
        [
            st("openai"),
            Absent,
            Absent,
            Bool(true),
            Number(12.0),
            Number(35.0),
            st("deep")
        ]
    );
    for k in 0..=doc.len() {
        let (a, b) = doc.as_bytes().split_at(k);
        assert_eq!(run_nested([a, b]), expected, "split at {k}");
    }
    assert_eq!(run_nested(doc.as_bytes().chunks(1)), expected);
}

#[test]
fn nested_paths_keep_the_rules_of_the_top_level() {
    // Not an object where one is expected: nothing is read from it.
    let doc = r#"{"usage":[{"prompt_tokens":1}],"a":"b","provider":"p"}"#;
    assert_eq!(run_nested([doc.as_bytes()])[4], Absent);
    assert_eq!(run_nested([doc.as_bytes()])[0], st("p"));
    // A repeated object: the later one's fields win, the earlier one's stay.
    let doc = r#"{"usage":{"prompt_tokens":1,"completion_tokens":2},"usage":{"prompt_tokens":3}}"#;
    let values = run_nested([doc.as_bytes()]);
    assert_eq!(values[4..6], [Number(3.0), Number(2.0)]);
    // A nested object that is malformed makes the document invalid, as at the top level.
    let doc = r#"{"usage":{"prompt_tokens":1,,}}"#;
    assert!(run_nested([doc.as_bytes()]).iter().all(|v| *v == Absent));
    // A cut body keeps what was read before the cut.
    let doc = r#"{"provider":"p","usage":{"prompt_tokens":7,"completion_tokens":"#;
    let values = run_nested([doc.as_bytes()]);
    assert_eq!(
        (values[0].clone(), values[4].clone()),
        (st("p"), Number(7.0))
    );
    // Nesting too deep inside a nested object stops the read but keeps the fields before.
    let doc = format!(
        r#"{{"provider":"p","usage":{{"prompt_tokens":5,"x":{}}}}}"#,
        "[".repeat(MAX_DEPTH + 2)
    );
    let values = run_nested([doc.as_bytes()]);
    assert_eq!(
        (values[0].clone(), values[4].clone()),
        (st("p"), Number(5.0))
    );
}

#[test]
fn duplicate_keys_last_wins() {
    let doc = r#"{"provider":"a","provider":{"b":1},"redis":true,"redis":"no","redis":null}"#;
    assert_eq!(whole(doc), ok([Other, Absent, Absent, Null]));
}

#[test]
fn malformed_documents_are_invalid_and_yield_nothing() {
    for doc in [
        "<html><body>{\"provider\":\"x\"}</body></html>",
        r#"[{"provider":"x"}]"#,
        r#""provider""#,
        "42",
        "",
        r#"{"provider":"x"} {"#,
        r#"{"provider":"x"}x"#,
        r#"{"provider":"x",}"#,
        r#"{"provider" "x"}"#,
        r#"{"provider":"x" "redis":true}"#,
        r#"{"redis":tru}"#,
        r#"{"redis":truex}"#,
        r#"{"redis":nul }"#,
        r#"{"redis":[}"#,
        r#"{"redis":{]}"#,
        r#"{"provider":"x",redis:1}"#,
        r#"{"redis":+1}"#,
        " \u{FEFF}{}",
    ] {
        let out = whole(doc);
        if doc.is_empty() {
            assert!(!out.invalid && !out.complete);
        } else {
            assert_eq!(out, invalid(), "{doc}");
        }
    }
}

#[test]
fn truncated_body_keeps_what_was_seen() {
    let out = whole(r#"{"provider":"openai","model_id":"gpt"#);
    assert!(!out.invalid && !out.complete);
    assert_eq!(out.values, [st("openai"), Absent, Absent, Absent]);
}

#[test]
fn bom_and_whitespace_around() {
    let doc = "\u{FEFF} \n{\"provider\":\"x\"} \r\n\t";
    assert_eq!(whole(doc), ok([st("x"), Absent, Absent, Absent]));
    assert!(run([&b"\xEF\xBB{}"[..]]).invalid);
}

#[test]
fn depth_is_bounded() {
    let doc = |n: usize| {
        format!(
            r#"{{"redis":{}{},"provider":"p"}}"#,
            "[".repeat(n),
            "]".repeat(n)
        )
    };
    assert_eq!(whole(&doc(MAX_DEPTH)), ok([st("p"), Absent, Absent, Other]));
    let deeper = whole(&doc(MAX_DEPTH + 1));
    assert!(
        !deeper.complete && deeper.values == vec![Absent; 4],
        "{deeper:?}"
    );
}

#[test]
fn fields_before_a_value_nested_too_deep_are_kept() {
    let doc = |n: usize| {
        format!(
            r#"{{"provider":"google","model_id":"m1","v":{}{},"redis":true}}"#,
            "[".repeat(n),
            "]".repeat(n)
        )
    };
    let read = assert_split_invariant(doc(MAX_DEPTH).as_bytes());
    assert_eq!(read, ok([st("google"), st("m1"), Absent, Bool(true)]));
    // One level deeper: read no further, neither broken nor complete, the fields before
    // the deep value kept and the one after it not read.
    let deep = assert_split_invariant(doc(MAX_DEPTH + 1).as_bytes());
    assert_eq!(
        deep,
        Outcome {
            invalid: false,
            complete: false,
            values: vec![st("google"), st("m1"), Absent, Absent],
        }
    );
    let deepest = whole(&doc(100_000));
    assert_eq!(deepest.values, deep.values);
}

/// Whole, every single split point and byte-at-a-time all agree.
fn assert_split_invariant(doc: &[u8]) -> Outcome {
    let expected = run([doc]);
    for k in 0..=doc.len() {
        assert_eq!(
            run([&doc[..k], &doc[k..]]),
            expected,
            "split at {k} of {doc:?}"
        );
    }
    assert_eq!(run(doc.chunks(1)), expected, "bytewise {doc:?}");
    expected
}

#[test]
fn every_chunk_boundary_gives_the_same_result() {
    let docs = [
        "\u{FEFF}{\"pro\\u0076ider\":\"a\\\"b\\\\c\\u00e9\\ud83d\\ude00\", \"redis\" : true}",
        r#"{"meta":{"provider":"x","l":[1,"}]",{"a":null}]},"model_id":-12.5e3,"redis":false}"#,
        r#"{"system_fingerprint":null,"provider":"é€😀","redis":{"x":"\"{"}}  "#,
        r#"{"provider":"\ud800","model_id":"0123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789"}"#,
        r#"{"provider":"x"} garbage"#,
        r#"{"redis":tru"#,
    ];
    for doc in docs {
        assert_split_invariant(doc.as_bytes());
    }
    assert_eq!(
        assert_split_invariant(docs[0].as_bytes()).values[0],
        st("a\"b\\c\u{e9}\u{1F600}")
    );
}

#[test]
fn finds_field_after_two_megabyte_string() {
    let mut doc = br#"{"output":""#.to_vec();
    while doc.len() < 2 << 20 {
        doc.extend_from_slice(br#"lorem \"ipsum\" {\"provider\":\"no\"} \\ \u00e9 "#);
    }
    doc.extend_from_slice(br#"","system_fingerprint":"fp_44709d6fcb","provider":"openai"}"#);
    for size in [65536, 7919] {
        let out = run(doc.chunks(size));
        assert_eq!(out, ok([st("openai"), Absent, st("fp_44709d6fcb"), Absent]));
    }
}

struct XorShift(u64);
impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

fn random_splits<'a>(rng: &mut XorShift, doc: &'a [u8]) -> Vec<&'a [u8]> {
    let mut cuts: Vec<usize> = (0..rng.below(6))
        .map(|_| rng.below(doc.len() + 1))
        .collect();
    cuts.sort_unstable();
    let mut prev = 0;
    let mut chunks = Vec::new();
    for c in cuts.into_iter().chain([doc.len()]) {
        chunks.push(&doc[prev..c]);
        prev = c;
    }
    chunks
}

#[test]
fn random_documents_at_random_splits() {
    let keys: [(&str, Option<usize>); 12] = [
        (r#""provider""#, Some(0)),
        (r#""pro\u0076ider""#, Some(0)),
        (r#""model_id""#, Some(1)),
        (r#""model\u005fid""#, Some(1)),
        (r#""system_fingerprint""#, Some(2)),
        (r#""redis""#, Some(3)),
        (r#""output""#, None),
        (r#""providers""#, None),
        (r#""Provider""#, None),
        (r#""re\\dis""#, None),
        (r#""""#, None),
        (r#""meta""#, None),
    ];
    let long = format!("\"{}\"", "y".repeat(300));
    let values: [(&str, FieldValue); 15] = [
        (r#""openai""#, st("openai")),
        (r#""a\"b\\c\/d\n""#, st("a\"b\\c/d\n")),
        (r#""\ud83d\ude00 ok""#, st("\u{1F600} ok")),
        (r#""\ud83d""#, st("\u{FFFD}")),
        ("\"é{}[]:,\"", st("é{}[]:,")),
        ("\"\"", st("")),
        (&long, TooLong),
        ("true", Bool(true)),
        ("false", Bool(false)),
        ("null", Null),
        ("-12.5e3", Number(-12_500.0)),
        ("0", Number(0.0)),
        (r#"{"provider":"nested","x":[1,{"y":"}"}]}"#, Other),
        (r#"[{"redis":true},"]",[]]"#, Other),
        ("{}", Other),
    ];
    let ws = ["", " ", "\n\t ", "\r\n"];
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
    for _ in 0..1500 {
        let mut doc = String::from(if rng.below(4) == 0 { "\u{FEFF}" } else { "" });
        let mut expected: [FieldValue; 4] = std::array::from_fn(|_| Absent);
        doc += *rng.pick(&ws);
        doc.push('{');
        for m in 0..rng.below(8) {
            if m > 0 {
                doc.push(',');
            }
            let (key, slot) = rng.pick(&keys);
            let (value, parsed) = rng.pick(&values);
            let parts = [
                rng.pick(&ws),
                key,
                rng.pick(&ws),
                ":",
                rng.pick(&ws),
                value,
                rng.pick(&ws),
            ];
            doc.extend(parts);
            if let Some(slot) = slot {
                expected[*slot] = parsed.clone();
            }
        }
        doc.push('}');
        doc += *rng.pick(&ws);
        let got = run(random_splits(&mut rng, doc.as_bytes()));
        assert_eq!(got, ok(expected), "{doc}");
    }
}

#[test]
fn garbage_never_panics_and_is_split_invariant() {
    let alphabet = b"{}[]\":,\\u0123456789abcdefABtrulsn \n-+.eE\xEF\xBB\xBF\xFF\xC3\xA9";
    let seed_doc = br#"{"provider":"a\"\u00e9","x":[{"redis":true}],"redis":null,"model_id":-1e5}"#;
    let mut rng = XorShift(0xDEAD_BEEF_1234_5678);
    for round in 0..3000 {
        let doc: Vec<u8> = if round % 2 == 0 {
            (0..rng.below(80)).map(|_| *rng.pick(alphabet)).collect()
        } else {
            let mut d = seed_doc.to_vec();
            for _ in 0..=rng.below(3) {
                let at = rng.below(d.len());
                d[at] = *rng.pick(alphabet);
            }
            d
        };
        let expected = run([&doc[..]]);
        assert_eq!(run(random_splits(&mut rng, &doc)), expected, "{doc:?}");
        assert_eq!(run(doc.chunks(1)), expected, "{doc:?}");
    }
}
