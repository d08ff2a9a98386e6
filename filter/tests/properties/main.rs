//! Property tests (proptest) of the filter's readers: whatever the chunk boundaries, the JSON
//! field scanner, the event-stream reader and a whole exchange give the same result as when
//! the body arrives in one piece, and that result is what a full JSON parser reads; the
//! configuration's JSON reader accepts and reads what serde_json does.
//!
//! Case counts are kept moderate so the target runs in a few seconds in a debug build.
//! `PROPTEST_CASES=N` raises them for a longer search.

mod config_reader;
mod exchange;
mod gen;
mod json;
mod sse;

use proptest::test_runner::{Config, RngAlgorithm};

/// `cases` cases, unless `PROPTEST_CASES` says otherwise; no regression files in the tree;
/// the XorShift generator (the default ChaCha one dominates a debug build's run time).
pub fn config(cases: u32) -> Config {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(cases);
    Config {
        cases,
        failure_persistence: None,
        rng_algorithm: RngAlgorithm::XorShift,
        ..Config::default()
    }
}
