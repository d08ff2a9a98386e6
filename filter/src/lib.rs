//! Prompter metrics from traffic: a proxy-wasm HTTP filter that reads the Prompter API's
//! routes, statuses and JSON bodies as they stream past and emits the Prometheus metrics the
//! Prompter dashboard expects.
//!
//! Everything but the `wasm` and `dynamic_module` modules is plain Rust, compiled and tested
//! natively; `wasm` is the thin proxy-wasm layer that feeds it, `dynamic_module` the thin
//! layer of the native Envoy module (feature `envoy-dynamic-module`).

pub mod bytes;
pub mod catalog;
pub mod config;
mod config_json;
pub mod declared;
pub mod events;
pub mod exchange;
pub mod flush;
pub mod json;
pub mod labels;
pub mod openapi;
pub mod outcome_log;
mod recycle;
pub mod routes;
pub mod scanner;
pub mod series_cache;
pub mod sse;
pub mod stat_name;
pub mod tail;
pub mod upkeep;

#[cfg(target_arch = "wasm32")]
mod wasm;

#[cfg(all(feature = "envoy-dynamic-module", not(target_arch = "wasm32")))]
mod dynamic_module;
