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

/// A port nobody listens on right now, for a server a test starts in another process
/// (Envoy, Prometheus, the host proxy), which binds it a moment later.
///
/// Not one the kernel picks (`bind(0)`): those come from its ephemeral range, where every
/// outgoing connection takes its local port too, and a test running beside this one could
/// connect from the port before the server binds it (seen: Envoy refusing to start, its admin
/// port "already in use"). Below that range only servers bind; each port is handed out once
/// per test process, starting from a place of its own, and checked free.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    const FIRST: u32 = 20_000;
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let span = ephemeral_range_start().saturating_sub(FIRST).max(1_000);
    let start = std::process::id().wrapping_mul(7_919) % span;
    for _ in 0..span {
        let offset = start + NEXT.fetch_add(1, Ordering::Relaxed);
        let port = u16::try_from(FIRST + offset % span).expect("ports below 65536");
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port on 127.0.0.1 in {FIRST}..{}", FIRST + span)
}

/// Where the kernel's ephemeral ports start (`net.ipv4.ip_local_port_range`; Linux's
/// default when it cannot be read).
fn ephemeral_range_start() -> u32 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse().ok())
        .unwrap_or(32_768)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_ports_are_distinct_free_and_below_the_ephemeral_range() {
        let mut ports: Vec<u16> = (0..50).map(|_| free_port()).collect();
        for &port in &ports {
            assert!(u32::from(port) < ephemeral_range_start(), "{port}");
            std::net::TcpListener::bind(("127.0.0.1", port)).expect("free");
        }
        ports.sort_unstable();
        ports.dedup();
        assert_eq!(ports.len(), 50);
    }
}
