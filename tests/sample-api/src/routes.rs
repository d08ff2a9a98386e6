//! Request routing and handlers following the Prompter API contract, plus the test-control knobs.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use hyper::body::Body;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::body::SampleBody;
use crate::openapi;
use crate::store::{CreateError, SampleApi};

/// Longest `?delay_ms=` honoured, so a typo cannot hang a test run.
pub const MAX_DELAY_MS: u64 = 10_000;
/// Longest `?event_delay_ms=` honoured.
pub const MAX_EVENT_DELAY_MS: u64 = 5_000;
/// Largest `?output_bytes=` honoured.
pub const MAX_OUTPUT_BYTES: u64 = 128 * 1024 * 1024;
/// Request bodies are buffered whole; this keeps a runaway client from exhausting memory.
pub const MAX_REQUEST_BYTES: usize = 16 * 1024 * 1024;

const FINGERPRINT: &str = "fp_44709d6fcb";
const CAPTURED_AT: &str = "2026-01-01T00:00:00Z";

/// Query-string knobs; unknown or malformed ones are ignored like the real service would.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Knobs {
    pub delay_ms: Option<u64>,
    pub output_bytes: Option<u64>,
    pub chunk: Option<usize>,
    /// `?chunked=1`: omit Content-Length so the body goes out with chunked transfer encoding.
    pub chunked: bool,
    /// `?stream=1`: a run answers server-sent events (as `"stream": true` in its body does).
    pub stream: bool,
    /// `?event_delay_ms=`: wait between one event of a streamed run and the next.
    pub event_delay_ms: Option<u64>,
    /// `?output_first=1`: a run's JSON puts `output` first instead of last (the contract's and
    /// FastAPI's order), so that a long output precedes the fields the filter reads. `usage`
    /// stays the last member either way.
    pub output_first: bool,
    /// `?prompt_tokens=N`: the run's `usage.prompt_tokens`, instead of the request body's
    /// length in bytes.
    pub prompt_tokens: Option<u64>,
    /// `?completion_tokens=N`: the run's `usage.completion_tokens`, instead of the output's
    /// length in bytes.
    pub completion_tokens: Option<u64>,
    /// `?usage=0`: a run reports no `usage` at all, as a provider without token counts would.
    pub without_usage: bool,
}

impl Knobs {
    pub fn parse(query: Option<&str>) -> Self {
        let mut knobs = Knobs::default();
        for pair in query.unwrap_or("").split('&') {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let number = value.parse::<u64>().ok();
            match key {
                "delay_ms" => knobs.delay_ms = number.map(|n| n.min(MAX_DELAY_MS)),
                "output_bytes" => knobs.output_bytes = number.map(|n| n.min(MAX_OUTPUT_BYTES)),
                "chunk" => {
                    knobs.chunk = number
                        .filter(|&n| n > 0)
                        .map(|n| usize::try_from(n).unwrap_or(usize::MAX))
                }
                "chunked" => knobs.chunked = !matches!(value, "0" | "false"),
                "stream" => knobs.stream = !matches!(value, "0" | "false"),
                "output_first" => knobs.output_first = !matches!(value, "0" | "false"),
                "event_delay_ms" => {
                    knobs.event_delay_ms = number.map(|n| n.min(MAX_EVENT_DELAY_MS))
                }
                "prompt_tokens" => knobs.prompt_tokens = number,
                "completion_tokens" => knobs.completion_tokens = number,
                "usage" => knobs.without_usage = matches!(value, "0" | "false"),
                _ => {}
            }
        }
        knobs
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Route<'a> {
    CreateTemplate,
    ListTemplates,
    GetTemplate(&'a str),
    EnsureVersion(&'a str),
    Run(&'a str),
    Health,
    OpenApi,
    AdminStats,
    AdminUser(&'a str),
    SetRedis,
    SetOpenApi,
    RequestCount,
    NotFound,
}

fn route<'a>(method: &Method, path: &'a str) -> Route<'a> {
    let get = method == Method::GET;
    let post = method == Method::POST;
    match path {
        "/api/prompt-templates" if post => return Route::CreateTemplate,
        "/api/prompt-templates" if get => return Route::ListTemplates,
        "/healthz" if get => return Route::Health,
        "/openapi.json" if get => return Route::OpenApi,
        "/api/admin/stats" if get => return Route::AdminStats,
        "/__sample/redis" if post => return Route::SetRedis,
        "/__sample/openapi" if post => return Route::SetOpenApi,
        "/__sample/requests" if get => return Route::RequestCount,
        _ => {}
    }
    if let Some(user) = path.strip_prefix("/api/admin/users/") {
        return match user {
            "" => Route::NotFound,
            user if get && !user.contains('/') => Route::AdminUser(user),
            _ => Route::NotFound,
        };
    }
    let Some(rest) = path.strip_prefix("/api/prompt-templates/") else {
        return Route::NotFound;
    };
    let mut segments = rest.split('/');
    let id = segments.next().unwrap_or("");
    if id.is_empty() {
        return Route::NotFound;
    }
    match (segments.next(), segments.next()) {
        (None, _) if get => Route::GetTemplate(id),
        (Some("ensure-version"), None) if post => Route::EnsureVersion(id),
        (Some("run"), None) if post => Route::Run(id),
        _ => Route::NotFound,
    }
}

/// What a handler produced, before the knobs shape how it is sent.
enum Reply {
    Empty(StatusCode),
    Json(StatusCode, Bytes),
    /// JSON whose `output` string is generated lorem text streamed between the two halves.
    LoremJson {
        prefix: Bytes,
        output_bytes: u64,
        suffix: Bytes,
    },
    /// A streamed run: server-sent events, each one whole.
    Events(Vec<Bytes>),
}

fn json(status: StatusCode, value: &impl Serialize) -> Reply {
    match serde_json::to_vec(value) {
        Ok(bytes) => Reply::Json(status, bytes.into()),
        Err(_) => detail(
            StatusCode::INTERNAL_SERVER_ERROR,
            "could not encode response",
        ),
    }
}

fn detail(status: StatusCode, message: &str) -> Reply {
    Reply::Json(status, json_bytes(&json!({ "detail": message })))
}

fn json_bytes(value: &Value) -> Bytes {
    // Serialising a `Value` cannot fail: its map keys are always strings.
    serde_json::to_vec(value).unwrap_or_default().into()
}

fn not_found() -> Reply {
    detail(StatusCode::NOT_FOUND, "Not Found")
}

fn template_not_found() -> Reply {
    detail(StatusCode::NOT_FOUND, "template not found")
}

/// Mimics FastAPI's validation step: a body that does not fit the schema is a 422.
fn parse_body<T: for<'de> Deserialize<'de>>(body: &[u8]) -> Result<T, Reply> {
    serde_json::from_slice(body)
        .map_err(|e| detail(StatusCode::UNPROCESSABLE_ENTITY, &e.to_string()))
}

#[derive(Deserialize)]
struct CreateTemplateRequest {
    name: String,
    #[serde(default)]
    body: String,
}

#[derive(Deserialize)]
struct EnsureVersionIn {
    provider: String,
    model_id: String,
}

#[derive(Serialize)]
struct EnsureVersionOut<'a> {
    provider: &'a str,
    model_id: &'a str,
    provider_version_key: String,
    captured_at: &'static str,
    created: bool,
}

#[derive(Deserialize)]
struct RunTemplateRequest {
    provider: String,
    model_id: String,
    #[serde(default)]
    variables: Value,
    #[serde(default)]
    stream: bool,
}

/// Every RunTemplateOut field except `output`, which is spliced in last, in the contract's
/// order (`RunTemplateOut` as FastAPI serializes it), or first with `?output_first=1`.
#[derive(Serialize)]
struct RunRest<'a> {
    result_id: String,
    template_id: &'a str,
    provider: &'a str,
    model_id: &'a str,
    system_fingerprint: Option<&'static str>,
}

/// The token counts a run reports, as OpenAI's `usage` object. The sample counts a byte as a
/// token, so tests can work the numbers out from what they sent and received: by default
/// `prompt_tokens` is the request body's length and `completion_tokens` the output's (decoded,
/// UTF-8), each overridden by its knob; `total_tokens` is their sum (saturating at `u64::MAX`).
#[derive(Serialize, Debug, Clone, Copy, PartialEq, Eq)]
struct Usage {
    prompt_tokens: u64,
    completion_tokens: u64,
    total_tokens: u64,
}

impl Usage {
    /// What a run with a `request_bytes` long body and an `output_bytes` long output reports
    /// under `knobs`: nothing with `?usage=0`.
    fn of_run(knobs: Knobs, request_bytes: usize, output_bytes: u64) -> Option<Usage> {
        if knobs.without_usage {
            return None;
        }
        let prompt_tokens = knobs
            .prompt_tokens
            .unwrap_or(u64::try_from(request_bytes).unwrap_or(u64::MAX));
        let completion_tokens = knobs.completion_tokens.unwrap_or(output_bytes);
        Some(Usage {
            prompt_tokens,
            completion_tokens,
            total_tokens: prompt_tokens.saturating_add(completion_tokens),
        })
    }
}

/// A struct rather than `json!` so the key order is fixed whatever serde_json
/// features other workspace members turn on.
#[derive(Serialize)]
struct Health {
    status: &'static str,
    redis: bool,
}

#[derive(Deserialize)]
struct OpenApiIn {
    mode: openapi::Mode,
}

#[derive(Deserialize)]
struct RedisIn {
    up: bool,
}

/// Serves one request. Never fails: every problem becomes an HTTP status.
pub async fn handle<B>(api: Arc<SampleApi>, req: Request<B>) -> Response<SampleBody>
where
    B: Body<Data = Bytes>,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let (parts, body) = req.into_parts();
    let path = parts.uri.path();
    let knobs = Knobs::parse(parts.uri.query());
    let route = route(&parts.method, path);
    let control = matches!(
        route,
        Route::SetRedis | Route::SetOpenApi | Route::RequestCount
    );
    if !control {
        api.count_request();
        if let Some(ms) = knobs.delay_ms.filter(|&ms| ms > 0) {
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
    }

    // Always drain the request body so the keep-alive connection stays usable
    // whatever the route.
    let body = match Limited::new(body, MAX_REQUEST_BYTES).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            return respond(
                detail(StatusCode::PAYLOAD_TOO_LARGE, "request body too large"),
                knobs,
            );
        }
        Err(_) => {
            return respond(
                detail(StatusCode::BAD_REQUEST, "could not read request body"),
                knobs,
            )
        }
    };

    let reply = match route {
        Route::CreateTemplate => create_template(&api, &body),
        Route::ListTemplates => json(StatusCode::OK, &api.templates()),
        Route::GetTemplate(id) => match api.template(id) {
            Some(t) => json(StatusCode::OK, &t),
            None => template_not_found(),
        },
        Route::EnsureVersion(id) => ensure_version(&api, id, &body),
        Route::Run(id) => run_template(&api, id, &body, knobs),
        Route::Health => {
            let up = api.redis_up();
            let (status, text) = if up {
                (StatusCode::OK, "ok")
            } else {
                (StatusCode::SERVICE_UNAVAILABLE, "degraded")
            };
            json(
                status,
                &Health {
                    status: text,
                    redis: up,
                },
            )
        }
        Route::OpenApi => Reply::Json(StatusCode::OK, api.openapi_document().into()),
        Route::AdminStats => Reply::Json(
            StatusCode::OK,
            json_bytes(&json!({ "templates": api.template_count() })),
        ),
        Route::AdminUser(user) => {
            Reply::Json(StatusCode::OK, json_bytes(&json!({ "user_id": user })))
        }
        Route::SetOpenApi => match parse_body::<OpenApiIn>(&body) {
            Ok(r) => {
                api.set_openapi_mode(r.mode);
                Reply::Empty(StatusCode::NO_CONTENT)
            }
            Err(reply) => reply,
        },
        Route::SetRedis => match parse_body::<RedisIn>(&body) {
            Ok(r) => {
                api.set_redis(r.up);
                Reply::Empty(StatusCode::NO_CONTENT)
            }
            Err(reply) => reply,
        },
        Route::RequestCount => Reply::Json(
            StatusCode::OK,
            json_bytes(&json!({ "total": api.request_count() })),
        ),
        Route::NotFound => not_found(),
    };
    respond(reply, if control { Knobs::default() } else { knobs })
}

fn create_template(api: &SampleApi, body: &[u8]) -> Reply {
    let req = match parse_body::<CreateTemplateRequest>(body) {
        Ok(req) => req,
        Err(reply) => return reply,
    };
    if req.name.is_empty() {
        return detail(StatusCode::UNPROCESSABLE_ENTITY, "name must not be empty");
    }
    match api.create_template(&req.name, &req.body) {
        Ok(t) => json(StatusCode::CREATED, &t),
        Err(CreateError::Duplicate) => detail(StatusCode::CONFLICT, "template already exists"),
    }
}

fn ensure_version(api: &SampleApi, id: &str, body: &[u8]) -> Reply {
    let req = match parse_body::<EnsureVersionIn>(body) {
        Ok(req) => req,
        Err(reply) => return reply,
    };
    if api.template(id).is_none() {
        return template_not_found();
    }
    if req.model_id.starts_with("broken-") {
        return detail(StatusCode::BAD_GATEWAY, "provider probe failed");
    }
    json(
        StatusCode::OK,
        &EnsureVersionOut {
            provider: &req.provider,
            model_id: &req.model_id,
            provider_version_key: format!("{}:{}", req.provider, req.model_id),
            captured_at: CAPTURED_AT,
            created: true,
        },
    )
}

fn run_template(api: &SampleApi, id: &str, body: &[u8], knobs: Knobs) -> Reply {
    let req = match parse_body::<RunTemplateRequest>(body) {
        Ok(req) => req,
        Err(reply) => return reply,
    };
    let Some(template) = api.template(id) else {
        return template_not_found();
    };
    if req.model_id.starts_with("ratelimited-") {
        return detail(StatusCode::TOO_MANY_REQUESTS, "rate limited");
    }
    if req.model_id.starts_with("fail-") {
        return detail(StatusCode::INTERNAL_SERVER_ERROR, "provider error");
    }
    let system_fingerprint = match req.provider.as_str() {
        "openai" if req.model_id.starts_with("nofp-") => Some(""),
        "openai" => Some(FINGERPRINT),
        _ => None,
    };
    if knobs.stream || req.stream {
        let output = render(&template.body, &req.variables);
        let run = RunEvent {
            id: api.next_result_id(),
            object: "chat.completion.chunk",
            template_id: Some(&template.id),
            provider: Some(&req.provider),
            model_id: Some(&req.model_id),
            system_fingerprint,
            choices: [Choice {
                index: 0,
                delta: Delta {
                    role: Some("assistant"),
                    content: Some(""),
                },
                finish_reason: None,
            }],
            usage: None,
        };
        let usage = Usage::of_run(knobs, body.len(), output.len() as u64);
        return Reply::Events(run_events(run, &output, usage));
    }
    let rest = RunRest {
        result_id: api.next_result_id(),
        template_id: &template.id,
        provider: &req.provider,
        model_id: &req.model_id,
        system_fingerprint,
    };
    let rest = match serde_json::to_vec(&rest) {
        Ok(bytes) => bytes,
        Err(_) => {
            return detail(
                StatusCode::INTERNAL_SERVER_ERROR,
                "could not encode response",
            )
        }
    };
    // Generated lorem with `?output_bytes=`, else the rendered template; either way its
    // length is known before anything is sent, and goes into `usage`.
    let (output, output_len) = match knobs.output_bytes {
        Some(n) => (None, n),
        None => {
            let text = render(&template.body, &req.variables);
            let len = text.len() as u64;
            (Some(text), len)
        }
    };
    // Last, as in OpenAI's bodies, whichever end `output` takes.
    let usage = match Usage::of_run(knobs, body.len(), output_len) {
        Some(usage) => [
            &b",\"usage\":"[..],
            &serde_json::to_vec(&usage).unwrap_or_default(),
        ]
        .concat(),
        None => Vec::new(),
    };
    // `rest` is `{...}`: the `output` member goes in after its last field (or before its
    // first), the generated lorem streamed between a prefix and a suffix.
    let fields = rest
        .get(1..rest.len().saturating_sub(1))
        .unwrap_or_default();
    let (prefix, suffix): (Vec<u8>, Vec<u8>) = if knobs.output_first {
        (
            b"{\"output\":".to_vec(),
            [b",", fields, &usage, b"}"].concat(),
        )
    } else {
        (
            [b"{", fields, b",\"output\":"].concat(),
            [&usage, &b"}"[..]].concat(),
        )
    };
    match output {
        None => Reply::LoremJson {
            prefix: [prefix.as_slice(), b"\""].concat().into(),
            output_bytes: output_len,
            suffix: [b"\"", suffix.as_slice()].concat().into(),
        },
        Some(output) => {
            let output = json_bytes(&Value::String(output));
            let body = [prefix.as_slice(), &output, suffix.as_slice()].concat();
            Reply::Json(StatusCode::OK, body.into())
        }
    }
}

/// One event of a streamed run, shaped like OpenAI's `chat.completion.chunk`: the first
/// names the template, provider and model; every one carries `system_fingerprint`; the
/// finish alone carries `usage`, the run's token counts.
#[derive(Serialize)]
struct RunEvent<'a> {
    id: String,
    object: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    template_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    provider: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    model_id: Option<&'a str>,
    system_fingerprint: Option<&'static str>,
    choices: [Choice<'a>; 1],
    #[serde(skip_serializing_if = "Option::is_none")]
    usage: Option<Usage>,
}

#[derive(Serialize)]
struct Choice<'a> {
    index: u32,
    delta: Delta<'a>,
    finish_reason: Option<&'static str>,
}

#[derive(Serialize)]
struct Delta<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    role: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    content: Option<&'a str>,
}

/// The events of a streamed run: `first` (after a comment, in the same frame), one content
/// delta per word of `output`, the finish with `usage` (when there is one), and
/// `data: [DONE]`. The usage rides on the finish rather than in an extra chunk of its own (as
/// OpenAI's `stream_options.include_usage` sends it) so the number of events stays what
/// streaming tests count; either way it is the last event before `[DONE]`.
fn run_events<'a>(first: RunEvent<'a>, output: &'a str, usage: Option<Usage>) -> Vec<Bytes> {
    let event = |e: &RunEvent<'_>| {
        let mut bytes = Vec::new();
        if e.provider.is_some() {
            bytes.extend_from_slice(b": streamed run\n\n");
        }
        bytes.extend_from_slice(b"data: ");
        bytes.extend_from_slice(&serde_json::to_vec(e).unwrap_or_default());
        bytes.extend_from_slice(b"\n\n");
        Bytes::from(bytes)
    };
    let next = |delta: Delta<'a>, finish_reason, usage| RunEvent {
        id: first.id.clone(),
        object: first.object,
        template_id: None,
        provider: None,
        model_id: None,
        system_fingerprint: first.system_fingerprint,
        choices: [Choice {
            index: 0,
            delta,
            finish_reason,
        }],
        usage,
    };
    let mut events = vec![event(&first)];
    for word in output.split_inclusive(' ') {
        let delta = Delta {
            role: None,
            content: Some(word),
        };
        events.push(event(&next(delta, None, None)));
    }
    let done = Delta {
        role: None,
        content: None,
    };
    events.push(event(&next(done, Some("stop"), usage)));
    events.push(Bytes::from_static(b"data: [DONE]\n\n"));
    events
}

/// A plausible "LLM output": the template with `{name}` placeholders filled in.
fn render(template: &str, variables: &Value) -> String {
    let mut out = template.to_owned();
    if let Value::Object(map) = variables {
        for (key, value) in map {
            let text = match value {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            out = out.replace(&format!("{{{key}}}"), &text);
        }
    }
    out
}

fn respond(reply: Reply, knobs: Knobs) -> Response<SampleBody> {
    let mut content_type = Some("application/json");
    let (status, body) = match reply {
        Reply::Empty(status) => {
            content_type = None;
            (status, SampleBody::empty())
        }
        Reply::Json(status, bytes) => (status, SampleBody::full(bytes)),
        Reply::LoremJson {
            prefix,
            output_bytes,
            suffix,
        } => (
            StatusCode::OK,
            SampleBody::with_lorem(prefix, output_bytes, suffix),
        ),
        Reply::Events(events) => {
            content_type = Some("text/event-stream");
            let pause = Duration::from_millis(knobs.event_delay_ms.unwrap_or(0));
            (StatusCode::OK, SampleBody::events(events, pause))
        }
    };
    let body = match knobs.chunk {
        Some(n) => body.in_chunks_of(n),
        None => body,
    };
    let body = if knobs.chunked {
        body.without_length()
    } else {
        body
    };
    let mut response = Response::new(body);
    *response.status_mut() = status;
    if let Some(content_type) = content_type {
        response
            .headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_match_the_contract() {
        assert_eq!(
            route(&Method::POST, "/api/prompt-templates"),
            Route::CreateTemplate
        );
        assert_eq!(
            route(&Method::GET, "/api/prompt-templates/t-1"),
            Route::GetTemplate("t-1")
        );
        assert_eq!(
            route(&Method::POST, "/api/prompt-templates/t-1/run"),
            Route::Run("t-1")
        );
        assert_eq!(
            route(&Method::POST, "/api/prompt-templates/t-1/ensure-version"),
            Route::EnsureVersion("t-1")
        );
        assert_eq!(
            route(&Method::GET, "/api/prompt-templates/t-1/run"),
            Route::NotFound
        );
        assert_eq!(
            route(&Method::GET, "/api/prompt-templates//run"),
            Route::NotFound
        );
        assert_eq!(route(&Method::DELETE, "/healthz"), Route::NotFound);
    }

    #[test]
    fn knobs_are_capped_and_tolerant() {
        let k = Knobs::parse(Some(
            "delay_ms=999999&output_bytes=x&chunk=0&chunked&foo&stream&event_delay_ms=99999",
        ));
        assert_eq!(k.delay_ms, Some(MAX_DELAY_MS));
        assert_eq!(k.output_bytes, None);
        assert_eq!(k.chunk, None);
        assert!(k.chunked);
        assert!(k.stream);
        assert_eq!(k.event_delay_ms, Some(MAX_EVENT_DELAY_MS));
        assert!(!Knobs::parse(Some("stream=0")).stream);
        let k = Knobs::parse(Some("prompt_tokens=3&completion_tokens=x&usage"));
        assert_eq!((k.prompt_tokens, k.completion_tokens), (Some(3), None));
        assert!(!k.without_usage);
        assert!(Knobs::parse(Some("usage=0")).without_usage);
        assert!(Knobs::parse(Some("usage=false")).without_usage);
    }

    #[test]
    fn render_fills_placeholders() {
        let vars = json!({"who": "world", "n": 3});
        assert_eq!(render("hello {who} x{n}", &vars), "hello world x3");
    }
}
