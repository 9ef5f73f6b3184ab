//! The Elastic Defend runner: approved commands become `execute` response actions through
//! Kibana on the alert's agent, polled until completed — for hosts with Elastic Defend, with no
//! WinRM credentials at all. Also [`isolate_offer`]: whether the approval message may show the
//! "Isolate host" button (the action itself is `pipeline::execute::isolate`).

use std::time::Duration;

use super::{CommandRunner, RunError, RunFuture, RunOutput, Target};
use crate::clients::kibana::KibanaHttp;
use crate::clients::kibana::endpoint::{ActionDetails, ActionRequest, EndpointClient};
use crate::config::{DefendSettings, Settings};
use crate::domain::Alert;
use crate::domain::alert::str_field;

/// Polling goes on this long past the action's own timeout: the agent reports back after it.
pub const WAIT_MARGIN: Duration = Duration::from_secs(60);

pub struct DefendRunner {
    client: EndpointClient,
    settings: DefendSettings,
}

impl DefendRunner {
    pub fn new(client: EndpointClient, settings: DefendSettings) -> Self {
        Self { client, settings }
    }

    pub fn from_settings(settings: &Settings) -> anyhow::Result<Self> {
        Ok(Self::new(
            EndpointClient::new(KibanaHttp::new(&settings.kibana)?),
            settings.runner.defend.clone(),
        ))
    }

    /// The response-action request for `target`'s agent, linked to its alert and case.
    pub fn request(target: &Target, agent_id: &str, comment: &str) -> ActionRequest {
        let mut req = ActionRequest::for_agent(agent_id);
        req.comment = Some(comment.to_owned());
        req.alert_ids = target.alert_id.iter().cloned().collect();
        req.case_ids = target.case_id.iter().cloned().collect();
        req
    }
}

/// Turns a completed `execute` action into a run result: stdout/stderr from the agent's output,
/// the shell's exit code; an unsuccessful action with no output is an error with Kibana's
/// reasons.
pub fn execute_outcome(details: &ActionDetails, agent_id: &str) -> Result<RunOutput, String> {
    if details.is_expired && !details.is_completed {
        return Err(format!(
            "response action {} expired on the agent",
            details.id
        ));
    }
    let content = details.content(agent_id);
    let text = |k: &str| {
        content
            .and_then(|c| c.get(k))
            .and_then(|v| v.as_str())
            .unwrap_or("")
            .to_owned()
    };
    match content {
        Some(c) => {
            let exit_code = c
                .get("shell_code")
                .and_then(|v| v.as_i64())
                .unwrap_or(if details.was_successful { 0 } else { 1 });
            Ok(RunOutput {
                stdout: text("stdout"),
                stderr: text("stderr"),
                exit_code,
            })
        }
        None if details.was_successful => Ok(RunOutput {
            stdout: String::new(),
            stderr: String::new(),
            exit_code: 0,
        }),
        None => Err(format!(
            "response action {} failed: {}",
            details.id,
            details
                .errors
                .as_ref()
                .map(|e| e.join("; "))
                .filter(|e| !e.is_empty())
                .unwrap_or_else(|| "no reason given".into())
        )),
    }
}

impl CommandRunner for DefendRunner {
    fn run<'a>(&'a self, host: &'a str, _command: &'a str) -> RunFuture<'a> {
        Box::pin(async move {
            Err(RunError::permanent(format!(
                "Elastic Defend needs the agent id of {host}; the alert did not carry agent.id"
            )))
        })
    }

    fn run_on<'a>(&'a self, target: &'a Target, command: &'a str) -> RunFuture<'a> {
        Box::pin(async move {
            let Some(agent) = target.agent_id.as_deref() else {
                return self.run(&target.host, command).await;
            };
            let req = Self::request(target, agent, "triage-bot: approved command");
            let created = self
                .client
                .execute(req, command, self.settings.execute_timeout)
                .await
                .map_err(|e| RunError {
                    retryable: crate::clients::Retryable::is_retryable(&e),
                    message: format!("Elastic Defend execute failed: {e}"),
                })?;
            tracing::info!(host.name = %target.host, action.id = %created.id, "DefendActionCreated");
            let done = self
                .client
                .wait(
                    &created.id,
                    self.settings.poll_interval,
                    self.settings.execute_timeout + WAIT_MARGIN,
                )
                .await
                // The action exists on the agent now: never "safe to run again".
                .map_err(|e| RunError::permanent(e.to_string()))?;
            execute_outcome(&done, agent).map_err(RunError::from)
        })
    }

    fn runner_name(&self, _host: &str) -> &'static str {
        "defend"
    }

    fn describe(&self, target: &Target) -> Option<String> {
        Some(match &target.agent_id {
            Some(agent) => format!("Elastic Defend agent {agent}"),
            None => "Elastic Defend — the alert names no agent".into(),
        })
    }
}

/// Whether the approval message may offer **Isolate host** for this alert: the policy allows it
/// (`DEFEND_ALLOW_ISOLATE`), and the alert comes from an Elastic Defend agent (it carries
/// `agent.id`, and `agent.type` is `endpoint` when present). The approval stage calls this when
/// it builds the message and again when the button is clicked.
pub fn isolate_offer(settings: &Settings, alert: &Alert) -> bool {
    if !settings.runner.defend.allow_isolate {
        return false;
    }
    let agent = str_field(&alert.raw, "agent.id");
    let kind = str_field(&alert.raw, "agent.type");
    agent.is_some() && kind.as_deref().is_none_or(|k| k == "endpoint")
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn details(v: serde_json::Value) -> ActionDetails {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn outcomes() {
        let d = details(
            json!({"id": "x", "command": "execute", "isCompleted": true, "wasSuccessful": true,
            "outputs": {"a": {"type": "json", "content": {"stdout": "ok", "stderr": "", "shell_code": 0}}}}),
        );
        let out = execute_outcome(&d, "a").unwrap();
        assert_eq!((out.stdout.as_str(), out.exit_code), ("ok", 0));
        let d = details(
            json!({"id": "x", "command": "execute", "isCompleted": true, "wasSuccessful": false,
            "outputs": {"a": {"type": "json", "content": {"stdout": "", "stderr": "denied", "shell_code": 5}}}}),
        );
        assert_eq!(execute_outcome(&d, "a").unwrap().exit_code, 5);
        let d = details(
            json!({"id": "x", "command": "execute", "isCompleted": true, "wasSuccessful": false,
            "errors": ["agent offline"]}),
        );
        assert!(
            execute_outcome(&d, "a")
                .unwrap_err()
                .contains("agent offline")
        );
    }
}
