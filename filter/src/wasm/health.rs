//! Polls the health endpoint for `prompter_redis_up`, once per interval per proxy: every
//! worker's VM ticks, and a [`Lease`] on shared data elects the one that polls.

use std::time::SystemTime;

use proxy_wasm::hostcalls;
use proxy_wasm::types::LogLevel;

use super::lease::Lease;
use super::root::Shared;
use crate::exchange;
use crate::upkeep::HealthLog;

#[derive(Debug)]
pub struct HealthPoller {
    lease: Lease,
    in_flight: Option<u32>,
    log: HealthLog,
}

impl HealthPoller {
    /// The poller of the plugin whose shared state is named `scope`
    /// ([`crate::config::shared_state_scope`]).
    pub fn new(scope: &str) -> Self {
        HealthPoller {
            lease: Lease::new(format!("prompter_filter.{scope}.health.next_poll_ms")),
            in_flight: None,
            log: HealthLog::default(),
        }
    }

    pub fn on_tick(&mut self, shared: &Shared, now: SystemTime) {
        if self.in_flight.is_some() {
            return;
        }
        let now_ms = super::now_nanos(now) / 1_000_000;
        if !self.lease.claim(now_ms, shared.config.health.interval) {
            return;
        }
        let health = &shared.config.health;
        let headers = vec![
            (":method", "GET"),
            (":path", health.path.as_str()),
            (":authority", health.authority.as_str()),
        ];
        match hostcalls::dispatch_http_call(&health.cluster, headers, None, vec![], health.timeout)
        {
            Ok(token) => {
                self.log.sent();
                self.in_flight = Some(token);
            }
            Err(status) => {
                if let Some(line) = self
                    .log
                    .not_sent(&health.cluster, format_args!("{status:?}"))
                {
                    super::log(LogLevel::Warn, &line);
                }
                exchange::emit_redis_up(&shared.config, 0, &mut |event| shared.record(event));
            }
        }
    }

    pub fn on_response(
        &mut self,
        shared: &Shared,
        token: u32,
        status: Option<&str>,
        body: Option<&[u8]>,
    ) {
        if self.in_flight != Some(token) {
            return;
        }
        self.in_flight = None;
        // No headers at all means the call failed (reset, timeout, no cluster member).
        let body = status.and(body);
        let value = exchange::health_poll_value(&shared.config, body);
        exchange::emit_redis_up(&shared.config, value, &mut |event| shared.record(event));
    }
}
