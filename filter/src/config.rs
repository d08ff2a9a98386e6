//! Plugin configuration: parsed and validated once, when Envoy (or the host) configures the
//! plugin; the per-request path only reads the resulting [`Config`].

use std::fmt;
use std::time::Duration;

use crate::catalog::{format_bound, Metric, MetricKind, DEFAULT_BUCKETS, INF_BOUND};
use crate::config_json::Fields;
use crate::declared::Declared;
use crate::events::MetricId;
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

/// The error for `field`. Both texts may quote what the configuration said, so control
/// characters in them are written as escapes (`\0`, `\r`, `\u{1b}`): the message goes to a log
/// line, where a raw NUL or newline would cut or forge it.
pub(crate) fn invalid(field: impl Into<String>, reason: impl Into<String>) -> ConfigError {
    ConfigError {
        field: printable(field.into()),
        reason: printable(reason.into()),
    }
}

fn printable(text: String) -> String {
    if !text.chars().any(char::is_control) {
        return text;
    }
    text.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_debug().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
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

/// The name of one plugin configuration's state shared between VMs (the health poll's
/// lease, the learned routes): a VM may serve several plugins (listeners sharing a `vm_id`),
/// each polling and learning its own API, so the state is scoped by the configuration's
/// bytes (FNV-1a, 64 bits, in hex): every worker's VM of one plugin names the same state,
/// and two plugins configured alike share it, rightly.
pub fn shared_state_scope(raw: &[u8]) -> String {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0100_0000_01b3;
    let hash = raw
        .iter()
        .fold(OFFSET, |h, b| (h ^ u64::from(*b)).wrapping_mul(PRIME));
    format!("{hash:016x}")
}

/// What errors call the plugin configuration and the VM configuration as a whole.
pub const DOCUMENT: &str = "(document)";
pub const VM_DOCUMENT: &str = "(vm configuration)";

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
        let mut vm = Fields::document(VM_DOCUMENT, json, VM_KEYS)?;
        let stats_flush = vm
            .whole("stats_flush_interval_ms")?
            .map_or(DEFAULT_STATS_FLUSH, Duration::from_millis);
        if stats_flush > Duration::from_secs(60) {
            return Err(invalid(
                "stats_flush_interval_ms",
                "must be at most 60000 (0 sends each update at once)",
            ));
        }
        Ok(VmOptions {
            native_histograms: vm.bool("native_histograms")?.unwrap_or(false),
            stats_flush,
        })
    }
}

// ---- the JSON as users write it: the keys of each object ---------------------------------

/// The keys of the VM configuration.
pub const VM_KEYS: &[&str] = &["native_histograms", "stats_flush_interval_ms"];
/// The top-level keys of the plugin configuration (docs/configuration.md's table).
pub const TOP_LEVEL: &[&str] = &[
    "service",
    "env",
    "routes",
    "probe",
    "run",
    "unique_violations",
    "fields",
    "providers",
    "fingerprint_provider",
    "models",
    "health",
    "openapi",
    "buckets",
    crate::declared::TOP_LEVEL_KEY,
];
const ENDPOINT: &[&str] = &["method", "route"];
const UNIQUE_VIOLATION: &[&str] = &["method", "route", "table"];
const FIELDS: &[&str] = &["provider", "model", "system_fingerprint", "redis"];
const MODELS: &[&str] = &["max_length", "max_per_provider"];
const HEALTH: &[&str] = &[
    "path",
    "cluster",
    "authority",
    "interval_seconds",
    "timeout_ms",
];
const OPENAPI: &[&str] = &[
    "enabled",
    "path",
    "cluster",
    "authority",
    "interval_seconds",
    "timeout_ms",
    "max_bytes",
    "max_paths",
];
const BUCKETS: &[&str] = &["request_seconds", "ensure_version_seconds"];

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

/// JSON fields the filter reads, and their positions in each scanner's field set: the
/// built-ins' first, then those declared metrics read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BodyFields {
    /// provider, model, …
    pub request: FieldSet,
    /// provider, model, system_fingerprint, redis (of a health check), …
    pub response: FieldSet,
    /// The position of `redis` in `response`.
    pub redis: usize,
}

pub const FIELD_PROVIDER: usize = 0;
pub const FIELD_MODEL: usize = 1;
pub const FIELD_FINGERPRINT: usize = 2;

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

/// Histogram bucket bounds, in nanoseconds, with their `le` label values (`+Inf` last).
#[derive(Debug, Clone, PartialEq)]
pub struct Buckets {
    pub bounds: Vec<u64>,
    pub labels: Vec<String>,
}

impl Default for Buckets {
    /// The Python client's defaults.
    fn default() -> Self {
        Self::with_bounds(DEFAULT_BUCKETS.to_vec())
    }
}

impl Buckets {
    /// The bounds at `key` of `buckets`, the defaults when not set.
    pub(crate) fn read(buckets: &mut Fields, key: &str) -> Result<Self, ConfigError> {
        let field = buckets.path_of(key);
        let Some(texts) = buckets.numbers(key)? else {
            return Ok(Self::default());
        };
        if texts.is_empty() {
            return Err(invalid(field, "needs at least one bound"));
        }
        let mut bounds = Vec::with_capacity(texts.len());
        for text in &texts {
            bounds.push(seconds_as_nanos(text).ok_or_else(|| {
                invalid(
                    &field,
                    format!(
                        "{text} is not a number of seconds above 0 and at most {MAX_BOUND_SECONDS}, \
                         in whole nanoseconds (`+Inf` is implied)"
                    ),
                )
            })?);
        }
        if bounds.windows(2).any(|w| w[0] >= w[1]) {
            return Err(invalid(field, "bounds must be strictly increasing"));
        }
        Ok(Self::with_bounds(bounds))
    }

    fn with_bounds(bounds: Vec<u64>) -> Self {
        let mut labels: Vec<String> = bounds.iter().map(|b| format_bound(*b)).collect();
        labels.push(INF_BOUND.to_string());
        Buckets { bounds, labels }
    }

    /// Index of the first bucket whose bound holds `nanos` (`bounds.len()` for `+Inf`).
    pub fn first_bucket(&self, nanos: u64) -> usize {
        self.bounds.partition_point(|b| *b < nanos)
    }

    /// The bounds in seconds.
    pub fn seconds(&self) -> Vec<f64> {
        self.bounds.iter().map(|b| *b as f64 / 1e9).collect()
    }
}

/// Largest bucket bound accepted, in seconds (a day and more: no request lasts longer, and
/// bounds up to it print as the Python client prints them, without an exponent).
pub const MAX_BOUND_SECONDS: u64 = 100_000;

/// A JSON number of seconds as whole nanoseconds, read from its text exactly: `None` when it
/// is not above 0, finer than a nanosecond or above [`MAX_BOUND_SECONDS`].
fn seconds_as_nanos(text: &str) -> Option<u64> {
    if text.starts_with('-') {
        return None;
    }
    let (mantissa, exponent) = match text.split_once(['e', 'E']) {
        Some((mantissa, exponent)) => (mantissa, exponent.parse::<i64>().ok()?),
        None => (text, 0),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    // value = digits × 10^(exponent - frac.len()) seconds = digits × 10^scale nanoseconds
    let mut digits = format!("{int}{frac}");
    let mut scale = exponent.checked_sub(frac.len() as i64)?.checked_add(9)?;
    while scale < 0 && digits.ends_with('0') {
        digits.pop();
        scale += 1;
    }
    let digits = digits.trim_start_matches('0');
    // 10^15 ns is beyond the largest bound; checking the length first keeps the
    // arithmetic below from overflowing.
    if digits.is_empty() || scale < 0 || digits.len() as i64 + scale > 15 {
        return None;
    }
    let nanos = digits.parse::<u64>().ok()? * 10u64.pow(scale as u32);
    (nanos <= MAX_BOUND_SECONDS * 1_000_000_000).then_some(nanos)
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
    /// Metrics declared by `metrics`.
    pub declared: Declared,
    /// From the VM configuration ([`VmOptions`]), not the plugin configuration.
    pub native_histograms: bool,
}

impl Config {
    /// The line both builds log once a configuration is accepted.
    pub fn summary(&self) -> String {
        format!(
            "prompter-filter: service={} env={}, {} routes, health {} every {}s",
            self.service,
            self.env,
            self.routes.len(),
            self.health.path,
            self.health.interval.as_secs()
        )
    }

    /// Parses the plugin configuration (empty means all defaults). `env_var` looks up the
    /// process environment (the VM's `environment_variables` in Envoy).
    pub fn parse(
        json: &[u8],
        env_var: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let mut doc = Fields::document(DOCUMENT, json, TOP_LEVEL)?;
        let service = label_setting(
            "service",
            doc.string("service")?,
            SERVICE_ENV_VAR,
            &env_var,
            DEFAULT_SERVICE,
        )?;
        let env = label_setting(
            "env",
            doc.string("env")?,
            ENV_ENV_VAR,
            &env_var,
            DEFAULT_ENV,
        )?;

        let route_texts = doc
            .strings("routes")?
            .unwrap_or_else(|| DEFAULT_ROUTES.iter().map(|s| s.to_string()).collect());
        let routes = RouteTable::new(&route_texts).map_err(|e| invalid("routes", e))?;

        let probe = endpoint(
            &routes,
            doc.object("probe", ENDPOINT)?,
            "probe",
            DEFAULT_PROBE_ROUTE,
        )?;
        let run = endpoint(
            &routes,
            doc.object("run", ENDPOINT)?,
            "run",
            DEFAULT_RUN_ROUTE,
        )?;
        let unique_violations = match doc.objects("unique_violations", UNIQUE_VIOLATION)? {
            Some(list) => list
                .into_iter()
                .map(|u| unique_violation(&routes, u))
                .collect::<Result<_, _>>()?,
            None => vec![UniqueViolation {
                endpoint: endpoint(&routes, None, "unique_violations[0]", DEFAULT_UNIQUE_ROUTE)?,
                table: DEFAULT_UNIQUE_TABLE.into(),
            }],
        };

        let mut fields = body_fields(doc.section("fields", FIELDS)?)?;

        let providers = doc
            .strings("providers")?
            .unwrap_or_else(|| DEFAULT_PROVIDERS.iter().map(|s| s.to_string()).collect());
        for (i, p) in providers.iter().enumerate() {
            if !labels::is_clean(p) || p == labels::OTHER || p == labels::UNKNOWN {
                return Err(invalid(
                    format!("providers[{i}]"),
                    format!("`{p}` is not a usable label value (letters, digits, `_-.:`; not `other`/`unknown`)"),
                ));
            }
            // Traffic matches providers case-insensitively: a second spelling could never match.
            if let Some(first) = providers[..i].iter().find(|q| q.eq_ignore_ascii_case(p)) {
                return Err(invalid(
                    format!("providers[{i}]"),
                    format!("`{p}` repeats `{first}` (providers match case-insensitively)"),
                ));
            }
        }
        let fingerprint_provider = doc
            .string("fingerprint_provider")?
            .unwrap_or_else(|| "openai".into());
        if !providers.contains(&fingerprint_provider) {
            return Err(invalid(
                "fingerprint_provider",
                format!("`{fingerprint_provider}` is not in `providers`"),
            ));
        }

        let mut models = doc.section("models", MODELS)?;
        let models = ModelBounds {
            max_length: within(&mut models, "max_length", 64, 1, 128)?,
            max_per_provider: within(&mut models, "max_per_provider", 50, 1, 10_000)?,
        };

        let health = health_check(doc.section("health", HEALTH)?)?;
        let openapi = openapi_fetch(doc.section("openapi", OPENAPI)?, &health)?;
        let mut buckets = doc.section("buckets", BUCKETS)?;
        let request_buckets = Buckets::read(&mut buckets, "request_seconds")?;
        let ensure_version_buckets = Buckets::read(&mut buckets, "ensure_version_seconds")?;
        let declared = crate::declared::parse(
            doc.objects(crate::declared::TOP_LEVEL_KEY, crate::declared::ENTRY)?,
            &mut fields,
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
            declared,
            native_histograms: false,
        })
    }

    /// Every metric the filter records: the catalog's, then the declared ones.
    pub fn metric_ids(&self) -> impl Iterator<Item = MetricId> + '_ {
        let declared = (0..self.declared.metrics.len()).map(MetricId::Declared);
        Metric::ALL
            .into_iter()
            .map(MetricId::Catalog)
            .chain(declared)
    }

    /// The name, kind, help and label keys of a metric.
    pub fn shape(&self, metric: MetricId) -> MetricShape<'_> {
        match metric {
            MetricId::Catalog(m) => {
                let def = m.def();
                MetricShape {
                    name: def.name,
                    kind: def.kind,
                    help: def.help,
                    labels: LabelKeys::Catalog(def.labels),
                }
            }
            MetricId::Declared(i) => match self.declared.metrics.get(i) {
                Some(d) => MetricShape {
                    name: &d.name,
                    kind: d.kind,
                    help: &d.help,
                    labels: LabelKeys::Declared(&d.labels),
                },
                None => MetricShape {
                    name: "",
                    kind: MetricKind::Counter,
                    help: "",
                    labels: LabelKeys::Catalog(&[]),
                },
            },
        }
    }

    /// The label keys of declared metrics that the catalog does not have, each once: Envoy
    /// needs a tag for each (see [`crate::stat_name::envoy_stats_tags_with`]).
    pub fn declared_label_keys(&self) -> Vec<&str> {
        let mut keys: Vec<&str> = Vec::new();
        for key in self.declared.metrics.iter().flat_map(|m| m.labels.iter()) {
            if !crate::catalog::label::ALL.contains(&&**key) && !keys.contains(&&**key) {
                keys.push(key);
            }
        }
        keys
    }

    /// The bucket bounds of a histogram.
    pub fn buckets(&self, metric: MetricId) -> &Buckets {
        match metric {
            MetricId::Catalog(Metric::EnsureVersionSeconds) => &self.ensure_version_buckets,
            MetricId::Declared(i) => self
                .declared
                .metrics
                .get(i)
                .map_or(&self.request_buckets, |d| &d.buckets),
            MetricId::Catalog(_) => &self.request_buckets,
        }
    }

    /// The table whose unique constraint a 409 on this method and route reports, if any.
    pub fn unique_table(&self, method: &str, route: RouteId) -> Option<&str> {
        self.unique_violations
            .iter()
            .find(|u| u.endpoint.route == route && u.endpoint.method == method)
            .map(|u| u.table.as_str())
    }
}

/// What a metric is, whether the catalog or the configuration declares it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MetricShape<'a> {
    pub name: &'a str,
    pub kind: MetricKind,
    pub help: &'a str,
    pub labels: LabelKeys<'a>,
}

/// A metric's label keys, in the order of its series' values.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum LabelKeys<'a> {
    Catalog(&'static [&'static str]),
    Declared(&'a [Box<str>]),
}

impl<'a> LabelKeys<'a> {
    pub fn len(&self) -> usize {
        match self {
            LabelKeys::Catalog(keys) => keys.len(),
            LabelKeys::Declared(keys) => keys.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn iter(&self) -> impl Iterator<Item = &'a str> + 'a {
        let (catalog, declared) = match *self {
            LabelKeys::Catalog(keys) => (keys, &[][..]),
            LabelKeys::Declared(keys) => (&[][..], keys),
        };
        catalog.iter().copied().chain(declared.iter().map(|k| &**k))
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

/// A label value the configuration gives, which must be usable as it is.
pub(crate) fn clean_label(field: &str, value: String) -> Result<String, ConfigError> {
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

fn not_a_route(route: &str) -> String {
    format!("`{route}` is not one of `routes`")
}

/// A method and a route; when not configured (at `name`), POST on `default_route`.
fn endpoint(
    routes: &RouteTable,
    configured: Option<Fields>,
    name: &str,
    default_route: &str,
) -> Result<Endpoint, ConfigError> {
    let Some(mut fields) = configured else {
        let route = routes.id_of(default_route).ok_or_else(|| {
            invalid(
                format!("{name}.route"),
                format!("{} (the default)", not_a_route(default_route)),
            )
        })?;
        return Ok(Endpoint {
            method: "POST",
            route,
        });
    };
    let raw_method = fields.required_string("method")?;
    let method = labels::method(&raw_method);
    if method == labels::OTHER {
        return Err(invalid(
            fields.path_of("method"),
            format!("`{raw_method}` is not an HTTP method"),
        ));
    }
    let raw_route = fields.required_string("route")?;
    let route = routes
        .id_of(&raw_route)
        .ok_or_else(|| invalid(fields.path_of("route"), not_a_route(&raw_route)))?;
    Ok(Endpoint { method, route })
}

fn unique_violation(
    routes: &RouteTable,
    mut fields: Fields,
) -> Result<UniqueViolation, ConfigError> {
    let table = clean_label(&fields.path_of("table"), fields.required_string("table")?)?;
    let endpoint = endpoint(routes, Some(fields), "", "")?;
    Ok(UniqueViolation { endpoint, table })
}

/// A whole number between `min` and `max`, `default` when not set.
fn within(
    fields: &mut Fields,
    key: &str,
    default: u64,
    min: u64,
    max: u64,
) -> Result<usize, ConfigError> {
    let value = fields.whole(key)?.unwrap_or(default);
    if !(min..=max).contains(&value) {
        return Err(invalid(
            fields.path_of(key),
            format!("must be between {min} and {max}"),
        ));
    }
    Ok(value as usize)
}

fn body_fields(mut fields: Fields) -> Result<BodyFields, ConfigError> {
    let mut name = |key: &str, default: &str| -> Result<String, ConfigError> {
        Ok(fields.string(key)?.unwrap_or_else(|| default.into()))
    };
    let provider = name("provider", "provider")?;
    let model = name("model", "model_id")?;
    let fingerprint = name("system_fingerprint", "system_fingerprint")?;
    let redis = name("redis", "redis")?;
    let set = |keys: &[&str]| FieldSet::new(keys).map_err(|e| invalid("fields", e));
    let mut response = set(&[&provider, &model, &fingerprint])?;
    // `redis` may name a field the others name too: it is then the same field.
    let redis = response
        .add_path(&[&redis])
        .map_err(|e| invalid("fields.redis", e))?;
    Ok(BodyFields {
        request: set(&[&provider, &model])?,
        response,
        redis,
    })
}

/// A path the filter requests itself: starts with `/`, no query, nothing a header refuses.
fn request_path(fields: &mut Fields, default: &str) -> Result<String, ConfigError> {
    let path = fields.string("path")?.unwrap_or_else(|| default.into());
    if !path.starts_with('/') || path.contains(['?', '#']) || path.bytes().any(|b| b <= b' ') {
        return Err(invalid(
            fields.path_of("path"),
            format!("`{path}` must be a path starting with `/`, without query"),
        ));
    }
    Ok(path)
}

/// Where the filter sends its own requests: a cluster that must not be empty.
fn cluster(fields: &mut Fields, default: &str) -> Result<String, ConfigError> {
    let cluster = fields.string("cluster")?.unwrap_or_else(|| default.into());
    if cluster.is_empty() {
        return Err(invalid(fields.path_of("cluster"), "must not be empty"));
    }
    Ok(cluster)
}

/// The `:authority` of the filter's own requests: a `host[:port]`. A space, a control
/// character (CR, LF) or a URI delimiter would make every request invalid to Envoy.
fn authority(fields: &mut Fields, default: &str) -> Result<String, ConfigError> {
    let authority = fields
        .string("authority")?
        .unwrap_or_else(|| default.into());
    let usable = |b: u8| b.is_ascii_graphic() && !matches!(b, b'/' | b'?' | b'#');
    if authority.is_empty() || !authority.bytes().all(usable) {
        return Err(invalid(
            fields.path_of("authority"),
            format!("`{authority}` is not a host[:port] (no spaces, control characters or `/?#`)"),
        ));
    }
    Ok(authority)
}

/// How often the filter sends a request (0 has a meaning of its own: `zero_means`).
fn interval(
    fields: &mut Fields,
    default_seconds: u64,
    zero_means: &str,
) -> Result<Duration, ConfigError> {
    let seconds = fields.whole("interval_seconds")?.unwrap_or(default_seconds);
    if seconds > 86_400 {
        return Err(invalid(
            fields.path_of("interval_seconds"),
            format!("must be at most 86400 (0 {zero_means})"),
        ));
    }
    Ok(Duration::from_secs(seconds))
}

fn timeout(fields: &mut Fields, default_ms: u64) -> Result<Duration, ConfigError> {
    Ok(Duration::from_millis(
        within(fields, "timeout_ms", default_ms, 1, 60_000)? as u64,
    ))
}

fn health_check(mut fields: Fields) -> Result<HealthCheck, ConfigError> {
    Ok(HealthCheck {
        path: request_path(&mut fields, "/healthz")?,
        cluster: cluster(&mut fields, DEFAULT_HEALTH_CLUSTER)?,
        authority: authority(&mut fields, DEFAULT_SERVICE)?,
        interval: interval(&mut fields, 15, "turns polling off")?,
        timeout: timeout(&mut fields, 2_000)?,
    })
}

/// The OpenAPI fetch goes where the health check goes unless told otherwise.
fn openapi_fetch(
    mut fields: Fields,
    health: &HealthCheck,
) -> Result<Option<OpenApiFetch>, ConfigError> {
    let fetch = OpenApiFetch {
        path: request_path(&mut fields, "/openapi.json")?,
        cluster: cluster(&mut fields, &health.cluster)?,
        authority: authority(&mut fields, &health.authority)?,
        interval: interval(&mut fields, 60, "fetches until one document is learned")?,
        timeout: timeout(&mut fields, 5_000)?,
        limits: Limits {
            max_bytes: within(
                &mut fields,
                "max_bytes",
                openapi::DEFAULT_MAX_BYTES as u64,
                1,
                64 * 1024 * 1024,
            )?,
            max_paths: within(
                &mut fields,
                "max_paths",
                openapi::DEFAULT_MAX_PATHS as u64,
                1,
                10_000,
            )?,
        },
    };
    Ok(fields.bool("enabled")?.unwrap_or(true).then_some(fetch))
}

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;
