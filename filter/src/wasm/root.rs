//! The root context: parses the configuration once, hands it to every request, polls the
//! health endpoint for `prompter_redis_up`, and learns routes from the OpenAPI document.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::SystemTime;

use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{ContextType, LogLevel};

use super::health::HealthPoller;
use super::http::RequestMetrics;
use super::openapi::RouteLearner;
use super::stats::EnvoyStats;
use crate::config::{shared_state_scope, Config, VmOptions};
use crate::events::{Event, Recorder};
use crate::flush::FlushSchedule;
use crate::labels::ModelLabels;
use crate::routes::RouteTable;

/// State every request of this VM shares (one VM per Envoy worker thread).
#[derive(Debug)]
pub struct Shared {
    pub config: Config,
    pub stats: RefCell<EnvoyStats>,
    pub models: RefCell<ModelLabels>,
    /// Routes learned from the OpenAPI document, beside `config.routes`.
    pub learned: RefCell<RouteTable>,
    recorder: RefCell<Recorder>,
}

impl Shared {
    /// Applies one event to Envoy's stats.
    pub fn record(&self, event: Event<'_>) {
        self.recorder
            .borrow_mut()
            .record(&self.config, event, &mut *self.stats.borrow_mut());
    }
}

#[derive(Default)]
pub struct PluginRoot {
    vm: VmOptions,
    flush: Option<FlushSchedule>,
    shared: Option<Rc<Shared>>,
    health: Option<HealthPoller>,
    openapi: Option<RouteLearner>,
}

impl Context for PluginRoot {
    fn on_done(&mut self) -> bool {
        if let Some(shared) = &self.shared {
            shared.stats.borrow_mut().flush();
        }
        true
    }

    fn on_http_call_response(
        &mut self,
        token: u32,
        _headers: usize,
        body_size: usize,
        _trailers: usize,
    ) {
        if let (Some(learner), Some(shared)) = (&mut self.openapi, &self.shared) {
            if let Some(fetch) = shared
                .config
                .openapi
                .as_ref()
                .filter(|_| learner.owns(token))
            {
                return learner.on_response(shared, fetch, body_size);
            }
        }
        let body = self.get_http_call_response_body(0, body_size);
        let status = self
            .get_http_call_response_header_bytes(":status")
            .map(|b| String::from_utf8_lossy(&b).into_owned());
        if let (Some(health), Some(shared)) = (&mut self.health, &self.shared) {
            health.on_response(shared, token, status.as_deref(), body.as_deref());
        }
    }
}

impl PluginRoot {
    /// Sends the batched counter increments on the ticks their schedule says.
    fn flush_stats(&mut self, now: SystemTime) {
        let (Some(shared), Some(schedule)) = (&self.shared, &mut self.flush) else {
            return;
        };
        if schedule.tick(now) {
            shared.stats.borrow_mut().flush();
        }
    }
}

impl RootContext for PluginRoot {
    fn on_vm_start(&mut self, _size: usize) -> bool {
        let raw = self.get_vm_configuration().unwrap_or_default();
        match VmOptions::parse(&raw) {
            Ok(vm) => {
                self.vm = vm;
                true
            }
            Err(error) => {
                super::log(LogLevel::Error, &format!("prompter-filter: {error}"));
                false
            }
        }
    }

    fn on_configure(&mut self, _size: usize) -> bool {
        let raw = self.get_plugin_configuration().unwrap_or_default();
        let config = match Config::parse(&raw, |name| std::env::var(name).ok()) {
            Ok(config) => Config {
                native_histograms: self.vm.native_histograms,
                ..config
            },
            Err(error) => {
                super::log(LogLevel::Error, &format!("prompter-filter: {error}"));
                return false;
            }
        };
        super::log(LogLevel::Info, &config.summary());
        let polls = !config.health.interval.is_zero();
        let scope = shared_state_scope(&raw);
        let shared = Rc::new(Shared {
            config,
            stats: RefCell::new(EnvoyStats::new(!self.vm.stats_flush.is_zero())),
            models: RefCell::default(),
            learned: RefCell::default(),
            recorder: RefCell::default(),
        });
        if shared.config.openapi.is_some() {
            self.openapi = Some(RouteLearner::new(&scope));
        }
        if polls {
            self.health = Some(HealthPoller::new(&scope));
        }
        // One tick drives the health poll, the route refresh and the stats flush; each keeps
        // its own schedule. Ticks are cheap (a shared-data read at most).
        let flush = FlushSchedule::new(self.vm.stats_flush);
        if self.health.is_some() || self.openapi.is_some() || flush.batches() {
            self.set_tick_period(flush.tick_period());
        }
        self.flush = flush.batches().then_some(flush);
        self.shared = Some(shared);
        true
    }

    fn on_tick(&mut self) {
        let now = self.get_current_time();
        self.flush_stats(now);
        if let (Some(health), Some(shared)) = (&mut self.health, &self.shared) {
            health.on_tick(shared, now);
        }
        if let (Some(learner), Some(shared)) = (&mut self.openapi, &self.shared) {
            if let Some(fetch) = &shared.config.openapi {
                learner.on_tick(shared, fetch, now);
            }
        }
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        let shared = self.shared.clone()?;
        Some(Box::new(RequestMetrics::new(shared)))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}
