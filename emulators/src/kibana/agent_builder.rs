//! Kibana Agent Builder emulator: `POST [/s/{space}]/api/agent_builder/converse`
//! (agent_builder.md §2–3, §5), merged into the Kibana emulator's router so it shares its state:
//! the scripted answers and responder, the `fail_next` queue, the auth requirement and the
//! request record. Each converse call is recorded in [`KibanaState::calls`] like a chat/complete
//! call, with `last_user_content` set to `input` and the body as sent (it has `agent_id`).
//!
//! It does not run agents, tools or rounds with steps, and does not stream (`/converse/async`).
//!
//! Wire facts it reproduces because clients trip over them:
//! - `kbn-xsrf` is required (400 without it) and auth is checked first (401);
//! - the body is validated strictly: unknown keys give 400, `input` must be a string;
//! - `agent_id` defaults to `elastic-ai-agent`; an unknown agent gives 404 `Agent <id> not found`;
//! - an unknown `conversation_id` gives 404 `Conversation <id> not found` (older builds' behaviour);
//! - the answer is the `ChatResponse` shape: `conversation_id`, `round_id`, `status`, `steps`,
//!   timings, `model_usage`, `response.message`; a new conversation gets a fresh UUID.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::Path;
use axum::http::{HeaderMap, header};
use axum::response::Response;
use axum::routing::post;
use serde_json::{Value, json};

use super::state::{ChatCompleteCall, KibanaRequest, KibanaState, core_error};
use crate::server::Recorder;
use crate::server::json_response;

/// Agents the emulated deployment has.
pub const AGENTS: [&str; 2] = ["elastic-ai-agent", "security.agent"];

const KNOWN_KEYS: &[&str] = &[
    "input",
    "agent_id",
    "conversation_id",
    "connector_id",
    "inference_id",
    "capabilities",
    "attachments",
    "prompts",
    "configuration_overrides",
    "action",
    "browser_api_tools",
    "access_control",
    "execution_id",
    "_execution_mode",
];

/// Conversation id → (space, agent id). Kept here: chat/complete conversations are another API.
type Conversations = Arc<Mutex<HashMap<String, (String, String)>>>;

/// The converse routes, to be merged into the Kibana emulator's router.
pub fn router(state: Arc<Recorder<KibanaState>>) -> Router {
    let conversations: Conversations = Arc::default();
    let (s1, c1) = (state.clone(), conversations.clone());
    let (s2, c2) = (state, conversations);
    Router::new()
        .route(
            "/api/agent_builder/converse",
            post(move |headers: HeaderMap, body: Bytes| {
                let (s, c) = (s1.clone(), c1.clone());
                async move { handle(&s, &c, "default".into(), &headers, &body) }
            }),
        )
        .route(
            "/s/{space}/api/agent_builder/converse",
            post(
                move |Path(space): Path<String>, headers: HeaderMap, body: Bytes| {
                    let (s, c) = (s2.clone(), c2.clone());
                    async move { handle(&s, &c, space, &headers, &body) }
                },
            ),
        )
}

fn handle(
    state: &Recorder<KibanaState>,
    conversations: &Conversations,
    space: String,
    headers: &HeaderMap,
    body: &Bytes,
) -> Response {
    let resp = converse(state, conversations, &space, headers, body);
    let path = if space == "default" {
        "/api/agent_builder/converse".to_string()
    } else {
        format!("/s/{space}/api/agent_builder/converse")
    };
    let status = resp.status().as_u16();
    state.update(|s| {
        s.requests.push(KibanaRequest {
            method: "POST".into(),
            path,
            space,
            status,
        })
    });
    resp
}

fn converse(
    state: &Recorder<KibanaState>,
    conversations: &Mutex<HashMap<String, (String, String)>>,
    space: &str,
    headers: &HeaderMap,
    body: &Bytes,
) -> Response {
    let auth = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let required = state.read().required_auth.clone();
    if required.is_some_and(|want| auth != Some(want.as_str())) {
        return core_error(401, "[security_exception]: unable to authenticate user");
    }
    if !headers.contains_key("kbn-xsrf") && !headers.contains_key("kbn-version") {
        return core_error(400, "Request must contain a kbn-xsrf header.");
    }
    if let Some(status) = state.update(|s| s.fail_assistant.pop_front()) {
        return core_error(status, "emulated failure");
    }
    let Ok(body) = serde_json::from_slice::<Value>(body) else {
        return core_error(400, "Invalid request payload JSON format");
    };
    let Some(obj) = body.as_object() else {
        return core_error(400, "[request body]: expected a plain object value");
    };
    if let Some(extra) = obj.keys().find(|k| !KNOWN_KEYS.contains(&k.as_str())) {
        return core_error(
            400,
            format!("[request body.{extra}]: definition for this key is missing"),
        );
    }
    let input = match obj.get("input") {
        Some(Value::String(s)) => s.clone(),
        Some(v) => {
            return core_error(
                400,
                format!("[request body.input]: expected value of type [string] but got [{v}]"),
            );
        }
        None => return core_error(400, "[request body]: input is required for a new round"),
    };
    let agent = obj
        .get("agent_id")
        .and_then(Value::as_str)
        .unwrap_or("elastic-ai-agent")
        .to_string();
    if !AGENTS.contains(&agent.as_str()) {
        return core_error(404, format!("Agent {agent} not found"));
    }
    let given = obj
        .get("conversation_id")
        .and_then(Value::as_str)
        .map(String::from);
    let conversation_id = match &given {
        Some(id) => {
            let known = conversations
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(id)
                .is_some_and(|(s, _)| s == space);
            if !known {
                return core_error(404, format!("Conversation {id} not found"));
            }
            id.clone()
        }
        None => {
            let id = uuid::Uuid::new_v4().to_string();
            conversations
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(id.clone(), (space.to_string(), agent.clone()));
            id
        }
    };
    let call = ChatCompleteCall {
        space: space.to_string(),
        body: body.clone(),
        last_user_content: input.clone(),
        conversation_id: Some(conversation_id.clone()),
        is_stream: false,
    };
    let (queued, responder) = state.update(|s| {
        s.calls.push(call.clone());
        (s.answers.pop_front(), s.responder.clone())
    });
    let Some(answer) = queued.or_else(|| responder.map(|f| f(&call))) else {
        return core_error(500, "Error executing agent: no scripted answer");
    };
    json_response(
        200,
        &json!({
            "conversation_id": conversation_id,
            "round_id": uuid::Uuid::new_v4().to_string(),
            "status": "completed",
            "steps": [{"type": "reasoning", "reasoning": "Reading the alert."}],
            "started_at": chrono::Utc::now().to_rfc3339(),
            "time_to_first_token": 120,
            "time_to_last_token": 480,
            "model_usage": {"connector_id": obj.get("connector_id").cloned().unwrap_or(Value::Null),
                            "llm_calls": 1, "input_tokens": input.len(), "output_tokens": answer.len()},
            "trace_id": uuid::Uuid::new_v4().simple().to_string(),
            "response": {"message": answer},
        }),
    )
}
