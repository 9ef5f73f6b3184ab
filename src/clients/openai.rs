//! Any OpenAI-compatible `POST {base}/chat/completions` server (OpenAI, vLLM, Ollama, LM Studio,
//! llama.cpp …), streamed as server-sent events (agent_builder.md §7), as an [`Assistant`].
//!
//! The stream is parsed with `eventsource-stream` (events split on blank lines, comment lines
//! dropped, `\r\n` accepted, events split across reads reassembled); each `data:` is either the
//! literal `[DONE]` terminator or a `chat.completion.chunk` whose `choices[0].delta.content` is
//! appended. A body that ends without `[DONE]`, or a chunk carrying an `error`, is a failure.
//!
//! The API is stateless, so this client keeps each conversation's history in memory and resends
//! it with every question; after a restart a conversation continues without its earlier turns.
//!
//! Structured output (`OPENAI_STRUCTURED_OUTPUT`): the triage question carries
//! `response_format: {type: "json_schema", json_schema: {name, schema, strict: true}}` with the
//! triage answer's schema, so the model answers `{"summary", "investigation", "remediation"}`.
//! A server that refuses it (400/422 naming `response_format` or `json_schema`) is asked again
//! without it, and not offered it again: its markdown answer is parsed instead.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use eventsource_stream::Eventsource;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::Mutex;

use super::{Retryable, retryable_status};
use crate::clients::ai::{Assistant, AssistantError, Reply, with_retries};
use crate::config::OpenAiSettings;
use crate::secret::Secret;

#[derive(Debug, thiserror::Error)]
pub enum OpenAiError {
    #[error("cannot reach the model server: {0}")]
    Transport(String),
    #[error("the model server answered {status}: {message}")]
    Status { status: u16, message: String },
    #[error("the model stream failed: {0}")]
    Stream(String),
    #[error("the model stream ended without [DONE]")]
    Truncated,
    #[error("the model's answer was empty")]
    EmptyAnswer,
    #[error("the model server refused the structured-output response format: {0}")]
    FormatRefused(String),
}

impl Retryable for OpenAiError {
    fn is_retryable(&self) -> bool {
        match self {
            OpenAiError::Transport(_) | OpenAiError::Truncated | OpenAiError::EmptyAnswer => true,
            OpenAiError::Status { status, .. } => retryable_status(*status),
            OpenAiError::Stream(_) | OpenAiError::FormatRefused(_) => false,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Message {
    pub role: &'static str,
    pub content: String,
}

#[derive(Serialize)]
struct ChatRequest<'a> {
    model: &'a str,
    stream: bool,
    messages: &'a [Message],
    #[serde(skip_serializing_if = "Option::is_none")]
    response_format: Option<&'a Value>,
}

/// The triage answer's shape, as an OpenAI `json_schema` response format (strict: every property
/// required, nothing else allowed).
pub static TRIAGE_RESPONSE_FORMAT: LazyLock<Value> = LazyLock::new(|| {
    let commands =
        |what: &str| json!({"type": "array", "description": what, "items": {"type": "string"}});
    json!({
        "type": "json_schema",
        "json_schema": {
            "name": "triage",
            "strict": true,
            "schema": {
                "type": "object",
                "properties": {
                    "summary": {"type": "string", "description": "One paragraph: what happened, on which host and IP, and how severe it is."},
                    "investigation": commands("Read-only PowerShell commands that gather evidence on the affected host, one command per item."),
                    "remediation": commands("PowerShell commands that contain or remediate the threat on the affected host, one command per item."),
                },
                "required": ["summary", "investigation", "remediation"],
                "additionalProperties": false,
            },
        },
    })
});

#[derive(Deserialize)]
struct Chunk {
    #[serde(default)]
    choices: Vec<Choice>,
    #[serde(default)]
    error: Option<Value>,
}

#[derive(Deserialize)]
struct Choice {
    #[serde(default)]
    index: u32,
    #[serde(default)]
    delta: Delta,
}

#[derive(Default, Deserialize)]
struct Delta {
    #[serde(default)]
    content: Option<String>,
}

#[derive(Clone)]
pub struct OpenAiClient {
    http: reqwest::Client,
    url: String,
    key: Option<Secret>,
    model: String,
    retries: u32,
    conversations: Arc<Mutex<HashMap<String, Vec<Message>>>>,
    structured_output: bool,
    /// Set once the server refused the response format: it is not offered again.
    format_refused: Arc<AtomicBool>,
}

impl OpenAiClient {
    pub fn new(settings: &OpenAiSettings) -> anyhow::Result<Self> {
        let builder = reqwest::Client::builder()
            .timeout(settings.timeout)
            .connect_timeout(Duration::from_secs(10));
        let http = super::tls::apply(builder, &settings.tls, "the OpenAI-compatible server")
            .map_err(|e| anyhow::anyhow!("OPENAI_CA_FILE: {e}"))?
            .build()?;
        Ok(Self {
            http,
            url: format!("{}/chat/completions", settings.base_url),
            key: settings.api_key.clone(),
            model: settings.model.clone(),
            retries: 0,
            conversations: Arc::default(),
            structured_output: settings.structured_output,
            format_refused: Arc::default(),
        })
    }

    pub fn with_retries(mut self, retries: u32) -> Self {
        self.retries = retries;
        self
    }

    /// One streamed completion of `messages`, held to `response_format` when one is given.
    pub async fn complete(
        &self,
        messages: &[Message],
        response_format: Option<&Value>,
    ) -> Result<String, OpenAiError> {
        let body = ChatRequest {
            model: &self.model,
            stream: true,
            messages,
            response_format,
        };
        let mut rb = self
            .http
            .post(&self.url)
            .header("accept", "text/event-stream")
            .json(&body);
        if let Some(k) = &self.key {
            rb = rb.bearer_auth(k.expose());
        }
        let resp = rb.send().await.map_err(|e| {
            OpenAiError::Transport(super::tls::describe(&e.without_url(), "OPENAI"))
        })?;
        let status = resp.status().as_u16();
        if !(200..300).contains(&status) {
            let text = resp.text().await.unwrap_or_default();
            if response_format.is_some() && refuses_format(status, &text) {
                return Err(OpenAiError::FormatRefused(error_message(&text)));
            }
            return Err(OpenAiError::Status {
                status,
                message: error_message(&text),
            });
        }
        collect_stream(resp.bytes_stream()).await
    }
}

/// A 400 or 422 that is about the response format (OpenAI names it in `param`; vLLM, Ollama
/// and llama.cpp in the message): the server cannot do structured output.
fn refuses_format(status: u16, body: &str) -> bool {
    let lower = body.to_lowercase();
    matches!(status, 400 | 422)
        && (lower.contains("response_format")
            || lower.contains("json_schema")
            || lower.contains("structured output"))
}

/// `{"error":{"message":…}}` (OpenAI and most compatible servers), else the start of the body.
fn error_message(body: &str) -> String {
    let v: Option<Value> = serde_json::from_str(body).ok();
    v.as_ref()
        .and_then(|v| {
            v.pointer("/error/message")
                .or_else(|| v.get("error"))
                .or_else(|| v.get("message"))
        })
        .and_then(Value::as_str)
        .map(String::from)
        .unwrap_or_else(|| body.chars().take(300).collect())
}

/// Reads an SSE body to its `[DONE]`, concatenating choice 0's content deltas.
pub async fn collect_stream<S, B, E>(body: S) -> Result<String, OpenAiError>
where
    S: futures_util::Stream<Item = Result<B, E>> + Unpin,
    B: AsRef<[u8]>,
    E: std::fmt::Display,
{
    let mut events = body.eventsource();
    let mut text = String::new();
    while let Some(ev) = events.next().await {
        let ev = ev.map_err(|e| OpenAiError::Transport(e.to_string()))?;
        let data = ev.data.trim();
        if data.is_empty() {
            continue;
        }
        if data == "[DONE]" {
            return if text.trim().is_empty() {
                Err(OpenAiError::EmptyAnswer)
            } else {
                Ok(text)
            };
        }
        let chunk: Chunk = serde_json::from_str(data)
            .map_err(|e| OpenAiError::Stream(format!("undecodable chunk ({e})")))?;
        if let Some(err) = chunk.error {
            let msg = err
                .get("message")
                .and_then(Value::as_str)
                .map(String::from)
                .unwrap_or_else(|| err.to_string());
            return Err(OpenAiError::Stream(msg));
        }
        for c in chunk.choices.into_iter().filter(|c| c.index == 0) {
            if let Some(d) = c.delta.content {
                text.push_str(&d);
            }
        }
    }
    Err(OpenAiError::Truncated)
}

#[async_trait::async_trait]
impl Assistant for OpenAiClient {
    fn name(&self) -> &'static str {
        "openai"
    }

    async fn start_conversation(&self, _title: &str) -> Result<Option<String>, AssistantError> {
        let id = uuid::Uuid::new_v4().to_string();
        self.conversations
            .lock()
            .await
            .insert(id.clone(), Vec::new());
        Ok(Some(id))
    }

    async fn ask(&self, prompt: &str, conversation: Option<&str>) -> Result<Reply, AssistantError> {
        self.ask_with(prompt, conversation, None).await
    }

    async fn ask_triage(
        &self,
        prompt: &str,
        conversation: Option<&str>,
    ) -> Result<Reply, AssistantError> {
        if !self.structured_output || self.format_refused.load(Ordering::Relaxed) {
            return self.ask_with(prompt, conversation, None).await;
        }
        match self
            .ask_with(prompt, conversation, Some(&TRIAGE_RESPONSE_FORMAT))
            .await
        {
            Err(AssistantError::OpenAi(OpenAiError::FormatRefused(why))) => {
                tracing::warn!(reason = %why, "the model server refuses structured output; asking for markdown instead from now on");
                self.format_refused.store(true, Ordering::Relaxed);
                self.ask_with(prompt, conversation, None).await
            }
            other => other,
        }
    }
}

impl OpenAiClient {
    async fn ask_with(
        &self,
        prompt: &str,
        conversation: Option<&str>,
        response_format: Option<&Value>,
    ) -> Result<Reply, AssistantError> {
        let mut messages = match conversation {
            Some(id) => self
                .conversations
                .lock()
                .await
                .get(id)
                .cloned()
                .unwrap_or_default(),
            None => Vec::new(),
        };
        messages.push(Message {
            role: "user",
            content: prompt.to_string(),
        });
        let text = with_retries(self.retries, || self.complete(&messages, response_format)).await?;
        if let Some(id) = conversation {
            messages.push(Message {
                role: "assistant",
                content: text.clone(),
            });
            self.conversations
                .lock()
                .await
                .insert(id.to_string(), messages);
        }
        Ok(Reply {
            text,
            conversation_id: conversation.map(String::from),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn run(chunks: Vec<&'static [u8]>) -> Result<String, OpenAiError> {
        let s = futures_util::stream::iter(
            chunks
                .into_iter()
                .map(|c| Ok::<_, std::convert::Infallible>(bytes::Bytes::from_static(c))),
        );
        collect_stream(s).await
    }

    const BODY: &[u8] = b": keep-alive\r\n\r\ndata: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"finish_reason\":null}]}\r\n\r\ndata: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"H\xc3\xb4te \"},\"finish_reason\":null}]}\n\ndata: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"ok\"},\"finish_reason\":null}]}\n\ndata: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\ndata: {\"choices\":[],\"usage\":{\"total_tokens\":3}}\n\ndata: [DONE]\n\n";

    #[tokio::test]
    async fn deltas_concatenate_across_any_split() {
        for split in 1..BODY.len() {
            let (a, b) = BODY.split_at(split);
            let r = run(vec![a, b]).await;
            assert_eq!(r.unwrap(), "Hôte ok", "split at {split}");
        }
    }

    #[tokio::test]
    async fn missing_done_error_chunk_and_empty_are_failures() {
        let r = run(vec![
            b"data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"x\"}}]}\n\n",
        ])
        .await;
        assert!(matches!(r, Err(OpenAiError::Truncated)));
        let r = run(vec![
            b"data: {\"error\":{\"message\":\"overloaded\"}}\n\ndata: [DONE]\n\n",
        ])
        .await;
        assert!(matches!(r, Err(OpenAiError::Stream(m)) if m == "overloaded"));
        let r = run(vec![b"data: [DONE]\n\n"]).await;
        assert!(matches!(r, Err(OpenAiError::EmptyAnswer)));
    }

    #[test]
    fn format_refusals_are_told_from_other_errors() {
        let openai = r#"{"error":{"message":"Invalid parameter: 'response_format' of type 'json_schema' is not supported with this model.","type":"invalid_request_error","param":"response_format","code":null}}"#;
        assert!(refuses_format(400, openai));
        assert!(refuses_format(
            422,
            r#"{"detail":"json_schema is not supported"}"#
        ));
        assert!(!refuses_format(
            400,
            r#"{"error":{"message":"context length exceeded"}}"#
        ));
        assert!(
            !refuses_format(500, openai),
            "a 5xx is an outage, not a refusal"
        );
        let format = &*TRIAGE_RESPONSE_FORMAT;
        assert_eq!(format["json_schema"]["strict"], true);
        assert_eq!(
            format["json_schema"]["schema"]["required"],
            json!(["summary", "investigation", "remediation"])
        );
    }

    #[test]
    fn error_bodies() {
        assert_eq!(
            error_message(
                r#"{"error":{"message":"Incorrect API key","type":"invalid_request_error"}}"#
            ),
            "Incorrect API key"
        );
        assert_eq!(
            error_message(r#"{"error":"model not found"}"#),
            "model not found"
        );
        assert_eq!(error_message("Bad Gateway"), "Bad Gateway");
    }
}
