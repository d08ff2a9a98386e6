//! A route mix (409 create, listing, plain GET, probe, run, health, unmatched path) through a
//! filter, for instruction counts (`scripts/bench/instructions` runs it under callgrind).
//!
//! `request_mix wasm MODULE.wasm ROUNDS`: the module in the wasmtime host, with Envoy's VM
//! configuration and Envoy-like header maps, every callback of each exchange, no I/O.
//! `request_mix core ROUNDS`: the filter's core natively (route match, body scanning,
//! exchange, recorder into batched counters), no Wasm, no host calls.
//!
//! `request_mix functions MODULE.wasm [TEXT]`: where each function of the module lands in the
//! code Cranelift compiles (text offset, length, name), to name the Wasm functions in a
//! profile; the code itself is written to TEXT, for a disassembler.
//!
//! One round is the mix once. A warm-up round runs first (metric definitions, caches, the
//! allocator's first growth); callgrind then counts only inside `measured`
//! (`--toggle-collect`), so instructions / (rounds × mix length) is the steady cost of one
//! request.

use std::hint::black_box;

use prompter_filter::config::Config;
use prompter_filter::events::{Recorder, Stat, StatSink};
use prompter_filter::exchange::Exchange;
use prompter_filter::labels::ModelLabels;
use prompter_filter::routes::RouteTable;
use prompter_host::state::PluginSetup;
use prompter_host::testing::{EnvoyDriver, Request};
use prompter_host::vm::FilterModule;

/// Health polling off: nothing answers it here.
const CONFIG: &str = r#"{"health":{"interval_seconds":0}}"#;
const START_NANOS: u64 = 1_700_000_000_000_000_000;
/// Every request takes 3 ms: a few buckets of each histogram are counted.
const DURATION_SECONDS: f64 = 0.003;

fn mix() -> Vec<Request> {
    let mix = vec![
        Request::post(
            "/api/prompt-templates",
            r#"{"name":"bench","body":"Hello {name}"}"#,
        )
        .status(409)
        .respond(r#"{"detail":"template name already exists"}"#),
        Request::get("/api/prompt-templates")
            .respond(r#"[{"id":"t-1","name":"bench","body":"Hello {name}"}]"#),
        Request::get("/api/prompt-templates/t-1")
            .respond(r#"{"id":"t-1","name":"bench","body":"Hello {name}"}"#),
        Request::post(
            "/api/prompt-templates/t-1/ensure-version",
            r#"{"provider":"openai","model_id":"gpt-4o"}"#,
        )
        .respond(r#"{"provider":"openai","model_id":"gpt-4o","provider_version_key":"openai:gpt-4o","captured_at":"2026-01-01T00:00:00Z","created":true}"#),
        Request::post(
            "/api/prompt-templates/t-1/run",
            r#"{"provider":"openai","model_id":"gpt-4o","variables":{"name":"Ada"}}"#,
        )
        .respond(r#"{"output":"Hello Ada","result_id":"r-1","template_id":"t-1","provider":"openai","model_id":"gpt-4o","system_fingerprint":"fp_44709d6fcb"}"#),
        Request::get("/healthz").respond(r#"{"status":"ok","redis":true}"#),
        Request::get("/favicon.ico")
            .status(404)
            .respond(r#"{"detail":"Not Found"}"#),
    ];
    mix.into_iter()
        .map(|request| request.taking_seconds(DURATION_SECONDS))
        .collect()
}

/// What drives one exchange of the mix.
trait Driver {
    fn exchange(&mut self, request: &Request);
}

/// The module in the wasmtime host, as Envoy drives it.
fn wasm(path: &str) -> EnvoyDriver {
    let module = FilterModule::from_file(path.as_ref())
        .unwrap_or_else(|e| panic!("{path}: {e}: build it with scripts/build-wasm"));
    let setup = PluginSetup {
        plugin_config: CONFIG.as_bytes().to_vec(),
        // Envoy's: counters batched in the VM.
        vm_config: Vec::new(),
        ..PluginSetup::default()
    };
    EnvoyDriver::start(&module, setup, START_NANOS).expect("the filter starts")
}

impl Driver for EnvoyDriver {
    fn exchange(&mut self, request: &Request) {
        EnvoyDriver::exchange(self, request).expect("the exchange");
    }
}

/// The core natively, into counters batched the way the Wasm glue batches them.
struct Core {
    config: Config,
    learned: RouteTable,
    models: ModelLabels,
    recorder: Recorder,
    sink: Counters,
    now: u64,
}

#[derive(Default)]
struct Counters {
    names: Vec<String>,
    values: Vec<u64>,
}

impl Counters {
    fn define(&mut self, stat: &Stat<'_>) -> Option<u32> {
        let name = stat.encode_into(&mut String::new()).to_string();
        let at = match self.names.iter().position(|n| *n == name) {
            Some(at) => at,
            None => {
                self.names.push(name);
                self.values.push(0);
                self.names.len() - 1
            }
        };
        u32::try_from(at).ok()
    }
}

impl StatSink for Counters {
    fn counter(&mut self, stat: &Stat<'_>) -> Option<u32> {
        self.define(stat)
    }
    fn gauge(&mut self, stat: &Stat<'_>) -> Option<u32> {
        self.define(stat)
    }
    fn histogram(&mut self, stat: &Stat<'_>) -> Option<u32> {
        self.define(stat)
    }
    fn add(&mut self, counter: u32, delta: u64) {
        if let Some(value) = self.values.get_mut(counter as usize) {
            *value += delta;
        }
    }
    fn set(&mut self, gauge: u32, value: u64) {
        if let Some(slot) = self.values.get_mut(gauge as usize) {
            *slot = value;
        }
    }
    fn observe(&mut self, _histogram: u32, _nanos: u64) {}
}

impl Core {
    fn new() -> Core {
        Core {
            config: Config::parse(CONFIG.as_bytes(), |_| None).expect("the configuration"),
            learned: RouteTable::default(),
            models: ModelLabels::default(),
            recorder: Recorder::default(),
            sink: Counters::default(),
            now: START_NANOS,
        }
    }
}

impl Driver for Core {
    fn exchange(&mut self, request: &Request) {
        let config = &self.config;
        let mut exchange = Exchange::start_with(
            config,
            &self.learned,
            Some(&request.method),
            Some(&request.path),
            self.now,
        );
        if !request.body.is_empty() && exchange.wants_request_body() {
            exchange.request_body(config, &request.body);
        }
        self.now += request.duration_nanos;
        let content_type = exchange.reads_content_type().then_some("application/json");
        exchange.response_headers(request.status.as_deref(), content_type);
        if !request.response_body.is_empty() {
            exchange.response_body(config, &request.response_body);
        }
        let (recorder, sink) = (&mut self.recorder, &mut self.sink);
        exchange.finish(config, &mut self.models, self.now, &mut |event| {
            recorder.record(config, event, sink)
        });
    }
}

#[inline(never)]
fn run(driver: &mut dyn Driver, mix: &[Request], rounds: usize) {
    for _ in 0..rounds {
        for request in mix {
            driver.exchange(black_box(request));
        }
    }
}

/// The rounds callgrind counts (`--toggle-collect=*request_mix::measured*`).
#[inline(never)]
fn measured(driver: &mut dyn Driver, mix: &[Request], rounds: usize) {
    run(driver, mix, rounds)
}

/// Prints `offset length name` for each function of the module as compiled by an engine
/// configured as the host's (`FilterModule`: epoch interruption on), whose code is the same.
fn print_functions(path: &str, text: Option<&String>) {
    let mut config = wasmtime::Config::new();
    config.epoch_interruption(true);
    let engine = wasmtime::Engine::new(&config).expect("engine");
    let module = wasmtime::Module::from_file(&engine, path).expect("module");
    if let Some(text) = text {
        std::fs::write(text, module.text()).expect("the code written");
    }
    for function in module.functions() {
        let name = function
            .name
            .unwrap_or_else(|| format!("wasm-function[{}]", function.index.as_u32()));
        println!("{} {} {name}", function.offset, function.len);
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: request_mix wasm MODULE.wasm ROUNDS | request_mix core ROUNDS \
                 | request_mix functions MODULE.wasm [TEXT]";
    let (mut driver, rounds): (Box<dyn Driver>, &str) = match args.as_slice() {
        [mode, path, rounds] if mode == "wasm" => (Box::new(wasm(path)), rounds),
        [mode, rounds] if mode == "core" => (Box::new(Core::new()), rounds),
        [mode, path, text @ ..] if mode == "functions" => {
            return print_functions(path, text.first())
        }
        _ => panic!("{usage}"),
    };
    let rounds: usize = rounds.parse().expect(usage);
    let mix = mix();
    run(driver.as_mut(), &mix, 1);
    measured(driver.as_mut(), &mix, rounds);
    println!("requests={}", rounds * mix.len());
}
