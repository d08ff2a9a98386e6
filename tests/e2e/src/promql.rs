//! Just enough PromQL to see what a query reads: its vector selectors (metric name and label
//! matchers) and every label name it spells, in matchers and in `by`/`without`/`on`/
//! `ignoring`/`group_left`/`group_right` clauses. The dashboard tests check those names
//! against the catalog and ask a real Prometheus about each selector; Prometheus itself
//! (promtool, the query API) remains the judge of whether a query is valid.

use std::collections::BTreeSet;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Matcher {
    pub label: String,
    /// `=`, `!=`, `=~` or `!~`.
    pub op: String,
    pub value: String,
}

/// `metric{label op "value", ...}`, without any range, offset or `@`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selector {
    pub metric: Option<String>,
    pub matchers: Vec<Matcher>,
}

impl Selector {
    /// The selector as PromQL, for an instant query.
    pub fn to_promql(&self) -> String {
        let matchers: Vec<String> = self
            .matchers
            .iter()
            .map(|m| format!("{}{}{}", m.label, m.op, quote(&m.value)))
            .collect();
        format!(
            "{}{{{}}}",
            self.metric.as_deref().unwrap_or(""),
            matchers.join(", ")
        )
    }

    pub fn matcher(&self, label: &str) -> Option<&Matcher> {
        self.matchers.iter().find(|m| m.label == label)
    }
}

/// What an expression reads.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Uses {
    pub selectors: Vec<Selector>,
    /// Every label name spelled: in matchers and in grouping or matching clauses.
    pub labels: BTreeSet<String>,
}

impl Uses {
    pub fn metrics(&self) -> BTreeSet<String> {
        self.selectors
            .iter()
            .filter_map(|s| s.metric.clone())
            .collect()
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Ident(String),
    Str(String),
    Num,
    Punct(&'static str),
}

const GROUPING: [&str; 6] = [
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
];
const AGGREGATIONS: [&str; 12] = [
    "sum",
    "min",
    "max",
    "avg",
    "group",
    "stddev",
    "stdvar",
    "count",
    "count_values",
    "bottomk",
    "topk",
    "quantile",
];
const KEYWORDS: [&str; 8] = [
    "and", "or", "unless", "bool", "offset", "atan2", "inf", "nan",
];

/// Reads an expression (Grafana variables already substituted).
pub fn analyze(expr: &str) -> Result<Uses, String> {
    let tokens = tokenize(expr)?;
    let mut uses = Uses::default();
    let mut i = 0;
    while i < tokens.len() {
        let next = tokens.get(i + 1);
        match &tokens[i] {
            Token::Ident(id) if GROUPING.contains(&id.as_str()) => {
                i += 1;
                if next == Some(&Token::Punct("(")) {
                    i += 1;
                    loop {
                        match tokens.get(i) {
                            Some(Token::Ident(label)) => {
                                uses.labels.insert(label.clone());
                            }
                            Some(Token::Punct(",")) => {}
                            Some(Token::Punct(")")) => break,
                            other => {
                                return Err(format!("`{id} (...)`: unexpected {other:?}"));
                            }
                        }
                        i += 1;
                    }
                    i += 1;
                }
            }
            Token::Ident(id) if KEYWORDS.contains(&id.to_ascii_lowercase().as_str()) => i += 1,
            Token::Ident(_) if next == Some(&Token::Punct("(")) => i += 1, // a function
            Token::Ident(id)
                if AGGREGATIONS.contains(&id.as_str())
                    && matches!(next, Some(Token::Ident(n)) if n == "by" || n == "without") =>
            {
                i += 1
            }
            Token::Ident(metric) => {
                let mut selector = Selector {
                    metric: Some(metric.clone()),
                    matchers: Vec::new(),
                };
                i += 1;
                if tokens.get(i) == Some(&Token::Punct("{")) {
                    i = matchers(&tokens, i + 1, &mut selector.matchers)?;
                }
                push(&mut uses, selector);
            }
            Token::Punct("{") => {
                let mut selector = Selector {
                    metric: None,
                    matchers: Vec::new(),
                };
                i = matchers(&tokens, i + 1, &mut selector.matchers)?;
                push(&mut uses, selector);
            }
            Token::Punct("[") => {
                // A range or subquery: durations only.
                while i < tokens.len() && tokens[i] != Token::Punct("]") {
                    i += 1;
                }
                i += 1;
            }
            _ => i += 1,
        }
    }
    Ok(uses)
}

fn push(uses: &mut Uses, selector: Selector) {
    for m in &selector.matchers {
        uses.labels.insert(m.label.clone());
    }
    uses.selectors.push(selector);
}

/// Reads `label op "value", ...}` from `i` (after `{`); returns the index after `}`.
fn matchers(tokens: &[Token], mut i: usize, out: &mut Vec<Matcher>) -> Result<usize, String> {
    loop {
        match tokens.get(i) {
            Some(Token::Punct("}")) => return Ok(i + 1),
            Some(Token::Punct(",")) => i += 1,
            Some(Token::Ident(label)) => {
                let op = match tokens.get(i + 1) {
                    Some(Token::Punct(op @ ("=" | "!=" | "=~" | "!~"))) => op,
                    other => {
                        return Err(format!("matcher `{label}`: operator expected, {other:?}"))
                    }
                };
                let Some(Token::Str(value)) = tokens.get(i + 2) else {
                    return Err(format!("matcher `{label}{op}`: string expected"));
                };
                out.push(Matcher {
                    label: label.clone(),
                    op: op.to_string(),
                    value: value.clone(),
                });
                i += 3;
            }
            other => return Err(format!("in label matchers: unexpected {other:?}")),
        }
    }
}

fn tokenize(expr: &str) -> Result<Vec<Token>, String> {
    const PUNCT: [&str; 21] = [
        "=~", "!~", "!=", "==", "<=", ">=", "(", ")", "{", "}", "[", "]", ",", "=", "<", ">", "+",
        "-", "*", "/", "%",
    ];
    let bytes = expr.as_bytes();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        let rest = &expr[i..];
        if c.is_ascii_whitespace() {
            i += 1;
        } else if c == b'#' {
            i += rest.find('\n').unwrap_or(rest.len());
        } else if c.is_ascii_alphabetic() || c == b'_' || c == b':' {
            let len = rest
                .find(|ch: char| !(ch.is_ascii_alphanumeric() || ch == '_' || ch == ':'))
                .unwrap_or(rest.len());
            tokens.push(Token::Ident(rest[..len].to_string()));
            i += len;
        } else if c.is_ascii_digit() || (c == b'.' && rest.len() > 1) {
            // Numbers and durations (`0.95`, `5m`, `1h30m`, `0x1f`).
            let len = rest
                .find(|ch: char| !(ch.is_ascii_alphanumeric() || ch == '.'))
                .unwrap_or(rest.len());
            tokens.push(Token::Num);
            i += len;
        } else if c == b'"' || c == b'\'' || c == b'`' {
            let (value, len) = string(rest)?;
            tokens.push(Token::Str(value));
            i += len;
        } else if let Some(p) = PUNCT.iter().find(|p| rest.starts_with(**p)) {
            tokens.push(Token::Punct(p));
            i += p.len();
        } else if c == b'^' || c == b'@' {
            tokens.push(Token::Punct("op"));
            i += 1;
        } else {
            return Err(format!("unexpected {:?} in {expr:?}", &rest[..1]));
        }
    }
    Ok(tokens)
}

/// A quoted string at the start of `s`: its value and its length in `s`.
fn string(s: &str) -> Result<(String, usize), String> {
    let quote = s.chars().next().unwrap_or('"');
    let mut value = String::new();
    let mut chars = s.char_indices().skip(1);
    while let Some((i, c)) = chars.next() {
        match c {
            c if c == quote => return Ok((value, i + 1)),
            '\\' if quote != '`' => match chars.next() {
                Some((_, 'n')) => value.push('\n'),
                Some((_, 't')) => value.push('\t'),
                Some((_, other)) => value.push(other),
                None => break,
            },
            c => value.push(c),
        }
    }
    Err(format!("unterminated string {s:?}"))
}

fn quote(value: &str) -> String {
    format!("\"{}\"", value.replace('\\', "\\\\").replace('"', "\\\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors_and_labels_of_a_dashboard_query() {
        let uses = analyze(
            r#"histogram_quantile(0.95, sum by (route, le) (rate(x_bucket{service=~"a|b", env="dev"}[5m] offset 1d)))
              / on (route) group_left (status) ignoring(env) y:z:rate5m
              or vector(0) and {__name__="w", q!~"\"}"} unless sum without (model) (v)"#,
        )
        .unwrap();
        let metrics: Vec<_> = uses.metrics().into_iter().collect();
        assert_eq!(metrics, ["v", "x_bucket", "y:z:rate5m"]);
        let labels: Vec<_> = uses.labels.iter().map(String::as_str).collect();
        assert_eq!(
            labels,
            ["__name__", "env", "le", "model", "q", "route", "service", "status"]
        );
        assert_eq!(
            uses.selectors[0].to_promql(),
            r#"x_bucket{service=~"a|b", env="dev"}"#
        );
        assert_eq!(uses.selectors[2].to_promql(), r#"{__name__="w", q!~"\"}"}"#);
    }

    #[test]
    fn broken_matchers_are_reported() {
        assert!(analyze(r#"x{a}"#).is_err());
        assert!(analyze(r#"x{a="b}"#).is_err());
        assert!(analyze(r#"sum by (a"#).is_err());
    }
}
