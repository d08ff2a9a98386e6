use super::*;

fn fields() -> FieldSet {
    FieldSet::new(&["system_fingerprint", "provider"]).unwrap()
}

/// A run response: `output` of `len` bytes (with escapes), then the fields, then `after`.
fn response(len: usize, after: &str) -> Vec<u8> {
    let unit = r#"lorem \"ipsum\" \\ dolor\n "#;
    let output = unit.repeat(len / unit.len() + 1);
    format!(
        r#"{{"id":"r-1","output":"{output}","system_fingerprint":"fp_44709d6fcb","provider":"openai"{after}}}"#
    )
    .into_bytes()
}

/// Feeds `body` in `chunk`-byte pieces as the proxy-wasm glue does (only the window of each
/// chunk is copied out); returns the settled fields and the bytes copied.
fn read(body: &[u8], chunk: usize) -> (Vec<FieldValue>, usize) {
    let fields = fields();
    let mut reader = JsonBody::new();
    let mut copied = 0;
    for piece in body.chunks(chunk) {
        let mut done = 0;
        while let Some(range) = reader.next_read(done, piece.len()) {
            let part = &piece[range.clone()];
            copied += part.len();
            reader.feed(&fields, part, range.end - done);
            done = range.end;
        }
    }
    let settled = reader.settled(&fields);
    ((0..2).map(|i| settled.field(i).clone()).collect(), copied)
}

fn scanned(body: &[u8]) -> Vec<FieldValue> {
    let fields = fields();
    let mut scanner = JsonFieldScanner::new();
    scanner.feed(&fields, body);
    (0..2).map(|i| scanner.field(i).clone()).collect()
}

#[test]
fn a_long_output_is_skipped_and_the_fields_after_it_still_read() {
    let body = response(2 * 1024 * 1024, "");
    let whole = scanned(&body);
    assert_eq!(whole[0].as_str(), Some("fp_44709d6fcb"));
    assert_eq!(whole[1].as_str(), Some("openai"));
    for chunk in [
        1000,
        4096,
        16 * 1024,
        65_536,
        100_003,
        1024 * 1024,
        body.len(),
    ] {
        let (fields, copied) = read(&body, chunk);
        assert_eq!(fields, whole, "chunks of {chunk}");
        let chunks = body.len().div_ceil(chunk);
        let bound = READ_STEP + SKIP_AFTER + chunks * TAIL;
        if bound < body.len() {
            assert!(copied <= bound, "chunks of {chunk}: {copied} bytes read");
        }
    }
}

#[test]
fn a_short_rest_is_read_exactly_wherever_the_escapes_fall() {
    // Whatever falls on the chunk boundary (inside `\"`, `\\`, just before the closing quote),
    // the rest of the body fits the window and is scanned as it came.
    for len in SKIP_AFTER..SKIP_AFTER + 32 {
        let body = response(len, r#","provider":"google""#);
        let whole = scanned(&body);
        assert_eq!(whole[1].as_str(), Some("google"));
        for chunk in [SKIP_AFTER + 1, SKIP_AFTER + 7, SKIP_AFTER + 24] {
            assert_eq!(read(&body, chunk).0, whole, "len {len}, chunks of {chunk}");
        }
    }
}

#[test]
fn fields_too_far_after_the_skipped_value_are_not_read() {
    let padding = format!(r#","usage":"{}""#, "x".repeat(2 * TAIL));
    let body = response(4 * SKIP_AFTER, &padding);
    assert_eq!(scanned(&body)[1].as_str(), Some("openai"));
    let (fields, _) = read(&body, 8 * 1024);
    assert_eq!(fields, vec![FieldValue::Absent, FieldValue::Absent]);
}

#[test]
fn fields_before_the_skipped_value_are_kept() {
    let output = "y".repeat(4 * SKIP_AFTER);
    let body = format!(r#"{{"provider":"anthropic","output":"{output}","n":1}}"#);
    let (fields, _) = read(body.as_bytes(), 10_000);
    assert_eq!(fields[1].as_str(), Some("anthropic"));
}

#[test]
fn a_body_that_is_not_json_after_the_skipped_value_gives_nothing_new() {
    let output = "z".repeat(4 * SKIP_AFTER);
    let body = format!(r#"{{"output":"{output}","provider":"openai" garbage"#);
    assert_eq!(read(body.as_bytes(), 10_000).0, vec![FieldValue::Absent; 2]);
}

#[test]
fn the_first_unescaped_quote_ends_the_skipped_string() {
    let provider = |window: &[u8]| {
        read_after_skipped_string(&fields(), window)
            .and_then(|later| later.field(1).as_str().map(String::from))
    };
    let openai = Some("openai".to_string());
    let cases: [(&[u8], Option<String>); 8] = [
        (br#"abc","provider":"openai"}"#, openai.clone()),
        (br#"a\"b","provider":"openai"}"#, openai.clone()),
        (br#"a\\","provider":"openai"}"#, openai.clone()),
        (br#"a\\\"b","provider":"openai"}"#, openai.clone()),
        // Quotes only backslashes precede: tried, passed over when the rest does not read.
        (br#"\" x","provider":"openai"}"#, openai.clone()),
        (br#"","provider":"openai"}"#, openai.clone()),
        // An unescaped quote followed by what cannot end the object: nothing is read.
        (br#"a" garbage,"provider":"openai"}"#, None),
        (b"no quote", None),
    ];
    for (window, want) in cases {
        assert_eq!(
            provider(window),
            want,
            "{}",
            String::from_utf8_lossy(window)
        );
    }
}
