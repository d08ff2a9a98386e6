//! A load generator for the soak tests: `connections` threads, each with one keep-alive
//! HTTP/1.1 connection, sending a fixed mix of requests back to back until the deadline.
//! Every response is read whole before the next request goes out, and a thread stops only
//! between requests, so "completed" is exactly the number of exchanges the proxy finished.

use std::collections::BTreeMap;
use std::io::{self, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::client::read_response;

/// The Prompter route mix of `scripts/bench/mix.lua` (template `t-1` must exist: the create
/// is then always a 409, one request in six).
pub fn prompter_mix() -> Vec<Vec<u8>> {
    let post = |path: &str, body: &str| {
        format!(
            "POST {path} HTTP/1.1\r\nHost: prompter-api\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .into_bytes()
    };
    let get =
        |path: &str| format!("GET {path} HTTP/1.1\r\nHost: prompter-api\r\n\r\n").into_bytes();
    vec![
        post(
            "/api/prompt-templates",
            r#"{"name":"bench","body":"Hello {name}"}"#,
        ),
        get("/api/prompt-templates"),
        get("/api/prompt-templates/t-1"),
        post(
            "/api/prompt-templates/t-1/ensure-version",
            r#"{"provider":"openai","model_id":"gpt-4o"}"#,
        ),
        post(
            "/api/prompt-templates/t-1/run",
            r#"{"provider":"openai","model_id":"gpt-4o","variables":{"name":"Ada"}}"#,
        ),
        get("/healthz"),
    ]
}

#[derive(Debug, Default, Clone)]
pub struct LoadReport {
    /// Responses read whole.
    pub completed: u64,
    /// Connections that failed (connect, write, read, or a response cut short).
    pub errors: u64,
    pub statuses: BTreeMap<u16, u64>,
    pub elapsed: Duration,
}

impl LoadReport {
    pub fn per_second(&self) -> f64 {
        self.completed as f64 / self.elapsed.as_secs_f64()
    }
}

/// Runs the load and waits for every connection to finish its last exchange.
pub fn run(
    addr: SocketAddr,
    connections: usize,
    duration: Duration,
    mix: &[Vec<u8>],
) -> LoadReport {
    let mix = Arc::new(mix.to_vec());
    let start = Instant::now();
    let deadline = start + duration;
    let threads: Vec<_> = (0..connections)
        .map(|i| {
            let mix = Arc::clone(&mix);
            std::thread::Builder::new()
                .stack_size(256 * 1024)
                .spawn(move || connection(addr, deadline, &mix, i))
                .expect("a load thread starts")
        })
        .collect();
    gather(threads, start)
}

fn connection(addr: SocketAddr, deadline: Instant, mix: &[Vec<u8>], first: usize) -> LoadReport {
    let mut report = LoadReport::default();
    let mut next = first % mix.len();
    while Instant::now() < deadline {
        let mut stream = match connect(addr) {
            Ok(stream) => stream,
            Err(_) => {
                report.errors += 1;
                std::thread::sleep(Duration::from_millis(10));
                continue;
            }
        };
        while Instant::now() < deadline {
            // A failed request is sent again on the next connection.
            let Some(keep_alive) = exchange(&mut stream, &mix[next], &mut report) else {
                break;
            };
            next = (next + 1) % mix.len();
            if !keep_alive {
                break;
            }
        }
    }
    report
}

/// One request and its response on `stream`, recorded in `report`: `None` when it failed,
/// else whether the connection stays open.
fn exchange(
    stream: &mut BufReader<TcpStream>,
    request: &[u8],
    report: &mut LoadReport,
) -> Option<bool> {
    let exchanged = stream
        .get_mut()
        .write_all(request)
        .and_then(|_| read_response(stream));
    match exchanged {
        Ok((response, keep_alive)) => {
            report.completed += 1;
            *report.statuses.entry(response.status).or_default() += 1;
            Some(keep_alive)
        }
        Err(_) => {
            report.errors += 1;
            None
        }
    }
}

/// Waits for every connection thread and adds up their reports.
fn gather(threads: Vec<JoinHandle<LoadReport>>, start: Instant) -> LoadReport {
    let mut report = LoadReport::default();
    for thread in threads {
        let one = thread.join().expect("a load thread panicked");
        report.completed += one.completed;
        report.errors += one.errors;
        for (status, n) in one.statuses {
            *report.statuses.entry(status).or_default() += n;
        }
    }
    report.elapsed = start.elapsed();
    report
}

fn connect(addr: SocketAddr) -> io::Result<BufReader<TcpStream>> {
    let stream = TcpStream::connect(addr)?;
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    Ok(BufReader::with_capacity(16 * 1024, stream))
}

/// Sends each of `requests` exactly once, spread over `connections` keep-alive connections
/// (each takes every `connections`-th request, in order).
pub fn run_each(addr: SocketAddr, connections: usize, requests: &[Vec<u8>]) -> LoadReport {
    let requests = Arc::new(requests.to_vec());
    let start = Instant::now();
    let threads: Vec<_> = (0..connections)
        .map(|first| {
            let requests = Arc::clone(&requests);
            std::thread::spawn(move || {
                let mut report = LoadReport::default();
                let mut stream = None;
                for request in requests.iter().skip(first).step_by(connections) {
                    let reader = match &mut stream {
                        Some(reader) => reader,
                        None => stream.insert(connect(addr).expect("connect")),
                    };
                    if exchange(reader, request, &mut report) != Some(true) {
                        stream = None;
                    }
                }
                report
            })
        })
        .collect();
    gather(threads, start)
}
