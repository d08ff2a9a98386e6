//! The tag encoding of stat names against hostile label values: whatever bytes a label value
//! starts as, once sanitized and encoded into a metric's stat name, Envoy's `stats_tags`
//! regexes (and our decoder) give back exactly the metric's catalog label keys with the
//! sanitized values, and the series name: no value can add a label or change another.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use prompter_filter::catalog::{label, Metric, BUCKET_SUFFIX};
use prompter_filter::labels::{is_label_byte, sanitize};
use prompter_filter::stat_name;
use prompter_filter_fuzz::assert_round_trip;

#[derive(Arbitrary, Debug)]
struct Input {
    metric: u8,
    max_len: u8,
    /// Raw values, one per label key of the metric (missing ones are empty).
    values: Vec<Vec<u8>>,
    le: Option<Vec<u8>>,
}

fuzz_target!(|input: Input| {
    let metric = Metric::ALL[usize::from(input.metric) % Metric::ALL.len()];
    let max_len = usize::from(input.max_len).max(1);
    let keys = metric.def().labels;
    let mut values: Vec<String> = keys
        .iter()
        .enumerate()
        .map(|(i, _)| sanitize(input.values.get(i).map_or(&[][..], Vec::as_slice), max_len))
        .collect();
    for (value, raw) in values.iter().zip(&input.values) {
        assert!(value.len() <= max_len && value.len() <= raw.len());
        assert!(value.bytes().all(is_label_byte), "{value:?}");
    }
    let mut series = metric.name().to_string();
    let mut keys = keys.to_vec();
    if let Some(le) = &input.le {
        keys.push(label::LE);
        values.push(sanitize(le, max_len));
        series.push_str(BUCKET_SUFFIX);
    }
    let labels: Vec<(&str, &str)> = keys
        .iter()
        .copied()
        .zip(values.iter().map(String::as_str))
        .collect();
    let name = stat_name::encode(&series, &labels);
    assert_round_trip(&name, &series, &labels);
});
