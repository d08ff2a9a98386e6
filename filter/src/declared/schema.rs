//! `metrics` as users write it, read and validated once into [`Declared`]: every refusal
//! names the field by its path (`metrics[2].labels[0].max_values`) and says why.

use super::{
    Body, Declared, DeclaredMetric, Duration, Entry, LabelBounds, LabelRule, LabelSource,
    ResponseKind, StatusMatch, ValueSource, When, MAX_ENTRIES, MAX_LABELS,
};
use crate::catalog::{
    is_prometheus_name, label, Metric, MetricKind, BUCKET_SUFFIX, COUNT_SUFFIX, FILTER_FAILURES,
    SUM_MICROS_SUFFIX, SUM_SUFFIX,
};
use crate::config::{clean_label as clean, invalid, BodyFields, Buckets, ConfigError};
use crate::config_json::Fields;
use crate::labels::{self, OTHER};
use crate::routes::UNMATCHED;
use crate::scanner::FieldSet;

/// The plugin configuration's key of this section.
pub const TOP_LEVEL_KEY: &str = "metrics";

/// The prefix of the wasmtime host's own metrics (`prompter_host_filter_failures_total`).
pub const HOST_PREFIX: &str = "prompter_host_";
/// The help of a metric declared without one.
const DEFAULT_HELP: &str = "Declared in the filter's configuration";
pub(crate) const ENTRY: &[&str] = &["name", "type", "help", "buckets", "when", "labels", "value"];
const WHEN: &[&str] = &["methods", "routes", "status", "response"];
const LABEL: &[&str] = &[
    "name",
    "value",
    "builtin",
    "header",
    "field",
    "from",
    "max_length",
    "allow",
    "max_values",
    "absent",
];
const VALUE: &[&str] = &["field", "from", "duration"];

const BUILTIN_LABELS: [(&str, LabelSource); 5] = [
    (label::METHOD, LabelSource::Method),
    (label::ROUTE, LabelSource::Route),
    (label::STATUS, LabelSource::Status),
    (label::PROVIDER, LabelSource::Provider),
    (label::MODEL, LabelSource::Model),
];
const DURATIONS: [(&str, Duration); 3] = [
    ("exchange", Duration::Exchange),
    ("response_headers", Duration::ResponseHeaders),
    ("first_byte", Duration::FirstByte),
];
const BODIES: [&str; 2] = ["request", "response"];

/// Reads `metrics` (absent: nothing declared), adding the body fields it reads to `fields`.
pub(crate) fn parse(
    list: Option<Vec<Fields>>,
    fields: &mut BodyFields,
) -> Result<Declared, ConfigError> {
    let mut declared = Declared::default();
    let list = list.unwrap_or_default();
    if list.len() > MAX_ENTRIES {
        return Err(invalid(
            TOP_LEVEL_KEY,
            format!("at most {MAX_ENTRIES} entries, got {}", list.len()),
        ));
    }
    for entry in list {
        let entry = read_entry(entry, fields, &mut declared)?;
        declared.entries.push(entry);
    }
    Ok(declared)
}

fn read_entry(
    mut fields_of: Fields,
    body_fields: &mut BodyFields,
    declared: &mut Declared,
) -> Result<Entry, ConfigError> {
    let name = fields_of.required_string("name")?;
    let kind = match fields_of.required_string("type")?.as_str() {
        "counter" => MetricKind::Counter,
        "histogram" => MetricKind::Histogram,
        other => {
            return Err(invalid(
                fields_of.path_of("type"),
                format!("`{other}` is not a type; one of counter, histogram"),
            ))
        }
    };
    metric_name(&name, kind).map_err(|reason| invalid(fields_of.path_of("name"), reason))?;
    let help = fields_of
        .string("help")?
        .unwrap_or_else(|| DEFAULT_HELP.to_string());
    let buckets = match kind {
        MetricKind::Histogram => Buckets::read(&mut fields_of, "buckets")?,
        _ if fields_of.numbers("buckets")?.is_some() => {
            return Err(invalid(
                fields_of.path_of("buckets"),
                "only a histogram has buckets",
            ))
        }
        _ => Buckets::default(),
    };
    let when = read_when(fields_of.section("when", WHEN)?)?;

    let mut keys: Vec<Box<str>> = vec![label::SERVICE.into(), label::ENV.into()];
    let mut rules = Vec::new();
    let label_list = fields_of.objects("labels", LABEL)?.unwrap_or_default();
    if label_list.len() > MAX_LABELS {
        return Err(invalid(
            fields_of.path_of("labels"),
            format!("at most {MAX_LABELS} labels, got {}", label_list.len()),
        ));
    }
    for label_fields in label_list {
        let (key, rule) = read_label(label_fields, &name, &keys, body_fields, declared)?;
        keys.push(key.into());
        rules.push(rule);
    }

    let value = read_value(fields_of.object("value", VALUE)?, kind, body_fields)?
        .unwrap_or(ValueSource::One);
    if kind == MetricKind::Histogram && value == ValueSource::One {
        return Err(invalid(
            fields_of.path_of("value"),
            "a histogram needs a value to observe (a field or a duration)",
        ));
    }

    let metric = DeclaredMetric {
        name,
        kind,
        help,
        labels: keys,
        buckets,
    };
    let metric = family(declared, metric, &fields_of.path_of("name"))?;
    Ok(Entry {
        metric,
        when,
        labels: rules,
        value,
    })
}

/// The index of the family `metric` belongs to: a new one, or the same name declared before
/// with the same type, labels, help and buckets.
fn family(declared: &mut Declared, metric: DeclaredMetric, at: &str) -> Result<usize, ConfigError> {
    if let Some(i) = declared.metrics.iter().position(|m| m.name == metric.name) {
        let earlier = &declared.metrics[i];
        let differs = if earlier.kind != metric.kind {
            Some("type")
        } else if earlier.labels != metric.labels {
            Some("label names (in order)")
        } else if earlier.buckets != metric.buckets {
            Some("buckets")
        } else if earlier.help != metric.help {
            Some("help")
        } else {
            None
        };
        return match differs {
            Some(what) => Err(invalid(
                at,
                format!(
                    "`{}` is declared before with other {what}: entries of one metric share \
                     its type, label names, buckets and help",
                    metric.name
                ),
            )),
            None => Ok(i),
        };
    }
    let mine = exported_names(&metric.name, metric.kind);
    for other in &declared.metrics {
        let theirs = exported_names(&other.name, other.kind);
        if let Some(clash) = mine.iter().find(|n| theirs.contains(n)) {
            return Err(invalid(
                at,
                format!(
                    "exports `{clash}`, as `{}` declared before does",
                    other.name
                ),
            ));
        }
    }
    declared.metrics.push(metric);
    Ok(declared.metrics.len() - 1)
}

/// The series names a metric is exported as, through Envoy and through the host.
fn exported_names(name: &str, kind: MetricKind) -> Vec<String> {
    match kind {
        MetricKind::Histogram => [BUCKET_SUFFIX, COUNT_SUFFIX, SUM_SUFFIX, SUM_MICROS_SUFFIX]
            .iter()
            .map(|suffix| format!("{name}{suffix}"))
            .chain([name.to_string()])
            .collect(),
        _ => vec![name.to_string()],
    }
}

/// Why `name` cannot be a declared metric's, if it cannot.
fn metric_name(name: &str, kind: MetricKind) -> Result<(), String> {
    if !is_prometheus_name(name, true) || name.len() > 200 {
        return Err(format!(
            "`{name}` is not a Prometheus metric name ([a-zA-Z_:][a-zA-Z0-9_:]*, at most 200)"
        ));
    }
    if name.starts_with("__") {
        return Err(format!("`{name}`: names starting with `__` are reserved"));
    }
    match kind {
        MetricKind::Counter if !name.ends_with("_total") => {
            return Err(format!(
                "`{name}`: a counter's name ends with `_total` (Prometheus' convention, and \
                 what the exposition prints)"
            ))
        }
        MetricKind::Histogram => {
            if let Some(suffix) = ["_total", BUCKET_SUFFIX, COUNT_SUFFIX, SUM_SUFFIX]
                .iter()
                .find(|s| name.ends_with(*s))
            {
                return Err(format!(
                    "`{name}`: a histogram's name cannot end with `{suffix}`"
                ));
            }
        }
        _ => {}
    }
    if name.starts_with(HOST_PREFIX) {
        return Err(format!(
            "`{name}`: `{HOST_PREFIX}` is the prefix of the host's own metrics"
        ));
    }
    let mine = exported_names(name, kind);
    let builtin = Metric::ALL
        .iter()
        .flat_map(|m| exported_names(m.name(), m.kind()))
        .chain([FILTER_FAILURES.to_string()])
        .find(|b| mine.contains(b));
    match builtin {
        Some(b) => Err(format!("`{name}` clashes with the built-in `{b}`")),
        None => Ok(()),
    }
}

fn read_when(mut when: Fields) -> Result<When, ConfigError> {
    let mut methods = Vec::new();
    for (i, m) in when
        .strings("methods")?
        .unwrap_or_default()
        .iter()
        .enumerate()
    {
        let label = labels::method(m);
        if label == OTHER {
            return Err(invalid(
                format!("{}[{i}]", when.path_of("methods")),
                format!("`{m}` is not one of {}", labels::METHODS.join(", ")),
            ));
        }
        methods.push(label);
    }
    let routes = when.strings("routes")?.unwrap_or_default();
    for (i, r) in routes.iter().enumerate() {
        if !(r.starts_with('/') || r == UNMATCHED) || r.contains(['?', '#']) {
            return Err(invalid(
                format!("{}[{i}]", when.path_of("routes")),
                format!(
                    "`{r}` is not a route template (starting with `/`, as in `routes`) or \
                     `{UNMATCHED}`"
                ),
            ));
        }
    }
    let mut statuses = Vec::new();
    for (i, s) in when
        .strings("status")?
        .unwrap_or_default()
        .iter()
        .enumerate()
    {
        let class = s
            .strip_suffix("xx")
            .filter(|d| d.len() == 1)
            .and_then(|d| d.parse::<u16>().ok())
            .filter(|d| (1..=9).contains(d));
        let status = match (class, labels::status(Some(s))) {
            (Some(class), _) => StatusMatch::Class(class),
            (None, Some(code)) if s.len() == 3 => StatusMatch::Code(code),
            _ => {
                return Err(invalid(
                    format!("{}[{i}]", when.path_of("status")),
                    format!("`{s}` is not a status (`200`…`999`) or a class (`2xx`)"),
                ))
            }
        };
        statuses.push(status);
    }
    let response = match when.string("response")?.as_deref() {
        None | Some("any") => ResponseKind::Any,
        Some("json") => ResponseKind::Json,
        Some("event_stream") => ResponseKind::EventStream,
        Some(other) => {
            return Err(invalid(
                when.path_of("response"),
                format!("`{other}` is not one of any, json, event_stream"),
            ))
        }
    };
    Ok(When {
        methods,
        routes,
        statuses,
        response,
    })
}

fn read_label(
    mut fields_of: Fields,
    metric: &str,
    earlier: &[Box<str>],
    body_fields: &mut BodyFields,
    declared: &mut Declared,
) -> Result<(String, LabelRule), ConfigError> {
    let key = fields_of.required_string("name")?;
    let name_at = fields_of.path_of("name");
    if !is_prometheus_name(&key, false) || key.starts_with("__") {
        return Err(invalid(
            name_at,
            format!("`{key}` is not a Prometheus label name ([a-zA-Z_][a-zA-Z0-9_]*, no `__`)"),
        ));
    }
    if key == label::LE || key == "quantile" {
        return Err(invalid(
            name_at,
            format!("`{key}` is reserved for histogram buckets and summaries"),
        ));
    }
    if earlier.iter().any(|k| **k == *key) {
        let why = if key == label::SERVICE || key == label::ENV {
            "is on every series already"
        } else {
            "is given twice"
        };
        return Err(invalid(name_at, format!("`{key}` {why}")));
    }

    let mut sources = Vec::new();
    if let Some(constant) = fields_of.string("value")? {
        sources.push(LabelSource::Constant(clean(
            &fields_of.path_of("value"),
            constant,
        )?));
    }
    if let Some(builtin) = fields_of.string("builtin")? {
        let source = BUILTIN_LABELS
            .iter()
            .find(|(n, _)| *n == builtin)
            .map(|(_, s)| s.clone())
            .ok_or_else(|| {
                let names: Vec<&str> = BUILTIN_LABELS.iter().map(|(n, _)| *n).collect();
                invalid(
                    fields_of.path_of("builtin"),
                    format!("`{builtin}` is not one of {}", names.join(", ")),
                )
            })?;
        sources.push(source);
    }
    if let Some(header) = fields_of.string("header")? {
        let at = fields_of.path_of("header");
        let header = header_name(&at, header)?;
        let index = match declared.headers.iter().position(|h| *h == header) {
            Some(index) => index,
            None => {
                declared.headers.push(header);
                declared.headers.len() - 1
            }
        };
        sources.push(LabelSource::Header(index));
    }
    let from_at = fields_of.path_of("from");
    let from = fields_of.strings("from")?;
    if let Some(path) = fields_of.string("field")? {
        let at = fields_of.path_of("field");
        sources.push(LabelSource::Field(bodies(
            &at,
            &path,
            &from_at,
            from,
            body_fields,
        )?));
    } else if from.is_some() {
        return Err(invalid(from_at, "only a `field` is read from a body"));
    }
    let source = match sources.len() {
        1 => sources.remove(0),
        n => {
            return Err(invalid(
                fields_of.path(),
                format!("a label has one source (value, builtin, header or field), got {n}"),
            ))
        }
    };

    let from_traffic = matches!(source, LabelSource::Header(_) | LabelSource::Field(_));
    let max_length = fields_of.whole("max_length")?;
    let allow = fields_of.strings("allow")?;
    let max_values = fields_of.whole("max_values")?;
    let absent = fields_of.string("absent")?;
    let bounded =
        max_length.is_some() || allow.is_some() || max_values.is_some() || absent.is_some();
    if bounded && !from_traffic {
        return Err(invalid(
            fields_of.path(),
            "max_length, allow, max_values and absent bound a header or a field; the other \
             sources are bounded already",
        ));
    }
    let max_length = match max_length {
        None => 64,
        Some(n @ 1..=128) => n as usize,
        Some(n) => {
            return Err(invalid(
                fields_of.path_of("max_length"),
                format!("{n}: must be between 1 and 128"),
            ))
        }
    };
    let allow = match allow {
        None => None,
        Some(values) if values.is_empty() => {
            return Err(invalid(
                fields_of.path_of("allow"),
                "needs at least one value",
            ))
        }
        Some(values) => Some(
            values
                .into_iter()
                .enumerate()
                .map(|(i, v)| clean(&format!("{}[{i}]", fields_of.path_of("allow")), v))
                .collect::<Result<Vec<_>, _>>()?,
        ),
    };
    let max_values = match max_values {
        None => None,
        Some(n @ 1..=10_000) => Some(n as usize),
        Some(n) => {
            return Err(invalid(
                fields_of.path_of("max_values"),
                format!("{n}: must be between 1 and 10000"),
            ))
        }
    };
    let absent = match absent {
        Some(value) => clean(&fields_of.path_of("absent"), value)?,
        None => labels::UNKNOWN.to_string(),
    };
    let budget = format!("\0{metric}\0{key}");
    Ok((
        key,
        LabelRule {
            source,
            bounds: LabelBounds {
                max_length,
                allow,
                max_values,
                absent,
                budget,
            },
        },
    ))
}

fn read_value(
    value: Option<Fields>,
    kind: MetricKind,
    body_fields: &mut BodyFields,
) -> Result<Option<ValueSource>, ConfigError> {
    let Some(mut value) = value else {
        return Ok(None);
    };
    let from_at = value.path_of("from");
    let from = value.strings("from")?;
    let field = value.string("field")?;
    let duration = value.string("duration")?;
    match (field, duration) {
        (Some(path), None) => {
            let at = value.path_of("field");
            Ok(Some(ValueSource::Field(bodies(
                &at,
                &path,
                &from_at,
                from,
                body_fields,
            )?)))
        }
        (None, Some(name)) if from.is_none() => {
            let at = value.path_of("duration");
            if kind != MetricKind::Histogram {
                return Err(invalid(at, "a duration is observed by a histogram"));
            }
            DURATIONS
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, d)| Some(ValueSource::Duration(*d)))
                .ok_or_else(|| {
                    let names: Vec<&str> = DURATIONS.iter().map(|(n, _)| *n).collect();
                    invalid(at, format!("`{name}` is not one of {}", names.join(", ")))
                })
        }
        (None, None) if from.is_none() => Ok(None),
        _ => Err(invalid(
            value.path(),
            "a value is one `field` (with its `from`) or one `duration`",
        )),
    }
}

/// The bodies a field at `path` (dotted) is read from, in the order `from` gives (request,
/// then response, by default), each field added to that body's field set.
fn bodies(
    at: &str,
    path: &str,
    from_at: &str,
    from: Option<Vec<String>>,
    fields: &mut BodyFields,
) -> Result<Vec<Body>, ConfigError> {
    let segments: Vec<&str> = path.split('.').collect();
    let from = from.unwrap_or_else(|| BODIES.iter().map(|b| b.to_string()).collect());
    if from.is_empty() {
        return Err(invalid(from_at, "needs request, response or both"));
    }
    let mut bodies = Vec::with_capacity(from.len());
    for (i, body) in from.iter().enumerate() {
        let add = |set: &mut FieldSet| {
            set.add_path(&segments)
                .map_err(|reason| invalid(at, format!("`{path}`: {reason}")))
        };
        let body = match body.as_str() {
            "request" => Body::Request(add(&mut fields.request)?),
            "response" => Body::Response(add(&mut fields.response)?),
            other => {
                return Err(invalid(
                    format!("{from_at}[{i}]"),
                    format!("`{other}` is not a body; one of request, response"),
                ))
            }
        };
        if bodies.contains(&body) {
            return Err(invalid(format!("{from_at}[{i}]"), "is given twice"));
        }
        bodies.push(body);
    }
    Ok(bodies)
}

/// A request header's name as the proxies give it (lower case), if it is one.
fn header_name(at: &str, name: String) -> Result<String, ConfigError> {
    let token = !name.is_empty()
        && name.len() <= 128
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
    if !token {
        return Err(invalid(
            at,
            format!("`{name}` is not a header name (a token, as in `x-tenant-id`)"),
        ));
    }
    Ok(name.to_ascii_lowercase())
}
