//! Equality and hashing of short byte strings (label values, path segments) eight bytes at a
//! time. In the Wasm build, `==` on slices calls the module's own `memcmp`, a loop over single
//! bytes: comparing a series' label values that way was two thirds of recording an event
//! (`scripts/bench/instructions --profile`). Wasm loads and compares 64-bit words natively,
//! unaligned, so a word at a time is as exact and several times shorter.

/// A word of the odd-sized tail, read as two overlapping words (`x[..4]` and `x[len-4..]`
/// for 4..8 bytes) so that no byte is copied out one at a time.
#[inline(always)]
fn tail(x: &[u8]) -> u64 {
    let n = x.len();
    if n >= 4 {
        u64::from(word32(x, 0)) << 32 | u64::from(word32(x, n - 4))
    } else {
        // 0..=3 bytes: first, middle and last byte (the same byte twice when shorter).
        match n {
            0 => 0,
            _ => {
                let at = |i: usize| u64::from(x.get(i).copied().unwrap_or_default());
                at(0) << 16 | at(n / 2) << 8 | at(n - 1)
            }
        }
    }
}

#[inline(always)]
fn word32(x: &[u8], at: usize) -> u32 {
    x.get(at..at + 4)
        .and_then(|w| <[u8; 4]>::try_from(w).ok())
        .map_or(0, u32::from_le_bytes)
}

/// The eight bytes at `at` as a little-endian word (0 past the end).
#[inline(always)]
pub fn word64(x: &[u8], at: usize) -> u64 {
    x.get(at..at + 8)
        .and_then(|w| <[u8; 8]>::try_from(w).ok())
        .map_or(0, u64::from_le_bytes)
}

/// The bytes of `word` equal to `b`, each marked by its high bit (exactly: no borrow
/// carries from one byte into the next, so a mark is never a false one).
#[inline(always)]
pub fn bytes_equal_to(word: u64, b: u8) -> u64 {
    const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
    let v = word ^ (u64::from(b) * 0x0101_0101_0101_0101);
    !(((v & LOW7) + LOW7) | v | LOW7)
}

/// The bytes of `x` from `at` on (at most eight) as a word, zero past the end.
#[inline(always)]
pub fn partial_word(x: &[u8], at: usize) -> u64 {
    x.iter()
        .skip(at)
        .take(8)
        .enumerate()
        .fold(0, |word, (i, &b)| word | u64::from(b) << (8 * i))
}

/// The index of the first byte of `x` equal to `a` or `b`, a word at a time: for short
/// haystacks, where `memchr2`'s setup costs more than the search (it reads 32-bit words in
/// the Wasm build, after aligning byte by byte).
#[inline]
pub fn find2(x: &[u8], a: u8, b: u8) -> Option<usize> {
    let n = x.len();
    let marks = |word: u64| bytes_equal_to(word, a) | bytes_equal_to(word, b);
    let first = |marks: u64| (marks.trailing_zeros() / 8) as usize;
    if n < 8 {
        // Only the bytes of `x`: the zeros past its end may equal `a` or `b`.
        let inside = (1u64 << (8 * n)) - 1;
        let found = marks(partial_word(x, 0)) & inside;
        return (found != 0).then(|| first(found));
    }
    let mut at = 0;
    while at + 8 <= n {
        let found = marks(word64(x, at));
        if found != 0 {
            return Some(at + first(found));
        }
        at += 8;
    }
    if at == n {
        return None;
    }
    // The last word, overlapping bytes already read: their marks are dropped.
    let found = marks(word64(x, n - 8)) >> (8 * (at + 8 - n));
    (found != 0).then(|| at + first(found))
}

/// `a == b`, a word at a time.
#[inline]
pub fn eq(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n != b.len() {
        return false;
    }
    if n < 8 {
        // The same length, so the same bytes make the same overlapping words.
        return tail(a) == tail(b);
    }
    let mut at = 0;
    while at + 8 < n {
        if word64(a, at) != word64(b, at) {
            return false;
        }
        at += 8;
    }
    // The last word, overlapping the one before when the length is not a multiple of 8.
    word64(a, n - 8) == word64(b, n - 8)
}

/// True when every byte is ASCII, a word at a time (`<[u8]>::is_ascii` reads 32-bit words
/// in the Wasm build, after aligning byte by byte, which short header values never leave).
#[inline]
pub fn is_ascii(x: &[u8]) -> bool {
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let n = x.len();
    if n < 8 {
        return tail(x) & HIGH == 0;
    }
    let mut high = 0;
    let mut at = 0;
    while at + 8 < n {
        high |= word64(x, at);
        at += 8;
    }
    (high | word64(x, n - 8)) & HIGH == 0
}

/// Multiplier of FxHash (rustc's hasher): odd, with well-spread bits.
const K: u64 = 0xf135_7aea_2e62_a9c5;

/// Mixes `x` into the hash `h`: a word at a time, the length too (the overlapping words of
/// the tail alone would not tell `aab` from `ab`).
#[inline]
pub fn hash(mut h: u64, x: &[u8]) -> u64 {
    let n = x.len();
    let mut add = |word: u64| h = (h.rotate_left(26) ^ word).wrapping_mul(K);
    add(n as u64);
    if n < 8 {
        add(tail(x));
        return h;
    }
    let mut at = 0;
    while at + 8 < n {
        add(word64(x, at));
        at += 8;
    }
    add(word64(x, n - 8));
    h
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn every_length_and_every_differing_byte() {
        let a: Vec<u8> = (0..40u8).map(|i| b'a' + i % 26).collect();
        for n in 0..=a.len() {
            let x = &a[..n];
            assert!(eq(x, x), "{n}");
            let elsewhere = x.to_vec();
            assert_eq!(
                hash(0, x),
                hash(0, &elsewhere),
                "{n}: by content, not address"
            );
            for i in 0..n {
                let mut y = x.to_vec();
                y[i] ^= 0x20;
                assert!(!eq(x, &y), "{n}: byte {i}");
                assert_ne!(hash(0, x), hash(0, &y), "{n}: byte {i}");
            }
            if n > 0 {
                assert!(!eq(x, &x[..n - 1]), "{n}: one shorter");
                assert_ne!(hash(0, x), hash(0, &x[..n - 1]), "{n}: one shorter");
            }
        }
        assert_ne!(hash(0, b"aab"), hash(0, b"ab"));
    }

    #[test]
    fn a_byte_past_ascii_is_found_at_every_place() {
        for n in 0..=40 {
            let x = vec![b'a'; n];
            assert!(is_ascii(&x), "{n}");
            for i in 0..n {
                let mut y = x.clone();
                y[i] = 0x80;
                assert!(!is_ascii(&y), "{n}: byte {i}");
            }
        }
    }

    #[test]
    fn marks_are_exact() {
        let x = *b"a/b//?#/";
        let word = u64::from_le_bytes(x);
        let marks = |b: u8| -> Vec<usize> {
            let m = bytes_equal_to(word, b);
            (0..8).filter(|i| m >> (8 * i) & 0x80 != 0).collect()
        };
        assert_eq!(marks(b'/'), [1, 3, 4, 7]);
        assert_eq!(marks(b'?'), [5]);
        assert_eq!(marks(b'a'), [0]);
        assert_eq!(marks(0), Vec::<usize>::new());
        // A zero byte below another: no borrow marks the one above.
        assert_eq!(
            bytes_equal_to(u64::from_le_bytes(*b"//\0\0\0\0\0\0"), b'/'),
            0x8080
        );
        assert_eq!(
            partial_word(b"abc", 1),
            u64::from(b'b') | u64::from(b'c') << 8
        );
        assert_eq!(partial_word(b"abcdefghij", 1), word64(b"abcdefghij", 1));
    }

    proptest! {
        #[test]
        fn eq_is_slice_equality(a in prop::collection::vec(0u8..4, 0..40),
                                b in prop::collection::vec(0u8..4, 0..40)) {
            prop_assert_eq!(eq(&a, &b), a == b);
            if a == b {
                prop_assert_eq!(hash(7, &a), hash(7, &b));
            }
        }

        #[test]
        fn find2_is_the_first_of_either_byte(x in prop::collection::vec(0u8..6, 0..40),
                                             a in 0u8..6, b in 0u8..6) {
            prop_assert_eq!(find2(&x, a, b), x.iter().position(|&c| c == a || c == b));
        }

        #[test]
        fn is_ascii_is_the_slices(a in prop::collection::vec(prop_oneof![15 => 0u8..0x80, 1 => 0x80u8..], 0..40)) {
            prop_assert_eq!(is_ascii(&a), a.is_ascii());
        }
    }
}
