//! Label values that stay bounded and can never break the stat-name encoding.
//!
//! Everything that comes from traffic (methods, statuses, providers, model ids) passes
//! through here before it becomes part of a stat name.

use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};

/// Value for a provider outside the allow-list, or a model beyond the per-provider budget.
pub const OTHER: &str = "other";
/// Value when neither the request nor the response said which provider or model.
pub const UNKNOWN: &str = "unknown";
/// `status` of an exchange that never got a response status (reset, timeout before headers),
/// or got one that is not three digits (`2000`, which Envoy passes through, or `abc`).
pub const NO_STATUS: &str = "0";
/// The statuses that are their own `status` label: every three-digit code a response can
/// carry. Envoy passes 600–999 from the upstream to the client as it passes 404, so they are
/// responses like any other (a probe answered one counts nothing, as a 4xx: only 2xx and 5xx
/// say what the provider did); a client or dashboard reads them by their number.
pub const STATUS_CODES: std::ops::RangeInclusive<u16> = 100..=999;

/// True for the bytes a label value may keep as they are. `=` and `;` are never among them,
/// so a value cannot close its tag or open another one.
pub fn is_label_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b':' | b'/' | b'{' | b'}' | b'+')
}

/// Replaces every byte outside [`is_label_byte`] with `_` and cuts the value at `max_len`
/// bytes. Works on bytes, so any input (invalid UTF-8 included) gives an ASCII value.
pub fn sanitize(raw: &[u8], max_len: usize) -> String {
    raw.iter()
        .take(max_len)
        .map(|&b| if is_label_byte(b) { b as char } else { '_' })
        .collect()
}

/// True when `value` could be written into a stat name as is.
pub fn is_clean(value: &str) -> bool {
    !value.is_empty() && value.bytes().all(is_label_byte)
}

/// The standard methods, each its own label value.
pub const METHODS: [&str; 9] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
];

/// The request method as a label: one of the standard methods, else `other`.
pub fn method(raw: &str) -> &'static str {
    METHODS.get(method_index(raw)).copied().unwrap_or(OTHER)
}

/// The request method's index in [`METHODS`], `METHODS.len()` for `other`.
pub fn method_index(raw: &str) -> usize {
    METHODS
        .iter()
        .position(|m| m.eq_ignore_ascii_case(raw))
        .unwrap_or(METHODS.len())
}

/// A response status as a label: a three-digit code in [`STATUS_CODES`], else `None` (the
/// label [`NO_STATUS`]).
pub fn status(raw: Option<&str>) -> Option<u16> {
    let &[a, b, c] = trim(raw?).as_bytes() else {
        return None;
    };
    if ![a, b, c].iter().all(u8::is_ascii_digit) {
        return None;
    }
    let digit = |d: u8| u16::from(d - b'0');
    Some(digit(a) * 100 + digit(b) * 10 + digit(c)).filter(|s| STATUS_CODES.contains(s))
}

/// `raw.trim()`, without its walk over `char`s when neither end can be whitespace (a status,
/// a provider: the common case, checked on every request).
fn trim(raw: &str) -> &str {
    let ends_are_plain = |b: &u8| b.is_ascii() && !(*b as char).is_whitespace();
    match raw.as_bytes() {
        [first, .., last] if ends_are_plain(first) && ends_are_plain(last) => raw,
        [only] if ends_are_plain(only) => raw,
        _ => raw.trim(),
    }
}

/// The label text of a status from [`status`] (three digits), without the formatting
/// machinery or an allocation per request.
pub fn status_digits(code: u16) -> [u8; 3] {
    let digit = |n: u16| b'0' + (n % 10) as u8;
    [digit(code / 100), digit(code / 10), digit(code)]
}

/// Bounds on the provider and model label values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelBounds {
    pub max_length: usize,
    pub max_per_provider: usize,
}

/// Keeps the provider and model labels bounded: providers outside the allow-list become
/// `other`, model ids are sanitized and cut, and each provider keeps at most
/// `max_per_provider` distinct models (later ones become `other`). Declared labels with a
/// `max_values` keep their budgets here too, each under a scope of its own.
#[derive(Debug, Default)]
pub struct ModelLabels {
    seen: HashMap<String, HashSet<String>>,
}

impl ModelLabels {
    /// The provider label: the configured name it matches (case-insensitively), else `other`,
    /// or `unknown` when the exchange carried none.
    pub fn provider<'p>(providers: &'p [String], raw: Option<&str>) -> &'p str {
        match raw.map(trim) {
            None => UNKNOWN,
            Some(raw) => providers
                .iter()
                .find(|p| p.eq_ignore_ascii_case(raw))
                .map(String::as_str)
                .unwrap_or(OTHER),
        }
    }

    /// The model label for `provider`, counting it against the provider's budget.
    pub fn model(&mut self, bounds: &ModelBounds, provider: &str, raw: Option<&str>) -> String {
        let Some(raw) = raw.filter(|r| !r.is_empty()) else {
            return UNKNOWN.to_string();
        };
        // A clean value within the length is its own label: copied, not rebuilt by `char`.
        let model = if raw.len() <= bounds.max_length && is_clean(raw) {
            raw.to_string()
        } else {
            sanitize(raw.as_bytes(), bounds.max_length)
        };
        self.capped(provider, model, bounds.max_per_provider)
    }

    /// `value` if it is among the first `max` distinct values of the budget `scope` (a
    /// provider's models, a declared label's values), else `other`.
    pub fn capped(&mut self, scope: &str, value: String, max: usize) -> String {
        // The scope's set, looked up before it is keyed by a new `String`.
        let known = match self.seen.get_mut(scope) {
            Some(known) => known,
            None => self.seen.entry(scope.to_string()).or_default(),
        };
        if known.contains(&value) {
            return value;
        }
        if known.len() >= max {
            return OTHER.to_string();
        }
        known.insert(value.clone());
        value
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_values_cannot_carry_a_tag() {
        let value = sanitize(b"x;.;env=.=prod;.;", 64);
        assert_eq!(value, "x_._env_._prod_._");
        assert!(is_clean(&value));
        assert_eq!(sanitize("é\"\n\0 ".as_bytes(), 64), "______");
        assert_eq!(sanitize(b"abcdef", 3), "abc");
    }

    #[test]
    fn methods_and_statuses_are_bounded() {
        assert_eq!(method("post"), "POST");
        assert_eq!(method("BREW"), OTHER);
        assert_eq!(status(Some("201")), Some(201));
        // A response that arrived with a status past 599 is labelled with it, not as none.
        assert_eq!(status(Some("600")), Some(600));
        assert_eq!(status(Some("999")), Some(999));
        assert_eq!(status_digits(999), *b"999");
        for odd in [
            Some("2000"),
            Some("abc"),
            Some(""),
            Some("099"),
            Some("+99"),
            Some("1000"),
            None,
        ] {
            assert_eq!(status(odd), None, "{odd:?}");
        }
    }

    #[test]
    fn whitespace_around_a_status_or_provider_is_trimmed_as_str_trim_does() {
        for raw in [
            "200",
            " 200",
            "200\t",
            "\u{b}200",
            "200\u{2003}",
            "\u{a0}200",
            "2",
            " ",
        ] {
            assert_eq!(trim(raw), raw.trim(), "{raw:?}");
        }
        assert_eq!(status(Some("\u{2003}201\n")), Some(201));
        assert_eq!(status(Some("2 1")), None);
        let providers = vec!["openai".to_string()];
        assert_eq!(
            ModelLabels::provider(&providers, Some(" OpenAI\u{b}")),
            "openai"
        );
    }

    #[test]
    fn providers_and_models_are_bounded() {
        let providers = vec!["openai".to_string(), "google".to_string()];
        assert_eq!(ModelLabels::provider(&providers, Some("OpenAI")), "openai");
        assert_eq!(ModelLabels::provider(&providers, Some("mistral")), OTHER);
        assert_eq!(ModelLabels::provider(&providers, None), UNKNOWN);

        let bounds = ModelBounds {
            max_length: 8,
            max_per_provider: 2,
        };
        let mut models = ModelLabels::default();
        assert_eq!(
            models.model(&bounds, "openai", Some("gpt-4o-2024")),
            "gpt-4o-2"
        );
        assert_eq!(models.model(&bounds, "openai", Some("o1")), "o1");
        assert_eq!(models.model(&bounds, "openai", Some("o3")), OTHER);
        assert_eq!(models.model(&bounds, "openai", Some("o1")), "o1");
        assert_eq!(models.model(&bounds, "google", Some("o3")), "o3");
        assert_eq!(models.model(&bounds, "google", None), UNKNOWN);
    }
}
