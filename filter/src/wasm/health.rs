//! Polls the health endpoint for `prompter_redis_up`, once per interval per proxy: every
//! worker's VM ticks, and a compare-and-swap on shared data elects the one that polls.

use std::time::{Duration, SystemTime};

use proxy_wasm::hostcalls;
use proxy_wasm::types::LogLevel;

use super::root::Shared;
use crate::exchange;

/// Shared-data key holding the time (ms since the epoch) the next poll is due.
const LEASE_KEY: &str = "prompter_filter.health.next_poll_ms";

#[derive(Debug, Default)]
pub struct HealthPoller {
    in_flight: Option<u32>,
}

impl HealthPoller {
    pub fn new() -> Self {
        // Create the lease once so that later claims are all compare-and-swap: a first `set`
        // on a missing key would succeed in every worker.
        if let Ok((None, _)) = hostcalls::get_shared_data(LEASE_KEY) {
            let _ = hostcalls::set_shared_data(LEASE_KEY, Some(b"0"), None);
        }
        HealthPoller { in_flight: None }
    }

    pub fn on_tick(&mut self, shared: &Shared, now: SystemTime) {
        if self.in_flight.is_some() {
            return;
        }
        let now_ms = super::now_nanos(now) / 1_000_000;
        if !claim_lease(now_ms, shared.config.health.interval) {
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
            Ok(token) => self.in_flight = Some(token),
            Err(status) => {
                super::log(
                    LogLevel::Warn,
                    &format!(
                        "prompter-filter: health check to cluster `{}` not sent: {status:?}",
                        health.cluster
                    ),
                );
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

/// Moves the lease forward by one interval if it is due; true when this VM won it.
fn claim_lease(now_ms: u64, interval: Duration) -> bool {
    let Ok((value, cas)) = hostcalls::get_shared_data(LEASE_KEY) else {
        return false;
    };
    let due = value
        .and_then(|v| std::str::from_utf8(&v).ok()?.parse::<u64>().ok())
        .unwrap_or(0);
    if now_ms < due {
        return false;
    }
    let next = (now_ms + interval.as_millis() as u64).to_string();
    hostcalls::set_shared_data(LEASE_KEY, Some(next.as_bytes()), cas).is_ok()
}
