//! The [`Assistant`] trait — one interface over every AI backend — and the choice of backend
//! from configuration ([`build`]).
//!
//! Implementations: the Kibana Security AI Assistant `chat/complete`
//! ([`crate::clients::kibana::assistant::AssistantClient`]), Kibana Agent Builder `converse`
//! ([`crate::clients::kibana::agent_builder::AgentBuilderClient`]) and any OpenAI-compatible
//! `/chat/completions` server ([`crate::clients::openai::OpenAiClient`]). Each owns its wire
//! format; this module owns what they have in common: the reply, the error, and retrying.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use crate::clients::Retryable;
use crate::clients::kibana::KibanaError;
use crate::clients::openai::OpenAiError;
use crate::config::Settings;

use crate::config::AssistantKind;

/// The assistant's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The answer text, de-anonymised and with content-reference markers removed.
    pub text: String,
    /// The conversation the exchange belongs to, when the backend keeps one.
    pub conversation_id: Option<String>,
}

/// Why asking failed. The message never contains credentials.
#[derive(Debug, thiserror::Error)]
pub enum AssistantError {
    #[error(transparent)]
    Kibana(#[from] KibanaError),
    #[error(transparent)]
    OpenAi(#[from] OpenAiError),
}

impl Retryable for AssistantError {
    fn is_retryable(&self) -> bool {
        match self {
            AssistantError::Kibana(e) => e.is_retryable(),
            AssistantError::OpenAi(e) => e.is_retryable(),
        }
    }
}

/// One AI backend.
#[async_trait::async_trait]
pub trait Assistant: Send + Sync {
    /// A short name for logs and the replay output ("kibana", "agent_builder", "openai").
    fn name(&self) -> &'static str;

    /// Opens a conversation for an incident, when the backend needs one made in advance (the
    /// streamed Kibana path never returns an id). `Ok(None)`: the first answer carries it.
    async fn start_conversation(&self, title: &str) -> Result<Option<String>, AssistantError>;

    /// Asks one question, in `conversation` when given (its history stays with the backend, or
    /// with the client for stateless backends), else as a stand-alone question.
    async fn ask(&self, prompt: &str, conversation: Option<&str>) -> Result<Reply, AssistantError>;

    /// Asks the triage question. A backend that can hold the model to the triage answer's JSON
    /// schema (`{summary, investigation[], remediation[]}`) does; the others ask as [`Self::ask`]
    /// does and the markdown answer is parsed.
    async fn ask_triage(
        &self,
        prompt: &str,
        conversation: Option<&str>,
    ) -> Result<Reply, AssistantError> {
        self.ask(prompt, conversation).await
    }
}

/// Why the assistant is asked: the label of `triage_bot_ai_calls_total{purpose}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// The triage of an alert.
    Triage,
    /// "Who handles windows alerts?"
    Handler,
    /// A question asked in the incident's Slack thread.
    FollowUp,
    /// A revision of the proposal an analyst asked for.
    Revision,
}

impl Purpose {
    pub fn as_str(self) -> &'static str {
        match self {
            Purpose::Triage => "triage",
            Purpose::Handler => "handler",
            Purpose::FollowUp => "followup",
            Purpose::Revision => "revision",
        }
    }
}

/// Counts one question to the assistant (`triage_bot_ai_calls_total{purpose}` in /metrics; the
/// calls per alert are its rate over `triage_bot_alerts_ingested_total`'s).
pub fn count_call(purpose: Purpose) {
    metrics::counter!("triage_bot_ai_calls_total", "purpose" => purpose.as_str()).increment(1);
}

/// Builds the configured assistant, timed (`triage_bot_ai_call_seconds`).
pub fn build(settings: &Settings) -> anyhow::Result<Arc<dyn Assistant>> {
    Ok(Arc::new(Timed(backend(settings)?)))
}

/// Every AI call's latency, by backend and outcome, whichever backend answers.
struct Timed(Arc<dyn Assistant>);

#[async_trait::async_trait]
impl Assistant for Timed {
    fn name(&self) -> &'static str {
        self.0.name()
    }

    async fn start_conversation(&self, title: &str) -> Result<Option<String>, AssistantError> {
        self.0.start_conversation(title).await
    }

    async fn ask(&self, prompt: &str, conversation: Option<&str>) -> Result<Reply, AssistantError> {
        let started = std::time::Instant::now();
        let reply = self.0.ask(prompt, conversation).await;
        self.observe(started, &reply);
        reply
    }

    // Forwarded, not left to the default: the backend's own triage call (structured output)
    // must be the one that runs.
    async fn ask_triage(
        &self,
        prompt: &str,
        conversation: Option<&str>,
    ) -> Result<Reply, AssistantError> {
        let started = std::time::Instant::now();
        let reply = self.0.ask_triage(prompt, conversation).await;
        self.observe(started, &reply);
        reply
    }
}

impl Timed {
    fn observe(&self, started: std::time::Instant, reply: &Result<Reply, AssistantError>) {
        let outcome = if reply.is_ok() { "ok" } else { "error" };
        metrics::histogram!("triage_bot_ai_call_seconds", "backend" => self.0.name(), "outcome" => outcome)
            .record(started.elapsed().as_secs_f64());
    }
}

fn backend(settings: &Settings) -> anyhow::Result<Arc<dyn Assistant>> {
    let a = &settings.triage.assistant;
    Ok(match a.kind {
        AssistantKind::Kibana => {
            let http = crate::clients::kibana::KibanaHttp::new(&settings.kibana)?;
            Arc::new(
                crate::clients::kibana::assistant::AssistantClient::new(
                    http,
                    settings.kibana.connector_id.clone(),
                    settings.kibana.stream,
                )
                .with_prompt_id(a.kibana_prompt_id.clone())
                .with_retries(a.retries),
            )
        }
        AssistantKind::AgentBuilder => {
            let http = crate::clients::kibana::KibanaHttp::new(&settings.kibana)?;
            Arc::new(
                crate::clients::kibana::agent_builder::AgentBuilderClient::new(
                    http,
                    a.agent_builder_agent_id.clone(),
                    Some(settings.kibana.connector_id.clone()),
                )
                .with_retries(a.retries),
            )
        }
        AssistantKind::OpenAi => {
            let o = a
                .openai
                .as_ref()
                .ok_or_else(|| anyhow::anyhow!("ASSISTANT=openai needs OPENAI_MODEL"))?;
            Arc::new(crate::clients::openai::OpenAiClient::new(o)?.with_retries(a.retries))
        }
    })
}

/// Runs `call` again (up to `retries` more times, with a short exponential backoff) while it
/// fails with an error that says a retry can help. Anything else is returned at once.
pub async fn with_retries<T, E, F, Fut>(retries: u32, mut call: F) -> Result<T, E>
where
    E: Retryable + std::fmt::Display,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let mut attempt = 0;
    loop {
        match call().await {
            Err(e) if e.is_retryable() && attempt < retries => {
                attempt += 1;
                let wait = Duration::from_millis(200 * 2u64.pow(attempt.min(6)));
                tracing::warn!(error = %e, attempt, "assistant call failed; retrying");
                tokio::time::sleep(wait).await;
            }
            other => return other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[tokio::test]
    async fn retries_only_retryable_failures() {
        let n = AtomicU32::new(0);
        let r: Result<(), KibanaError> = with_retries(3, || {
            n.fetch_add(1, Ordering::SeqCst);
            async {
                Err(KibanaError::Status {
                    status: 400,
                    message: "bad".into(),
                })
            }
        })
        .await;
        assert!(r.is_err());
        assert_eq!(n.load(Ordering::SeqCst), 1, "a 400 is not retried");

        let n = AtomicU32::new(0);
        let r: Result<u8, KibanaError> = with_retries(3, || {
            let k = n.fetch_add(1, Ordering::SeqCst);
            async move {
                if k < 2 {
                    Err(KibanaError::Status {
                        status: 503,
                        message: "busy".into(),
                    })
                } else {
                    Ok(7)
                }
            }
        })
        .await;
        assert_eq!(r.unwrap(), 7);
        assert_eq!(n.load(Ordering::SeqCst), 3);
    }
}
