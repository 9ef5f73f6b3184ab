//! Acting as Slack towards the app: request signatures ([`sign`]), realistic `block_actions`
//! payloads and Events API envelopes and events, and the signed POSTs that deliver them
//! ([`post_interaction`], [`post_event`], [`post_signed`]).
//!
//! It owns no state;
//! [`SlackEmulator::interaction_payload`](crate::slack::SlackEmulator::interaction_payload)
//! builds on [`block_actions_payload`] with a stored message.

use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

use super::state::{APP_ID, BOT_ID, BOT_USER_ID, TEAM_DOMAIN, TEAM_ID};

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
        "trigger_id": super::views::new_trigger_id(),
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
}
