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

fn error(status: u16, message: &str, kind: &str, code: Option<&str>) -> Response {
    let body = json!({"error": {"message": message, "type": kind, "param": null, "code": code}});
    let mut resp = Response::new(Body::from(body.to_string()));
    *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
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
        );
    }
    if let Some(status) = state.update(|s| s.failures.pop_front()) {
        return error(status, "emulated failure", "server_error", None);
    }
    let Ok(req) = serde_json::from_slice::<Value>(body) else {
        return error(
            400,
            "We could not parse the JSON body of your request.",
            "invalid_request_error",
            None,
        );
    };
    let Some(model) = req.get("model").and_then(Value::as_str) else {
        return error(
            400,
            "you must provide a model parameter",
            "invalid_request_error",
            None,
        );
    };
    let Some(msgs) = req.get("messages").and_then(Value::as_array) else {
        return error(
            400,
            "Missing required parameter: 'messages'.",
            "invalid_request_error",
            Some("missing_required_parameter"),
        );
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
    let call = OpenAiCall {
        model: model.to_string(),
        stream: req.get("stream").and_then(Value::as_bool).unwrap_or(false),
        messages,
        authorization,
    };
    let (queued, responder) = state.update(|s| {
        s.calls.push(call.clone());
        (s.answers.pop_front(), s.responder.clone())
    });
    let Some((answer, ending)) = queued.or_else(|| responder.map(|f| (f(&call), Ending::Done)))
    else {
        return error(500, "no scripted answer", "server_error", None);
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
