//! Hop-by-hop headers: what a proxy does not forward (RFC 9110 §7.6.1), the way Envoy's
//! HTTP/1 codec sanitizes a request: the fixed list, plus every header the client's
//! `Connection` names, except `te: trailers`; a nomination Envoy refuses is refused here.

use std::borrow::Cow;

/// Never forwarded, in either direction.
pub const ALWAYS: [&str; 7] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Envoy refuses a `Connection` naming this many headers or more.
const MAX_NOMINATED: usize = 10;
/// Envoy refuses a nominated `TE` this long or longer.
const MAX_TE_LEN: usize = 256;

/// `Connection` tokens that are options of the connection, not header names.
const OPTIONS: [&str; 4] = ["close", "http2-settings", "keep-alive", "upgrade"];
/// Headers a client may not have removed: their removal would hide where the request came
/// from (`x-forwarded-*`), or leave it without a host.
const PROTECTED: [&str; 4] = [
    "x-forwarded-for",
    "x-forwarded-host",
    "x-forwarded-proto",
    "host",
];

/// What a request's `Connection` headers nominate for removal.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Nominated {
    names: Vec<String>,
}

impl Nominated {
    /// Reads the `Connection` values of a request (all of its lines, as one list); `None`
    /// when Envoy refuses the request for them (400): ten or more tokens, a nominated
    /// `x-forwarded-*`, `host` or pseudo-header, or a nominated `TE` of 256 bytes or more.
    pub fn of_request<'a>(
        connection: impl IntoIterator<Item = &'a [u8]>,
        te: Option<&[u8]>,
    ) -> Option<Nominated> {
        let mut tokens = Vec::new();
        for value in connection {
            tokens.extend(
                String::from_utf8_lossy(value)
                    .split(',')
                    .map(|t| t.trim().to_ascii_lowercase())
                    .filter(|t| !t.is_empty()),
            );
        }
        if tokens.len() >= MAX_NOMINATED {
            return None;
        }
        let mut names = Vec::new();
        for token in tokens {
            if OPTIONS.contains(&token.as_str()) || token == "connection" {
                continue;
            }
            if PROTECTED.contains(&token.as_str()) || token.starts_with(':') {
                return None;
            }
            if token == "te" && te.is_some_and(|v| v.len() >= MAX_TE_LEN) {
                return None;
            }
            names.push(token);
        }
        Some(Nominated { names })
    }

    /// The request header as forwarded upstream, `None` when it is hop-by-hop. `TE` goes on
    /// as `trailers` when it lists that token (the one transfer coding a proxy passes on).
    pub fn forward<'v>(&self, name: &str, value: &'v [u8]) -> Option<Cow<'v, [u8]>> {
        if name == "te" {
            return lists_trailers(value).then_some(Cow::Borrowed(b"trailers"));
        }
        if ALWAYS.contains(&name) || self.names.iter().any(|n| n == name) {
            return None;
        }
        Some(Cow::Borrowed(value))
    }
}

fn lists_trailers(te: &[u8]) -> bool {
    te.split(|&b| b == b',')
        .any(|token| token.trim_ascii().eq_ignore_ascii_case(b"trailers"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nominated(connection: &[&str]) -> Option<Nominated> {
        Nominated::of_request(connection.iter().map(|c| c.as_bytes()), Some(b"trailers"))
    }

    #[test]
    fn named_headers_are_not_forwarded_and_te_keeps_only_trailers() {
        let hop = nominated(&["close, X-A,x-b", "X-D"]).unwrap();
        assert_eq!(hop.forward("x-a", b"1"), None);
        assert_eq!(hop.forward("x-b", b"2"), None);
        assert_eq!(hop.forward("x-d", b"4"), None);
        assert_eq!(hop.forward("x-c", b"3").as_deref(), Some(&b"3"[..]));
        assert_eq!(hop.forward("keep-alive", b"5"), None);
        assert_eq!(hop.forward("te", b"gzip"), None);
        assert_eq!(
            hop.forward("te", b"gzip, Trailers").as_deref(),
            Some(&b"trailers"[..])
        );
        // A nominated TE is still passed on as `trailers` (as Envoy does).
        let te = nominated(&["te, close"]).unwrap();
        assert_eq!(
            te.forward("te", b"trailers").as_deref(),
            Some(&b"trailers"[..])
        );
    }

    #[test]
    fn nominations_envoy_refuses_are_refused() {
        assert_eq!(nominated(&["close, host"]), None);
        assert_eq!(nominated(&["X-Forwarded-For"]), None);
        assert_eq!(nominated(&[":path"]), None);
        assert_eq!(nominated(&["a,b,c,d,e,f,g,h,i,j"]), None);
        assert!(nominated(&["a,b,c,d,e,f,g,h,i"]).is_some());
        let long_te = vec![b'x'; MAX_TE_LEN];
        assert_eq!(Nominated::of_request([&b"te"[..]], Some(&long_te)), None);
        assert!(nominated(&["Upgrade, HTTP2-Settings, keep-alive, connection"]).is_some());
    }
}
