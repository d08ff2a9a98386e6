//! The Envoy bootstrap that loads the filter: listener → wasm filter → router → the Prompter
//! API, an admin interface for `/stats/prometheus`, and the stats tags that turn our encoded
//! stat names into Prometheus labels (from the filter's catalog, never spelled here).

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
    pub wasm: String,
    /// The plugin configuration (JSON), written into the filter's `configuration`.
    pub plugin_config: String,
}

impl Bootstrap {
    /// The bootstrap as YAML. Refuses a plugin configuration the filter would refuse, one
    /// that calls a cluster the bootstrap does not have, and addresses Envoy cannot bind.
    pub fn render(&self) -> Result<String, String> {
        self.listen.bindable("listen")?;
        self.admin.bindable("admin")?;
        let config = Config::parse(self.plugin_config.as_bytes(), |_| None)
            .map_err(|e| format!("plugin configuration: {e}"))?;
        check_clusters(&config)?;
        let mut y = String::new();
        let command = format!(
            "cargo run -p prompter-host -- envoy-config --listen {} --upstream {} --admin {} --wasm {}",
            self.listen, self.upstream, self.admin, self.wasm
        );
        let _ = writeln!(
            y,
            "# Envoy bootstrap for the Prompter metrics filter, generated by:"
        );
        let _ = writeln!(y, "#   {command}");
        if self.plugin_config.trim() != "{}" {
            let _ = writeln!(
                y,
                "#   with --plugin-config (its JSON is the filter's `configuration` below)"
            );
        }
        let _ = writeln!(
            y,
            "# Check it with `envoy --mode validate -c <this file>`; run it with `envoy -c <this file>`"
        );
        let _ = writeln!(
            y,
            "# (a relative module path is opened from Envoy's working directory)."
        );
        let _ = writeln!(y, "admin:");
        let _ = writeln!(y, "  address:");
        socket_address(&mut y, 4, &self.admin);
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
          - name: envoy.filters.http.wasm
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
            cluster = DEFAULT_HEALTH_CLUSTER,
            timeout = UPSTREAM_TIMEOUT.as_secs(),
        ));
        for line in self.plugin_config.trim().lines() {
            let _ = writeln!(y, "                    {line}");
        }
        y.push_str(&format!(
            r#"                vm_config:
                  vm_id: prompter_metrics
                  runtime: envoy.wasm.runtime.v8
                  code:
                    local:
                      filename: {wasm}
                  environment_variables:
                    host_env_keys: [{service_var}, {env_var}]
          - name: envoy.filters.http.router
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
            wasm = self.wasm,
            service_var = SERVICE_ENV_VAR,
            env_var = ENV_ENV_VAR,
            cluster = DEFAULT_HEALTH_CLUSTER,
            discovery = if self.upstream.is_ip() {
                "STATIC"
            } else {
                "STRICT_DNS"
            },
        ));
        socket_address(&mut y, 14, &self.upstream);
        y.push_str(&stats_config());
        Ok(y)
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

/// `stats_config` with one anchored tag regex per catalog label key.
pub fn stats_config() -> String {
    let mut y = String::from(
        "stats_config:\n  # Cut the labels the filter encodes in its stat names (`key=.=value;.;`) back out.\n  stats_tags:\n",
    );
    for (key, regex) in stat_name::envoy_stats_tags() {
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
            wasm: DEFAULT_WASM.to_string(),
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
}
