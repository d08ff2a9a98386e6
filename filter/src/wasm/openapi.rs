//! Learns route templates from the API's OpenAPI document, once per interval per proxy: a
//! [`Lease`] elects the VM that fetches, it reads the answer in slices into a
//! [`PathsReader`], and publishes the learned templates in shared data; every VM takes them
//! up on its next tick. A fetch or document that fails leaves every VM's table as it was.

use std::time::SystemTime;

use proxy_wasm::hostcalls;
use proxy_wasm::types::{BufferType, LogLevel, MapType};

use super::lease::Lease;
use super::root::Shared;
use crate::config::OpenApiFetch;
use crate::openapi::{self, DocumentPaths, Learned};
use crate::upkeep::{self, FetchFailure, FetchLog};
/// Bytes of the document copied into the VM at a time.
const SLICE: usize = 64 * 1024;

#[derive(Debug)]
pub struct RouteLearner {
    lease: Lease,
    /// Shared-data key of the learned templates, one per line ([`Learned::to_text`]).
    routes_key: String,
    /// Shared-data key bumped after each change of `routes_key`, so a tick reads a few
    /// bytes, not the table.
    generation_key: String,
    in_flight: Option<u32>,
    /// Generation of the shared table this VM uses (0: none yet).
    generation: u64,
    log: FetchLog,
}

impl RouteLearner {
    /// The learner of the plugin whose shared state is named `scope`
    /// ([`crate::config::shared_state_scope`]).
    pub fn new(scope: &str) -> Self {
        let key = |what: &str| format!("prompter_filter.{scope}.openapi.{what}");
        RouteLearner {
            lease: Lease::new(key("next_fetch_ms")),
            routes_key: key("routes"),
            generation_key: key("generation"),
            in_flight: None,
            generation: 0,
            log: FetchLog::default(),
        }
    }

    /// True when `token` is this learner's fetch.
    pub fn owns(&self, token: u32) -> bool {
        self.in_flight == Some(token)
    }

    pub fn on_tick(&mut self, shared: &Shared, fetch: &OpenApiFetch, now: SystemTime) {
        self.adopt(shared);
        if self.in_flight.is_some() {
            return;
        }
        let now_ms = super::now_nanos(now) / 1_000_000;
        if !self.lease.claim(now_ms, fetch.interval) {
            return;
        }
        let headers = vec![
            (":method", "GET"),
            (":path", fetch.path.as_str()),
            (":authority", fetch.authority.as_str()),
            ("accept", "application/json"),
        ];
        match hostcalls::dispatch_http_call(&fetch.cluster, headers, None, vec![], fetch.timeout) {
            Ok(token) => self.in_flight = Some(token),
            Err(status) => self.failed(
                shared,
                fetch,
                now_ms,
                FetchFailure::not_sent(&fetch.cluster, format_args!("{status:?}")),
            ),
        }
    }

    /// The fetch's answer: `body_size` bytes, read from the host in slices.
    pub fn on_response(&mut self, shared: &Shared, fetch: &OpenApiFetch, body_size: usize) {
        self.in_flight = None;
        let now_ms = hostcalls::get_current_time().map_or(0, super::now_nanos) / 1_000_000;
        match read(fetch, body_size) {
            Ok(paths) => self.publish(
                shared,
                fetch,
                openapi::learn_document(paths, &shared.config.routes),
            ),
            Err(failure) => self.failed(shared, fetch, now_ms, failure),
        }
    }

    fn failed(
        &mut self,
        shared: &Shared,
        fetch: &OpenApiFetch,
        now_ms: u64,
        failure: FetchFailure,
    ) {
        if let Some(retry) = failure.retry_in(fetch) {
            self.lease.due_by(now_ms + retry.as_millis() as u64);
        }
        let kept = shared.learned.borrow().len();
        if let Some(line) = self.log.failed(fetch, &failure, kept) {
            super::log(LogLevel::Warn, &line);
        }
    }

    /// Shares a new table with every VM and uses it here; an unchanged one is left alone.
    fn publish(&mut self, shared: &Shared, fetch: &OpenApiFetch, learned: Learned) {
        let text = learned.to_text();
        let (generation, cas) = self.shared_generation();
        let current = hostcalls::get_shared_data(&self.routes_key)
            .ok()
            .and_then(|(value, _)| value)
            .unwrap_or_default();
        if generation > 0 && current == text.as_bytes() {
            if let Some(line) = self.log.unchanged(fetch) {
                super::log(LogLevel::Info, &line);
            }
            self.adopt(shared);
            return;
        }
        let next = generation + 1;
        let shared_ok = hostcalls::set_shared_data(&self.routes_key, Some(text.as_bytes()), None)
            .and_then(|()| {
                hostcalls::set_shared_data(
                    &self.generation_key,
                    Some(next.to_string().as_bytes()),
                    cas,
                )
            });
        super::log(LogLevel::Info, &self.log.learned(fetch, &learned));
        if let Err(status) = shared_ok {
            super::log(
                LogLevel::Warn,
                &format!(
                    "prompter-filter: learned routes not shared with other workers: {status:?}"
                ),
            );
        }
        *shared.learned.borrow_mut() = learned.table;
        self.generation = next;
    }

    /// Takes up the table another VM published, if it is newer than this VM's.
    fn adopt(&mut self, shared: &Shared) {
        let (generation, _) = self.shared_generation();
        if generation == self.generation {
            return;
        }
        let text = hostcalls::get_shared_data(&self.routes_key)
            .ok()
            .and_then(|(value, _)| value)
            .unwrap_or_default();
        let learned = Learned::from_text(&String::from_utf8_lossy(&text), &shared.config.routes);
        *shared.learned.borrow_mut() = learned.table;
        self.generation = generation;
    }

    fn shared_generation(&self) -> (u64, Option<u32>) {
        let Ok((value, cas)) = hostcalls::get_shared_data(&self.generation_key) else {
            return (0, None);
        };
        let generation = value
            .and_then(|v| std::str::from_utf8(&v).ok()?.parse::<u64>().ok())
            .unwrap_or(0);
        (generation, cas)
    }
}

/// The `paths` keys of the answer, or why there are none to learn from.
fn read(fetch: &OpenApiFetch, body_size: usize) -> Result<DocumentPaths, FetchFailure> {
    let status = hostcalls::get_map_value_bytes(MapType::HttpCallResponseHeaders, ":status")
        .ok()
        .flatten()
        .and_then(|s| std::str::from_utf8(&s).ok()?.parse::<u16>().ok());
    upkeep::read_answer(fetch, status, body_size, |reader| {
        let mut offset = 0;
        while offset < body_size {
            let len = SLICE.min(body_size - offset);
            let chunk = hostcalls::get_buffer(BufferType::HttpCallResponseBody, offset, len)
                .ok()
                .flatten()
                .unwrap_or_default();
            if chunk.is_empty() {
                break;
            }
            reader.feed(&chunk)?;
            offset += chunk.len();
        }
        Ok(())
    })
}
