//! The filter's periodic jobs (the OpenAPI fetch, the health poll) as both builds run them:
//! what a fetch's answer comes to, how soon a failed one is tried again, and what each job
//! writes to the log. The glues only send the callouts and hand over what came back.

use std::fmt;
use std::ops::Add;
use std::time::Duration;

use crate::config::OpenApiFetch;
use crate::openapi::{plural, DocumentError, DocumentPaths, Learned, PathsReader};
use crate::outcome_log::OutcomeLog;

/// A fetch without a usable answer (none, or 5xx) is tried again this soon, within the
/// interval: at start the API may not listen yet.
const RETRY: Duration = Duration::from_secs(5);

/// When a job that was due at `due` and starts at `now` is next due, `interval` on; `None`:
/// never again (an interval of zero: the job runs once).
///
/// On the schedule, not `interval` after `now`: ticks are not punctual (Envoy arms a VM's
/// next tick from its event loop's cached time; the native module's ticks wait their turn on
/// the main thread), and a tick that came a moment before `now + interval` would push the job
/// to the tick after, so that it ran every second interval. A job more than an interval
/// behind (a stalled loop) starts a new schedule from `now` rather than run at every tick to
/// catch up.
pub fn next_due<T>(due: T, now: T, interval: Duration) -> Option<T>
where
    T: Copy + Ord + Add<Duration, Output = T>,
{
    if interval.is_zero() {
        return None;
    }
    let on_schedule = due + interval;
    Some(if on_schedule > now {
        on_schedule
    } else {
        now + interval
    })
}

/// Why a fetch of the OpenAPI document taught nothing.
#[derive(Debug)]
pub struct FetchFailure {
    reason: String,
    /// Worth trying again before the interval is over (no answer, or the API's own error).
    retry_soon: bool,
}

impl FetchFailure {
    /// The host refused to send the fetch to `cluster`, for `why`.
    pub fn not_sent(cluster: &str, why: impl fmt::Display) -> Self {
        FetchFailure {
            reason: format!("not sent to cluster `{cluster}`: {why}"),
            retry_soon: true,
        }
    }

    fn refused(error: DocumentError) -> Self {
        FetchFailure {
            reason: format!("refused: {error}"),
            retry_soon: false,
        }
    }

    /// How long after this failure the next fetch is due, when sooner than the interval.
    pub fn retry_in(&self, fetch: &OpenApiFetch) -> Option<Duration> {
        self.retry_soon
            .then(|| RETRY.min(fetch.interval.max(Duration::from_secs(1))))
    }
}

/// Reads the answer to a fetch: its `:status` (`None`: no answer came, reset, timeout or no
/// upstream), its body's size, and `feed`, which hands the body to the reader in chunks.
/// The body is not read when the status or the size already refuse it.
pub fn read_answer(
    fetch: &OpenApiFetch,
    status: Option<u16>,
    body_size: usize,
    feed: impl FnOnce(&mut PathsReader) -> Result<(), DocumentError>,
) -> Result<DocumentPaths, FetchFailure> {
    let Some(status) = status else {
        return Err(FetchFailure {
            reason: "no answer (reset, timeout or no upstream)".into(),
            retry_soon: true,
        });
    };
    if !(200..300).contains(&status) {
        return Err(FetchFailure {
            reason: format!("answered {status}"),
            retry_soon: status >= 500,
        });
    }
    let limits = fetch.limits;
    if body_size > limits.max_bytes {
        return Err(FetchFailure::refused(DocumentError::TooLarge {
            limit: limits.max_bytes,
        }));
    }
    let mut reader = PathsReader::new(limits);
    feed(&mut reader).map_err(FetchFailure::refused)?;
    reader.finish().map_err(FetchFailure::refused)
}

/// The OpenAPI fetch's log lines: a failure once until it changes, every new table, and a
/// recovery that left the table as it was.
#[derive(Debug, Default)]
pub struct FetchLog {
    outcomes: OutcomeLog,
}

impl FetchLog {
    /// The warning for `failure` with `kept` learned routes still in use, unless the same
    /// failure was the last one said.
    pub fn failed(
        &mut self,
        fetch: &OpenApiFetch,
        failure: &FetchFailure,
        kept: usize,
    ) -> Option<String> {
        self.outcomes.failed(&failure.reason).then(|| {
            format!(
                "prompter-filter: OpenAPI document {}: {}; the route table stays as it was \
                 ({kept} learned route{})",
                fetch.path,
                failure.reason,
                plural(kept)
            )
        })
    }

    /// The line for a document that gave a new table.
    pub fn learned(&mut self, fetch: &OpenApiFetch, learned: &Learned) -> String {
        self.outcomes.succeeded();
        format!(
            "prompter-filter: OpenAPI document {}: learned {}",
            fetch.path,
            learned.summary()
        )
    }

    /// The line for a document that gave the table in use: only after failures.
    pub fn unchanged(&mut self, fetch: &OpenApiFetch) -> Option<String> {
        self.outcomes.succeeded().then(|| {
            format!(
                "prompter-filter: OpenAPI document {}: read again, routes unchanged",
                fetch.path
            )
        })
    }
}

/// The health poll's log lines: a poll the host would not send, once until the reason
/// changes or a poll is sent. (What an answer means is [`crate::exchange::health_poll_value`].)
#[derive(Debug, Default)]
pub struct HealthLog {
    sending: OutcomeLog,
}

impl HealthLog {
    pub fn sent(&mut self) {
        self.sending.succeeded();
    }

    /// The warning for a poll not sent to `cluster`, for `why`, unless it was the last said.
    pub fn not_sent(&mut self, cluster: &str, why: impl fmt::Display) -> Option<String> {
        let reason = why.to_string();
        self.sending.failed(&reason).then(|| {
            format!("prompter-filter: health check to cluster `{cluster}` not sent: {reason}")
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::routes::RouteTable;

    fn fetch(interval_seconds: u64) -> OpenApiFetch {
        let json =
            format!(r#"{{"openapi":{{"interval_seconds":{interval_seconds},"max_bytes":64}}}}"#);
        Config::parse(json.as_bytes(), |_| None)
            .expect("the configuration")
            .openapi
            .expect("a fetch")
    }

    fn read(status: Option<u16>, body: &str) -> Result<DocumentPaths, FetchFailure> {
        read_answer(&fetch(60), status, body.len(), |reader| {
            body.as_bytes().chunks(3).try_for_each(|c| reader.feed(c))
        })
    }

    /// How many times a job runs in `span` when each of `tickers` ticks every `period` from
    /// its own phase (ms), the job run by whichever tick finds it due first.
    fn runs(tickers: &[u64], period: u64, interval: u64, span: u64) -> usize {
        let mut ticks: Vec<u64> = tickers
            .iter()
            .flat_map(|&phase| (phase..span).step_by(period as usize))
            .collect();
        ticks.sort_unstable();
        let interval = Duration::from_millis(interval);
        let mut due = Some(Duration::ZERO);
        let mut count = 0;
        for tick in ticks.into_iter().map(Duration::from_millis) {
            if let Some(now_due) = due.filter(|&due| tick >= due) {
                due = next_due(now_due, tick, interval);
                count += 1;
            }
        }
        count
    }

    #[test]
    fn ticks_a_little_early_still_run_the_job_once_per_interval() {
        // Each tick 2 ms short of a second after the one before: a job due a whole interval
        // after it last ran would run at every second tick, 50 times in 100 s.
        assert_eq!(runs(&[0], 998, 1_000, 100_000), 100);
        assert_eq!(runs(&[0], 1_003, 1_000, 100_000), 100);
    }

    #[test]
    fn workers_ticking_at_their_own_phases_run_the_job_once_per_interval_between_them() {
        assert_eq!(runs(&[0, 300, 600], 1_000, 1_000, 100_000), 100);
        assert_eq!(runs(&[0, 1, 2], 999, 1_000, 100_000), 100);
        assert_eq!(runs(&[0, 300, 600], 1_000, 5_000, 100_000), 20);
    }

    #[test]
    fn a_job_without_an_interval_runs_once() {
        assert_eq!(runs(&[0, 300, 600], 1_000, 0, 100_000), 1);
    }

    #[test]
    fn a_job_far_behind_starts_again_from_now_without_catching_up() {
        let second = Duration::from_secs(1);
        let due = Duration::from_secs(10);
        let now = Duration::from_secs(14);
        assert_eq!(next_due(due, now, second), Some(now + second));
        assert_eq!(
            next_due(due, due + second / 2, second),
            Some(due + second),
            "a late tick keeps the schedule"
        );
    }

    #[test]
    fn a_document_in_chunks_gives_its_paths() {
        let paths = read(Some(200), r#"{"paths":{"/a":{},"/b/{id}":{}}}"#).expect("paths");
        assert_eq!(paths.keys, ["/a", "/b/{id}"]);
    }

    #[test]
    fn no_answer_and_server_errors_are_tried_again_soon_client_errors_and_bad_documents_not() {
        let fetch = fetch(60);
        let retry = |result: Result<DocumentPaths, FetchFailure>| {
            result.expect_err("a failure").retry_in(&fetch)
        };
        assert_eq!(retry(read(None, "")), Some(RETRY));
        assert_eq!(retry(read(Some(503), "")), Some(RETRY));
        assert_eq!(retry(read(Some(404), "")), None);
        assert_eq!(retry(read(Some(200), r#"{"paths":[]}"#)), None);
        assert_eq!(retry(read(Some(200), r#"{"paths":{"#)), None);
        let not_sent = FetchFailure::not_sent("api", "ClusterNotFound");
        assert_eq!(not_sent.retry_in(&fetch), Some(RETRY));
        assert_eq!(
            not_sent.retry_in(&self::fetch(2)),
            Some(Duration::from_secs(2)),
            "never later than the interval"
        );
    }

    #[test]
    fn a_body_over_the_limit_is_refused_unread() {
        let failure = read_answer(&fetch(60), Some(200), 65, |_| {
            panic!("the body is not read")
        })
        .expect_err("too large");
        assert_eq!(
            failure.reason,
            "refused: it is larger than 64 bytes (`openapi.max_bytes`)"
        );
    }

    #[test]
    fn a_failure_is_said_once_and_a_recovery_once() {
        let fetch = fetch(60);
        let mut log = FetchLog::default();
        let failure = read(Some(404), "").expect_err("404");
        assert_eq!(
            log.failed(&fetch, &failure, 1).as_deref(),
            Some(
                "prompter-filter: OpenAPI document /openapi.json: answered 404; the route \
                 table stays as it was (1 learned route)"
            )
        );
        assert_eq!(log.failed(&fetch, &failure, 1), None);
        assert!(log.unchanged(&fetch).is_some(), "recovered");
        assert_eq!(log.unchanged(&fetch), None, "nothing to say");
        let learned = crate::openapi::learn(&["/a"], &RouteTable::default());
        assert_eq!(
            log.learned(&fetch, &learned),
            "prompter-filter: OpenAPI document /openapi.json: learned 1 route (1 path: 0 \
             configured, 0 skipped): /a"
        );
    }

    #[test]
    fn a_health_poll_not_sent_is_said_once_until_one_is_sent() {
        let mut log = HealthLog::default();
        let line = log.not_sent("redis", "ClusterNotFound");
        assert_eq!(
            line.as_deref(),
            Some("prompter-filter: health check to cluster `redis` not sent: ClusterNotFound")
        );
        assert_eq!(log.not_sent("redis", "ClusterNotFound"), None);
        log.sent();
        assert!(log.not_sent("redis", "ClusterNotFound").is_some());
    }
}
