//! Requests as raw bytes: hostile tests put bytes on the wire that no HTTP library would
//! write (NUL, bare newlines, invalid UTF-8, megabyte header values), then read whatever comes
//! back, a proxy's own refusal included.

use std::io::{self, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use crate::client::{read_response, Response};

/// A request head and body as raw bytes: `method SP target HTTP/1.1`, the given header lines
/// as they are, `Connection: close`, and a `Content-Length` for `body`.
pub fn request(method: &[u8], target: &[u8], headers: &[(&[u8], &[u8])], body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 256);
    for part in [method, b" ", target, b" HTTP/1.1\r\nHost: prompter-api\r\n"] {
        out.extend_from_slice(part);
    }
    for (name, value) in headers {
        out.extend_from_slice(name);
        out.extend_from_slice(b": ");
        out.extend_from_slice(value);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(
        format!(
            "Connection: close\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    );
    out.extend_from_slice(body);
    out
}

/// Sends `bytes` on a new connection and reads the response (status and decoded body).
pub fn send(addr: SocketAddr, bytes: &[u8]) -> io::Result<Response> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    // A proxy may answer (431, 400) and close before it read everything: not an error here.
    let _ = stream.write_all(bytes);
    read_response(&mut BufReader::new(stream)).map(|(response, _)| response)
}
