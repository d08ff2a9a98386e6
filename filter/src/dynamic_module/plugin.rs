//! The filter configuration: parsed and validated once when Envoy creates it (refused, so
//! that Envoy does not start, with the Wasm build's messages), the metric families defined,
//! and the work of the main thread: a module thread commits a tick to Envoy's main thread
//! every second, and each tick flushes the workers' counters, polls the health endpoint and
//! fetches the OpenAPI document when they are due. Main-thread work happens once per proxy,
//! not per worker.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::abi::{self, CalloutAnswer, EnvoyConfig, Scheduler};
use super::health::HealthPoller;
use super::openapi::RouteLearner;
use super::stats::{Families, Flusher, MainStats, Registration};
use crate::config::Config;
use crate::events::{Event, Recorder};
use crate::routes::RouteTable;

/// The main thread's clock tick, and so the longest a counter waits before Envoy has it.
pub const TICK: Duration = Duration::from_secs(1);
/// The only event the module schedules.
const TICK_EVENT: u64 = 1;

/// What every worker reads: the configuration, the metric families, the learned routes.
#[derive(Debug)]
pub struct Shared {
    /// Tells configurations apart in the workers' thread-local state.
    pub id: u64,
    pub config: Config,
    pub families: Arc<Families>,
    pub learned: LearnedRoutes,
    /// Where a worker hands a new counter to the main thread's [`Flusher`].
    pub register: mpsc::Sender<Registration>,
    /// Set when Envoy destroyed the configuration: workers drop their state for it.
    retired: AtomicBool,
}

impl Shared {
    pub fn is_retired(&self) -> bool {
        self.retired.load(Ordering::Relaxed)
    }
}

/// Routes learned from the OpenAPI document. A worker reads the generation on each request
/// and takes the lock only after the main thread published a new table.
#[derive(Debug, Default)]
pub struct LearnedRoutes {
    generation: AtomicU64,
    table: Mutex<Arc<RouteTable>>,
}

impl LearnedRoutes {
    pub fn publish(&self, table: RouteTable) {
        *lock(&self.table) = Arc::new(table);
        self.generation.fetch_add(1, Ordering::Release);
    }

    /// The current table, through a worker's copy `cached` (its generation and table).
    pub fn current<'c>(&self, cached: &'c mut (u64, Arc<RouteTable>)) -> &'c RouteTable {
        let generation = self.generation.load(Ordering::Acquire);
        if generation != cached.0 {
            *cached = (generation, Arc::clone(&lock(&self.table)));
        }
        &cached.1
    }

    pub fn len(&self) -> usize {
        lock(&self.table).len()
    }
}

/// A poisoned lock only means a panic was caught while it was held; the data is still whole
/// (every writer replaces it in one assignment).
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// State only the main thread touches.
#[derive(Debug)]
pub struct Main {
    pub envoy: EnvoyConfig,
    flusher: Flusher,
    recorder: Recorder,
    stats: MainStats,
    health: Option<HealthPoller>,
    openapi: Option<RouteLearner>,
}

/// The in-module configuration Envoy holds (`filter_config_module_ptr`).
#[derive(Debug)]
pub struct Plugin {
    pub shared: Arc<Shared>,
    main: Mutex<Main>,
    ticker: Option<Ticker>,
}

impl Plugin {
    /// Builds the configuration from the filter's `filter_config` bytes; `Err` is the line to
    /// log before refusing it.
    pub fn new(envoy: EnvoyConfig, raw: &[u8]) -> Result<Plugin, String> {
        let config = Config::parse(raw, |name| std::env::var(name).ok())
            .map_err(|error| format!("prompter-filter: {error}"))?;
        abi::log(abi::LOG_INFO, &config.summary());
        let families = Arc::new(
            Families::define(&config, envoy).map_err(|e| format!("prompter-filter: {e}"))?,
        );
        let (register, registered) = mpsc::channel();
        let now = Instant::now();
        let health = (!config.health.interval.is_zero()).then(|| HealthPoller::new(now));
        let openapi = config.openapi.as_ref().map(|_| RouteLearner::new(now));
        static NEXT_ID: AtomicU64 = AtomicU64::new(1);
        let shared = Arc::new(Shared {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            config,
            families: Arc::clone(&families),
            learned: LearnedRoutes::default(),
            register,
            retired: AtomicBool::new(false),
        });
        let ticker = envoy.scheduler().map(Ticker::start);
        if ticker.is_none() {
            abi::log(
                abi::LOG_WARN,
                "prompter-filter: no main-thread scheduler: counters, health poll and OpenAPI routes stay off",
            );
        }
        Ok(Plugin {
            shared,
            main: Mutex::new(Main {
                envoy,
                flusher: Flusher::new(Arc::clone(&families), registered),
                recorder: Recorder::default(),
                stats: MainStats::new(families, envoy),
                health,
                openapi,
            }),
            ticker,
        })
    }

    pub fn main(&self) -> MutexGuard<'_, Main> {
        lock(&self.main)
    }

    /// Counts a main-thread hook that panicked.
    pub fn count_failure(&self) {
        if let Some(id) = self.shared.families.failures {
            let envoy = self.main().envoy;
            envoy.increment_counter(id, &[], 1);
        }
    }

    /// A scheduled event on the main thread.
    pub fn on_scheduled(&self, event_id: u64) {
        if event_id != TICK_EVENT {
            return;
        }
        let now = Instant::now();
        let shared = &self.shared;
        let mut main = self.main();
        let main = &mut *main;
        main.flusher.flush(main.envoy);
        let mut record = |event: Event<'_>| {
            main.recorder.record(&shared.config, event, &mut main.stats);
        };
        if let Some(health) = &mut main.health {
            health.on_tick(&shared.config, main.envoy, now, &mut record);
        }
        if let (Some(learner), Some(fetch)) = (&mut main.openapi, &shared.config.openapi) {
            learner.on_tick(fetch, &shared.learned, main.envoy, now);
        }
    }

    /// The answer to a callout on the main thread.
    pub fn on_callout_done(&self, id: u64, result: u32, answer: &CalloutAnswer<'_>) {
        let shared = &self.shared;
        let mut main = self.main();
        let main = &mut *main;
        let mut record = |event: Event<'_>| {
            main.recorder.record(&shared.config, event, &mut main.stats);
        };
        if let Some(health) = &mut main.health {
            if health.owns(id) {
                health.on_answer(&shared.config, result, answer, &mut record);
                // The poll's gauge goes out now, not a tick later.
                return main.flusher.flush(main.envoy);
            }
        }
        if let (Some(learner), Some(fetch)) = (&mut main.openapi, &shared.config.openapi) {
            if learner.owns(id) {
                learner.on_answer(shared, fetch, result, answer, Instant::now());
            }
        }
    }
}

impl Drop for Plugin {
    fn drop(&mut self) {
        // Stop the ticks before the scheduler goes, then send what the workers counted last.
        drop(self.ticker.take());
        self.shared.retired.store(true, Ordering::Relaxed);
        let mut main = self.main();
        let envoy = main.envoy;
        main.flusher.flush(envoy);
    }
}

/// A module thread that commits a tick to the main thread every [`TICK`] (dynamic modules
/// have no main-thread timer of their own), stopped and joined when the configuration goes.
#[derive(Debug)]
struct Ticker {
    stop: Arc<(Mutex<bool>, Condvar)>,
    /// Gives the scheduler back when it ends, so that it is deleted on the main thread.
    thread: Option<JoinHandle<Scheduler>>,
}

impl Ticker {
    fn start(scheduler: Scheduler) -> Ticker {
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let signal = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("prompter-tick".into())
            .spawn(move || {
                let (stopped, wake) = &*signal;
                let mut guard = lock(stopped);
                loop {
                    guard = wake
                        .wait_timeout(guard, TICK)
                        .map(|(g, _)| g)
                        .unwrap_or_else(|e| e.into_inner().0);
                    if *guard {
                        break;
                    }
                    scheduler.commit(TICK_EVENT);
                }
                scheduler
            })
            .ok();
        Ticker { stop, thread }
    }
}

impl Drop for Ticker {
    fn drop(&mut self) {
        let (stopped, wake) = &*self.stop;
        *lock(stopped) = true;
        wake.notify_all();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
