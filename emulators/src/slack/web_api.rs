//! The Web API of the Slack emulator (`/api/{method}`): token check, injected transport faults
//! (HTTP errors, 429 with `Retry-After`) and scripted method errors, the call record, and the
//! methods triage-bot calls (`auth.test`, `chat.*`, `users.*`, `usergroups.users.list`,
//! `conversations.history`/`replies`, `apps.connections.open`, `views.open`/`update`); plus what
//! Slack does with a post to a `response_url` it handed out (`/actions/…`).

use std::sync::Arc;

use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderValue, Method, Uri, header};
use axum::response::Response;
use serde_json::{Map, Value, json};

use super::blocks::{check_metadata, message_content, validate_blocks};
use super::params::{
    ApiError, ApiResult, collect_params, decode_cursor, encode_cursor, param, param_usize,
    parse_json_strings, required,
};
use super::state::{
    APP_ID, BOT_ID, BOT_USER_ID, ResponseUrlPost, SlackCall, SlackEphemeral, SlackMessage,
    SlackState, SlackUser, TEAM_DOMAIN, TEAM_ID,
};
use crate::server::Recorder;
use crate::server::json_response;

// ---------------------------------------------------------------------------------------------
// HTTP layer

pub(super) fn handle(
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
            let mut r = json_response(200, &body);
            if api_method != "apps.connections.open" {
                let scopes = state
                    .read()
                    .scopes
                    .clone()
                    .unwrap_or_else(|| ALL_BOT_SCOPES.iter().map(|s| s.to_string()).collect());
                if let Ok(v) = HeaderValue::from_str(&scopes.join(",")) {
                    r.headers_mut().insert("x-oauth-scopes", v);
                }
            }
            r
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
        "views.open" => super::views::views_open(state, p),
        "views.update" => super::views::views_update(state, p),
        "conversations.history" => history(state, p),
        "conversations.replies" => replies(state, p),
        _ => Err(ApiError::new("unknown_method")),
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

/// The scopes a token has when a test did not set them: every bot scope the app may ask for.
const ALL_BOT_SCOPES: &[&str] = &[
    "app_mentions:read",
    "channels:history",
    "channels:read",
    "chat:write",
    "groups:history",
    "groups:read",
    "usergroups:read",
    "users:read",
    "users:read.email",
];

fn history(state: &Recorder<SlackState>, p: &Map<String, Value>) -> ApiResult {
    let channel = required(p, "channel", "channel_not_found")?;
    if state.read().not_member_of.contains(&channel) {
        return Err(ApiError::new("not_in_channel"));
    }
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
