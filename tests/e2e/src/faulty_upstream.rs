//! A small misbehaving HTTP/1.1 upstream on std threads, for the fault tests: per path it
//! answers, hangs, cuts its response short (reset or stall) or answers something that is not
//! HTTP. One request per connection (`Connection: close`), so that every fault hits a fresh
//! upstream connection of the proxy.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What the upstream does with a request.
#[derive(Debug, Clone)]
pub enum Fault {
    /// A well-formed response; the connection then closes.
    Answer {
        status: u16,
        content_type: &'static str,
        body: String,
    },
    /// Headers promising `declared` body bytes, `sent` of them, then a TCP reset.
    ResetMidBody { declared: usize, sent: usize },
    /// Headers promising `declared` body bytes, `sent` of them, then silence with the
    /// connection held open (until the proxy gives up on it or the fixture is dropped).
    StallMidBody { declared: usize, sent: usize },
    /// Reads the request and never answers, the connection held open.
    Hang,
    /// Bytes that are not an HTTP response, then the connection closes.
    Garbage,
    /// Reads the request, writes these bytes as they are (a response head cut short, a
    /// status no client expects), then closes.
    Raw(Vec<u8>),
}

impl Fault {
    pub fn json(status: u16, body: &str) -> Fault {
        Fault::Answer {
            status,
            content_type: "application/json",
            body: body.to_string(),
        }
    }
}

/// What every path without a fault of its own gets: an empty template list.
pub fn ok() -> Fault {
    Fault::json(200, "[]")
}

/// Not an HTTP response: no status line, no headers.
pub const GARBAGE: &[u8] = b"\x16\x03\x01 this is not HTTP at all \x00\xff\r\n\r\n";

#[derive(Default)]
struct State {
    faults: Mutex<HashMap<String, Fault>>,
    hits: Mutex<HashMap<String, usize>>,
    /// The last request head seen per path, as it came.
    heads: Mutex<HashMap<String, String>>,
    /// Connections kept open by `Hang` and `StallMidBody`.
    held: Mutex<Vec<TcpStream>>,
    stopped: AtomicBool,
}

pub struct FaultyUpstream {
    pub addr: SocketAddr,
    state: Arc<State>,
}

impl FaultyUpstream {
    /// Listens on a free loopback port; every path answers [`ok`] until told otherwise.
    pub fn start() -> FaultyUpstream {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the faulty upstream");
        FaultyUpstream::serve(listener)
    }

    /// Serves on a listener of the caller's (e.g. bound to a port that was refused before).
    pub fn serve(listener: TcpListener) -> FaultyUpstream {
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(State::default());
        let accepting = Arc::clone(&state);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if accepting.stopped.load(Ordering::Relaxed) {
                    return;
                }
                let Ok(stream) = stream else { continue };
                let state = Arc::clone(&accepting);
                std::thread::spawn(move || {
                    let _ = handle(&state, stream);
                });
            }
        });
        FaultyUpstream { addr, state }
    }

    /// From now on, requests for `path` (query string ignored) get `fault`.
    pub fn set(&self, path: &str, fault: Fault) {
        self.state
            .faults
            .lock()
            .unwrap()
            .insert(path.to_string(), fault);
    }

    /// Requests seen for `path` so far.
    pub fn hits(&self, path: &str) -> usize {
        self.state
            .hits
            .lock()
            .unwrap()
            .get(path)
            .copied()
            .unwrap_or(0)
    }

    /// The head (request line and headers) of the last request for `path`, as the upstream
    /// read it.
    pub fn last_head(&self, path: &str) -> Option<String> {
        self.state.heads.lock().unwrap().get(path).cloned()
    }

    /// Closes the connections held open by `Hang` and `StallMidBody`.
    pub fn release_held(&self) {
        for stream in self.state.held.lock().unwrap().drain(..) {
            let _ = stream.shutdown(Shutdown::Both);
        }
    }
}

impl Drop for FaultyUpstream {
    fn drop(&mut self) {
        self.state.stopped.store(true, Ordering::Relaxed);
        // Wake the accept loop so that it sees the flag.
        let _ = TcpStream::connect(self.addr);
        self.release_held();
    }
}

fn handle(state: &State, mut stream: TcpStream) -> io::Result<()> {
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let Some(head) = peek_head(&stream)? else {
        return Ok(());
    };
    let path = head
        .split_whitespace()
        .nth(1)
        .unwrap_or("/")
        .split('?')
        .next()
        .unwrap_or("/")
        .to_string();
    *state.hits.lock().unwrap().entry(path.clone()).or_default() += 1;
    state
        .heads
        .lock()
        .unwrap()
        .insert(path.clone(), head.clone());
    let fault = state
        .faults
        .lock()
        .unwrap()
        .get(&path)
        .cloned()
        .unwrap_or_else(ok);
    match fault {
        Fault::ResetMidBody { declared, sent } => {
            // The request stays unread: closing a socket with unread input makes the kernel
            // send a reset instead of a FIN (std has no stable SO_LINGER).
            write_partial(&mut stream, declared, sent)?;
            // Let the proxy forward the headers and the first bytes before the reset.
            std::thread::sleep(Duration::from_millis(200));
            drop(stream);
        }
        Fault::StallMidBody { declared, sent } => {
            read_request(&mut stream, &head)?;
            write_partial(&mut stream, declared, sent)?;
            state.held.lock().unwrap().push(stream);
        }
        Fault::Hang => {
            read_request(&mut stream, &head)?;
            state.held.lock().unwrap().push(stream);
        }
        Fault::Garbage => {
            read_request(&mut stream, &head)?;
            stream.write_all(GARBAGE)?;
            stream.shutdown(Shutdown::Write)?;
            drain(&mut stream);
        }
        Fault::Raw(bytes) => {
            read_request(&mut stream, &head)?;
            stream.write_all(&bytes)?;
            stream.shutdown(Shutdown::Write)?;
            drain(&mut stream);
        }
        Fault::Answer {
            status,
            content_type,
            body,
        } => {
            read_request(&mut stream, &head)?;
            let response = format!(
                "HTTP/1.1 {status} Fault\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            stream.write_all(response.as_bytes())?;
            stream.shutdown(Shutdown::Write)?;
            drain(&mut stream);
        }
    }
    Ok(())
}

/// Status line and headers of a response with `declared` body bytes, and `sent` of them.
fn write_partial(stream: &mut TcpStream, declared: usize, sent: usize) -> io::Result<()> {
    let head = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {declared}\r\n\r\n"
    );
    stream.write_all(head.as_bytes())?;
    stream.write_all(&vec![b' '; sent.min(declared)])?;
    stream.flush()
}

/// The request head (through the blank line) once it has arrived, without consuming it.
fn peek_head(stream: &TcpStream) -> io::Result<Option<String>> {
    let mut buf = vec![0; 64 * 1024];
    loop {
        let n = stream.peek(&mut buf)?;
        if n == 0 {
            return Ok(None);
        }
        if let Some(end) = find(&buf[..n], b"\r\n\r\n") {
            return Ok(Some(String::from_utf8_lossy(&buf[..end + 4]).into_owned()));
        }
        if n == buf.len() {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "head too large"));
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Consumes the request: its head, then its body (by `Content-Length`, or chunks through the
/// last one). Returns early if the proxy goes away.
fn read_request(stream: &mut TcpStream, head: &str) -> io::Result<()> {
    let mut skip = vec![0; head.len()];
    stream.read_exact(&mut skip)?;
    let header = |name: &str| {
        head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_string())
        })
    };
    if let Some(length) = header("content-length").and_then(|v| v.parse::<u64>().ok()) {
        io::copy(&mut (&*stream).take(length), &mut io::sink())?;
    } else if header("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        let mut seen = Vec::new();
        let mut buf = [0; 4096];
        while !seen.ends_with(b"0\r\n\r\n") {
            let n = stream.read(&mut buf)?;
            if n == 0 {
                break;
            }
            seen.extend_from_slice(&buf[..n]);
        }
    }
    Ok(())
}

/// Reads until the proxy closes its side, so that our close is a clean FIN.
fn drain(stream: &mut TcpStream) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let _ = io::copy(stream, &mut io::sink());
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}
