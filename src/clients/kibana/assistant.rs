//! The Kibana Security AI Assistant: `POST /api/security_ai_assistant/chat/complete`, and the
//! conversation that keeps an incident's triage and thread questions together.
//!
//! Both response shapes are accepted whatever was asked for, because older Kibana always
//! streamed: an NDJSON stream of `{"type":"content","payload":…}` lines (chunk boundaries
//! anywhere, unknown line types skipped, no terminator, an empty stream is a failure), or one JSON
//! body with `data`, `conversationId` and `replacements`.

use std::sync::LazyLock;

use futures_util::StreamExt;
use regex::Regex;
use reqwest::Method;
use serde::Serialize;

use super::wire::{
    ApiConfig, ChatCompleteResponse, ConversationResponse, CreateConversationRequest, StreamLine,
};
use super::{KibanaError, KibanaHttp};
use crate::clients::ai::{Assistant, AssistantError, with_retries};

pub use crate::clients::ai::Reply;

const CHAT_COMPLETE: &str = "/api/security_ai_assistant/chat/complete";
const CONVERSATIONS: &str = "/api/security_ai_assistant/current_user/conversations";

static REFERENCE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\{reference\([0-9a-zA-Z_-]+\)\}").expect("valid regex"));

/// The chat/complete body (kibana.md §1.1); `promptId` selects a system prompt stored in Kibana.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ChatRequest<'a> {
    connector_id: &'a str,
    persist: bool,
    is_stream: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    conversation_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    prompt_id: Option<&'a str>,
    messages: [Message<'a>; 1],
}

#[derive(Debug, Serialize)]
struct Message<'a> {
    role: &'a str,
    content: &'a str,
}

#[derive(Clone)]
pub struct AssistantClient {
    http: KibanaHttp,
    connector_id: String,
    stream: bool,
    prompt_id: Option<String>,
    retries: u32,
}

impl AssistantClient {
    pub fn new(http: KibanaHttp, connector_id: impl Into<String>, stream: bool) -> Self {
        Self {
            http,
            connector_id: connector_id.into(),
            stream,
            prompt_id: None,
            retries: 0,
        }
    }

    /// Sends `promptId` with every question (a system prompt from Kibana's prompts API).
    pub fn with_prompt_id(mut self, prompt_id: Option<String>) -> Self {
        self.prompt_id = prompt_id;
        self
    }

    /// Extra attempts for retryable failures.
    pub fn with_retries(mut self, retries: u32) -> Self {
        self.retries = retries;
        self
    }

    /// Creates a conversation, so the streamed path (which never returns an id) can continue it.
    pub async fn create_conversation(&self, title: &str) -> Result<String, KibanaError> {
        let body = CreateConversationRequest {
            title,
            category: "assistant",
            api_config: ApiConfig {
                connector_id: &self.connector_id,
                action_type_id: ".gen-ai",
            },
            exclude_from_last_conversation_storage: true,
        };
        let resp: ConversationResponse = with_retries(self.retries, || {
            self.http
                .json(self.http.request(Method::POST, CONVERSATIONS).json(&body))
        })
        .await?;
        Ok(resp.id)
    }

    /// Asks one question. With a conversation id the exchange is persisted in it; without one
    /// nothing is stored (a stand-alone question such as "who handles windows alerts?").
    pub async fn ask(
        &self,
        content: &str,
        conversation_id: Option<&str>,
    ) -> Result<Reply, KibanaError> {
        with_retries(self.retries, || self.ask_once(content, conversation_id)).await
    }

    async fn ask_once(
        &self,
        content: &str,
        conversation_id: Option<&str>,
    ) -> Result<Reply, KibanaError> {
        let body = ChatRequest {
            connector_id: &self.connector_id,
            // conversationId is ignored unless persist is true.
            persist: conversation_id.is_some(),
            is_stream: self.stream,
            conversation_id,
            prompt_id: self.prompt_id.as_deref(),
            messages: [Message {
                role: "user",
                content,
            }],
        };
        let resp = self
            .http
            .send(self.http.request(Method::POST, CHAT_COMPLETE).json(&body))
            .await?;
        let is_json = resp
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|ct| ct.starts_with("application/json"));
        let mut acc = AnswerAccumulator::default();
        let mut stream = resp.bytes_stream();
        while let Some(chunk) = stream.next().await {
            acc.push(&chunk.map_err(|e| KibanaError::Transport(e.without_url().to_string()))?);
        }
        let mut reply = acc.finish(is_json)?;
        if reply.conversation_id.is_none() {
            reply.conversation_id = conversation_id.map(String::from);
        }
        Ok(reply)
    }
}

#[async_trait::async_trait]
impl Assistant for AssistantClient {
    fn name(&self) -> &'static str {
        "kibana"
    }

    async fn start_conversation(&self, title: &str) -> Result<Option<String>, AssistantError> {
        Ok(Some(self.create_conversation(title).await?))
    }

    async fn ask(&self, prompt: &str, conversation: Option<&str>) -> Result<Reply, AssistantError> {
        Ok(AssistantClient::ask(self, prompt, conversation).await?)
    }
}

/// Collects a chat/complete body that may arrive in arbitrary chunks, in either shape.
#[derive(Default)]
pub struct AnswerAccumulator {
    buf: Vec<u8>,
    text: String,
    conversation_id: Option<String>,
    content_lines: usize,
}

impl AnswerAccumulator {
    pub fn push(&mut self, chunk: &[u8]) {
        self.buf.extend_from_slice(chunk);
        while let Some(pos) = self.buf.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.buf.drain(..=pos).collect();
            self.line(&line[..line.len() - 1]);
        }
    }

    fn line(&mut self, line: &[u8]) {
        let trimmed = line.trim_ascii();
        if trimmed.is_empty() {
            return;
        }
        // A whole non-streamed body (one line of JSON) in a streamed slot.
        if let Ok(full) = serde_json::from_slice::<ChatCompleteResponse>(trimmed) {
            self.take_full(full);
            return;
        }
        match serde_json::from_slice::<StreamLine>(trimmed) {
            Ok(StreamLine {
                kind: Some(kind),
                payload,
            }) if kind == "content" => {
                if let Some(delta) = payload.as_str() {
                    self.text.push_str(delta);
                    self.content_lines += 1;
                }
            }
            Ok(other) => {
                tracing::debug!(kind = ?other.kind, "skipping non-content assistant stream line")
            }
            Err(_) => tracing::debug!("skipping unparseable assistant stream line"),
        }
    }

    fn take_full(&mut self, full: ChatCompleteResponse) {
        let mut text = full.data;
        // Kibana returns the anonymised text; put the real values back ourselves.
        for (placeholder, original) in &full.replacements {
            text = text.replace(placeholder, original);
        }
        self.text.push_str(&text);
        self.content_lines += 1;
        self.conversation_id = full.conversation_id.or(self.conversation_id.take());
    }

    pub fn finish(mut self, _asked_json: bool) -> Result<Reply, KibanaError> {
        let rest = std::mem::take(&mut self.buf);
        self.line(&rest);
        if self.content_lines == 0 || self.text.trim().is_empty() {
            return Err(KibanaError::EmptyAnswer);
        }
        let text = REFERENCE.replace_all(&self.text, "").into_owned();
        Ok(Reply {
            text,
            conversation_id: self.conversation_id,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(chunks: &[&[u8]]) -> Result<Reply, KibanaError> {
        let mut acc = AnswerAccumulator::default();
        for c in chunks {
            acc.push(c);
        }
        acc.finish(false)
    }

    #[test]
    fn ndjson_split_mid_line_and_unknown_types_skipped() {
        let body = b"{\"payload\":\"Hello \",\"type\":\"content\"}\n{\"type\":\"debug\",\"payload\":\"x\"}\n{\"payload\":\"world {reference(ab1)}\",\"type\":\"content\"}";
        for split in 1..body.len() {
            let r = run(&[&body[..split], &body[split..]]).unwrap();
            assert_eq!(r.text, "Hello world ", "split at {split}");
            assert_eq!(r.conversation_id, None);
        }
    }

    #[test]
    fn single_json_body_with_replacements() {
        let r = run(&[br#"{"connector_id":"c","data":"user 5b9c is bad","replacements":{"5b9c":"jdoe"},"status":"ok","conversationId":"conv1"}"#]).unwrap();
        assert_eq!(r.text, "user jdoe is bad");
        assert_eq!(r.conversation_id.as_deref(), Some("conv1"));
    }

    #[test]
    fn empty_stream_is_an_error() {
        assert!(matches!(run(&[b""]), Err(KibanaError::EmptyAnswer)));
        assert!(matches!(
            run(&[b"{\"type\":\"debug\",\"payload\":\"x\"}\n"]),
            Err(KibanaError::EmptyAnswer)
        ));
    }

    #[test]
    fn multibyte_text_split_across_chunks() {
        let body = "{\"payload\":\"Hôte attaqué\",\"type\":\"content\"}\n".as_bytes();
        let r = run(&[&body[..15], &body[15..]]).unwrap();
        assert_eq!(r.text, "Hôte attaqué");
    }
}
