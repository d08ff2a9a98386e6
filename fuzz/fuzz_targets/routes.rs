//! The route matcher on arbitrary tables and paths: never panics; the template found is one
//! of the table's and the one a plain reference matcher picks (segment by segment, `{name}`
//! = one non-empty segment, most literal segments win, earlier wins a tie); the query string
//! and fragment never change the answer.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use prompter_filter::routes::{RouteTable, UNMATCHED};

#[derive(Arbitrary, Debug)]
enum Path {
    Raw(String),
    /// A path built from one of the table's templates, so that matches are common.
    FromTemplate {
        template: u8,
        params: Vec<String>,
        extra: Option<String>,
    },
}

#[derive(Arbitrary, Debug)]
struct Input {
    templates: Vec<String>,
    paths: Vec<Path>,
    suffix: String,
}

fn is_param(segment: &str) -> bool {
    segment.len() >= 2 && segment.starts_with('{') && segment.ends_with('}')
}

/// The matcher as the README describes it, written for clarity rather than speed.
fn reference<'t>(templates: &[&'t str], path: &str) -> Option<&'t str> {
    let path = path.split(['?', '#']).next().unwrap_or_default();
    let parts: Vec<&str> = path.strip_prefix('/')?.split('/').collect();
    let mut best: Option<(&str, usize)> = None;
    for template in templates {
        let segments: Vec<&str> = template[1..].split('/').collect();
        let fits =
            segments.len() == parts.len()
                && segments.iter().zip(&parts).all(|(s, p)| {
                    if is_param(s) {
                        !p.is_empty()
                    } else {
                        s == p
                    }
                });
        let literals = segments.iter().filter(|s| !is_param(s)).count();
        if fits && best.is_none_or(|(_, l)| literals > l) {
            best = Some((template, literals));
        }
    }
    best.map(|(t, _)| t)
}

fn build(templates: &[&str], path: Path) -> String {
    match path {
        Path::Raw(raw) => raw,
        Path::FromTemplate {
            template,
            params,
            extra,
        } => {
            let Some(t) = templates.get(usize::from(template) % templates.len().max(1)) else {
                return "/".to_string();
            };
            let mut params = params.into_iter();
            let mut out: Vec<String> = t
                .split('/')
                .map(|s| {
                    if is_param(s) {
                        params.next().unwrap_or_else(|| "x".to_string())
                    } else {
                        s.to_string()
                    }
                })
                .collect();
            out.extend(extra);
            out.join("/")
        }
    }
}

fuzz_target!(|input: Input| {
    // Build the table template by template, keeping those it accepts.
    let mut table = RouteTable::default();
    for text in &input.templates {
        let before = table.len();
        match table.push(text) {
            Ok(id) => assert_eq!(table.template(id), text),
            Err(reason) => {
                assert!(!reason.is_empty());
                assert_eq!(table.len(), before);
            }
        }
    }
    let templates: Vec<&str> = table.templates().collect();
    for t in &templates {
        assert!(table.covers(t));
        assert!(t.starts_with('/'));
        assert!(prompter_filter::labels::is_clean(t), "{t:?} in a label");
    }
    assert_eq!(
        RouteTable::new(&templates).as_ref(),
        Ok(&table),
        "the accepted templates make the same table"
    );

    for path in input.paths {
        let path = build(&templates, path);
        let label = table.label(&path);
        let want = reference(&templates, &path).unwrap_or(UNMATCHED);
        assert_eq!(label, want, "{path:?} in {templates:?}");
        if let Some(id) = table.find(&path) {
            assert!(templates.contains(&table.template(id)));
            assert_eq!(table.id_of(table.template(id)), Some(id));
        }
        let bare = path.split(['?', '#']).next().unwrap_or_default();
        for with_query in [
            format!("{bare}?{}", input.suffix),
            format!("{bare}#{}", input.suffix),
        ] {
            assert_eq!(table.label(&with_query), label, "{with_query:?}");
        }
    }
});
