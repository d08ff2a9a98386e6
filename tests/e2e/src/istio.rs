//! Istio, as far as it runs without a cluster: the manifests of `envoy/istio/` read the way
//! Istio reads them, and real Envoy started with a bootstrap shaped like an Istio sidecar's.
//!
//! What is reproduced, from istio/istio:
//! - `tools/packaging/common/envoy_bootstrap.json`: `stats_config` — `use_all_default_tags:
//!   false`; one `({tag}=\.=(.*?);\.;)` regex per extraStatTag (the tag pasted in unescaped);
//!   Istio's built-in tag regexes that can match anywhere in a name (`cache`, `component`,
//!   `tag`, `wasm_filter`); the `inclusion_list` stats matcher (`reporter=`, the prefixes,
//!   suffixes and regexps, each regexp through Go's `js` escaping, `component`, `istio`).
//! - `pkg/bootstrap/config.go` (`getStatsOptions`): extraStatTags and `proxyStatsMatcher` from
//!   the pod's `proxy.istio.io/config`, plus the inclusions Istio always adds.
//! - `pkg/envoy/proxy.go` (`args`): the `sidecar.istio.io/bootstrapOverride` file, converted
//!   to JSON, is passed to Envoy as `--config-yaml` (merged: repeated fields appended).
//! - `pilot/pkg/model/extensions.go`: the WasmPlugin as an `envoy.filters.http.wasm` filter —
//!   plugin name `namespace.name`, `root_id` = pluginName, `configuration` = pluginConfig as
//!   a JSON `StringValue`, V8, no `vm_id`, vmConfig.env as `key_values` (INLINE) and
//!   `host_env_keys` (HOST).
//!
//! Not reproduced: xDS (the filter is inline here, not delivered by ECDS), mTLS, Istio's own
//! filters (authn, authz, istio.stats: upstream Envoy does not have them), iptables capture.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;

use prompter_filter::catalog::label;
use serde_json::{json, Value as Json};
use serde_norway::Value as Yaml;

use crate::envoy::{Envoy, EnvoyOptions, Launch};
use crate::{free_port, repo_root, scrape};

/// Where the manifests live, relative to the repository root.
pub const DIR: &str = "envoy/istio";
/// The API's container port, as Istio's inbound and outbound cluster names carry it.
pub const APP_PORT: u16 = 8000;
/// The Service name of the API in the manifests.
pub const SERVICE: &str = "prompter-api";

/// Inclusion prefixes Istio always adds (`requiredEnvoyStatsMatcherInclusionPrefixes`).
/// Note `wasm`: every `wasmcustom.` stat is included whatever the pod asks for.
pub const ISTIO_REQUIRED_PREFIXES: [&str; 5] = [
    "cluster_manager",
    "listener_manager",
    "server",
    "cluster.xds-grpc",
    "wasm",
];
const ISTIO_REQUIRED_SUFFIXES: [&str; 4] = [
    "rbac.allowed",
    "rbac.denied",
    "shadow_allowed",
    "shadow_denied",
];
const ISTIO_REQUIRED_REGEXPS: [&str; 1] = [r"vhost\.*\.route\.*"];

/// One YAML document of `envoy/istio/`.
pub fn manifest(file: &str) -> Yaml {
    let path = repo_root().join(DIR).join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_norway::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A YAML value as JSON (what Kubernetes and Istio turn it into).
pub fn to_json(yaml: &Yaml) -> Json {
    serde_json::to_value(yaml).expect("YAML maps to JSON")
}

fn field<'a>(json: &'a Json, path: &str) -> &'a Json {
    path.split('.')
        .try_fold(json, |v, k| v.get(k))
        .unwrap_or_else(|| panic!("`{path}` missing in {json}"))
}

fn string(json: &Json, path: &str) -> String {
    field(json, path)
        .as_str()
        .unwrap_or_else(|| panic!("`{path}` is not a string"))
        .to_string()
}

fn strings(json: Option<&Json>) -> Vec<String> {
    json.and_then(Json::as_array)
        .map(|a| {
            a.iter()
                .map(|v| v.as_str().expect("a list of strings").to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// `envoy/istio/wasmplugin.yaml`, as Istio turns it into filter configuration.
#[derive(Debug, Clone)]
pub struct WasmPlugin {
    pub manifest: Json,
    pub name: String,
    pub namespace: String,
    pub plugin_name: String,
    /// `pluginConfig` as the JSON string the filter receives.
    pub configuration: String,
    /// vmConfig.env entries with a value (INLINE, the default).
    pub key_values: BTreeMap<String, String>,
    /// vmConfig.env entries read from the sidecar's environment (`valueFrom: HOST`).
    pub host_env_keys: Vec<String>,
}

impl WasmPlugin {
    pub fn load() -> WasmPlugin {
        let manifest = to_json(&manifest("wasmplugin.yaml"));
        let spec = field(&manifest, "spec");
        let configuration = spec
            .get("pluginConfig")
            .map(|c| serde_json::to_string(c).unwrap())
            .unwrap_or_default();
        let mut key_values = BTreeMap::new();
        let mut host_env_keys = Vec::new();
        for env in spec
            .pointer("/vmConfig/env")
            .and_then(Json::as_array)
            .into_iter()
            .flatten()
        {
            let name = string(env, "name");
            match env.get("valueFrom").and_then(Json::as_str) {
                Some("HOST") => host_env_keys.push(name),
                None | Some("INLINE") => {
                    let value = env.get("value").and_then(Json::as_str).unwrap_or("");
                    key_values.insert(name, value.to_string());
                }
                Some(other) => panic!("vmConfig.env valueFrom `{other}`"),
            }
        }
        WasmPlugin {
            name: string(&manifest, "metadata.name"),
            namespace: string(&manifest, "metadata.namespace"),
            plugin_name: spec
                .get("pluginName")
                .and_then(Json::as_str)
                .unwrap_or("")
                .to_string(),
            configuration,
            key_values,
            host_env_keys,
            manifest,
        }
    }

    /// The HTTP filter Istio configures for this plugin, the module already pulled to `wasm`.
    pub fn http_filter(&self, wasm: &Path) -> Json {
        let name = format!("{}.{}", self.namespace, self.name);
        let mut key_values = self.key_values.clone();
        key_values.insert("ISTIO_META_WASM_PLUGIN_RESOURCE_VERSION".into(), "1".into());
        let fail_open = self.manifest.pointer("/spec/failStrategy") == Some(&json!("FAIL_OPEN"));
        json!({
            "name": name,
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm",
                "config": {
                    "name": name,
                    "root_id": self.plugin_name,
                    "configuration": {
                        "@type": "type.googleapis.com/google.protobuf.StringValue",
                        "value": self.configuration,
                    },
                    "failure_policy": if fail_open { "FAIL_OPEN" } else { "FAIL_CLOSED" },
                    "vm_config": {
                        "runtime": "envoy.wasm.runtime.v8",
                        "code": { "local": { "filename": wasm.display().to_string() } },
                        "environment_variables": {
                            "key_values": key_values,
                            "host_env_keys": self.host_env_keys,
                        },
                    },
                },
            },
        })
    }

    /// Istio's name for the outbound cluster of the API's Service.
    pub fn outbound_cluster(&self) -> String {
        format!(
            "outbound|{APP_PORT}||{SERVICE}.{}.svc.cluster.local",
            self.namespace
        )
    }
}

/// The pod annotations of `envoy/istio/deployment-patch.yaml`.
pub fn pod_annotations() -> Json {
    let patch = to_json(&manifest("deployment-patch.yaml"));
    field(&patch, "spec.template.metadata.annotations").clone()
}

/// The parts of the pod's `proxy.istio.io/config` the bootstrap is made from.
#[derive(Debug, Clone, Default)]
pub struct ProxyConfig {
    pub extra_stat_tags: Vec<String>,
    pub inclusion_prefixes: Vec<String>,
    pub inclusion_suffixes: Vec<String>,
    pub inclusion_regexps: Vec<String>,
    /// Environment variables of the sidecar.
    pub proxy_metadata: BTreeMap<String, String>,
}

impl ProxyConfig {
    pub fn load() -> ProxyConfig {
        let annotations = pod_annotations();
        let text = annotations
            .get("proxy.istio.io/config")
            .and_then(Json::as_str)
            .expect("annotation proxy.istio.io/config");
        ProxyConfig::parse(text)
    }

    pub fn parse(text: &str) -> ProxyConfig {
        let config = to_json(&serde_norway::from_str(text).expect("proxy.istio.io/config is YAML"));
        let matcher = config.get("proxyStatsMatcher");
        let metadata = config
            .get("proxyMetadata")
            .and_then(Json::as_object)
            .map(|m| {
                m.iter()
                    .map(|(k, v)| (k.clone(), v.as_str().expect("string").to_string()))
                    .collect()
            })
            .unwrap_or_default();
        ProxyConfig {
            extra_stat_tags: strings(config.get("extraStatTags")),
            inclusion_prefixes: strings(matcher.and_then(|m| m.get("inclusionPrefixes"))),
            inclusion_suffixes: strings(matcher.and_then(|m| m.get("inclusionSuffixes"))),
            inclusion_regexps: strings(matcher.and_then(|m| m.get("inclusionRegexps"))),
            proxy_metadata: metadata,
        }
    }
}

/// The ConfigMap `sidecar.istio.io/bootstrapOverride` names: (name, `custom_bootstrap.json`).
pub fn bootstrap_override() -> (String, String) {
    let map = to_json(&manifest("bootstrap-override.yaml"));
    (
        string(&map, "metadata.name"),
        field(&map, "data")
            .get("custom_bootstrap.json")
            .and_then(Json::as_str)
            .expect("data.custom_bootstrap.json (the key Istio mounts)")
            .to_string(),
    )
}

/// Go's `text/template` `js` function, which Istio's template applies to inclusion regexps.
pub fn go_js_escape(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        match c {
            '\\' => out.push_str(r"\\"),
            '\'' => out.push_str(r"\'"),
            '"' => out.push_str(r#"\""#),
            '<' => out.push_str(r"\u003C"),
            '>' => out.push_str(r"\u003E"),
            '&' => out.push_str(r"\u0026"),
            '=' => out.push_str(r"\u003D"),
            c if (c as u32) < 0x20 => out.push_str(&format!(r"\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

/// `stats_config` as Istio's bootstrap template renders it for `proxy` (the text the template
/// writes, parsed as JSON: a tag or regexp the template would break shows up here).
pub fn istio_stats_config(proxy: &ProxyConfig, required_prefixes: &[String]) -> Json {
    let mut tags = String::new();
    for tag in &proxy.extra_stat_tags {
        tags.push_str(&format!(
            "{{\"regex\": \"({tag}=\\\\.=(.*?);\\\\.;)\", \"tag_name\": \"{tag}\"}},"
        ));
    }
    let mut patterns = String::from(r#"{"prefix": "reporter="},"#);
    let prefixes = proxy
        .inclusion_prefixes
        .iter()
        .chain(required_prefixes)
        .map(String::as_str);
    for p in prefixes {
        patterns.push_str(&format!("{{\"prefix\": \"{p}\"}},"));
    }
    let suffixes = proxy
        .inclusion_suffixes
        .iter()
        .map(String::as_str)
        .chain(ISTIO_REQUIRED_SUFFIXES);
    for s in suffixes {
        patterns.push_str(&format!("{{\"suffix\": \"{s}\"}},"));
    }
    let regexps = proxy
        .inclusion_regexps
        .iter()
        .map(String::as_str)
        .chain(ISTIO_REQUIRED_REGEXPS);
    for r in regexps {
        patterns.push_str(&format!(
            "{{\"safe_regex\": {{\"regex\":\"{}\"}}}},",
            go_js_escape(r)
        ));
    }
    let text = format!(
        r#"{{
  "use_all_default_tags": false,
  "stats_tags": [
    {tags}
    {{"regex": "(cache\\.(.+?)\\.)", "tag_name": "cache"}},
    {{"regex": "(component\\.(.+?)\\.)", "tag_name": "component"}},
    {{"regex": "(tag\\.(.+?);\\.)", "tag_name": "tag"}},
    {{"regex": "(wasm_filter\\.(.+?)\\.)", "tag_name": "wasm_filter"}}
  ],
  "stats_matcher": {{"inclusion_list": {{"patterns": [
    {patterns}
    {{"prefix": "component"}},
    {{"prefix": "istio"}}
  ]}}}}
}}"#
    );
    serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("Istio's template would break: {e}\n{text}"))
}

/// A sidecar-shaped Envoy: the inbound listener with the WasmPlugin's filter in front of the
/// API (`inbound|8000||`), the API's outbound cluster for the health poll, Istio's stats config.
#[derive(Debug, Clone)]
pub struct Sidecar {
    pub plugin: WasmPlugin,
    pub proxy: ProxyConfig,
    /// `custom_bootstrap.json` of the bootstrap override, if the pod names one.
    pub bootstrap_override: Option<String>,
    /// The module as istio-agent hands it to Envoy after pulling the image.
    pub wasm: std::path::PathBuf,
    /// The inclusion prefixes Istio adds on its own ([`ISTIO_REQUIRED_PREFIXES`]).
    pub required_prefixes: Vec<String>,
}

impl Sidecar {
    /// The manifests of `envoy/istio/` as they are.
    pub fn from_manifests(wasm: &Path) -> Sidecar {
        let annotations = pod_annotations();
        let override_name = annotations
            .get("sidecar.istio.io/bootstrapOverride")
            .and_then(Json::as_str);
        let (map_name, json) = bootstrap_override();
        let bootstrap_override = override_name.map(|name| {
            assert_eq!(name, map_name, "the annotation names the ConfigMap");
            json
        });
        Sidecar {
            plugin: WasmPlugin::load(),
            proxy: ProxyConfig::load(),
            bootstrap_override,
            wasm: wasm.to_path_buf(),
            required_prefixes: ISTIO_REQUIRED_PREFIXES.map(String::from).to_vec(),
        }
    }

    pub fn bootstrap(&self, listener: SocketAddr, admin: SocketAddr, app: SocketAddr) -> Json {
        let cluster = |name: &str| {
            json!({
                "name": name,
                "type": "STATIC",
                "connect_timeout": "1s",
                "load_assignment": {
                    "cluster_name": name,
                    "endpoints": [{"lb_endpoints": [{"endpoint": {"address": socket(app)}}]}],
                },
            })
        };
        let inbound = format!("inbound|{APP_PORT}||");
        json!({
            "node": {
                "id": format!("sidecar~127.0.0.1~{SERVICE}-0.{ns}~{ns}.svc.cluster.local", ns = self.plugin.namespace),
                "cluster": format!("{SERVICE}.{}", self.plugin.namespace),
            },
            "stats_config": istio_stats_config(&self.proxy, &self.required_prefixes),
            "admin": { "address": socket(admin) },
            "static_resources": {
                "listeners": [{
                    "name": format!("0.0.0.0_{APP_PORT}"),
                    "address": socket(listener),
                    "filter_chains": [{"filters": [{
                        "name": "envoy.filters.network.http_connection_manager",
                        "typed_config": {
                            "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                            "stat_prefix": format!("inbound_0.0.0.0_{APP_PORT}"),
                            "route_config": {
                                "name": "inbound|http|8000",
                                "virtual_hosts": [{
                                    "name": "inbound|http|8000",
                                    "domains": ["*"],
                                    "routes": [{
                                        "match": {"prefix": "/"},
                                        "route": {"cluster": inbound, "timeout": "120s"},
                                    }],
                                }],
                            },
                            "http_filters": [
                                self.plugin.http_filter(&self.wasm),
                                {
                                    "name": "envoy.filters.http.router",
                                    "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"},
                                },
                            ],
                        },
                    }]}],
                }],
                "clusters": [cluster(&inbound), cluster(&self.plugin.outbound_cluster())],
            },
        })
    }

    /// Starts the sidecar in front of `app` and waits until it serves.
    pub fn start(&self, app: SocketAddr) -> Envoy {
        let listener: SocketAddr = ([127, 0, 0, 1], free_port()).into();
        let admin: SocketAddr = ([127, 0, 0, 1], free_port()).into();
        let bootstrap = self.bootstrap(listener, admin, app);
        let mut args = Vec::new();
        if let Some(custom) = &self.bootstrap_override {
            // pilot-agent reads the file (YAML or JSON) and passes it on as JSON.
            let json: Json = serde_json::from_str(custom).expect("custom_bootstrap.json is JSON");
            args.push("--config-yaml".to_string());
            args.push(json.to_string());
        }
        let mut options = EnvoyOptions::new(app, "");
        options.env = self
            .proxy
            .proxy_metadata
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        Envoy::start_bootstrap(
            &Launch {
                bootstrap: serde_json::to_string_pretty(&bootstrap).unwrap(),
                listener,
                admin,
                args,
            },
            &options,
        )
    }
}

fn socket(addr: SocketAddr) -> Json {
    json!({"socket_address": {"address": addr.ip().to_string(), "port_value": addr.port()}})
}

// ---- what the manifests must say, derived from the catalog ----------------------------------

/// Label keys Istio's unanchored `(key=\.=(.*?);\.;)` form can carry: those that are not the
/// tail of another key (`le` is the tail of `table`).
pub fn istio_safe_tag_keys() -> Vec<&'static str> {
    label::ALL
        .iter()
        .copied()
        .filter(|key| {
            !label::ALL
                .iter()
                .any(|other| other != key && other.ends_with(key))
        })
        .collect()
}

/// The `stats_tags` the bootstrap override must carry: an anchored regex for each key
/// extraStatTags cannot carry.
pub fn override_stats_tags() -> Json {
    let tags: Vec<Json> = label::ALL
        .iter()
        .filter(|key| !istio_safe_tag_keys().contains(key))
        .map(|key| {
            json!({"tag_name": key, "regex": prompter_filter::stat_name::envoy_tag_regex(key)})
        })
        .collect();
    Json::Array(tags)
}

/// The stats inclusion regex for the filter's exported series.
pub fn inclusion_regex() -> String {
    format!(
        r"^wasmcustom\.(?:[^;]*;\.;)*(?:{})$",
        scrape::catalog_series_names().join("|")
    )
}
