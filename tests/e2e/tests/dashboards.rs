//! The dashboard, recording rules, alerts and scrape configurations of `dashboards/`:
//! promtool accepts them, every alert's unit tests pass, they only use the catalog's metric
//! and label names (and use all metrics), and a real Prometheus scraping real Envoy with the
//! filter answers every query of every panel with data. The example of declared metrics
//! (`dashboards/examples/`) gets the same checks against the metrics its configuration
//! (`envoy/examples/custom-metrics.json`) declares.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use prompter_e2e::client;
use prompter_e2e::dashboard::{self, PanelQuery, Vars};
use prompter_e2e::envoy::{Envoy, EnvoyOptions};
use prompter_e2e::prometheus::{self, Prometheus, Target};
use prompter_e2e::promql::{self, Uses};
use prompter_filter::catalog::{
    label, Metric, MetricKind, BUCKET_SUFFIX, COUNT_SUFFIX, SUM_MICROS_SUFFIX, SUM_SUFFIX,
};
use prompter_filter::config::Config;
use serde_norway::Value as Yaml;

fn promtool_ok(args: &[&str]) {
    if let Err(output) = prometheus::promtool(args, &dashboard::dir()) {
        panic!("{output}");
    }
}

// --- promtool ---------------------------------------------------------------------------

#[test]
fn promtool_accepts_the_rule_files() {
    let mut args = vec!["check", "rules"];
    args.extend(dashboard::RULE_FILES);
    promtool_ok(&args);
}

#[test]
fn promtool_accepts_the_static_scrape_config() {
    promtool_ok(&["check", "config", "scrape/static.yml"]);
}

/// Debian's Prometheus is built without Kubernetes service discovery, so promtool refuses
/// `kubernetes_sd_configs`. The test checks those blocks itself (role `pod`, only pod meta
/// labels in the relabelings) and has promtool check the rest: the file with each
/// `kubernetes_sd_configs` swapped for a static target carrying the same meta labels.
#[test]
fn promtool_accepts_the_kubernetes_scrape_config() {
    const POD_META: [&str; 4] = [
        "__meta_kubernetes_namespace",
        "__meta_kubernetes_pod_name",
        "__meta_kubernetes_pod_label_",
        "__meta_kubernetes_pod_container_port_name",
    ];
    let mut config = dashboard::yaml("scrape/kubernetes.yml");
    let rule_files: Vec<Yaml> = config["rule_files"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|f| {
            let path = dashboard::dir().join("scrape").join(f.as_str().unwrap());
            Yaml::from(path.canonicalize().unwrap().display().to_string())
        })
        .collect();
    config["rule_files"] = Yaml::Sequence(rule_files);
    for job in config["scrape_configs"].as_sequence_mut().unwrap() {
        let name = job["job_name"].as_str().unwrap().to_string();
        let sd = job
            .as_mapping_mut()
            .unwrap()
            .remove("kubernetes_sd_configs")
            .unwrap_or_else(|| panic!("job {name}: kubernetes_sd_configs"));
        for block in sd.as_sequence().unwrap() {
            assert_eq!(block["role"].as_str(), Some("pod"), "job {name}");
        }
        for relabel in job["relabel_configs"].as_sequence().unwrap() {
            for source in relabel["source_labels"].as_sequence().into_iter().flatten() {
                let source = source.as_str().unwrap();
                assert!(
                    POD_META.iter().any(|m| source.starts_with(m)),
                    "job {name}: {source} is not a pod meta label"
                );
            }
        }
        job["static_configs"] =
            serde_norway::from_str("[{targets: ['prompter-pod.invalid:9901']}]").unwrap();
    }
    let dir = std::env::temp_dir().join(format!("prompter-kubernetes-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("kubernetes.yml"),
        serde_norway::to_string(&config).unwrap(),
    )
    .unwrap();
    let result = prometheus::promtool(&["check", "config", "kubernetes.yml"], &dir);
    let _ = std::fs::remove_dir_all(&dir);
    if let Err(output) = result {
        panic!("{output}");
    }
}

/// The PodMonitor scrapes the ports and paths the pod-discovery example scrapes.
#[test]
fn pod_monitor_matches_the_kubernetes_example() {
    let monitor = dashboard::yaml("scrape/podmonitor.yaml");
    assert_eq!(
        monitor["apiVersion"].as_str(),
        Some("monitoring.coreos.com/v1")
    );
    assert_eq!(monitor["kind"].as_str(), Some("PodMonitor"));
    let kubernetes = dashboard::yaml("scrape/kubernetes.yml");
    let mut jobs = BTreeMap::new(); // port name regex → (app regex, metrics path)
    for job in kubernetes["scrape_configs"].as_sequence().unwrap() {
        let keep = |source: &str| {
            job["relabel_configs"]
                .as_sequence()
                .unwrap()
                .iter()
                .find(|r| r["source_labels"][0].as_str() == Some(source))
                .and_then(|r| r["regex"].as_str())
                .unwrap_or_else(|| panic!("a keep on {source}"))
                .to_string()
        };
        let port = keep("__meta_kubernetes_pod_container_port_name");
        let app = keep("__meta_kubernetes_pod_label_app_kubernetes_io_name");
        let path = job["metrics_path"].as_str().unwrap().to_string();
        jobs.insert(port, (app, path));
    }
    let app = monitor["spec"]["selector"]["matchLabels"]["app.kubernetes.io/name"]
        .as_str()
        .unwrap();
    let endpoints = monitor["spec"]["podMetricsEndpoints"]
        .as_sequence()
        .unwrap();
    assert_eq!(endpoints.len(), jobs.len(), "one endpoint per job");
    for endpoint in endpoints {
        let port = endpoint["port"].as_str().unwrap();
        let (job_app, path) = jobs
            .iter()
            .find(|(regex, _)| regex.split('|').any(|p| p == port))
            .map(|(_, v)| v)
            .unwrap_or_else(|| panic!("port {port} is not one kubernetes.yml keeps"));
        assert_eq!(job_app, app);
        assert_eq!(
            endpoint["path"].as_str(),
            Some(path.as_str()),
            "port {port}"
        );
    }
}

#[test]
fn promtool_unit_tests_of_the_alerts_pass() {
    promtool_ok(&["test", "rules", "alerts_test.yml"]);
}

/// Each alert has a test case where it fires and one where it stays quiet.
#[test]
fn every_alert_is_tested_firing_and_quiet() {
    let tests = dashboard::yaml("alerts_test.yml");
    let mut fires = BTreeSet::new();
    let mut quiet = BTreeSet::new();
    for case in tests["tests"].as_sequence().unwrap() {
        for check in case["alert_rule_test"].as_sequence().into_iter().flatten() {
            let name = check["alertname"].as_str().unwrap().to_string();
            let expected = check["exp_alerts"].as_sequence().map_or(0, |a| a.len());
            if expected > 0 {
                fires.insert(name);
            } else {
                quiet.insert(name);
            }
        }
    }
    let alerts: Vec<_> = dashboard::rules().into_iter().filter(|r| r.alert).collect();
    assert!(!alerts.is_empty());
    for alert in alerts {
        assert!(
            fires.contains(&alert.name),
            "{}: no case where it fires",
            alert.name
        );
        assert!(
            quiet.contains(&alert.name),
            "{}: no case where it stays quiet",
            alert.name
        );
    }
}

// --- names: the catalog is the one place they are spelled ---------------------------

/// Series names a query may read: the catalog's (a histogram's `_bucket`, `_count` and
/// `_sum_microseconds`, Envoy's) and the recording rules' (among them the histograms' `_sum`).
fn readable_series() -> BTreeMap<String, Option<Metric>> {
    let mut names = BTreeMap::new();
    for metric in Metric::ALL {
        match metric.kind() {
            MetricKind::Histogram => {
                for suffix in [BUCKET_SUFFIX, COUNT_SUFFIX, SUM_MICROS_SUFFIX] {
                    names.insert(format!("{}{suffix}", metric.name()), Some(metric));
                }
            }
            _ => {
                names.insert(metric.name().to_string(), Some(metric));
            }
        }
    }
    for rule in dashboard::rules().into_iter().filter(|r| !r.alert) {
        names.insert(rule.name, None);
    }
    names
}

/// What is wrong with the names `uses` reads (empty when nothing).
fn unknown_names(
    what: &str,
    uses: &Uses,
    readable: &BTreeMap<String, Option<Metric>>,
) -> Vec<String> {
    let mut problems = Vec::new();
    for metric in uses.metrics() {
        if readable.contains_key(&metric) {
            continue;
        }
        let sum = Metric::ALL
            .iter()
            .any(|m| metric == format!("{}{SUM_SUFFIX}", m.name()));
        problems.push(if sum {
            format!("{what}: {metric}: Envoy's scrape has no histogram `_sum`; dashboards/recording.yml records it from `{SUM_MICROS_SUFFIX}`")
        } else {
            format!("{what}: metric {metric} is neither in the catalog nor a recording rule")
        });
    }
    for name in &uses.labels {
        if !label::ALL.contains(&name.as_str()) {
            problems.push(format!("{what}: label {name} is not in the catalog"));
        }
    }
    problems
}

fn analyze(what: &str, expr: &str) -> Uses {
    promql::analyze(&Vars::placeholder().substitute(expr)).unwrap_or_else(|e| panic!("{what}: {e}"))
}

#[test]
fn dashboard_and_rules_spell_only_catalog_metrics_and_labels() {
    let readable = readable_series();
    let dash = dashboard::dashboard();
    let mut problems = Vec::new();
    for query in dashboard::panel_queries(&dash) {
        let uses = analyze(&query.name(), &query.expr);
        problems.extend(unknown_names(&query.name(), &uses, &readable));
        for name in query.legend_labels() {
            if !label::ALL.contains(&name.as_str()) {
                problems.push(format!(
                    "{}: legend label {name} is not in the catalog",
                    query.name()
                ));
            }
        }
    }
    for variable in dashboard::variable_queries(&dash) {
        let what = format!("variable {}", variable.name);
        let uses = analyze(&what, &variable.selector);
        problems.extend(unknown_names(&what, &uses, &readable));
        if !label::ALL.contains(&variable.label.as_str()) {
            problems.push(format!(
                "{what}: label {} is not in the catalog",
                variable.label
            ));
        }
    }
    for rule in dashboard::rules() {
        let what = format!("{} rule {}", rule.file, rule.name);
        problems.extend(unknown_names(&what, &analyze(&what, &rule.expr), &readable));
        for name in &rule.template_labels {
            if !label::ALL.contains(&name.as_str()) {
                problems.push(format!(
                    "{what}: annotation label {name} is not in the catalog"
                ));
            }
        }
    }
    // The alert tests' input series too: a renamed metric must not leave them testing a
    // name nothing exports.
    let tests = dashboard::yaml("alerts_test.yml");
    for case in tests["tests"].as_sequence().unwrap() {
        for input in case["input_series"].as_sequence().into_iter().flatten() {
            let series = input["series"].as_str().unwrap();
            let what = format!("alerts_test.yml series {series}");
            problems.extend(unknown_names(&what, &analyze(&what, series), &readable));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn every_catalog_metric_has_a_panel() {
    let readable = readable_series();
    let mut shown = BTreeSet::new();
    for query in dashboard::panel_queries(&dashboard::dashboard()) {
        for name in analyze(&query.name(), &query.expr).metrics() {
            if let Some(Some(metric)) = readable.get(&name) {
                shown.insert(metric.name());
            }
        }
    }
    let missing: Vec<_> = Metric::ALL
        .iter()
        .map(|m| m.name())
        .filter(|n| !shown.contains(n))
        .collect();
    assert!(missing.is_empty(), "no panel reads {missing:?}");
}

#[test]
fn every_recording_rule_is_read_by_the_dashboard_or_a_rule() {
    let dash = dashboard::dashboard();
    let rules = dashboard::rules();
    let mut read = BTreeSet::new();
    for query in dashboard::panel_queries(&dash) {
        read.extend(analyze(&query.name(), &query.expr).metrics());
    }
    for rule in &rules {
        read.extend(analyze(&rule.name, &rule.expr).metrics());
    }
    for rule in rules.iter().filter(|r| !r.alert) {
        assert!(read.contains(&rule.name), "nothing reads {}", rule.name);
    }
}

// --- the dashboard as Grafana reads it ----------------------------------------------------

#[test]
fn dashboard_is_a_complete_grafana_dashboard() {
    let dash = dashboard::dashboard();
    assert!(
        dash["schemaVersion"].as_u64().unwrap() >= 39,
        "current schema"
    );
    assert!(dash["id"].is_null(), "no instance id: importable anywhere");
    assert_eq!(dash["uid"], "prompter-api");
    assert!(!dash["title"].as_str().unwrap().is_empty());

    let variables: BTreeMap<&str, &serde_json::Value> = dash["templating"]["list"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| (v["name"].as_str().unwrap(), v))
        .collect();
    assert_eq!(variables["datasource"]["type"], "datasource");
    assert_eq!(variables["datasource"]["query"], "prometheus");
    for name in [label::SERVICE, label::ENV] {
        let variable = variables
            .get(name)
            .unwrap_or_else(|| panic!("a `{name}` variable"));
        assert_eq!(variable["type"], "query");
        assert_eq!(variable["datasource"]["uid"], "${datasource}");
    }

    let mut ids = BTreeSet::new();
    let mut cells = BTreeSet::new();
    for panel in dashboard::panels(&dash) {
        let title = panel["title"].as_str().unwrap_or_default();
        assert!(!title.is_empty(), "every panel has a title");
        assert!(
            ids.insert(panel["id"].as_u64().unwrap()),
            "panel id of {title} twice"
        );
        let grid = &panel["gridPos"];
        let [x, y, w, h] = ["x", "y", "w", "h"].map(|k| grid[k].as_u64().unwrap());
        assert!(x + w <= 24, "{title} is wider than the dashboard");
        for cx in x..x + w {
            for cy in y..y + h {
                assert!(cells.insert((cx, cy)), "{title} overlaps another panel");
            }
        }
        if panel["type"] == "row" {
            continue;
        }
        assert_eq!(panel["datasource"]["uid"], "${datasource}", "{title}");
        assert!(
            panel["description"].as_str().is_some_and(|d| d.len() > 20),
            "{title}: a description"
        );
        let defaults = &panel["fieldConfig"]["defaults"];
        assert!(
            defaults["unit"].as_str().is_some_and(|u| !u.is_empty()),
            "{title}: a unit"
        );
        assert!(
            defaults["thresholds"]["steps"]
                .as_array()
                .is_some_and(|s| !s.is_empty()),
            "{title}: thresholds"
        );
        let targets = panel["targets"].as_array().unwrap();
        assert!(!targets.is_empty(), "{title}: a query");
        let refs: BTreeSet<_> = targets
            .iter()
            .map(|t| t["refId"].as_str().unwrap())
            .collect();
        assert_eq!(refs.len(), targets.len(), "{title}: refIds unique");
        for target in targets {
            assert_eq!(target["datasource"]["uid"], "${datasource}", "{title}");
        }
    }
}

/// Every selector of every panel is narrowed to the selected service and env.
#[test]
fn every_panel_query_follows_the_service_and_env_variables() {
    for query in dashboard::panel_queries(&dashboard::dashboard()) {
        let uses = promql::analyze(&query.expr.replace("$__rate_interval", "1m")).unwrap();
        for selector in &uses.selectors {
            for (name, var) in [(label::SERVICE, "$service"), (label::ENV, "$env")] {
                let matcher = selector.matcher(name);
                assert!(
                    matcher.is_some_and(|m| m.op == "=~" && m.value == var),
                    "{}: {} lacks {name}=~\"{var}\"",
                    query.name(),
                    selector.to_promql()
                );
            }
        }
    }
}

// --- end to end: real Prometheus, real Envoy, every panel lights up ------------------

const SERVICE: &str = "prompter-api";
const ENV: &str = "dev";

/// One round of traffic through the proxy at `at` that moves every metric of the catalog:
/// 2xx, 4xx (404, 409 duplicate → unique violation, 429 → rate limit) and 5xx (502 failed
/// probe), probes, runs with and without an OpenAI fingerprint, and /healthz.
fn traffic_round(at: SocketAddr) {
    let requests: [(&str, &str, Option<&str>); 9] = [
        (
            "POST",
            "/api/prompt-templates",
            Some(r#"{"name":"greet","body":"Hello {who}"}"#),
        ),
        ("GET", "/api/prompt-templates", None),
        ("GET", "/api/prompt-templates/t-404", None),
        (
            "POST",
            "/api/prompt-templates/t-1/ensure-version?delay_ms=30",
            Some(r#"{"provider":"openai","model_id":"gpt-4o"}"#),
        ),
        (
            "POST",
            "/api/prompt-templates/t-1/ensure-version",
            Some(r#"{"provider":"google","model_id":"broken-1"}"#),
        ),
        (
            "POST",
            "/api/prompt-templates/t-1/run",
            Some(r#"{"provider":"openai","model_id":"gpt-4o"}"#),
        ),
        (
            "POST",
            "/api/prompt-templates/t-1/run",
            Some(r#"{"provider":"google","model_id":"gemini-1.5-pro"}"#),
        ),
        (
            "POST",
            "/api/prompt-templates/t-1/run",
            Some(r#"{"provider":"openai","model_id":"ratelimited-gpt"}"#),
        ),
        ("GET", "/healthz", None),
    ];
    for (method, path, body) in requests {
        client::send(
            at,
            method,
            path,
            body.map(str::as_bytes),
            client::Framing::Whole,
        );
    }
}

/// Sends traffic rounds to `at` until dropped.
struct Traffic {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Traffic {
    fn start(at: SocketAddr) -> Traffic {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                traffic_round(at);
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        Traffic {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Traffic {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Whose scrape Prometheus reads: a histogram's sum is `_sum_microseconds` in Envoy's (the
/// recording rules make `_sum` of it) and a real `_sum` in the host's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scraped {
    Envoy,
    Host,
}

impl Scraped {
    /// True when the scrape is expected to have series for `selector`.
    fn exports(self, selector: &promql::Selector) -> bool {
        let micros = selector
            .metric
            .as_deref()
            .is_some_and(|m| m.ends_with(SUM_MICROS_SUFFIX));
        self == Scraped::Envoy || !micros
    }
}

/// Everything that is not yet as it should be, one line each (empty when done).
fn not_lit_up(
    prometheus: &Prometheus,
    targets: &[Target],
    scraped: Scraped,
    vars: &Vars,
) -> Vec<String> {
    let mut problems = Vec::new();
    let dash = dashboard::dashboard();

    match prometheus.api("targets", &[]) {
        Ok(data) => {
            for target in targets {
                let up = data["activeTargets"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|t| t["labels"]["job"] == target.job.as_str() && t["health"] == "up");
                if !up {
                    problems.push(format!(
                        "scrape target {} ({}) not up",
                        target.job, target.addr
                    ));
                }
            }
        }
        Err(e) => problems.push(format!("targets: {e}")),
    }

    match prometheus.api("rules", &[]) {
        Ok(data) => {
            for group in data["groups"].as_array().into_iter().flatten() {
                for rule in group["rules"].as_array().into_iter().flatten() {
                    if rule["health"] != "ok" {
                        problems.push(format!(
                            "rule {}: health {} {}",
                            rule["name"], rule["health"], rule["lastError"]
                        ));
                    }
                }
            }
        }
        Err(e) => problems.push(format!("rules: {e}")),
    }

    // Every query of every panel: data, a number, and the labels its legend prints.
    let mut selectors = BTreeSet::new();
    for query in dashboard::panel_queries(&dash) {
        let expr = vars.substitute(&query.expr);
        selectors.extend(
            promql::analyze(&expr)
                .unwrap()
                .selectors
                .iter()
                .map(|s| s.to_promql()),
        );
        problems.extend(panel_problems(prometheus, &query, &expr));
    }
    // The variables' value lists offer the service and env the traffic has.
    for variable in dashboard::variable_queries(&dash) {
        let selector = vars.substitute(&variable.selector);
        let want = if variable.label == label::ENV {
            &vars.env
        } else {
            &vars.service
        };
        match prometheus.label_values(&variable.label, &selector) {
            Ok(values) if values.contains(want) => {}
            Ok(values) => problems.push(format!(
                "variable {}: {values:?} lacks {want}",
                variable.name
            )),
            Err(e) => problems.push(format!("variable {}: {e}", variable.name)),
        }
    }
    // Each selector on its own, in the panels and in every rule (alerts included): a matcher
    // hidden behind `or 0 * ...` must still select something, if this scrape exports it.
    for rule in dashboard::rules() {
        selectors.extend(
            promql::analyze(&rule.expr)
                .unwrap()
                .selectors
                .iter()
                .filter(|s| scraped.exports(s))
                .map(|s| s.to_promql()),
        );
    }
    for selector in selectors {
        match prometheus.query(&selector) {
            Ok(samples) if !samples.is_empty() => {}
            Ok(_) => problems.push(format!("selector {selector}: no series")),
            Err(e) => problems.push(format!("selector {selector}: {e}")),
        }
    }
    problems
}

fn panel_problems(prometheus: &Prometheus, query: &PanelQuery, expr: &str) -> Vec<String> {
    let samples = match prometheus.query(expr) {
        Ok(samples) => samples,
        Err(e) => return vec![format!("{}: {e}\n  {expr}", query.name())],
    };
    if samples.is_empty() {
        return vec![format!("{}: no data\n  {expr}", query.name())];
    }
    let mut problems = Vec::new();
    if samples.iter().all(|s| !s.value.is_finite()) {
        problems.push(format!(
            "{}: only NaN or infinite values\n  {expr}",
            query.name()
        ));
    }
    for name in query.legend_labels() {
        if let Some(sample) = samples.iter().find(|s| !s.labels.contains_key(&name)) {
            problems.push(format!(
                "{}: legend prints {{{{{name}}}}}, a series has no such label: {:?}",
                query.name(),
                sample.labels
            ));
        }
    }
    problems
}

/// Starts Prometheus on `targets` (jobs of `dashboards/scrape/static.yml`, which traffic to
/// `at` moves) and waits until every panel query of the dashboard, every variable and every
/// selector of the rules has data. A second proxy (the wasmtime host's exporter) is checked
/// by calling this with its own target.
fn assert_dashboard_lights_up(at: SocketAddr, targets: &[Target], scraped: Scraped) {
    let prometheus = Prometheus::start(&prometheus::static_config(targets));
    let _traffic = Traffic::start(at);
    let vars = Vars {
        service: SERVICE.into(),
        env: ENV.into(),
        // What Grafana computes for a 1 s scrape interval is 4 s; a little more leaves room
        // for a late scrape.
        rate_interval: "10s".into(),
        interval: "1s".into(),
    };
    let start = Instant::now();
    loop {
        let problems = not_lit_up(&prometheus, targets, scraped, &vars);
        if problems.is_empty() {
            return;
        }
        if start.elapsed() > Duration::from_secs(30) {
            panic!(
                "after {:?}, the dashboard is not lit up:\n{}\n\nPrometheus log:\n{}",
                start.elapsed(),
                problems.join("\n"),
                prometheus.log()
            );
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

#[test]
fn every_panel_lights_up_on_prometheus_scraping_envoy() {
    let sample = prompter_sample_api::spawn("127.0.0.1:0".parse().unwrap()).unwrap();
    let envoy = Envoy::start(EnvoyOptions::new(sample.addr, "{}"));
    assert_dashboard_lights_up(
        envoy.listener,
        &[Target::new("prompter-envoy", envoy.admin)],
        Scraped::Envoy,
    );
}

#[test]
fn every_panel_lights_up_on_prometheus_scraping_the_host_exporter() {
    let sample = prompter_sample_api::spawn("127.0.0.1:0".parse().unwrap()).unwrap();
    let proxy = prompter_host::proxy::spawn(prompter_host::proxy::ProxyOptions {
        listen: "127.0.0.1:0".parse().unwrap(),
        metrics: "127.0.0.1:0".parse().unwrap(),
        upstream: Some(format!("http://{}", sample.addr).parse().unwrap()),
        wasm: prompter_e2e::envoy::wasm_module(),
        plugin_config: b"{}".to_vec(),
        env: Vec::new(),
        workers: 2,
        upstream_timeout: Duration::from_secs(10),
        fail_closed: true,
        require_filter: false,
        echo_logs: false,
    })
    .expect("the host proxy starts");
    assert_dashboard_lights_up(
        proxy.listen,
        &[Target::new("prompter-host", proxy.metrics)],
        Scraped::Host,
    );
}

// --- the example of declared metrics: dashboards/examples/ ------------------------------

const EXAMPLE_CONFIG: &str = "envoy/examples/custom-metrics.json";
const EXAMPLE_DASHBOARD: &str = "examples/custom-metrics.json";
const EXAMPLE_RULES: &str = "examples/custom-metrics.rules.yml";

/// The plugin configuration the example is for, as the filter reads it: its declared metrics
/// are the one place the example's names and labels are spelled.
fn example_config() -> Config {
    let path = prompter_e2e::repo_root().join(EXAMPLE_CONFIG);
    let json = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    Config::parse(&json, |_| None).unwrap_or_else(|e| panic!("{EXAMPLE_CONFIG}: {e}"))
}

fn example_dashboard() -> serde_json::Value {
    serde_json::from_str(&dashboard::read(EXAMPLE_DASHBOARD))
        .unwrap_or_else(|e| panic!("{EXAMPLE_DASHBOARD}: {e}"))
}

/// `(record, expr)` of every rule of the example's rule file.
fn example_rules() -> Vec<(String, String)> {
    let doc = dashboard::yaml(EXAMPLE_RULES);
    let mut rules = Vec::new();
    for group in doc["groups"].as_sequence().expect("`groups` is a list") {
        for rule in group["rules"].as_sequence().expect("`rules` is a list") {
            let record = rule["record"].as_str();
            let expr = rule["expr"].as_str();
            let (Some(record), Some(expr)) = (record, expr) else {
                panic!("{EXAMPLE_RULES}: a recording rule with an expr: {rule:?}");
            };
            rules.push((record.to_string(), expr.to_string()));
        }
    }
    rules
}

/// Series the example's queries may read, each with the labels it has: the declared
/// metrics' as Envoy exports them (a histogram's `_bucket`, with `le`, `_count` and
/// `_sum_microseconds`), and what the example's rules record from them.
fn example_readable_series(config: &Config) -> BTreeMap<String, BTreeSet<String>> {
    let mut names = BTreeMap::new();
    for metric in &config.declared.metrics {
        let labels: BTreeSet<String> = metric.labels.iter().map(|l| l.to_string()).collect();
        match metric.kind {
            MetricKind::Histogram => {
                for suffix in [BUCKET_SUFFIX, COUNT_SUFFIX, SUM_MICROS_SUFFIX] {
                    let mut labels = labels.clone();
                    if suffix == BUCKET_SUFFIX {
                        labels.insert(label::LE.to_string());
                    }
                    names.insert(format!("{}{suffix}", metric.name), labels);
                }
            }
            _ => {
                names.insert(metric.name.clone(), labels);
            }
        }
    }
    for (record, expr) in example_rules() {
        let read = analyze(&record, &expr).metrics();
        let labels = read
            .iter()
            .filter_map(|name| names.get(name))
            .flatten()
            .cloned()
            .collect();
        names.insert(record, labels);
    }
    names
}

/// What is wrong with what `uses` (and a legend printing `legend`) reads (empty when nothing).
fn example_problems(
    what: &str,
    uses: &Uses,
    legend: &[String],
    readable: &BTreeMap<String, BTreeSet<String>>,
) -> Vec<String> {
    let mut problems = Vec::new();
    let mut labels = BTreeSet::new();
    for metric in uses.metrics() {
        match readable.get(&metric) {
            Some(have) => labels.extend(have.iter().cloned()),
            None if metric.ends_with(SUM_SUFFIX) => problems.push(format!(
                "{what}: {metric}: Envoy's scrape has no histogram `_sum`; {EXAMPLE_RULES} must record it from `{SUM_MICROS_SUFFIX}`"
            )),
            None => problems.push(format!(
                "{what}: metric {metric} is not declared in {EXAMPLE_CONFIG} nor recorded by {EXAMPLE_RULES}"
            )),
        }
    }
    // Labels are judged when every series read is known.
    let series_known = problems.is_empty();
    for name in uses.labels.iter().chain(legend) {
        if series_known && !labels.contains(name) {
            problems.push(format!(
                "{what}: label {name} is not a label of the metrics it reads"
            ));
        }
    }
    problems
}

#[test]
fn promtool_accepts_the_example_rule_file() {
    promtool_ok(&["check", "rules", EXAMPLE_RULES]);
}

/// Every metric and label the example dashboard and rules read is declared by the example
/// configuration, every declared metric has a panel, every rule is read by a panel, and every
/// panel follows the `service` and `env` variables.
#[test]
fn the_example_dashboard_reads_what_the_example_configuration_declares() {
    let config = example_config();
    let readable = example_readable_series(&config);
    let dash = example_dashboard();
    let mut problems = Vec::new();
    let mut read = BTreeSet::new();
    let queries = dashboard::panel_queries(&dash);
    assert!(!queries.is_empty(), "{EXAMPLE_DASHBOARD} has panels");
    for query in &queries {
        // Grafana's variables left in place: the matchers must name them.
        let uses = promql::analyze(&query.expr.replace("$__rate_interval", "1m"))
            .unwrap_or_else(|e| panic!("{}: {e}", query.name()));
        problems.extend(example_problems(
            &query.name(),
            &uses,
            &query.legend_labels(),
            &readable,
        ));
        for selector in &uses.selectors {
            for (name, var) in [(label::SERVICE, "$service"), (label::ENV, "$env")] {
                if !selector
                    .matcher(name)
                    .is_some_and(|m| m.op == "=~" && m.value == var)
                {
                    problems.push(format!(
                        "{}: {} lacks {name}=~\"{var}\"",
                        query.name(),
                        selector.to_promql()
                    ));
                }
            }
        }
        read.extend(uses.metrics());
    }
    for variable in dashboard::variable_queries(&dash) {
        let what = format!("variable {}", variable.name);
        let uses = analyze(&what, &variable.selector);
        problems.extend(example_problems(
            &what,
            &uses,
            std::slice::from_ref(&variable.label),
            &readable,
        ));
    }
    for (record, expr) in example_rules() {
        let what = format!("{EXAMPLE_RULES} rule {record}");
        problems.extend(example_problems(
            &what,
            &analyze(&what, &expr),
            &[],
            &readable,
        ));
        if !read.contains(&record) {
            problems.push(format!("{what}: no panel reads it"));
        }
    }
    for metric in &config.declared.metrics {
        let shown = read.iter().any(|name| {
            name.strip_prefix(metric.name.as_str()).is_some_and(|rest| {
                rest.is_empty() || [BUCKET_SUFFIX, COUNT_SUFFIX, SUM_SUFFIX].contains(&rest)
            })
        });
        if !shown {
            problems.push(format!("no panel reads {}", metric.name));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// Real Envoy with the example configuration, real Prometheus with the project's rules and
/// the example's: every query of every panel of the example dashboard has data.
#[test]
fn the_example_dashboard_lights_up_on_prometheus_scraping_envoy() {
    let plugin_config = std::fs::read_to_string(prompter_e2e::repo_root().join(EXAMPLE_CONFIG))
        .expect("the example configuration");
    let sample = prompter_sample_api::spawn("127.0.0.1:0".parse().unwrap()).unwrap();
    let envoy = Envoy::start(EnvoyOptions::new(sample.addr, &plugin_config));
    let targets = [Target::new("prompter-envoy", envoy.admin)];
    let mut config: Yaml = serde_norway::from_str(&prometheus::static_config(&targets)).unwrap();
    let rules = dashboard::path(EXAMPLE_RULES).canonicalize().unwrap();
    config["rule_files"]
        .as_sequence_mut()
        .expect("rule_files")
        .push(Yaml::from(rules.display().to_string()));
    let prometheus = Prometheus::start(&serde_norway::to_string(&config).unwrap());
    let _traffic = Traffic::start(envoy.listener);
    let vars = Vars {
        service: SERVICE.into(),
        env: ENV.into(),
        rate_interval: "10s".into(),
        interval: "1s".into(),
    };
    let dash = example_dashboard();
    let start = Instant::now();
    loop {
        let mut problems = Vec::new();
        for query in dashboard::panel_queries(&dash) {
            problems.extend(panel_problems(
                &prometheus,
                &query,
                &vars.substitute(&query.expr),
            ));
        }
        for variable in dashboard::variable_queries(&dash) {
            let selector = vars.substitute(&variable.selector);
            match prometheus.label_values(&variable.label, &selector) {
                Ok(values) if !values.is_empty() => {}
                Ok(_) => problems.push(format!("variable {}: no values", variable.name)),
                Err(e) => problems.push(format!("variable {}: {e}", variable.name)),
            }
        }
        if problems.is_empty() {
            return;
        }
        if start.elapsed() > Duration::from_secs(30) {
            panic!(
                "after {:?}, the example dashboard is not lit up:\n{}\n\nPrometheus log:\n{}",
                start.elapsed(),
                problems.join("\n"),
                prometheus.log()
            );
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}
