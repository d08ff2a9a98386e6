//! The host proxy (`prompter-host proxy`) for end-to-end tests, on free loopback ports.

use std::path::PathBuf;
use std::time::Duration;

use prompter_host::proxy::{self, BackgroundProxy, ProxyOptions};

pub fn options(upstream: std::net::SocketAddr, plugin_config: &str) -> ProxyOptions {
    ProxyOptions {
        listen: ([127, 0, 0, 1], 0).into(),
        metrics: ([127, 0, 0, 1], 0).into(),
        upstream: Some(format!("http://{upstream}").parse().expect("upstream uri")),
        wasm: crate::envoy::wasm_module(),
        plugin_config: plugin_config.as_bytes().to_vec(),
        env: Vec::new(),
        workers: 2,
        upstream_timeout: Duration::from_secs(30),
        fail_closed: false,
        require_filter: false,
        echo_logs: false,
    }
}

pub fn start(options: ProxyOptions) -> BackgroundProxy {
    proxy::spawn(options).expect("the host proxy starts")
}

/// A file in the temp dir holding `contents` (for broken or hostile modules).
pub fn temp_file(name: &str, contents: &[u8]) -> PathBuf {
    let path = std::env::temp_dir().join(format!("prompter-e2e-{}-{name}", std::process::id()));
    std::fs::write(&path, contents).expect("temp file");
    path
}

/// The host's own count of filter failures (traps, a module that would not load), scraped
/// from its exporter at `metrics`; 0 before the first.
pub fn filter_failures(metrics: std::net::SocketAddr) -> f64 {
    let text = crate::client::get(metrics, prompter_host::exporter::METRICS_PATH).text();
    let name = format!("{}_total", prompter_host::exporter::FILTER_FAILURES);
    prompter_host::testing::series::parse(&text)
        .get(&name, &[])
        .unwrap_or(0.0)
}
