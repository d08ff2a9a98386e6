//! Envoy with the filter (Wasm or native) or the host proxy behind one face, so that a fault
//! test runs the same traffic through each and asserts the same outcome: where to send requests, how to
//! scrape our series, and an upstream timeout short enough to test in seconds.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use prompter_host::proxy::BackgroundProxy;

use crate::envoy::{Envoy, EnvoyOptions, Launch};
use crate::host;
use crate::scrape::{self, Series};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Envoy with the Wasm module.
    Envoy,
    /// Envoy with the native module.
    NativeEnvoy,
    Host,
}

pub const ALL: [Kind; 3] = [Kind::Envoy, Kind::NativeEnvoy, Kind::Host];

pub enum Proxy {
    Envoy(Envoy, Kind),
    Host(BackgroundProxy),
}

impl Proxy {
    /// `kind` in front of `upstream`, with `plugin_config`; the upstream timeout (Envoy's
    /// route timeout, the host's `--upstream-timeout`) is `upstream_timeout`.
    pub fn start(
        kind: Kind,
        upstream: SocketAddr,
        plugin_config: &str,
        upstream_timeout: Duration,
    ) -> Proxy {
        match kind {
            Kind::Envoy | Kind::NativeEnvoy => {
                let mut options = EnvoyOptions::new(upstream, plugin_config);
                // One worker (one VM to compile) is enough for a fault.
                options.concurrency = 1;
                if kind == Kind::NativeEnvoy {
                    options = options.native();
                }
                Proxy::Envoy(envoy_with_route_timeout(options, upstream_timeout), kind)
            }
            Kind::Host => {
                let mut options = host::options(upstream, plugin_config);
                options.upstream_timeout = upstream_timeout;
                Proxy::Host(host::start(options))
            }
        }
    }

    pub fn kind(&self) -> Kind {
        match self {
            Proxy::Envoy(_, kind) => *kind,
            Proxy::Host(_) => Kind::Host,
        }
    }

    /// Where clients send requests.
    pub fn listener(&self) -> SocketAddr {
        match self {
            Proxy::Envoy(envoy, _) => envoy.listener,
            Proxy::Host(proxy) => proxy.listen,
        }
    }

    /// Our series as Prometheus scrapes them; the host's `_sum` series left out, which
    /// Envoy's scrape has none of, so that both compare.
    pub fn scrape(&self) -> Series {
        match self {
            Proxy::Envoy(envoy, _) => scrape::envoy(envoy.admin),
            Proxy::Host(proxy) => scrape::without_sums(&scrape::host(proxy.metrics)),
        }
    }

    /// Scrapes until our series other than histogram buckets equal `expected` (stats reach
    /// the scrape asynchronously); panics with the difference after 10 s.
    pub fn until_equal(&self, expected: &Series) -> Series {
        match self {
            Proxy::Envoy(envoy, _) => scrape::envoy_until_equal(envoy.admin, expected),
            Proxy::Host(proxy) => scrape::host_until_equal(proxy.metrics, expected),
        }
    }

    /// Scrapes until `done` holds; panics with the last scrape after `timeout`.
    pub fn until(&self, timeout: Duration, done: impl Fn(&Series) -> bool) -> Series {
        let start = Instant::now();
        loop {
            let series = self.scrape();
            if done(&series) {
                return series;
            }
            if start.elapsed() > timeout {
                panic!(
                    "{:?}: scrape never satisfied the condition; last scrape, buckets left out:\n{}",
                    self.kind(),
                    series.without_buckets().diff(&Series::default())
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// Envoy from the generated bootstrap, its route timeout replaced by `timeout`.
pub fn envoy_with_route_timeout(options: EnvoyOptions, timeout: Duration) -> Envoy {
    let mut launch = Launch::generated(&options);
    // The route timeout the generated bootstrap sets (what a hung upstream costs by default).
    let bootstrap_timeout = format!(
        "timeout: {}s",
        prompter_host::envoy_config::UPSTREAM_TIMEOUT.as_secs()
    );
    assert_eq!(
        launch.bootstrap.matches(&bootstrap_timeout).count(),
        1,
        "the bootstrap's one route timeout:\n{}",
        launch.bootstrap
    );
    launch.bootstrap = launch.bootstrap.replace(
        &bootstrap_timeout,
        &format!("timeout: {}s", timeout.as_secs_f64()),
    );
    Envoy::start_bootstrap(&launch, &options)
}
