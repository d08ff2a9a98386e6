//! Fixtures for the end-to-end tests: real Envoy with the filter, the sample Prompter API,
//! a raw HTTP/1.1 client that controls chunking, and a scrape of `/stats/prometheus`; and for
//! the dashboard tests, real Prometheus, a PromQL reader and the files `dashboards/` ships.

pub mod client;
pub mod counting_trap;
pub mod dashboard;
pub mod envoy;
pub mod exposition;
pub mod faulty_upstream;
pub mod host;
pub mod host_process;
pub mod istio;
pub mod lds;
pub mod load;
pub mod oci;
pub mod process_memory;
pub mod prometheus;
pub mod promql;
pub mod proxies;
pub mod raw_http;
pub mod scenario;
pub mod scrape;

use std::path::PathBuf;

/// The repository root (tests run with the package directory as working directory).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A port nobody listens on right now (the OS picks it; closed again before use).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free port on 127.0.0.1")
}
