//! What every part of the Kibana emulator shares: the state behind the emulator's
//! [`Recorder`](crate::server::Recorder) — [`KibanaState`] with the scripted answers, the
//! recorded [`ChatCompleteCall`]s, [`KibanaRequest`]s and case requests, the stored conversations
//! and [`StoredCase`]s, the injected failures — the request as the route handlers see it (`Req`),
//! JSON body parsing, the two error shapes (core `{statusCode,error,message}` and assistant
//! `{message,status_code}`) and timestamps.
//!
//! It depends on no other Kibana file; all the others depend on it.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{Method, StatusCode};
use axum::response::Response;
use chrono::{SecondsFormat, Utc};
use serde_json::{Value, json};

use crate::server::json_response;

/// One recorded `chat/complete` call (after body validation succeeded).
#[derive(Debug, Clone)]
pub struct ChatCompleteCall {
    /// Space id (`"default"` when the path had no `/s/{space}` prefix).
    pub space: String,
    /// The request body as sent.
    pub body: Value,
    /// `content` of the last message with role `user` (empty when there is none).
    pub last_user_content: String,
    /// The conversation the call was persisted to: the given `conversationId`, or the one created
    /// for it. `None` when `persist` is false (Kibana ignores `conversationId` then).
    pub conversation_id: Option<String>,
    /// Whether the client asked for a stream (`isStream`, default false).
    pub is_stream: bool,
}

/// Decides an answer when the scripted queue is empty.
pub type Responder = Arc<dyn Fn(&ChatCompleteCall) -> String + Send + Sync>;

/// A stored case plus the space it lives in.
#[derive(Debug, Clone)]
pub struct StoredCase {
    pub space: String,
    /// Full case object, including `comments`.
    pub case: Value,
}

/// One recorded HTTP request (any route).
#[derive(Debug, Clone)]
pub struct KibanaRequest {
    pub method: String,
    /// Path and query as sent, including any `/s/{space}` prefix.
    pub path: String,
    pub space: String,
    pub status: u16,
}

/// Everything the emulator holds. Public so tests can `wait_until` on it.
#[derive(Default)]
pub struct KibanaState {
    /// Cases writes are refused with 403 (read-only Cases privileges).
    pub case_writes_forbidden: bool,
    /// Connectors listed by `GET /api/actions/connectors` (`id`, `connector_type_id`, name).
    pub connectors: Vec<(String, String, String)>,
    pub calls: Vec<ChatCompleteCall>,
    pub answers: VecDeque<String>,
    pub responder: Option<Responder>,
    /// ConversationResponse objects (their `namespace` is the space).
    pub conversations: Vec<Value>,
    pub cases: Vec<StoredCase>,
    /// `(method, path-with-query, body)` of every Cases request, in arrival order.
    pub case_requests: Vec<(String, String, Value)>,
    /// Every request the emulator answered, with the status it got.
    pub requests: Vec<KibanaRequest>,
    /// Statuses the next assistant requests (chat/complete, conversations) fail with.
    pub fail_assistant: VecDeque<u16>,
    /// Statuses the next Cases requests fail with.
    pub fail_cases: VecDeque<u16>,
    /// The next Cases writes are applied but answered with 502, as when a proxy drops the answer.
    pub lose_case_responses: VecDeque<u16>,
    pub required_auth: Option<String>,
    /// Pause between streamed chunks.
    pub chunk_delay: Option<Duration>,
    /// How long the model "thinks" before a `chat/complete` answer starts (the latency of a
    /// real LLM call).
    pub answer_delay: Option<Duration>,
    /// While set, `chat/complete` answers wait (after their call is recorded) until it is
    /// cleared: a model that is slow for as long as a test needs.
    pub hold_answers: bool,
    /// `chat/complete` calls being answered right now, and the most there ever were at once.
    pub answering: usize,
    pub max_answering: usize,
    /// Connectors made through `POST /api/actions/connector`, per space.
    pub stored_connectors: Vec<super::connectors::StoredConnector>,
    /// `(method, path-with-query, body)` of every connectors API request, in arrival order.
    pub connector_requests: Vec<(String, String, Value)>,
    /// The licence (`basic`, `gold`, …; unset: trial, which includes every type).
    pub licence: Option<String>,
    /// Connector types left out of `xpack.actions.enabledActionTypes`.
    pub disabled_connector_types: Vec<String>,
    /// `xpack.actions.allowedHosts` (unset: any host).
    pub allowed_hosts: Option<Vec<String>>,
    /// Source of the opaque case and comment versions (see `cases::next_version`).
    pub(super) version_counter: u64,
    /// Maintenance windows `GET /api/maintenance_window/_find` lists (Kibana's own shape).
    pub maintenance_windows: Vec<Value>,
    /// When set, that route answers with this status (404: a Kibana before 9.1; 403: no
    /// privilege).
    pub maintenance_api_status: Option<u16>,
}

// ---------------------------------------------------------------------------------------------
// Responses

fn reason_phrase(status: u16) -> &'static str {
    StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("Error")
}

/// Kibana core (hapi/Boom) error shape.
pub(crate) fn core_error(status: u16, message: impl Into<String>) -> Response {
    json_response(
        status,
        &json!({"statusCode": status, "error": reason_phrase(status), "message": message.into()}),
    )
}

/// Assistant route-level error shape (`buildResponse(...).error`).
pub(super) fn assistant_error(status: u16, message: impl Into<String>) -> Response {
    json_response(
        status,
        &json!({"message": message.into(), "status_code": status}),
    )
}

pub(super) fn now() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true)
}

// ---------------------------------------------------------------------------------------------
// Requests

/// A request after the common checks, as the route handlers see it.
pub(super) struct Req {
    pub(super) method: Method,
    /// Path without the space prefix.
    pub(super) route: String,
    /// Original path and query.
    pub(super) full_path: String,
    pub(super) query: String,
    pub(super) space: String,
    pub(super) body: Bytes,
    pub(super) username: String,
}

/// Parses a JSON body; `Err` is hapi's answer to malformed JSON.
pub(super) fn parse_json_body(body: &Bytes) -> Result<Value, Box<Response>> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Null);
    }
    serde_json::from_slice(body)
        .map_err(|_| Box::new(core_error(400, "Invalid request payload JSON format")))
}
