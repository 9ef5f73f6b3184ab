//! OpenAI-compatible chat-completions emulator: `POST /v1/chat/completions` with `stream: true`
//! answered as data-only server-sent events (agent_builder.md §7), the way OpenAI and compatible
//! local servers (vLLM, Ollama, llama.cpp) do.
//!
//! It owns the scripted answers, the record of every request and the injected failures. It does
//! not run a model, count tokens or implement tool calls.
//!
//! Wire facts it reproduces because clients trip over them:
//! - `Content-Type: text/event-stream`; each event is `data: <chunk JSON>\n\n`, no `event:` line;
//! - a first chunk with `delta.role` and empty content, content deltas, a last chunk with
//!   `delta: {}` and `finish_reason: "stop"`, a usage chunk with `choices: []`, then the literal
//!   `data: [DONE]`;
//! - a `: keep-alive` comment line and `\r\n` line ends on some events, and the body is written in
//!   chunks cut in the middle of events (even inside a multi-byte character);
//! - errors before the stream are `{"error":{"message","type","param","code"}}` with a 4xx/5xx;
//!   a scripted mid-stream error is a `data: {"error":{…}}` event followed by the end of the body;
//! - a missing or wrong `Authorization: Bearer` key gives 401 when a key is required.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use axum::routing::post;
use serde_json::{Value, json};

use crate::server::{self, Recorder};

/// One recorded chat-completions request.
#[derive(Debug, Clone)]
pub struct OpenAiCall {
    pub model: String,
    pub stream: bool,
    /// `(role, content)` of every message, in order.
    pub messages: Vec<(String, String)>,
    /// The `Authorization` header as sent.
    pub authorization: Option<String>,
}

impl OpenAiCall {
    /// Content of the last `user` message.
    pub fn last_user_content(&self) -> &str {
        self.messages
            .iter()
            .rev()
            .find(|(r, _)| r == "user")
            .map_or("", |(_, c)| c.as_str())
    }
}

/// How a scripted answer ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ending {
    /// `finish_reason: stop`, usage chunk, `data: [DONE]`.
    Done,
    /// The body ends after the content, without `[DONE]`.
    Truncated,
    /// A `data: {"error":…}` event, then the end.
    Error(String),
}

pub type OpenAiResponder = Arc<dyn Fn(&OpenAiCall) -> String + Send + Sync>;

#[derive(Default)]
pub struct OpenAiState {
    pub calls: Vec<OpenAiCall>,
    pub answers: VecDeque<(String, Ending)>,
    pub responder: Option<OpenAiResponder>,
    /// Statuses the next requests fail with (before any stream).
    pub failures: VecDeque<u16>,
    /// When set, requests must carry `Authorization: Bearer <key>`.
    pub api_key: Option<String>,
}

/// In-process OpenAI-compatible server. Cheap to clone; clones share one state.
#[derive(Clone)]
pub struct OpenAiEmulator {
    state: Arc<Recorder<OpenAiState>>,
    url: String,
}

impl OpenAiEmulator {
    /// Binds on `127.0.0.1:0` and starts serving.
    ///
    /// # Errors
    /// When the listener cannot be bound.
    pub async fn start() -> anyhow::Result<Self> {
        let state = Recorder::new(OpenAiState::default());
        let router = Router::new().route(
            "/v1/chat/completions",
            post({
                let state = state.clone();
                move |headers: HeaderMap, body: Bytes| {
                    let state = state.clone();
                    async move { chat_completions(&state, &headers, &body) }
                }
            }),
        );
        let addr = server::spawn(router).await?;
        Ok(Self {
            state,
            url: format!("http://{addr}"),
        })
    }

    /// The API root to configure as `OPENAI_BASE_URL` (ends in `/v1`).
    pub fn base_url(&self) -> String {
        format!("{}/v1", self.url)
    }

    pub fn recorder(&self) -> Arc<Recorder<OpenAiState>> {
        self.state.clone()
    }

    /// Requires `Authorization: Bearer <key>`.
    pub fn require_key(&self, key: &str) {
        self.state.update(|s| s.api_key = Some(key.to_string()));
    }

    /// Queues an answer that ends normally.
    pub fn push_answer(&self, text: impl Into<String>) {
        self.push_answer_ending(text, Ending::Done);
    }

    /// Queues an answer with a chosen ending.
    pub fn push_answer_ending(&self, text: impl Into<String>, ending: Ending) {
        let text = text.into();
        self.state.update(|s| s.answers.push_back((text, ending)));
    }

    /// Decides answers once the queue is empty.
    pub fn set_responder(&self, f: impl Fn(&OpenAiCall) -> String + Send + Sync + 'static) {
        let f: OpenAiResponder = Arc::new(f);
        self.state.update(|s| s.responder = Some(f));
    }

    /// The next `n` requests fail with `status` before streaming.
    pub fn fail_next(&self, n: usize, status: u16) {
        self.state
            .update(|s| s.failures.extend(std::iter::repeat_n(status, n)));
    }

    pub fn calls(&self) -> Vec<OpenAiCall> {
        self.state.read().calls.clone()
    }

    /// Waits until `pred` holds on the state.
    ///
    /// # Errors
    /// On timeout.
    pub async fn wait_until(
        &self,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&OpenAiState) -> bool,
    ) -> anyhow::Result<()> {
        self.state.wait_until(what, timeout, pred).await
    }
}

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

fn chat_completions(state: &Recorder<OpenAiState>, headers: &HeaderMap, body: &Bytes) -> Response {
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

/// The SSE body for an answer, cut into chunks at the middle of every event.
pub fn sse_chunks(model: &str, answer: &str, ending: &Ending) -> Vec<Bytes> {
    let chunk = |delta: Value, finish: Value| {
        json!({"id": "chatcmpl-emulator", "object": "chat.completion.chunk", "created": 1_700_000_000,
               "model": model, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
        .to_string()
    };
    let mut events = vec![
        ": keep-alive\n".to_string(),
        format!(
            "data: {}\r\n\r\n",
            chunk(json!({"role": "assistant", "content": ""}), Value::Null)
        ),
    ];
    let chars: Vec<char> = answer.chars().collect();
    let per = chars.len().div_ceil(5).max(1);
    for piece in chars.chunks(per) {
        let text: String = piece.iter().collect();
        events.push(format!(
            "data: {}\n\n",
            chunk(json!({"content": text}), Value::Null)
        ));
    }
    match ending {
        Ending::Done => {
            events.push(format!("data: {}\n\n", chunk(json!({}), json!("stop"))));
            events.push(format!(
                "data: {}\n\n",
                json!({"id": "chatcmpl-emulator", "object": "chat.completion.chunk", "created": 1_700_000_000,
                       "model": model, "choices": [], "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}})
            ));
            events.push("data: [DONE]\n\n".to_string());
        }
        Ending::Truncated => {}
        Ending::Error(msg) => events.push(format!(
            "data: {}\n\n",
            json!({"error": {"message": msg, "type": "server_error", "code": null}})
        )),
    }
    let mut bytes = Vec::new();
    let mut cuts = Vec::new();
    for e in &events {
        let start = bytes.len();
        bytes.extend_from_slice(e.as_bytes());
        cuts.push(start + e.len() / 2);
    }
    let bytes = Bytes::from(bytes);
    let mut out = Vec::new();
    let mut prev = 0;
    for cut in cuts.into_iter().filter(|c| *c > 0) {
        out.push(bytes.slice(prev..cut));
        prev = cut;
    }
    out.push(bytes.slice(prev..));
    out
}

fn stream(chunks: Vec<Bytes>) -> Response {
    let body = futures_util::stream::unfold(chunks.into_iter(), |mut it| async move {
        let c = it.next()?;
        // Separate writes, so the client sees the chunks one by one.
        tokio::task::yield_now().await;
        Some((Ok::<Bytes, Infallible>(c), it))
    });
    let mut resp = Response::new(Body::from_stream(body));
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_rejoin_to_a_well_formed_stream() {
        let all: Vec<u8> = sse_chunks("m", "Hôte ok", &Ending::Done)
            .iter()
            .flat_map(|b| b.to_vec())
            .collect();
        let text = String::from_utf8(all).unwrap();
        assert!(text.starts_with(": keep-alive\n"));
        assert!(text.ends_with("data: [DONE]\n\n"));
        assert!(text.contains("\"finish_reason\":\"stop\""));
        let truncated: Vec<u8> = sse_chunks("m", "x", &Ending::Truncated)
            .iter()
            .flat_map(|b| b.to_vec())
            .collect();
        assert!(!String::from_utf8(truncated).unwrap().contains("[DONE]"));
    }

    #[tokio::test]
    async fn requires_the_key_and_reports_openai_errors() {
        let emu = OpenAiEmulator::start().await.unwrap();
        emu.require_key("sk-1");
        let http = reqwest::Client::new();
        let r = http
            .post(format!("{}/chat/completions", emu.base_url()))
            .json(&json!({"model": "m", "messages": []}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401);
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["error"]["code"], "invalid_api_key");
    }
}
