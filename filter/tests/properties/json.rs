//! `JsonFieldScanner`: any chunking of a document gives the fields of the whole, and those
//! are the top-level fields a full JSON parser reads; broken documents are chunking-invariant
//! too (same verdict, same fields).

use prompter_filter::scanner::JsonFieldScanner;
use proptest::prelude::*;
use proptest::sample::Index;

use super::config;
use super::gen::{cuts, document, fields, json_object, oracle, split, Seen};

/// What a scan of `chunks` ends with: invalid?, complete?, the fields.
fn scan<'a>(chunks: impl IntoIterator<Item = &'a [u8]>) -> (bool, bool, Vec<Seen>) {
    let fields = fields();
    let mut scanner = JsonFieldScanner::new();
    for chunk in chunks {
        scanner.feed(&fields, chunk);
    }
    let seen = (0..fields.len())
        .map(|i| Seen::of(scanner.field(i)))
        .collect();
    (scanner.is_invalid(), scanner.is_complete(), seen)
}

proptest! {
    #![proptest_config(config(384))]

    #[test]
    fn any_chunking_gives_the_fields_a_json_parser_reads(
        members in json_object(),
        seed in any::<u64>(),
        cuts in cuts(),
    ) {
        let doc = document(&members, seed);
        let bytes = doc.as_bytes();
        let expected = oracle(bytes).expect("the generator writes valid JSON objects");
        let whole = scan([bytes]);
        prop_assert_eq!(&whole, &(false, true, expected), "{}", doc);
        prop_assert_eq!(&scan(split(bytes, &cuts)), &whole, "{}", doc);
        prop_assert_eq!(&scan(bytes.chunks(1)), &whole, "byte by byte: {}", doc);
    }

    #[test]
    fn a_broken_document_is_broken_the_same_way_in_any_chunking(
        members in json_object(),
        seed in any::<u64>(),
        edits in prop::collection::vec((any::<Index>(), any::<u8>()), 1..4),
        cut_at in any::<Index>(),
        cuts in cuts(),
    ) {
        let mut bytes = document(&members, seed).into_bytes();
        for (at, byte) in &edits {
            let at = at.index(bytes.len());
            bytes[at] = *byte;
        }
        // Sometimes cut short as well (a body that ends early).
        if edits.len() == 3 {
            bytes.truncate(cut_at.index(bytes.len() + 1));
        }
        let whole = scan([&bytes[..]]);
        prop_assert_eq!(&scan(split(&bytes, &cuts)), &whole, "{:?}", String::from_utf8_lossy(&bytes));
        prop_assert_eq!(&scan(bytes.chunks(1)), &whole, "{:?}", String::from_utf8_lossy(&bytes));
        // When the edits left valid JSON, the scanner still agrees with the parser.
        if let Some(expected) = oracle(&bytes) {
            prop_assert_eq!(&whole, &(false, true, expected), "{:?}", String::from_utf8_lossy(&bytes));
        }
    }
}
