//! What the fuzz targets share: cutting a body into chunks where the fuzzer says, and
//! reading a stat name back the way Envoy's `stats_tags` do.

use std::sync::OnceLock;

use prompter_filter::stat_name;
use regex::Regex;

/// Reads a fuzz input laid out as one header byte and then a body (so that a seed is a body
/// behind any byte): returns the body and the body cut into chunks where the header says.
/// The header seeds a xorshift that picks up to 7 cut points.
pub fn split_input(data: &[u8]) -> (&[u8], Vec<&[u8]>) {
    let Some((&header, body)) = data.split_first() else {
        return (data, vec![data]);
    };
    let mut state = u64::from(header).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let cuts: Vec<u16> = (0..header % 8)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u16
        })
        .collect();
    (body, chunks(body, &cuts))
}

/// Cuts `body` at the offsets in `cuts` (each taken modulo `body.len() + 1`, so any number is
/// a valid cut), giving the chunks a proxy could deliver the body in.
pub fn chunks<'a>(body: &'a [u8], cuts: &[u16]) -> Vec<&'a [u8]> {
    let mut at: Vec<usize> = cuts
        .iter()
        .map(|c| usize::from(*c) % (body.len() + 1))
        .collect();
    at.sort_unstable();
    let mut out = Vec::with_capacity(at.len() + 1);
    let mut prev = 0;
    for cut in at.into_iter().chain([body.len()]) {
        out.push(&body[prev..cut]);
        prev = cut;
    }
    out
}

/// Envoy's `stats_tags` as compiled regexes: the catalog's, then those a configuration's
/// declared label keys add (what `prompter-host envoy-config` writes into the bootstrap).
pub struct Tags(Vec<(String, Regex)>);

impl Tags {
    pub fn with_declared(declared: &[&str]) -> Tags {
        Tags(
            stat_name::envoy_stats_tags_with(declared)
                .into_iter()
                .map(|(key, pattern)| {
                    let re = Regex::new(&pattern).expect("tag regex");
                    (key.to_string(), re)
                })
                .collect(),
        )
    }

    /// The catalog's tags alone, compiled once.
    pub fn catalog() -> &'static Tags {
        static TAGS: OnceLock<Tags> = OnceLock::new();
        TAGS.get_or_init(|| Tags::with_declared(&[]))
    }

    /// Envoy's tag extraction: every tag regex runs on the full name, its group 2 is the tag
    /// value and its group 1 is cut out of the name. Returns the name left and the tags found
    /// (in tag order).
    pub fn extract(&self, name: &str) -> (String, Vec<(String, String)>) {
        let mut cut = vec![false; name.len()];
        let mut tags = Vec::new();
        for (key, re) in &self.0 {
            if let Some(c) = re.captures(name) {
                let whole = c.get(1).expect("group 1");
                cut[whole.start()..whole.end()].fill(true);
                tags.push((key.clone(), c[2].to_string()));
            }
        }
        let rest = name
            .char_indices()
            .filter(|(i, _)| !cut[*i])
            .map(|(_, c)| c)
            .collect();
        (rest, tags)
    }
}

/// Checks that `name`, read back by Envoy (behind a scope prefix too) and by
/// [`stat_name::decode_with`] (as the host reads it), gives exactly `labels` and the series name `series`.
pub fn assert_round_trip(name: &str, series: &str, labels: &[(&str, &str)]) {
    assert_round_trip_with(Tags::catalog(), name, series, labels);
}

/// [`assert_round_trip`] with Envoy's tags for a configuration's declared label keys too.
pub fn assert_round_trip_with(tags: &Tags, name: &str, series: &str, labels: &[(&str, &str)]) {
    let mut want: Vec<(String, String)> = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    want.sort();
    for prefix in ["", "wasmcustom."] {
        let scoped = format!("{prefix}{name}");
        let (rest, mut tags) = tags.extract(&scoped);
        tags.sort();
        assert_eq!(rest, format!("{prefix}{series}"), "name left of {scoped:?}");
        assert_eq!(tags, want, "tags of {scoped:?}");
    }
    // The host decodes with the configuration's declared keys beside the catalog's.
    let keys: Vec<String> = tags.0.iter().map(|(key, _)| key.clone()).collect();
    let decoded = stat_name::decode_with(name, &keys)
        .unwrap_or_else(|| panic!("our own encoding decodes: {name:?}"));
    assert_eq!(decoded.series, series, "{name:?}");
    assert_eq!(decoded.labels, labels, "{name:?}");
}
