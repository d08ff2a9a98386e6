//! Plugin configuration: parsed and validated once, when Envoy (or the host) configures the
//! plugin; the per-request path only reads the resulting [`Config`].

use std::fmt;
use std::time::Duration;

use serde::Deserialize;

use crate::catalog::{format_bound, DEFAULT_BUCKETS, INF_BOUND};
use crate::labels::{self, ModelBounds};
use crate::openapi::{self, Limits};
use crate::routes::{RouteId, RouteTable};
use crate::scanner::FieldSet;

pub const DEFAULT_SERVICE: &str = "prompter-api";
pub const DEFAULT_ENV: &str = "dev";
/// Environment variables read when the configuration has no `service` / `env` (as the seed).
pub const SERVICE_ENV_VAR: &str = "METRICS_SERVICE";
pub const ENV_ENV_VAR: &str = "METRICS_ENV";

pub const DEFAULT_ROUTES: [&str; 5] = [
    "/api/prompt-templates",
    "/api/prompt-templates/{template_id}",
    "/api/prompt-templates/{template_id}/ensure-version",
    "/api/prompt-templates/{template_id}/run",
    "/healthz",
];
const DEFAULT_PROBE_ROUTE: &str = "/api/prompt-templates/{template_id}/ensure-version";
const DEFAULT_RUN_ROUTE: &str = "/api/prompt-templates/{template_id}/run";
const DEFAULT_UNIQUE_ROUTE: &str = "/api/prompt-templates";
const DEFAULT_UNIQUE_TABLE: &str = "prompt_templates";
pub const DEFAULT_HEALTH_CLUSTER: &str = "prompter_api";
const DEFAULT_PROVIDERS: [&str; 3] = ["openai", "google", "anthropic"];

/// A configuration that cannot be used: which field, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub field: String,
    pub reason: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid plugin configuration: `{}`: {}",
            self.field, self.reason
        )
    }
}

impl std::error::Error for ConfigError {}

fn invalid(field: impl Into<String>, reason: impl Into<String>) -> ConfigError {
    ConfigError {
        field: field.into(),
        reason: reason.into(),
    }
}

// ---- the VM configuration: what the host can do ----------------------------------------

/// The VM configuration (`vm_config.configuration` in Envoy) of the wasmtime host, which
/// exports real histograms and whose host calls are cheap: the filter then also records each
/// duration, in nanoseconds, as a proxy-wasm histogram (Envoy would print its `le` in that
/// unit, so it is left off there), and sends every counter update at once.
pub const NATIVE_HISTOGRAMS_VM_CONFIG: &str =
    r#"{"native_histograms":true,"stats_flush_interval_ms":0}"#;

/// How often batched counter increments reach the host by default (Envoy's case).
pub const DEFAULT_STATS_FLUSH: Duration = Duration::from_secs(1);

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawVmOptions {
    native_histograms: Option<bool>,
    stats_flush_interval_ms: Option<u64>,
}

/// What the host told the filter about itself through the VM configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VmOptions {
    pub native_histograms: bool,
    /// Counter increments are kept in the VM and sent this often; zero sends each at once.
    pub stats_flush: Duration,
}

impl Default for VmOptions {
    fn default() -> Self {
        VmOptions {
            native_histograms: false,
            stats_flush: DEFAULT_STATS_FLUSH,
        }
    }
}

impl VmOptions {
    /// Empty means the defaults (Envoy's case).
    pub fn parse(json: &[u8]) -> Result<Self, ConfigError> {
        let raw: RawVmOptions = if json.iter().all(u8::is_ascii_whitespace) {
            RawVmOptions::default()
        } else {
            serde_json::from_slice(json)
                .map_err(|e| invalid("(vm configuration)", e.to_string()))?
        };
        let stats_flush = raw
            .stats_flush_interval_ms
            .map_or(DEFAULT_STATS_FLUSH, Duration::from_millis);
        if stats_flush > Duration::from_secs(60) {
            return Err(invalid(
                "stats_flush_interval_ms",
                "must be at most 60000 (0 sends each update at once)",
            ));
        }
        Ok(VmOptions {
            native_histograms: raw.native_histograms.unwrap_or(false),
            stats_flush,
        })
    }
}

// ---- the JSON as users write it ----------------------------------------------------------

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    service: Option<String>,
    env: Option<String>,
    routes: Option<Vec<String>>,
    probe: Option<RawEndpoint>,
    run: Option<RawEndpoint>,
    unique_violations: Option<Vec<RawUniqueViolation>>,
    fields: Option<RawFields>,
    providers: Option<Vec<String>>,
    fingerprint_provider: Option<String>,
    models: Option<RawModels>,
    health: Option<RawHealth>,
    openapi: Option<RawOpenApi>,
    buckets: Option<RawBuckets>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEndpoint {
    method: String,
    route: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawUniqueViolation {
    method: String,
    route: String,
    table: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFields {
    provider: Option<String>,
    model: Option<String>,
    system_fingerprint: Option<String>,
    redis: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawModels {
    max_length: Option<usize>,
    max_per_provider: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHealth {
    path: Option<String>,
    cluster: Option<String>,
    authority: Option<String>,
    interval_seconds: Option<u64>,
    timeout_ms: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOpenApi {
    enabled: Option<bool>,
    path: Option<String>,
    cluster: Option<String>,
    authority: Option<String>,
    interval_seconds: Option<u64>,
    timeout_ms: Option<u64>,
    max_bytes: Option<usize>,
    max_paths: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBuckets {
    request_seconds: Option<Vec<f64>>,
    ensure_version_seconds: Option<Vec<f64>>,
}

// ---- the validated configuration --------------------------------------------------------

/// A route that has a meaning for the metrics, with the method it is called with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub method: &'static str,
    pub route: RouteId,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UniqueViolation {
    pub endpoint: Endpoint,
    pub table: String,
}

/// Top-level JSON fields the filter reads, and their positions in each scanner's field set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BodyFields {
    /// provider, model
    pub request: FieldSet,
    /// provider, model, system_fingerprint
    pub response: FieldSet,
    /// redis
    pub health: FieldSet,
}

pub const FIELD_PROVIDER: usize = 0;
pub const FIELD_MODEL: usize = 1;
pub const FIELD_FINGERPRINT: usize = 2;
pub const FIELD_REDIS: usize = 0;

#[derive(Debug, Clone, PartialEq)]
pub struct HealthCheck {
    pub path: String,
    pub cluster: String,
    pub authority: String,
    /// Zero: the filter does not poll, it only reads health responses passing through.
    pub interval: Duration,
    pub timeout: Duration,
}

/// Where and how often the API's OpenAPI document is fetched to learn route templates.
#[derive(Debug, Clone, PartialEq)]
pub struct OpenApiFetch {
    pub path: String,
    pub cluster: String,
    pub authority: String,
    /// Zero: fetched until one document is learned, then never again.
    pub interval: Duration,
    pub timeout: Duration,
    pub limits: Limits,
}

/// Histogram bucket bounds in seconds, with their `le` label values (`+Inf` last).
#[derive(Debug, Clone, PartialEq)]
pub struct Buckets {
    pub bounds: Vec<f64>,
    pub labels: Vec<String>,
}

impl Buckets {
    fn new(field: &str, bounds: Vec<f64>) -> Result<Self, ConfigError> {
        if bounds.is_empty() {
            return Err(invalid(field, "needs at least one bound"));
        }
        if bounds.iter().any(|b| !b.is_finite() || *b <= 0.0) {
            return Err(invalid(
                field,
                "bounds must be finite numbers of seconds above 0 (`+Inf` is implied)",
            ));
        }
        if bounds.windows(2).any(|w| w[0] >= w[1]) {
            return Err(invalid(field, "bounds must be strictly increasing"));
        }
        let mut labels: Vec<String> = bounds.iter().map(|b| format_bound(*b)).collect();
        labels.push(INF_BOUND.to_string());
        Ok(Buckets { bounds, labels })
    }

    /// Index of the first bucket whose bound holds `seconds` (`bounds.len()` for `+Inf`).
    pub fn first_bucket(&self, seconds: f64) -> usize {
        self.bounds.partition_point(|b| *b < seconds)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub service: String,
    pub env: String,
    pub routes: RouteTable,
    pub probe: Endpoint,
    pub run: Endpoint,
    pub unique_violations: Vec<UniqueViolation>,
    pub fields: BodyFields,
    pub providers: Vec<String>,
    pub fingerprint_provider: String,
    pub models: ModelBounds,
    pub health: HealthCheck,
    /// `None`: routes come from `routes` only.
    pub openapi: Option<OpenApiFetch>,
    pub request_buckets: Buckets,
    pub ensure_version_buckets: Buckets,
    /// From the VM configuration ([`VmOptions`]), not the plugin configuration.
    pub native_histograms: bool,
}

impl Config {
    /// Parses the plugin configuration (empty means all defaults). `env_var` looks up the
    /// process environment (the VM's `environment_variables` in Envoy).
    pub fn parse(
        json: &[u8],
        env_var: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let raw: RawConfig = if json.iter().all(u8::is_ascii_whitespace) {
            RawConfig::default()
        } else {
            serde_json::from_slice(json).map_err(|e| invalid("(document)", e.to_string()))?
        };
        Self::validate(raw, env_var)
    }

    fn validate(
        raw: RawConfig,
        env_var: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let service = label_setting(
            "service",
            raw.service,
            SERVICE_ENV_VAR,
            &env_var,
            DEFAULT_SERVICE,
        )?;
        let env = label_setting("env", raw.env, ENV_ENV_VAR, &env_var, DEFAULT_ENV)?;

        let route_texts = raw
            .routes
            .unwrap_or_else(|| DEFAULT_ROUTES.iter().map(|s| s.to_string()).collect());
        let routes = RouteTable::new(&route_texts).map_err(|e| invalid("routes", e))?;

        let default_endpoint = |route: &str| RawEndpoint {
            method: "POST".into(),
            route: route.into(),
        };
        let probe = endpoint(
            &routes,
            "probe",
            raw.probe
                .unwrap_or_else(|| default_endpoint(DEFAULT_PROBE_ROUTE)),
        )?;
        let run = endpoint(
            &routes,
            "run",
            raw.run
                .unwrap_or_else(|| default_endpoint(DEFAULT_RUN_ROUTE)),
        )?;

        let unique_raw = raw.unique_violations.unwrap_or_else(|| {
            vec![RawUniqueViolation {
                method: "POST".into(),
                route: DEFAULT_UNIQUE_ROUTE.into(),
                table: DEFAULT_UNIQUE_TABLE.into(),
            }]
        });
        let mut unique_violations = Vec::with_capacity(unique_raw.len());
        for (i, u) in unique_raw.into_iter().enumerate() {
            let field = format!("unique_violations[{i}]");
            let table = clean_label(&format!("{field}.table"), u.table)?;
            let endpoint = endpoint(
                &routes,
                &field,
                RawEndpoint {
                    method: u.method,
                    route: u.route,
                },
            )?;
            unique_violations.push(UniqueViolation { endpoint, table });
        }

        let fields = body_fields(raw.fields.unwrap_or_default())?;

        let providers = raw
            .providers
            .unwrap_or_else(|| DEFAULT_PROVIDERS.iter().map(|s| s.to_string()).collect());
        for (i, p) in providers.iter().enumerate() {
            if !labels::is_clean(p) || p == labels::OTHER || p == labels::UNKNOWN {
                return Err(invalid(
                    format!("providers[{i}]"),
                    format!("`{p}` is not a usable label value (letters, digits, `_-.:`; not `other`/`unknown`)"),
                ));
            }
        }
        let fingerprint_provider = raw.fingerprint_provider.unwrap_or_else(|| "openai".into());
        if !providers.contains(&fingerprint_provider) {
            return Err(invalid(
                "fingerprint_provider",
                format!("`{fingerprint_provider}` is not in `providers`"),
            ));
        }

        let raw_models = raw.models.unwrap_or_default();
        let models = ModelBounds {
            max_length: raw_models.max_length.unwrap_or(64),
            max_per_provider: raw_models.max_per_provider.unwrap_or(50),
        };
        if !(1..=128).contains(&models.max_length) {
            return Err(invalid("models.max_length", "must be between 1 and 128"));
        }
        if !(1..=10_000).contains(&models.max_per_provider) {
            return Err(invalid(
                "models.max_per_provider",
                "must be between 1 and 10000",
            ));
        }

        let health = health_check(raw.health.unwrap_or_default())?;
        let openapi = openapi_fetch(raw.openapi.unwrap_or_default(), &health)?;
        let raw_buckets = raw.buckets.unwrap_or_default();
        let request_buckets = Buckets::new(
            "buckets.request_seconds",
            raw_buckets
                .request_seconds
                .unwrap_or_else(|| DEFAULT_BUCKETS.to_vec()),
        )?;
        let ensure_version_buckets = Buckets::new(
            "buckets.ensure_version_seconds",
            raw_buckets
                .ensure_version_seconds
                .unwrap_or_else(|| DEFAULT_BUCKETS.to_vec()),
        )?;

        Ok(Config {
            service,
            env,
            routes,
            probe,
            run,
            unique_violations,
            fields,
            providers,
            fingerprint_provider,
            models,
            health,
            openapi,
            request_buckets,
            ensure_version_buckets,
            native_histograms: false,
        })
    }

    /// The table whose unique constraint a 409 on this method and route reports, if any.
    pub fn unique_table(&self, method: &str, route: RouteId) -> Option<&str> {
        self.unique_violations
            .iter()
            .find(|u| u.endpoint.route == route && u.endpoint.method == method)
            .map(|u| u.table.as_str())
    }
}

fn label_setting(
    field: &str,
    configured: Option<String>,
    var: &str,
    env_var: &impl Fn(&str) -> Option<String>,
    default: &str,
) -> Result<String, ConfigError> {
    match configured {
        Some(value) => clean_label(field, value),
        None => match env_var(var).filter(|v| !v.is_empty()) {
            Some(value) => clean_label(&format!("{field} (from ${var})"), value),
            None => Ok(default.to_string()),
        },
    }
}

fn clean_label(field: &str, value: String) -> Result<String, ConfigError> {
    if value.len() > 128 || !labels::is_clean(&value) {
        return Err(invalid(
            field,
            format!(
                "`{value}` is not a usable label value (1-128 of letters, digits, `_-.:/{{}}+`)"
            ),
        ));
    }
    Ok(value)
}

fn endpoint(routes: &RouteTable, field: &str, raw: RawEndpoint) -> Result<Endpoint, ConfigError> {
    let method = labels::method(&raw.method);
    if method == labels::OTHER {
        return Err(invalid(
            format!("{field}.method"),
            format!("`{}` is not an HTTP method", raw.method),
        ));
    }
    let route = routes.id_of(&raw.route).ok_or_else(|| {
        invalid(
            format!("{field}.route"),
            format!("`{}` is not one of `routes`", raw.route),
        )
    })?;
    Ok(Endpoint { method, route })
}

fn body_fields(raw: RawFields) -> Result<BodyFields, ConfigError> {
    let provider = raw.provider.unwrap_or_else(|| "provider".into());
    let model = raw.model.unwrap_or_else(|| "model_id".into());
    let fingerprint = raw
        .system_fingerprint
        .unwrap_or_else(|| "system_fingerprint".into());
    let redis = raw.redis.unwrap_or_else(|| "redis".into());
    let set = |keys: &[&str]| FieldSet::new(keys).map_err(|e| invalid("fields", e));
    Ok(BodyFields {
        request: set(&[&provider, &model])?,
        response: set(&[&provider, &model, &fingerprint])?,
        health: set(&[&redis])?,
    })
}

/// A path the filter requests itself: starts with `/`, no query, nothing a header refuses.
fn request_path(field: &str, path: String) -> Result<String, ConfigError> {
    if !path.starts_with('/') || path.contains(['?', '#']) || path.bytes().any(|b| b <= b' ') {
        return Err(invalid(
            field,
            format!("`{path}` must be a path starting with `/`, without query"),
        ));
    }
    Ok(path)
}

fn health_check(raw: RawHealth) -> Result<HealthCheck, ConfigError> {
    let path = request_path("health.path", raw.path.unwrap_or_else(|| "/healthz".into()))?;
    let cluster = raw.cluster.unwrap_or_else(|| DEFAULT_HEALTH_CLUSTER.into());
    if cluster.is_empty() {
        return Err(invalid("health.cluster", "must not be empty"));
    }
    let authority = raw.authority.unwrap_or_else(|| DEFAULT_SERVICE.into());
    let interval = Duration::from_secs(raw.interval_seconds.unwrap_or(15));
    if interval > Duration::from_secs(86_400) {
        return Err(invalid(
            "health.interval_seconds",
            "must be at most 86400 (0 turns polling off)",
        ));
    }
    let timeout = Duration::from_millis(raw.timeout_ms.unwrap_or(2_000));
    if timeout.is_zero() || timeout > Duration::from_secs(60) {
        return Err(invalid("health.timeout_ms", "must be between 1 and 60000"));
    }
    Ok(HealthCheck {
        path,
        cluster,
        authority,
        interval,
        timeout,
    })
}

/// The OpenAPI fetch goes where the health check goes unless told otherwise.
fn openapi_fetch(
    raw: RawOpenApi,
    health: &HealthCheck,
) -> Result<Option<OpenApiFetch>, ConfigError> {
    let path = request_path(
        "openapi.path",
        raw.path.unwrap_or_else(|| "/openapi.json".into()),
    )?;
    let cluster = raw.cluster.unwrap_or_else(|| health.cluster.clone());
    if cluster.is_empty() {
        return Err(invalid("openapi.cluster", "must not be empty"));
    }
    let authority = raw.authority.unwrap_or_else(|| health.authority.clone());
    let interval = Duration::from_secs(raw.interval_seconds.unwrap_or(60));
    if interval > Duration::from_secs(86_400) {
        return Err(invalid(
            "openapi.interval_seconds",
            "must be at most 86400 (0 fetches until one document is learned)",
        ));
    }
    let timeout = Duration::from_millis(raw.timeout_ms.unwrap_or(5_000));
    if timeout.is_zero() || timeout > Duration::from_secs(60) {
        return Err(invalid("openapi.timeout_ms", "must be between 1 and 60000"));
    }
    let max_bytes = raw.max_bytes.unwrap_or(openapi::DEFAULT_MAX_BYTES);
    if !(1..=64 * 1024 * 1024).contains(&max_bytes) {
        return Err(invalid(
            "openapi.max_bytes",
            "must be between 1 and 67108864",
        ));
    }
    let max_paths = raw.max_paths.unwrap_or(openapi::DEFAULT_MAX_PATHS);
    if !(1..=10_000).contains(&max_paths) {
        return Err(invalid("openapi.max_paths", "must be between 1 and 10000"));
    }
    let fetch = OpenApiFetch {
        path,
        cluster,
        authority,
        interval,
        timeout,
        limits: Limits {
            max_bytes,
            max_paths,
        },
    };
    Ok(raw.enabled.unwrap_or(true).then_some(fetch))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn empty_configuration_means_the_documented_defaults() {
        let config = Config::parse(b"", no_env).unwrap();
        assert_eq!(config.service, "prompter-api");
        assert_eq!(config.env, "dev");
        assert_eq!(config.routes.len(), 5);
        assert_eq!(config.routes.template(config.run.route), DEFAULT_RUN_ROUTE);
        let create = config.routes.id_of("/api/prompt-templates").unwrap();
        assert_eq!(
            config.unique_table("POST", create),
            Some("prompt_templates")
        );
        assert_eq!(config.unique_table("GET", create), None);
        assert_eq!(config.request_buckets.labels.len(), 15);
        assert_eq!(config.health.interval, Duration::from_secs(15));
        let openapi = config.openapi.as_ref().unwrap();
        assert_eq!(
            (openapi.path.as_str(), openapi.cluster.as_str()),
            ("/openapi.json", "prompter_api")
        );
        assert_eq!(openapi.interval, Duration::from_secs(60));
        assert_eq!(openapi.limits, Limits::default());
        assert_eq!(Config::parse(b" {} ", no_env).unwrap(), config);
    }

    #[test]
    fn service_and_env_fall_back_to_the_environment() {
        let env = |k: &str| match k {
            "METRICS_SERVICE" => Some("svc-a".to_string()),
            "METRICS_ENV" => Some("prod".to_string()),
            _ => None,
        };
        let config = Config::parse(b"{}", env).unwrap();
        assert_eq!(
            (config.service.as_str(), config.env.as_str()),
            ("svc-a", "prod")
        );
        let config = Config::parse(br#"{"env":"staging"}"#, env).unwrap();
        assert_eq!(
            (config.service.as_str(), config.env.as_str()),
            ("svc-a", "staging")
        );
        let err = Config::parse(b"{}", |_| Some("bad;value".into())).unwrap_err();
        assert_eq!(err.field, "service (from $METRICS_SERVICE)");
    }

    #[test]
    fn broken_configurations_name_the_field_and_the_reason() {
        let cases: &[(&str, &str, &str)] = &[
            ("{", "(document)", "EOF"),
            (r#"{"servce":"x"}"#, "(document)", "unknown field `servce`"),
            (
                r#"{"service":"a b"}"#,
                "service",
                "not a usable label value",
            ),
            (r#"{"routes":["nope"]}"#, "routes", "start with"),
            (
                r#"{"run":{"method":"POST","route":"/x"}}"#,
                "run.route",
                "not one of `routes`",
            ),
            (
                r#"{"probe":{"method":"FETCH","route":"/healthz"}}"#,
                "probe.method",
                "not an HTTP method",
            ),
            (
                r#"{"unique_violations":[{"method":"POST","route":"/healthz","table":"a;b"}]}"#,
                "unique_violations[0].table",
                "usable",
            ),
            (
                r#"{"providers":["openai","other"]}"#,
                "providers[1]",
                "usable",
            ),
            (
                r#"{"providers":["google"]}"#,
                "fingerprint_provider",
                "not in `providers`",
            ),
            (r#"{"fields":{"model":"provider"}}"#, "fields", "twice"),
            (
                r#"{"buckets":{"request_seconds":[1,0.5]}}"#,
                "buckets.request_seconds",
                "increasing",
            ),
            (
                r#"{"buckets":{"ensure_version_seconds":[]}}"#,
                "buckets.ensure_version_seconds",
                "at least one",
            ),
            (
                r#"{"health":{"timeout_ms":0}}"#,
                "health.timeout_ms",
                "between",
            ),
            (
                r#"{"health":{"path":"healthz"}}"#,
                "health.path",
                "starting with",
            ),
            (
                r#"{"models":{"max_length":0}}"#,
                "models.max_length",
                "between",
            ),
            (
                r#"{"openapi":{"path":"/openapi.json?x=1"}}"#,
                "openapi.path",
                "without query",
            ),
            (r#"{"openapi":{"cluster":""}}"#, "openapi.cluster", "empty"),
            (
                r#"{"openapi":{"interval_seconds":86401}}"#,
                "openapi.interval_seconds",
                "at most",
            ),
            (
                r#"{"openapi":{"timeout_ms":0}}"#,
                "openapi.timeout_ms",
                "between",
            ),
            (
                r#"{"openapi":{"max_bytes":0}}"#,
                "openapi.max_bytes",
                "between",
            ),
            (
                r#"{"openapi":{"max_paths":10001}}"#,
                "openapi.max_paths",
                "between",
            ),
            (
                r#"{"openapi":{"enabled":false,"max_paths":0}}"#,
                "openapi.max_paths",
                "between",
            ),
            (
                r#"{"openapi":{"url":"/x"}}"#,
                "(document)",
                "unknown field `url`",
            ),
        ];
        for (json, field, reason) in cases {
            let err = Config::parse(json.as_bytes(), no_env).unwrap_err();
            assert_eq!(&err.field, field, "{json}: {err}");
            assert!(err.reason.contains(reason), "{json}: {err}");
            assert!(err.to_string().contains(field));
        }
    }

    #[test]
    fn the_vm_configuration_says_whether_the_host_takes_native_histograms() {
        assert_eq!(VmOptions::parse(b"").unwrap(), VmOptions::default());
        assert_eq!(VmOptions::default().stats_flush, Duration::from_secs(1));
        let host = VmOptions::parse(NATIVE_HISTOGRAMS_VM_CONFIG.as_bytes()).unwrap();
        assert!(host.native_histograms);
        assert_eq!(host.stats_flush, Duration::ZERO);
        let err = VmOptions::parse(br#"{"stats_flush_interval_ms":600000}"#).unwrap_err();
        assert_eq!(err.field, "stats_flush_interval_ms");
        let err = VmOptions::parse(br#"{"native":true}"#).unwrap_err();
        assert_eq!(err.field, "(vm configuration)");
        assert!(err.reason.contains("unknown field"));
    }

    #[test]
    fn the_openapi_fetch_follows_the_health_check_unless_told_and_can_be_off() {
        let config = Config::parse(
            br#"{"health":{"cluster":"api","authority":"api.local"},"openapi":{"path":"/docs/openapi.json","interval_seconds":0,"max_bytes":1024,"max_paths":5}}"#,
            no_env,
        )
        .unwrap();
        let openapi = config.openapi.unwrap();
        assert_eq!(
            (openapi.cluster.as_str(), openapi.authority.as_str()),
            ("api", "api.local")
        );
        assert_eq!(openapi.path, "/docs/openapi.json");
        assert!(openapi.interval.is_zero());
        assert_eq!(
            openapi.limits,
            Limits {
                max_bytes: 1024,
                max_paths: 5
            }
        );
        let config = Config::parse(br#"{"openapi":{"enabled":false}}"#, no_env).unwrap();
        assert_eq!(config.openapi, None);
    }

    #[test]
    fn buckets_find_the_first_bound_holding_a_value() {
        let config = Config::parse(b"", no_env).unwrap();
        let b = &config.request_buckets;
        assert_eq!(b.first_bucket(0.0), 0);
        assert_eq!(b.first_bucket(0.005), 0);
        assert_eq!(b.first_bucket(0.0051), 1);
        assert_eq!(b.first_bucket(10.0), 13);
        assert_eq!(b.first_bucket(11.0), 14);
        assert_eq!(b.labels[14], "+Inf");
    }
}
