//! The minimal OpenAPI 3 document served at `/openapi.json`, as FastAPI would generate it,
//! and the variants tests switch to with `POST /__sample/openapi {"mode": "..."}`.

use serde::Deserialize;
use serde_json::{json, Value};

/// Size of the `huge` document: above the filter's default bound (4 MiB).
pub const HUGE_BYTES: usize = 5 * 1024 * 1024;

/// What `/openapi.json` serves.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// [`document`].
    #[default]
    Standard,
    /// [`document`] plus `/api/admin/users/{user_id}`, as after a deploy that adds a route.
    Extended,
    /// [`document`] cut in the middle: not JSON.
    Broken,
    /// [`document`] with a description that makes it [`HUGE_BYTES`] long.
    Huge,
}

impl Mode {
    pub const ALL: [Mode; 4] = [Mode::Standard, Mode::Extended, Mode::Broken, Mode::Huge];

    pub fn as_u8(self) -> u8 {
        self as u8
    }

    pub fn from_u8(value: u8) -> Mode {
        Self::ALL
            .get(usize::from(value))
            .copied()
            .unwrap_or_default()
    }
}

/// The bytes `/openapi.json` serves in `mode`.
pub fn serve(mode: Mode) -> Vec<u8> {
    let mut doc = document();
    match mode {
        Mode::Standard | Mode::Broken => {}
        Mode::Extended => {
            doc["paths"]["/api/admin/users/{user_id}"] = json!({
                "get": {
                    "operationId": "admin_user",
                    "parameters": [{ "name": "user_id", "in": "path", "required": true, "schema": { "type": "string" } }],
                    "responses": ok("200", json!({ "type": "object" }))
                }
            });
        }
        Mode::Huge => {
            let standard = serde_json::to_vec(&doc).unwrap_or_default().len();
            let padding = HUGE_BYTES.saturating_sub(standard + r#","description":"""#.len());
            doc["info"]["description"] = Value::String("x".repeat(padding));
        }
    }
    let bytes = serde_json::to_vec(&doc).unwrap_or_default();
    match mode {
        Mode::Broken => bytes.get(..bytes.len() / 2).unwrap_or_default().to_vec(),
        _ => bytes,
    }
}

fn template_id_param() -> Value {
    json!([{
        "name": "template_id",
        "in": "path",
        "required": true,
        "schema": { "type": "string", "title": "Template Id" }
    }])
}

fn json_body(schema: &str) -> Value {
    json!({
        "required": true,
        "content": { "application/json": { "schema": { "$ref": format!("#/components/schemas/{schema}") } } }
    })
}

fn ok(status: &str, schema: Value) -> Value {
    json!({ status: { "description": "Successful Response", "content": { "application/json": { "schema": schema } } } })
}

fn schema_ref(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

fn string_props(names: &[&str]) -> Value {
    let props: serde_json::Map<String, Value> = names
        .iter()
        .map(|n| (n.to_string(), json!({ "type": "string" })))
        .collect();
    Value::Object(props)
}

/// RunTemplateOut's members: strings, and the token counts (absent with `?usage=0`).
fn run_template_out_props() -> Value {
    let mut props = string_props(&[
        "output",
        "result_id",
        "template_id",
        "provider",
        "model_id",
        "system_fingerprint",
    ]);
    props["usage"] = schema_ref("Usage");
    props
}

/// The document. `/api/admin/stats` is only known from here, which lets tests
/// check that route templates come from the document rather than from traffic.
pub fn document() -> Value {
    json!({
        "openapi": "3.1.0",
        "info": { "title": "Prompter API", "version": "0.1.0" },
        "paths": {
            "/api/prompt-templates": {
                "get": {
                    "operationId": "list_templates",
                    "responses": ok("200", json!({ "type": "array", "items": schema_ref("TemplateOut") }))
                },
                "post": {
                    "operationId": "create_template",
                    "requestBody": json_body("CreateTemplateRequest"),
                    "responses": ok("201", schema_ref("TemplateOut"))
                }
            },
            "/api/prompt-templates/{template_id}": {
                "get": {
                    "operationId": "get_template",
                    "parameters": template_id_param(),
                    "responses": ok("200", schema_ref("TemplateOut"))
                }
            },
            "/api/prompt-templates/{template_id}/ensure-version": {
                "post": {
                    "operationId": "ensure_version",
                    "parameters": template_id_param(),
                    "requestBody": json_body("EnsureVersionIn"),
                    "responses": ok("200", schema_ref("EnsureVersionOut"))
                }
            },
            "/api/prompt-templates/{template_id}/run": {
                "post": {
                    "operationId": "run_template",
                    "parameters": template_id_param(),
                    "requestBody": json_body("RunTemplateRequest"),
                    "responses": ok("200", schema_ref("RunTemplateOut"))
                }
            },
            "/healthz": {
                "get": {
                    "operationId": "healthz",
                    "responses": ok("200", json!({ "type": "object" }))
                }
            },
            "/api/admin/stats": {
                "get": {
                    "operationId": "admin_stats",
                    "responses": ok("200", json!({ "type": "object" }))
                }
            }
        },
        "components": {
            "schemas": {
                "CreateTemplateRequest": {
                    "type": "object", "required": ["name"],
                    "properties": string_props(&["name", "body"])
                },
                "TemplateOut": {
                    "type": "object", "required": ["id", "name", "body"],
                    "properties": string_props(&["id", "name", "body"])
                },
                "EnsureVersionIn": {
                    "type": "object", "required": ["provider", "model_id"],
                    "properties": string_props(&["provider", "model_id"])
                },
                "EnsureVersionOut": {
                    "type": "object",
                    "properties": string_props(&["provider", "model_id", "provider_version_key", "captured_at"])
                },
                "RunTemplateRequest": {
                    "type": "object", "required": ["provider", "model_id"],
                    "properties": {
                        "provider": { "type": "string" },
                        "model_id": { "type": "string" },
                        "variables": { "type": "object" }
                    }
                },
                "RunTemplateOut": {
                    "type": "object",
                    "properties": run_template_out_props()
                },
                "Usage": {
                    "type": "object", "required": ["prompt_tokens", "completion_tokens", "total_tokens"],
                    "properties": {
                        "prompt_tokens": { "type": "integer" },
                        "completion_tokens": { "type": "integer" },
                        "total_tokens": { "type": "integer" }
                    }
                }
            }
        }
    })
}
