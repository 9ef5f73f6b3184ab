//! The Slack Web API: posting, updating and ephemeral messages, and user lookup.
//!
//! Every call honours HTTP 429 `Retry-After` (waits and tries again, up to a limit), and every
//! answer is checked for `ok` — Slack reports method errors as HTTP 200 with `"ok": false`.

pub mod wire;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::sync::Mutex;

use super::{Retryable, retryable_status};
use crate::secret::Secret;
use wire::{PostedMessage, UsersListResponse};

#[derive(Debug, thiserror::Error)]
pub enum SlackError {
    #[error("cannot reach Slack: {0}")]
    Transport(String),
    #[error("Slack {method} failed: {code}{}", detail.as_deref().map(|d| format!(" ({d})")).unwrap_or_default())]
    Api {
        method: String,
        code: String,
        detail: Option<String>,
    },
    #[error("Slack {method} answered HTTP {status}")]
    Http { method: String, status: u16 },
    #[error("Slack {method} is rate limited (retry after {retry_after:?})")]
    RateLimited {
        method: String,
        retry_after: Duration,
    },
    #[error("unexpected Slack response to {method}: {detail}")]
    Decode { method: String, detail: String },
    /// A 2xx answer that could not be read (cut off, not JSON): worth asking again.
    #[error("Slack's answer to {method} could not be read: {detail}")]
    Unreadable { method: String, detail: String },
}

/// A 2xx body as JSON: a body cut off or broken while read is [`SlackError::Unreadable`].
async fn read_body(method: &str, resp: reqwest::Response) -> Result<Value, SlackError> {
    let bytes = resp
        .bytes()
        .await
        .map_err(|e| SlackError::Transport(e.to_string()))?;
    serde_json::from_slice(&bytes).map_err(|e| {
        let (method, detail) = (method.to_owned(), e.to_string());
        if crate::clients::unreadable(&e) {
            SlackError::Unreadable { method, detail }
        } else {
            SlackError::Decode { method, detail }
        }
    })
}

impl Retryable for SlackError {
    fn is_retryable(&self) -> bool {
        match self {
            SlackError::Transport(_) | SlackError::RateLimited { .. } => true,
            SlackError::Http { status, .. } => retryable_status(*status),
            SlackError::Api { code, .. } => matches!(
                code.as_str(),
                "ratelimited"
                    | "service_unavailable"
                    | "internal_error"
                    | "fatal_error"
                    | "request_timeout"
            ),
            SlackError::Decode { .. } => false,
            SlackError::Unreadable { .. } => true,
        }
    }
}

/// User group id → (when fetched, member ids).
type GroupCache = HashMap<String, (Instant, Vec<String>)>;

enum Payload<'a> {
    Json(&'a Value),
    Form(&'a [(&'a str, String)]),
}

/// A cached name → user id directory built from users.list.
struct Directory {
    fetched: Instant,
    by_name: HashMap<String, String>,
}

/// What `auth.test` says about the token.
#[derive(Debug, Clone)]
pub struct AuthInfo {
    pub user_id: String,
    pub user: String,
    pub team: String,
    pub scopes: Option<Vec<String>>,
}

/// The bot scopes the calls triage-bot makes need: messages and updates, thread history (public
/// and private channels), handler lookup by name and e-mail, approver groups, and @-mentions.
pub const REQUIRED_BOT_SCOPES: &[&str] = &[
    "chat:write",
    "channels:history",
    "groups:history",
    "users:read",
    "users:read.email",
    "usergroups:read",
    "app_mentions:read",
];

#[derive(Clone)]
pub struct SlackClient {
    http: reqwest::Client,
    base: String,
    token: Secret,
    max_rate_limit_waits: u32,
    directory: Arc<Mutex<Option<Directory>>>,
    directory_ttl: Duration,
    groups: Arc<Mutex<GroupCache>>,
}

impl SlackClient {
    /// `base` is the Web API root ending in `/`, e.g. `https://slack.com/api/`.
    pub fn new(base: &str, token: Secret) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()?;
        Ok(Self {
            http,
            base: base.to_string(),
            token,
            max_rate_limit_waits: 5,
            directory: Arc::new(Mutex::new(None)),
            groups: Arc::new(Mutex::new(HashMap::new())),
            directory_ttl: Duration::from_secs(3600),
        })
    }

    /// Calls a write method with a JSON body.
    pub async fn call(&self, method: &str, body: &Value) -> Result<Value, SlackError> {
        self.call_with(method, &Payload::Json(body)).await
    }

    /// Calls a read method with form parameters (Slack's read methods ignore JSON bodies).
    pub async fn call_form(
        &self,
        method: &str,
        params: &[(&str, String)],
    ) -> Result<Value, SlackError> {
        self.call_with(method, &Payload::Form(params)).await
    }

    async fn call_with(&self, method: &str, body: &Payload<'_>) -> Result<Value, SlackError> {
        let mut waits = 0;
        loop {
            match self.call_once(method, body).await {
                Err(SlackError::RateLimited { retry_after, .. })
                    if waits < self.max_rate_limit_waits =>
                {
                    waits += 1;
                    tracing::warn!(
                        slack.method = method,
                        retry_after_secs = retry_after.as_secs_f64(),
                        "Slack rate limit; waiting as asked"
                    );
                    tokio::time::sleep(retry_after).await;
                }
                other => return other,
            }
        }
    }

    async fn call_once(&self, method: &str, body: &Payload<'_>) -> Result<Value, SlackError> {
        let rb = self
            .http
            .post(format!("{}{method}", self.base))
            .bearer_auth(self.token.expose());
        let rb = match body {
            Payload::Json(v) => rb
                .header("content-type", "application/json; charset=utf-8")
                .body(v.to_string()),
            Payload::Form(params) => rb.form(params),
        };
        let resp = rb
            .send()
            .await
            .map_err(|e| SlackError::Transport(e.without_url().to_string()))?;
        let status = resp.status().as_u16();
        if status == 429 {
            let secs = resp
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .unwrap_or(1);
            return Err(SlackError::RateLimited {
                method: method.into(),
                retry_after: Duration::from_secs(secs),
            });
        }
        if !(200..300).contains(&status) {
            return Err(SlackError::Http {
                method: method.into(),
                status,
            });
        }
        let v = read_body(method, resp).await?;
        if v.get("ok").and_then(Value::as_bool) == Some(true) {
            return Ok(v);
        }
        let code = v
            .get("error")
            .and_then(Value::as_str)
            .unwrap_or("unknown_error")
            .to_string();
        let detail = v
            .pointer("/response_metadata/messages")
            .and_then(Value::as_array)
            .map(|m| {
                m.iter()
                    .filter_map(Value::as_str)
                    .collect::<Vec<_>>()
                    .join("; ")
            });
        Err(SlackError::Api {
            method: method.into(),
            code,
            detail,
        })
    }

    /// `auth.test`: whether the token is valid, whose it is, and the scopes it holds (from the
    /// `x-oauth-scopes` header Slack sends with every answer; `None` when it is absent).
    pub async fn auth_test(&self) -> Result<AuthInfo, SlackError> {
        let method = "auth.test";
        let resp = self
            .http
            .post(format!("{}{method}", self.base))
            .bearer_auth(self.token.expose())
            .send()
            .await
            .map_err(|e| SlackError::Transport(e.without_url().to_string()))?;
        let status = resp.status().as_u16();
        if !(200..300).contains(&status) {
            return Err(SlackError::Http {
                method: method.into(),
                status,
            });
        }
        let scopes = resp
            .headers()
            .get("x-oauth-scopes")
            .and_then(|v| v.to_str().ok())
            .map(|v| {
                v.split(',')
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty())
                    .collect()
            });
        let v = read_body(method, resp).await?;
        if v.get("ok").and_then(Value::as_bool) != Some(true) {
            return Err(SlackError::Api {
                method: method.into(),
                code: v
                    .get("error")
                    .and_then(Value::as_str)
                    .unwrap_or("unknown_error")
                    .to_string(),
                detail: None,
            });
        }
        let text = |k: &str| {
            v.get(k)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        Ok(AuthInfo {
            user_id: text("user_id"),
            user: text("user"),
            team: text("team"),
            scopes,
        })
    }

    /// Whether the bot can read `channel` — a member of it — by asking for one message of its
    /// history (Slack answers `not_in_channel` otherwise), with the scopes the app already has.
    pub async fn can_read_channel(&self, channel: &str) -> Result<bool, SlackError> {
        let params = [("channel", channel.to_string()), ("limit", "1".to_string())];
        match self.call_form("conversations.history", &params).await {
            Ok(_) => Ok(true),
            Err(SlackError::Api { code, .. }) if code == "not_in_channel" => Ok(false),
            Err(e) => Err(e),
        }
    }

    pub async fn post_message(&self, body: &Value) -> Result<PostedMessage, SlackError> {
        let v = self.call("chat.postMessage", body).await?;
        serde_json::from_value(v).map_err(|e| SlackError::Decode {
            method: "chat.postMessage".into(),
            detail: e.to_string(),
        })
    }

    pub async fn update_message(&self, body: &Value) -> Result<(), SlackError> {
        self.call("chat.update", body).await.map(|_| ())
    }

    /// `views.open`: opens a modal for the person who clicked, with the click's `trigger_id`
    /// (valid for three seconds, once). Returns the view's `(id, hash)`.
    pub async fn views_open(
        &self,
        trigger_id: &str,
        view: &Value,
    ) -> Result<(String, String), SlackError> {
        let v = self
            .call(
                "views.open",
                &json!({ "trigger_id": trigger_id, "view": view }),
            )
            .await?;
        view_ids("views.open", &v)
    }

    /// `views.update`: replaces an open modal; with `hash`, only if nobody changed it meanwhile
    /// (Slack answers `hash_conflict`). Returns the view's new `(id, hash)`.
    pub async fn views_update(
        &self,
        view_id: &str,
        hash: Option<&str>,
        view: &Value,
    ) -> Result<(String, String), SlackError> {
        let mut body = json!({ "view_id": view_id, "view": view });
        if let Some(h) = hash {
            body["hash"] = json!(h);
        }
        let v = self.call("views.update", &body).await?;
        view_ids("views.update", &v)
    }

    pub async fn post_ephemeral(
        &self,
        channel: &str,
        user: &str,
        text: &str,
    ) -> Result<(), SlackError> {
        self.call(
            "chat.postEphemeral",
            &json!({ "channel": channel, "user": user, "text": text }),
        )
        .await
        .map(|_| ())
    }

    /// Members of a user group (S…), cached for five minutes.
    pub async fn usergroup_members(&self, group: &str) -> Result<Vec<String>, SlackError> {
        {
            let cache = self.groups.lock().await;
            if let Some((at, members)) = cache.get(group)
                && at.elapsed() < Duration::from_secs(300)
            {
                return Ok(members.clone());
            }
        }
        let v = self
            .call_form("usergroups.users.list", &[("usergroup", group.to_string())])
            .await?;
        let members: Vec<String> = v
            .get("users")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(String::from)
                    .collect()
            })
            .unwrap_or_default();
        self.groups
            .lock()
            .await
            .insert(group.to_string(), (Instant::now(), members.clone()));
        Ok(members)
    }

    /// A link to a message, for the case record.
    pub async fn permalink(&self, channel: &str, ts: &str) -> Result<String, SlackError> {
        let v = self
            .call_form(
                "chat.getPermalink",
                &[
                    ("channel", channel.to_string()),
                    ("message_ts", ts.to_string()),
                ],
            )
            .await?;
        v.get("permalink")
            .and_then(Value::as_str)
            .map(String::from)
            .ok_or_else(|| SlackError::Decode {
                method: "chat.getPermalink".into(),
                detail: "no permalink".into(),
            })
    }

    /// The ts of the message posted for `incident` (found by its metadata), if any — so a retried
    /// post after a crash does not post twice.
    /// `thread`: look among the replies of that thread instead of the channel history.
    pub async fn find_incident_message(
        &self,
        channel: &str,
        incident: &str,
        thread: Option<&str>,
    ) -> Result<Option<String>, SlackError> {
        self.find_by_metadata(channel, thread, "incident_id", incident)
            .await
    }

    /// The ts of the message whose metadata payload has `field` = `value`, in the channel's
    /// history or (`thread`) among that thread's replies — how a retried post finds out whether
    /// the earlier attempt, whose answer was lost, had in fact posted.
    pub async fn find_by_metadata(
        &self,
        channel: &str,
        thread: Option<&str>,
        field: &str,
        value: &str,
    ) -> Result<Option<String>, SlackError> {
        let mut params = vec![
            ("channel", channel.to_string()),
            ("limit", "200".to_string()),
            ("include_all_metadata", "true".to_string()),
        ];
        let method = match thread {
            Some(ts) => {
                params.push(("ts", ts.to_string()));
                "conversations.replies"
            }
            None => "conversations.history",
        };
        let v = self.call_form(method, &params).await?;
        let found = v
            .get("messages")
            .and_then(Value::as_array)
            .and_then(|msgs| {
                msgs.iter().find(|m| {
                    m.get("metadata")
                        .and_then(|md| md.get("event_payload"))
                        .and_then(|p| p.get(field))
                        .and_then(Value::as_str)
                        == Some(value)
                })
            });
        Ok(found
            .and_then(|m| m.get("ts"))
            .and_then(Value::as_str)
            .map(String::from))
    }

    /// Finds a user id by name, display name or real name (case-insensitive), from a users.list
    /// directory cached for an hour and paginated with `limit=200`.
    pub async fn find_user_by_name(&self, name: &str) -> Result<Option<String>, SlackError> {
        let key = name.trim().trim_start_matches('@').to_lowercase();
        let mut dir = self.directory.lock().await;
        let stale = dir
            .as_ref()
            .is_none_or(|d| d.fetched.elapsed() > self.directory_ttl);
        if stale {
            *dir = Some(Directory {
                fetched: Instant::now(),
                by_name: self.fetch_directory().await?,
            });
        }
        Ok(dir.as_ref().and_then(|d| d.by_name.get(&key).cloned()))
    }

    async fn fetch_directory(&self) -> Result<HashMap<String, String>, SlackError> {
        let mut by_name = HashMap::new();
        let mut cursor: Option<String> = None;
        for _ in 0..100 {
            let mut params = vec![("limit", "200".to_string())];
            if let Some(c) = &cursor {
                params.push(("cursor", c.clone()));
            }
            let v = self.call_form("users.list", &params).await?;
            let page: UsersListResponse =
                serde_json::from_value(v).map_err(|e| SlackError::Decode {
                    method: "users.list".into(),
                    detail: e.to_string(),
                })?;
            for m in page.members.into_iter().filter(|m| !m.deleted && !m.is_bot) {
                for n in m.names() {
                    by_name
                        .entry(n.to_lowercase())
                        .or_insert_with(|| m.id.clone());
                }
            }
            cursor = page
                .response_metadata
                .and_then(|r| r.next_cursor)
                .filter(|c| !c.is_empty());
            if cursor.is_none() {
                break;
            }
        }
        Ok(by_name)
    }

    /// The active user with this e-mail address (`users.lookupByEmail`); `None` when Slack has
    /// no such user (`users_not_found`).
    pub async fn lookup_user_by_email(&self, email: &str) -> Result<Option<String>, SlackError> {
        let v = match self
            .call_form(
                "users.lookupByEmail",
                &[("email", email.trim().to_string())],
            )
            .await
        {
            Ok(v) => v,
            Err(SlackError::Api { code, .. }) if code == "users_not_found" => return Ok(None),
            Err(e) => return Err(e),
        };
        let user = v.get("user");
        let inactive = user
            .and_then(|u| u.get("deleted"))
            .and_then(Value::as_bool)
            .unwrap_or(false);
        Ok(user
            .filter(|_| !inactive)
            .and_then(|u| u.get("id"))
            .and_then(Value::as_str)
            .map(String::from))
    }
}

/// The `(id, hash)` of the view in a `views.*` answer.
fn view_ids(method: &str, v: &Value) -> Result<(String, String), SlackError> {
    let field = |k: &str| {
        v.pointer(&format!("/view/{k}"))
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| SlackError::Decode {
                method: method.into(),
                detail: format!("no view.{k} in the answer"),
            })
    };
    Ok((field("id")?, field("hash")?))
}
