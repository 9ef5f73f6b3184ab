//! `POST /v1/chat/completions` in the OpenAI-compatible emulator: the API key check, injected
//! failures, request validation with OpenAI's error shape, the call record, and the answer — a
//! JSON `chat.completion`, or the SSE stream built by `sse.rs`.

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use serde_json::{Value, json};

use super::sse::{sse_chunks, stream};
use super::state::{Ending, OpenAiCall, OpenAiState};
use crate::server::Recorder;

/// An error in OpenAI's shape, `{"error": {"message", "type", "param", "code"}}`.
struct ApiError {
    status: u16,
    body: Value,
}

impl ApiError {
    fn with_param(mut self, param: &str) -> Response {
        self.body["error"]["param"] = json!(param);
        self.into()
    }
}

impl From<ApiError> for Response {
    fn from(e: ApiError) -> Response {
        let mut resp = Response::new(Body::from(e.body.to_string()));
        *resp.status_mut() =
            StatusCode::from_u16(e.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        resp
    }
}

fn error(status: u16, message: &str, kind: &str, code: Option<&str>) -> ApiError {
    ApiError {
        status,
        body: json!({"error": {"message": message, "type": kind, "param": null, "code": code}}),
    }
}

fn invalid(message: impl AsRef<str>, param: &str) -> Response {
    error(400, message.as_ref(), "invalid_request_error", None).with_param(param)
}

/// Checks `response_format` the way the Chat Completions API does: `type` is `text`,
/// `json_object` or `json_schema`; a `json_schema` needs a `name` (letters, digits, `_`, `-`, at
/// most 64) and a `schema` object; with `strict: true` every object in the schema must list all
/// its properties in `required` and set `additionalProperties: false`. Returns the error answer,
/// if any.
fn check_response_format(format: &Value) -> Option<Response> {
    let Some(kind) = format.get("type").and_then(Value::as_str) else {
        return Some(invalid(
            "Missing required parameter: 'response_format.type'.",
            "response_format.type",
        ));
    };
    match kind {
        "text" | "json_object" => return None,
        "json_schema" => {}
        other => {
            return Some(error(
                400,
                &format!("Invalid value: '{other}'. Supported values are: 'json_object', 'json_schema', and 'text'."),
                "invalid_request_error",
                Some("invalid_value"),
            )
            .with_param("response_format.type"));
        }
    }
    let Some(spec) = format.get("json_schema").and_then(Value::as_object) else {
        return Some(
            error(
                400,
                "Missing required parameter: 'response_format.json_schema'.",
                "invalid_request_error",
                Some("missing_required_parameter"),
            )
            .with_param("response_format.json_schema"),
        );
    };
    let name = match spec.get("name").and_then(Value::as_str) {
        Some(n) => n,
        None => {
            return Some(
                error(
                    400,
                    "Missing required parameter: 'response_format.json_schema.name'.",
                    "invalid_request_error",
                    Some("missing_required_parameter"),
                )
                .with_param("response_format.json_schema.name"),
            );
        }
    };
    let name_ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if !name_ok {
        return Some(invalid(
            "Invalid 'response_format.json_schema.name': string does not match pattern. Expected a string that matches the pattern '^[a-zA-Z0-9_-]+$'.",
            "response_format.json_schema.name",
        ));
    }
    let Some(schema) = spec.get("schema").filter(|s| s.is_object()) else {
        return Some(invalid(
            format!(
                "Invalid schema for response_format '{name}': schema must be a JSON Schema of 'type: \"object\"'."
            ),
            "response_format",
        ));
    };
    if spec.get("strict").and_then(Value::as_bool) == Some(true)
        && let Some(problem) = strict_problem(schema, "()")
    {
        return Some(invalid(
            format!("Invalid schema for response_format '{name}': In context={problem}"),
            "response_format",
        ));
    }
    None
}

/// What strict mode refuses in `schema`, if anything: an object without
/// `additionalProperties: false`, or with a property missing from `required`.
fn strict_problem(schema: &Value, context: &str) -> Option<String> {
    if schema.get("type") == Some(&json!("object")) {
        if schema.get("additionalProperties") != Some(&json!(false)) {
            return Some(format!(
                "{context}, 'additionalProperties' is required to be supplied and to be false."
            ));
        }
        let props = schema.get("properties").and_then(Value::as_object);
        let required: Vec<&str> = schema
            .get("required")
            .and_then(Value::as_array)
            .map(|r| r.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        for (key, sub) in props.into_iter().flatten() {
            if !required.contains(&key.as_str()) {
                return Some(format!(
                    "{context}, 'required' is required to be supplied and to be an array including every key in properties. Missing '{key}'."
                ));
            }
            if let Some(p) = strict_problem(sub, &format!("('properties', '{key}')")) {
                return Some(p);
            }
        }
    }
    if let Some(items) = schema.get("items") {
        return strict_problem(items, &format!("{context}, ('items')"));
    }
    None
}

pub(super) fn chat_completions(
    state: &Recorder<OpenAiState>,
    headers: &HeaderMap,
    body: &Bytes,
) -> Response {
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(String::from);
    let want = state.read().api_key.clone();
    if let Some(key) = want
        && authorization.as_deref() != Some(format!("Bearer {key}").as_str())
    {
        return error(
            401,
            "Incorrect API key provided.",
            "invalid_request_error",
            Some("invalid_api_key"),
        )
        .into();
    }
    if let Some(status) = state.update(|s| s.failures.pop_front()) {
        return error(status, "emulated failure", "server_error", None).into();
    }
    let Ok(req) = serde_json::from_slice::<Value>(body) else {
        return error(
            400,
            "We could not parse the JSON body of your request.",
            "invalid_request_error",
            None,
        )
        .into();
    };
    let Some(model) = req.get("model").and_then(Value::as_str) else {
        return error(
            400,
            "you must provide a model parameter",
            "invalid_request_error",
            None,
        )
        .into();
    };
    let Some(msgs) = req.get("messages").and_then(Value::as_array) else {
        return error(
            400,
            "Missing required parameter: 'messages'.",
            "invalid_request_error",
            Some("missing_required_parameter"),
        )
        .with_param("messages");
    };
    let messages: Vec<(String, String)> = msgs
        .iter()
        .map(|m| {
            (
                m["role"].as_str().unwrap_or_default().to_string(),
                m["content"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    let response_format = req.get("response_format").cloned();
    if let Some(format) = &response_format {
        if let Some(refusal) = check_response_format(format) {
            return refusal;
        }
        let refuse = format["type"] == "json_schema"
            && state.update(|s| {
                s.refused_formats += usize::from(s.refuse_json_schema);
                s.refuse_json_schema
            });
        if refuse {
            return error(
                400,
                "Invalid parameter: 'response_format' of type 'json_schema' is not supported with this model. Learn more about supported models at the Structured Outputs guide: https://platform.openai.com/docs/guides/structured-outputs",
                "invalid_request_error",
                None,
            )
            .with_param("response_format");
        }
    }
    let call = OpenAiCall {
        model: model.to_string(),
        stream: req.get("stream").and_then(Value::as_bool).unwrap_or(false),
        messages,
        authorization,
        response_format,
    };
    let (queued, responder) = state.update(|s| {
        s.calls.push(call.clone());
        (s.answers.pop_front(), s.responder.clone())
    });
    let Some((answer, ending)) = queued.or_else(|| responder.map(|f| (f(&call), Ending::Done)))
    else {
        return error(500, "no scripted answer", "server_error", None).into();
    };
    if !call.stream {
        let body = json!({
            "id": "chatcmpl-emulator", "object": "chat.completion", "created": 1_700_000_000,
            "model": call.model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": answer}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}
        });
        let mut resp = Response::new(Body::from(body.to_string()));
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        return resp;
    }
    stream(sse_chunks(&call.model, &answer, &ending))
}
