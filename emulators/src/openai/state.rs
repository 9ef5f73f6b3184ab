//! What the OpenAI-compatible emulator holds and records: the scripted answers with how each
//! ends ([`Ending`]), the responder, the recorded requests ([`OpenAiCall`]), the injected failures
//! and the required API key, all in [`OpenAiState`].
//!
//! It depends on no other OpenAI file.

use std::collections::VecDeque;
use std::sync::Arc;

/// One recorded chat-completions request.
#[derive(Debug, Clone)]
pub struct OpenAiCall {
    pub model: String,
    pub stream: bool,
    /// `(role, content)` of every message, in order.
    pub messages: Vec<(String, String)>,
    /// The `Authorization` header as sent.
    pub authorization: Option<String>,
    /// The `response_format` as sent (structured output), when there was one.
    pub response_format: Option<serde_json::Value>,
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
    /// Answer a `json_schema` response format with 400, as a model or server without
    /// structured outputs does.
    pub refuse_json_schema: bool,
    /// Requests answered with that refusal.
    pub refused_formats: usize,
}
