//! Route templating: a request path becomes the route template it matches (FastAPI style,
//! `{name}` = exactly one non-empty segment), never the raw path.

use crate::bytes;

/// The `route` label of a path that matches no template.
pub const UNMATCHED: &str = "unmatched";

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Param,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Template {
    text: String,
    segments: Vec<Segment>,
    literals: usize,
}

/// A route matched by [`RouteTable::find`]: its index in the table (stable, usable as a key).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RouteId(pub usize);

/// The route templates, parsed once from configuration.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RouteTable {
    templates: Vec<Template>,
}

impl RouteTable {
    /// Parses templates; `Err` names the template and what is wrong with it.
    pub fn new<S: AsRef<str>>(templates: &[S]) -> Result<Self, String> {
        let mut table = RouteTable {
            templates: Vec::with_capacity(templates.len()),
        };
        for text in templates {
            table.push(text.as_ref())?;
        }
        Ok(table)
    }

    /// Adds a template at the end (it loses ties to every earlier one). `Err` says why it
    /// cannot be added: it does not parse, or the table has a template of the same shape
    /// (`/a/{x}` and `/a/{y}` are the same route).
    pub fn push(&mut self, text: &str) -> Result<RouteId, String> {
        let template = parse_template(text)?;
        if self
            .templates
            .iter()
            .any(|t| t.segments == template.segments)
        {
            return Err(format!("`{text}` is listed twice"));
        }
        self.templates.push(template);
        Ok(RouteId(self.templates.len() - 1))
    }

    /// True when the table has a template of the same shape as `text` (which parses).
    pub fn covers(&self, text: &str) -> bool {
        parse_template(text)
            .is_ok_and(|parsed| self.templates.iter().any(|t| t.segments == parsed.segments))
    }

    /// The template texts, in table order.
    pub fn templates(&self) -> impl Iterator<Item = &str> {
        self.templates.iter().map(|t| t.text.as_str())
    }

    pub fn len(&self) -> usize {
        self.templates.len()
    }

    pub fn is_empty(&self) -> bool {
        self.templates.is_empty()
    }

    /// The template text of a route.
    pub fn template(&self, id: RouteId) -> &str {
        &self.templates[id.0].text
    }

    /// The id of a template text, if the table has it.
    pub fn id_of(&self, template: &str) -> Option<RouteId> {
        self.templates
            .iter()
            .position(|t| t.text == template)
            .map(RouteId)
    }

    /// The template matching `path` (query string and fragment ignored). When several match,
    /// the one with the most literal segments wins (`/a/search` before `/a/{id}`).
    pub fn find(&self, path: &str) -> Option<RouteId> {
        self.find_ranked(path).map(|(id, _)| id)
    }

    /// Like [`find`](Self::find), with the number of literal segments of the template found,
    /// so that a match in another table can be weighed against it.
    pub fn find_ranked(&self, path: &str) -> Option<(RouteId, usize)> {
        if self.templates.is_empty() {
            return None;
        }
        // The path is cut into segments once; each template with as many segments is then
        // compared segment by segment, with no further pass over the path.
        let path = Segments::of(path)?;
        let mut best: Option<(usize, usize)> = None;
        for (index, template) in self.templates.iter().enumerate() {
            if template.segments.len() == path.count
                && best.is_none_or(|(_, lits)| template.literals > lits)
                && path.matches(template)
            {
                best = Some((index, template.literals));
            }
        }
        best.map(|(index, literals)| (RouteId(index), literals))
    }

    /// The `route` label for `path`.
    pub fn label(&self, path: &str) -> &str {
        self.find(path).map_or(UNMATCHED, |id| self.template(id))
    }
}

fn parse_template(text: &str) -> Result<Template, String> {
    let Some(rest) = text.strip_prefix('/') else {
        return Err(format!("`{text}` must start with `/`"));
    };
    if !crate::labels::is_clean(text) {
        return Err(format!(
            "`{text}` has characters a label value cannot carry (allowed: letters, digits, `_-.:/{{}}+`)"
        ));
    }
    let mut segments = Vec::new();
    for segment in rest.split('/') {
        if let Some(name) = segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
            if name.is_empty() || name.contains(['{', '}']) {
                return Err(format!("`{text}` has a malformed parameter `{segment}`"));
            }
            segments.push(Segment::Param);
        } else if segment.contains(['{', '}']) {
            return Err(format!(
                "`{text}`: a parameter must be a whole segment, not `{segment}`"
            ));
        } else {
            segments.push(Segment::Literal(segment.to_string()));
        }
    }
    let literals = segments
        .iter()
        .filter(|s| matches!(s, Segment::Literal(_)))
        .count();
    Ok(Template {
        text: text.to_string(),
        segments,
        literals,
    })
}

/// The path without its query string or fragment.
pub fn without_query(path: &str) -> &str {
    // `get`, not indexing: the end is always a char boundary (an ASCII byte), and the module
    // then carries no slicing panic and its formatting code.
    memchr::memchr2(b'?', b'#', path.as_bytes())
        .and_then(|end| path.get(..end))
        .unwrap_or(path)
}

/// Segments a path is cut into at most, in one pass; a longer path is split again for each
/// template of its length (no configured or learned route comes near).
const MAX_SEGMENTS: usize = 16;

/// A path (after its leading `/`, without query string or fragment) and where its segments
/// end.
struct Segments<'p> {
    rest: &'p [u8],
    /// The end of each of the first `count` segments in `rest` (when `count` is at most
    /// [`MAX_SEGMENTS`]).
    ends: [u32; MAX_SEGMENTS],
    count: usize,
}

impl<'p> Segments<'p> {
    /// `None` for a path that does not start with `/`. The path is read eight bytes at a
    /// time: a loop over single bytes took ~25 instructions a byte in the Wasm build.
    fn of(path: &'p str) -> Option<Self> {
        let rest = path.as_bytes().strip_prefix(b"/")?;
        let mut segments = Segments {
            rest,
            ends: [0; MAX_SEGMENTS],
            count: 0,
        };
        let n = rest.len();
        let mut len = n;
        // Bytes before `at` are read.
        let mut at = 0;
        while at < n {
            // The next eight bytes; at the end, the last eight (overlapping bytes already
            // read, whose marks are dropped), or all of a path shorter than a word.
            let (start, word) = if at + 8 <= n {
                (at, bytes::word64(rest, at))
            } else if n >= 8 {
                (n - 8, bytes::word64(rest, n - 8))
            } else {
                (0, bytes::partial_word(rest, 0))
            };
            let fresh = !0u64 << (8 * (at - start));
            let stops =
                (bytes::bytes_equal_to(word, b'?') | bytes::bytes_equal_to(word, b'#')) & fresh;
            let mut slashes = bytes::bytes_equal_to(word, b'/') & fresh;
            if stops != 0 {
                let stop = stops.trailing_zeros() / 8;
                slashes &= (1u64 << (8 * stop)) - 1;
                len = start + stop as usize;
            }
            while slashes != 0 {
                segments.end_at(start + (slashes.trailing_zeros() / 8) as usize);
                slashes &= slashes - 1;
            }
            if stops != 0 {
                break;
            }
            at = start + 8;
        }
        segments.end_at(len);
        segments.rest = rest.get(..len).unwrap_or_default();
        Some(segments)
    }

    fn end_at(&mut self, end: usize) {
        if let Some(slot) = self.ends.get_mut(self.count) {
            *slot = end as u32;
        }
        self.count += 1;
    }

    /// `self` has as many segments as the template.
    fn matches(&self, template: &Template) -> bool {
        let is = |segment: &Segment, part: &[u8]| match segment {
            Segment::Literal(literal) => bytes::eq(literal.as_bytes(), part),
            Segment::Param => !part.is_empty(),
        };
        if self.count > MAX_SEGMENTS {
            return template
                .segments
                .iter()
                .zip(self.rest.split(|b| *b == b'/'))
                .all(|(segment, part)| is(segment, part));
        }
        let mut start = 0;
        template
            .segments
            .iter()
            .zip(&self.ends)
            .all(|(segment, &end)| {
                let end = end as usize;
                let part = self.rest.get(start..end).unwrap_or_default();
                start = end + 1;
                is(segment, part)
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> RouteTable {
        RouteTable::new(&[
            "/api/prompt-templates",
            "/api/prompt-templates/{template_id}",
            "/api/prompt-templates/{template_id}/ensure-version",
            "/api/prompt-templates/{template_id}/run",
            "/api/prompt-templates/search",
            "/healthz",
            "/",
        ])
        .unwrap()
    }

    #[test]
    fn paths_become_templates() {
        let t = table();
        assert_eq!(t.label("/api/prompt-templates"), "/api/prompt-templates");
        assert_eq!(
            t.label("/api/prompt-templates/t-1?x=1"),
            "/api/prompt-templates/{template_id}"
        );
        assert_eq!(
            t.label("/api/prompt-templates/t-1/run#frag"),
            "/api/prompt-templates/{template_id}/run"
        );
        assert_eq!(
            t.label("/api/prompt-templates/search"),
            "/api/prompt-templates/search"
        );
        assert_eq!(t.label("/healthz?probe=1"), "/healthz");
        assert_eq!(t.label("/"), "/");
    }

    #[test]
    fn anything_else_is_unmatched() {
        let t = table();
        for path in [
            "/api/prompt-templates//run",
            "/api/prompt-templates/t-1/run/extra",
            "/healthz/",
            "/nope",
            "",
            "*",
            "api/prompt-templates",
        ] {
            assert_eq!(t.label(path), UNMATCHED, "{path}");
        }
    }

    #[test]
    fn paths_longer_than_one_pass_holds_are_matched_too() {
        let long: String = (0..MAX_SEGMENTS + 3).map(|i| format!("/s{i}")).collect();
        let template = long.replacen("/s1/", "/{x}/", 1);
        let t = RouteTable::new(&[template.as_str(), "/s0"]).unwrap();
        assert_eq!(t.label(&long.replacen("/s1/", "/v/", 1)), template);
        assert_eq!(t.label(&format!("{long}?q=/a")), template);
        assert_eq!(t.label(&long.replacen("/s2/", "/v/", 1)), UNMATCHED);
        assert_eq!(t.label(&long.replacen("/s1/", "//", 1)), UNMATCHED);
        assert_eq!(t.label(&format!("{long}/")), UNMATCHED);
        assert_eq!(t.label("/s0#/s1"), "/s0");
    }

    proptest::proptest! {
        #[test]
        fn a_path_is_cut_where_splitting_it_cuts(path in "[ab/?#]{0,40}") {
            let expected: Option<Vec<&[u8]>> = without_query(&path)
                .strip_prefix('/')
                .map(|rest| rest.as_bytes().split(|b| *b == b'/').collect());
            let segments = Segments::of(&path);
            let got = segments.as_ref().map(|s| {
                let mut start = 0;
                s.ends[..s.count.min(MAX_SEGMENTS)]
                    .iter()
                    .map(|&end| {
                        let part = &s.rest[start..end as usize];
                        start = end as usize + 1;
                        part
                    })
                    .collect::<Vec<_>>()
            });
            match (&expected, &got) {
                (Some(e), Some(g)) if e.len() > MAX_SEGMENTS => {
                    proptest::prop_assert_eq!(segments.unwrap().count, e.len());
                    proptest::prop_assert_eq!(&e[..MAX_SEGMENTS], &g[..]);
                }
                _ => proptest::prop_assert_eq!(expected, got),
            }
        }
    }

    #[test]
    fn bad_templates_are_refused_with_the_reason() {
        assert!(RouteTable::new(&["healthz"])
            .unwrap_err()
            .contains("start with"));
        assert!(RouteTable::new(&["/a/{}"])
            .unwrap_err()
            .contains("malformed"));
        assert!(RouteTable::new(&["/a/x{id}"])
            .unwrap_err()
            .contains("whole segment"));
        assert!(RouteTable::new(&["/a;b"])
            .unwrap_err()
            .contains("characters"));
        assert!(RouteTable::new(&["/a/{x}", "/a/{y}"])
            .unwrap_err()
            .contains("twice"));
    }
}
