//! Load and soak on loopback: 500 keep-alive connections send the Prompter route mix through
//! bare Envoy, Envoy with the filter and the host proxy (each its own process, in front of
//! the sample API). For each: every completed exchange is counted exactly once
//! (`starlette_requests_total`, by status, equals what the client read), no connection fails
//! beyond bare Envoy's, and resident memory stops growing once the load is warm.
//!
//! `PROMPTER_SOAK_SECONDS` (default 20 per proxy) makes it longer; `scripts/soak` runs it for
//! minutes with the release `prompter-host` (`PROMPTER_SOAK_HOST`) and prints the figures.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use prompter_e2e::envoy::{Envoy, EnvoyOptions};
use prompter_e2e::host_process::HostProcess;
use prompter_e2e::load::{self, LoadReport};
use prompter_e2e::process_memory::{pid_with_arg, Sampler};
use prompter_e2e::{client, scrape};
use prompter_filter::catalog::{label, Metric};

const CONNECTIONS: usize = 500;
const NO_POLLING: &str = r#"{"health": {"interval_seconds": 0}}"#;
/// RSS may grow by this much from the end of the warm-up (the first third of the run: every
/// connection open, every series defined, the allocators' pools filled) to the end. A leak
/// of 100 bytes per request grows by tens of MiB over the hundreds of thousands of requests
/// of a run; allocator noise (arenas, Envoy's per-connection buffers) stays under a few MiB.
const RSS_GROWTH_BOUND_KIB: u64 = 16 * 1024;

fn seconds() -> u64 {
    std::env::var("PROMPTER_SOAK_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20)
}

/// What one proxy did under the load.
struct Figures {
    name: &'static str,
    report: LoadReport,
    counted: Option<f64>,
    rss: Vec<(Duration, u64)>,
    extra: String,
}

impl Figures {
    fn rss_at(&self, fraction: f64) -> u64 {
        let i = ((self.rss.len() - 1) as f64 * fraction).round() as usize;
        self.rss[i].1
    }

    fn growth_after_warmup(&self) -> i64 {
        self.rss_at(1.0) as i64 - self.rss_at(1.0 / 3.0) as i64
    }

    /// RSS in MiB at each tenth of the run.
    fn timeline(&self) -> String {
        let points: Vec<String> = (0..=10)
            .map(|t| format!("{:.1}", self.rss_at(t as f64 / 10.0) as f64 / 1024.0))
            .collect();
        format!("| {} | {} |", self.name, points.join(" | "))
    }

    fn row(&self) -> String {
        let r = &self.report;
        format!(
            "| {} | {} | {:.0} | {} | {} | {:?} | {} KiB | {} KiB | {} KiB | {:+} KiB | {} |",
            self.name,
            r.completed,
            r.per_second(),
            self.counted.map_or("-".into(), |c| format!("{c}")),
            r.errors,
            r.statuses,
            self.rss_at(0.0),
            self.rss_at(1.0 / 3.0),
            self.rss_at(1.0),
            self.growth_after_warmup(),
            self.extra
        )
    }
}

/// The sample API with template `t-1` (the mix's create is then a 409, as in the benchmark).
fn sample() -> prompter_sample_api::BackgroundServer {
    let sample = prompter_sample_api::spawn("127.0.0.1:0".parse().unwrap()).unwrap();
    let created = client::post(
        sample.addr,
        "/api/prompt-templates",
        r#"{"name":"bench","body":"Hello {name}"}"#,
    );
    assert_eq!(created.status, 201);
    sample
}

/// Runs the load on `at` while sampling the RSS of `pid`.
fn loaded(at: SocketAddr, pid: u32) -> (LoadReport, Vec<(Duration, u64)>) {
    let sampler = Sampler::start(pid, Duration::from_millis(250));
    let report = load::run(
        at,
        CONNECTIONS,
        Duration::from_secs(seconds()),
        &load::prompter_mix(),
    );
    (report, sampler.stop())
}

/// Scrapes until `starlette_requests_total`, by status, equals what the client read (Envoy
/// and the filter flush about once a second); the total counted.
fn counted_exactly(scrape: impl Fn() -> scrape::Series, report: &LoadReport) -> f64 {
    let start = Instant::now();
    loop {
        let series = scrape();
        let mut by_status: BTreeMap<u16, u64> = BTreeMap::new();
        for (key, value) in series.named(Metric::RequestsTotal.name()) {
            let needle = format!("{}=\"", label::STATUS);
            let at = key.find(&needle).unwrap() + needle.len();
            let status = key[at..at + 3].parse().unwrap();
            *by_status.entry(status).or_default() += value as u64;
        }
        if by_status == report.statuses {
            return by_status.values().sum::<u64>() as f64;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "counted by status {by_status:?}, the client read {:?}",
            report.statuses
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn envoy_pid(envoy: &Envoy) -> u32 {
    pid_with_arg(&format!(
        "prompter-e2e-envoy-{}-{}/",
        std::process::id(),
        envoy.listener.port()
    ))
}

/// Envoy's own account of its heap (`/memory`: tcmalloc's allocated bytes), in KiB.
fn envoy_allocated_kib(envoy: &Envoy) -> u64 {
    let memory = client::get(envoy.admin, "/memory");
    let value: serde_json::Value = serde_json::from_slice(&memory.body).unwrap();
    value["allocated"]
        .as_str()
        .and_then(|s| s.parse::<u64>().ok())
        .unwrap_or(0)
        / 1024
}

fn soak_bare_envoy() -> Figures {
    let upstream = sample();
    // The same bootstrap with no filter (`envoy-config --no-filter`, as scripts/bench-load).
    let envoy = Envoy::start(EnvoyOptions::new(upstream.addr, NO_POLLING).bare());
    let (report, rss) = loaded(envoy.listener, envoy_pid(&envoy));
    Figures {
        name: "bare Envoy",
        report,
        counted: None,
        rss,
        extra: format!("heap {} KiB", envoy_allocated_kib(&envoy)),
    }
}

fn soak_envoy_with_filter() -> Figures {
    let upstream = sample();
    let envoy = Envoy::start(EnvoyOptions::new(upstream.addr, NO_POLLING));
    let heap_before = envoy_allocated_kib(&envoy);
    let (report, rss) = loaded(envoy.listener, envoy_pid(&envoy));
    let counted = counted_exactly(|| scrape::envoy(envoy.admin), &report);
    Figures {
        name: "Envoy + filter",
        report,
        counted: Some(counted),
        rss,
        extra: format!("heap {heap_before} → {} KiB", envoy_allocated_kib(&envoy)),
    }
}

fn host_binary() -> PathBuf {
    // Relative to the repository root (tests run in the package's directory).
    std::env::var_os("PROMPTER_SOAK_HOST")
        .map(|p| prompter_e2e::repo_root().join(p))
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_e2e-host-proxy")))
}

fn soak_host() -> Figures {
    let upstream = sample();
    let host = HostProcess::start(host_binary(), upstream.addr, 2);
    let (report, rss) = loaded(host.listen, host.pid());
    let counted = counted_exactly(|| scrape::host(host.metrics), &report);
    Figures {
        name: "host proxy",
        report,
        counted: Some(counted),
        rss,
        extra: host.binary.file_name().unwrap().to_string_lossy().into(),
    }
}

#[test]
fn five_hundred_connections_are_counted_exactly_without_errors_or_growth() {
    let bare = soak_bare_envoy();
    let figures = [soak_envoy_with_filter(), soak_host()];
    eprintln!(
        "\n{CONNECTIONS} connections, {} s per proxy\n| proxy | completed | req/s | counted | errors | statuses | RSS idle | RSS warm | RSS end | growth after warm-up | notes |\n|---|---|---|---|---|---|---|---|---|---|---|\n{}",
        seconds(),
        std::iter::once(&bare)
            .chain(&figures)
            .map(Figures::row)
            .collect::<Vec<_>>()
            .join("\n")
    );
    eprintln!(
        "\nRSS (MiB) at each tenth of the run\n| proxy | {} |\n|---|{}\n{}\n",
        (0..=10)
            .map(|t| format!("{} %", t * 10))
            .collect::<Vec<_>>()
            .join(" | "),
        "---|".repeat(11),
        std::iter::once(&bare)
            .chain(&figures)
            .map(Figures::timeline)
            .collect::<Vec<_>>()
            .join("\n")
    );
    for f in &figures {
        assert!(f.report.completed > 0, "{}: nothing completed", f.name);
        assert_eq!(f.counted, Some(f.report.completed as f64), "{}", f.name);
        assert!(
            f.report.errors <= bare.report.errors,
            "{}: {} failed connections, bare Envoy {}",
            f.name,
            f.report.errors,
            bare.report.errors
        );
        assert!(
            f.growth_after_warmup() <= RSS_GROWTH_BOUND_KIB as i64,
            "{}: RSS grew by {} KiB after the warm-up (bound {RSS_GROWTH_BOUND_KIB} KiB): {:?}",
            f.name,
            f.growth_after_warmup(),
            f.rss
        );
    }
}
