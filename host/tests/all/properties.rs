//! Property tests (proptest) of the host: exporter histograms, the Envoy-shaped histogram
//! counters the filter emits, and the replay readers. The ABI's property test against
//! hostile guest arguments is with the other ABI tests (`abi/hostile_arguments.rs`).
//!
//! Case counts are kept moderate so the whole binary stays quick in a debug build;
//! `PROPTEST_CASES=N` raises them for a longer search.

mod histograms;
mod replay;

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
