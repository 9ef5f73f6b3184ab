//! Events API: `POST /slack/events` — the URL verification handshake, and messages in an
//! incident's thread, which become follow-up questions for the assistant — or, when they start
//! with `revise:`, a request to revise the open proposal ([`REVISE_KEYWORD`]).
//!
//! Deliveries are signature-checked, deduplicated by `event_id` (Slack retries with the same id),
//! and the bot's own and other bots' messages are ignored.

use axum::http::HeaderMap;
use serde_json::Value;

use super::{Rejected, signature};
use crate::pipeline::Ctx;
use crate::store::{Job, Store, outbox};

/// The HTTP handler body: verify, parse, record. `Ok` carries the response body (the
/// `url_verification` challenge, else empty).
pub async fn handle(ctx: &Ctx, headers: &HeaderMap, body: &str) -> Result<String, Rejected> {
    if let Err(e) = signature::verify(&ctx.settings.slack.signing_secret, headers, body) {
        tracing::warn!(error = %e, "refused a Slack event");
        return Err(Rejected::Unauthenticated(e.to_string()));
    }
    let v: Value = match serde_json::from_str(body) {
        Ok(v) => v,
        Err(e) => return Err(Rejected::Malformed(format!("body is not JSON: {e}"))),
    };
    match v.get("type").and_then(Value::as_str) {
        Some("url_verification") => {
            let challenge = v
                .get("challenge")
                .and_then(Value::as_str)
                .unwrap_or_default();
            Ok(challenge.to_string())
        }
        Some("event_callback") => {
            if let Err(e) = on_event(ctx, &v).await {
                tracing::error!(error = %e, "cannot handle a Slack event");
                return Err(Rejected::Unavailable);
            }
            ctx.wake.notify_one();
            Ok(String::new())
        }
        _ => Ok(String::new()),
    }
}

/// An `event_callback` body, from HTTP or from a Socket Mode `events_api` envelope.
pub async fn handle_json(ctx: &Ctx, v: &Value) -> anyhow::Result<()> {
    if v.get("type").and_then(Value::as_str) == Some("event_callback") {
        on_event(ctx, v).await?;
        ctx.wake.notify_one();
    }
    Ok(())
}

async fn on_event(ctx: &Ctx, v: &Value) -> anyhow::Result<()> {
    let event = v.get("event").cloned().unwrap_or(Value::Null);
    let kind = event
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if kind != "message" && kind != "app_mention" {
        return Ok(());
    }
    // Bots (ourselves included) and edits/joins are not questions.
    let subtype = event.get("subtype").and_then(Value::as_str);
    if event.get("bot_id").is_some() || !matches!(subtype, None | Some("thread_broadcast")) {
        return Ok(());
    }
    let (Some(user), Some(thread), Some(channel), Some(text)) = (
        event.get("user").and_then(Value::as_str),
        event.get("thread_ts").and_then(Value::as_str),
        event.get("channel").and_then(Value::as_str),
        event.get("text").and_then(Value::as_str),
    ) else {
        return Ok(());
    };
    let Some(incident) = ctx.store.incident_by_thread(channel, thread).await? else {
        return Ok(());
    };
    // One question per user message: dedupe the delivery (event_id) and the message itself,
    // which arrives twice when it @-mentions the bot (as app_mention and as message).
    let event_id = v
        .get("event_id")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let msg_key = format!(
        "msg:{channel}:{}",
        event.get("ts").and_then(Value::as_str).unwrap_or_default()
    );
    let mut tx = ctx.store.write_tx().await?;
    for key in [event_id.to_string(), msg_key] {
        let fresh = Store::first_delivery(&mut tx, &key).await?;
        if !fresh {
            return Ok(());
        }
    }
    let question = strip_mentions(text);
    if question.is_empty() {
        tx.commit().await?;
        return Ok(());
    }
    let job = match revision_instruction(&question) {
        Some(instruction) => Job::Revise {
            instruction,
            user: user.to_string(),
            at: crate::store::now_text(),
            target: None,
        },
        None => Job::FollowUp {
            question,
            user: user.to_string(),
        },
    };
    outbox::enqueue(&mut tx, &incident.id, &job).await?;
    tx.commit().await?;
    Ok(())
}

/// The keyword that makes a thread reply a request for changes rather than a question:
/// `revise: don't stop the process, collect memory first`.
pub const REVISE_KEYWORD: &str = "revise:";

/// The instruction of a `revise:` reply (case-insensitive keyword), if it is one.
pub fn revision_instruction(text: &str) -> Option<String> {
    let head = text.get(..REVISE_KEYWORD.len())?;
    if !head.eq_ignore_ascii_case(REVISE_KEYWORD) {
        return None;
    }
    let rest = text[REVISE_KEYWORD.len()..].trim();
    (!rest.is_empty()).then(|| rest.to_string())
}

/// "<@UBOT> what is odupd.exe?" → "what is odupd.exe?"
fn strip_mentions(text: &str) -> String {
    static MENTION: std::sync::LazyLock<regex::Regex> =
        std::sync::LazyLock::new(|| regex::Regex::new(r"<@[A-Z0-9]+>").expect("valid regex"));
    MENTION.replace_all(text, "").trim().to_string()
}
