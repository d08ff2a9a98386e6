//! Resident memory of a process (`VmRSS` of `/proc/PID/status`), sampled over a run.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// `VmRSS` of `pid` in KiB.
pub fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_else(|e| panic!("/proc/{pid}/status: {e}"));
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no VmRSS for {pid}"))
}

/// The process whose command line contains `needle` (e.g. its own config file's path).
pub fn pid_with_arg(needle: &str) -> u32 {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .find(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains(needle))
        })
        .unwrap_or_else(|| panic!("no process with {needle:?} in its command line"))
}

/// Samples the RSS of `pid` every `every` on a thread until [`Sampler::stop`].
pub struct Sampler {
    samples: Arc<Mutex<Vec<(Duration, u64)>>>,
    running: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Sampler {
    pub fn start(pid: u32, every: Duration) -> Sampler {
        let samples = Arc::new(Mutex::new(Vec::new()));
        let running = Arc::new(AtomicBool::new(true));
        let thread = {
            let (samples, running) = (Arc::clone(&samples), Arc::clone(&running));
            std::thread::spawn(move || {
                let start = Instant::now();
                while running.load(Ordering::Relaxed) {
                    samples
                        .lock()
                        .unwrap()
                        .push((start.elapsed(), rss_kib(pid)));
                    std::thread::sleep(every);
                }
            })
        };
        Sampler {
            samples,
            running,
            thread: Some(thread),
        }
    }

    /// Stops sampling; the samples (time since start, KiB).
    pub fn stop(mut self) -> Vec<(Duration, u64)> {
        self.running.store(false, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            thread.join().unwrap();
        }
        let samples = self.samples.lock().unwrap().clone();
        samples
    }
}
