//! `prompter-host proxy` for the soak tests, built with this package so that `cargo test`
//! always has a current one (`CARGO_BIN_EXE_e2e-host-proxy`): the flags the soak passes
//! (`proxy --listen --metrics --upstream --workers --wasm --config`), then it serves until killed.

use std::collections::HashMap;

use prompter_host::proxy::{self, ProxyOptions};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    assert_eq!(
        args.first().map(String::as_str),
        Some("proxy"),
        "usage: e2e-host-proxy proxy --flag value ..."
    );
    let flags: HashMap<&str, &str> = args[1..]
        .chunks(2)
        .map(|pair| {
            (
                pair[0].trim_start_matches("--"),
                pair.get(1).map_or("", String::as_str),
            )
        })
        .collect();
    let flag = |name: &str| {
        *flags
            .get(name)
            .unwrap_or_else(|| panic!("--{name} is required"))
    };
    let running = proxy::spawn(ProxyOptions {
        listen: flag("listen").parse().expect("--listen"),
        metrics: flag("metrics").parse().expect("--metrics"),
        upstream: Some(flag("upstream").parse().expect("--upstream")),
        wasm: flag("wasm").into(),
        plugin_config: std::fs::read(flag("config")).expect("--config"),
        env: Vec::new(),
        workers: flag("workers").parse().expect("--workers"),
        upstream_timeout: prompter_host::envoy_config::UPSTREAM_TIMEOUT,
        fail_closed: false,
        require_filter: false,
        echo_logs: false,
    })
    .unwrap_or_else(|e| panic!("the host proxy does not start: {e}"));
    eprintln!(
        "listening on {}, metrics on {}",
        running.listen, running.metrics
    );
    loop {
        std::thread::park();
    }
}
