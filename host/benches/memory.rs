//! The filter's linear memory under large streamed responses: the size after one run response
//! and after 2, 10, 100 and a thousand (2 MB each, 64 KB chunks), and the same with 64 MB
//! responses (20 of them). A filter that never buffers a body keeps the same size.
//!
//! `cargo bench -p prompter-host --bench memory` (needs the release module, see `request.rs`).
//! Prints `linear memory: <body> after <n> responses: <bytes>` lines.

use prompter_host::testing::{Harness, Request};

const CHUNK: usize = 64 * 1024;
const MB: usize = 1024 * 1024;

/// A run response whose `output` is `size` bytes of the sample API's lorem text.
fn run_response(size: usize) -> String {
    let lorem = r#"lorem ipsum \"dolor\" sit amet, "#;
    let mut body = String::from(r#"{"output":""#);
    while body.len() < size {
        body.push_str(lorem);
    }
    body.push_str(r#"","result_id":"r-1","template_id":"t-1","provider":"openai","model_id":"gpt-4o","system_fingerprint":"fp_44709d6fcb"}"#);
    body
}

fn main() {
    // cargo passes `--bench`; this target takes no options.
    for (label, size, total) in [("2 MB", 2 * MB, 1000), ("64 MB", 64 * MB, 20)] {
        let harness = Harness::with_config(r#"{"health":{"interval_seconds":0}}"#);
        let request = Request::post(
            "/api/prompt-templates/t-1/run",
            r#"{"provider":"openai","model_id":"gpt-4o"}"#,
        )
        .status(200)
        .respond(&run_response(size))
        .chunked(CHUNK);
        let before = harness.instance().memory_size();
        println!("linear memory: {label} after 0 responses: {before}");
        for n in 1..=total {
            harness.exchange(&request).expect("the exchange runs");
            if [1, 2, 10, 100, total].contains(&n) {
                let bytes = harness.instance().memory_size();
                println!("linear memory: {label} after {n} responses: {bytes}");
            }
        }
        let fingerprints: f64 = harness
            .series()
            .named("prompter_openai_fingerprint_present_total")
            .map(|(_, value)| value)
            .sum();
        assert_eq!(
            fingerprints, total as f64,
            "every response was scanned to its end"
        );
    }
}
