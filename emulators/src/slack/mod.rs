//! Slack emulator: the Web API methods triage-bot calls (`/api/{method}`), `response_url` posts,
//! and helpers that act as Slack towards the app (signed interactions and Events API callbacks).
//!
//! It owns the workspace state (users, user groups, posted messages, ephemerals) and the record
//! of every Web API call. It does not emulate channels membership or scopes.
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
//!
//! Layout, one way only: this file holds [`SlackEmulator`]; `web_api.rs` the methods and
//! `response_url` posts, on top of `blocks.rs` (Block Kit checks) and `params.rs` (parameters,
//! method errors, cursors); `views.rs` the modals (`views.open`, `views.update`, and the
//! `view_submission` a person's submit produces); `socket_mode.rs` the WebSocket side; `acting.rs`
//! what acts as Slack towards the app; `state.rs` the workspace and its record, which imports none
//! of them.

mod acting;
mod blocks;
mod params;
mod socket_mode;
mod state;
mod views;
mod web_api;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderMap, Method, Uri};
use serde_json::{Value, json};

pub use self::acting::{
    app_mention_event, block_actions_payload, event_callback, message_event, post_event,
    post_interaction, post_signed, sign,
};
use self::socket_mode::socket_connection;
pub use self::state::{
    APP_ID, BOT_ID, BOT_USER_ID, ResponseUrlPost, SlackCall, SlackEphemeral, SlackMessage,
    SlackState, SlackUser, SlackView, TEAM_DOMAIN, TEAM_ID,
};
pub use self::views::{TRIGGER_LIFE_MS, new_trigger_id, state_values, view_submission_payload};
use self::web_api::handle;
use crate::server::{self, Recorder};

/// In-process Slack. Cheap to clone; all clones share one state.
#[derive(Clone)]
pub struct SlackEmulator {
    /// Failures injected into its answers (off by default).
    pub faults: crate::faults::Faults,
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
        let faults = crate::faults::Faults::default();
        let addr = server::spawn(router, &faults).await?;
        Ok(Self {
            faults,
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

    /// Every Socket Mode connection open now goes silent without closing: it sends nothing
    /// and answers no ping, as a socket that died on the way (later connections work).
    pub fn silence_open_sockets(&self) {
        self.state
            .update(|s| s.silenced_through = s.socket_connects);
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
    /// The bot token's scopes from now on (sent back in `x-oauth-scopes`).
    pub fn set_scopes(&self, scopes: &[&str]) {
        let scopes = scopes.iter().map(|s| s.to_string()).collect();
        self.state.update(|s| s.scopes = Some(scopes));
    }

    /// Takes the bot out of `channel`: reading its history answers `not_in_channel`.
    pub fn remove_bot_from(&self, channel: &str) {
        self.state
            .update(|s| s.not_member_of.insert(channel.to_string()));
    }

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

    /// Every modal opened, as it stands now.
    pub fn views(&self) -> Vec<SlackView> {
        self.state.read().views.clone()
    }

    /// Acts as Slack when `user_id` presses the submit button of the open modal `view_id`: a
    /// signed `view_submission` to `app_url`, with `view.state.values` holding every input's
    /// current value — its initial one, or `overrides` (`block_id → state value`, e.g.
    /// `{"type": "plain_text_input", "value": "…"}`). Slack's handling of the answer follows:
    /// an empty body closes the modal, `errors` keeps it open with them, `update` replaces it.
    /// Returns the HTTP status and the answer (`Null` when empty).
    ///
    /// # Errors
    /// When the view is unknown or the app cannot be reached.
    pub async fn submit_view(
        &self,
        app_url: &str,
        signing_secret: &str,
        view_id: &str,
        user_id: &str,
        overrides: &serde_json::Map<String, Value>,
    ) -> anyhow::Result<(u16, Value)> {
        let payload = self.view_submission(view_id, user_id, overrides)?;
        let (status, body) = post_interaction(
            app_url,
            signing_secret,
            &payload,
            chrono::Utc::now().timestamp(),
        )
        .await?;
        let answer: Value = if body.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&body).unwrap_or(Value::String(body))
        };
        if status == 200 {
            views::apply_answer(&self.state, view_id, &answer);
        }
        Ok((status, answer))
    }

    /// The `view_submission` payload [`Self::submit_view`] sends (for other transports, e.g. a
    /// Socket Mode `interactive` envelope).
    ///
    /// # Errors
    /// When the view is unknown.
    pub fn view_submission(
        &self,
        view_id: &str,
        user_id: &str,
        overrides: &serde_json::Map<String, Value>,
    ) -> anyhow::Result<Value> {
        let s = self.state.read();
        let v = s
            .views
            .iter()
            .find(|v| v.id == view_id)
            .ok_or_else(|| anyhow::anyhow!("no view {view_id}"))?;
        let mut view = v.view.clone();
        view["id"] = json!(v.id);
        view["hash"] = json!(v.hash);
        view["team_id"] = json!(TEAM_ID);
        view["app_id"] = json!(APP_ID);
        view["bot_id"] = json!(BOT_ID);
        let values = state_values(&v.view, overrides);
        Ok(view_submission_payload(user_id, "someone", &view, values))
    }

    /// A `block_actions` payload from inside the open modal `view_id` (an element with
    /// `dispatch_action`, or a button in the modal): `container.type` is `view`, and the payload
    /// carries the view with its current `state.values`, as Slack sends it.
    ///
    /// # Errors
    /// When the view is unknown.
    pub fn view_block_actions_payload(
        &self,
        view_id: &str,
        user_id: &str,
        block_id: &str,
        action: Value,
    ) -> anyhow::Result<Value> {
        let submission = self.view_submission(view_id, user_id, &serde_json::Map::new())?;
        let mut action = action;
        action["block_id"] = json!(block_id);
        action["action_ts"] = json!(format!(
            "{:.6}",
            chrono::Utc::now().timestamp_micros() as f64 / 1e6
        ));
        Ok(json!({
            "type": "block_actions",
            "user": submission["user"],
            "api_app_id": APP_ID,
            "token": "verification-token-deprecated",
            "container": { "type": "view", "view_id": view_id },
            "trigger_id": new_trigger_id(),
            "team": submission["team"],
            "enterprise": null,
            "is_enterprise_install": false,
            "view": submission["view"],
            "actions": [action]
        }))
    }

    /// Records what Slack does with an answer to a submission of `view_id` that reached the app
    /// another way (a Socket Mode ack's `payload`).
    pub fn apply_view_answer(&self, view_id: &str, answer: &Value) {
        views::apply_answer(&self.state, view_id, answer);
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
