//! Slack emulator: the Web API methods triage-bot calls (`/api/{method}`), `response_url` posts,
//! and helpers that act as Slack towards the app (signed interactions and Events API callbacks).
//!
//! It owns the workspace state (users, user groups, posted messages, ephemerals) and the record
//! of every Web API call. It does not emulate channels membership, scopes or Socket Mode.
//!
//! Wire facts (slack.md §2–5) it reproduces because clients trip over them:
//! - methods accept POST JSON, POST form (`blocks` as a JSON string) and GET query strings; the
//!   token comes from `Authorization: Bearer` (or a `token` form/query parameter);
//! - method errors are HTTP 200 `{"ok":false,"error":..}`; rate limiting is HTTP 429 with
//!   `Retry-After` and `{"ok":false,"error":"ratelimited"}`;
//! - Block Kit limits are enforced (50 blocks, section text 3000, header 150, button text 75, …)
//!   with `invalid_blocks` and JSON pointers in `response_metadata.messages`;
//! - `chat.update` keeps the previous blocks when `blocks` is omitted;
//! - `users.list` paginates with `response_metadata.next_cursor` (empty string on the last page)
//!   and lists the bot user (`UBOT`, `is_bot: true`) too, as real workspaces do;
//! - callbacks are signed `v0=hex(HMAC-SHA256(secret, "v0:{ts}:{body}"))`.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderValue, Method, Uri, header};
use axum::response::Response;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde_json::{Map, Value, json};
use sha2::Sha256;

use crate::server::json_response;
use crate::server::{self, Recorder};

/// Workspace (team) id of the emulated workspace.
pub const TEAM_ID: &str = "T0TEAM";
/// Workspace domain.
pub const TEAM_DOMAIN: &str = "triage-emulator";
/// User id of the bot (what `auth.test` returns as `user_id`).
pub const BOT_USER_ID: &str = "UBOT";
/// Bot id of the bot (`bot_id` on its messages).
pub const BOT_ID: &str = "BBOT";
/// App id used in payloads.
pub const APP_ID: &str = "A0APP";

/// One recorded Web API call.
#[derive(Debug, Clone)]
pub struct SlackCall {
    /// Method name, e.g. `chat.postMessage`.
    pub method: String,
    /// Parameters merged from query string, form and JSON body into one JSON object; `blocks`,
    /// `attachments` and `metadata` strings are parsed into JSON. The `token` parameter is removed.
    pub params: Value,
    /// `GET` or `POST`.
    pub http_method: String,
    /// `Some(code)` when the call did not succeed (`invalid_auth`, `ratelimited`, `http_503`, …).
    pub error: Option<String>,
}

/// Current state of a message in a channel.
#[derive(Debug, Clone)]
pub struct SlackMessage {
    pub channel: String,
    pub ts: String,
    pub thread_ts: Option<String>,
    pub text: String,
    /// Block Kit array (`[]` when the message had none).
    pub blocks: Value,
    pub metadata: Option<Value>,
    /// Number of `chat.update` calls (and `replace_original` response_url posts) applied.
    pub updated: u32,
    /// Author: `UBOT` for messages posted through the API, the user for [`SlackEmulator::add_user_message`].
    pub user: String,
    /// `Some("BBOT")` for the bot's own messages.
    pub bot_id: Option<String>,
}

/// An ephemeral message (never stored in channel history).
#[derive(Debug, Clone)]
pub struct SlackEphemeral {
    pub channel: String,
    pub user: String,
    pub text: String,
    pub blocks: Value,
    pub thread_ts: Option<String>,
    pub message_ts: String,
}

/// A workspace member.
#[derive(Debug, Clone)]
pub struct SlackUser {
    pub id: String,
    pub name: String,
    pub real_name: String,
    pub email: Option<String>,
    pub deleted: bool,
    pub is_bot: bool,
}

/// One JSON post to a `response_url` handed out by [`SlackEmulator::interaction_payload`].
#[derive(Debug, Clone)]
pub struct ResponseUrlPost {
    pub channel: String,
    pub message_ts: String,
    pub body: Value,
}

/// Everything the emulator holds. Public so tests can `wait_until` on it.
#[derive(Debug, Default)]
pub struct SlackState {
    pub bot_token: String,
    /// Socket Mode: the app-level token `apps.connections.open` accepts, and the WebSocket URL it hands out.
    pub app_token: Option<String>,
    pub socket_url: Option<String>,
    /// Socket Mode: one sender per open WebSocket connection.
    pub socket_senders: Vec<tokio::sync::mpsc::UnboundedSender<String>>,
    /// Socket Mode: every connection made, and every frame the app sent back (acks).
    pub socket_connects: usize,
    pub socket_acks: Vec<Value>,
    pub calls: Vec<SlackCall>,
    pub messages: Vec<SlackMessage>,
    pub ephemerals: Vec<SlackEphemeral>,
    pub users: Vec<SlackUser>,
    pub usergroups: BTreeMap<String, Vec<String>>,
    pub response_url_posts: Vec<ResponseUrlPost>,
    /// `Retry-After` seconds for the next rate-limited calls.
    pub rate_limits: VecDeque<u64>,
    /// HTTP statuses for the next failing calls.
    pub failures: VecDeque<u16>,
    /// `(method, error)` pairs: the next call of `method` answers `{"ok":false,"error":error}`.
    pub scripted_errors: Vec<(String, String)>,
    last_ts_micros: i64,
}

impl SlackState {
    /// A fresh, strictly increasing message timestamp like `1700000000.000100`.
    fn next_ts(&mut self) -> String {
        let now = chrono::Utc::now().timestamp_micros();
        let t = now.max(self.last_ts_micros + 1);
        self.last_ts_micros = t;
        format!("{}.{:06}", t / 1_000_000, t % 1_000_000)
    }

    fn find_message(&self, channel: &str, ts: &str) -> Option<usize> {
        self.messages
            .iter()
            .position(|m| m.channel == channel && m.ts == ts)
    }
}

/// In-process Slack. Cheap to clone; all clones share one state.
#[derive(Clone)]
pub struct SlackEmulator {
    state: Arc<Recorder<SlackState>>,
    base: String,
}

impl SlackEmulator {
    /// Binds on `127.0.0.1:0`; API calls must carry `bot_token`. The bot user `UBOT` is a member.
    ///
    /// # Errors
    /// When the listener cannot be bound.
    pub async fn start(bot_token: &str) -> anyhow::Result<Self> {
        let state = Recorder::new(SlackState {
            bot_token: bot_token.to_string(),
            users: vec![SlackUser {
                id: BOT_USER_ID.into(),
                name: "triage-bot".into(),
                real_name: "Triage Bot".into(),
                email: None,
                deleted: false,
                is_bot: true,
            }],
            ..Default::default()
        });
        let router = Router::new().fallback({
            let state = state.clone();
            move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
                let state = state.clone();
                async move { handle(state, method, uri, headers, body) }
            }
        });
        let addr = server::spawn(router).await?;
        Ok(Self {
            state,
            base: format!("http://{addr}"),
        })
    }

    /// Turns on Socket Mode: `apps.connections.open` (with `app_token`) hands out a `ws://` URL
    /// of a WebSocket endpoint that greets with `hello`, delivers envelopes sent with
    /// [`Self::send_socket_envelope`] and records the app's acknowledgements.
    pub async fn enable_socket_mode(&self, app_token: &str) -> anyhow::Result<()> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        self.state.update(|s| {
            s.app_token = Some(app_token.to_string());
            s.socket_url = Some(format!("ws://{addr}/link/?ticket=emulated"));
        });
        let state = self.state.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let state = state.clone();
                tokio::spawn(async move { socket_connection(state, stream).await });
            }
        });
        Ok(())
    }

    /// Sends an envelope (`interactive`, `events_api`, `slash_commands`) to the connected app;
    /// returns its `envelope_id`. Fails when no app is connected.
    pub fn send_socket_envelope(&self, kind: &str, payload: Value) -> anyhow::Result<String> {
        let id = uuid::Uuid::new_v4().to_string();
        let envelope = json!({
            "envelope_id": id, "type": kind, "payload": payload,
            "accepts_response_payload": kind == "interactive",
            "retry_attempt": 0, "retry_reason": ""
        });
        let sent = self.state.update(|s| {
            s.socket_senders.retain(|tx| !tx.is_closed());
            s.socket_senders
                .first()
                .map(|tx| tx.send(envelope.to_string()).is_ok())
        });
        match sent {
            Some(true) => Ok(id),
            _ => anyhow::bail!("no Socket Mode connection is open"),
        }
    }

    /// Asks every connected app to reconnect, as Slack does periodically.
    pub fn socket_disconnect_all(&self) {
        let frame = json!({"type": "disconnect", "reason": "refresh_requested", "debug_info": {"host": "emulator"}});
        self.state.update(|s| {
            for tx in &s.socket_senders {
                let _ = tx.send(frame.to_string());
            }
        });
    }

    /// Web API base with trailing `/api/` (clients append the method name).
    pub fn url(&self) -> String {
        format!("{}/api/", self.base)
    }

    /// The shared state, for `wait_until` and ad-hoc inspection.
    pub fn recorder(&self) -> Arc<Recorder<SlackState>> {
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
        pred: impl Fn(&SlackState) -> bool,
    ) -> anyhow::Result<()> {
        self.state.wait_until(what, timeout, pred).await
    }

    /// Adds a workspace member.
    pub fn add_user(&self, id: &str, name: &str, real_name: &str, email: Option<&str>) {
        let user = SlackUser {
            id: id.into(),
            name: name.into(),
            real_name: real_name.into(),
            email: email.map(str::to_string),
            deleted: false,
            is_bot: false,
        };
        self.state.update(|s| {
            s.users.retain(|u| u.id != id);
            s.users.push(user);
        });
    }

    /// Marks a member as deactivated (`deleted: true`).
    pub fn deactivate_user(&self, id: &str) {
        self.state.update(|s| {
            s.users
                .iter_mut()
                .filter(|u| u.id == id)
                .for_each(|u| u.deleted = true)
        });
    }

    /// Defines a user group (`S…`) and its members.
    pub fn add_usergroup(&self, id: &str, members: &[&str]) {
        let members = members.iter().map(|m| m.to_string()).collect();
        self.state.update(|s| {
            s.usergroups.insert(id.to_string(), members);
        });
    }

    /// Stores a message written by a human (e.g. a thread reply the app will read), returning its
    /// ts. Pair it with [`post_event`] to also deliver the matching `message` event.
    pub fn add_user_message(
        &self,
        channel: &str,
        user: &str,
        text: &str,
        thread_ts: Option<&str>,
    ) -> String {
        self.state.update(|s| {
            let ts = s.next_ts();
            s.messages.push(SlackMessage {
                channel: channel.into(),
                ts: ts.clone(),
                thread_ts: thread_ts.map(str::to_string),
                text: text.into(),
                blocks: json!([]),
                metadata: None,
                updated: 0,
                user: user.into(),
                bot_id: None,
            });
            ts
        })
    }

    /// Every Web API call, oldest first (including failed and rate-limited ones).
    pub fn calls(&self) -> Vec<SlackCall> {
        self.state.read().calls.clone()
    }

    /// Calls of one method.
    pub fn calls_of(&self, method: &str) -> Vec<SlackCall> {
        self.state
            .read()
            .calls
            .iter()
            .filter(|c| c.method == method)
            .cloned()
            .collect()
    }

    /// Current state of every non-ephemeral message, in posting order.
    pub fn messages(&self) -> Vec<SlackMessage> {
        self.state.read().messages.clone()
    }

    /// Every ephemeral message, in posting order.
    pub fn ephemerals(&self) -> Vec<SlackEphemeral> {
        self.state.read().ephemerals.clone()
    }

    /// Every post to a `response_url` this emulator handed out.
    pub fn response_url_posts(&self) -> Vec<ResponseUrlPost> {
        self.state.read().response_url_posts.clone()
    }

    /// The next `n` Web API calls get HTTP 429 with `Retry-After: retry_after_secs`.
    pub fn rate_limit_next(&self, n: usize, retry_after_secs: u64) {
        self.state.update(|s| {
            s.rate_limits
                .extend(std::iter::repeat_n(retry_after_secs, n))
        });
    }

    /// The next `n` Web API calls get HTTP `status` (e.g. 500, 503).
    pub fn fail_next(&self, n: usize, status: u16) {
        self.state
            .update(|s| s.failures.extend(std::iter::repeat_n(status, n)));
    }

    /// The next call of `method` answers HTTP 200 `{"ok":false,"error":error}`.
    pub fn error_next(&self, method: &str, error: &str) {
        self.state.update(|s| {
            s.scripted_errors
                .push((method.to_string(), error.to_string()))
        });
    }

    /// A `block_actions` payload for a click on the button `action_id` of the stored message
    /// `(channel, message_ts)`: like [`block_actions_payload`], but with the message's real text
    /// and blocks, the button's real `block_id` and label, and a `response_url` served by this
    /// emulator (see [`Self::response_url_posts`]).
    pub fn interaction_payload(
        &self,
        user_id: &str,
        user_name: &str,
        channel: &str,
        message_ts: &str,
        action_id: &str,
        value: &str,
    ) -> Value {
        let mut payload =
            block_actions_payload(user_id, user_name, channel, message_ts, action_id, value);
        let s = self.state.read();
        if let Some(i) = s.find_message(channel, message_ts) {
            let m = &s.messages[i];
            payload["message"]["text"] = json!(m.text);
            payload["message"]["blocks"] = m.blocks.clone();
            for block in m.blocks.as_array().into_iter().flatten() {
                let elements = block
                    .get("elements")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten();
                let accessory = block.get("accessory").into_iter();
                for el in elements.chain(accessory) {
                    if el["action_id"] == action_id {
                        if let Some(b) = block.get("block_id") {
                            payload["actions"][0]["block_id"] = b.clone();
                        }
                        if let Some(t) = el.get("text") {
                            payload["actions"][0]["text"] = t.clone();
                        }
                        if let Some(st) = el.get("style") {
                            payload["actions"][0]["style"] = st.clone();
                        }
                    }
                }
            }
        }
        payload["response_url"] = json!(format!(
            "{}/actions/{channel}/{message_ts}/emulated",
            self.base
        ));
        payload
    }
}

// ---------------------------------------------------------------------------------------------
// Acting as Slack towards the app

/// Slack request signature: `"v0=" + hex(HMAC-SHA256(signing_secret, "v0:{timestamp}:{body}"))`.
pub fn sign(signing_secret: &str, timestamp: i64, body: &str) -> String {
    // HMAC accepts keys of any length, so this cannot fail; fall back to an empty MAC input anyway.
    let mut mac = match Hmac::<Sha256>::new_from_slice(signing_secret.as_bytes()) {
        Ok(m) => m,
        Err(_) => return String::new(),
    };
    mac.update(format!("v0:{timestamp}:{body}").as_bytes());
    format!("v0={}", hex::encode(mac.finalize().into_bytes()))
}

/// A realistic `block_actions` payload (slack.md §3) for a button click on a bot message.
pub fn block_actions_payload(
    user_id: &str,
    user_name: &str,
    channel: &str,
    message_ts: &str,
    action_id: &str,
    value: &str,
) -> Value {
    let action_ts = format!("{:.6}", chrono::Utc::now().timestamp_micros() as f64 / 1e6);
    json!({
        "type": "block_actions",
        "user": {"id": user_id, "username": user_name, "name": user_name, "team_id": TEAM_ID},
        "api_app_id": APP_ID,
        "token": "verification-token-deprecated",
        "container": {"type": "message", "message_ts": message_ts, "channel_id": channel, "is_ephemeral": false},
        "trigger_id": format!("1234567890123.1234567890123.{}", uuid::Uuid::new_v4().simple()),
        "team": {"id": TEAM_ID, "domain": TEAM_DOMAIN},
        "enterprise": null,
        "is_enterprise_install": false,
        "channel": {"id": channel, "name": "soc-approvals"},
        "message": {
            "user": BOT_USER_ID, "type": "message", "ts": message_ts, "bot_id": BOT_ID,
            "app_id": APP_ID, "text": "Approval needed", "team": TEAM_ID, "blocks": []
        },
        "state": {"values": {}},
        "response_url": format!("https://hooks.slack.com/actions/{TEAM_ID}/1234567890123/{}", uuid::Uuid::new_v4().simple()),
        "actions": [{
            "type": "button",
            "action_id": action_id,
            "block_id": "actions",
            "value": value,
            "text": {"type": "plain_text", "text": action_id, "emoji": true},
            "action_ts": action_ts
        }]
    })
}

/// Wraps an event in the Events API `event_callback` envelope (fresh `event_id`).
pub fn event_callback(event: Value) -> Value {
    let now = chrono::Utc::now().timestamp();
    json!({
        "token": "verification-token-deprecated",
        "team_id": TEAM_ID,
        "api_app_id": APP_ID,
        "event": event,
        "type": "event_callback",
        "event_id": format!("Ev{}", &uuid::Uuid::new_v4().simple().to_string()[..10].to_uppercase()),
        "event_time": now,
        "authorizations": [{"enterprise_id": null, "team_id": TEAM_ID, "user_id": BOT_USER_ID, "is_bot": true, "is_enterprise_install": false}],
        "is_ext_shared_channel": false,
        "event_context": "4-emulated"
    })
}

/// An `app_mention` event (wrap it with [`event_callback`]).
pub fn app_mention_event(
    user: &str,
    channel: &str,
    text: &str,
    ts: &str,
    thread_ts: Option<&str>,
) -> Value {
    let mut e = json!({"type": "app_mention", "user": user, "text": text, "ts": ts,
                       "channel": channel, "event_ts": ts, "team": TEAM_ID});
    if let Some(t) = thread_ts {
        e["thread_ts"] = json!(t);
    }
    e
}

/// A plain `message` event from a user (wrap it with [`event_callback`]).
pub fn message_event(
    user: &str,
    channel: &str,
    text: &str,
    ts: &str,
    thread_ts: Option<&str>,
) -> Value {
    let mut e = json!({"type": "message", "user": user, "text": text, "ts": ts, "channel": channel,
                       "event_ts": ts, "channel_type": "channel", "team": TEAM_ID});
    if let Some(t) = thread_ts {
        e["thread_ts"] = json!(t);
    }
    e
}

/// POSTs `body` to `app_url` with Slack's signature headers (plus `extra_headers`, e.g.
/// `X-Slack-Retry-Num`), returning the status and response body.
///
/// # Errors
/// On transport failure.
pub async fn post_signed(
    app_url: &str,
    signing_secret: &str,
    content_type: &str,
    body: String,
    timestamp: i64,
    extra_headers: &[(&str, &str)],
) -> anyhow::Result<(u16, String)> {
    let signature = sign(signing_secret, timestamp, &body);
    let mut req = reqwest::Client::new()
        .post(app_url)
        .header("content-type", content_type)
        .header("x-slack-request-timestamp", timestamp.to_string())
        .header("x-slack-signature", signature);
    for (k, v) in extra_headers {
        req = req.header(*k, *v);
    }
    let resp = req.body(body).send().await?;
    let status = resp.status().as_u16();
    Ok((status, resp.text().await?))
}

/// Sends an interaction the way Slack does: form-encoded `payload=<json>`, signed with `timestamp`.
///
/// # Errors
/// On transport failure.
pub async fn post_interaction(
    app_url: &str,
    signing_secret: &str,
    payload: &Value,
    timestamp: i64,
) -> anyhow::Result<(u16, String)> {
    let body = serde_urlencoded::to_string([("payload", payload.to_string())])?;
    post_signed(
        app_url,
        signing_secret,
        "application/x-www-form-urlencoded",
        body,
        timestamp,
        &[],
    )
    .await
}

/// Sends an Events API JSON body (e.g. [`event_callback`] output or a `url_verification`), signed.
///
/// # Errors
/// On transport failure.
pub async fn post_event(
    app_url: &str,
    signing_secret: &str,
    event: &Value,
    timestamp: i64,
) -> anyhow::Result<(u16, String)> {
    post_signed(
        app_url,
        signing_secret,
        "application/json",
        event.to_string(),
        timestamp,
        &[],
    )
    .await
}

// ---------------------------------------------------------------------------------------------
// HTTP layer

/// A method-level failure (HTTP 200, `ok: false`).
#[derive(Debug)]
struct ApiError {
    code: String,
    messages: Vec<String>,
}

impl ApiError {
    fn new(code: &str) -> Self {
        Self {
            code: code.to_string(),
            messages: Vec::new(),
        }
    }

    fn with(code: &str, messages: Vec<String>) -> Self {
        Self {
            code: code.to_string(),
            messages,
        }
    }

    fn body(&self) -> Value {
        let mut b = json!({"ok": false, "error": self.code});
        if !self.messages.is_empty() {
            b["response_metadata"] = json!({"messages": self.messages});
        }
        b
    }
}

type ApiResult = Result<Value, ApiError>;

/// Parses a JSON-valued parameter given as a string (form-encoded `blocks`, `metadata`, …).
fn parse_json_strings(params: &mut Map<String, Value>) -> Result<(), ApiError> {
    for key in ["blocks", "attachments", "metadata"] {
        if let Some(Value::String(s)) = params.get(key) {
            match serde_json::from_str::<Value>(s) {
                Ok(v) => {
                    params.insert(key.to_string(), v);
                }
                Err(_) if key == "blocks" => return Err(ApiError::new("invalid_blocks_format")),
                Err(_) => return Err(ApiError::new("invalid_arguments")),
            }
        }
    }
    Ok(())
}

/// Collects query, form and JSON parameters into one object.
fn collect_params(
    uri: &Uri,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<Map<String, Value>, ApiError> {
    let mut params = Map::new();
    let pairs =
        |raw: &str| serde_urlencoded::from_str::<Vec<(String, String)>>(raw).unwrap_or_default();
    for (k, v) in pairs(uri.query().unwrap_or("")) {
        params.insert(k, Value::String(v));
    }
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !body.is_empty() {
        if ct.starts_with("application/json") {
            match serde_json::from_slice::<Value>(body) {
                Ok(Value::Object(m)) => params.extend(m),
                _ => return Err(ApiError::new("invalid_json")),
            }
        } else if ct.starts_with("multipart/") {
            return Err(ApiError::new("invalid_form_data"));
        } else {
            let raw = std::str::from_utf8(body).map_err(|_| ApiError::new("invalid_form_data"))?;
            for (k, v) in pairs(raw) {
                params.insert(k, Value::String(v));
            }
        }
    }
    Ok(params)
}

fn handle(
    state: Arc<Recorder<SlackState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_string();
    if let Some(rest) = path.strip_prefix("/actions/") {
        return response_url_post(&state, rest, &body);
    }
    let Some(api_method) = path.strip_prefix("/api/").map(str::to_string) else {
        return json_response(404, &json!({"ok": false, "error": "not_found"}));
    };
    let http_method = method.to_string();

    let parsed = collect_params(&uri, &headers, &body).and_then(|mut p| {
        parse_json_strings(&mut p)?;
        Ok(p)
    });
    let (mut params, parse_error) = match parsed {
        Ok(p) => (p, None),
        Err(e) => (Map::new(), Some(e)),
    };
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_string)
        .or_else(|| {
            params
                .get("token")
                .and_then(Value::as_str)
                .map(str::to_string)
        });
    params.remove("token");

    let record = |error: Option<String>, params: &Map<String, Value>| {
        state.update(|s| {
            s.calls.push(SlackCall {
                method: api_method.clone(),
                params: Value::Object(params.clone()),
                http_method: http_method.clone(),
                error,
            })
        })
    };

    // Transport-level faults come before anything else, like an overloaded edge would answer.
    let (failure, rate_limit) = state.update(|s| {
        let f = s.failures.pop_front();
        let r = if f.is_none() {
            s.rate_limits.pop_front()
        } else {
            None
        };
        (f, r)
    });
    if let Some(status) = failure {
        record(Some(format!("http_{status}")), &params);
        return json_response(status, &json!({"ok": false, "error": "fatal_error"}));
    }
    if let Some(secs) = rate_limit {
        record(Some("ratelimited".into()), &params);
        let mut r = json_response(429, &json!({"ok": false, "error": "ratelimited"}));
        if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
            r.headers_mut().insert(header::RETRY_AFTER, v);
        }
        return r;
    }

    let result: ApiResult = (|| {
        // apps.connections.open is the one method called with the app-level token.
        let expected = if api_method == "apps.connections.open" {
            state.read().app_token.clone().unwrap_or_default()
        } else {
            state.read().bot_token.clone()
        };
        match token {
            None => return Err(ApiError::new("not_authed")),
            Some(t) if t != expected => return Err(ApiError::new("invalid_auth")),
            Some(_) => {}
        }
        if let Some(e) = parse_error {
            return Err(e);
        }
        let scripted = state.update(|s| {
            let pos = s
                .scripted_errors
                .iter()
                .position(|(m, _)| *m == api_method)?;
            Some(s.scripted_errors.remove(pos).1)
        });
        if let Some(code) = scripted {
            return Err(ApiError::new(&code));
        }
        dispatch(&state, &api_method, &params)
    })();

    match result {
        Ok(body) => {
            record(None, &params);
            json_response(200, &body)
        }
        Err(e) => {
            record(Some(e.code.clone()), &params);
            let mut b = e.body();
            if e.code == "unknown_method" {
                b["req_method"] = json!(api_method);
            }
            json_response(200, &b)
        }
    }
}

fn dispatch(state: &Recorder<SlackState>, method: &str, p: &Map<String, Value>) -> ApiResult {
    match method {
        "auth.test" => Ok(json!({
            "ok": true, "url": format!("https://{TEAM_DOMAIN}.slack.com/"), "team": "Triage Emulator",
            "user": "triage-bot", "team_id": TEAM_ID, "user_id": BOT_USER_ID, "bot_id": BOT_ID,
            "is_enterprise_install": false
        })),
        "chat.postMessage" => post_message(state, p),
        "chat.update" => update_message(state, p),
        "chat.postEphemeral" => post_ephemeral(state, p),
        "users.list" => users_list(state, p),
        "users.lookupByEmail" => lookup_by_email(state, p),
        "users.info" => {
            let id = required(p, "user", "user_not_found")?;
            let s = state.read();
            let u = s
                .users
                .iter()
                .find(|u| u.id == id)
                .ok_or_else(|| ApiError::new("user_not_found"))?;
            Ok(json!({"ok": true, "user": render_user(u)}))
        }
        "usergroups.users.list" => {
            let id = required(p, "usergroup", "no_such_subteam")?;
            let s = state.read();
            let users = s
                .usergroups
                .get(&id)
                .ok_or_else(|| ApiError::new("no_such_subteam"))?;
            Ok(json!({"ok": true, "users": users}))
        }
        "chat.getPermalink" => {
            let channel = required(p, "channel", "channel_not_found")?;
            let ts = required(p, "message_ts", "message_not_found")?;
            let s = state.read();
            if !s
                .messages
                .iter()
                .any(|m| m.channel == channel && m.ts == ts)
            {
                return Err(ApiError::new("message_not_found"));
            }
            Ok(json!({
                "ok": true,
                "channel": channel,
                "permalink": format!("https://{TEAM_DOMAIN}.slack.com/archives/{channel}/p{}", ts.replace('.', "")),
            }))
        }
        "apps.connections.open" => match state.read().socket_url.clone() {
            Some(url) => Ok(json!({"ok": true, "url": url})),
            None => Err(ApiError::new("not_allowed_token_type")),
        },
        "conversations.history" => history(state, p),
        "conversations.replies" => replies(state, p),
        _ => Err(ApiError::new("unknown_method")),
    }
}

// ---------------------------------------------------------------------------------------------
// Parameter helpers

/// A string parameter (numbers are accepted and stringified, as Slack does for `ts`).
fn param(p: &Map<String, Value>, key: &str) -> Option<String> {
    match p.get(key)? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn required(p: &Map<String, Value>, key: &str, error: &str) -> Result<String, ApiError> {
    param(p, key).ok_or_else(|| ApiError::new(error))
}

fn param_usize(p: &Map<String, Value>, key: &str) -> Option<usize> {
    match p.get(key)? {
        Value::Number(n) => n.as_u64().map(|n| n as usize),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

fn encode_cursor(prefix: &str, offset: usize) -> String {
    base64::engine::general_purpose::STANDARD.encode(format!("{prefix}:{offset}"))
}

fn decode_cursor(prefix: &str, cursor: &str) -> Result<usize, ApiError> {
    base64::engine::general_purpose::STANDARD
        .decode(cursor)
        .ok()
        .and_then(|raw| String::from_utf8(raw).ok())
        .and_then(|s| {
            s.strip_prefix(&format!("{prefix}:"))
                .and_then(|n| n.parse().ok())
        })
        .ok_or_else(|| ApiError::new("invalid_cursor"))
}

// ---------------------------------------------------------------------------------------------
// Block Kit validation

const BLOCK_TYPES: &[&str] = &[
    "section",
    "header",
    "actions",
    "context",
    "divider",
    "image",
    "input",
    "rich_text",
    "markdown",
    "file",
    "video",
    "table",
    "context_actions",
];

fn too_long(max: usize, pointer: &str) -> String {
    format!(
        "[ERROR] must be less than {} characters [json-pointer:{pointer}]",
        max + 1
    )
}

/// Checks a text object: `plain_text`/`mrkdwn` (or `plain_text` only), 1..=max characters.
fn check_text(v: &Value, max: usize, plain_only: bool, pointer: &str, errs: &mut Vec<String>) {
    let Some(obj) = v.as_object() else {
        errs.push(format!(
            "[ERROR] must provide an object [json-pointer:{pointer}]"
        ));
        return;
    };
    match obj.get("type").and_then(Value::as_str) {
        Some("plain_text") => {}
        Some("mrkdwn") if !plain_only => {}
        _ => errs.push(format!(
            "[ERROR] must be a valid enum value [json-pointer:{pointer}/type]"
        )),
    }
    match obj.get("text").and_then(Value::as_str) {
        None => errs.push(format!(
            "[ERROR] missing required field: text [json-pointer:{pointer}]"
        )),
        Some("") => errs.push(format!(
            "[ERROR] must be more than 0 characters [json-pointer:{pointer}/text]"
        )),
        Some(t) if t.chars().count() > max => errs.push(too_long(max, &format!("{pointer}/text"))),
        Some(_) => {}
    }
}

fn check_len(
    obj: &Map<String, Value>,
    key: &str,
    max: usize,
    pointer: &str,
    errs: &mut Vec<String>,
) {
    if let Some(s) = obj.get(key).and_then(Value::as_str)
        && s.chars().count() > max
    {
        errs.push(too_long(max, &format!("{pointer}/{key}")));
    }
}

fn check_element(el: &Value, pointer: &str, errs: &mut Vec<String>) {
    let Some(obj) = el.as_object() else {
        errs.push(format!(
            "[ERROR] must provide an object [json-pointer:{pointer}]"
        ));
        return;
    };
    check_len(obj, "action_id", 255, pointer, errs);
    if obj.get("type").and_then(Value::as_str) == Some("button") {
        match obj.get("text") {
            Some(t) => check_text(t, 75, true, &format!("{pointer}/text"), errs),
            None => errs.push(format!(
                "[ERROR] missing required field: text [json-pointer:{pointer}]"
            )),
        }
        check_len(obj, "value", 2000, pointer, errs);
        check_len(obj, "url", 3000, pointer, errs);
        if let Some(style) = obj.get("style")
            && !matches!(style.as_str(), Some("primary" | "danger"))
        {
            errs.push(format!(
                "[ERROR] must be a valid enum value [json-pointer:{pointer}/style]"
            ));
        }
    }
}

/// Validates a `blocks` array against the Block Kit limits slack.md §5.3 lists.
fn validate_blocks(blocks: &Value) -> Result<(), ApiError> {
    let Some(list) = blocks.as_array() else {
        return Err(ApiError::new("invalid_blocks_format"));
    };
    let mut errs = Vec::new();
    if list.len() > 50 {
        errs.push("[ERROR] no more than 50 items allowed [json-pointer:/blocks]".to_string());
    }
    let mut block_ids = Vec::new();
    for (i, block) in list.iter().enumerate() {
        let ptr = format!("/blocks/{i}");
        let Some(b) = block.as_object() else {
            return Err(ApiError::new("invalid_blocks_format"));
        };
        let kind = b.get("type").and_then(Value::as_str).unwrap_or("");
        if !BLOCK_TYPES.contains(&kind) {
            errs.push(format!(
                "[ERROR] unsupported type: {kind} [json-pointer:{ptr}/type]"
            ));
            continue;
        }
        if let Some(id) = b.get("block_id").and_then(Value::as_str) {
            if id.chars().count() > 255 {
                errs.push(too_long(255, &format!("{ptr}/block_id")));
            }
            if block_ids.contains(&id) {
                errs.push(format!(
                    "[ERROR] duplicate block_id [json-pointer:{ptr}/block_id]"
                ));
            }
            block_ids.push(id);
        }
        match kind {
            "section" => {
                if let Some(t) = b.get("text") {
                    check_text(t, 3000, false, &format!("{ptr}/text"), &mut errs);
                }
                match b.get("fields").and_then(Value::as_array) {
                    Some(fields) => {
                        if fields.len() > 10 {
                            errs.push(format!(
                                "[ERROR] no more than 10 items allowed [json-pointer:{ptr}/fields]"
                            ));
                        }
                        for (j, f) in fields.iter().enumerate() {
                            check_text(f, 2000, false, &format!("{ptr}/fields/{j}"), &mut errs);
                        }
                    }
                    None if b.get("text").is_none() => errs.push(format!(
                        "[ERROR] must provide at least one of [text, fields] [json-pointer:{ptr}]"
                    )),
                    None => {}
                }
                if let Some(acc) = b.get("accessory") {
                    check_element(acc, &format!("{ptr}/accessory"), &mut errs);
                }
            }
            "header" => match b.get("text") {
                Some(t) => check_text(t, 150, true, &format!("{ptr}/text"), &mut errs),
                None => errs.push(format!(
                    "[ERROR] missing required field: text [json-pointer:{ptr}]"
                )),
            },
            "actions" | "context" => {
                let max = if kind == "actions" { 25 } else { 10 };
                let elements = b.get("elements").and_then(Value::as_array);
                match elements {
                    None => errs.push(format!(
                        "[ERROR] missing required field: elements [json-pointer:{ptr}]"
                    )),
                    Some(els) if els.is_empty() => errs.push(format!(
                        "[ERROR] must provide at least 1 items [json-pointer:{ptr}/elements]"
                    )),
                    Some(els) => {
                        if els.len() > max {
                            errs.push(format!("[ERROR] no more than {max} items allowed [json-pointer:{ptr}/elements]"));
                        }
                        let mut action_ids = Vec::new();
                        for (j, el) in els.iter().enumerate() {
                            let eptr = format!("{ptr}/elements/{j}");
                            if kind == "actions" {
                                check_element(el, &eptr, &mut errs);
                                if let Some(a) = el.get("action_id").and_then(Value::as_str) {
                                    if action_ids.contains(&a) {
                                        errs.push(format!("[ERROR] duplicate action_id [json-pointer:{eptr}/action_id]"));
                                    }
                                    action_ids.push(a);
                                }
                            } else if el.get("type").and_then(Value::as_str) != Some("image") {
                                check_text(el, 3000, false, &eptr, &mut errs);
                            }
                        }
                    }
                }
            }
            _ => {}
        }
    }
    if errs.is_empty() {
        Ok(())
    } else {
        Err(ApiError::with("invalid_blocks", errs))
    }
}

/// Validates `text`/`blocks` of a posting call; returns (text, blocks).
fn message_content(
    p: &Map<String, Value>,
    blocks_required_for_text: bool,
) -> Result<(String, Option<Value>), ApiError> {
    let text = param(p, "text")
        .or_else(|| param(p, "markdown_text"))
        .unwrap_or_default();
    let blocks = p.get("blocks").filter(|b| !b.is_null()).cloned();
    if let Some(b) = &blocks {
        validate_blocks(b)?;
    }
    let has_blocks = blocks
        .as_ref()
        .and_then(Value::as_array)
        .is_some_and(|a| !a.is_empty());
    let has_attachments = p
        .get("attachments")
        .and_then(Value::as_array)
        .is_some_and(|a| !a.is_empty());
    if blocks_required_for_text && text.is_empty() && !has_blocks && !has_attachments {
        return Err(ApiError::new("no_text"));
    }
    Ok((text, blocks))
}

fn check_metadata(p: &Map<String, Value>) -> Result<Option<Value>, ApiError> {
    match p.get("metadata") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(m)) if m.get("event_type").is_some_and(Value::is_string) => Ok(Some(
            json!({"event_type": m["event_type"], "event_payload": m.get("event_payload").cloned().unwrap_or(json!({}))}),
        )),
        Some(_) => Err(ApiError::with(
            "invalid_metadata_format",
            vec!["[ERROR] missing required field: event_type [json-pointer:/metadata]".into()],
        )),
    }
}

// ---------------------------------------------------------------------------------------------
// Methods

fn render_message(m: &SlackMessage, all: &[SlackMessage]) -> Value {
    let mut v = json!({
        "type": "message", "user": m.user, "text": m.text, "ts": m.ts, "team": TEAM_ID,
        "blocks": m.blocks,
    });
    if let Some(b) = &m.bot_id {
        v["bot_id"] = json!(b);
        v["app_id"] = json!(APP_ID);
    }
    if let Some(t) = &m.thread_ts {
        v["thread_ts"] = json!(t);
    }
    let replies: Vec<&SlackMessage> = all
        .iter()
        .filter(|r| r.channel == m.channel && r.thread_ts.as_deref() == Some(&m.ts) && r.ts != m.ts)
        .collect();
    if !replies.is_empty() {
        v["thread_ts"] = json!(m.ts);
        v["reply_count"] = json!(replies.len());
        let mut users: Vec<&str> = replies.iter().map(|r| r.user.as_str()).collect();
        users.dedup();
        v["reply_users"] = json!(users);
        v["latest_reply"] = json!(replies.iter().map(|r| r.ts.as_str()).max());
    }
    if let Some(md) = &m.metadata {
        v["metadata"] = md.clone();
    }
    if m.updated > 0 {
        v["edited"] = json!({"user": m.user, "ts": m.ts});
    }
    v
}

fn post_message(state: &Recorder<SlackState>, p: &Map<String, Value>) -> ApiResult {
    let channel = required(p, "channel", "channel_not_found")?;
    let (text, blocks) = message_content(p, true)?;
    let metadata = check_metadata(p)?;
    let thread_ts = param(p, "thread_ts");
    state.update(|s| {
        let ts = s.next_ts();
        let msg = SlackMessage {
            channel: channel.clone(),
            ts: ts.clone(),
            thread_ts,
            text,
            blocks: blocks.unwrap_or(json!([])),
            metadata,
            updated: 0,
            user: BOT_USER_ID.into(),
            bot_id: Some(BOT_ID.into()),
        };
        let rendered = render_message(&msg, &s.messages);
        s.messages.push(msg);
        Ok(json!({"ok": true, "channel": channel, "ts": ts, "message": rendered}))
    })
}

fn update_message(state: &Recorder<SlackState>, p: &Map<String, Value>) -> ApiResult {
    let channel = required(p, "channel", "channel_not_found")?;
    let ts = required(p, "ts", "message_not_found")?;
    let (text, blocks) = message_content(p, false)?;
    let metadata = check_metadata(p)?;
    if text.is_empty() && blocks.is_none() && metadata.is_none() && p.get("attachments").is_none() {
        return Err(ApiError::new("no_text"));
    }
    state.update(|s| {
        let i = s
            .find_message(&channel, &ts)
            .ok_or_else(|| ApiError::new("message_not_found"))?;
        if s.messages[i].bot_id.is_none() {
            return Err(ApiError::new("cant_update_message"));
        }
        let m = &mut s.messages[i];
        if !text.is_empty() {
            m.text = text;
        }
        // Omitted blocks keep the previous ones; `[]` removes them (Slack's chat.update rule).
        if let Some(b) = blocks {
            m.blocks = b;
        }
        if metadata.is_some() {
            m.metadata = metadata;
        }
        m.updated += 1;
        let m = s.messages[i].clone();
        let rendered = render_message(&m, &s.messages);
        Ok(json!({"ok": true, "channel": channel, "ts": ts, "text": m.text, "message": rendered}))
    })
}

fn post_ephemeral(state: &Recorder<SlackState>, p: &Map<String, Value>) -> ApiResult {
    let channel = required(p, "channel", "channel_not_found")?;
    let user = required(p, "user", "user_not_found")?;
    let (text, blocks) = message_content(p, true)?;
    let thread_ts = param(p, "thread_ts");
    state.update(|s| {
        let message_ts = s.next_ts();
        s.ephemerals.push(SlackEphemeral {
            channel,
            user,
            text,
            blocks: blocks.unwrap_or(json!([])),
            thread_ts,
            message_ts: message_ts.clone(),
        });
        Ok(json!({"ok": true, "message_ts": message_ts}))
    })
}

fn render_user(u: &SlackUser) -> Value {
    let mut profile = json!({
        "real_name": u.real_name, "display_name": u.name,
        "real_name_normalized": u.real_name, "display_name_normalized": u.name,
        "team": TEAM_ID,
    });
    if let Some(e) = &u.email {
        profile["email"] = json!(e);
    }
    if u.is_bot {
        profile["bot_id"] = json!(BOT_ID);
    }
    json!({
        "id": u.id, "team_id": TEAM_ID, "name": u.name, "deleted": u.deleted,
        "real_name": u.real_name, "tz": "Europe/Amsterdam", "is_admin": false, "is_owner": false,
        "is_bot": u.is_bot, "is_app_user": false, "updated": 1_700_000_000, "profile": profile,
    })
}

fn users_list(state: &Recorder<SlackState>, p: &Map<String, Value>) -> ApiResult {
    let offset = match param(p, "cursor") {
        Some(c) => decode_cursor("user", &c)?,
        None => 0,
    };
    let s = state.read();
    // limit 0 / absent: everything at once (Slack tries to; fine for a small workspace).
    let limit = param_usize(p, "limit")
        .filter(|l| *l > 0)
        .unwrap_or(usize::MAX);
    let page: Vec<Value> = s
        .users
        .iter()
        .skip(offset)
        .take(limit)
        .map(render_user)
        .collect();
    let next = offset.saturating_add(page.len());
    let next_cursor = if next < s.users.len() {
        encode_cursor("user", next)
    } else {
        String::new()
    };
    Ok(json!({
        "ok": true, "members": page, "cache_ts": chrono::Utc::now().timestamp(),
        "response_metadata": {"next_cursor": next_cursor}
    }))
}

fn lookup_by_email(state: &Recorder<SlackState>, p: &Map<String, Value>) -> ApiResult {
    let Some(email) = param(p, "email") else {
        return Err(ApiError::with(
            "invalid_arguments",
            vec!["[ERROR] missing required field: email".into()],
        ));
    };
    let s = state.read();
    s.users
        .iter()
        .find(|u| {
            u.email
                .as_deref()
                .is_some_and(|e| e.eq_ignore_ascii_case(&email))
        })
        .map(|u| json!({"ok": true, "user": render_user(u)}))
        .ok_or_else(|| ApiError::new("users_not_found"))
}

fn ts_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    let f = |s: &str| s.parse::<f64>().unwrap_or(0.0);
    f(a).partial_cmp(&f(b)).unwrap_or(std::cmp::Ordering::Equal)
}

fn history(state: &Recorder<SlackState>, p: &Map<String, Value>) -> ApiResult {
    let channel = required(p, "channel", "channel_not_found")?;
    let offset = match param(p, "cursor") {
        Some(c) => decode_cursor("history", &c)?,
        None => 0,
    };
    let limit = param_usize(p, "limit")
        .filter(|l| *l > 0)
        .unwrap_or(100)
        .min(999);
    let inclusive = matches!(param(p, "inclusive").as_deref(), Some("true" | "1"));
    let latest = param(p, "latest");
    let oldest = param(p, "oldest");
    let s = state.read();
    let mut top: Vec<&SlackMessage> = s
        .messages
        .iter()
        .filter(|m| m.channel == channel)
        .filter(|m| m.thread_ts.is_none() || m.thread_ts.as_deref() == Some(&m.ts))
        .filter(|m| {
            latest.as_ref().is_none_or(|l| {
                let o = ts_cmp(&m.ts, l);
                o.is_lt() || (inclusive && o.is_eq())
            })
        })
        .filter(|m| {
            oldest.as_ref().is_none_or(|l| {
                let o = ts_cmp(&m.ts, l);
                o.is_gt() || (inclusive && o.is_eq())
            })
        })
        .collect();
    top.sort_by(|a, b| ts_cmp(&b.ts, &a.ts));
    let page: Vec<Value> = top
        .iter()
        .skip(offset)
        .take(limit)
        .map(|m| render_message(m, &s.messages))
        .collect();
    let next = offset + page.len();
    let has_more = next < top.len();
    Ok(json!({
        "ok": true, "messages": page, "has_more": has_more, "pin_count": 0,
        "response_metadata": {"next_cursor": if has_more { encode_cursor("history", next) } else { String::new() }}
    }))
}

fn replies(state: &Recorder<SlackState>, p: &Map<String, Value>) -> ApiResult {
    let channel = required(p, "channel", "channel_not_found")?;
    let ts = required(p, "ts", "thread_not_found")?;
    let offset = match param(p, "cursor") {
        Some(c) => decode_cursor("replies", &c)?,
        None => 0,
    };
    let limit = param_usize(p, "limit").filter(|l| *l > 0).unwrap_or(1000);
    let s = state.read();
    let i = s
        .find_message(&channel, &ts)
        .ok_or_else(|| ApiError::new("thread_not_found"))?;
    let parent_ts = s.messages[i]
        .thread_ts
        .clone()
        .unwrap_or_else(|| ts.clone());
    let mut thread: Vec<&SlackMessage> = s
        .messages
        .iter()
        .filter(|m| {
            m.channel == channel
                && (m.ts == parent_ts || m.thread_ts.as_deref() == Some(&parent_ts))
        })
        .collect();
    thread.sort_by(|a, b| ts_cmp(&a.ts, &b.ts));
    let page: Vec<Value> = thread
        .iter()
        .skip(offset)
        .take(limit)
        .map(|m| render_message(m, &s.messages))
        .collect();
    let next = offset + page.len();
    let has_more = next < thread.len();
    Ok(json!({
        "ok": true, "messages": page, "has_more": has_more,
        "response_metadata": {"next_cursor": if has_more { encode_cursor("replies", next) } else { String::new() }}
    }))
}

/// `POST /actions/{channel}/{message_ts}/…`: what Slack does with a `response_url` post.
fn response_url_post(state: &Recorder<SlackState>, rest: &str, body: &Bytes) -> Response {
    let mut parts = rest.split('/');
    let (Some(channel), Some(message_ts)) = (parts.next(), parts.next()) else {
        return json_response(404, &json!({"ok": false, "error": "not_found"}));
    };
    let Ok(payload) = serde_json::from_slice::<Value>(body) else {
        return json_response(400, &json!({"ok": false, "error": "invalid_payload"}));
    };
    let p = payload.as_object().cloned().unwrap_or_default();
    let blocks = p.get("blocks").filter(|b| !b.is_null()).cloned();
    if let Some(b) = &blocks
        && let Err(e) = validate_blocks(b)
    {
        return json_response(400, &e.body());
    }
    let text = param(&p, "text").unwrap_or_default();
    let truthy = |k: &str| {
        matches!(p.get(k), Some(Value::Bool(true))) || param(&p, k).as_deref() == Some("true")
    };
    let result = state.update(|s| {
        s.response_url_posts.push(ResponseUrlPost {
            channel: channel.to_string(),
            message_ts: message_ts.to_string(),
            body: payload.clone(),
        });
        if truthy("delete_original") {
            let i = s
                .find_message(channel, message_ts)
                .ok_or("message_not_found")?;
            s.messages.remove(i);
        } else if truthy("replace_original") {
            let i = s
                .find_message(channel, message_ts)
                .ok_or("message_not_found")?;
            let m = &mut s.messages[i];
            m.text = text.clone();
            m.blocks = blocks.clone().unwrap_or(json!([]));
            m.updated += 1;
        } else {
            let ts = s.next_ts();
            let thread_ts = param(&p, "thread_ts");
            if param(&p, "response_type").as_deref() == Some("in_channel") {
                s.messages.push(SlackMessage {
                    channel: channel.to_string(),
                    ts,
                    thread_ts,
                    text: text.clone(),
                    blocks: blocks.clone().unwrap_or(json!([])),
                    metadata: None,
                    updated: 0,
                    user: BOT_USER_ID.into(),
                    bot_id: Some(BOT_ID.into()),
                });
            } else {
                s.ephemerals.push(SlackEphemeral {
                    channel: channel.to_string(),
                    user: String::new(),
                    text: text.clone(),
                    blocks: blocks.clone().unwrap_or(json!([])),
                    thread_ts,
                    message_ts: ts,
                });
            }
        }
        Ok::<(), &str>(())
    });
    match result {
        Ok(()) => json_response(200, &json!({"ok": true})),
        Err(code) => json_response(404, &json!({"ok": false, "error": code})),
    }
}

/// One Socket Mode WebSocket: `hello`, then envelopes out and acknowledgements in.
async fn socket_connection(state: Arc<Recorder<SlackState>>, stream: tokio::net::TcpStream) {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let Ok(ws) = tokio_tungstenite::accept_async(stream).await else {
        return;
    };
    let (mut sink, mut source) = ws.split();
    let hello = json!({"type": "hello", "num_connections": 1,
                       "debug_info": {"host": "emulator", "approximate_connection_time": 18060},
                       "connection_info": {"app_id": APP_ID}});
    if sink
        .send(Message::Text(hello.to_string().into()))
        .await
        .is_err()
    {
        return;
    }
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    state.update(|s| {
        s.socket_connects += 1;
        s.socket_senders.push(tx);
    });
    loop {
        tokio::select! {
            out = rx.recv() => match out {
                Some(text) => {
                    let disconnect = text.contains("\"type\":\"disconnect\"");
                    if sink.send(Message::Text(text.into())).await.is_err() || disconnect {
                        break;
                    }
                }
                None => break,
            },
            inbound = source.next() => match inbound {
                Some(Ok(Message::Text(text))) => {
                    if let Ok(v) = serde_json::from_str::<Value>(&text) {
                        state.update(|s| s.socket_acks.push(v));
                    }
                }
                Some(Ok(Message::Ping(p))) => {
                    let _ = sink.send(Message::Pong(p)).await;
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                Some(Ok(_)) => {}
            },
        }
    }
    state.update(|s| s.socket_senders.retain(|tx| !tx.is_closed()));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_matches_the_documented_test_vector() {
        assert_eq!(
            sign("fa2c05deeef5a4077494e89f54394de0", 1531420618, "test-body"),
            "v0=baa91ef62d346e56607bbdd278a8acd570b91226854f15a382f43d33be42f666"
        );
    }

    #[test]
    fn block_limits_produce_invalid_blocks_with_json_pointers() {
        let long = "x".repeat(3001);
        let blocks = json!([
            {"type": "header", "text": {"type": "plain_text", "text": "h".repeat(151)}},
            {"type": "section", "text": {"type": "mrkdwn", "text": long}},
            {"type": "actions", "block_id": "approval:1", "elements": [
                {"type": "button", "action_id": "approve", "text": {"type": "plain_text", "text": "y".repeat(76)}, "style": "primary"},
                {"type": "button", "action_id": "approve", "text": {"type": "plain_text", "text": "No"}}
            ]}
        ]);
        let e = validate_blocks(&blocks).unwrap_err();
        assert_eq!(e.code, "invalid_blocks");
        assert_eq!(
            e.messages,
            vec![
                "[ERROR] must be less than 151 characters [json-pointer:/blocks/0/text/text]",
                "[ERROR] must be less than 3001 characters [json-pointer:/blocks/1/text/text]",
                "[ERROR] must be less than 76 characters [json-pointer:/blocks/2/elements/0/text/text]",
                "[ERROR] duplicate action_id [json-pointer:/blocks/2/elements/1/action_id]",
            ]
        );
        let many: Vec<Value> = (0..51).map(|_| json!({"type": "divider"})).collect();
        assert_eq!(
            validate_blocks(&Value::Array(many)).unwrap_err().code,
            "invalid_blocks"
        );
        assert_eq!(
            validate_blocks(&json!({"type": "divider"}))
                .unwrap_err()
                .code,
            "invalid_blocks_format"
        );
        assert!(validate_blocks(&json!([{"type": "divider"}])).is_ok());
    }

    #[test]
    fn block_actions_payload_has_the_fields_apps_read() {
        let p = block_actions_payload("U1", "alice", "C1", "1700000000.000100", "approve", "inc-1");
        assert_eq!(p["type"], "block_actions");
        assert_eq!(p["user"]["id"], "U1");
        assert_eq!(p["container"]["message_ts"], "1700000000.000100");
        assert_eq!(p["container"]["channel_id"], "C1");
        assert_eq!(p["actions"][0]["action_id"], "approve");
        assert_eq!(p["actions"][0]["value"], "inc-1");
        assert_eq!(p["message"]["bot_id"], BOT_ID);
        assert!(p["trigger_id"].is_string() && p["response_url"].is_string());
    }

    #[tokio::test]
    async fn interaction_payload_points_at_the_emulator_response_url() {
        let slack = SlackEmulator::start("xoxb-t").await.unwrap();
        let posted: Value = reqwest::Client::new()
            .post(format!("{}chat.postMessage", slack.url()))
            .bearer_auth("xoxb-t")
            .json(&json!({"channel": "C1", "text": "Approve?", "blocks": [
                {"type": "actions", "block_id": "approval:inc-1", "elements": [
                    {"type": "button", "action_id": "approve", "value": "inc-1",
                     "text": {"type": "plain_text", "text": "Yes"}}]}]}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let ts = posted["ts"].as_str().unwrap();
        let p = slack.interaction_payload("U1", "alice", "C1", ts, "approve", "inc-1");
        assert_eq!(p["actions"][0]["block_id"], "approval:inc-1");
        assert_eq!(p["actions"][0]["text"]["text"], "Yes");
        assert_eq!(p["message"]["text"], "Approve?");
        let url = p["response_url"].as_str().unwrap();
        let resp = reqwest::Client::new()
            .post(url)
            .json(&json!({"replace_original": true, "text": "Approved by <@U1>"}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let m = &slack.messages()[0];
        assert_eq!(
            (m.text.as_str(), m.updated, m.blocks.clone()),
            ("Approved by <@U1>", 1, json!([]))
        );
        assert_eq!(slack.response_url_posts().len(), 1);
    }

    #[tokio::test]
    async fn chat_update_keeps_blocks_when_omitted_and_scripted_errors_fire_once() {
        let slack = SlackEmulator::start("xoxb-t").await.unwrap();
        let client = reqwest::Client::new();
        let call = |method: &str, body: Value| {
            client
                .post(format!("{}{method}", slack.url()))
                .bearer_auth("xoxb-t")
                .json(&body)
                .send()
        };
        let blocks = json!([{"type": "section", "text": {"type": "mrkdwn", "text": "hi"}}]);
        let posted: Value = call(
            "chat.postMessage",
            json!({"channel": "C1", "blocks": blocks}),
        )
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
        let ts = posted["ts"].clone();
        let upd: Value = call(
            "chat.update",
            json!({"channel": "C1", "ts": ts, "text": "new"}),
        )
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
        assert_eq!(upd["ok"], true);
        assert_eq!(slack.messages()[0].blocks, blocks);
        slack.error_next("chat.postMessage", "channel_not_found");
        let e: Value = call("chat.postMessage", json!({"channel": "C1", "text": "x"}))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(e["error"], "channel_not_found");
        let ok: Value = call("chat.postMessage", json!({"channel": "C1", "text": "x"}))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(ok["ok"], true);
        let unknown: Value = call("nope.nope", json!({}))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(unknown["error"], "unknown_method");
    }

    #[test]
    fn cursors_round_trip_and_reject_garbage() {
        assert_eq!(decode_cursor("user", &encode_cursor("user", 7)).unwrap(), 7);
        assert_eq!(
            decode_cursor("user", "bm9wZQ==").unwrap_err().code,
            "invalid_cursor"
        );
    }
}
