//! The emulated Slack workspace: its fixed ids ([`TEAM_ID`], [`BOT_USER_ID`], …) and everything
//! the emulator holds in [`SlackState`] — users and user groups, messages and ephemerals, the
//! record of every Web API call ([`SlackCall`]) and `response_url` post, the injected failures,
//! and the Socket Mode connections.
//!
//! It depends on no other Slack file.

use std::collections::{BTreeMap, VecDeque};

use serde_json::Value;

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
    /// Author: `UBOT` for messages posted through the API, the user for
    /// [`SlackEmulator::add_user_message`](crate::slack::SlackEmulator::add_user_message).
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

/// A modal opened with `views.open`, as it stands now.
#[derive(Debug, Clone)]
pub struct SlackView {
    pub id: String,
    pub hash: String,
    /// The click's trigger it was opened with.
    pub trigger_id: String,
    /// The view as the app last sent it (`views.open`, `views.update`, `response_action: update`).
    pub view: Value,
    /// How many times it was replaced.
    pub updates: u32,
    /// Closed by a submission the app answered with an empty body.
    pub closed: bool,
    /// The field errors the app answered the last submission with (`response_action: errors`).
    pub errors: Option<Value>,
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

/// One JSON post to a `response_url` handed out by
/// [`SlackEmulator::interaction_payload`](crate::slack::SlackEmulator::interaction_payload).
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
    /// Connections numbered up to this one (1-based, in connect order) have gone silent.
    pub silenced_through: usize,
    pub socket_acks: Vec<Value>,
    pub calls: Vec<SlackCall>,
    pub messages: Vec<SlackMessage>,
    pub ephemerals: Vec<SlackEphemeral>,
    /// Modals opened (`views.open`), in order, and the trigger ids already exchanged.
    pub views: Vec<SlackView>,
    pub used_triggers: std::collections::BTreeSet<String>,
    pub users: Vec<SlackUser>,
    pub usergroups: BTreeMap<String, Vec<String>>,
    pub response_url_posts: Vec<ResponseUrlPost>,
    /// `Retry-After` seconds for the next rate-limited calls.
    pub rate_limits: VecDeque<u64>,
    /// HTTP statuses for the next failing calls.
    pub failures: VecDeque<u16>,
    /// `(method, error)` pairs: the next call of `method` answers `{"ok":false,"error":error}`.
    pub scripted_errors: Vec<(String, String)>,
    /// The bot token's scopes, sent in the `x-oauth-scopes` header of every bot-token answer
    /// (as Slack does); `None` until set: the emulator then grants every scope it knows.
    pub scopes: Option<Vec<String>>,
    /// Channels the bot is not a member of: reading their history answers `not_in_channel`.
    pub not_member_of: std::collections::BTreeSet<String>,
    /// The last message timestamp handed out, in microseconds (see `next_ts`).
    pub(super) last_ts_micros: i64,
}

impl SlackState {
    /// A fresh, strictly increasing message timestamp like `1700000000.000100`.
    pub(super) fn next_ts(&mut self) -> String {
        let now = chrono::Utc::now().timestamp_micros();
        let t = now.max(self.last_ts_micros + 1);
        self.last_ts_micros = t;
        format!("{}.{:06}", t / 1_000_000, t % 1_000_000)
    }

    pub(super) fn find_message(&self, channel: &str, ts: &str) -> Option<usize> {
        self.messages
            .iter()
            .position(|m| m.channel == channel && m.ts == ts)
    }
}
