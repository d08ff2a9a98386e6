//! A deterministic driver for a filter, for tests: a manual clock, streams fed by hand, ticks
//! and http call answers on demand, and the resulting metrics and logs to assert on.
//!
//! ```no_run
//! use prompter_host::testing::{Harness, Request};
//! let mut filter = Harness::builder().plugin_config(r#"{"health":{"interval_seconds":0}}"#).build().unwrap();
//! filter.exchange(&Request::post("/api/prompt-templates", "{}").status(201)).unwrap();
//! assert_eq!(filter.series().get("starlette_requests_total", &[("status", "201")]), None);
//! ```

pub mod bounds;
mod envoy_driver;
pub mod series;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

pub use envoy_driver::EnvoyDriver;
pub use series::Series;

use crate::clock::Clock;
use crate::error::Result;
use crate::logs::Logs;
use crate::metrics::MetricStore;
use crate::shared_data::SharedData;
use crate::state::{
    HeaderMap, HttpCallRequest, HttpCallResponse, LocalResponse, PluginSetup, Shared,
};
use crate::vm::{Action, FilterInstance, FilterModule};

/// The filter as shipped (`scripts/test` builds it before the tests).
pub fn default_wasm() -> PathBuf {
    let default = Path::new(crate::envoy_config::DEFAULT_WASM);
    shipped_wasm(
        default
            .file_name()
            .and_then(|f| f.to_str())
            .unwrap_or_default(),
    )
}

/// A module as shipped, by file name: `scripts/build-wasm` writes them next to
/// [`DEFAULT_WASM`](crate::envoy_config::DEFAULT_WASM). Panics, saying how to build it, when
/// it is missing, or older than its sources or than cargo's build of it: `cargo test` does
/// not rebuild the wasm modules, and would otherwise test the module from before an edit.
pub fn shipped_wasm(file: &str) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let shipped = root
        .join(crate::envoy_config::DEFAULT_WASM)
        .with_file_name(file);
    let cargo_build = root.join("target/wasm32-wasip1/release").join(file);
    let sources = module_sources(&root, file);
    if let Err(problem) = check_shipped(&shipped, &cargo_build, &sources) {
        panic!("{problem}");
    }
    shipped
}

/// What `scripts/build-wasm` builds a module from: its crate (by the module's file name),
/// and the workspace's manifests, lock file and build settings.
fn module_sources(root: &Path, file: &str) -> Vec<PathBuf> {
    let krate = match file {
        "prompter_empty_filter.wasm" => "tests/empty-filter",
        "prompter_reads_filter.wasm" => "tests/reads-filter",
        _ => "filter",
    };
    let mut sources: Vec<PathBuf> = [
        "Cargo.toml",
        "Cargo.lock",
        ".cargo/config.toml",
        "rust-toolchain.toml",
        "scripts/build-wasm",
    ]
    .iter()
    .map(|f| root.join(f))
    .collect();
    sources.push(root.join(krate).join("Cargo.toml"));
    files_under(&root.join(krate).join("src"), &mut sources);
    sources
}

fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files_under(&path, out);
        } else {
            out.push(path);
        }
    }
}

/// Why `shipped` is not to be loaded, if it is not: missing, older than one of `sources`, or
/// older than `cargo_build` (a missing cargo build is fine: the module may come from
/// elsewhere, and so may a missing source).
fn check_shipped(
    shipped: &Path,
    cargo_build: &Path,
    sources: &[PathBuf],
) -> std::result::Result<(), String> {
    let modified = |path: &Path| std::fs::metadata(path).and_then(|m| m.modified()).ok();
    let Some(shipped_at) = modified(shipped) else {
        return Err(format!(
            "{} not found: build it with scripts/build-wasm (scripts/test does)",
            shipped.display()
        ));
    };
    let newer = sources
        .iter()
        .filter_map(|source| Some((modified(source)?, source)))
        .filter(|(at, _)| *at > shipped_at)
        .max();
    if let Some((_, source)) = newer {
        return Err(format!(
            "{} is older than its source {}: run scripts/build-wasm (cargo test does not \
             rebuild the wasm modules)",
            shipped.display(),
            source.display()
        ));
    }
    match modified(cargo_build) {
        Some(built_at) if built_at > shipped_at => Err(format!(
            "{} is older than cargo's {}: run scripts/build-wasm",
            shipped.display(),
            cargo_build.display()
        )),
        _ => Ok(()),
    }
}

/// The default filter module, compiled once per test process.
pub fn default_module() -> FilterModule {
    static MODULE: OnceLock<FilterModule> = OnceLock::new();
    MODULE
        .get_or_init(|| {
            let path = default_wasm();
            FilterModule::from_file(&path)
                .unwrap_or_else(|e| panic!("{e}: build it with scripts/build-wasm"))
        })
        .clone()
}

/// Shared state (metrics, shared data, logs) for `plugin_config`, with a clock.
pub fn shared_for(plugin_config: &[u8], env: &[(String, String)], clock: Clock) -> Shared {
    let logs = Arc::new(Logs::new(None));
    let buckets = crate::metrics::filter_buckets(plugin_config, env);
    Shared {
        metrics: Arc::new(MetricStore::new(buckets, Arc::clone(&logs))),
        shared_data: Arc::new(SharedData::default()),
        logs,
        clock,
    }
}

pub struct HarnessBuilder {
    module: Option<FilterModule>,
    setup: PluginSetup,
    start_nanos: u64,
}

impl HarnessBuilder {
    pub fn module(mut self, module: FilterModule) -> Self {
        self.module = Some(module);
        self
    }

    pub fn plugin_config(mut self, json: &str) -> Self {
        self.setup.plugin_config = json.as_bytes().to_vec();
        self
    }

    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.setup.env.push((key.into(), value.into()));
        self
    }

    pub fn cluster(mut self, name: &str) -> Self {
        self.setup.clusters.push(name.into());
        self
    }

    pub fn build(self) -> Result<Harness> {
        let clock = Clock::manual(self.start_nanos);
        let shared = shared_for(&self.setup.plugin_config, &self.setup.env, clock.clone());
        let module = self.module.unwrap_or_else(default_module);
        let instance = FilterInstance::new(&module, shared.clone(), self.setup)?;
        Ok(Harness {
            instance: Mutex::new(instance),
            shared,
            clock,
        })
    }
}

/// One request/response exchange to feed through the filter.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
    /// `None`: the stream ends without a response (reset).
    pub status: Option<String>,
    /// Response headers besides `:status`.
    pub response_headers: HeaderMap,
    pub response_body: Vec<u8>,
    /// Body chunk size on both sides.
    pub chunk: usize,
    /// Time from request start to end of response.
    pub duration_nanos: u64,
}

impl Request {
    pub fn new(method: &str, path: &str) -> Self {
        Request {
            method: method.into(),
            path: path.into(),
            headers: Vec::new(),
            body: Vec::new(),
            status: Some("200".into()),
            response_headers: Vec::new(),
            response_body: Vec::new(),
            chunk: usize::MAX,
            duration_nanos: 1_000_000,
        }
    }

    pub fn get(path: &str) -> Self {
        Self::new("GET", path)
    }

    pub fn post(path: &str, body: &str) -> Self {
        let mut request = Self::new("POST", path);
        request.body = body.as_bytes().to_vec();
        request
    }

    /// A request header, sent after the ones the driver sets itself.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers
            .push((name.as_bytes().to_vec(), value.as_bytes().to_vec()));
        self
    }

    pub fn status(mut self, status: u16) -> Self {
        self.status = Some(status.to_string());
        self
    }

    /// A raw `:status` value (odd ones included) or none at all.
    pub fn raw_status(mut self, status: Option<&str>) -> Self {
        self.status = status.map(str::to_string);
        self
    }

    pub fn response_header(mut self, name: &str, value: &str) -> Self {
        self.response_headers
            .push((name.as_bytes().to_vec(), value.as_bytes().to_vec()));
        self
    }

    pub fn respond(mut self, body: &str) -> Self {
        self.response_body = body.as_bytes().to_vec();
        self
    }

    pub fn chunked(mut self, size: usize) -> Self {
        self.chunk = size.max(1);
        self
    }

    pub fn taking_seconds(mut self, seconds: f64) -> Self {
        self.duration_nanos = (seconds * 1e9).round() as u64;
        self
    }
}

/// What the filter did with an exchange.
#[derive(Debug, Default)]
pub struct Outcome {
    pub actions: Vec<Action>,
    pub local_response: Option<LocalResponse>,
}

pub struct Harness {
    instance: Mutex<FilterInstance>,
    pub shared: Shared,
    pub clock: Clock,
}

impl Harness {
    pub fn builder() -> HarnessBuilder {
        HarnessBuilder {
            module: None,
            setup: PluginSetup::default(),
            start_nanos: 1_700_000_000_000_000_000,
        }
    }

    /// The default filter with `plugin_config`.
    pub fn with_config(plugin_config: &str) -> Harness {
        Self::builder()
            .plugin_config(plugin_config)
            .build()
            .expect("the filter starts")
    }

    pub fn instance(&self) -> std::sync::MutexGuard<'_, FilterInstance> {
        self.instance.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs one exchange through every callback, in order, as Envoy would.
    pub fn exchange(&self, request: &Request) -> Result<Outcome> {
        let mut vm = self.instance();
        let mut outcome = Outcome::default();
        let id = vm.create_stream()?;
        let mut headers: HeaderMap = vec![
            (b":method".to_vec(), request.method.as_bytes().to_vec()),
            (b":path".to_vec(), request.path.as_bytes().to_vec()),
            (b":authority".to_vec(), b"prompter-api".to_vec()),
        ];
        headers.extend(request.headers.iter().cloned());
        outcome
            .actions
            .push(vm.on_request_headers(id, headers, request.body.is_empty())?);
        let chunks: Vec<&[u8]> = request.body.chunks(request.chunk.max(1)).collect();
        for (i, chunk) in chunks.iter().enumerate() {
            outcome
                .actions
                .push(vm.on_request_body(id, chunk, i + 1 == chunks.len())?);
        }
        self.clock.advance_nanos(request.duration_nanos);
        if let Some(status) = &request.status {
            let mut headers = vec![(b":status".to_vec(), status.as_bytes().to_vec())];
            headers.extend(request.response_headers.iter().cloned());
            outcome.actions.push(vm.on_response_headers(
                id,
                headers,
                request.response_body.is_empty(),
            )?);
            let chunks: Vec<&[u8]> = request.response_body.chunks(request.chunk.max(1)).collect();
            for (i, chunk) in chunks.iter().enumerate() {
                outcome
                    .actions
                    .push(vm.on_response_body(id, chunk, i + 1 == chunks.len())?);
            }
        }
        outcome.local_response = vm.take_local_response(id);
        vm.finish_stream(id)?;
        Ok(outcome)
    }

    pub fn advance_seconds(&self, seconds: f64) {
        self.clock.advance_nanos((seconds * 1e9).round() as u64);
    }

    pub fn tick(&self) -> Result<()> {
        self.instance().tick()
    }

    pub fn take_http_calls(&self) -> Vec<HttpCallRequest> {
        self.instance().take_http_calls()
    }

    pub fn answer_http_call(&self, token: u32, response: Option<HttpCallResponse>) -> Result<()> {
        self.instance().on_http_call_response(token, response)
    }

    /// The exporter's text, as `/metrics` serves it.
    pub fn metrics_text(&self) -> String {
        self.shared.metrics.encode()
    }

    pub fn series(&self) -> Series {
        series::parse(&self.metrics_text())
    }

    pub fn logs(&self) -> Vec<String> {
        self.shared.logs.texts()
    }
}

#[cfg(test)]
mod tests {
    use std::fs::File;
    use std::time::{Duration, SystemTime};

    use super::{check_shipped, module_sources};

    #[test]
    fn a_shipped_module_older_than_its_sources_or_cargos_build_or_missing_is_refused() {
        let dir = std::env::temp_dir().join(format!("prompter-shipped-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (shipped, built) = (dir.join("shipped.wasm"), dir.join("built.wasm"));
        let source = dir.join("exchange.rs");
        let sources = [source.clone(), dir.join("missing.rs")];
        let touch = |path: &std::path::Path, at: SystemTime| {
            File::create(path).unwrap().set_modified(at).unwrap();
        };
        let now = SystemTime::now();
        let check = || check_shipped(&shipped, &built, &sources);

        let missing = check().unwrap_err();
        assert!(missing.contains("not found") && missing.contains("scripts/build-wasm"));

        touch(&shipped, now);
        assert_eq!(check(), Ok(()), "no cargo build, no source");
        touch(&built, now - Duration::from_secs(1));
        touch(&source, now - Duration::from_secs(2));
        assert_eq!(check(), Ok(()), "edited, built, then shipped");

        touch(&built, now + Duration::from_secs(1));
        let stale = check().unwrap_err();
        assert!(stale.contains("is older than cargo's"), "{stale}");

        touch(&source, now + Duration::from_secs(2));
        let edited = check().unwrap_err();
        assert!(
            edited.contains("older than its source") && edited.contains("exchange.rs"),
            "an edit after the build: {edited}"
        );
        assert!(edited.contains("run scripts/build-wasm"), "{edited}");

        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_filters_sources_are_its_crate_and_the_workspace_build_settings() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let sources = module_sources(&root, "prompter_filter.wasm");
        for file in [
            "filter/src/exchange.rs",
            "filter/src/wasm/http.rs",
            "Cargo.lock",
        ] {
            assert!(sources.contains(&root.join(file)), "{file}");
        }
        assert!(!sources.iter().any(|s| s.starts_with(root.join("host"))));
        let empty = module_sources(&root, "prompter_empty_filter.wasm");
        assert!(empty.contains(&root.join("tests/empty-filter/src/lib.rs")));
        assert!(!empty.iter().any(|s| s.starts_with(root.join("filter"))));
    }
}
