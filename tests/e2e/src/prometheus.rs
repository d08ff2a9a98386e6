//! Real Prometheus and promtool (Debian's `prometheus` package, installed by
//! `scripts/install-deps`): a Prometheus of the test's own on a free loopback port with a
//! temporary data directory, configured from the shipped `dashboards/scrape/static.yml`
//! with its targets replaced, and stopped when the fixture is dropped.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use serde_norway::Value as Yaml;

use crate::{client, dashboard, free_port};

/// `name` from `$PROMPTER_<NAME>`, else from `PATH`.
fn binary(name: &str) -> PathBuf {
    let var = format!("PROMPTER_{}", name.to_ascii_uppercase());
    if let Some(path) = std::env::var_os(&var) {
        return PathBuf::from(path);
    }
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!("{name} not found (nor ${var}): run scripts/install-deps all, which installs Debian's prometheus package")
        })
}

/// Runs promtool; `Err` carries its output when it fails.
pub fn promtool(args: &[&str], cwd: &Path) -> Result<String, String> {
    let output = Command::new(binary("promtool"))
        .args(args)
        .current_dir(cwd)
        .output()
        .expect("promtool runs");
    let text = format!(
        "promtool {}\n{}{}",
        args.join(" "),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    if output.status.success() {
        Ok(text)
    } else {
        Err(text)
    }
}

/// One scrape target: a job of `dashboards/scrape/static.yml` and the address to scrape.
#[derive(Debug, Clone)]
pub struct Target {
    pub job: String,
    pub addr: SocketAddr,
}

impl Target {
    pub fn new(job: &str, addr: SocketAddr) -> Self {
        Target {
            job: job.to_string(),
            addr,
        }
    }
}

/// The shipped static configuration with every interval at 1 s, the rule files by absolute
/// path, and each job's targets replaced by the given ones (jobs without one are dropped).
pub fn static_config(targets: &[Target]) -> String {
    let mut config = dashboard::yaml("scrape/static.yml");
    let global = &mut config["global"];
    for key in ["scrape_interval", "scrape_timeout", "evaluation_interval"] {
        global[key] = Yaml::from("1s");
    }
    let rule_files: Vec<Yaml> = config["rule_files"]
        .as_sequence()
        .expect("static.yml has rule_files")
        .iter()
        .map(|f| {
            let path = dashboard::dir().join("scrape").join(f.as_str().unwrap());
            Yaml::from(path.canonicalize().unwrap().display().to_string())
        })
        .collect();
    config["rule_files"] = Yaml::Sequence(rule_files);
    let jobs = config["scrape_configs"]
        .as_sequence_mut()
        .expect("static.yml has scrape_configs");
    for target in targets {
        assert!(
            jobs.iter()
                .any(|j| j["job_name"].as_str() == Some(&target.job)),
            "no job {:?} in dashboards/scrape/static.yml",
            target.job
        );
    }
    jobs.retain(|job| {
        targets
            .iter()
            .any(|t| job["job_name"].as_str() == Some(&t.job))
    });
    for job in jobs.iter_mut() {
        let addrs: Vec<Yaml> = targets
            .iter()
            .filter(|t| job["job_name"].as_str() == Some(&t.job))
            .map(|t| Yaml::from(t.addr.to_string()))
            .collect();
        let mut static_config = serde_norway::Mapping::new();
        static_config.insert("targets".into(), Yaml::Sequence(addrs));
        job["static_configs"] = Yaml::Sequence(vec![Yaml::Mapping(static_config)]);
    }
    serde_norway::to_string(&config).unwrap()
}

/// One series of an instant query's answer.
#[derive(Debug, Clone)]
pub struct Sample {
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

pub struct Prometheus {
    pub addr: SocketAddr,
    child: Child,
    dir: PathBuf,
}

impl Prometheus {
    /// Starts Prometheus with `config` (YAML) and waits until it is ready.
    pub fn start(config: &str) -> Prometheus {
        let addr: SocketAddr = ([127, 0, 0, 1], free_port()).into();
        let dir = std::env::temp_dir().join(format!(
            "prompter-e2e-prometheus-{}-{}",
            std::process::id(),
            addr.port()
        ));
        std::fs::create_dir_all(dir.join("data")).unwrap();
        std::fs::write(dir.join("prometheus.yml"), config).unwrap();
        promtool(&["check", "config", "prometheus.yml"], &dir)
            .unwrap_or_else(|e| panic!("the test's Prometheus configuration:\n{e}\n{config}"));
        let log = std::fs::File::create(dir.join("prometheus.log")).unwrap();
        let child = Command::new(binary("prometheus"))
            .arg(format!(
                "--config.file={}",
                dir.join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .arg("--log.level=warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("Prometheus starts");
        let mut prometheus = Prometheus { addr, child, dir };
        prometheus.wait_ready();
        prometheus
    }

    fn wait_ready(&mut self) {
        let start = Instant::now();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("Prometheus exited ({status}):\n{}", self.log());
            }
            if client::try_get(self.addr, "/-/ready").is_ok_and(|r| r.status == 200) {
                return;
            }
            if start.elapsed() > Duration::from_secs(30) {
                panic!("Prometheus not ready after 30 s:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("prometheus.log")).unwrap_or_default()
    }

    /// `GET /api/v1/<path>?<params>`: the `data` of a successful answer, else the error.
    pub fn api(&self, path: &str, params: &[(&str, &str)]) -> Result<Value, String> {
        let query: Vec<String> = params
            .iter()
            .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
            .collect();
        let uri = format!("/api/v1/{path}?{}", query.join("&"));
        let response = client::try_get(self.addr, &uri).map_err(|e| format!("GET {uri}: {e}"))?;
        let body: Value = serde_json::from_slice(&response.body)
            .map_err(|e| format!("GET {uri}: {e}: {}", response.text()))?;
        if body["status"] != "success" {
            return Err(format!(
                "{}: {}",
                body["errorType"].as_str().unwrap_or("error"),
                body["error"].as_str().unwrap_or(&response.text())
            ));
        }
        Ok(body["data"].clone())
    }

    /// An instant query at the current time.
    pub fn query(&self, expr: &str) -> Result<Vec<Sample>, String> {
        let data = self.api("query", &[("query", expr)])?;
        if data["resultType"] != "vector" {
            return Err(format!("a vector expected, got {}", data["resultType"]));
        }
        let result = data["result"].as_array().cloned().unwrap_or_default();
        Ok(result
            .iter()
            .map(|series| Sample {
                labels: series["metric"]
                    .as_object()
                    .into_iter()
                    .flatten()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                    .collect(),
                // Prometheus writes values as strings, `NaN` and `+Inf` included.
                value: series["value"][1]
                    .as_str()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(f64::NAN),
            })
            .collect())
    }

    /// The values of `label` on the series `selector` matches.
    pub fn label_values(&self, label: &str, selector: &str) -> Result<Vec<String>, String> {
        let data = self.api(&format!("label/{label}/values"), &[("match[]", selector)])?;
        Ok(data
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect())
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Percent-encodes a query parameter (everything but RFC 3986's unreserved characters).
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
