//! A deliberately small HTTP/1.1 client over `TcpStream`: it decides exactly how a request
//! body is cut into chunks on the wire (down to one byte per chunk), which a general client
//! would hide.

use std::io::{self, BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub body: Vec<u8>,
}

impl Response {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// How the request body goes on the wire.
#[derive(Debug, Clone, Copy)]
pub enum Framing {
    /// One write with `Content-Length`.
    Whole,
    /// `Transfer-Encoding: chunked`, one chunk (and one flushed write) per `n` bytes.
    Chunks(usize),
}

pub fn get(addr: SocketAddr, path: &str) -> Response {
    send(addr, "GET", path, None, Framing::Whole)
}

/// `get` that reports connection errors instead of panicking (for readiness polls).
pub fn try_get(addr: SocketAddr, path: &str) -> io::Result<Response> {
    try_send(addr, "GET", path, None, Framing::Whole)
}

pub fn post(addr: SocketAddr, path: &str, body: &str) -> Response {
    send(addr, "POST", path, Some(body.as_bytes()), Framing::Whole)
}

/// Sends one request on a new connection and reads the whole response.
pub fn send(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&[u8]>,
    framing: Framing,
) -> Response {
    try_send(addr, method, path, body, framing)
        .unwrap_or_else(|e| panic!("{method} {path} via {addr}: {e}"))
}

fn try_send(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&[u8]>,
    framing: Framing,
) -> io::Result<Response> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(Duration::from_secs(60)))?;
    let mut head =
        format!("{method} {path} HTTP/1.1\r\nHost: prompter-api\r\nConnection: close\r\n");
    if body.is_some() {
        head.push_str("Content-Type: application/json\r\n");
    }
    match (body, framing) {
        (Some(body), Framing::Whole) => {
            head.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
            // One write, as clients send a small request: the proxy reads the body with the
            // headers. Written apart, the body of a request to a dead upstream could arrive
            // after Envoy's own 503, unread, and a probe's labels would be `unknown`.
            let mut request = head.into_bytes();
            request.extend_from_slice(body);
            stream.write_all(&request)?;
        }
        (Some(body), Framing::Chunks(n)) => {
            head.push_str("Transfer-Encoding: chunked\r\n\r\n");
            stream.write_all(head.as_bytes())?;
            for piece in body.chunks(n.max(1)) {
                stream.write_all(format!("{:x}\r\n", piece.len()).as_bytes())?;
                stream.write_all(piece)?;
                stream.write_all(b"\r\n")?;
                stream.flush()?;
                // Give the proxy a chance to forward each piece as its own data frame.
                std::thread::sleep(Duration::from_micros(300));
            }
            stream.write_all(b"0\r\n\r\n")?;
        }
        (None, _) => {
            head.push_str("\r\n");
            stream.write_all(head.as_bytes())?;
        }
    }
    stream.flush()?;
    read_response(&mut BufReader::new(stream)).map(|(response, _)| response)
}

/// One response read whole from `reader` (`Content-Length`, chunked, or until the connection
/// closes), and whether the connection stays open after it. Every client of the tests reads
/// responses with it: single requests, raw bytes, the keep-alive load.
pub fn read_response(reader: &mut impl BufRead) -> io::Result<(Response, bool)> {
    let bad = |what: String| io::Error::new(io::ErrorKind::InvalidData, what);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad(format!("bad status line {line:?}")))?;
    let (mut length, mut chunked, mut keep_alive) = (None, false, true);
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            return Err(bad("closed in the response head".into()));
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
    let mut body = Vec::new();
    if matches!(status, 100..=199 | 204 | 304) {
        // No body, whatever the head says.
    } else if chunked {
        loop {
            line.clear();
            reader.read_line(&mut line)?;
            let size = usize::from_str_radix(line.trim().split(';').next().unwrap_or(""), 16)
                .map_err(|_| bad("bad chunk size".into()))?;
            if size == 0 {
                break;
            }
            let start = body.len();
            body.resize(start + size, 0);
            reader.read_exact(&mut body[start..])?;
            line.clear();
            reader.read_line(&mut line)?;
        }
        // Trailers, if any, up to the blank line that ends the message.
        loop {
            line.clear();
            if reader.read_line(&mut line)? == 0 || line.trim_end().is_empty() {
                break;
            }
        }
    } else if let Some(length) = length {
        body.resize(length, 0);
        reader.read_exact(&mut body)?;
    } else {
        reader.read_to_end(&mut body)?;
        keep_alive = false;
    }
    Ok((Response { status, body }, keep_alive))
}
