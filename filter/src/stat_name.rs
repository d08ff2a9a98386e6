//! How a labelled series travels through Envoy: the labels are encoded in the stat name
//! (`service=.=prompter-api;.;env=.=dev;.;starlette_requests_total`) and Envoy's
//! `stats_config.stats_tags` regexes cut them back out into Prometheus labels.
//!
//! Label values are sanitized (see [`crate::labels`]) so they never contain `=` or `;`:
//! no value can end a tag early or start a new one.

use crate::catalog::label;

/// Separates a label key from its value inside a stat name.
pub const KEY_VALUE_SEPARATOR: &str = "=.=";
/// Ends one label inside a stat name.
pub const TAG_TERMINATOR: &str = ";.;";

/// Appends the encoded labels and then the series name to `out`.
pub fn encode_into(out: &mut String, series: &str, labels: &[(&str, &str)]) {
    for (key, value) in labels {
        out.push_str(key);
        out.push_str(KEY_VALUE_SEPARATOR);
        out.push_str(value);
        out.push_str(TAG_TERMINATOR);
    }
    out.push_str(series);
}

pub fn encode(series: &str, labels: &[(&str, &str)]) -> String {
    let mut out = String::with_capacity(series.len() + labels.len() * 24);
    encode_into(&mut out, series, labels);
    out
}

/// A stat name split back into its series name and labels, as Envoy's tag extraction does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodedName<'a> {
    pub series: &'a str,
    pub labels: Vec<(&'a str, &'a str)>,
}

/// Splits an encoded stat name. Returns `None` for a name that is not in our encoding
/// (a key that is not in the catalog, or a malformed tag).
pub fn decode(name: &str) -> Option<DecodedName<'_>> {
    decode_with(name, &[])
}

/// [`decode`], with the label keys of declared metrics (see
/// [`crate::config::Config::declared_label_keys`]) beside the catalog's.
pub fn decode_with<'a>(name: &'a str, declared: &[String]) -> Option<DecodedName<'a>> {
    let mut labels = Vec::new();
    let mut rest = name;
    while let Some(end) = rest.find(TAG_TERMINATOR) {
        let tag = &rest[..end];
        let (key, value) = tag.split_once(KEY_VALUE_SEPARATOR)?;
        if !label::ALL.contains(&key) && !declared.iter().any(|d| d == key) {
            return None;
        }
        labels.push((key, value));
        rest = &rest[end + TAG_TERMINATOR.len()..];
    }
    Some(DecodedName {
        series: rest,
        labels,
    })
}

/// The regex Envoy needs to extract `key` from our stat names.
///
/// Anchored to a tag boundary (start of the name, the `.` after a scope prefix such as
/// Envoy's `wasmcustom.`, or the `;` closing the previous tag): an unanchored
/// `(le=\.=(.*?);\.;)` would also match inside `table=.=...;.;`.
pub fn envoy_tag_regex(key: &str) -> String {
    format!(r"(?:^|[.;])({key}=\.=([^;]*);\.;)")
}

/// `(tag_name, regex)` for every label key of the catalog, in catalog order.
pub fn envoy_stats_tags() -> Vec<(&'static str, String)> {
    envoy_stats_tags_with(&[])
}

/// [`envoy_stats_tags`], then the tags of `declared` label keys (those of declared metrics
/// beyond the catalog's, see [`crate::config::Config::declared_label_keys`]).
pub fn envoy_stats_tags_with<'a>(declared: &[&'a str]) -> Vec<(&'a str, String)> {
    label::ALL
        .iter()
        .chain(declared)
        .map(|key| (*key, envoy_tag_regex(key)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_labels_before_the_name_and_decodes_them_back() {
        let name = encode(
            "prompter_db_unique_violation_total",
            &[
                ("service", "prompter-api"),
                ("env", "dev"),
                ("table", "prompt_templates"),
            ],
        );
        assert_eq!(
            name,
            "service=.=prompter-api;.;env=.=dev;.;table=.=prompt_templates;.;prompter_db_unique_violation_total"
        );
        let decoded = decode(&name).unwrap();
        assert_eq!(decoded.series, "prompter_db_unique_violation_total");
        assert_eq!(
            decoded.labels,
            vec![
                ("service", "prompter-api"),
                ("env", "dev"),
                ("table", "prompt_templates")
            ]
        );
    }

    #[test]
    fn refuses_names_in_another_encoding() {
        assert!(decode("evil=.=x;.;starlette_requests_total").is_none());
        let declared = ["tenant".to_string()];
        let name = "tenant=.=acme;.;x_total";
        assert_eq!(
            decode_with(name, &declared).unwrap().labels,
            [("tenant", "acme")]
        );
        assert!(decode(name).is_none(), "only where it is declared");
        assert!(decode("service=x;.;starlette_requests_total").is_none());
        assert_eq!(decode("plain_name").unwrap().labels, vec![]);
    }

    /// Applies the tag regexes the way Envoy's tag extractors do: every regex runs on the
    /// full name, group 2 is the value, group 1 is cut out of the name.
    fn extract(name: &str) -> (String, Vec<(String, String)>) {
        let mut cut = vec![false; name.len()];
        let mut tags = Vec::new();
        for (key, pattern) in envoy_stats_tags() {
            let re = regex::Regex::new(&pattern).unwrap();
            if let Some(c) = re.captures(name) {
                let whole = c.get(1).unwrap();
                cut[whole.start()..whole.end()]
                    .iter_mut()
                    .for_each(|b| *b = true);
                tags.push((key.to_string(), c[2].to_string()));
            }
        }
        let rest: String = name
            .char_indices()
            .filter(|(i, _)| !cut[*i])
            .map(|(_, c)| c)
            .collect();
        (rest, tags)
    }

    #[test]
    fn every_label_of_every_metric_comes_out_whole_even_behind_a_scope_prefix() {
        use crate::catalog::Metric;
        for metric in Metric::ALL {
            let mut labels: Vec<(&str, &str)> = metric
                .def()
                .labels
                .iter()
                .map(|k| (*k, "v.a-l/{x}"))
                .collect();
            labels.push((label::LE, "0.005"));
            let name = format!("wasmcustom.{}", encode(metric.name(), &labels));
            let (rest, tags) = extract(&name);
            assert_eq!(rest, format!("wasmcustom.{}", metric.name()));
            let mut want: Vec<(String, String)> = labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            want.sort();
            let mut tags = tags;
            tags.sort();
            assert_eq!(tags, want, "{name}");
        }
    }

    #[test]
    fn a_key_that_is_the_tail_of_another_does_not_match_inside_it() {
        let name = encode("x_total", &[("table", "prompt_templates")]);
        let (rest, tags) = extract(&name);
        assert_eq!(rest, "x_total");
        assert_eq!(
            tags,
            vec![("table".to_string(), "prompt_templates".to_string())]
        );
    }
}
