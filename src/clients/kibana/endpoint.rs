//! Elastic Defend response actions through Kibana (kibana.md §5): `execute`, `isolate`,
//! `unisolate`, `kill_process`, `running_procs`, and polling an action until it completes.
//!
//! It owns the request bodies (the spec's `BaseActionSchema` plus per-command `parameters`) and
//! the `ActionDetails` answer; [`KibanaHttp`] supplies headers, spaces and error shapes. Hosts
//! with Elastic Defend need no WinRM credentials: the agent runs the action.

use std::time::Duration;

use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{KibanaError, KibanaHttp};

/// A response action route (`POST /api/endpoint/action/<route>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseAction {
    Execute,
    Isolate,
    Unisolate,
    KillProcess,
    RunningProcesses,
}

impl ResponseAction {
    pub fn route(self) -> &'static str {
        match self {
            Self::Execute => "execute",
            Self::Isolate => "isolate",
            Self::Unisolate => "unisolate",
            Self::KillProcess => "kill_process",
            Self::RunningProcesses => "running_procs",
        }
    }

    /// The `command` name Kibana reports in `ActionDetails`.
    pub fn command(self) -> &'static str {
        match self {
            Self::Execute => "execute",
            Self::Isolate => "isolate",
            Self::Unisolate => "unisolate",
            Self::KillProcess => "kill-process",
            Self::RunningProcesses => "running-processes",
        }
    }
}

/// Which process `kill_process` targets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProcessRef {
    Pid(u64),
    EntityId(String),
}

/// The common body (`BaseActionSchema`); empty lists are left out because the spec requires
/// `alert_ids` and `case_ids` to have at least one entry when present.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ActionRequest {
    pub endpoint_ids: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub alert_ids: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub case_ids: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parameters: Option<Value>,
    pub agent_type: &'static str,
}

impl ActionRequest {
    /// An action on one Elastic Defend agent.
    pub fn for_agent(agent_id: impl Into<String>) -> Self {
        Self {
            endpoint_ids: vec![agent_id.into()],
            agent_type: "endpoint",
            ..Self::default()
        }
    }
}

/// `ActionDetails` (`.../actions/details/details.schema.yaml`), the fields we use.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ActionDetails {
    pub id: String,
    pub command: String,
    #[serde(default)]
    pub agents: Vec<String>,
    #[serde(default)]
    pub is_completed: bool,
    #[serde(default)]
    pub was_successful: bool,
    #[serde(default)]
    pub is_expired: bool,
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub outputs: Value,
    #[serde(default)]
    pub errors: Option<Vec<String>>,
}

impl ActionDetails {
    /// `outputs[agent].content`.
    pub fn content(&self, agent_id: &str) -> Option<&Value> {
        self.outputs.get(agent_id)?.get("content")
    }
}

#[derive(Deserialize)]
struct DataWrapper {
    data: ActionDetails,
}

/// Why waiting for an action ended without success.
#[derive(Debug, thiserror::Error)]
pub enum ActionWaitError {
    #[error(transparent)]
    Kibana(#[from] KibanaError),
    #[error("response action {id} did not complete within {after:?}")]
    Timeout { id: String, after: Duration },
}

#[derive(Clone)]
pub struct EndpointClient {
    http: KibanaHttp,
}

impl EndpointClient {
    pub fn new(http: KibanaHttp) -> Self {
        Self { http }
    }

    /// Creates a response action and returns its details (status `pending`).
    pub async fn create(
        &self,
        action: ResponseAction,
        req: &ActionRequest,
    ) -> Result<ActionDetails, KibanaError> {
        let rb = self
            .http
            .request(
                Method::POST,
                &format!("/api/endpoint/action/{}", action.route()),
            )
            .json(req);
        let w: DataWrapper = self.http.json(rb).await?;
        Ok(w.data)
    }

    /// `execute`: a shell command (PowerShell on Windows agents) with a timeout in seconds.
    pub async fn execute(
        &self,
        mut req: ActionRequest,
        command: &str,
        timeout: Duration,
    ) -> Result<ActionDetails, KibanaError> {
        req.parameters = Some(json!({
            "command": command,
            "timeout": timeout.as_secs().max(1),
        }));
        self.create(ResponseAction::Execute, &req).await
    }

    pub async fn isolate(&self, req: ActionRequest) -> Result<ActionDetails, KibanaError> {
        self.create(ResponseAction::Isolate, &req).await
    }

    pub async fn unisolate(&self, req: ActionRequest) -> Result<ActionDetails, KibanaError> {
        self.create(ResponseAction::Unisolate, &req).await
    }

    pub async fn kill_process(
        &self,
        mut req: ActionRequest,
        process: &ProcessRef,
    ) -> Result<ActionDetails, KibanaError> {
        req.parameters = Some(match process {
            ProcessRef::Pid(pid) => json!({ "pid": pid }),
            ProcessRef::EntityId(id) => json!({ "entity_id": id }),
        });
        self.create(ResponseAction::KillProcess, &req).await
    }

    pub async fn running_processes(
        &self,
        req: ActionRequest,
    ) -> Result<ActionDetails, KibanaError> {
        self.create(ResponseAction::RunningProcesses, &req).await
    }

    /// `GET /api/endpoint/action/{id}`.
    pub async fn details(&self, id: &str) -> Result<ActionDetails, KibanaError> {
        let rb = self
            .http
            .request(Method::GET, &format!("/api/endpoint/action/{id}"));
        let w: DataWrapper = self.http.json(rb).await?;
        Ok(w.data)
    }

    /// Polls the action every `poll` until `isCompleted`, for at most `deadline`. Transient
    /// Kibana errors while polling are retried within the deadline: the action runs on the
    /// agent whatever happens to our polling.
    pub async fn wait(
        &self,
        id: &str,
        poll: Duration,
        deadline: Duration,
    ) -> Result<ActionDetails, ActionWaitError> {
        let until = tokio::time::Instant::now() + deadline;
        loop {
            match self.details(id).await {
                Ok(d) if d.is_completed || d.is_expired => return Ok(d),
                Ok(_) => {}
                Err(e) if crate::clients::Retryable::is_retryable(&e) => {
                    tracing::debug!(action.id = %id, error = %e, "polling the action failed; retrying");
                }
                Err(e) => return Err(e.into()),
            }
            if tokio::time::Instant::now() + poll > until {
                return Err(ActionWaitError::Timeout {
                    id: id.to_owned(),
                    after: deadline,
                });
            }
            tokio::time::sleep(poll).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_follow_the_spec_shapes() {
        let mut req = ActionRequest::for_agent("agent-1");
        req.comment = Some("triage-bot".into());
        let v = serde_json::to_value(&req).unwrap();
        assert_eq!(
            v,
            json!({"endpoint_ids": ["agent-1"], "comment": "triage-bot", "agent_type": "endpoint"})
        );
        req.alert_ids = vec!["a1".into()];
        req.parameters = Some(json!({"pid": 4}));
        let v = serde_json::to_value(&req).unwrap();
        assert_eq!(v["alert_ids"], json!(["a1"]));
        assert_eq!(v["parameters"], json!({"pid": 4}));
        assert!(v.get("case_ids").is_none());
    }

    #[test]
    fn action_details_parse() {
        let body = json!({"action": "x", "data": {"id": "x", "command": "execute", "agentType": "endpoint",
            "agents": ["a"], "isCompleted": true, "wasSuccessful": true, "isExpired": false, "status": "successful",
            "outputs": {"a": {"type": "json", "content": {"stdout": "hi", "stderr": "", "shell_code": 0}}}}});
        let w: DataWrapper = serde_json::from_value(body).unwrap();
        assert!(w.data.is_completed && w.data.was_successful);
        assert_eq!(w.data.content("a").unwrap()["stdout"], "hi");
    }
}
