//! Checks on a whole exposition after hostile traffic: Prometheus' own parser accepts it
//! (`promtool check metrics`), and every series of our catalog has exactly the catalog's label
//! keys, the configured `service` and `env`, and values made of label bytes only.

use std::io::Write;
use std::process::{Command, Stdio};

use prompter_filter::catalog::{
    label, Metric, MetricKind, BUCKET_SUFFIX, COUNT_SUFFIX, SUM_SUFFIX,
};
use prompter_filter::labels::is_clean;

/// `promtool` from `$PROMPTER_PROMTOOL`, else from `PATH` (`scripts/install-deps all`).
fn promtool() -> std::path::PathBuf {
    if let Some(path) = std::env::var_os("PROMPTER_PROMTOOL") {
        return path.into();
    }
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|dir| dir.join("promtool"))
        .find(|p| p.is_file())
        .expect("promtool not found: run scripts/install-deps all (Debian's prometheus package)")
}

/// Feeds `text` to `promtool check metrics`, which parses it with Prometheus' text parser and
/// then lints it. Exit 1 is a parse error (`Err` with promtool's words); exit 3 is lint
/// findings only (e.g. Envoy's own metrics without `# HELP`), returned as `Ok` text.
pub fn promtool_parses(text: &[u8]) -> Result<String, String> {
    let mut child = Command::new(promtool())
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool runs");
    let mut stdin = child.stdin.take().unwrap();
    let input = text.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let output = child.wait_with_output().expect("promtool finishes");
    writer.join().unwrap().expect("promtool reads its stdin");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    match output.status.code() {
        Some(0) | Some(3) => Ok(said),
        _ => Err(said),
    }
}

/// The catalog metric a sample name belongs to, and whether it is a histogram's `_bucket`.
fn metric_of(name: &str) -> Option<(Metric, bool)> {
    Metric::ALL.into_iter().find_map(|metric| {
        let base = metric.name();
        if name == base {
            return Some((metric, false));
        }
        let rest = name.strip_prefix(base)?;
        if metric.kind() != MetricKind::Histogram {
            return None;
        }
        match rest {
            BUCKET_SUFFIX => Some((metric, true)),
            COUNT_SUFFIX | SUM_SUFFIX => Some((metric, false)),
            _ => None,
        }
    })
}

/// Every problem with the catalog's series in `text` (empty when there is none), and how many
/// of our series it holds.
pub fn label_problems(text: &str, service: &str, env: &str) -> (Vec<String>, usize) {
    let mut problems = Vec::new();
    let mut ours = 0;
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let name_end = line.find(['{', ' ']).unwrap_or(line.len());
        let Some((metric, bucket)) = metric_of(&line[..name_end]) else {
            continue;
        };
        ours += 1;
        let labels = match parse_labels(&line[name_end..]) {
            Some(labels) => labels,
            None => {
                problems.push(format!("unreadable labels: {line:?}"));
                continue;
            }
        };
        let mut keys: Vec<&str> = labels.iter().map(|(k, _)| k.as_str()).collect();
        let mut want: Vec<&str> = metric.def().labels.to_vec();
        if bucket {
            want.push(label::LE);
        }
        keys.sort();
        want.sort();
        if keys != want {
            problems.push(format!(
                "label keys {keys:?}, catalog says {want:?}: {line:?}"
            ));
        }
        for (key, value) in &labels {
            let expected = match key.as_str() {
                label::SERVICE => Some(service),
                label::ENV => Some(env),
                _ => None,
            };
            if expected.is_some_and(|e| e != value) || !is_clean(value) {
                problems.push(format!("{key}={value:?}: {line:?}"));
            }
        }
    }
    (problems, ours)
}

/// `{k="v",...} value` → the pairs; `None` when it is not that shape. Values are taken up to
/// the next quote: a clean value has no quote or backslash to escape.
fn parse_labels(rest: &str) -> Option<Vec<(String, String)>> {
    let Some(inner) = rest.strip_prefix('{') else {
        return Some(Vec::new());
    };
    let mut pairs = Vec::new();
    let mut rest = inner;
    loop {
        if let Some(after) = rest.strip_prefix('}') {
            return after.starts_with(' ').then_some(pairs);
        }
        let (key, after) = rest.split_once("=\"")?;
        let (value, after) = after.split_once('"')?;
        pairs.push((key.to_string(), value.to_string()));
        rest = after.strip_prefix(',').unwrap_or(after);
    }
}
