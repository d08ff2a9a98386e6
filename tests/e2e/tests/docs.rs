//! The documentation says what the code says: the README's metric table is the catalog, the
//! configuration page's table is the configuration's keys, every page of `docs/` is linked
//! from the README, every relative link of the README and the pages leads somewhere, and the
//! page of declared metrics quotes the example configuration and the filter's refusals as
//! they are.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use prompter_filter::catalog::Metric;
use prompter_filter::config::{Config, TOP_LEVEL};

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The cells of every table row whose first cell is `` `something` ``.
fn code_rows(text: &str) -> Vec<Vec<String>> {
    text.lines()
        .filter(|l| l.starts_with("| `"))
        .map(|l| l.split('|').map(|c| c.trim().to_string()).collect())
        .collect()
}

fn pages() -> Vec<PathBuf> {
    let mut pages: Vec<PathBuf> = std::fs::read_dir(prompter_e2e::repo_root().join("docs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    pages.sort();
    pages
}

#[test]
fn readme_metric_table_matches_the_catalog() {
    let readme = read(&prompter_e2e::repo_root().join("README.md"));
    let rows: Vec<Vec<String>> = code_rows(&readme)
        .into_iter()
        .filter(|cells| {
            Metric::ALL
                .iter()
                .any(|m| cells[1] == format!("`{}`", m.name()))
        })
        .collect();
    assert_eq!(rows.len(), Metric::ALL.len(), "one row per metric");
    for (metric, row) in Metric::ALL.iter().zip(&rows) {
        let def = metric.def();
        assert_eq!(row[1], format!("`{}`", def.name));
        assert_eq!(row[2], def.kind.prometheus_type(), "{}", def.name);
        assert_eq!(row[3], def.labels.join(", "), "{}", def.name);
    }
}

#[test]
fn the_configuration_page_lists_every_top_level_key_once() {
    let page = read(&prompter_e2e::repo_root().join("docs/configuration.md"));
    let documented: Vec<String> = code_rows(&page)
        .into_iter()
        .map(|cells| cells[1].trim_matches('`').to_string())
        .filter(|key| TOP_LEVEL.contains(&key.as_str()))
        .collect();
    assert_eq!(documented, TOP_LEVEL, "the table, in the reader's order");
}

/// GitHub's anchor of a heading: lowercase, spaces to `-`, punctuation but `-` and `_` dropped.
fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

fn anchors(text: &str) -> BTreeSet<String> {
    let mut in_code = false;
    let mut found = BTreeSet::new();
    for line in text.lines() {
        if line.starts_with("```") {
            in_code = !in_code;
        } else if !in_code && line.starts_with('#') {
            found.insert(anchor(line.trim_start_matches('#')));
        }
    }
    found
}

/// The targets of `](target)` links that are not URLs.
fn relative_links(text: &str) -> Vec<String> {
    text.split("](")
        .skip(1)
        .filter_map(|rest| rest.split(')').next())
        .filter(|t| !t.starts_with("http://") && !t.starts_with("https://"))
        .map(str::to_string)
        .collect()
}

#[test]
fn every_page_is_linked_from_the_readme_and_every_relative_link_leads_somewhere() {
    let root = prompter_e2e::repo_root();
    let readme = root.join("README.md");
    let readme_links = relative_links(&read(&readme));
    for page in pages() {
        let name = format!("docs/{}", page.file_name().unwrap().to_str().unwrap());
        assert!(
            readme_links.iter().any(|l| l == &name),
            "{name} is not linked from the README"
        );
    }
    let mut broken = Vec::new();
    for doc in std::iter::once(readme).chain(pages()) {
        let text = read(&doc);
        for link in relative_links(&text) {
            let (file, fragment) = link.split_once('#').unwrap_or((&link, ""));
            let target = if file.is_empty() {
                doc.clone()
            } else {
                doc.parent().unwrap().join(file)
            };
            if !target.exists() {
                broken.push(format!("{}: {link}: no such file", doc.display()));
            } else if !fragment.is_empty() && !anchors(&read(&target)).contains(fragment) {
                broken.push(format!("{}: {link}: no such heading", doc.display()));
            }
        }
    }
    assert!(broken.is_empty(), "{}", broken.join("\n"));
}

/// The fenced code blocks of `text` after its first line equal to `heading` (all of them
/// when `heading` is empty): `(info string, body)`.
fn code_blocks(text: &str, heading: &str) -> Vec<(String, String)> {
    let mut lines = text.lines();
    if !heading.is_empty() {
        assert!(
            lines.by_ref().any(|l| l == heading),
            "no heading {heading:?}"
        );
    }
    let mut blocks = Vec::new();
    let mut open: Option<(String, String)> = None;
    for line in lines {
        match (&mut open, line.strip_prefix("```")) {
            (None, Some(info)) => open = Some((info.to_string(), String::new())),
            (Some(_), Some(_)) => blocks.extend(open.take()),
            (Some((_, body)), None) => {
                body.push_str(line);
                body.push('\n');
            }
            (None, None) => {}
        }
    }
    blocks
}

/// docs/custom-metrics.md shows the example configuration as it is, and each refusal it
/// quotes is what the filter answers to the configuration quoted above it.
#[test]
fn the_custom_metrics_page_quotes_the_example_and_real_refusals() {
    let root = prompter_e2e::repo_root();
    let page = read(&root.join("docs/custom-metrics.md"));
    let example = read(&root.join("envoy/examples/custom-metrics.json"));
    let parse = |text: &str| -> serde_json::Value {
        serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"))
    };
    let (_, shown) = code_blocks(&page, "")
        .into_iter()
        .find(|(info, _)| info == "json")
        .expect("a json block");
    assert_eq!(
        parse(&shown),
        parse(&example),
        "the page's first json block is envoy/examples/custom-metrics.json"
    );

    let (_, refusals) = code_blocks(&page, "## What is refused")
        .into_iter()
        .next()
        .expect("a block of refusals");
    let lines: Vec<&str> = refusals.lines().collect();
    assert!(
        lines.len() >= 2 && lines.len().is_multiple_of(2),
        "{refusals}"
    );
    for pair in lines.chunks(2) {
        let (config, message) = (pair[0], pair[1]);
        let message = message
            .strip_prefix("→ ")
            .unwrap_or_else(|| panic!("`→ message` after {config}"));
        match Config::parse(config.as_bytes(), |_| None) {
            Ok(_) => panic!("{config} is accepted"),
            Err(e) => assert_eq!(e.to_string(), message, "{config}"),
        }
    }
}

/// The README's example of declared metrics is a configuration the filter accepts.
#[test]
fn the_readme_example_of_declared_metrics_is_accepted() {
    let readme = read(&prompter_e2e::repo_root().join("README.md"));
    let (_, example) = code_blocks(&readme, "## Metrics of your own")
        .into_iter()
        .find(|(info, _)| info == "json")
        .expect("a json block");
    let config =
        Config::parse(example.as_bytes(), |_| None).unwrap_or_else(|e| panic!("{e}\n{example}"));
    assert!(!config.declared.metrics.is_empty(), "it declares metrics");
}
