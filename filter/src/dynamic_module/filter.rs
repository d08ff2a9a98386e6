//! The per-request filter: feeds one stream's headers, status and body chunks (read in place in
//! Envoy's buffers, never buffered) to an [`Exchange`], and records its events when the
//! stream completes. It never pauses or changes the traffic.
//!
//! What a request updates lives in its worker's thread-local [`Worker`] (one per worker and
//! configuration): the recorder, the counters, the model budget, its copy of the learned
//! routes. Nothing on the request path takes a lock or touches another thread's state.

use std::borrow::Cow;
use std::cell::RefCell;
use std::ops::Range;
use std::rc::Rc;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use rustc_hash::FxHashMap;

use super::abi::{EnvoyFilter, RECEIVED_REQUEST_BODY, RECEIVED_RESPONSE_BODY};
use super::plugin::Shared;
use super::stats::WorkerStats;
use crate::events::Recorder;
use crate::exchange::Exchange;
use crate::labels::ModelLabels;
use crate::routes::RouteTable;

/// One worker's state for one configuration.
#[derive(Debug)]
pub struct Worker {
    recorder: Recorder,
    stats: WorkerStats,
    models: ModelLabels,
    routes: (u64, Arc<RouteTable>),
}

/// A worker's state and its configuration: a request holds it by `Rc`, so that creating and
/// ending a request touches no reference count other workers touch too.
#[derive(Debug)]
pub struct WorkerCell {
    shared: Arc<Shared>,
    state: RefCell<Worker>,
}

thread_local! {
    /// This thread's workers, by configuration id; an entry whose configuration Envoy
    /// destroyed is dropped when another is added.
    static WORKERS: RefCell<FxHashMap<u64, Rc<WorkerCell>>> = RefCell::default();
}

fn worker(shared: &Arc<Shared>) -> Rc<WorkerCell> {
    WORKERS.with_borrow_mut(|workers| {
        if let Some(worker) = workers.get(&shared.id) {
            return Rc::clone(worker);
        }
        workers.retain(|_, worker| !worker.shared.is_retired());
        let worker = Rc::new(WorkerCell {
            shared: Arc::clone(shared),
            state: RefCell::new(Worker {
                recorder: Recorder::default(),
                stats: WorkerStats::new(Arc::clone(&shared.families), shared.register.clone()),
                models: ModelLabels::default(),
                routes: (0, Arc::default()),
            }),
        });
        workers.insert(shared.id, Rc::clone(&worker));
        worker
    })
}

/// Monotonic nanoseconds: durations only, never dates.
fn now_nanos() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    let start = *START.get_or_init(Instant::now);
    u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

/// Header bytes as text: odd bytes only ever lead to `other`/`unmatched`/`0` labels. Valid
/// text, the rule, is borrowed after one validation pass (`from_utf8_lossy` walks it in
/// chunks, twice the work on every header read).
fn text(bytes: Option<&[u8]>) -> Option<Cow<'_, str>> {
    bytes.map(|bytes| match std::str::from_utf8(bytes) {
        Ok(text) => Cow::Borrowed(text),
        Err(_) => String::from_utf8_lossy(bytes),
    })
}

/// The in-module filter Envoy holds for one stream (`filter_module_ptr`).
#[derive(Debug)]
pub struct RequestMetrics {
    worker: Rc<WorkerCell>,
    exchange: Option<Exchange>,
    /// Set once the exchange was recorded (or dropped after a failed hook).
    done: bool,
}

impl RequestMetrics {
    pub fn new(shared: &Arc<Shared>) -> Self {
        RequestMetrics {
            worker: worker(shared),
            exchange: None,
            done: false,
        }
    }

    pub fn on_request_headers(&mut self, filter: EnvoyFilter<'_>) {
        let method = text(filter.request_method());
        let path = text(filter.request_path());
        let shared = &self.worker.shared;
        let mut worker = self.worker.state.borrow_mut();
        let worker = &mut *worker;
        let routes = shared.learned.current(&mut worker.routes);
        let mut exchange = Exchange::start_with(
            &shared.config,
            routes,
            method.as_deref(),
            path.as_deref(),
            now_nanos(),
        );
        if exchange.wants_request_headers() {
            for (index, name) in shared.config.declared.headers.iter().enumerate() {
                exchange.request_header(index, filter.request_header(name));
            }
        }
        self.exchange = Some(exchange);
    }

    pub fn on_request_body(&mut self, filter: EnvoyFilter<'_>) {
        let Some(exchange) = self.exchange.as_mut().filter(|e| e.wants_request_body()) else {
            return;
        };
        filter.with_received_body(RECEIVED_REQUEST_BODY, |chunks| {
            for chunk in chunks {
                exchange.request_body(&self.worker.shared.config, chunk);
            }
        });
    }

    pub fn on_response_headers(&mut self, filter: EnvoyFilter<'_>) {
        let Some(exchange) = &mut self.exchange else {
            return;
        };
        let status = text(filter.response_header(":status"));
        let content_type = if exchange.reads_content_type() {
            text(filter.response_header("content-type"))
        } else {
            None
        };
        let now = exchange.wants_response_time().then(now_nanos);
        exchange.response_headers(status.as_deref(), content_type.as_deref());
        if let Some(now) = now {
            exchange.response_time(now, 0);
        }
    }

    pub fn on_response_body(&mut self, filter: EnvoyFilter<'_>) {
        let Some(exchange) = self
            .exchange
            .as_mut()
            .filter(|e| e.wants_response_body() || e.wants_response_time())
        else {
            return;
        };
        let config = &self.worker.shared.config;
        filter.with_received_body(RECEIVED_RESPONSE_BODY, |chunks| {
            let len = chunks.iter().map(|c| c.len()).sum();
            if exchange.wants_response_time() {
                exchange.response_time(now_nanos(), len);
            }
            exchange.response_chunk(config, len, |range| slice(chunks, range));
        });
    }

    /// Records the exchange (once): at stream completion, or when Envoy destroys a filter it
    /// never completed (`filter` is then detached, and only counters are kept).
    pub fn on_stream_complete(&mut self, filter: EnvoyFilter<'_>) {
        if std::mem::replace(&mut self.done, true) {
            return;
        }
        let now = now_nanos();
        let shared = &self.worker.shared;
        let mut exchange = self
            .exchange
            .take()
            .unwrap_or_else(|| Exchange::start(&shared.config, None, None, now));
        // A stream that ended before response headers may still have a code in Envoy.
        if !exchange.has_status() {
            let code = filter.response_code().and_then(|c| u16::try_from(c).ok());
            exchange.status_if_unknown(code);
        }
        let mut worker = self.worker.state.borrow_mut();
        let worker = &mut *worker;
        let (recorder, stats) = (&mut worker.recorder, &mut worker.stats);
        exchange.finish(&shared.config, &mut worker.models, now, &mut |event| {
            recorder.record(&shared.config, event, stats)
        });
    }

    /// Counts a hook of this stream that panicked.
    pub fn count_failure(&self, filter: EnvoyFilter<'_>) {
        if let Some(id) = self.worker.shared.families.failures {
            filter.increment_counter(id, &[], 1);
        }
    }

    /// After a hook of this stream panicked: nothing more is read or recorded for it.
    pub fn abandon(&mut self) {
        self.exchange = None;
        self.done = true;
    }
}

/// The bytes of `range` across the chunks of one body event: borrowed when they lie in one
/// chunk (always, but for a read that straddles two of Envoy's buffer slices).
fn slice<'c>(chunks: &[&'c [u8]], range: Range<usize>) -> Option<Cow<'c, [u8]>> {
    let mut start = 0;
    let mut copied: Option<Vec<u8>> = None;
    for chunk in chunks {
        let end = start + chunk.len();
        if end > range.start && start < range.end {
            let part = chunk.get(range.start.saturating_sub(start)..range.end.min(end) - start)?;
            match &mut copied {
                None if range.end <= end => return Some(Cow::Borrowed(part)),
                None => {
                    let mut bytes = Vec::with_capacity(range.len());
                    bytes.extend_from_slice(part);
                    copied = Some(bytes);
                }
                Some(bytes) => bytes.extend_from_slice(part),
            }
        }
        if end >= range.end {
            break;
        }
        start = end;
    }
    copied.map(Cow::Owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_range_is_read_across_chunks_and_borrowed_within_one() {
        let chunks: [&[u8]; 3] = [b"abc", b"defg", b"h"];
        let read = |r: Range<usize>| slice(&chunks, r).map(|c| c.into_owned());
        assert_eq!(read(0..3).unwrap(), b"abc");
        assert_eq!(read(1..2).unwrap(), b"b");
        assert_eq!(read(2..6).unwrap(), b"cdef");
        assert_eq!(read(0..8).unwrap(), b"abcdefgh");
        assert_eq!(read(7..8).unwrap(), b"h");
        assert_eq!(read(8..9), None);
        assert!(matches!(slice(&chunks, 3..7), Some(Cow::Borrowed(b"defg"))));
        assert!(matches!(slice(&chunks, 2..6), Some(Cow::Owned(_))));
    }
}
