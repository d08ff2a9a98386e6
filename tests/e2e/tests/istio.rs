//! The Istio manifests of `envoy/istio/`: applied the way Istio applies them to real Envoy
//! shaped like a sidecar, the same series as our own bootstrap gives; the `le`/`table`
//! collision shown without the bootstrap override; the manifests
//! against the published CRD schemas and the catalog; the OCI image Istio pulls.

use std::collections::HashSet;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use prompter_e2e::client::{self, post};
use prompter_e2e::envoy::{self, Envoy};
use prompter_e2e::istio::{self, Sidecar, WasmPlugin};
use prompter_e2e::scenario::{self, assert_histograms_consistent, Expected, CREATE};
use prompter_e2e::scrape::{self, Series};
use prompter_e2e::{oci, repo_root};
use prompter_filter::catalog::{label, Metric, MetricKind, BUCKET_SUFFIX, SUM_SUFFIX};
use prompter_filter::config::Buckets;
use serde_json::{json, Value as Json};

fn temp_dir(name: &str) -> PathBuf {
    let dir =
        std::env::temp_dir().join(format!("prompter-e2e-istio-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The series `drive` expects (service `prompter-api`, env `dev`) with another `env`.
fn with_env(series: Series, env: &str) -> Series {
    let from = format!("{}=\"dev\"", label::ENV);
    let to = format!("{}=\"{env}\"", label::ENV);
    Series(
        series
            .0
            .into_iter()
            .map(|(k, v)| (k.replace(&from, &to), v))
            .collect(),
    )
}

/// The sample lines of `/stats/prometheus` whose name is one of the filter's series names,
/// or a `_sum` of its histograms.
fn filter_lines(text: &str) -> Vec<String> {
    let mut names = scrape::catalog_series_names();
    for m in Metric::ALL
        .iter()
        .filter(|m| m.kind() == MetricKind::Histogram)
    {
        names.push(format!("{}{SUM_SUFFIX}", m.name()));
    }
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| {
            let name = &l[..l.find(['{', ' ']).unwrap_or(l.len())];
            names.iter().any(|n| n == name)
        })
        .map(str::to_string)
        .collect()
}

fn series_key(line: &str) -> &str {
    &line[..line.rfind(' ').unwrap()]
}

/// Two requests: a template created, then the same again (409: a unique violation).
fn create_twice(at: std::net::SocketAddr, name: &str) {
    let template = format!(r#"{{"name":"{name}","body":"x"}}"#);
    assert_eq!(post(at, CREATE, &template).status, 201);
    assert_eq!(post(at, CREATE, &template).status, 409);
}

#[test]
fn the_manifests_in_a_sidecar_shaped_envoy_give_every_series_of_the_in_app_module() {
    // The module as the sidecar gets it: out of the image scripts/publish-oci builds.
    let dir = temp_dir("sidecar");
    let layout = dir.join("layout");
    oci::build_layout(&layout);
    let wasm = oci::extract_plugin(&layout, &dir);
    assert!(std::fs::read(&wasm).unwrap() == std::fs::read(envoy::wasm_module()).unwrap());

    let sidecar = Sidecar::from_manifests(&wasm);
    let service = sidecar.plugin.key_values["METRICS_SERVICE"].clone();
    let env = sidecar.proxy.proxy_metadata["METRICS_ENV"].clone();
    assert_eq!(
        service, "prompter-api",
        "the scripted traffic expects this service"
    );
    let sample = prompter_sample_api::spawn("127.0.0.1:0".parse().unwrap()).unwrap();
    let envoy = sidecar.start(sample.addr);
    let labels = [
        (label::SERVICE, service.as_str()),
        (label::ENV, env.as_str()),
    ];

    // The health poll reaches the API through the outbound cluster the pluginConfig names.
    scrape::envoy_until(envoy.admin, Duration::from_secs(10), |s| {
        s.get(Metric::RedisUp.name(), &labels) == Some(1.0)
    });
    let expected = with_env(scenario::drive(envoy.listener, sample.api()).series(), &env);
    let scraped = scrape::envoy_until_equal(envoy.admin, &expected);
    assert_histograms_consistent(&scraped);

    // `table` and `le` come out whole, side by side.
    let mut unique = labels.to_vec();
    unique.push((label::TABLE, "prompt_templates"));
    assert_eq!(
        scraped.get(Metric::UniqueViolations.name(), &unique),
        Some(1.0)
    );
    let bucket = |le: &str| {
        let mut l = labels.to_vec();
        l.extend([(label::PROVIDER, "openai"), (label::LE, le)]);
        let name = format!("{}{BUCKET_SUFFIX}", Metric::EnsureVersionSeconds.name());
        scraped.get(&name, &l)
    };
    assert_eq!(bucket("0.25"), Some(0.0));
    assert_eq!(bucket("0.5"), Some(1.0));

    // Every line under our names is one series, once; buckets in seconds only; no `_sum`.
    let text = client::get(envoy.admin, "/stats/prometheus").text();
    let lines = filter_lines(&text);
    let unique_keys: HashSet<&str> = lines.iter().map(|l| series_key(l)).collect();
    assert_eq!(unique_keys.len(), lines.len(), "a series printed twice");
    let bounds = Buckets::default().labels;
    for line in &lines {
        assert!(!line.contains(&format!("{SUM_SUFFIX}{{")), "{line}");
        if let Some(at) = line.find(",le=\"") {
            let le = &line[at + 5..];
            let le = &le[..le.find('"').unwrap()];
            assert!(bounds.iter().any(|b| b == le), "bound {le} in {line}");
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn without_the_override_le_mangles_table() {
    let sample = prompter_sample_api::spawn("127.0.0.1:0".parse().unwrap()).unwrap();
    let wasm = envoy::wasm_module();

    // Istio's unanchored `le`, no override: what extraStatTags alone would give.
    let mut plain = Sidecar::from_manifests(&wasm);
    plain.proxy.extra_stat_tags.push(label::LE.into());
    plain.bootstrap_override = None;
    // The override applied, but `le` in extraStatTags as well: Envoy runs both regexes.
    let mut both = Sidecar::from_manifests(&wasm);
    both.proxy.extra_stat_tags.push(label::LE.into());
    // The manifests as they are, without the `wasm` prefix Istio always includes: the
    // inclusion regex of proxy.istio.io/config alone decides (in Envoy's RE2).
    let mut inclusion_only = Sidecar::from_manifests(&wasm);
    inclusion_only.required_prefixes.retain(|p| p != "wasm");

    let envoys: Vec<Envoy> = std::thread::scope(|s| {
        let starts: Vec<_> = [&plain, &both, &inclusion_only]
            .into_iter()
            .map(|sidecar| s.spawn(|| sidecar.start(sample.addr)))
            .collect();
        starts.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (i, envoy) in envoys.iter().enumerate() {
        create_twice(envoy.listener, &format!("dup-{i}"));
    }

    let service = plain.plugin.key_values["METRICS_SERVICE"].clone();
    let env = plain.proxy.proxy_metadata["METRICS_ENV"].clone();
    let mut want = Expected::new(&service, &env);
    want.request("POST", CREATE, 201);
    want.request("POST", CREATE, 409);
    want.count(
        Metric::UniqueViolations,
        &[(label::TABLE, "prompt_templates")],
    );
    want.set(Metric::RedisUp, 1.0);
    let expected = want.series();

    let mangled = {
        let mut l = vec![
            (label::SERVICE, service.as_str()),
            (label::ENV, env.as_str()),
            (label::TABLE, "prompt_templates"),
        ];
        l.push((label::LE, "prompt_templates"));
        scrape::key(Metric::UniqueViolations.name(), &l)
    };
    for envoy in &envoys[..2] {
        let scraped = scrape::envoy_until(envoy.admin, Duration::from_secs(10), |s| {
            s.named(Metric::UniqueViolations.name()).count() == 1
        });
        let (key, _) = scraped
            .named(Metric::UniqueViolations.name())
            .next()
            .unwrap();
        assert_eq!(
            key, &mangled,
            "`le` cut out of `table=.=prompt_templates;.;`"
        );
    }

    // Inclusion regex alone: exactly the filter's series.
    let scraped = scrape::envoy_until_equal(envoys[2].admin, &expected);
    assert_histograms_consistent(&scraped);
    let text = client::get(envoys[2].admin, "/stats/prometheus").text();
    assert!(!text.contains("envoy_wasmcustom_"), "{text}");
}

#[test]
fn the_manifests_say_what_the_catalog_and_the_filter_need() {
    let plugin = WasmPlugin::load();
    let spec = &plugin.manifest["spec"];
    assert_eq!(
        spec["selector"]["matchLabels"],
        json!({"app": "prompter-api"})
    );
    assert_eq!(spec["phase"], "STATS");
    assert_eq!(spec["type"], "HTTP");
    assert_eq!(spec["match"], json!([{"mode": "SERVER"}]));
    assert_eq!(spec["failStrategy"], "FAIL_OPEN");
    assert!(spec["url"].as_str().unwrap().starts_with("oci://"));
    // Filled in by `scripts/publish-oci --wasmplugin` (see the last test).
    assert_eq!(spec["sha256"], "");

    // The configuration is one the filter accepts, with the environment the sidecar gives it.
    let proxy = istio::ProxyConfig::load();
    let env = |name: &str| -> Option<String> {
        plugin.key_values.get(name).cloned().or_else(|| {
            plugin
                .host_env_keys
                .iter()
                .any(|k| k == name)
                .then(|| proxy.proxy_metadata.get(name).cloned())
                .flatten()
        })
    };
    for var in [
        prompter_filter::config::SERVICE_ENV_VAR,
        prompter_filter::config::ENV_ENV_VAR,
    ] {
        assert!(env(var).is_some(), "{var} reaches the VM");
    }
    let config = prompter_filter::config::Config::parse(plugin.configuration.as_bytes(), env)
        .unwrap_or_else(|e| panic!("pluginConfig: {e}"));
    assert_eq!(config.health.cluster, plugin.outbound_cluster());

    // Every label key is extracted: Istio's form for the safe ones, the override for the rest.
    assert_eq!(proxy.extra_stat_tags, istio::istio_safe_tag_keys());
    let (_, custom) = istio::bootstrap_override();
    let custom: Json = serde_json::from_str(&custom).unwrap();
    assert_eq!(
        custom,
        json!({"stats_config": {"stats_tags": istio::override_stats_tags()}})
    );
    let mut covered: Vec<String> = proxy.extra_stat_tags.clone();
    for tag in istio::override_stats_tags().as_array().unwrap() {
        covered.push(tag["tag_name"].as_str().unwrap().to_string());
    }
    for key in label::ALL {
        assert_eq!(covered.iter().filter(|c| *c == key).count(), 1, "{key}");
    }
    // The inclusion regex is the catalog's, and survives Istio's template (Go `js` escaping).
    assert_eq!(proxy.inclusion_regexps, vec![istio::inclusion_regex()]);
    let rendered = istio::istio_stats_config(&proxy, &[]);
    assert!(rendered["stats_matcher"]["inclusion_list"]["patterns"]
        .as_array()
        .unwrap()
        .contains(&json!({"safe_regex": {"regex": istio::inclusion_regex()}})));

    // The pods name the override; everything lives in the WasmPlugin's namespace.
    let annotations = istio::pod_annotations();
    let (map_name, _) = istio::bootstrap_override();
    assert_eq!(
        annotations["sidecar.istio.io/bootstrapOverride"],
        json!(map_name)
    );
    for file in ["bootstrap-override.yaml", "podmonitor.yaml"] {
        let doc = istio::to_json(&istio::manifest(file));
        assert_eq!(
            doc["metadata"]["namespace"],
            json!(plugin.namespace),
            "{file}"
        );
    }
    let monitor = istio::to_json(&istio::manifest("podmonitor.yaml"));
    assert_eq!(monitor["spec"]["selector"], spec["selector"]);
    let endpoint = &monitor["spec"]["podMetricsEndpoints"][0];
    assert_eq!(endpoint["port"], "http-envoy-prom");
    assert_eq!(endpoint["path"], "/stats/prometheus");
}

/// The series names the PodMonitor keeps must be all of ours (Prometheus anchors the regex).
#[test]
fn the_pod_monitor_keeps_every_series_of_the_filter() {
    let monitor = istio::to_json(&istio::manifest("podmonitor.yaml"));
    let keep = &monitor["spec"]["podMetricsEndpoints"][0]["metricRelabelings"][0];
    assert_eq!(keep["action"], "keep");
    assert_eq!(keep["sourceLabels"], json!(["__name__"]));
    assert_eq!(keep["regex"], "(starlette|prompter)_.*");
    for name in scrape::catalog_series_names() {
        assert!(
            name.starts_with("starlette_") || name.starts_with("prompter_"),
            "{name}"
        );
    }
}

#[test]
fn the_manifests_validate_against_the_published_crd_schemas() {
    let modules = repo_root().join(".tools/k8s-schemas/node_modules");
    assert!(
        modules.join("@kubernetes-models/istio").exists(),
        "{} missing: run scripts/install-deps all",
        modules.display()
    );
    let mut docs: Vec<Json> = [
        "wasmplugin.yaml",
        "bootstrap-override.yaml",
        "podmonitor.yaml",
    ]
    .iter()
    .map(|f| istio::to_json(&istio::manifest(f)))
    .collect();
    // The patch, applied to the smallest Deployment it can patch.
    let mut deployment = json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "prompter-api"},
        "spec": {
            "selector": {"matchLabels": {"app": "prompter-api"}},
            "template": {
                "metadata": {"labels": {"app": "prompter-api"}},
                "spec": {"containers": [{"name": "api", "image": "prompter-api"}]},
            },
        },
    });
    deployment["spec"]["template"]["metadata"]["annotations"] = istio::pod_annotations();
    docs.push(deployment);
    // And the WasmPlugin publish-oci renders.
    docs.push(istio::to_json(
        &serde_norway::from_str(&oci::publish(&[
            "--layout",
            temp_dir("schemas").join("layout").to_str().unwrap(),
            "--wasmplugin",
            repo_root()
                .join("envoy/istio/wasmplugin.yaml")
                .to_str()
                .unwrap(),
        ]))
        .unwrap(),
    ));

    let mut node = Command::new("node")
        .arg(repo_root().join("tests/e2e/schemas/validate.mjs"))
        .arg(&modules)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("node (scripts/install-deps all)");
    std::io::Write::write_all(
        node.stdin.as_mut().unwrap(),
        serde_json::to_string(&docs).unwrap().as_bytes(),
    )
    .unwrap();
    drop(node.stdin.take());
    let out = node.wait_with_output().unwrap();
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{report}");
    assert_eq!(
        report.lines().filter(|l| l.starts_with("valid ")).count(),
        docs.len(),
        "{report}"
    );
}

#[test]
fn the_published_image_is_the_filter_under_the_digest_the_wasmplugin_names() {
    let dir = temp_dir("oci");
    let first = oci::build_layout(&dir.join("a"));
    let second = oci::build_layout(&dir.join("b"));
    assert_eq!(first, second, "the image is reproducible");
    let (digest, manifest) = oci::manifest(&dir.join("a"));
    assert_eq!(digest, first, "the printed digest is the manifest's");
    assert_eq!(manifest["mediaType"], oci::MANIFEST_TYPE);
    assert_eq!(manifest["layers"].as_array().unwrap().len(), 1);
    let wasm = oci::extract_plugin(&dir.join("a"), &dir);
    assert!(std::fs::read(wasm).unwrap() == std::fs::read(envoy::wasm_module()).unwrap());

    // Through a real registry: pushed, pulled back, same digest and module.
    let registry = oci::Registry::start().expect("docker-registry (scripts/install-deps all)");
    let reference = format!("{}/prompter/prompter-filter:e2e", registry.addr);
    let rendered = oci::publish(&[
        "--layout",
        dir.join("push").to_str().unwrap(),
        "--push",
        &reference,
        "--plain-http",
        "--wasmplugin",
        repo_root()
            .join("envoy/istio/wasmplugin.yaml")
            .to_str()
            .unwrap(),
    ]);
    let plugin = istio::to_json(&serde_norway::from_str(&rendered).unwrap());
    assert_eq!(plugin["spec"]["url"], json!(format!("oci://{reference}")));
    assert_eq!(plugin["spec"]["sha256"], json!(first));

    let pulled = dir.join("pulled");
    let status = Command::new("skopeo")
        .args(["copy", "--src-tls-verify=false", "--preserve-digests"])
        .arg(format!("docker://{reference}"))
        .arg(format!("oci:{}:e2e", pulled.display()))
        .stdout(Stdio::null())
        .status()
        .expect("skopeo (scripts/install-deps all)");
    assert!(status.success());
    let (pulled_digest, _) = oci::manifest(&pulled);
    assert_eq!(
        pulled_digest, first,
        "the registry serves the manifest Istio checks"
    );
    let out = dir.join("out");
    std::fs::create_dir_all(&out).unwrap();
    let wasm = oci::extract_plugin(&pulled, &out);
    assert!(std::fs::read(wasm).unwrap() == std::fs::read(envoy::wasm_module()).unwrap());
    let _ = std::fs::remove_dir_all(&dir);
}
