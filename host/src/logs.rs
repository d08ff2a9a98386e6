//! Log lines the guest writes (`proxy_log`, WASI stdout/stderr): kept for tests and, in the
//! proxy, echoed to stderr.

use std::collections::VecDeque;
use std::sync::Mutex;

/// proxy-wasm log levels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
    Critical,
}

impl Level {
    pub fn from_abi(level: i32) -> Level {
        match level {
            0 => Level::Trace,
            1 => Level::Debug,
            2 => Level::Info,
            3 => Level::Warn,
            4 => Level::Error,
            _ => Level::Critical,
        }
    }
}

const KEPT: usize = 1_000;

#[derive(Debug)]
pub struct Logs {
    lines: Mutex<VecDeque<(Level, String)>>,
    echo_from: Option<Level>,
}

impl Logs {
    /// Keeps the last lines; with `echo_from`, also prints lines of that level and above.
    pub fn new(echo_from: Option<Level>) -> Self {
        Logs {
            lines: Mutex::new(VecDeque::new()),
            echo_from,
        }
    }

    pub fn push(&self, level: Level, line: String) {
        if self.echo_from.is_some_and(|min| level >= min) {
            eprintln!("[filter {level:?}] {line}");
        }
        let mut lines = self.lines.lock().unwrap_or_else(|e| e.into_inner());
        if lines.len() == KEPT {
            lines.pop_front();
        }
        lines.push_back((level, line));
    }

    pub fn lines(&self) -> Vec<(Level, String)> {
        self.lines
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .cloned()
            .collect()
    }

    pub fn texts(&self) -> Vec<String> {
        self.lines().into_iter().map(|(_, l)| l).collect()
    }
}
