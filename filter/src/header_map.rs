//! A few headers read out of a serialized proxy-wasm header map, so that a request's method
//! and path cost one host call (and one copy into the VM) instead of one each.
//!
//! The layout `proxy_get_header_map_pairs` returns (proxy-wasm ABI 0.2.1): the number of
//! pairs, then each pair's key and value lengths, all `u32` little endian; then each key and
//! value, each followed by a NUL byte. A map that does not fit that layout yields no values,
//! never a panic.

/// The values of `names` (lowercase, as hosts store header names) in `map`, the first of each
/// when a name repeats; `None` for a header that is missing.
pub fn find<'m, const N: usize>(map: &'m [u8], names: [&str; N]) -> [Option<&'m [u8]>; N] {
    let mut found = [None; N];
    let Some(pairs) = Pairs::new(map) else {
        return found;
    };
    for (key, value) in pairs {
        for (name, slot) in names.iter().zip(found.iter_mut()) {
            if slot.is_none() && key == name.as_bytes() {
                *slot = Some(value);
            }
        }
    }
    found
}

/// The pairs of a map, in the host's order.
struct Pairs<'m> {
    map: &'m [u8],
    /// Where the next pair's lengths are.
    lengths: usize,
    /// Where the next pair's key starts.
    data: usize,
    left: usize,
}

fn read_u32(map: &[u8], at: usize) -> Option<usize> {
    let bytes = map.get(at..at.checked_add(4)?)?;
    let word = u32::from_le_bytes(bytes.try_into().ok()?);
    usize::try_from(word).ok()
}

impl<'m> Pairs<'m> {
    fn new(map: &'m [u8]) -> Option<Self> {
        let count = read_u32(map, 0)?;
        let data = count.checked_mul(8)?.checked_add(4)?;
        (data <= map.len()).then_some(Pairs {
            map,
            lengths: 4,
            data,
            left: count,
        })
    }

    /// `len` bytes at `at` followed by a NUL; the slice and where the next one starts.
    fn field(&self, at: usize, len: usize) -> Option<(&'m [u8], usize)> {
        let end = at.checked_add(len)?;
        let bytes = self.map.get(at..end)?;
        (self.map.get(end) == Some(&0)).then_some((bytes, end + 1))
    }
}

impl<'m> Iterator for Pairs<'m> {
    type Item = (&'m [u8], &'m [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        if self.left == 0 {
            return None;
        }
        let key_len = read_u32(self.map, self.lengths)?;
        let value_len = read_u32(self.map, self.lengths + 4)?;
        let (key, at) = self.field(self.data, key_len)?;
        let (value, next) = self.field(at, value_len)?;
        self.lengths += 8;
        self.data = next;
        self.left -= 1;
        Some((key, value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A map in the host's layout.
    pub(crate) fn serialize(pairs: &[(&str, &[u8])]) -> Vec<u8> {
        let mut out = (pairs.len() as u32).to_le_bytes().to_vec();
        for (key, value) in pairs {
            out.extend((key.len() as u32).to_le_bytes());
            out.extend((value.len() as u32).to_le_bytes());
        }
        for (key, value) in pairs {
            out.extend(key.as_bytes());
            out.push(0);
            out.extend(*value);
            out.push(0);
        }
        out
    }

    #[test]
    fn the_named_headers_are_found_in_any_order() {
        let map = serialize(&[
            (":authority", b"api"),
            (":path", b"/api/prompt-templates?x=1"),
            (":method", b"POST"),
            ("content-type", b"application/json"),
            (":method", b"GET"),
        ]);
        assert_eq!(
            find(&map, [":method", ":path", "x-missing"]),
            [
                Some(&b"POST"[..]),
                Some(&b"/api/prompt-templates?x=1"[..]),
                None
            ]
        );
        assert_eq!(find(&serialize(&[]), [":path"]), [None]);
        assert_eq!(
            find(&serialize(&[(":path", b"")]), [":path"]),
            [Some(&b""[..])]
        );
    }

    #[test]
    fn a_malformed_map_yields_what_parsed_before_the_damage() {
        let map = serialize(&[(":method", b"GET"), (":path", b"/healthz")]);
        // Every truncation, and every byte changed, parses without a panic.
        for end in 0..map.len() {
            let [method, path] = find(&map[..end], [":method", ":path"]);
            assert!(path.is_none(), "{end}: the last value needs its NUL");
            assert!(method.is_none() || method == Some(&b"GET"[..]));
        }
        for at in 0..map.len() {
            for byte in [0x00, 0x01, 0x7f, 0xff] {
                let mut damaged = map.clone();
                damaged[at] = byte;
                let _ = find(&damaged, [":method", ":path"]);
            }
        }
        // A count that promises more lengths than the map holds.
        assert_eq!(find(&u32::MAX.to_le_bytes(), [":path"]), [None]);
        // A value without its NUL terminator.
        let mut unterminated = map.clone();
        let last = unterminated.len() - 1;
        unterminated[last] = b'x';
        assert_eq!(
            find(&unterminated, [":method", ":path"]),
            [Some(&b"GET"[..]), None]
        );
    }
}
