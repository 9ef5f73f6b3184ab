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
//! - a missing or wrong `Authorization: Bearer` key gives 401 when a key is required;
//! - `response_format` is checked as the API checks it (`text`, `json_object`, or `json_schema`
//!   with a `name` and a `schema`; with `strict: true` every object must list all its properties
//!   in `required` and forbid additional ones), and can be refused the way a model without
//!   structured outputs refuses it (400, `param: "response_format"`).
//!
//! Layout, one way only: this file holds [`OpenAiEmulator`]; `completions.rs` the route, which
//! uses `sse.rs` for streamed answers; `state.rs` what they share, and imports neither.

mod completions;
mod sse;
mod state;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::http::HeaderMap;
use axum::routing::post;

use self::completions::chat_completions;
pub use self::sse::sse_chunks;
pub use self::state::{Ending, OpenAiCall, OpenAiResponder, OpenAiState};
use crate::server::{self, Recorder};

/// In-process OpenAI-compatible server. Cheap to clone; clones share one state.
#[derive(Clone)]
pub struct OpenAiEmulator {
    /// Failures injected into its answers (off by default).
    pub faults: crate::faults::Faults,
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
        let faults = crate::faults::Faults::default();
        let addr = server::spawn(router, &faults).await?;
        Ok(Self {
            faults,
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

    /// Refuse `response_format: {type: "json_schema"}` with OpenAI's 400, as a model or server
    /// without structured outputs does (`false`: accept it; the scripted answer is returned as
    /// it is, so script a JSON answer for structured requests).
    pub fn refuse_json_schema(&self, refuse: bool) {
        self.state.update(|s| s.refuse_json_schema = refuse);
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

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

    #[tokio::test]
    async fn response_formats_are_checked_recorded_or_refused() {
        let emu = OpenAiEmulator::start().await.unwrap();
        emu.set_responder(|_| "{}".into());
        let http = reqwest::Client::new();
        let post = |format: Value| {
            http.post(format!("{}/chat/completions", emu.base_url()))
                .json(
                    &json!({"model": "m", "messages": [{"role": "user", "content": "q"}],
                              "response_format": format}),
                )
                .send()
        };
        let strict = json!({"type": "json_schema", "json_schema": {"name": "triage", "strict": true,
            "schema": {"type": "object", "additionalProperties": false, "required": ["a"],
                       "properties": {"a": {"type": "array", "items": {"type": "string"}}}}}});
        let r = post(strict.clone()).await.unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(emu.calls()[0].response_format.as_ref(), Some(&strict));

        let loose = json!({"type": "json_schema", "json_schema": {"name": "triage", "strict": true,
            "schema": {"type": "object", "properties": {"a": {"type": "string"}}}}});
        let r = post(loose).await.unwrap();
        assert_eq!(r.status(), 400);
        let v: Value = r.json().await.unwrap();
        assert!(
            v["error"]["message"]
                .as_str()
                .unwrap()
                .contains("'additionalProperties' is required"),
            "{v}"
        );
        let r = post(json!({"type": "xml"})).await.unwrap();
        assert_eq!(r.status(), 400);
        let r = post(json!({"type": "json_schema", "json_schema": {"schema": {}}}))
            .await
            .unwrap();
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["error"]["param"], "response_format.json_schema.name");

        emu.refuse_json_schema(true);
        let r = post(strict).await.unwrap();
        assert_eq!(r.status(), 400);
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["error"]["param"], "response_format");
        assert_eq!(v["error"]["type"], "invalid_request_error");
        assert_eq!(emu.calls().len(), 1, "refused requests are not answered");
        assert_eq!(emu.recorder().read().refused_formats, 1);
    }
}
