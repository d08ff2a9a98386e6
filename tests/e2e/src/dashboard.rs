//! What `dashboards/` ships, read for the tests: the Grafana dashboard's panel and variable
//! queries (with Grafana's variables substituted) and the expressions of the rule files.

use std::path::PathBuf;

use serde_json::Value;

use crate::repo_root;

pub fn dir() -> PathBuf {
    repo_root().join("dashboards")
}

pub fn path(name: &str) -> PathBuf {
    dir().join(name)
}

pub fn read(name: &str) -> String {
    let path = path(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A YAML file of `dashboards/`, as a generic value.
pub fn yaml(name: &str) -> serde_norway::Value {
    serde_norway::from_str(&read(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// `dashboards/prompter.json`.
pub fn dashboard() -> Value {
    serde_json::from_str(&read("prompter.json")).unwrap_or_else(|e| panic!("prompter.json: {e}"))
}

/// Every panel, rows and the panels inside collapsed rows included.
pub fn panels(dashboard: &Value) -> Vec<&Value> {
    let mut out = Vec::new();
    for panel in dashboard["panels"].as_array().expect("`panels` is a list") {
        out.push(panel);
        if let Some(inner) = panel["panels"].as_array() {
            out.extend(inner);
        }
    }
    out
}

/// One query of one panel.
#[derive(Debug, Clone)]
pub struct PanelQuery {
    pub panel: String,
    pub ref_id: String,
    pub expr: String,
    pub legend: String,
}

impl PanelQuery {
    pub fn name(&self) -> String {
        format!("panel {:?} query {}", self.panel, self.ref_id)
    }

    /// The label names the legend prints (`{{route}} {{status}}`).
    pub fn legend_labels(&self) -> Vec<String> {
        let mut labels = Vec::new();
        let mut rest = self.legend.as_str();
        while let Some(start) = rest.find("{{") {
            let Some(len) = rest[start + 2..].find("}}") else {
                break;
            };
            labels.push(rest[start + 2..start + 2 + len].trim().to_string());
            rest = &rest[start + 2 + len + 2..];
        }
        labels
    }
}

pub fn panel_queries(dashboard: &Value) -> Vec<PanelQuery> {
    let mut out = Vec::new();
    for panel in panels(dashboard) {
        for target in panel["targets"].as_array().into_iter().flatten() {
            out.push(PanelQuery {
                panel: panel["title"].as_str().unwrap_or_default().to_string(),
                ref_id: target["refId"].as_str().unwrap_or_default().to_string(),
                expr: target["expr"].as_str().unwrap_or_default().to_string(),
                legend: target["legendFormat"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            });
        }
    }
    out
}

/// A `label_values(selector, label)` template variable.
#[derive(Debug, Clone)]
pub struct VariableQuery {
    pub name: String,
    pub selector: String,
    pub label: String,
}

pub fn variable_queries(dashboard: &Value) -> Vec<VariableQuery> {
    let mut out = Vec::new();
    for variable in dashboard["templating"]["list"]
        .as_array()
        .expect("`templating.list` is a list")
    {
        if variable["type"] != "query" {
            continue;
        }
        let name = variable["name"].as_str().unwrap_or_default().to_string();
        let query = variable["query"]["query"]
            .as_str()
            .or(variable["query"].as_str())
            .unwrap_or_default();
        let inner = query
            .trim()
            .strip_prefix("label_values(")
            .and_then(|q| q.strip_suffix(')'))
            .unwrap_or_else(|| panic!("variable {name}: not label_values(...): {query:?}"));
        let (selector, label) = inner
            .rsplit_once(',')
            .unwrap_or_else(|| panic!("variable {name}: label_values needs a label: {query:?}"));
        out.push(VariableQuery {
            name,
            selector: selector.trim().to_string(),
            label: label.trim().to_string(),
        });
    }
    out
}

/// Values for Grafana's variables in a query.
#[derive(Debug, Clone)]
pub struct Vars {
    pub service: String,
    pub env: String,
    pub rate_interval: String,
    pub interval: String,
}

impl Vars {
    /// Placeholder values, for reading queries without running them.
    pub fn placeholder() -> Self {
        Vars {
            service: "prompter-api".into(),
            env: "dev".into(),
            rate_interval: "1m".into(),
            interval: "15s".into(),
        }
    }

    /// `expr` with every variable replaced; panics on a variable it does not know.
    pub fn substitute(&self, expr: &str) -> String {
        let replacements = [
            ("${__rate_interval}", &self.rate_interval),
            ("$__rate_interval", &self.rate_interval),
            ("${__interval}", &self.interval),
            ("$__interval", &self.interval),
            ("${service}", &self.service),
            ("$service", &self.service),
            ("${env}", &self.env),
            ("$env", &self.env),
        ];
        let mut out = expr.to_string();
        for (from, to) in replacements {
            out = out.replace(from, to);
        }
        assert!(
            !out.contains('$'),
            "a Grafana variable the tests do not substitute in {expr:?}"
        );
        out
    }
}

/// A rule of `recording.yml` or `alerts.yml`.
#[derive(Debug, Clone)]
pub struct Rule {
    pub file: &'static str,
    /// The recorded series or the alert's name.
    pub name: String,
    pub alert: bool,
    pub expr: String,
    /// Label names used in annotation templates (`{{ $labels.provider }}`).
    pub template_labels: Vec<String>,
}

pub const RULE_FILES: [&str; 2] = ["recording.yml", "alerts.yml"];

pub fn rules() -> Vec<Rule> {
    let mut out = Vec::new();
    for file in RULE_FILES {
        let doc = yaml(file);
        for group in doc["groups"].as_sequence().expect("`groups` is a list") {
            for rule in group["rules"].as_sequence().expect("`rules` is a list") {
                let (name, alert) = match (rule["record"].as_str(), rule["alert"].as_str()) {
                    (Some(name), None) => (name, false),
                    (None, Some(name)) => (name, true),
                    _ => panic!("{file}: a rule is either `record` or `alert`: {rule:?}"),
                };
                let mut template_labels = Vec::new();
                if let Some(annotations) = rule["annotations"].as_mapping() {
                    for text in annotations.values().filter_map(|v| v.as_str()) {
                        for (i, _) in text.match_indices("$labels.") {
                            let rest = &text[i + "$labels.".len()..];
                            let len = rest
                                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                                .unwrap_or(rest.len());
                            template_labels.push(rest[..len].to_string());
                        }
                    }
                }
                out.push(Rule {
                    file,
                    name: name.to_string(),
                    alert,
                    expr: rule["expr"]
                        .as_str()
                        .expect("rule has an `expr`")
                        .to_string(),
                    template_labels,
                });
            }
        }
    }
    out
}
