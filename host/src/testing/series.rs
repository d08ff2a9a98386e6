//! Reading a Prometheus or OpenMetrics text exposition back into series, keyed the way a
//! person reads them: `name{k="v",...}` with the label keys sorted.

use std::collections::BTreeMap;

use prompter_filter::catalog::{
    Metric, BUCKET_SUFFIX, COUNT_SUFFIX, SUM_MICROS_SUFFIX, SUM_SUFFIX,
};

/// Formats a series key.
pub fn key(name: &str, labels: &[(&str, &str)]) -> String {
    let mut labels: Vec<_> = labels.to_vec();
    labels.sort();
    let inner: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
    format!("{name}{{{}}}", inner.join(","))
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Series(pub BTreeMap<String, f64>);

impl Series {
    pub fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        self.0.get(&key(name, labels)).copied()
    }

    /// The series whose name is `name`, with their labels.
    pub fn named<'a>(&'a self, name: &str) -> impl Iterator<Item = (&'a String, f64)> + 'a {
        let prefix = format!("{name}{{");
        self.0
            .iter()
            .filter(move |(k, _)| k.starts_with(&prefix))
            .map(|(k, v)| (k, *v))
    }

    /// How many series `metric` has: a histogram's `_bucket`, `_count` and `_sum` (or
    /// `_sum_microseconds`) included.
    pub fn count_of(&self, metric: Metric) -> usize {
        let name = metric.name();
        [
            name.to_string(),
            format!("{name}{BUCKET_SUFFIX}"),
            format!("{name}{COUNT_SUFFIX}"),
            format!("{name}{SUM_SUFFIX}"),
            format!("{name}{SUM_MICROS_SUFFIX}"),
        ]
        .iter()
        .map(|n| self.named(n).count())
        .sum()
    }

    /// What differs from `expected`, one line per series (empty when equal).
    pub fn diff(&self, expected: &Series) -> String {
        let mut out = String::new();
        for (k, want) in &expected.0 {
            match self.0.get(k) {
                None => out.push_str(&format!("missing  {k} {want}\n")),
                Some(got) if got != want => {
                    out.push_str(&format!("value    {k} {got}, expected {want}\n"))
                }
                Some(_) => {}
            }
        }
        for (k, got) in &self.0 {
            if !expected.0.contains_key(k) {
                out.push_str(&format!("extra    {k} {got}\n"));
            }
        }
        out
    }

    /// Everything but histogram buckets (checked separately, their values depend on timing).
    pub fn without_buckets(&self) -> Series {
        Series(
            self.0
                .iter()
                .filter(|(k, _)| !k.contains(&format!("{BUCKET_SUFFIX}{{")))
                .map(|(k, v)| (k.clone(), *v))
                .collect(),
        )
    }
}

/// Parses every sample line (`# ` lines are skipped). A label value such as
/// `/api/prompt-templates/{template_id}` carries braces, which some small parsers choke on,
/// so this reads the lines itself.
pub fn parse(text: &str) -> Series {
    parse_filtered(text, |_| true)
}

/// Parses the sample lines whose metric name `keep` accepts.
pub fn parse_filtered(text: &str, keep: impl Fn(&str) -> bool) -> Series {
    let mut series = BTreeMap::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
    {
        let (name, labels, value) =
            parse_sample(line).unwrap_or_else(|| panic!("unparsable sample line {line:?}"));
        if keep(&name) {
            let labels: Vec<(&str, &str)> = labels
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            series.insert(key(&name, &labels), value);
        }
    }
    Series(series)
}

type Labels = Vec<(String, String)>;

/// `name{k="v",...} value` → its parts, label values unescaped.
fn parse_sample(line: &str) -> Option<(String, Labels, f64)> {
    let name_end = line.find(['{', ' '])?;
    let name = line[..name_end].to_string();
    let mut rest = &line[name_end..];
    let mut labels = Vec::new();
    if let Some(inner) = rest.strip_prefix('{') {
        rest = inner;
        loop {
            rest = rest.trim_start_matches(',');
            if let Some(after) = rest.strip_prefix('}') {
                rest = after;
                break;
            }
            let (key, after) = rest.split_once("=\"")?;
            let mut value = String::new();
            let mut chars = after.char_indices();
            let end = loop {
                match chars.next()? {
                    (i, '"') => break i,
                    (_, '\\') => match chars.next()?.1 {
                        'n' => value.push('\n'),
                        other => value.push(other),
                    },
                    (_, c) => value.push(c),
                }
            };
            labels.push((key.to_string(), value));
            rest = &after[end + 1..];
        }
    }
    let value = rest.split_whitespace().next()?.parse().ok()?;
    Some((name, labels, value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_with_braces_and_escapes_in_values_parse() {
        let (name, labels, value) =
            parse_sample(r#"x_total{route="/a/{id}",q="say \"hi\"\\",e=""} 3"#).unwrap();
        assert_eq!(name, "x_total");
        assert_eq!(
            labels,
            vec![
                ("route".to_string(), "/a/{id}".to_string()),
                ("q".to_string(), "say \"hi\"\\".to_string()),
                ("e".to_string(), String::new())
            ]
        );
        assert_eq!(value, 3.0);
        assert_eq!(parse_sample("y 1.5").unwrap().2, 1.5);
        assert!(parse_sample(r#"z{a="unterminated} 1"#).is_none());
    }
}
