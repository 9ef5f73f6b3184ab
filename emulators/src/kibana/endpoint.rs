//! Elastic Defend response actions in the Kibana emulator (kibana.md §5): `POST
//! /api/endpoint/action/{execute,isolate,unisolate,kill_process,running_procs}` and `GET
//! /api/endpoint/action/{id}`, with `/s/{space}` prefixes, merged into the Kibana router by
//! [`merge`].
//!
//! It owns the actions created, the per-agent canned `execute` outputs and isolation state, and
//! how many polls an action stays pending. Request bodies are validated like Kibana's
//! `@kbn/config-schema` does against `endpoint_management.bundled.yaml`: `endpoint_ids` required
//! (≥ 1 non-empty string), `alert_ids`/`case_ids` non-empty when present, `agent_type` from the
//! enum, unknown keys refused with `[request body.<key>]: definition for this key is missing`,
//! per-command `parameters` (execute: `command` a non-empty string — the bundled spec refs the
//! response-action `Command` enum there, which no client can satisfy, so the source schema's
//! string is checked — and `timeout` an integer ≥ 1; kill_process: `pid` or `entity_id`).
//! Authentication and `kbn-xsrf` follow the Kibana emulator's own settings and rules.
//! It does not run anything on an agent, does not do files, scans or scripts.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::Path;
use axum::http::{HeaderMap, Method, Uri, header};
use axum::response::Response;
use axum::routing::post;
use chrono::{SecondsFormat, Utc};
use serde_json::{Map, Value, json};

use super::state::{KibanaRequest, KibanaState, core_error};
use crate::server::Recorder;
use crate::server::json_response;

/// What an `execute` action prints on an agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecuteOutput {
    pub stdout: String,
    pub stderr: String,
    pub shell_code: i64,
}

/// One response action as created.
#[derive(Debug, Clone)]
pub struct EndpointAction {
    pub id: String,
    /// `execute`, `isolate`, `unisolate`, `kill-process`, `running-processes`.
    pub command: String,
    pub space: String,
    pub agents: Vec<String>,
    /// The request body as sent.
    pub body: Value,
    /// GETs still answered `pending`.
    pub polls_left: usize,
    pub completed: bool,
    pub successful: bool,
    pub errors: Vec<String>,
    pub outputs: Value,
    pub started_at: String,
}

/// The emulated Defend side.
#[derive(Debug, Default)]
pub struct EndpointState {
    pub actions: Vec<EndpointAction>,
    /// Agents currently isolated.
    pub isolated: Vec<String>,
    /// Host name per agent id, for `hosts` in the answer.
    pub hosts: HashMap<String, String>,
    /// `(agent, command text)` → output; `(agent, "")` is the agent's default.
    outputs: HashMap<(String, String), ExecuteOutput>,
    /// Agents whose actions fail, with the reason Kibana reports.
    failing: HashMap<String, String>,
    /// How many GETs a new action stays pending.
    pending_polls: usize,
}

type Registry = Mutex<Vec<(Weak<Recorder<KibanaState>>, Arc<Recorder<EndpointState>>)>>;

/// Endpoint state per Kibana emulator, found from the emulator's own recorder, so the merge
/// line and `KibanaEmulator::endpoint` in `kibana/mod.rs` are all the Kibana emulator needs to
/// know of this module.
static REGISTRY: Registry = Mutex::new(Vec::new());

fn state_for(kibana: &Arc<Recorder<KibanaState>>) -> Arc<Recorder<EndpointState>> {
    let mut reg = REGISTRY.lock().unwrap_or_else(|p| p.into_inner());
    reg.retain(|(w, _)| w.strong_count() > 0);
    if let Some((_, s)) = reg
        .iter()
        .find(|(w, _)| w.upgrade().is_some_and(|k| Arc::ptr_eq(&k, kibana)))
    {
        return s.clone();
    }
    let s = Recorder::new(EndpointState {
        pending_polls: 1,
        ..EndpointState::default()
    });
    reg.push((Arc::downgrade(kibana), s.clone()));
    s
}

/// Adds the response-action routes to the Kibana emulator's router.
pub fn merge(router: Router, kibana: &Arc<Recorder<KibanaState>>) -> Router {
    let ctx = Ctx {
        kibana: kibana.clone(),
        endpoint: state_for(kibana),
    };
    let handler = {
        let ctx = ctx.clone();
        move |Path(params): Path<Vec<(String, String)>>,
              method: Method,
              uri: Uri,
              headers: HeaderMap,
              body: Bytes| {
            let ctx = ctx.clone();
            async move { handle(ctx, params, method, uri, headers, body) }
        }
    };
    let routes = Router::new()
        .route(
            "/api/endpoint/action/{seg}",
            post(handler.clone()).get(handler.clone()),
        )
        .route(
            "/s/{space}/api/endpoint/action/{seg}",
            post(handler.clone()).get(handler),
        );
    router.merge(routes)
}

#[derive(Clone)]
struct Ctx {
    kibana: Arc<Recorder<KibanaState>>,
    endpoint: Arc<Recorder<EndpointState>>,
}

/// Test-side handle on the Defend emulation of one Kibana emulator.
#[derive(Clone)]
pub struct EndpointEmulator {
    state: Arc<Recorder<EndpointState>>,
}

impl EndpointEmulator {
    /// The handle on the Defend emulation of the Kibana emulator whose state is `kibana`
    /// (what `KibanaEmulator::endpoint` returns).
    pub(super) fn of(kibana: &Arc<Recorder<KibanaState>>) -> Self {
        Self {
            state: state_for(kibana),
        }
    }

    /// What `execute` of exactly `command` prints on `agent`.
    pub fn set_output(&self, agent: &str, command: &str, out: ExecuteOutput) {
        self.state.update(|s| {
            s.outputs
                .insert((agent.to_owned(), command.to_owned()), out);
        });
    }

    /// The name `agent` reports as its host.
    pub fn set_host(&self, agent: &str, host: &str) {
        self.state
            .update(|s| s.hosts.insert(agent.to_owned(), host.to_owned()));
    }

    /// Every action on `agent` from now on completes unsuccessfully with `reason`.
    pub fn fail_agent(&self, agent: &str, reason: &str) {
        self.state
            .update(|s| s.failing.insert(agent.to_owned(), reason.to_owned()));
    }

    /// How many status polls a new action answers `pending` before it completes (default 1).
    pub fn set_pending_polls(&self, n: usize) {
        self.state.update(|s| s.pending_polls = n);
    }

    pub fn actions(&self) -> Vec<EndpointAction> {
        self.state.read().actions.clone()
    }

    pub fn isolated(&self) -> Vec<String> {
        self.state.read().isolated.clone()
    }

    pub async fn wait_until(
        &self,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&EndpointState) -> bool,
    ) -> anyhow::Result<()> {
        self.state.wait_until(what, timeout, pred).await
    }
}

fn handle(
    ctx: Ctx,
    params: Vec<(String, String)>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let param = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let space = param("space").unwrap_or_else(|| "default".into());
    let seg = param("seg").unwrap_or_default();
    let auth = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let required = ctx.kibana.read().required_auth.clone();
    let resp = if required.is_some_and(|want| auth != Some(want.as_str())) {
        core_error(401, "[security_exception]: unable to authenticate user")
    } else if method == Method::POST
        && !headers.contains_key("kbn-xsrf")
        && !headers.contains_key("kbn-version")
    {
        core_error(400, "Request must contain a kbn-xsrf header.")
    } else if method == Method::GET {
        details(&ctx, &space, &seg)
    } else {
        create(&ctx, &space, &seg, &body)
    };
    let status = resp.status().as_u16();
    ctx.kibana.update(|s| {
        s.requests.push(KibanaRequest {
            method: method.to_string(),
            path: uri
                .path_and_query()
                .map(|p| p.to_string())
                .unwrap_or_default(),
            space,
            status,
        })
    });
    resp
}

const BASE_KEYS: &[&str] = &[
    "endpoint_ids",
    "alert_ids",
    "case_ids",
    "comment",
    "parameters",
    "agent_type",
];

fn non_empty_strings(obj: &Map<String, Value>, key: &str, required: bool) -> Result<(), String> {
    match obj.get(key) {
        None if required => Err(format!(
            "[request body.{key}]: expected value of type [array] but got [undefined]"
        )),
        None => Ok(()),
        Some(Value::Array(items)) => {
            if items.is_empty() {
                return Err(format!(
                    "[request body.{key}]: array size is [0], but cannot be smaller than [1]"
                ));
            }
            for (i, v) in items.iter().enumerate() {
                match v.as_str() {
                    Some(s) if !s.trim().is_empty() => {}
                    Some(_) => {
                        return Err(format!(
                            "[request body.{key}.{i}]: value has length [0] but it must have a minimum length of [1]."
                        ));
                    }
                    None => {
                        return Err(format!(
                            "[request body.{key}.{i}]: expected value of type [string]"
                        ));
                    }
                }
            }
            Ok(())
        }
        Some(_) => Err(format!(
            "[request body.{key}]: expected value of type [array]"
        )),
    }
}

/// Checks a body against the route's schema; returns the normalised parameters.
fn validate(route: &str, body: &Value) -> Result<Value, String> {
    let obj = body
        .as_object()
        .ok_or("[request body]: expected a plain object value, but found [null] instead.")?;
    for key in obj.keys() {
        if !BASE_KEYS.contains(&key.as_str()) {
            return Err(format!(
                "[request body.{key}]: definition for this key is missing"
            ));
        }
    }
    non_empty_strings(obj, "endpoint_ids", true)?;
    non_empty_strings(obj, "alert_ids", false)?;
    non_empty_strings(obj, "case_ids", false)?;
    if let Some(c) = obj.get("comment")
        && !c.is_string()
    {
        return Err("[request body.comment]: expected value of type [string]".into());
    }
    if let Some(t) = obj.get("agent_type") {
        let ok = t.as_str().is_some_and(|t| {
            [
                "endpoint",
                "sentinel_one",
                "crowdstrike",
                "microsoft_defender_endpoint",
            ]
            .contains(&t)
        });
        if !ok {
            return Err(format!(
                "[request body.agent_type]: types that failed validation: value {t} is not allowed"
            ));
        }
    }
    let params = obj.get("parameters").cloned().unwrap_or(json!({}));
    let p = params
        .as_object()
        .ok_or("[request body.parameters]: expected value of type [object]")?;
    match route {
        "execute" => {
            match p.get("command") {
                Some(Value::String(c)) if !c.trim().is_empty() => {}
                Some(Value::String(_)) => {
                    return Err(
                        "[request body.parameters.command]: value has length [0] but it must have a minimum length of [1].".into(),
                    );
                }
                _ => {
                    return Err(
                        "[request body.parameters.command]: expected value of type [string] but got [undefined]".into(),
                    );
                }
            }
            if let Some(t) = p.get("timeout") {
                match t.as_u64() {
                    Some(n) if n >= 1 => {}
                    _ => {
                        return Err(
                            "[request body.parameters.timeout]: Value must be equal to or greater than [1].".into(),
                        );
                    }
                }
            }
            if let Some(k) = p.keys().find(|k| *k != "command" && *k != "timeout") {
                return Err(format!(
                    "[request body.parameters.{k}]: definition for this key is missing"
                ));
            }
        }
        "kill_process" => {
            let pid_ok = p.get("pid").and_then(Value::as_u64).is_some_and(|n| n >= 1);
            let entity_ok = p
                .get("entity_id")
                .and_then(Value::as_str)
                .is_some_and(|s| !s.is_empty());
            if !(pid_ok || entity_ok) || p.len() != 1 {
                return Err(
                    "[request body.parameters]: types that failed validation:\n- [request body.parameters.0.pid]: expected value of type [number]\n- [request body.parameters.1.entity_id]: expected value of type [string]".into(),
                );
            }
        }
        _ => {
            if !p.is_empty() {
                return Err("[request body.parameters]: expected an empty object".into());
            }
        }
    }
    Ok(params)
}

fn command_name(route: &str) -> Option<&'static str> {
    Some(match route {
        "execute" => "execute",
        "isolate" => "isolate",
        "unisolate" => "unisolate",
        "kill_process" => "kill-process",
        "running_procs" => "running-processes",
        _ => return None,
    })
}

fn render(a: &EndpointAction, hosts: &HashMap<String, String>) -> Value {
    let status = if !a.completed {
        "pending"
    } else if a.successful {
        "successful"
    } else {
        "failed"
    };
    let agent_state: Map<String, Value> = a
        .agents
        .iter()
        .map(|ag| {
            (
                ag.clone(),
                json!({"isCompleted": a.completed, "wasSuccessful": a.successful,
                       "errors": if a.errors.is_empty() { Value::Null } else { json!(a.errors) }}),
            )
        })
        .collect();
    let host_map: Map<String, Value> = a
        .agents
        .iter()
        .map(|ag| {
            (
                ag.clone(),
                json!({"name": hosts.get(ag).cloned().unwrap_or_default()}),
            )
        })
        .collect();
    let mut v = json!({
        "id": a.id, "command": a.command, "agentType": "endpoint", "agents": a.agents,
        "hosts": host_map, "isExpired": false, "isCompleted": a.completed,
        "wasSuccessful": a.successful, "status": status, "startedAt": a.started_at,
        "createdBy": "elastic", "comment": a.body.get("comment").cloned().unwrap_or(Value::Null),
        "parameters": a.body.get("parameters").cloned().unwrap_or(json!({})),
        "outputs": a.outputs, "agentState": agent_state,
    });
    if !a.errors.is_empty() {
        v["errors"] = json!(a.errors);
    }
    if a.completed {
        v["completedAt"] = json!(a.started_at);
    }
    v
}

fn create(ctx: &Ctx, space: &str, route: &str, body: &Bytes) -> Response {
    let Some(command) = command_name(route) else {
        return core_error(404, "Not Found");
    };
    let body: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => return core_error(400, format!("[request body]: {e}")),
    };
    if let Err(msg) = validate(route, &body) {
        return core_error(400, msg);
    }
    let agents: Vec<String> = body["endpoint_ids"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    let id = uuid::Uuid::new_v4().to_string();
    let data = ctx.endpoint.update(|s| {
        let action = EndpointAction {
            id: id.clone(),
            command: command.to_owned(),
            space: space.to_owned(),
            agents,
            body: body.clone(),
            polls_left: s.pending_polls,
            completed: false,
            successful: false,
            errors: Vec::new(),
            outputs: json!({}),
            started_at: Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true),
        };
        let rendered = render(&action, &s.hosts);
        s.actions.push(action);
        rendered
    });
    let mut resp = json!({ "data": data });
    // Only the legacy commands carry the top-level `action` key (kibana.md §5).
    if matches!(command, "isolate" | "unisolate") {
        resp["action"] = json!(id);
    }
    json_response(200, &resp)
}

/// Completes an action: outputs per command, isolation state, agent failures.
fn complete(s: &mut EndpointState, idx: usize) {
    let a = s.actions[idx].clone();
    let mut outputs = Map::new();
    let mut errors = Vec::new();
    for ag in &a.agents {
        if let Some(reason) = s.failing.get(ag) {
            errors.push(reason.clone());
            continue;
        }
        match a.command.as_str() {
            "execute" => {
                let cmd = a.body["parameters"]["command"].as_str().unwrap_or("");
                let out = s
                    .outputs
                    .get(&(ag.clone(), cmd.to_owned()))
                    .or_else(|| s.outputs.get(&(ag.clone(), String::new())))
                    .cloned()
                    .unwrap_or(ExecuteOutput {
                        stdout: String::new(),
                        stderr: format!("'{cmd}' is not recognized\r\n"),
                        shell_code: 1,
                    });
                outputs.insert(
                    ag.clone(),
                    json!({"type": "json", "content": {
                        "code": "ra_execute_success_done", "stdout": out.stdout, "stderr": out.stderr,
                        "stdout_truncated": false, "stderr_truncated": false,
                        "shell_code": out.shell_code, "shell": "powershell", "cwd": "C:\\Windows\\system32",
                        "output_file_id": format!("{}.{ag}", a.id),
                        "output_file_stdout_truncated": false, "output_file_stderr_truncated": false}}),
                );
            }
            "running-processes" => {
                outputs.insert(
                    ag.clone(),
                    json!({"type": "json", "content": {"code": "ra_running-processes_success", "entries": [
                        {"command": "C:\\Windows\\System32\\lsass.exe", "pid": "624", "entity_id": "lsass-624", "user": "SYSTEM"}
                    ]}}),
                );
            }
            "isolate" if !s.isolated.contains(ag) => s.isolated.push(ag.clone()),
            "unisolate" => s.isolated.retain(|x| x != ag),
            _ => {}
        }
    }
    let act = &mut s.actions[idx];
    act.completed = true;
    act.successful = errors.is_empty();
    act.errors = errors;
    act.outputs = Value::Object(outputs);
}

fn details(ctx: &Ctx, space: &str, id: &str) -> Response {
    let found = ctx.endpoint.update(|s| {
        let idx = s
            .actions
            .iter()
            .position(|a| a.id == id && a.space == space)?;
        if !s.actions[idx].completed {
            if s.actions[idx].polls_left == 0 {
                complete(s, idx);
            } else {
                s.actions[idx].polls_left -= 1;
            }
        }
        Some(render(&s.actions[idx], &s.hosts))
    });
    match found {
        Some(data) => json_response(200, &json!({ "data": data })),
        None => core_error(404, format!("Action with id '{id}' not found.")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_follows_the_spec() {
        let ok = json!({"endpoint_ids": ["a"], "parameters": {"command": "whoami", "timeout": 60}, "agent_type": "endpoint"});
        assert!(validate("execute", &ok).is_ok());
        for (route, body, needle) in [
            (
                "execute",
                json!({"endpoint_ids": []}),
                "cannot be smaller than [1]",
            ),
            (
                "execute",
                json!({"endpoint_ids": ["a"]}),
                "parameters.command",
            ),
            (
                "execute",
                json!({"endpoint_ids": ["a"], "parameters": {"command": "x", "timeout": 0}}),
                "timeout",
            ),
            ("isolate", json!({"endpoint_ids": [""]}), "minimum length"),
            (
                "isolate",
                json!({"endpoint_ids": ["a"], "extra": 1}),
                "definition for this key is missing",
            ),
            (
                "isolate",
                json!({"endpoint_ids": ["a"], "alert_ids": []}),
                "alert_ids",
            ),
            (
                "isolate",
                json!({"endpoint_ids": ["a"], "agent_type": "cylance"}),
                "agent_type",
            ),
            (
                "kill_process",
                json!({"endpoint_ids": ["a"], "parameters": {}}),
                "pid",
            ),
        ] {
            let e = validate(route, &body).unwrap_err();
            assert!(e.contains(needle), "{route} {body}: {e}");
        }
        assert!(
            validate(
                "kill_process",
                &json!({"endpoint_ids": ["a"], "parameters": {"pid": 4}})
            )
            .is_ok()
        );
        assert!(validate("running_procs", &json!({"endpoint_ids": ["a"]})).is_ok());
    }
}
