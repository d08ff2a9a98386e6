//! A load generator for the soak tests: `connections` threads, each with one keep-alive
//! HTTP/1.1 connection, sending a fixed mix of requests back to back until the deadline.
//! Every response is read whole before the next request goes out, and a thread stops only
//! between requests, so "completed" is exactly the number of exchanges the proxy finished.

use std::collections::BTreeMap;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

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

fn connection(addr: SocketAddr, deadline: Instant, mix: &[Vec<u8>], first: usize) -> LoadReport {
    let mut report = LoadReport::default();
    let mut next = first % mix.len();
    let mut body = Vec::new();
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
            let exchanged = stream
                .get_mut()
                .write_all(&mix[next])
                .and_then(|_| read_response(&mut stream, &mut body));
            match exchanged {
                Ok((status, keep_alive)) => {
                    report.completed += 1;
                    *report.statuses.entry(status).or_default() += 1;
                    next = (next + 1) % mix.len();
                    if !keep_alive {
                        break;
                    }
                }
                Err(_) => {
                    report.errors += 1;
                    break;
                }
            }
        }
    }
    report
}

fn connect(addr: SocketAddr) -> io::Result<BufReader<TcpStream>> {
    let stream = TcpStream::connect(addr)?;
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    Ok(BufReader::with_capacity(16 * 1024, stream))
}

/// Reads one response whole; its status, and whether the connection stays open.
fn read_response(reader: &mut BufReader<TcpStream>, body: &mut Vec<u8>) -> io::Result<(u16, bool)> {
    let bad = |what: &str| io::Error::new(io::ErrorKind::InvalidData, what.to_string());
    let mut line = String::new();
    if reader.read_line(&mut line)? == 0 {
        return Err(bad("closed before the status line"));
    }
    let status = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad("status line"))?;
    let (mut length, mut chunked, mut keep_alive) = (None, false, true);
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            return Err(bad("closed in the head"));
        }
        let header = line.trim_end();
        if header.is_empty() {
            break;
        }
        let (name, value) = header.split_once(':').unwrap_or((header, ""));
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            length = value.parse::<usize>().ok();
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = value.eq_ignore_ascii_case("chunked");
        } else if name.eq_ignore_ascii_case("connection") {
            keep_alive = !value.eq_ignore_ascii_case("close");
        }
    }
    body.clear();
    if chunked {
        loop {
            line.clear();
            reader.read_line(&mut line)?;
            let size = usize::from_str_radix(line.trim(), 16).map_err(|_| bad("chunk size"))?;
            let start = body.len();
            body.resize(start + size, 0);
            reader.read_exact(&mut body[start..])?;
            line.clear();
            reader.read_line(&mut line)?;
            if size == 0 {
                break;
            }
        }
    } else {
        body.resize(length.ok_or_else(|| bad("no length"))?, 0);
        reader.read_exact(body)?;
    }
    Ok((status, keep_alive))
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
                let mut body = Vec::new();
                let mut stream = None;
                for request in requests.iter().skip(first).step_by(connections) {
                    let reader = match &mut stream {
                        Some(reader) => reader,
                        None => stream.insert(connect(addr).expect("connect")),
                    };
                    let exchanged = reader
                        .get_mut()
                        .write_all(request)
                        .and_then(|_| read_response(reader, &mut body));
                    match exchanged {
                        Ok((status, keep_alive)) => {
                            report.completed += 1;
                            *report.statuses.entry(status).or_default() += 1;
                            if !keep_alive {
                                stream = None;
                            }
                        }
                        Err(_) => {
                            report.errors += 1;
                            stream = None;
                        }
                    }
                }
                report
            })
        })
        .collect();
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
