//! Filter instances for the proxy: one per worker, as Envoy has one VM per worker thread. A
//! connection is pinned to a worker; callbacks lock it briefly (they are synchronous and
//! short). A worker whose instance trapped gets a fresh one on next use.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;

use crate::logs::Level;
use crate::state::{HttpCallRequest, HttpCallResponse, PluginSetup, Shared};
use crate::vm::{FilterInstance, FilterModule};

pub struct Worker {
    instance: Option<FilterInstance>,
}

/// Everything a worker needs to (re)create its instance.
pub struct Pool {
    workers: Vec<Arc<Mutex<Worker>>>,
    next: AtomicUsize,
    /// `None` when the module could not be loaded and the proxy fails open.
    module: Option<FilterModule>,
    pub shared: Shared,
    setup: PluginSetup,
    /// `prompter_host_filter_failures_total`: callbacks that trapped or failed.
    pub failures: Counter,
}

/// Performs an http call the filter dispatched (the proxy's upstream client).
pub type CallPerformer =
    Arc<dyn Fn(HttpCallRequest) -> tokio::task::JoinHandle<Option<HttpCallResponse>> + Send + Sync>;

impl Pool {
    /// Starts `count` instances; the first error (e.g. the filter refusing its configuration)
    /// is returned, so that a broken setup is refused at start.
    pub fn new(
        module: Option<FilterModule>,
        shared: Shared,
        setup: PluginSetup,
        count: usize,
        failures: Counter,
    ) -> crate::Result<Arc<Pool>> {
        let mut workers = Vec::with_capacity(count);
        for _ in 0..count.max(1) {
            let instance = match &module {
                Some(module) => Some(FilterInstance::new(module, shared.clone(), setup.clone())?),
                None => None,
            };
            workers.push(Arc::new(Mutex::new(Worker { instance })));
        }
        Ok(Arc::new(Pool {
            workers,
            next: AtomicUsize::new(0),
            module,
            shared,
            setup,
            failures,
        }))
    }

    /// The worker for a new connection (round robin).
    pub fn pick(&self) -> Arc<Mutex<Worker>> {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.workers.len();
        Arc::clone(&self.workers[i])
    }

    /// Runs `f` on the worker's instance. `None` when the worker has no healthy instance or
    /// `f` failed: the failure is counted and logged and the instance dropped, so that the
    /// caller can fail open (or closed) and the next use starts a fresh instance.
    pub fn with<T>(
        &self,
        worker: &Mutex<Worker>,
        f: impl FnOnce(&mut FilterInstance) -> crate::Result<T>,
    ) -> Option<T> {
        let module = self.module.as_ref()?;
        let mut worker = worker.lock().unwrap_or_else(|e| e.into_inner());
        if worker.instance.is_none() {
            match FilterInstance::new(module, self.shared.clone(), self.setup.clone()) {
                Ok(instance) => worker.instance = Some(instance),
                Err(error) => {
                    self.fail(&format!("cannot restart the filter: {error}"));
                    return None;
                }
            }
        }
        let instance = worker.instance.as_mut()?;
        match f(instance) {
            Ok(value) => Some(value),
            Err(error) => {
                if instance.has_failed() {
                    worker.instance = None;
                }
                self.fail(&error.to_string());
                None
            }
        }
    }

    pub fn fail(&self, message: &str) {
        self.failures.inc();
        self.shared
            .logs
            .push(Level::Error, format!("prompter-host: {message}"));
    }

    /// Ticks every worker at the period its filter asked for and performs the http calls
    /// filters dispatch (from ticks or callbacks), delivering the answers.
    pub fn spawn_background(self: &Arc<Self>, perform: CallPerformer) {
        for worker in &self.workers {
            let pool = Arc::clone(self);
            let worker = Arc::clone(worker);
            let perform = Arc::clone(&perform);
            tokio::spawn(async move {
                let mut last_tick = tokio::time::Instant::now();
                loop {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    let period = pool.with(&worker, |vm| Ok(vm.tick_period())).flatten();
                    if let Some(period) = period {
                        if last_tick.elapsed() >= period {
                            last_tick = tokio::time::Instant::now();
                            pool.with(&worker, |vm| vm.tick());
                        }
                    }
                    let calls = pool
                        .with(&worker, |vm| Ok(vm.take_http_calls()))
                        .unwrap_or_default();
                    for call in calls {
                        let (pool, worker, perform) =
                            (Arc::clone(&pool), Arc::clone(&worker), Arc::clone(&perform));
                        tokio::spawn(async move {
                            let token = call.token;
                            let response = perform(call).await.ok().flatten();
                            pool.with(&worker, |vm| vm.on_http_call_response(token, response));
                        });
                    }
                }
            });
        }
    }
}
