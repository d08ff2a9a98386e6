//! Learns route templates from the API's OpenAPI document, from the main thread (once per
//! interval per proxy): the answer's chunks are read in place by a [`PathsReader`], and a new
//! table is published to every worker ([`LearnedRoutes`]). A fetch or document that fails
//! leaves the table as it was; the log lines are the Wasm build's.

use std::time::Instant;

use super::abi::{self, CalloutAnswer, EnvoyConfig, CALLOUT_SUCCESS};
use super::plugin::{LearnedRoutes, Shared};
use crate::config::OpenApiFetch;
use crate::openapi;
use crate::upkeep::{self, FetchFailure, FetchLog};

#[derive(Debug)]
pub struct RouteLearner {
    /// When the next fetch is due; `None`: never again (`interval_seconds: 0` once learned).
    next: Option<Instant>,
    in_flight: Option<u64>,
    /// The learned table as text, to tell a new document from the same one again.
    current: Option<String>,
    log: FetchLog,
}

impl RouteLearner {
    /// Fetches on the first tick.
    pub fn new(now: Instant) -> Self {
        RouteLearner {
            next: Some(now),
            in_flight: None,
            current: None,
            log: FetchLog::default(),
        }
    }

    pub fn owns(&self, callout: u64) -> bool {
        self.in_flight == Some(callout)
    }

    pub fn on_tick(
        &mut self,
        fetch: &OpenApiFetch,
        learned: &LearnedRoutes,
        envoy: EnvoyConfig,
        now: Instant,
    ) {
        if self.in_flight.is_some() {
            return;
        }
        let Some(due) = self.next.filter(|&due| now >= due) else {
            return;
        };
        self.next = upkeep::next_due(due, now, fetch.interval);
        let headers = [
            (":method", "GET"),
            (":path", fetch.path.as_str()),
            (":authority", fetch.authority.as_str()),
            ("host", fetch.authority.as_str()),
            ("accept", "application/json"),
        ];
        let timeout = u64::try_from(fetch.timeout.as_millis()).unwrap_or(u64::MAX);
        match envoy.http_get(&fetch.cluster, &headers, timeout) {
            Ok(id) => self.in_flight = Some(id),
            Err(status) => self.failed(
                fetch,
                learned,
                now,
                FetchFailure::not_sent(&fetch.cluster, super::callout_init_error(status)),
            ),
        }
    }

    pub fn on_answer(
        &mut self,
        shared: &Shared,
        fetch: &OpenApiFetch,
        result: u32,
        answer: &CalloutAnswer<'_>,
        now: Instant,
    ) {
        self.in_flight = None;
        match read(fetch, result, answer) {
            Ok(paths) => {
                let learned = openapi::learn_document(paths, &shared.config.routes);
                let text = learned.to_text();
                if self.current.as_deref() == Some(text.as_str()) {
                    if let Some(line) = self.log.unchanged(fetch) {
                        abi::log(abi::LOG_INFO, &line);
                    }
                    return;
                }
                abi::log(abi::LOG_INFO, &self.log.learned(fetch, &learned));
                shared.learned.publish(learned.table);
                self.current = Some(text);
            }
            Err(failure) => self.failed(fetch, &shared.learned, now, failure),
        }
    }

    fn failed(
        &mut self,
        fetch: &OpenApiFetch,
        learned: &LearnedRoutes,
        now: Instant,
        failure: FetchFailure,
    ) {
        if let Some(retry) = failure.retry_in(fetch) {
            let retry = now + retry;
            self.next = Some(self.next.map_or(retry, |next| next.min(retry)));
        }
        if let Some(line) = self.log.failed(fetch, &failure, learned.len()) {
            abi::log(abi::LOG_WARN, &line);
        }
    }
}

/// The `paths` keys of the answer, or why there are none to learn from.
fn read(
    fetch: &OpenApiFetch,
    result: u32,
    answer: &CalloutAnswer<'_>,
) -> Result<openapi::DocumentPaths, FetchFailure> {
    let status = answer
        .header(":status")
        .and_then(|s| std::str::from_utf8(s).ok()?.parse::<u16>().ok())
        .filter(|_| result == CALLOUT_SUCCESS);
    upkeep::read_answer(fetch, status, answer.body_len(), |reader| {
        answer
            .body_chunks()
            .try_for_each(|chunk| reader.feed(chunk))
    })
}
