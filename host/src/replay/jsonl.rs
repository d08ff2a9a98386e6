//! The JSON Lines recording format: one exchange object per line (see the module above).

use std::collections::BTreeMap;

use serde::Deserialize;

use super::{body, start_time, status, Draft, Error, Origin, Problem, Recording};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Line {
    method: String,
    path: String,
    #[serde(default)]
    request_headers: BTreeMap<String, String>,
    request_body: Option<String>,
    request_body_base64: Option<String>,
    status: Option<i64>,
    #[serde(default)]
    response_headers: BTreeMap<String, String>,
    response_body: Option<String>,
    response_body_base64: Option<String>,
    duration_ms: f64,
    start_time: Option<String>,
}

pub(super) fn parse(text: &str) -> Result<Recording, Error> {
    let mut recording = Recording::default();
    let mut problems = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let origin = Origin::Line(index + 1);
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        match exchange(origin, trimmed) {
            Ok(exchange) => recording.exchanges.push(exchange),
            Err(message) => problems.push(Problem { origin, message }),
        }
    }
    if problems.is_empty() {
        Ok(recording)
    } else {
        Err(Error::Invalid(problems))
    }
}

fn exchange(origin: Origin, text: &str) -> Result<super::Exchange, String> {
    let line: Line = serde_json::from_str(text).map_err(|e| json_error(&e))?;
    let status = line.status.map_or(Ok(None), |s| status(s, "status"))?;
    let has_response = !line.response_headers.is_empty()
        || line.response_body.is_some()
        || line.response_body_base64.is_some();
    if status.is_none() && has_response {
        return Err("a response body or headers but no `status` (no status: no response)".into());
    }
    Draft {
        origin,
        method: line.method,
        path: line.path,
        authority: None,
        request_headers: line.request_headers.into_iter().collect(),
        request_body: body(
            line.request_body,
            line.request_body_base64,
            "request_body",
            "request_body_base64",
        )?,
        status,
        response_headers: line.response_headers.into_iter().collect(),
        response_body: body(
            line.response_body,
            line.response_body_base64,
            "response_body",
            "response_body_base64",
        )?,
        duration_ms: line.duration_ms,
        start_nanos: line
            .start_time
            .map(|t| start_time(&t, "start_time"))
            .transpose()?,
    }
    .build("duration_ms")
}

/// serde_json's message without its ` at line 1 column N` (the line is ours to name); the
/// column stays for syntax errors, where it helps.
fn json_error(error: &serde_json::Error) -> String {
    let full = error.to_string();
    let position = format!(" at line {} column {}", error.line(), error.column());
    let message = full.strip_suffix(&position).unwrap_or(&full);
    match error.classify() {
        serde_json::error::Category::Data => message.to_string(),
        _ => format!("invalid JSON at column {}: {message}", error.column()),
    }
}
