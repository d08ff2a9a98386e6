//! Learns route templates from the API's OpenAPI document, from the main thread (once per
//! interval per proxy): the answer's chunks are read in place by a [`PathsReader`], and a new
//! table is published to every worker ([`LearnedRoutes`]). A fetch or document that fails
//! leaves the table as it was; the log lines are the Wasm build's.

use std::time::{Duration, Instant};

use super::abi::{self, CalloutAnswer, EnvoyConfig, CALLOUT_SUCCESS};
use super::plugin::{LearnedRoutes, Shared};
use crate::config::OpenApiFetch;
use crate::openapi::{self, DocumentPaths, PathsReader};

/// A fetch without a usable answer (none, or 5xx) is tried again this soon, within the
/// interval: at start the API may not listen yet.
const RETRY: Duration = Duration::from_secs(5);

#[derive(Debug)]
pub struct RouteLearner {
    /// When the next fetch is due; `None`: never again (`interval_seconds: 0` once learned).
    next: Option<Instant>,
    in_flight: Option<u64>,
    /// The learned table as text, to tell a new document from the same one again.
    current: Option<String>,
}

/// Why a fetch taught nothing, and whether to try again before the interval is over.
struct Failure {
    reason: String,
    retry_soon: bool,
}

impl RouteLearner {
    /// Fetches on the first tick.
    pub fn new(now: Instant) -> Self {
        RouteLearner {
            next: Some(now),
            in_flight: None,
            current: None,
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
        if self.in_flight.is_some() || self.next.is_none_or(|next| now < next) {
            return;
        }
        self.next = (!fetch.interval.is_zero()).then(|| now + fetch.interval);
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
                Failure {
                    reason: format!(
                        "not sent to cluster `{}`: {}",
                        fetch.cluster,
                        super::callout_init_error(status)
                    ),
                    retry_soon: true,
                },
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
                    return;
                }
                abi::log(
                    abi::LOG_INFO,
                    &format!(
                        "prompter-filter: OpenAPI document {}: learned {}",
                        fetch.path,
                        learned.summary()
                    ),
                );
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
        failure: Failure,
    ) {
        if failure.retry_soon {
            let retry = now + RETRY.min(fetch.interval.max(Duration::from_secs(1)));
            self.next = Some(self.next.map_or(retry, |next| next.min(retry)));
        }
        let kept = learned.len();
        abi::log(
            abi::LOG_WARN,
            &format!(
                "prompter-filter: OpenAPI document {}: {}; the route table stays as it was ({kept} learned route{})",
                fetch.path,
                failure.reason,
                if kept == 1 { "" } else { "s" }
            ),
        );
    }
}

/// The `paths` keys of the answer, or why there are none to learn from.
fn read(
    fetch: &OpenApiFetch,
    result: u32,
    answer: &CalloutAnswer<'_>,
) -> Result<DocumentPaths, Failure> {
    let status = answer
        .header(":status")
        .and_then(|s| std::str::from_utf8(s).ok()?.parse::<u16>().ok());
    let Some(status) = status.filter(|_| result == CALLOUT_SUCCESS) else {
        return Err(Failure {
            reason: "no answer (reset, timeout or no upstream)".into(),
            retry_soon: true,
        });
    };
    if !(200..300).contains(&status) {
        return Err(Failure {
            reason: format!("answered {status}"),
            retry_soon: status >= 500,
        });
    }
    let refused = |error: openapi::DocumentError| Failure {
        reason: format!("refused: {error}"),
        retry_soon: false,
    };
    let limits = fetch.limits;
    if answer.body_len() > limits.max_bytes {
        return Err(refused(openapi::DocumentError::TooLarge {
            limit: limits.max_bytes,
        }));
    }
    let mut reader = PathsReader::new(limits);
    for chunk in answer.body_chunks() {
        reader.feed(chunk).map_err(refused)?;
    }
    reader.finish().map_err(refused)
}
