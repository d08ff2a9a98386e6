//! Envoy's stats as a [`StatSink`]: metric ids are resolved once per stat name and cached, so
//! a series costs one `proxy_define_metric` for the life of the VM.

use std::collections::HashMap;

use proxy_wasm::hostcalls;
use proxy_wasm::types::{LogLevel, MetricType};

use crate::events::StatSink;

#[derive(Debug, Default)]
pub struct EnvoyStats {
    ids: HashMap<String, u32>,
    /// Set once a host call failed, so that the log says it once, not per request.
    failed: bool,
}

impl EnvoyStats {
    fn id(&mut self, kind: MetricType, name: &str) -> Option<u32> {
        if let Some(id) = self.ids.get(name) {
            return Some(*id);
        }
        match hostcalls::define_metric(kind, name) {
            Ok(id) => {
                self.ids.insert(name.to_string(), id);
                Some(id)
            }
            Err(status) => {
                self.report(&format!("define_metric({name}) failed: {status:?}"));
                None
            }
        }
    }

    fn report(&mut self, message: &str) {
        if !self.failed {
            self.failed = true;
            super::log(LogLevel::Warn, message);
        }
    }
}

impl StatSink for EnvoyStats {
    fn add(&mut self, name: &str, delta: u64) {
        let Some(id) = self.id(MetricType::Counter, name) else {
            return;
        };
        if delta > 0 {
            let delta = i64::try_from(delta).unwrap_or(i64::MAX);
            if let Err(status) = hostcalls::increment_metric(id, delta) {
                self.report(&format!("increment_metric({name}) failed: {status:?}"));
            }
        }
    }

    fn observe(&mut self, name: &str, nanos: u64) {
        let Some(id) = self.id(MetricType::Histogram, name) else {
            return;
        };
        if let Err(status) = hostcalls::record_metric(id, nanos) {
            self.report(&format!("record_metric({name}) failed: {status:?}"));
        }
    }

    fn set(&mut self, name: &str, value: u64) {
        let Some(id) = self.id(MetricType::Gauge, name) else {
            return;
        };
        if let Err(status) = hostcalls::record_metric(id, value) {
            self.report(&format!("record_metric({name}) failed: {status:?}"));
        }
    }
}
