//! The Envoy bootstrap that loads the filter: listener → filter → router → the Prompter API,
//! and an admin interface for `/stats/prometheus`. The filter is the Wasm module, with the
//! stats tags that turn its encoded stat names into Prometheus labels (from the filter's
//! catalog, never spelled here), or the native dynamic module, whose metrics have real labels
//! and need only the runtime flag that prints them without Envoy's prefixes, or none at all:
//! bare Envoy, the baseline the benchmarks measure the filter against.

use std::fmt::{self, Write as _};
use std::net::IpAddr;
use std::str::FromStr;
use std::time::Duration;

use prompter_filter::config::{Config, DEFAULT_HEALTH_CLUSTER, ENV_ENV_VAR, SERVICE_ENV_VAR};
use prompter_filter::stat_name;

/// Where the filter as shipped lands (`scripts/build-wasm`: cargo's release build through
/// wasm-opt), relative to the repository root.
pub const DEFAULT_WASM: &str = "target/wasm/prompter_filter.wasm";

/// How long an upstream may take to answer before the proxy answers 504 itself: the route
/// timeout of the generated bootstrap, and the host proxy's default, so that a slow run is
/// the same 200 (or the same 504) behind either.
pub const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(120);

/// Where `scripts/build-native` puts the native module, relative to the repository root.
pub const DEFAULT_NATIVE: &str = "target/native/libprompter_filter.so";

/// The runtime flag under which Envoy prints a dynamic module's metrics under their own names
/// (its metrics namespace registered as a custom stat namespace): no `envoy_` prefix, no
/// `dynamicmodulescustom_`.
pub const STRIP_CUSTOM_STAT_PREFIX: &str =
    "envoy.reloadable_features.dynamic_modules_strip_custom_stat_prefix";

/// Which build of the filter the bootstrap loads, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FilterModule {
    /// The proxy-wasm module (`--wasm PATH`), run in Envoy's V8.
    Wasm(String),
    /// The native dynamic module (`--dynamic-module PATH`): Envoy loads `lib<name>.so` by name
    /// from the directory in `ENVOY_DYNAMIC_MODULES_SEARCH_PATH`.
    Native(String),
    /// No filter of ours (`--no-filter`): the router alone, bare Envoy as the benchmarks
    /// measure it, so that what the filter costs is the difference to the same bootstrap.
    Bare,
}

impl FilterModule {
    /// The native module's directory (Envoy's search path) and name (`lib<name>.so`).
    pub fn native_search(path: &str) -> Result<(String, String), String> {
        let path = std::path::Path::new(path);
        let file = path
            .file_name()
            .and_then(|f| f.to_str())
            .unwrap_or_default();
        let name = file
            .strip_prefix("lib")
            .and_then(|f| f.strip_suffix(".so"))
            .filter(|n| !n.is_empty())
            .ok_or_else(|| {
                format!(
                    "--dynamic-module: `{}` is not a file named lib<name>.so, which is how Envoy finds a module",
                    path.display()
                )
            })?;
        let dir = match path.parent().map(|d| d.display().to_string()) {
            Some(d) if !d.is_empty() => d,
            _ => ".".to_string(),
        };
        Ok((dir, name.to_string()))
    }
}

/// A `host:port` pair; the host may be an IP address or a DNS name. `http://host:port`
/// (with or without a trailing `/`) is read as `host:port`, as `prompter-host proxy`
/// takes its upstream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub host: String,
    pub port: u16,
}

impl FromStr for Endpoint {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let address = match s.split_once("://") {
            Some(("http", rest)) => rest.strip_suffix('/').unwrap_or(rest),
            Some((scheme, _)) => {
                return Err(format!(
                    "`{s}`: only plain http upstreams are supported, not {scheme}://"
                ))
            }
            None => s,
        };
        if address.contains('/') {
            return Err(format!("`{s}` is not HOST:PORT (no path)"));
        }
        let (host, port) = address
            .rsplit_once(':')
            .ok_or_else(|| format!("`{s}` is not HOST:PORT"))?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let valid_host = !host.is_empty()
            && host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':'));
        if !valid_host {
            return Err(format!("`{host}` is not a host name or IP address"));
        }
        let port = port
            .parse::<u16>()
            .map_err(|_| format!("`{port}` is not a port number"))?;
        Ok(Endpoint {
            host: host.to_string(),
            port,
        })
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.host, self.port)
    }
}

impl Endpoint {
    fn is_ip(&self) -> bool {
        self.host.parse::<IpAddr>().is_ok()
    }

    /// Envoy binds listeners and its admin interface to IP addresses only.
    fn bindable(&self, flag: &str) -> Result<(), String> {
        if self.is_ip() {
            Ok(())
        } else {
            Err(format!(
                "--{flag} {self}: Envoy listens on an IP address (e.g. 127.0.0.1 or 0.0.0.0), not a host name"
            ))
        }
    }
}

/// Refuses a plugin configuration whose health poll or OpenAPI fetch goes to another cluster
/// than the one upstream the bootstrap (and the host proxy) has: every call would fail, and
/// `prompter_redis_up` would read 0 on a healthy Redis.
pub fn check_clusters(config: &Config) -> Result<(), String> {
    let fetch = config
        .openapi
        .as_ref()
        .map(|o| ("openapi.cluster", &o.cluster));
    for (field, cluster) in [("health.cluster", &config.health.cluster)]
        .into_iter()
        .chain(fetch)
    {
        if cluster != DEFAULT_HEALTH_CLUSTER {
            return Err(format!(
                "plugin configuration: `{field}` is `{cluster}`, but the only cluster is `{DEFAULT_HEALTH_CLUSTER}` (the upstream)"
            ));
        }
    }
    Ok(())
}

#[derive(Debug, Clone)]
pub struct Bootstrap {
    pub listen: Endpoint,
    pub upstream: Endpoint,
    pub admin: Endpoint,
    pub module: FilterModule,
    /// The plugin configuration (JSON), written into the filter's configuration; unread with
    /// `FilterModule::Bare`, which has no filter.
    pub plugin_config: String,
}

impl Bootstrap {
    /// The bootstrap as YAML. Refuses a plugin configuration the filter would refuse, one
    /// that calls a cluster the bootstrap does not have, and addresses Envoy cannot bind.
    pub fn render(&self) -> Result<String, String> {
        self.listen.bindable("listen")?;
        self.admin.bindable("admin")?;
        // Bare Envoy has no filter to read a plugin configuration: nothing to check.
        let config = match &self.module {
            FilterModule::Bare => None,
            FilterModule::Wasm(_) | FilterModule::Native(_) => {
                let config = Config::parse(self.plugin_config.as_bytes(), |_| None)
                    .map_err(|e| format!("plugin configuration: {e}"))?;
                check_clusters(&config)?;
                Some(config)
            }
        };
        let native = match &self.module {
            FilterModule::Native(path) => Some(FilterModule::native_search(path)?),
            FilterModule::Wasm(_) | FilterModule::Bare => None,
        };
        let mut y = String::new();
        self.header(&mut y, native.as_ref().map(|(dir, _)| dir.as_str()));
        let _ = writeln!(y, "admin:");
        let _ = writeln!(y, "  address:");
        socket_address(&mut y, 4, &self.admin);
        if native.is_some() {
            let _ = write!(
                y,
                "layered_runtime:\n  layers:\n  - name: static\n    static_layer:\n      # The module's metrics under their own names (no `envoy_`, no `dynamicmodulescustom_`).\n      {STRIP_CUSTOM_STAT_PREFIX}: true\n"
            );
        }
        y.push_str("static_resources:\n  listeners:\n  - name: prompter_api\n    address:\n");
        socket_address(&mut y, 6, &self.listen);
        y.push_str(&format!(
            r#"    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: prompter_api
          route_config:
            name: prompter_api
            virtual_hosts:
            - name: prompter_api
              domains: ["*"]
              routes:
              - match: {{ prefix: "/" }}
                route: {{ cluster: {cluster}, timeout: {timeout}s }}
          http_filters:
"#,
            cluster = DEFAULT_HEALTH_CLUSTER,
            timeout = UPSTREAM_TIMEOUT.as_secs(),
        ));
        match (&self.module, &native) {
            (FilterModule::Wasm(wasm), _) => self.wasm_filter(&mut y, wasm),
            (FilterModule::Native(_), Some((_, name))) => self.native_filter(&mut y, name),
            (FilterModule::Native(_), None) => unreachable!("checked above"),
            // Bare Envoy: the router below is the whole chain.
            (FilterModule::Bare, _) => {}
        }
        y.push_str(&format!(
            r#"          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
  clusters:
  - name: {cluster}
    type: {discovery}
    connect_timeout: 1s
    load_assignment:
      cluster_name: {cluster}
      endpoints:
      - lb_endpoints:
        - endpoint:
            address:
"#,
            cluster = DEFAULT_HEALTH_CLUSTER,
            discovery = if self.upstream.is_ip() {
                "STATIC"
            } else {
                "STRICT_DNS"
            },
        ));
        socket_address(&mut y, 14, &self.upstream);
        // Only the Wasm filter encodes labels in stat names; the native module's are real.
        if let (FilterModule::Wasm(_), Some(config)) = (&self.module, &config) {
            y.push_str(&stats_config(config));
        }
        Ok(y)
    }

    /// The comment on top: the command that prints this bootstrap, and how to run it.
    fn header(&self, y: &mut String, search_path: Option<&str>) {
        let (what, filter) = match &self.module {
            FilterModule::Wasm(path) => {
                ("for the Prompter metrics filter", format!("--wasm {path}"))
            }
            FilterModule::Native(path) => (
                "for the Prompter metrics filter",
                format!("--dynamic-module {path}"),
            ),
            FilterModule::Bare => (
                "without the Prompter metrics filter (bare Envoy: only the router)",
                "--no-filter".to_string(),
            ),
        };
        let _ = writeln!(y, "# Envoy bootstrap {what}, generated by:");
        let _ = writeln!(
            y,
            "#   cargo run -p prompter-host -- envoy-config --listen {} --upstream {} --admin {} {filter}",
            self.listen, self.upstream, self.admin
        );
        if self.module != FilterModule::Bare && self.plugin_config.trim() != "{}" {
            let _ = writeln!(
                y,
                "#   with --plugin-config (its JSON is the filter's `configuration` below)"
            );
        }
        let run = match search_path {
            None => "envoy -c <this file>".to_string(),
            Some(dir) => format!("ENVOY_DYNAMIC_MODULES_SEARCH_PATH={dir} envoy -c <this file>"),
        };
        let _ = writeln!(
            y,
            "# Check it with `envoy --mode validate -c <this file>`; run it with `{run}`"
        );
        if self.module != FilterModule::Bare {
            let _ = writeln!(
                y,
                "# (a relative module path is opened from Envoy's working directory)."
            );
        }
    }

    fn plugin_config_lines(&self, y: &mut String, indent: usize) {
        let pad = " ".repeat(indent);
        for line in self.plugin_config.trim().lines() {
            let _ = writeln!(y, "{pad}{line}");
        }
    }

    fn wasm_filter(&self, y: &mut String, wasm: &str) {
        y.push_str(
            r#"          - name: envoy.filters.http.wasm
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm
              config:
                name: prompter_metrics
                root_id: prompter_metrics
                # Traffic keeps flowing, unmeasured, if the filter fails while running (its
                # VM crashes). A module that cannot be loaded, or a configuration the filter
                # refuses, stops Envoy from starting: `envoy --mode validate` shows it.
                failure_policy: FAIL_OPEN
                configuration:
                  "@type": type.googleapis.com/google.protobuf.StringValue
                  value: |
"#,
        );
        self.plugin_config_lines(y, 20);
        y.push_str(&format!(
            r#"                vm_config:
                  vm_id: prompter_metrics
                  runtime: envoy.wasm.runtime.v8
                  code:
                    local:
                      filename: {wasm}
                  environment_variables:
                    host_env_keys: [{service_var}, {env_var}]
"#,
            service_var = SERVICE_ENV_VAR,
            env_var = ENV_ENV_VAR,
        ));
    }

    fn native_filter(&self, y: &mut String, name: &str) {
        y.push_str(&format!(
            r#"          - name: envoy.filters.http.dynamic_modules
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.dynamic_modules.v3.DynamicModuleFilter
              # lib{name}.so in $ENVOY_DYNAMIC_MODULES_SEARCH_PATH; it reads {service_var} and
              # {env_var} from Envoy's environment.
              dynamic_module_config:
                name: {name}
              filter_name: prompter_metrics
              filter_config:
                "@type": type.googleapis.com/google.protobuf.StringValue
                value: |
"#,
            service_var = SERVICE_ENV_VAR,
            env_var = ENV_ENV_VAR,
        ));
        self.plugin_config_lines(y, 18);
    }
}

fn socket_address(y: &mut String, indent: usize, endpoint: &Endpoint) {
    let pad = " ".repeat(indent);
    let _ = writeln!(
        y,
        "{pad}socket_address: {{ address: {}, port_value: {} }}",
        endpoint.host, endpoint.port
    );
}

/// `stats_config` with one anchored tag regex per label key: the catalog's, then those the
/// plugin configuration's declared metrics add.
pub fn stats_config(config: &Config) -> String {
    let mut y = String::from(
        "stats_config:\n  # Cut the labels the filter encodes in its stat names (`key=.=value;.;`) back out.\n  stats_tags:\n",
    );
    for (key, regex) in stat_name::envoy_stats_tags_with(&config.declared_label_keys()) {
        let _ = writeln!(y, "  - tag_name: {key}");
        let _ = writeln!(y, "    regex: '{regex}'");
    }
    y
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bootstrap() -> Bootstrap {
        Bootstrap {
            listen: "127.0.0.1:10000".parse().unwrap(),
            upstream: "127.0.0.1:8000".parse().unwrap(),
            admin: "127.0.0.1:9901".parse().unwrap(),
            module: FilterModule::Wasm(DEFAULT_WASM.to_string()),
            plugin_config: "{}".to_string(),
        }
    }

    /// The checked-in bootstrap is exactly what the command prints.
    #[test]
    fn checked_in_bootstrap_is_current() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../envoy/envoy.yaml");
        let checked_in = std::fs::read_to_string(path).unwrap();
        let generated = bootstrap().render().unwrap();
        assert!(
            checked_in == generated,
            "envoy/envoy.yaml is stale: run `cargo run -p prompter-host -- envoy-config > envoy/envoy.yaml`"
        );
    }

    #[test]
    fn endpoints_are_checked() {
        assert_eq!(
            "api.internal:8000".parse::<Endpoint>().unwrap().to_string(),
            "api.internal:8000"
        );
        assert!("8000".parse::<Endpoint>().is_err());
        assert!("host:port".parse::<Endpoint>().is_err());
        assert!("a b:1".parse::<Endpoint>().is_err());
        // As `prompter-host proxy --upstream` takes it.
        for with_scheme in ["http://api.internal:8000", "http://api.internal:8000/"] {
            assert_eq!(
                with_scheme.parse::<Endpoint>().unwrap().to_string(),
                "api.internal:8000"
            );
        }
        let tls = "https://api:443".parse::<Endpoint>().unwrap_err();
        assert!(tls.contains("only plain http"), "{tls}");
        assert!("http://api:8000/v1".parse::<Endpoint>().is_err());
    }

    #[test]
    fn envoy_binds_ip_addresses_only() {
        let mut b = bootstrap();
        b.listen = "localhost:10000".parse().unwrap();
        let refused = b.render().unwrap_err();
        assert!(refused.contains("--listen localhost:10000"), "{refused}");
        assert!(refused.contains("IP address"), "{refused}");
        let mut b = bootstrap();
        b.admin = "localhost:9901".parse().unwrap();
        assert!(b.render().unwrap_err().contains("--admin"));
        b.admin = "[::1]:9901".parse().unwrap();
        assert!(b.render().is_ok());
    }

    #[test]
    fn hostnames_use_dns_discovery_and_bad_plugin_configs_are_refused() {
        let mut b = bootstrap();
        b.upstream = "prompter-api:8000".parse().unwrap();
        assert!(b.render().unwrap().contains("type: STRICT_DNS"));
        b.plugin_config = r#"{"routes": ["x"]}"#.to_string();
        assert!(b.render().unwrap_err().contains("`routes`"));
        b.plugin_config = r#"{"health": {"cluster": "elsewhere"}}"#.to_string();
        assert!(b
            .render()
            .unwrap_err()
            .contains("`health.cluster` is `elsewhere`"));
        b.plugin_config = r#"{"openapi": {"cluster": "elsewhere"}}"#.to_string();
        assert!(b
            .render()
            .unwrap_err()
            .contains("`openapi.cluster` is `elsewhere`"));
        b.plugin_config = r#"{"openapi": {"enabled": false, "cluster": "elsewhere"}}"#.to_string();
        assert!(b.render().is_ok(), "a fetch that is off calls no cluster");
    }

    #[test]
    fn the_native_module_is_loaded_by_name_with_the_prefix_stripping_flag() {
        let mut b = bootstrap();
        b.module = FilterModule::Native(DEFAULT_NATIVE.to_string());
        let yaml = b.render().unwrap();
        assert!(yaml.contains("ENVOY_DYNAMIC_MODULES_SEARCH_PATH=target/native envoy -c"));
        assert!(yaml.contains("name: prompter_filter\n"));
        assert!(yaml.contains(&format!("{STRIP_CUSTOM_STAT_PREFIX}: true")));
        assert!(yaml.contains("--dynamic-module target/native/libprompter_filter.so"));
        assert!(!yaml.contains("envoy.filters.http.wasm"));
        assert!(
            !yaml.contains("stats_tags"),
            "labels are real: no tags to cut out"
        );
        // The same plugin configuration checks, with the same messages.
        b.plugin_config = r#"{"routes": ["x"]}"#.to_string();
        assert!(b.render().unwrap_err().contains("`routes`"));
        b.plugin_config = r#"{"health": {"cluster": "elsewhere"}}"#.to_string();
        assert!(b.render().unwrap_err().contains("health.cluster"));
        b.plugin_config = "{}".to_string();
        b.module = FilterModule::Native("target/native/prompter_filter.wasm".into());
        assert!(b.render().unwrap_err().contains("lib<name>.so"));
        assert_eq!(
            FilterModule::native_search("libx.so").unwrap(),
            (".".to_string(), "x".to_string())
        );
    }

    #[test]
    fn the_bare_bootstrap_is_the_wasm_one_without_the_filter() {
        let with_filter = bootstrap().render().unwrap();
        let mut b = bootstrap();
        b.module = FilterModule::Bare;
        // No filter reads a plugin configuration: it is neither checked nor written.
        b.plugin_config = r#"{"health": {"cluster": "elsewhere"}}"#.to_string();
        let bare = b.render().unwrap();
        assert!(bare.contains("- name: envoy.filters.http.router"));
        for ours in [
            "envoy.filters.http.wasm",
            "dynamic_modules",
            "stats_tags",
            "elsewhere",
            STRIP_CUSTOM_STAT_PREFIX,
        ] {
            assert!(!bare.contains(ours), "{ours} in\n{bare}");
        }
        let command = "--admin 127.0.0.1:9901 --no-filter\n";
        assert!(bare.contains(command), "{bare}");
        // Everything else as with the filter: the Wasm bootstrap without its comments, its
        // filter entry (which scripts/bench-load used to cut out with awk) and the stats tags
        // only the filter's stat names need.
        let mut in_filter = false;
        let expected: Vec<&str> = with_filter
            .lines()
            .take_while(|line| *line != "stats_config:")
            .filter(|line| {
                if line.contains("- name: envoy.filters.http.") {
                    in_filter = line.ends_with(".wasm");
                }
                !in_filter && !line.starts_with('#')
            })
            .collect();
        let uncommented: Vec<&str> = bare.lines().filter(|l| !l.starts_with('#')).collect();
        assert_eq!(uncommented, expected);
    }
}
