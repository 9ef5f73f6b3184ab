//! Kibana Agent Builder: `POST /api/agent_builder/converse` (agent_builder.md §2–3, §5), the
//! supported successor of the Security AI Assistant's chat/complete, as an [`Assistant`].
//!
//! It uses the synchronous route: one JSON answer when the round is finished, whose
//! `conversation_id` continues the incident's conversation on the server (history is not
//! resent). A round paused for a confirmation prompt is reported as an error: the service never
//! confirms tool actions on anyone's behalf.

use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{KibanaError, KibanaHttp};
use crate::clients::ai::{Assistant, AssistantError, Reply, with_retries};

const CONVERSE: &str = "/api/agent_builder/converse";

#[derive(Debug, Serialize)]
struct ConverseRequest<'a> {
    agent_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    connector_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    conversation_id: Option<&'a str>,
    input: &'a str,
}

/// The parts of `ChatResponse` we rely on; everything else is optional across versions.
#[derive(Debug, Deserialize)]
struct ConverseResponse {
    conversation_id: String,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    response: ConverseAnswer,
}

#[derive(Debug, Default, Deserialize)]
struct ConverseAnswer {
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    prompt: Option<Value>,
    #[serde(default)]
    prompts: Option<Vec<Value>>,
}

#[derive(Clone)]
pub struct AgentBuilderClient {
    http: KibanaHttp,
    agent_id: String,
    connector_id: Option<String>,
    retries: u32,
}

impl AgentBuilderClient {
    pub fn new(
        http: KibanaHttp,
        agent_id: impl Into<String>,
        connector_id: Option<String>,
    ) -> Self {
        Self {
            http,
            agent_id: agent_id.into(),
            connector_id,
            retries: 0,
        }
    }

    pub fn with_retries(mut self, retries: u32) -> Self {
        self.retries = retries;
        self
    }

    async fn converse_once(
        &self,
        input: &str,
        conversation: Option<&str>,
    ) -> Result<Reply, KibanaError> {
        let body = ConverseRequest {
            agent_id: &self.agent_id,
            connector_id: self.connector_id.as_deref(),
            conversation_id: conversation,
            input,
        };
        let resp: ConverseResponse = self
            .http
            .json(self.http.request(Method::POST, CONVERSE).json(&body))
            .await?;
        let paused = resp.status.as_deref() == Some("awaiting_prompt")
            || resp.response.prompt.is_some()
            || resp
                .response
                .prompts
                .as_ref()
                .is_some_and(|p| !p.is_empty());
        if paused {
            return Err(KibanaError::Decode(
                "the agent paused for a confirmation prompt; triage-bot never confirms tool actions"
                    .into(),
            ));
        }
        let text = resp.response.message.unwrap_or_default();
        if text.trim().is_empty() {
            return Err(KibanaError::EmptyAnswer);
        }
        Ok(Reply {
            text,
            conversation_id: Some(resp.conversation_id),
        })
    }
}

#[async_trait::async_trait]
impl Assistant for AgentBuilderClient {
    fn name(&self) -> &'static str {
        "agent_builder"
    }

    /// The first `converse` creates the conversation and returns its id.
    async fn start_conversation(&self, _title: &str) -> Result<Option<String>, AssistantError> {
        Ok(None)
    }

    async fn ask(&self, prompt: &str, conversation: Option<&str>) -> Result<Reply, AssistantError> {
        Ok(with_retries(self.retries, || self.converse_once(prompt, conversation)).await?)
    }
}
