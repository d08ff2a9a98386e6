//! A whole request through the filter in the native host: every callback of one exchange
//! (context create, request headers and body, response headers and body, log, done, delete),
//! no I/O. Measured for our filter under Envoy's VM configuration (counters batched in the VM)
//! and under the wasmtime host's (every update sent at once), and for the empty proxy-wasm
//! filter (the floor); the host calls each request makes are counted and printed first.
//!
//! Our filter runs with the default plugin configuration, and with declared metrics (issue
//! 15): `envoy/examples/custom-metrics.json`, which every request matches (tenants) and runs
//! match more (tokens, first byte), and a configuration whose only declared metric is on a
//! route the bench never requests (its header and body field still declared), the cost of a
//! request that matches nothing declared. Those differences are small beside a busy machine's
//! drift between criterion's benches, so each is also measured paired: in alternation with
//! the default configuration, batch by batch (printed as `paired per request: …`).
//!
//! Needs the modules as shipped: `scripts/build-wasm`, then `cargo bench -p prompter-host
//! --bench request`.

use std::hint::black_box;
use std::path::Path;
use std::time::Instant;

use criterion::{BenchmarkId, Criterion};
use prompter_host::state::PluginSetup;
use prompter_host::testing::{shipped_wasm, EnvoyDriver, Request};
use prompter_host::vm::FilterModule;

/// Health polling off: a bench has no upstream to answer it.
const CONFIG: &str = r#"{"health":{"interval_seconds":0}}"#;

/// A metric declared on the create route (`POST /api/prompt-templates`), which the bench
/// never requests: a request header and a request body field to read, were it matched.
const DECLARED_UNMATCHED: &str = r#"{"health":{"interval_seconds":0},"metrics":[{
    "name":"prompter_bench_creates_total","type":"counter",
    "when":{"methods":["POST"],"routes":["/api/prompt-templates"]},
    "labels":[{"name":"tenant","header":"x-tenant-id","max_values":20,"absent":"none"},
              {"name":"template","field":"name","from":["request"]}]}]}"#;

/// The plugin configurations our filter is measured with.
#[derive(Clone, Copy)]
enum PluginConfig {
    Default,
    /// `envoy/examples/custom-metrics.json` (health polling off).
    CustomMetrics,
    DeclaredUnmatched,
}

impl PluginConfig {
    fn json(self) -> Vec<u8> {
        match self {
            PluginConfig::Default => CONFIG.into(),
            PluginConfig::CustomMetrics => {
                let example = Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("../envoy/examples/custom-metrics.json");
                let text = std::fs::read(&example)
                    .unwrap_or_else(|e| panic!("{}: {e}", example.display()));
                let mut config: serde_json::Value =
                    serde_json::from_slice(&text).expect("the example is JSON");
                let health: serde_json::Value = serde_json::from_str(CONFIG).expect("JSON");
                config["health"] = health["health"].clone();
                serde_json::to_vec(&config).expect("JSON")
            }
            PluginConfig::DeclaredUnmatched => DECLARED_UNMATCHED.into(),
        }
    }
}

fn module(file: &str) -> FilterModule {
    let path = shipped_wasm(file);
    FilterModule::from_file(&path)
        .unwrap_or_else(|e| panic!("{}: {e}: build it with scripts/build-wasm", path.display()))
}

/// The requests of the load mix that differ for the filter: a plain GET (no body scanned),
/// a probe (ensure-version) and a run (both bodies scanned; its response reports `usage` last,
/// as OpenAI's and the sample API's do). Each names a tenant (`x-tenant-id`, a label of
/// `custom-metrics.json`) and takes no time: the clock stays where it started.
fn requests() -> Vec<(&'static str, Request)> {
    let requests = vec![
        (
            "plain_get",
            Request::get("/api/prompt-templates/t-1")
                .status(200)
                .respond(r#"{"id":"t-1","name":"bench","body":"Hello {name}"}"#),
        ),
        (
            "probe",
            Request::post(
                "/api/prompt-templates/t-1/ensure-version",
                r#"{"provider":"openai","model_id":"gpt-4o"}"#,
            )
            .status(200)
            .respond(r#"{"provider":"openai","model_id":"gpt-4o","provider_version_key":"openai:gpt-4o","captured_at":"2026-01-01T00:00:00Z","created":true}"#),
        ),
        (
            "run",
            Request::post(
                "/api/prompt-templates/t-1/run",
                r#"{"provider":"openai","model_id":"gpt-4o","variables":{"name":"Ada"}}"#,
            )
            .status(200)
            .respond(r#"{"output":"Hello Ada","result_id":"r-1","template_id":"t-1","provider":"openai","model_id":"gpt-4o","system_fingerprint":"fp_44709d6fcb","usage":{"prompt_tokens":12,"completion_tokens":3,"total_tokens":15}}"#),
        ),
    ];
    requests
        .into_iter()
        .map(|(kind, request)| {
            (
                kind,
                request.header("x-tenant-id", "acme").taking_seconds(0.0),
            )
        })
        .collect()
}

/// Envoy's VM configuration (none: counter increments batched in the VM, flushed on tick)
/// or the wasmtime host's (every update sent at once, native histograms).
#[derive(Clone, Copy)]
enum VmConfig {
    Envoy,
    Host,
}

/// One filter instance of `module`, with the bench's start time.
fn driver(module: &FilterModule, vm_config: VmConfig, plugin_config: PluginConfig) -> EnvoyDriver {
    let mut setup = PluginSetup {
        plugin_config: plugin_config.json(),
        ..PluginSetup::default()
    };
    if let VmConfig::Envoy = vm_config {
        setup.vm_config.clear();
    }
    EnvoyDriver::start(module, setup, 1_700_000_000_000_000_000).expect("the filter starts")
}

/// Every callback of one exchange (see [`EnvoyDriver::exchange`]).
fn exchange(driver: &mut EnvoyDriver, request: &Request) {
    driver.exchange(request).expect("the exchange");
}

fn host_calls_of(driver: &mut EnvoyDriver, request: &Request) -> u64 {
    let before = driver.vm.host_calls();
    exchange(driver, request);
    driver.vm.host_calls() - before
}

/// A filter, the VM configuration and the plugin configuration it runs with, by bench name.
struct Variant {
    name: &'static str,
    module: FilterModule,
    vm_config: VmConfig,
    plugin_config: PluginConfig,
    /// The variant measured in alternation with this one: the same filter and VM
    /// configuration with the default plugin configuration.
    paired_with: Option<&'static str>,
}

impl Variant {
    fn driver(&self) -> EnvoyDriver {
        driver(&self.module, self.vm_config, self.plugin_config)
    }
}

/// The variants measured. The names without a plugin configuration are the default one's
/// (the names BENCHMARKS.md has always had).
fn variants() -> Vec<Variant> {
    const ENVOY_VM: &str = "prompter_filter-envoy_vm";
    const HOST_VM: &str = "prompter_filter-host_vm";
    let ours = module("prompter_filter.wasm");
    let empty = module("prompter_empty_filter.wasm");
    let variant = |name, module: &FilterModule, vm_config, plugin_config, paired_with| Variant {
        name,
        module: module.clone(),
        vm_config,
        plugin_config,
        paired_with,
    };
    let default = PluginConfig::Default;
    vec![
        variant(ENVOY_VM, &ours, VmConfig::Envoy, default, None),
        variant(HOST_VM, &ours, VmConfig::Host, default, None),
        variant(
            "prompter_filter-envoy_vm-custom_metrics",
            &ours,
            VmConfig::Envoy,
            PluginConfig::CustomMetrics,
            Some(ENVOY_VM),
        ),
        variant(
            "prompter_filter-host_vm-custom_metrics",
            &ours,
            VmConfig::Host,
            PluginConfig::CustomMetrics,
            Some(HOST_VM),
        ),
        variant(
            "prompter_filter-envoy_vm-declared_unmatched",
            &ours,
            VmConfig::Envoy,
            PluginConfig::DeclaredUnmatched,
            Some(ENVOY_VM),
        ),
        variant(
            "prompter_empty_filter",
            &empty,
            VmConfig::Envoy,
            default,
            None,
        ),
    ]
}

/// Prints `host calls per request: <variant> <request> first=<n> steady=<n>`: the first
/// request of its kind in a fresh VM (metric ids defined) and the 100th.
fn print_host_calls(variants: &[Variant]) {
    for variant in variants {
        for (kind, request) in requests() {
            let mut driver = variant.driver();
            let first = host_calls_of(&mut driver, &request);
            for _ in 0..98 {
                exchange(&mut driver, &request);
            }
            let steady = host_calls_of(&mut driver, &request);
            let name = variant.name;
            println!("host calls per request: {name} {kind} first={first} steady={steady}");
        }
    }
}

/// Rounds of a paired measurement, and the exchanges each variant makes in a round.
const PAIRED_ROUNDS: usize = 201;
const PAIRED_BATCH: u32 = 100;

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// Prints `paired per request: <variant> <request> ns=<n> default_ns=<n> over_default_ns=<n>`
/// for each variant paired with a default one: both measured in alternation, a batch of
/// exchanges each per round (which one goes first alternating too), so that both see the
/// same machine. The figures are the medians of the rounds' ns per request, and of the rounds'
/// differences.
fn print_paired(variants: &[Variant]) {
    for variant in variants {
        let Some(base) = variant
            .paired_with
            .and_then(|name| variants.iter().find(|v| v.name == name))
        else {
            continue;
        };
        for (kind, request) in requests() {
            let mut drivers = [base.driver(), variant.driver()];
            for driver in &mut drivers {
                for _ in 0..PAIRED_BATCH {
                    exchange(driver, &request);
                }
            }
            let mut times = [Vec::new(), Vec::new()];
            for round in 0..PAIRED_ROUNDS {
                for i in [round % 2, 1 - round % 2] {
                    let start = Instant::now();
                    for _ in 0..PAIRED_BATCH {
                        exchange(&mut drivers[i], black_box(&request));
                    }
                    let ns = start.elapsed().as_nanos() as f64 / f64::from(PAIRED_BATCH);
                    times[i].push(ns);
                }
            }
            let over: Vec<f64> = times[1].iter().zip(&times[0]).map(|(v, b)| v - b).collect();
            let [base_ns, ns] = times.map(median);
            println!(
                "paired per request: {} {kind} ns={ns:.0} default_ns={base_ns:.0} \
                 over_default_ns={:.0}",
                variant.name,
                median(over)
            );
        }
    }
}

fn whole_request(c: &mut Criterion, variants: &[Variant]) {
    let mut group = c.benchmark_group("request");
    for variant in variants {
        let mut driver = variant.driver();
        for (kind, request) in requests() {
            let id = BenchmarkId::new(variant.name, kind);
            group.bench_with_input(id, &request, |b, request| {
                b.iter(|| exchange(&mut driver, black_box(request)))
            });
        }
    }
    group.finish();
}

fn main() {
    let variants = variants();
    print_host_calls(&variants);
    print_paired(&variants);
    let mut criterion = Criterion::default().configure_from_args();
    whole_request(&mut criterion, &variants);
    criterion.final_summary();
}
