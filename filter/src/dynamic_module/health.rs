//! Polls the health endpoint for `prompter_redis_up`, from the main thread: once per interval
//! per proxy, however many workers there are.

use std::time::Instant;

use super::abi::{self, CalloutAnswer, EnvoyConfig, CALLOUT_SUCCESS};
use crate::config::Config;
use crate::events::Event;
use crate::exchange;
use crate::upkeep::{self, HealthLog};

#[derive(Debug)]
pub struct HealthPoller {
    /// When the next poll is due (always some: the poller exists only with an interval).
    next: Option<Instant>,
    in_flight: Option<u64>,
    log: HealthLog,
}

impl HealthPoller {
    /// Polls on the first tick.
    pub fn new(now: Instant) -> Self {
        HealthPoller {
            next: Some(now),
            in_flight: None,
            log: HealthLog::default(),
        }
    }

    pub fn owns(&self, callout: u64) -> bool {
        self.in_flight == Some(callout)
    }

    pub fn on_tick(
        &mut self,
        config: &Config,
        envoy: EnvoyConfig,
        now: Instant,
        record: &mut impl FnMut(Event<'_>),
    ) {
        if self.in_flight.is_some() {
            return;
        }
        let Some(due) = self.next.filter(|&due| now >= due) else {
            return;
        };
        let health = &config.health;
        self.next = upkeep::next_due(due, now, health.interval);
        let headers = [
            (":method", "GET"),
            (":path", health.path.as_str()),
            (":authority", health.authority.as_str()),
            ("host", health.authority.as_str()),
        ];
        let timeout = u64::try_from(health.timeout.as_millis()).unwrap_or(u64::MAX);
        match envoy.http_get(&health.cluster, &headers, timeout) {
            Ok(id) => {
                self.log.sent();
                self.in_flight = Some(id);
            }
            Err(status) => {
                let why = super::callout_init_error(status);
                if let Some(line) = self.log.not_sent(&health.cluster, why) {
                    abi::log(abi::LOG_WARN, &line);
                }
                exchange::emit_redis_up(config, 0, record);
            }
        }
    }

    pub fn on_answer(
        &mut self,
        config: &Config,
        result: u32,
        answer: &CalloutAnswer<'_>,
        record: &mut impl FnMut(Event<'_>),
    ) {
        self.in_flight = None;
        // No answer at all (reset, timeout, no cluster member) reads as down.
        let body: Option<Vec<u8>> = (result == CALLOUT_SUCCESS
            && answer.header(":status").is_some())
        .then(|| answer.body_chunks().flatten().copied().collect());
        let value = exchange::health_poll_value(config, body.as_deref());
        exchange::emit_redis_up(config, value, record);
    }
}
