//! Kibana emulator: the Security AI Assistant (`chat/complete`, conversations) and the Cases API,
//! with Kibana's request rules (`kbn-xsrf`, optional auth, `/s/{space}` prefixes) and its two error
//! shapes (core `{statusCode,error,message}` and assistant `{message,status_code}`).
//!
//! It owns the scripted assistant answers, stored conversations and cases, and the record of every
//! call. It does not run a model, anonymize fields, enforce licences or privileges, or emulate
//! case configuration (custom field keys are stored as given).
//!
//! Wire facts (kibana.md §0–3) it reproduces because clients trip over them:
//! - non-GET requests need `kbn-xsrf` (or `kbn-version`), else 400 — checked after authentication,
//!   as Kibana's post-auth handler does;
//! - `chat/complete` with `isStream: true` answers NDJSON `{"payload":..,"type":"content"}` lines with
//!   no terminator and no Content-Type; this emulator writes them in chunks whose boundaries fall in
//!   the middle of JSON lines (and possibly inside a multi-byte UTF-8 character), and adds one line of
//!   an unknown type that clients must skip;
//! - the non-stream body carries `conversationId` only when `persist` is true;
//! - Cases bodies are decoded strictly: unknown keys give 400 `invalid keys "..."`; every mutation
//!   returns a new opaque `version`; a stale version on `PATCH /api/cases` gives 409; a PATCH that
//!   changes nothing gives 406;
//! - `GET /api/cases/_find` ORs the given `tags` (a case matching any tag is returned), like
//!   Kibana's saved-objects filter, and returns cases without comments.

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::Response;
use base64::Engine as _;
use chrono::{SecondsFormat, Utc};
use serde_json::{Map, Value, json};

use crate::server::json_response;
use crate::server::{self, Recorder};

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
    version_counter: u64,
}

/// In-process Kibana. Cheap to clone; all clones share one state.
#[derive(Clone)]
pub struct KibanaEmulator {
    state: Arc<Recorder<KibanaState>>,
    url: String,
}

impl KibanaEmulator {
    /// Binds on `127.0.0.1:0` and starts serving.
    ///
    /// # Errors
    /// When the listener cannot be bound.
    pub async fn start() -> anyhow::Result<Self> {
        let state = Recorder::new(KibanaState::default());
        let router = Router::new()
            .merge(crate::kibana_agent_builder::router(state.clone()))
            .fallback({
                let state = state.clone();
                move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
                    let state = state.clone();
                    async move { handle(state, method, uri, headers, body).await }
                }
            });
        let router = crate::kibana_endpoint::merge(router, &state);
        let addr = server::spawn(router).await?;
        Ok(Self {
            state,
            url: format!("http://{addr}"),
        })
    }

    /// Base URL without a trailing slash.
    pub fn url(&self) -> String {
        self.url.clone()
    }

    /// The shared state, for `wait_until` and ad-hoc inspection.
    pub fn recorder(&self) -> Arc<Recorder<KibanaState>> {
        self.state.clone()
    }

    /// Waits until `pred` holds on the state.
    ///
    /// # Errors
    /// On timeout.
    pub async fn wait_until(
        &self,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&KibanaState) -> bool,
    ) -> anyhow::Result<()> {
        self.state.wait_until(what, timeout, pred).await
    }

    /// Requests whose `Authorization` header is not exactly `header_value` get 401.
    pub fn require_auth(&self, header_value: &str) {
        self.state
            .update(|s| s.required_auth = Some(header_value.to_string()));
    }

    /// Queues an assistant answer (FIFO); each `chat/complete` call consumes one.
    pub fn push_answer(&self, text: impl Into<String>) {
        let text = text.into();
        self.state.update(|s| s.answers.push_back(text));
    }

    /// Decides answers once the queue is empty.
    pub fn set_responder(&self, f: impl Fn(&ChatCompleteCall) -> String + Send + Sync + 'static) {
        let f: Responder = Arc::new(f);
        self.state.update(|s| s.responder = Some(f));
    }

    /// Every `chat/complete` call that passed validation, oldest first (including ones answered
    /// 500 for lack of a scripted answer). Calls failed by [`Self::fail_next`] are answered before
    /// validation and appear only in [`Self::requests`].
    pub fn calls(&self) -> Vec<ChatCompleteCall> {
        self.state.read().calls.clone()
    }

    /// The next `n` assistant requests (chat/complete and conversations) fail with `status` and
    /// the assistant error shape `{"message":..,"status_code":N}`. Cases are unaffected; see
    /// [`Self::fail_cases_next`].
    pub fn fail_next(&self, n: usize, status: u16) {
        self.state
            .update(|s| s.fail_assistant.extend(std::iter::repeat_n(status, n)));
    }

    /// The next `n` Cases requests fail with `status` and the core error shape.
    /// The next `n` Cases writes are applied but answered with 502 (the response is "lost").
    pub fn lose_case_responses_next(&self, n: usize) {
        self.state
            .update(|s| s.lose_case_responses.extend(std::iter::repeat_n(502, n)));
    }

    pub fn fail_cases_next(&self, n: usize, status: u16) {
        self.state
            .update(|s| s.fail_cases.extend(std::iter::repeat_n(status, n)));
    }

    /// Pause between the chunks of a streamed answer (`None`: only yield to the runtime).
    pub fn set_chunk_delay(&self, delay: Option<Duration>) {
        self.state.update(|s| s.chunk_delay = delay);
    }

    /// All stored conversations (ConversationResponse objects), in creation order.
    pub fn conversations(&self) -> Vec<Value> {
        self.state.read().conversations.clone()
    }

    /// All cases (full objects including comments), in creation order, across spaces.
    pub fn cases(&self) -> Vec<Value> {
        self.state
            .read()
            .cases
            .iter()
            .map(|c| c.case.clone())
            .collect()
    }

    /// `(method, path-with-query, body)` of every Cases request (body `null` for GETs).
    pub fn case_requests(&self) -> Vec<(String, String, Value)> {
        self.state.read().case_requests.clone()
    }

    /// Every request answered so far.
    pub fn requests(&self) -> Vec<KibanaRequest> {
        self.state.read().requests.clone()
    }
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
fn assistant_error(status: u16, message: impl Into<String>) -> Response {
    json_response(
        status,
        &json!({"message": message.into(), "status_code": status}),
    )
}

fn now() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true)
}

// ---------------------------------------------------------------------------------------------
// Dispatch

/// A request after the common checks, as the route handlers see it.
struct Req {
    method: Method,
    /// Path without the space prefix.
    route: String,
    /// Original path and query.
    full_path: String,
    query: String,
    space: String,
    body: Bytes,
    username: String,
}

async fn handle(
    state: Arc<Recorder<KibanaState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_string();
    let full_path = uri
        .path_and_query()
        .map(|p| p.to_string())
        .unwrap_or_else(|| path.clone());
    let (space, route) = split_space(&path);
    let auth = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);

    // Authentication first, then the post-auth XSRF check, as in Kibana's lifecycle.
    let required = state.read().required_auth.clone();
    let safe = method == Method::GET || method == Method::HEAD;
    let rejected = if required.is_some_and(|want| auth.as_deref() != Some(want.as_str())) {
        Some(core_error(
            401,
            "[security_exception]: unable to authenticate user",
        ))
    } else if !safe && !headers.contains_key("kbn-xsrf") && !headers.contains_key("kbn-version") {
        Some(core_error(400, "Request must contain a kbn-xsrf header."))
    } else {
        None
    };

    let resp = match rejected {
        Some(r) => r,
        None => {
            let req = Req {
                method: method.clone(),
                route: route.clone(),
                full_path: full_path.clone(),
                query: uri.query().unwrap_or("").to_string(),
                space: space.clone(),
                body,
                username: username_from(auth.as_deref()),
            };
            route_request(&state, req).await
        }
    };
    let status = resp.status().as_u16();
    state.update(|s| {
        s.requests.push(KibanaRequest {
            method: method.to_string(),
            path: full_path,
            space,
            status,
        })
    });
    resp
}

/// Splits `/s/{space}/rest` into (`space`, `/rest`); no prefix means the default space.
fn split_space(path: &str) -> (String, String) {
    if let Some(rest) = path.strip_prefix("/s/") {
        let (space, tail) = rest.split_once('/').unwrap_or((rest, ""));
        return (space.to_string(), format!("/{tail}"));
    }
    ("default".to_string(), path.to_string())
}

/// The user name Kibana would record: the Basic-auth user, else `elastic`.
fn username_from(auth: Option<&str>) -> String {
    auth.and_then(|a| a.strip_prefix("Basic "))
        .and_then(|b| {
            base64::engine::general_purpose::STANDARD
                .decode(b.trim())
                .ok()
        })
        .and_then(|raw| String::from_utf8(raw).ok())
        .and_then(|s| s.split_once(':').map(|(u, _)| u.to_string()))
        .unwrap_or_else(|| "elastic".to_string())
}

/// Parses a JSON body; `Err` is hapi's answer to malformed JSON.
fn parse_json_body(body: &Bytes) -> Result<Value, Box<Response>> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Null);
    }
    serde_json::from_slice(body)
        .map_err(|_| Box::new(core_error(400, "Invalid request payload JSON format")))
}

async fn route_request(state: &Arc<Recorder<KibanaState>>, req: Req) -> Response {
    let segments: Vec<&str> = req.route.trim_matches('/').split('/').collect();
    const CONV: [&str; 4] = [
        "api",
        "security_ai_assistant",
        "current_user",
        "conversations",
    ];
    match (&req.method, segments.as_slice()) {
        (&Method::GET, ["api", "status"]) => json_response(
            200,
            &json!({"name": "kibana-emulator", "version": {"number": "9.1.0"},
                    "status": {"overall": {"level": "available"}}}),
        ),
        (&Method::POST, ["api", "security_ai_assistant", "chat", "complete"]) => {
            if let Some(status) = take(state, |s| &mut s.fail_assistant) {
                return assistant_error(status, "emulated failure");
            }
            chat_complete(state, &req).await
        }
        (m, [a, b, c, d, rest @ ..]) if [*a, *b, *c, *d] == CONV => {
            if let Some(status) = take(state, |s| &mut s.fail_assistant) {
                return assistant_error(status, "emulated failure");
            }
            match (m, rest) {
                (&Method::POST, []) => create_conversation(state, &req),
                (&Method::GET, ["_find"]) => find_conversations(state, &req),
                (&Method::GET, [id]) => get_conversation(state, &req, id),
                _ => core_error(404, "Not Found"),
            }
        }
        (m, ["api", "cases", rest @ ..]) => {
            let body = match parse_json_body(&req.body) {
                Ok(b) => b,
                Err(r) => return *r,
            };
            state.update(|s| {
                s.case_requests
                    .push((m.to_string(), req.full_path.clone(), body.clone()))
            });
            if let Some(status) = take(state, |s| &mut s.fail_cases) {
                return core_error(status, "emulated failure");
            }
            // A write whose response is lost: it is applied, then the client sees a 502.
            let lose = m != Method::GET && take(state, |s| &mut s.lose_case_responses).is_some();
            let response = match (m, rest) {
                (&Method::POST, []) => create_case(state, &req, &body),
                (&Method::PATCH, []) => patch_cases(state, &req, &body),
                (&Method::GET, ["_find"]) => find_cases(state, &req),
                (&Method::GET, [id]) => get_case(state, &req, id),
                (&Method::GET, [id, "comments", "_find"]) => find_comments(state, &req, id),
                (&Method::POST, [id, "comments"]) => add_comment(state, &req, id, &body),
                _ => core_error(404, "Not Found"),
            };
            if lose {
                return core_error(502, "emulated lost response (the write was applied)");
            }
            response
        }
        _ => core_error(404, "Not Found"),
    }
}

fn take(
    state: &Recorder<KibanaState>,
    queue: impl FnOnce(&mut KibanaState) -> &mut VecDeque<u16>,
) -> Option<u16> {
    state.update(|s| queue(s).pop_front())
}

// ---------------------------------------------------------------------------------------------
// Security AI Assistant

/// Zod-style type name, for "Expected string, received number".
fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Validates the chat/complete body like the route's Zod schema; returns the issue list.
fn validate_chat_body(body: &Value) -> Vec<String> {
    let mut issues = Vec::new();
    let Some(obj) = body.as_object() else {
        return vec![format!("Expected object, received {}", type_name(body))];
    };
    let expect =
        |issues: &mut Vec<String>, key: &str, want: &str, required: bool| match obj.get(key) {
            None if required => issues.push(format!("{key}: Required")),
            None => {}
            Some(v) if type_name(v) != want => {
                issues.push(format!("{key}: Expected {want}, received {}", type_name(v)))
            }
            Some(_) => {}
        };
    expect(&mut issues, "connectorId", "string", true);
    expect(&mut issues, "persist", "boolean", true);
    for key in [
        "promptId",
        "responseLanguage",
        "model",
        "langSmithProject",
        "langSmithApiKey",
    ] {
        expect(&mut issues, key, "string", false);
    }
    expect(&mut issues, "isStream", "boolean", false);
    match obj.get("conversationId") {
        Some(Value::String(s)) if s.trim().is_empty() => {
            issues.push("conversationId: No empty strings allowed".to_string())
        }
        Some(
            v @ Value::Number(_) | v @ Value::Bool(_) | v @ Value::Array(_) | v @ Value::Object(_),
        ) => issues.push(format!(
            "conversationId: Expected string, received {}",
            type_name(v)
        )),
        _ => {}
    }
    match obj.get("messages") {
        None => issues.push("messages: Required".to_string()),
        Some(Value::Array(items)) => {
            if items.is_empty() {
                issues.push("messages: Array must contain at least 1 element(s)".to_string());
            }
            for (i, m) in items.iter().enumerate() {
                let Some(m) = m.as_object() else {
                    issues.push(format!(
                        "messages.{i}: Expected object, received {}",
                        type_name(m)
                    ));
                    continue;
                };
                match m.get("role").and_then(Value::as_str) {
                    Some("system" | "user" | "assistant") => {}
                    Some(other) => issues.push(format!(
                        "messages.{i}.role: Invalid enum value. Expected 'system' | 'user' | 'assistant', received '{other}'"
                    )),
                    None => issues.push(format!("messages.{i}.role: Required")),
                }
                if let Some(c) = m.get("content").filter(|c| !c.is_string()) {
                    issues.push(format!(
                        "messages.{i}.content: Expected string, received {}",
                        type_name(c)
                    ));
                }
                if let Some(d) = m.get("data").filter(|d| !d.is_object()) {
                    issues.push(format!(
                        "messages.{i}.data: Expected object, received {}",
                        type_name(d)
                    ));
                }
                match m.get("fields_to_anonymize") {
                    None => {}
                    Some(Value::Array(a)) if a.iter().all(Value::is_string) => {}
                    Some(_) => issues.push(format!(
                        "messages.{i}.fields_to_anonymize: Expected array of strings"
                    )),
                }
                let extra: Vec<String> = m
                    .keys()
                    .filter(|k| {
                        !["role", "content", "data", "fields_to_anonymize"].contains(&k.as_str())
                    })
                    .map(|k| format!("'{k}'"))
                    .collect();
                if !extra.is_empty() {
                    issues.push(format!(
                        "messages.{i}: Unrecognized key(s) in object: {}",
                        extra.join(", ")
                    ));
                }
            }
        }
        Some(v) => issues.push(format!(
            "messages: Expected array, received {}",
            type_name(v)
        )),
    }
    const KNOWN: &[&str] = &[
        "connectorId",
        "persist",
        "messages",
        "conversationId",
        "promptId",
        "isStream",
        "responseLanguage",
        "model",
        "langSmithProject",
        "langSmithApiKey",
    ];
    let extra: Vec<String> = obj
        .keys()
        .filter(|k| !KNOWN.contains(&k.as_str()))
        .map(|k| format!("'{k}'"))
        .collect();
    if !extra.is_empty() {
        issues.push(format!(
            "Unrecognized key(s) in object: {}",
            extra.join(", ")
        ));
    }
    issues
}

fn new_conversation(space: &str, title: &str, username: &str, api_config: Value) -> Value {
    let ts = now();
    json!({
        "id": uuid::Uuid::new_v4().to_string(),
        "title": title,
        "category": "assistant",
        "createdAt": ts,
        "updatedAt": ts,
        "timestamp": ts,
        "users": [{"id": "u_emulator_0", "name": username}],
        "namespace": space,
        "messages": [],
        "apiConfig": api_config,
        "replacements": {},
        "excludeFromLastConversationStorage": false,
        "isDefault": false,
    })
}

fn stored_message(role: &str, content: &str) -> Value {
    json!({"role": role, "content": content, "timestamp": now()})
}

async fn chat_complete(state: &Arc<Recorder<KibanaState>>, req: &Req) -> Response {
    let body = match parse_json_body(&req.body) {
        Ok(b) => b,
        Err(r) => return *r,
    };
    let issues = validate_chat_body(&body);
    if !issues.is_empty() {
        return core_error(400, format!("[request body]: {}", issues.join(", ")));
    }
    let connector_id = body["connectorId"].as_str().unwrap_or_default().to_string();
    let persist = body["persist"].as_bool().unwrap_or(false);
    let is_stream = body
        .get("isStream")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let messages = body["messages"].as_array().cloned().unwrap_or_default();
    let last_user_content = messages
        .iter()
        .rev()
        .find(|m| m["role"] == "user")
        .and_then(|m| m["content"].as_str())
        .unwrap_or("")
        .to_string();
    let given_id = body
        .get("conversationId")
        .and_then(Value::as_str)
        .map(str::to_string);

    // Kibana ignores conversationId unless persist is true; with persist it must exist.
    let conversation_id = if persist {
        match &given_id {
            Some(id) => {
                let exists = state
                    .read()
                    .conversations
                    .iter()
                    .any(|c| c["id"] == id.as_str() && c["namespace"] == req.space.as_str());
                if !exists {
                    return assistant_error(404, format!("conversation id: \"{id}\" not found"));
                }
                Some(id.clone())
            }
            None => {
                let conv = new_conversation(
                    &req.space,
                    "New chat",
                    &req.username,
                    json!({"connectorId": connector_id, "actionTypeId": ".gen-ai"}),
                );
                let id = conv["id"].as_str().unwrap_or_default().to_string();
                state.update(|s| s.conversations.push(conv));
                Some(id)
            }
        }
    } else {
        None
    };

    let call = ChatCompleteCall {
        space: req.space.clone(),
        body: body.clone(),
        last_user_content,
        conversation_id: conversation_id.clone(),
        is_stream,
    };
    let (queued, responder) = state.update(|s| {
        s.calls.push(call.clone());
        (s.answers.pop_front(), s.responder.clone())
    });
    // The responder runs outside the state lock so it may inspect the emulator itself.
    let Some(answer) = queued.or_else(|| responder.map(|f| f(&call))) else {
        return assistant_error(500, "no scripted answer");
    };

    if let Some(id) = &conversation_id {
        // New conversations hold all request messages; continued ones only the new input.
        let incoming: Vec<Value> = if given_id.is_some() {
            messages.last().into_iter().cloned().collect()
        } else {
            messages.clone()
        };
        state.update(|s| {
            if let Some(conv) = s.conversations.iter_mut().find(|c| c["id"] == id.as_str()) {
                if let Some(list) = conv["messages"].as_array_mut() {
                    for m in &incoming {
                        list.push(stored_message(
                            m["role"].as_str().unwrap_or("user"),
                            m["content"].as_str().unwrap_or(""),
                        ));
                    }
                    list.push(stored_message("assistant", &answer));
                }
                conv["updatedAt"] = json!(now());
            }
        });
    }

    if is_stream {
        let delay = state.read().chunk_delay;
        return stream_response(ndjson_chunks(&answer), delay);
    }
    let mut out = json!({
        "connector_id": connector_id,
        "data": answer,
        "trace_data": {
            "transactionId": uuid::Uuid::new_v4().simple().to_string()[..16].to_string(),
            "traceId": uuid::Uuid::new_v4().simple().to_string(),
        },
        "replacements": {},
        "status": "ok",
    });
    if let Some(id) = conversation_id {
        out["conversationId"] = json!(id);
    }
    json_response(200, &out)
}

/// Splits an answer into NDJSON `content` lines plus one unknown-type line, then cuts the bytes
/// into chunks at the middle of every line, so no chunk boundary falls on a line boundary.
pub(crate) fn ndjson_chunks(answer: &str) -> Vec<Bytes> {
    let chars: Vec<char> = answer.chars().collect();
    let pieces = chars.len().clamp(1, 4);
    let per = chars.len().div_ceil(pieces).max(1);
    let deltas: Vec<String> = chars.chunks(per).map(|c| c.iter().collect()).collect();
    let mut lines: Vec<String> = Vec::new();
    for (i, d) in deltas.iter().enumerate() {
        lines.push(json!({"payload": d, "type": "content"}).to_string());
        if i == 0 {
            // Clients must skip line types they do not know.
            lines.push(json!({"type": "debug", "payload": "x"}).to_string());
        }
    }
    if deltas.is_empty() {
        lines.push(json!({"type": "debug", "payload": "x"}).to_string());
    }
    let mut bytes = Vec::new();
    let mut cuts = Vec::new();
    for line in &lines {
        let start = bytes.len();
        bytes.extend_from_slice(line.as_bytes());
        bytes.push(b'\n');
        // Byte midpoint: may even split a multi-byte character, as a real TCP read can.
        cuts.push(start + line.len() / 2);
    }
    let bytes = Bytes::from(bytes);
    let mut chunks = Vec::new();
    let mut prev = 0;
    for cut in cuts.into_iter().filter(|c| *c > 0) {
        chunks.push(bytes.slice(prev..cut));
        prev = cut;
    }
    chunks.push(bytes.slice(prev..));
    chunks
}

fn stream_response(chunks: Vec<Bytes>, delay: Option<Duration>) -> Response {
    let stream = futures_util::stream::unfold(
        (chunks.into_iter(), true),
        move |(mut it, first)| async move {
            let chunk = it.next()?;
            if !first {
                // Separate writes so the client really sees the chunks one by one.
                match delay {
                    Some(d) => tokio::time::sleep(d).await,
                    None => tokio::task::yield_now().await,
                }
            }
            Some((Ok::<Bytes, Infallible>(chunk), (it, false)))
        },
    );
    let mut resp = Response::new(Body::from_stream(stream));
    let h = resp.headers_mut();
    // Headers set by Kibana's streamFactory (kibana.md §1.4); deliberately no Content-Type.
    // Transfer-Encoding and Connection are framing headers hyper manages itself.
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    resp
}

fn create_conversation(state: &Arc<Recorder<KibanaState>>, req: &Req) -> Response {
    let body = match parse_json_body(&req.body) {
        Ok(b) => b,
        Err(r) => return *r,
    };
    let Some(obj) = body.as_object() else {
        return core_error(
            400,
            format!(
                "[request body]: Expected object, received {}",
                type_name(&body)
            ),
        );
    };
    let mut issues = Vec::new();
    match obj.get("title") {
        None => issues.push("title: Required".to_string()),
        Some(Value::String(_)) => {}
        Some(v) => issues.push(format!("title: Expected string, received {}", type_name(v))),
    }
    if let Some(c) = obj.get("category")
        && !matches!(c.as_str(), Some("assistant" | "insights"))
    {
        issues.push("category: Invalid enum value. Expected 'assistant' | 'insights'".to_string());
    }
    match obj.get("apiConfig") {
        None => {}
        Some(Value::Object(ac)) => {
            for key in ["connectorId", "actionTypeId"] {
                match ac.get(key) {
                    Some(Value::String(_)) => {}
                    None => issues.push(format!("apiConfig.{key}: Required")),
                    Some(v) => issues.push(format!(
                        "apiConfig.{key}: Expected string, received {}",
                        type_name(v)
                    )),
                }
            }
        }
        Some(v) => issues.push(format!(
            "apiConfig: Expected object, received {}",
            type_name(v)
        )),
    }
    if let Some(m) = obj.get("messages").filter(|m| !m.is_array()) {
        issues.push(format!(
            "messages: Expected array, received {}",
            type_name(m)
        ));
    }
    if let Some(r) = obj.get("replacements").filter(|r| !r.is_object()) {
        issues.push(format!(
            "replacements: Expected object, received {}",
            type_name(r)
        ));
    }
    if let Some(e) = obj
        .get("excludeFromLastConversationStorage")
        .filter(|e| !e.is_boolean())
    {
        issues.push(format!(
            "excludeFromLastConversationStorage: Expected boolean, received {}",
            type_name(e)
        ));
    }
    if !issues.is_empty() {
        return core_error(400, format!("[request body]: {}", issues.join(", ")));
    }
    let title = obj["title"].as_str().unwrap_or_default();
    let mut conv = new_conversation(
        &req.space,
        title,
        &req.username,
        obj.get("apiConfig").cloned().unwrap_or(json!({})),
    );
    if obj.get("apiConfig").is_none()
        && let Some(map) = conv.as_object_mut()
    {
        map.remove("apiConfig");
    }
    for key in [
        "category",
        "messages",
        "replacements",
        "excludeFromLastConversationStorage",
    ] {
        if let Some(v) = obj.get(key) {
            conv[key] = v.clone();
        }
    }
    state.update(|s| s.conversations.push(conv.clone()));
    json_response(200, &conv)
}

fn get_conversation(state: &Arc<Recorder<KibanaState>>, req: &Req, id: &str) -> Response {
    let found = state
        .read()
        .conversations
        .iter()
        .find(|c| c["id"] == id && c["namespace"] == req.space.as_str())
        .cloned();
    match found {
        Some(c) => json_response(200, &c),
        None => assistant_error(404, format!("conversation id: \"{id}\" not found")),
    }
}

fn find_conversations(state: &Arc<Recorder<KibanaState>>, req: &Req) -> Response {
    let data: Vec<Value> = state
        .read()
        .conversations
        .iter()
        .filter(|c| c["namespace"] == req.space.as_str())
        .rev()
        .cloned()
        .collect();
    json_response(
        200,
        &json!({"page": 1, "perPage": data.len().max(20), "total": data.len(), "data": data}),
    )
}

// ---------------------------------------------------------------------------------------------
// Cases: validation in the style of io-ts + formatErrors + exactCheck

const OWNERS: &[&str] = &["cases", "observability", "securitySolution"];
const SEVERITIES: &[&str] = &["low", "medium", "high", "critical"];
const STATUSES: &[&str] = &["open", "in-progress", "closed"];
const CONNECTOR_TYPES: &[&str] = &[
    ".none",
    ".jira",
    ".resilient",
    ".servicenow",
    ".servicenow-sir",
    ".swimlane",
    ".cases-webhook",
];

/// Renders a value the way io-ts `formatErrors` does.
fn render(v: Option<&Value>) -> String {
    match v {
        None => "undefined".to_string(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

#[derive(Default)]
struct Check {
    errors: Vec<String>,
    excess: Vec<String>,
}

impl Check {
    fn invalid(&mut self, v: Option<&Value>, path: &str) {
        self.errors.push(format!(
            "Invalid value \"{}\" supplied to \"{path}\"",
            render(v)
        ));
    }

    fn keys(&mut self, obj: &Map<String, Value>, allowed: &[&str]) {
        self.excess.extend(
            obj.keys()
                .filter(|k| !allowed.contains(&k.as_str()))
                .cloned(),
        );
    }

    fn string<'a>(
        &mut self,
        obj: &'a Map<String, Value>,
        key: &str,
        required: bool,
    ) -> Option<&'a str> {
        match obj.get(key) {
            Some(Value::String(s)) => Some(s),
            None if !required => None,
            v => {
                self.invalid(v, key);
                None
            }
        }
    }

    /// `limitedStringSchema`: trimmed non-empty, at most `max` characters.
    fn limited(&mut self, s: &str, field: &str, max: usize) {
        if s.trim().is_empty() {
            self.errors
                .push(format!("The {field} field cannot be an empty string."));
        } else if s.chars().count() > max {
            self.errors.push(format!(
                "The length of the {field} is too long. The maximum length is {max}."
            ));
        }
    }

    fn one_of(&mut self, obj: &Map<String, Value>, key: &str, allowed: &[&str], required: bool) {
        match obj.get(key) {
            None if !required => {}
            Some(Value::String(s)) if allowed.contains(&s.as_str()) => {}
            v => self.invalid(v, key),
        }
    }

    /// Finishes: type errors first, then excess keys (exactCheck only runs on a decoded value).
    fn finish(self) -> Result<(), String> {
        if !self.errors.is_empty() {
            return Err(self.errors.join(","));
        }
        if !self.excess.is_empty() {
            return Err(format!("invalid keys \"{}\"", self.excess.join(",")));
        }
        Ok(())
    }
}

/// Validates the fields shared by create and patch; `required` marks the create-only requirement.
fn check_case_fields(c: &mut Check, obj: &Map<String, Value>, required: bool) {
    if let Some(t) = c.string(obj, "title", required) {
        c.limited(t, "title", 160);
    }
    if let Some(d) = c.string(obj, "description", required) {
        c.limited(d, "description", 30_000);
    }
    match obj.get("tags") {
        None if !required => {}
        Some(Value::Array(tags)) => {
            if tags.len() > 200 {
                c.errors.push(
                    "The length of the field tags is too long. Array must be of length <= 200."
                        .to_string(),
                );
            }
            for t in tags {
                match t.as_str() {
                    Some(s) => c.limited(s, "tag", 256),
                    None => c.invalid(Some(t), "tags"),
                }
            }
        }
        v => c.invalid(v, "tags"),
    }
    match obj.get("connector") {
        None if !required => {}
        Some(Value::Object(conn)) => {
            c.keys(conn, &["id", "name", "type", "fields"]);
            c.string(conn, "id", true);
            c.string(conn, "name", true);
            c.one_of(conn, "type", CONNECTOR_TYPES, true);
            match (conn.get("type").and_then(Value::as_str), conn.get("fields")) {
                (Some(".none"), Some(Value::Null)) => {}
                (Some(".none"), v) => c.invalid(v, "connector,fields"),
                (_, Some(Value::Object(_)) | Some(Value::Null)) => {}
                (_, v) => c.invalid(v, "connector,fields"),
            }
        }
        v => c.invalid(v, "connector"),
    }
    match obj.get("settings") {
        None if !required => {}
        Some(Value::Object(set)) => {
            c.keys(set, &["syncAlerts", "extractObservables"]);
            if !set.get("syncAlerts").is_some_and(Value::is_boolean) {
                c.invalid(set.get("syncAlerts"), "settings,syncAlerts");
            }
        }
        v => c.invalid(v, "settings"),
    }
    c.one_of(obj, "severity", SEVERITIES, false);
    match obj.get("assignees") {
        None => {}
        Some(Value::Array(list)) => {
            if list.len() > 10 {
                c.errors.push(
                    "The length of the field assignees is too long. Array must be of length <= 10."
                        .to_string(),
                );
            }
            for a in list {
                match a.as_object() {
                    Some(m) if m.get("uid").is_some_and(Value::is_string) => c.keys(m, &["uid"]),
                    _ => c.invalid(Some(a), "assignees"),
                }
            }
        }
        v => c.invalid(v, "assignees"),
    }
    match obj.get("category") {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) => c.limited(s, "category", 50),
        v => c.invalid(v, "category"),
    }
    match obj.get("customFields") {
        None => {}
        Some(Value::Array(list)) => {
            if list.len() > 10 {
                c.errors.push(
                    "The length of the field customFields is too long. Array must be of length <= 10."
                        .to_string(),
                );
            }
            for f in list {
                match f.as_object() {
                    Some(m) => {
                        c.keys(m, &["key", "type", "value"]);
                        c.string(m, "key", true);
                        c.one_of(m, "type", &["text", "toggle", "number"], true);
                        if !m.contains_key("value") {
                            c.invalid(None, "customFields,value");
                        }
                    }
                    None => c.invalid(Some(f), "customFields"),
                }
            }
        }
        v => c.invalid(v, "customFields"),
    }
}

fn validate_create_case(body: &Value) -> Result<(), String> {
    let Some(obj) = body.as_object() else {
        return Err(format!(
            "Invalid value \"{}\" supplied to \"\"",
            render(Some(body))
        ));
    };
    let mut c = Check::default();
    c.keys(
        obj,
        &[
            "title",
            "description",
            "tags",
            "connector",
            "settings",
            "owner",
            "severity",
            "assignees",
            "category",
            "customFields",
        ],
    );
    check_case_fields(&mut c, obj, true);
    c.one_of(obj, "owner", OWNERS, true);
    c.finish()
}

fn validate_comment(body: &Value) -> Result<(), String> {
    let Some(obj) = body.as_object() else {
        return Err(format!(
            "Invalid value \"{}\" supplied to \"\"",
            render(Some(body))
        ));
    };
    let mut c = Check::default();
    match obj.get("type").and_then(Value::as_str) {
        Some("user") => {
            c.keys(obj, &["type", "comment", "owner"]);
            if let Some(text) = c.string(obj, "comment", true) {
                c.limited(text, "comment", 30_000);
            }
        }
        Some("alert") => {
            c.keys(obj, &["type", "alertId", "index", "rule", "owner"]);
            let ids = match obj.get("alertId") {
                Some(Value::String(_)) => Some(1),
                Some(Value::Array(a)) if a.iter().all(Value::is_string) && !a.is_empty() => {
                    Some(a.len())
                }
                v => {
                    c.invalid(v, "alertId");
                    None
                }
            };
            let idx = match obj.get("index") {
                Some(Value::String(_)) => Some(1),
                Some(Value::Array(a)) if a.iter().all(Value::is_string) && !a.is_empty() => {
                    Some(a.len())
                }
                v => {
                    c.invalid(v, "index");
                    None
                }
            };
            if ids.is_some_and(|n| n > 1000) || idx.is_some_and(|n| n > 1000) {
                c.errors.push(
                    "The length of the field alertId is too long. Array must be of length <= 1000."
                        .to_string(),
                );
            }
            match obj.get("rule") {
                Some(Value::Object(r)) => {
                    c.keys(r, &["id", "name"]);
                    for k in ["id", "name"] {
                        if !matches!(r.get(k), Some(Value::String(_) | Value::Null)) {
                            c.invalid(r.get(k), &format!("rule,{k}"));
                        }
                    }
                }
                v => c.invalid(v, "rule"),
            }
        }
        _ => c.invalid(obj.get("type"), "type"),
    }
    c.one_of(obj, "owner", OWNERS, true);
    c.finish()
}

const PATCHABLE: &[&str] = &[
    "title",
    "description",
    "tags",
    "severity",
    "status",
    "assignees",
    "category",
    "settings",
    "connector",
    "customFields",
];

fn validate_patch(body: &Value) -> Result<Vec<Map<String, Value>>, String> {
    let Some(obj) = body.as_object() else {
        return Err(format!(
            "Invalid value \"{}\" supplied to \"\"",
            render(Some(body))
        ));
    };
    let mut c = Check::default();
    c.keys(obj, &["cases"]);
    let mut out = Vec::new();
    match obj.get("cases") {
        Some(Value::Array(list)) if !list.is_empty() && list.len() <= 100 => {
            for item in list {
                let Some(m) = item.as_object() else {
                    c.invalid(Some(item), "cases");
                    continue;
                };
                let mut allowed = vec!["id", "version"];
                allowed.extend_from_slice(PATCHABLE);
                c.keys(m, &allowed);
                c.string(m, "id", true);
                c.string(m, "version", true);
                check_case_fields(&mut c, m, false);
                c.one_of(m, "status", STATUSES, false);
                out.push(m.clone());
            }
        }
        v => c.invalid(v, "cases"),
    }
    c.finish().map(|()| out)
}

// ---------------------------------------------------------------------------------------------
// Cases: handlers

fn user_object(username: &str) -> Value {
    json!({"username": username, "full_name": null, "email": null, "profile_uid": "u_emulator_0"})
}

/// Opaque saved-object version, shaped like Kibana's base64 of `[seq_no,primary_term]`.
fn next_version(s: &mut KibanaState) -> String {
    s.version_counter += 1;
    base64::engine::general_purpose::STANDARD.encode(format!("[{},1]", s.version_counter))
}

/// Recomputes the totals after the comment list changed.
fn recount(case: &mut Value) {
    let comments = case["comments"].as_array().cloned().unwrap_or_default();
    let user = comments.iter().filter(|c| c["type"] == "user").count();
    let alerts: usize = comments
        .iter()
        .filter(|c| c["type"] == "alert")
        .map(|c| match &c["alertId"] {
            Value::Array(a) => a.len(),
            _ => 1,
        })
        .sum();
    case["totalComment"] = json!(user);
    case["totalAlerts"] = json!(alerts);
}

fn without_comments(case: &Value) -> Value {
    let mut c = case.clone();
    c["comments"] = json!([]);
    c
}

fn create_case(state: &Arc<Recorder<KibanaState>>, req: &Req, body: &Value) -> Response {
    if let Err(msg) = validate_create_case(body) {
        return core_error(400, format!("Failed to create case: Error: {msg}"));
    }
    let ts = now();
    let case = state.update(|s| {
        let version = next_version(s);
        let mut case = json!({
            "id": uuid::Uuid::new_v4().to_string(),
            "version": version,
            "title": body["title"].as_str().unwrap_or_default().trim(),
            "description": body["description"],
            "tags": body["tags"].as_array().map(|t| t.iter().map(|x| json!(x.as_str().unwrap_or_default().trim())).collect::<Vec<_>>()).unwrap_or_default(),
            "owner": body["owner"],
            "status": "open",
            "severity": body.get("severity").cloned().unwrap_or(json!("low")),
            "assignees": body.get("assignees").cloned().unwrap_or(json!([])),
            "category": body.get("category").cloned().unwrap_or(Value::Null),
            "settings": body["settings"],
            "customFields": body.get("customFields").cloned().unwrap_or(json!([])),
            "connector": body["connector"],
            "external_service": null,
            "totalComment": 0,
            "totalAlerts": 0,
            "comments": [],
            "created_at": ts,
            "created_by": user_object(&req.username),
            "updated_at": null,
            "updated_by": null,
            "closed_at": null,
            "closed_by": null,
            "duration": null,
        });
        recount(&mut case);
        s.cases.push(StoredCase { space: req.space.clone(), case: case.clone() });
        case
    });
    json_response(200, &case)
}

fn find_case_index(s: &KibanaState, space: &str, id: &str) -> Option<usize> {
    s.cases
        .iter()
        .position(|c| c.space == space && c.case["id"] == id)
}

fn get_case(state: &Arc<Recorder<KibanaState>>, req: &Req, id: &str) -> Response {
    let s = state.read();
    match find_case_index(&s, &req.space, id) {
        Some(i) => json_response(200, &s.cases[i].case),
        None => core_error(
            404,
            format!("Failed to retrieve case id: {id}: Error: Saved object [cases/{id}] not found"),
        ),
    }
}

/// `GET /api/cases/{id}/comments/_find`: the case's user comments, paged (`page`, `perPage`),
/// oldest first, as `{comments, page, per_page, total}`.
fn find_comments(state: &Arc<Recorder<KibanaState>>, req: &Req, id: &str) -> Response {
    let s = state.read();
    let Some(i) = find_case_index(&s, &req.space, id) else {
        return core_error(404, format!("Saved object [cases/{id}] not found"));
    };
    let query: Vec<(String, String)> =
        serde_urlencoded::from_str(req.full_path.split_once('?').map_or("", |(_, q)| q))
            .unwrap_or_default();
    let get = |k: &str| {
        query
            .iter()
            .find(|(n, _)| n == k)
            .and_then(|(_, v)| v.parse::<usize>().ok())
    };
    let per_page = get("perPage").unwrap_or(20).clamp(1, 100);
    let page = get("page").unwrap_or(1).max(1);
    let user: Vec<Value> = s.cases[i].case["comments"]
        .as_array()
        .map(|cs| cs.iter().filter(|c| c["type"] == "user").cloned().collect())
        .unwrap_or_default();
    let total = user.len();
    let items: Vec<Value> = user
        .into_iter()
        .skip((page - 1) * per_page)
        .take(per_page)
        .collect();
    json_response(
        200,
        &json!({ "comments": items, "page": page, "per_page": per_page, "total": total }),
    )
}

fn add_comment(state: &Arc<Recorder<KibanaState>>, req: &Req, id: &str, body: &Value) -> Response {
    let prefix = format!("Failed while adding a comment to case id: {id} error: Error: ");
    if let Err(msg) = validate_comment(body) {
        return core_error(400, format!("{prefix}{msg}"));
    }
    let ts = now();
    let result = state.update(|s| {
        let i = find_case_index(s, &req.space, id)?;
        let comment_version = next_version(s);
        let case_version = next_version(s);
        let mut comment = body.clone();
        if let Some(c) = comment.as_object_mut() {
            c.insert("id".into(), json!(uuid::Uuid::new_v4().to_string()));
            c.insert("version".into(), json!(comment_version));
            c.insert("created_at".into(), json!(ts));
            c.insert("created_by".into(), user_object(&req.username));
            c.insert("pushed_at".into(), Value::Null);
            c.insert("pushed_by".into(), Value::Null);
            c.insert("updated_at".into(), Value::Null);
            c.insert("updated_by".into(), Value::Null);
        }
        let case = &mut s.cases[i].case;
        if let Some(list) = case["comments"].as_array_mut() {
            list.push(comment);
        }
        recount(case);
        case["version"] = json!(case_version);
        case["updated_at"] = json!(ts);
        case["updated_by"] = user_object(&req.username);
        Some(case.clone())
    });
    match result {
        Some(case) => json_response(200, &case),
        None => core_error(404, format!("{prefix}Saved object [cases/{id}] not found")),
    }
}

fn patch_cases(state: &Arc<Recorder<KibanaState>>, req: &Req, body: &Value) -> Response {
    let id_versions: Vec<Value> = body
        .get("cases")
        .and_then(Value::as_array)
        .map(|l| {
            l.iter()
                .map(|c| json!({"id": c.get("id"), "version": c.get("version")}))
                .collect()
        })
        .unwrap_or_default();
    let prefix = format!(
        "Failed to update case, ids: {}: Error: ",
        serde_json::to_string(&id_versions).unwrap_or_default()
    );
    let items = match validate_patch(body) {
        Ok(items) => items,
        Err(msg) => return core_error(400, format!("{prefix}{msg}")),
    };
    let ts = now();
    let outcome: Result<Vec<Value>, (u16, String)> = state.update(|s| {
        let missing: Vec<&str> = items
            .iter()
            .filter_map(|m| m["id"].as_str())
            .filter(|id| find_case_index(s, &req.space, id).is_none())
            .collect();
        if !missing.is_empty() {
            return Err((
                404,
                format!(
                    "{prefix}These cases {} do not exist. Please check you have the correct ids.",
                    missing.join(", ")
                ),
            ));
        }
        let conflicted: Vec<&str> = items
            .iter()
            .filter(|m| {
                let i = find_case_index(s, &req.space, m["id"].as_str().unwrap_or_default());
                i.is_some_and(|i| s.cases[i].case["version"] != m["version"])
            })
            .filter_map(|m| m["id"].as_str())
            .collect();
        if !conflicted.is_empty() {
            return Err((
                409,
                format!(
                    "{prefix}These cases {} has been updated. Please refresh before saving additional updates.",
                    conflicted.join(", ")
                ),
            ));
        }
        // Only fields that differ from the stored case count as updates.
        let changes: Vec<(usize, Map<String, Value>)> = items
            .iter()
            .filter_map(|m| {
                let i = find_case_index(s, &req.space, m["id"].as_str().unwrap_or_default())?;
                let current = &s.cases[i].case;
                let diff: Map<String, Value> = m
                    .iter()
                    .filter(|(k, v)| PATCHABLE.contains(&k.as_str()) && current.get(k.as_str()) != Some(v))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                (!diff.is_empty()).then_some((i, diff))
            })
            .collect();
        if changes.is_empty() {
            return Err((
                406,
                format!("{prefix}All update fields are identical to current version."),
            ));
        }
        let mut updated = Vec::new();
        for (i, diff) in changes {
            let version = next_version(s);
            let case = &mut s.cases[i].case;
            let was_closed = case["status"] == "closed";
            for (k, v) in diff {
                let v = match (k.as_str(), v) {
                    ("title", Value::String(t)) => json!(t.trim()),
                    (_, v) => v,
                };
                case[k.as_str()] = v;
            }
            match (was_closed, case["status"] == "closed") {
                (false, true) => {
                    case["closed_at"] = json!(ts);
                    case["closed_by"] = user_object(&req.username);
                    let created = case["created_at"]
                        .as_str()
                        .and_then(|c| chrono::DateTime::parse_from_rfc3339(c).ok());
                    case["duration"] = created
                        .map(|c| json!((Utc::now() - c.with_timezone(&Utc)).num_seconds()))
                        .unwrap_or(Value::Null);
                }
                (true, false) => {
                    case["closed_at"] = Value::Null;
                    case["closed_by"] = Value::Null;
                    case["duration"] = Value::Null;
                }
                _ => {}
            }
            case["version"] = json!(version);
            case["updated_at"] = json!(ts);
            case["updated_by"] = user_object(&req.username);
            updated.push(without_comments(case));
        }
        Ok(updated)
    });
    match outcome {
        Ok(list) => json_response(200, &Value::Array(list)),
        Err((status, message)) => core_error(status, message),
    }
}

/// Query parameters of `GET /api/cases/_find` that this emulator understands.
const FIND_PARAMS: &[&str] = &[
    "tags",
    "owner",
    "status",
    "severity",
    "search",
    "searchFields",
    "defaultSearchOperator",
    "sortField",
    "sortOrder",
    "page",
    "perPage",
    "assignees",
    "reporters",
    "category",
    "from",
    "to",
];

fn find_cases(state: &Arc<Recorder<KibanaState>>, req: &Req) -> Response {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(&req.query).unwrap_or_default();
    let excess: Vec<&str> = pairs
        .iter()
        .map(|(k, _)| k.as_str())
        .filter(|k| !FIND_PARAMS.contains(k))
        .collect();
    if !excess.is_empty() {
        return core_error(
            400,
            format!(
                "Failed to find cases: Error: invalid keys \"{}\"",
                excess.join(",")
            ),
        );
    }
    let mut multi: HashMap<&str, Vec<&str>> = HashMap::new();
    for (k, v) in &pairs {
        multi.entry(k.as_str()).or_default().push(v.as_str());
    }
    let all = |k: &str| multi.get(k).cloned().unwrap_or_default();
    let first = |k: &str| multi.get(k).and_then(|v| v.first().copied());
    let per_page: usize = match first("perPage").map(str::parse) {
        None => 20,
        Some(Ok(n)) => n,
        Some(Err(_)) => {
            return core_error(
                400,
                "Failed to find cases: Error: Invalid value supplied to \"perPage\"",
            );
        }
    };
    if per_page > 100 {
        return core_error(
            400,
            "Failed to find cases: Error: The provided perPage value is too high. The maximum allowed perPage value is 100.",
        );
    }
    let page: usize = first("page")
        .and_then(|p| p.parse().ok())
        .unwrap_or(1)
        .max(1);
    let tags = all("tags");
    let owners = all("owner");
    let statuses = all("status");
    let severities = all("severity");
    let search = first("search").map(str::to_lowercase);

    let s = state.read();
    let base: Vec<&Value> = s
        .cases
        .iter()
        .filter(|c| c.space == req.space)
        .map(|c| &c.case)
        .filter(|c| {
            // Tags are ORed, like Kibana's KQL filter `tags: a OR tags: b`.
            tags.is_empty()
                || c["tags"]
                    .as_array()
                    .is_some_and(|t| t.iter().any(|x| tags.iter().any(|w| x == *w)))
        })
        .filter(|c| owners.is_empty() || owners.iter().any(|o| c["owner"] == *o))
        .filter(|c| severities.is_empty() || severities.iter().any(|o| c["severity"] == *o))
        .filter(|c| {
            search.as_ref().is_none_or(|q| {
                ["title", "description"].iter().any(|f| {
                    c[*f]
                        .as_str()
                        .is_some_and(|t| t.to_lowercase().contains(q.as_str()))
                })
            })
        })
        .collect();
    let count = |st: &str| base.iter().filter(|c| c["status"] == st).count();
    let (open, in_progress, closed) = (count("open"), count("in-progress"), count("closed"));
    let mut matched: Vec<&Value> = base
        .into_iter()
        .filter(|c| statuses.is_empty() || statuses.iter().any(|st| c["status"] == *st))
        .collect();
    let sort_field = match first("sortField") {
        Some("updatedAt") => "updated_at",
        Some("closedAt") => "closed_at",
        Some("title") => "title",
        Some("severity") => "severity",
        Some("status") => "status",
        _ => "created_at",
    };
    matched.sort_by(|a, b| {
        let key = |c: &Value| c[sort_field].as_str().unwrap_or("").to_string();
        key(a).cmp(&key(b))
    });
    if first("sortOrder") != Some("asc") {
        matched.reverse();
    }
    let total = matched.len();
    let cases: Vec<Value> = matched
        .into_iter()
        .skip((page - 1) * per_page)
        .take(per_page)
        .map(without_comments)
        .collect();
    json_response(
        200,
        &json!({
            "cases": cases, "page": page, "per_page": per_page, "total": total,
            "count_open_cases": open, "count_in_progress_cases": in_progress,
            "count_closed_cases": closed,
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn valid_case() -> Value {
        json!({
            "title": "[High] Run key on WS-1",
            "description": "desc",
            "tags": ["triage-bot", "triage-bot:incident:1"],
            "connector": {"id": "none", "name": "none", "type": ".none", "fields": null},
            "settings": {"syncAlerts": true},
            "owner": "securitySolution",
            "severity": "high"
        })
    }

    #[test]
    fn create_case_accepts_the_documented_body() {
        assert_eq!(validate_create_case(&valid_case()), Ok(()));
    }

    #[test]
    fn create_case_rejects_excess_keys_like_decode_with_excess_or_throw() {
        let mut body = valid_case();
        body["status"] = json!("open");
        body["settings"]["bogus"] = json!(1);
        assert_eq!(
            validate_create_case(&body),
            Err("invalid keys \"status,bogus\"".to_string())
        );
    }

    #[test]
    fn create_case_reports_type_and_limit_errors_before_excess_keys() {
        let mut body = valid_case();
        body["title"] = json!("x".repeat(161));
        body.as_object_mut().unwrap().remove("owner");
        body["extra"] = json!(true);
        let err = validate_create_case(&body).unwrap_err();
        assert_eq!(
            err,
            "The length of the title is too long. The maximum length is 160.,Invalid value \"undefined\" supplied to \"owner\""
        );
        let mut body = valid_case();
        body["description"] = json!("   ");
        assert_eq!(
            validate_create_case(&body).unwrap_err(),
            "The description field cannot be an empty string."
        );
    }

    #[test]
    fn comments_are_strict_per_type() {
        let ok = json!({"type": "alert", "alertId": "a", "index": ".internal.alerts-security.alerts-default-000001",
                        "rule": {"id": null, "name": "R"}, "owner": "securitySolution"});
        assert_eq!(validate_comment(&ok), Ok(()));
        let bad =
            json!({"type": "user", "comment": "hi", "owner": "securitySolution", "alertId": "a"});
        assert_eq!(
            validate_comment(&bad),
            Err("invalid keys \"alertId\"".to_string())
        );
        let empty = json!({"type": "user", "comment": " ", "owner": "securitySolution"});
        assert_eq!(
            validate_comment(&empty),
            Err("The comment field cannot be an empty string.".to_string())
        );
    }

    #[test]
    fn patch_rejects_owner_and_bad_status() {
        let body =
            json!({"cases": [{"id": "x", "version": "v", "owner": "cases", "status": "done"}]});
        assert_eq!(
            validate_patch(&body).unwrap_err(),
            "Invalid value \"done\" supplied to \"status\""
        );
        let body = json!({"cases": [{"id": "x", "version": "v", "owner": "cases"}]});
        assert_eq!(validate_patch(&body).unwrap_err(), "invalid keys \"owner\"");
    }

    #[test]
    fn chat_body_validation_lists_zod_style_issues() {
        let issues = validate_chat_body(&json!({"messages": [], "foo": 1}));
        assert_eq!(
            issues,
            vec![
                "connectorId: Required",
                "persist: Required",
                "messages: Array must contain at least 1 element(s)",
                "Unrecognized key(s) in object: 'foo'",
            ]
        );
        let ok = json!({"connectorId": "c", "persist": false, "isStream": true,
                        "messages": [{"role": "user", "content": "hi", "data": {"host.name": "h"}, "fields_to_anonymize": ["user.name"]}]});
        assert!(validate_chat_body(&ok).is_empty());
        let bad_role = json!({"connectorId": "c", "persist": false, "messages": [{"role": "bot"}]});
        assert_eq!(validate_chat_body(&bad_role).len(), 1);
    }

    #[test]
    fn ndjson_chunks_split_lines_in_the_middle_of_json() {
        let answer =
            "### Triage summary\n\nThe process WmiPrvSE.exe wrote a Run key — likely malicious.";
        let chunks = ndjson_chunks(answer);
        assert!(chunks.len() >= 4, "several chunks: {}", chunks.len());
        for c in &chunks[..chunks.len() - 1] {
            assert!(!c.ends_with(b"\n"), "no chunk ends on a line boundary");
            assert!(!c.is_empty());
        }
        // Every boundary cuts a line: no chunk is a whole set of lines.
        for c in &chunks {
            assert!(serde_json::from_slice::<Value>(c).is_err());
        }
        let all: Vec<u8> = chunks.iter().flat_map(|c| c.iter().copied()).collect();
        let text = String::from_utf8(all).unwrap();
        assert!(text.ends_with('\n'));
        let mut content = String::new();
        let mut other = 0;
        for line in text.lines() {
            let v: Value = serde_json::from_str(line).unwrap();
            if v["type"] == "content" {
                content.push_str(v["payload"].as_str().unwrap());
            } else {
                other += 1;
            }
        }
        assert_eq!(content, answer);
        assert_eq!(other, 1);
        assert!(text.lines().filter(|l| l.contains("\"content\"")).count() >= 3);
    }

    async fn send(
        k: &KibanaEmulator,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = reqwest::Client::new()
            .request(method, format!("{}{path}", k.url()))
            .header("kbn-xsrf", "true");
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    #[tokio::test]
    async fn xsrf_then_auth_rules_and_error_shapes() {
        let k = KibanaEmulator::start().await.unwrap();
        let resp = reqwest::Client::new()
            .post(format!("{}/api/cases", k.url()))
            .json(&json!({}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 400);
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["message"], "Request must contain a kbn-xsrf header.");
        k.require_auth("ApiKey abc");
        let (status, body) = send(&k, reqwest::Method::GET, "/api/cases/_find", None).await;
        assert_eq!(status, 401);
        assert_eq!(
            body["message"],
            "[security_exception]: unable to authenticate user"
        );
    }

    #[tokio::test]
    async fn streamed_answer_arrives_in_chunks_that_split_lines() {
        let k = KibanaEmulator::start().await.unwrap();
        k.set_chunk_delay(Some(Duration::from_millis(5)));
        let answer = "Verdict: malicious. Run Get-Process on WS-FIN-042 and isolate the host.";
        k.push_answer(answer);
        let resp = reqwest::Client::new()
            .post(format!(
                "{}/s/soc/api/security_ai_assistant/chat/complete",
                k.url()
            ))
            .header("kbn-xsrf", "true")
            .json(
                &json!({"connectorId": "c", "persist": false, "isStream": true,
                          "messages": [{"role": "user", "content": "triage"}]}),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        assert!(resp.headers().get("content-type").is_none());
        let mut resp = resp;
        let mut chunks = Vec::new();
        while let Some(c) = resp.chunk().await.unwrap() {
            chunks.push(c);
        }
        assert!(chunks.len() > 2, "several chunks: {}", chunks.len());
        assert!(
            chunks[..chunks.len() - 1]
                .iter()
                .all(|c| !c.ends_with(b"\n"))
        );
        let text: Vec<u8> = chunks.concat();
        let content: String = String::from_utf8(text)
            .unwrap()
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|v| v["type"] == "content")
            .filter_map(|v| v["payload"].as_str().map(str::to_string))
            .collect();
        assert_eq!(content, answer);
        let calls = k.calls();
        assert_eq!(calls[0].space, "soc");
        assert!(calls[0].is_stream && calls[0].conversation_id.is_none());
        assert_eq!(calls[0].last_user_content, "triage");
    }

    #[tokio::test]
    async fn persisted_chat_continues_a_precreated_conversation() {
        let k = KibanaEmulator::start().await.unwrap();
        let (status, conv) = send(
            &k,
            reqwest::Method::POST,
            "/api/security_ai_assistant/current_user/conversations",
            Some(json!({"title": "Triage a-1", "apiConfig": {"connectorId": "c", "actionTypeId": ".gen-ai"}})),
        )
        .await;
        assert_eq!(status, 200);
        let id = conv["id"].as_str().unwrap().to_string();
        k.set_responder(|call| format!("echo: {}", call.last_user_content));
        let (status, body) = send(
            &k,
            reqwest::Method::POST,
            "/api/security_ai_assistant/chat/complete",
            Some(
                json!({"connectorId": "c", "persist": true, "conversationId": id,
                        "messages": [{"role": "user", "content": "why?"}]}),
            ),
        )
        .await;
        assert_eq!(status, 200);
        assert_eq!(body["data"], "echo: why?");
        assert_eq!(body["conversationId"], id.as_str());
        let (_, stored) = send(
            &k,
            reqwest::Method::GET,
            &format!("/api/security_ai_assistant/current_user/conversations/{id}"),
            None,
        )
        .await;
        let roles: Vec<&str> = stored["messages"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|m| m["role"].as_str())
            .collect();
        assert_eq!(roles, ["user", "assistant"]);
        // Without persist, no conversationId comes back.
        let (_, body) = send(
            &k,
            reqwest::Method::POST,
            "/api/security_ai_assistant/chat/complete",
            Some(json!({"connectorId": "c", "persist": false, "messages": [{"role": "user", "content": "x"}]})),
        )
        .await;
        assert!(body.get("conversationId").is_none());
        // Scripted failure uses the assistant error shape.
        k.fail_next(1, 503);
        let (status, body) = send(
            &k,
            reqwest::Method::POST,
            "/api/security_ai_assistant/chat/complete",
            Some(json!({"connectorId": "c", "persist": false, "messages": [{"role": "user", "content": "x"}]})),
        )
        .await;
        assert_eq!((status, body["status_code"].clone()), (503, json!(503)));
    }

    #[tokio::test]
    async fn case_lifecycle_with_versions_conflicts_and_find() {
        let k = KibanaEmulator::start().await.unwrap();
        let (status, case) =
            send(&k, reqwest::Method::POST, "/api/cases", Some(valid_case())).await;
        assert_eq!(status, 200, "{case}");
        let id = case["id"].as_str().unwrap().to_string();
        let v1 = case["version"].clone();
        let (status, case) = send(
            &k,
            reqwest::Method::POST,
            &format!("/api/cases/{id}/comments"),
            Some(json!({"type": "alert", "alertId": "a-1", "index": "idx", "rule": {"id": "r", "name": "R"},
                        "owner": "securitySolution"})),
        )
        .await;
        assert_eq!(status, 200);
        assert_eq!(case["totalAlerts"], 1);
        assert_ne!(case["version"], v1);
        let (status, err) = send(
            &k,
            reqwest::Method::PATCH,
            "/api/cases",
            Some(json!({"cases": [{"id": id, "version": v1, "status": "closed"}]})),
        )
        .await;
        assert_eq!(status, 409, "{err}");
        let v2 = case["version"].clone();
        let (status, updated) = send(
            &k,
            reqwest::Method::PATCH,
            "/api/cases",
            Some(json!({"cases": [{"id": id, "version": v2, "status": "closed"}]})),
        )
        .await;
        assert_eq!(status, 200);
        assert_eq!(updated[0]["status"], "closed");
        assert!(updated[0]["closed_at"].is_string());
        let v3 = updated[0]["version"].clone();
        let (status, _) = send(
            &k,
            reqwest::Method::PATCH,
            "/api/cases",
            Some(json!({"cases": [{"id": id, "version": v3, "status": "closed"}]})),
        )
        .await;
        assert_eq!(status, 406);
        let (status, _) = send(&k, reqwest::Method::GET, "/api/cases/nope", None).await;
        assert_eq!(status, 404);
        let (_, found) = send(
            &k,
            reqwest::Method::GET,
            "/api/cases/_find?tags=other&tags=triage-bot:incident:1&owner=securitySolution",
            None,
        )
        .await;
        assert_eq!(found["total"], 1);
        assert_eq!(found["count_closed_cases"], 1);
        assert_eq!(found["cases"][0]["comments"], json!([]));
        let (_, other_space) = send(&k, reqwest::Method::GET, "/s/soc/api/cases/_find", None).await;
        assert_eq!(other_space["total"], 0);
        assert_eq!(k.cases()[0]["comments"].as_array().map(Vec::len), Some(1));
        assert_eq!(k.case_requests().len(), 8);
    }

    #[test]
    fn space_prefix_is_split_off() {
        assert_eq!(
            split_space("/s/soc/api/cases"),
            ("soc".into(), "/api/cases".into())
        );
        assert_eq!(
            split_space("/api/cases"),
            ("default".into(), "/api/cases".into())
        );
    }
}
