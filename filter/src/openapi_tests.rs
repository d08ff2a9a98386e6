//! Tests of the OpenAPI `paths` reader and of learning routes from it.

use super::*;
use crate::config::DEFAULT_ROUTES;

const DOCUMENT: &str = r#"{
  "openapi": "3.1.0",
  "info": {"title": "Prompter API", "version": "0.1.0", "paths": {"/info/nested": {}}},
  "x-paths": {"/not/these": {}},
  "paths": {
    "/api/prompt-templates": {
      "get": {"responses": {"200": {"description": "ok"}}},
      "post": {"parameters": [], "requestBody": {"required": true}}
    },
    "/api/prompt-templates/{template_id}/run": {
      "post": {"parameters": [{"name": "template_id", "in": "path", "required": true}],
               "responses": {"429": {"description": "rate limited \"quoted\" {not/a/key}"}}}
    },
    "/api/admin/stats": {"get": {"deprecated": false, "x-order": -1.5e+3, "x-none": null}},
    "/api/\u0061dmin\/users/{user_id}": {}
  },
  "components": {"schemas": {"paths": {"type": "object", "properties": {"/nested/key": {}}}}},
  "tags": [1, 0, -0.25, 2E-2, true, [], {}, "x"]
}"#;

fn keys(document: &str) -> Vec<String> {
    read_paths(document.as_bytes(), Limits::default())
        .unwrap_or_else(|e| panic!("{e}: {document}"))
        .keys
}

fn refused(document: &[u8]) -> DocumentError {
    read_paths(document, Limits::default()).expect_err(&String::from_utf8_lossy(document))
}

fn configured() -> RouteTable {
    RouteTable::new(&DEFAULT_ROUTES).unwrap()
}

#[test]
fn only_the_keys_of_the_top_level_paths_object_are_read() {
    assert_eq!(
        keys(DOCUMENT),
        [
            "/api/prompt-templates",
            "/api/prompt-templates/{template_id}/run",
            "/api/admin/stats",
            "/api/admin/users/{user_id}",
        ]
    );
    assert_eq!(keys(r#"{"paths":{}}"#), Vec::<String>::new());
    assert_eq!(keys(r#" {"paths" : { "/a" : 1 } } "#), ["/a"]);
}

#[test]
fn escapes_in_keys_are_decoded() {
    assert_eq!(
        keys(
            r#"{"paths":{"\/a\u002Fb":{},"/\u00e9":{},"/\ud83d\ude00":{},"/\ud800x":{},"/t\tq\"\\":{}}}"#
        ),
        ["/a/b", "/é", "/😀", "/\u{FFFD}x", "/t\tq\"\\"]
    );
}

#[test]
fn every_chunk_split_gives_the_same_keys() {
    let whole = keys(DOCUMENT);
    let bytes = DOCUMENT.as_bytes();
    for split in 0..=bytes.len() {
        let (a, b) = bytes.split_at(split);
        let mut reader = PathsReader::new(Limits::default());
        reader.feed(a).unwrap();
        reader.feed(b).unwrap();
        assert_eq!(reader.finish().unwrap().keys, whole, "split at {split}");
    }
    let mut reader = PathsReader::new(Limits::default());
    for byte in bytes.chunks(1) {
        reader.feed(byte).unwrap();
    }
    assert_eq!(reader.finish().unwrap().keys, whole, "one byte at a time");
}

#[test]
fn every_truncation_is_refused() {
    let bytes = DOCUMENT.trim_end().as_bytes();
    for end in 0..bytes.len() {
        let prefix = bytes.get(..end).unwrap();
        assert!(
            read_paths(prefix, Limits::default()).is_err(),
            "{}",
            String::from_utf8_lossy(prefix)
        );
    }
    assert_eq!(refused(br#"{"paths":{"/a":{}}"#), DocumentError::Truncated);
}

#[test]
fn the_size_bound_counts_every_byte() {
    let len = DOCUMENT.len();
    let limits = |max_bytes| Limits {
        max_bytes,
        max_paths: 10,
    };
    assert!(read_paths(DOCUMENT.as_bytes(), limits(len)).is_ok());
    assert_eq!(
        read_paths(DOCUMENT.as_bytes(), limits(len - 1)),
        Err(DocumentError::TooLarge { limit: len - 1 })
    );
    let mut reader = PathsReader::new(limits(len - 1));
    let (a, b) = DOCUMENT.as_bytes().split_at(len / 2);
    reader.feed(a).unwrap();
    assert!(reader.feed(b).is_err());
    assert_eq!(
        reader.feed(b""),
        Err(DocumentError::TooLarge { limit: len - 1 }),
        "a refused document stays refused"
    );
}

#[test]
fn the_path_count_is_bounded() {
    let limits = |max_paths| Limits {
        max_bytes: DEFAULT_MAX_BYTES,
        max_paths,
    };
    assert_eq!(
        read_paths(DOCUMENT.as_bytes(), limits(4))
            .unwrap()
            .keys
            .len(),
        4
    );
    assert_eq!(
        read_paths(DOCUMENT.as_bytes(), limits(3)),
        Err(DocumentError::TooManyPaths { limit: 3 })
    );
}

#[test]
fn long_and_non_utf8_keys_are_unusable_not_fatal() {
    let long = format!("/{}", "a".repeat(MAX_KEY_LEN));
    let mut doc = format!(r#"{{"paths":{{"{long}":{{}},"/ok":{{}},"/"#).into_bytes();
    doc.extend_from_slice(b"\xff\":{}}}");
    let paths = read_paths(&doc, Limits::default()).unwrap();
    assert_eq!(paths.keys, ["/ok"]);
    assert_eq!(paths.unusable.len(), 2);
    assert!(paths.unusable[0].contains("longer than 256 bytes"));
    assert!(paths.unusable[1].contains("not UTF-8"));
    let exactly = format!("/{}", "a".repeat(MAX_KEY_LEN - 1));
    assert_eq!(
        keys(&format!(r#"{{"paths":{{"{exactly}":{{}}}}}}"#)),
        [exactly]
    );
}

#[test]
fn documents_that_are_not_what_we_need_are_refused_with_the_reason() {
    assert_eq!(refused(b""), DocumentError::NotAnObject);
    assert_eq!(refused(b"[]"), DocumentError::NotAnObject);
    assert_eq!(refused(br#""paths""#), DocumentError::NotAnObject);
    assert_eq!(refused(b"{}"), DocumentError::NoPaths);
    assert_eq!(refused(br#"{"info":{"paths":{}}}"#), DocumentError::NoPaths);
    assert_eq!(refused(br#"{"paths":[]}"#), DocumentError::PathsNotAnObject);
    assert_eq!(
        refused(br#"{"paths":null}"#),
        DocumentError::PathsNotAnObject
    );
    assert_eq!(
        refused(br#"{"paths":{},"paths":{}}"#),
        DocumentError::PathsTwice
    );
    let deep = format!(
        r#"{{"paths":{{}},"x":{}{}}}"#,
        "[".repeat(200),
        "]".repeat(200)
    );
    assert_eq!(refused(deep.as_bytes()), DocumentError::TooDeep);
    let err = refused(br#"{"paths":{"/a":{} "/b":{}}}"#);
    assert_eq!(
        err,
        DocumentError::Malformed {
            offset: 18,
            reason: "an unexpected character"
        }
    );
    assert_eq!(
        err.to_string(),
        "it is not JSON: an unexpected character at byte 18"
    );
}

#[test]
fn the_reader_accepts_exactly_the_json_serde_accepts() {
    let cases = [
        r#"{"paths":{}, "n": [0, -0, 1.5, -2.25e-3, 1E+2, 10, 0.0e0]}"#,
        r#"{"paths":{}, "n": 01}"#,
        r#"{"paths":{}, "n": 1.}"#,
        r#"{"paths":{}, "n": .5}"#,
        r#"{"paths":{}, "n": -}"#,
        r#"{"paths":{}, "n": 1e}"#,
        r#"{"paths":{}, "n": 1e+}"#,
        r#"{"paths":{}, "n": +1}"#,
        r#"{"paths":{}, "n": 1 2}"#,
        r#"{"paths":{}, "b": [true, false, null]}"#,
        r#"{"paths":{}, "b": tru}"#,
        r#"{"paths":{}, "b": nul}"#,
        r#"{"paths":{}, "b": True}"#,
        r#"{"paths":{}, "a": [1, 2,]}"#,
        r#"{"paths":{}, "a": [,]}"#,
        r#"{"paths":{}, "a": [}"#,
        r#"{"paths":{}, "a": {]}"#,
        r#"{"paths":{}, "a": {"k" 1}}"#,
        r#"{"paths":{}, "a": {"k": 1,}}"#,
        r#"{"paths":{}, "a": {1: 1}}"#,
        r#"{"paths":{},}"#,
        r#"{"paths":{}} x"#,
        r#"{"paths":{}}}"#,
        r#"{"paths":{}} "#,
        "{\"paths\":{}, \"s\": \"tab\tinside\"}",
        r#"{"paths":{}, "s": "\x"}"#,
        r#"{"paths":{}, "s": "\u12G4"}"#,
        r#"{"paths":{}, "s": "\u00e9 \ud83d\ude00 \/ \b\f\n\r\t"}"#,
        r#"{"paths":{"/a":{"get":{"x":[{"y":[[]]}]}}}, "s": ""}"#,
        r#"{"paths":{"/a":{}}, "paths2": 1}"#,
    ];
    for case in cases {
        let ours = read_paths(case.as_bytes(), Limits::default()).is_ok();
        let serde = serde_json::from_str::<serde_json::Value>(case).is_ok();
        assert_eq!(ours, serde, "{case}");
    }
}

#[test]
fn configured_routes_win_and_odd_keys_are_skipped_with_the_reason() {
    let document = [
        "/api/prompt-templates",
        "/api/prompt-templates/{id}",
        "/api/admin/stats",
        "/api/admin/users/{user_id}",
        "/files/{name}.json",
        "/a b",
        "/api/admin/users/{other}",
        "relative",
    ];
    let learned = learn(&document, &configured());
    assert_eq!(
        learned.table.templates().collect::<Vec<_>>(),
        ["/api/admin/stats", "/api/admin/users/{user_id}"]
    );
    assert_eq!((learned.paths, learned.configured), (8, 2));
    assert_eq!(learned.skipped.len(), 4);
    assert!(learned.skipped[0].contains("whole segment"));
    assert!(learned.skipped[1].contains("characters"));
    assert!(learned.skipped[2].contains("twice"));
    assert!(learned.skipped[3].contains("start with"));
    assert_eq!(
        learned.summary(),
        "2 routes (8 paths: 2 configured, 4 skipped): /api/admin/stats /api/admin/users/{user_id}; \
         skipped: `/files/{name}.json`: a parameter must be a whole segment, not `{name}.json`; \
         `/a b` has characters a label value cannot carry (allowed: letters, digits, `_-.:/{}+`); \
         `/api/admin/users/{other}` is listed twice; `relative` must start with `/`"
    );
}

#[test]
fn a_document_learns_beside_the_configuration() {
    let paths = read_paths(DOCUMENT.as_bytes(), Limits::default()).unwrap();
    let learned = learn_document(paths, &configured());
    assert_eq!(
        learned.summary(),
        "2 routes (4 paths: 2 configured, 0 skipped): /api/admin/stats /api/admin/users/{user_id}"
    );
    let shared = Learned::from_text(&learned.to_text(), &configured());
    assert_eq!(shared.table, learned.table);
    assert!(Learned::from_text("", &configured()).table.is_empty());
}

#[test]
fn a_long_list_is_cut_in_the_summary() {
    let keys: Vec<String> = (0..40).map(|i| format!("/r{i}")).collect();
    let summary = learn(&keys, &configured()).summary();
    assert!(summary.starts_with("40 routes (40 paths: 0 configured, 0 skipped): /r0 /r1"));
    assert!(summary.ends_with("/r29 and 10 more"), "{summary}");
}

/// The counters one exchange adds, as `metric route/table/endpoint status`-ish strings.
fn counted(learned: &RouteTable, method: &str, path: &str, status: &str) -> Vec<String> {
    use crate::events::Event;
    use crate::exchange::Exchange;
    let config = crate::config::Config::parse(b"", |_| None).unwrap();
    let mut exchange = Exchange::start_with(&config, learned, Some(method), Some(path), 0);
    exchange.status_if_unknown(status.parse().ok());
    let mut seen = Vec::new();
    let mut models = crate::labels::ModelLabels::default();
    exchange.finish(&config, &mut models, 1, &mut |event| {
        if let Event::Count(series) = event {
            seen.push(format!(
                "{} {}",
                config.shape(series.metric).name,
                series.values[2..].join(" ")
            ));
        }
    });
    seen
}

#[test]
fn learned_routes_label_what_the_configuration_does_not_match() {
    let learned = learn(
        &[
            "/api/admin/stats",
            "/api/prompt-templates/search",
            "/api/prompt-templates/{template_id}/run",
            "/api/{section}/prompt-templates",
        ],
        &configured(),
    )
    .table;
    assert_eq!(
        learned.len(),
        3,
        "the configured run route is not learned again"
    );
    assert_eq!(
        counted(&learned, "GET", "/api/admin/stats?x=1", "200"),
        ["starlette_requests_total GET /api/admin/stats 200"]
    );
    assert_eq!(
        counted(&RouteTable::default(), "GET", "/api/admin/stats", "200"),
        ["starlette_requests_total GET unmatched 200"]
    );
    // More literal than the configured `/api/prompt-templates/{template_id}`: learned wins.
    assert_eq!(
        counted(&learned, "GET", "/api/prompt-templates/search", "429"),
        [
            "starlette_requests_total GET /api/prompt-templates/search 429",
            "prompter_rate_limit_hit_total /api/prompt-templates/search"
        ]
    );
    // As literal as a configured match: the configured route wins, and keeps its meaning.
    assert_eq!(
        counted(&learned, "POST", "/api/prompt-templates", "409"),
        [
            "starlette_requests_total POST /api/prompt-templates 409",
            "prompter_db_unique_violation_total prompt_templates"
        ]
    );
    assert_eq!(
        counted(&learned, "POST", "/api/prompt-templates/t-1/run", "200"),
        [
            "starlette_requests_total POST /api/prompt-templates/{template_id}/run 200",
            "prompter_prompt_results_insert_total "
        ]
    );
}
