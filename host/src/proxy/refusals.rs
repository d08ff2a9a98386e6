//! Requests Envoy refuses before any filter sees them, and the status it answers: its HTTP/1
//! codec and connection manager as configured by our bootstrap (Envoy 1.40's defaults). The
//! host refuses the same requests with the same statuses; its filter then sees only the
//! reply, as Envoy's does (counted `method="other"`, `route="unmatched"`).

use hyper::header::{CONNECTION, TE, UPGRADE};
use hyper::http::request::Parts;
use hyper::{Method, Version};

use super::hop_by_hop::Nominated;
use super::request_heads::Framing;

/// Envoy's `max_request_headers_kb` default: a request head (request line, headers and the
/// blank line) of more bytes is refused with 431.
pub const MAX_HEAD_BYTES: usize = 60 * 1024;
// Envoy's `max_request_headers_count` default, 100, is hyper's default too: the 101st
// header is refused with 431 by both.

/// A reply made instead of forwarding the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refusal {
    pub status: u16,
    /// Envoy's body for it (empty for the connection manager's own 403 and 404).
    pub body: &'static str,
    /// Envoy closes the connection after it.
    pub closes: bool,
}

/// Envoy's codec refusing what it cannot read.
pub const BAD_REQUEST: Refusal = Refusal {
    status: 400,
    body: "Bad Request",
    closes: true,
};

/// The refusal of a request hyper parsed, if Envoy refuses it before its filters: HTTP/1.0
/// (426), a body framed twice (400: see [`Framing`]), a `Connection` that nominates what may
/// not be removed (400), an upgrade other than `h2c` (403: our bootstrap configures none), a
/// target that is not a path (404: `OPTIONS *`, Envoy serves relative paths only).
pub fn before_filters(parts: &Parts, framing: Framing) -> Option<Refusal> {
    if parts.version < Version::HTTP_11 {
        return Some(Refusal {
            status: 426,
            body: "Upgrade Required",
            closes: true,
        });
    }
    if framing != Framing::Plain {
        return Some(BAD_REQUEST);
    }
    let connection = parts
        .headers
        .get_all(CONNECTION)
        .iter()
        .map(|v| v.as_bytes());
    let te = parts.headers.get(TE).map(|v| v.as_bytes());
    if Nominated::of_request(connection, te).is_none() {
        return Some(BAD_REQUEST);
    }
    if is_upgrade(parts) {
        return Some(Refusal {
            status: 403,
            body: "",
            closes: true,
        });
    }
    if parts.method != Method::CONNECT && !parts.uri.path().starts_with('/') {
        return Some(Refusal {
            status: 404,
            body: "",
            closes: false,
        });
    }
    None
}

/// An upgrade request as Envoy sees one: `Upgrade` named in `Connection`. `h2c` is not one:
/// Envoy's codec drops that offer and serves the request as HTTP/1.1.
fn is_upgrade(parts: &Parts) -> bool {
    let Some(upgrade) = parts.headers.get(UPGRADE) else {
        return false;
    };
    let names_upgrade = parts.headers.get_all(CONNECTION).iter().any(|v| {
        v.as_bytes()
            .split(|&b| b == b',')
            .any(|t| t.trim_ascii().eq_ignore_ascii_case(b"upgrade"))
    });
    names_upgrade && !upgrade.as_bytes().trim_ascii().eq_ignore_ascii_case(b"h2c")
}

/// The status hyper already answered for a request head it could not parse (it writes its
/// own reply and closes): 431 for a head over [`MAX_HEAD_BYTES`] or 100 headers, 400 for
/// the rest. `None` when it answered nothing: an HTTP/2 preface (h2c is not served) or an
/// error that is not about a request head.
pub fn refused_by_parser(error: &hyper::Error) -> Option<u16> {
    if !error.is_parse() || error.is_parse_version_h2() {
        return None;
    }
    // hyper would answer 414 for a target over 65,534 bytes, but such a head is over
    // MAX_HEAD_BYTES first.
    Some(if error.is_parse_too_large() { 431 } else { 400 })
}
