//! Socket Mode: Slack delivers interactions and events over a WebSocket the app opens itself, so
//! no public URL is needed — common in SOC networks.
//!
//! `apps.connections.open` (with the app-level `xapp-` token) gives a `wss://` URL; Slack greets
//! with `hello`, then sends envelopes (`interactive`, `events_api`), each to be acknowledged with
//! `{"envelope_id": …}` within three seconds, and asks the app to reconnect from time to time
//! (`disconnect`). The envelope payloads are exactly the HTTP bodies, so the same handlers run
//! behind both transports.
//!
//! A Slack socket can die without closing (a known failure): the app pings every
//! `SLACK_SOCKET_PING_SECS` and treats two intervals without any frame from Slack (a pong
//! included) as a dead connection, and reconnects. `triage_bot_slack_socket_connected` and
//! `/readyz` say whether it is up; `triage_bot_slack_socket_reconnects_total` counts reconnects.

use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use super::ACK_WITHIN;
use crate::clients::slack::SlackClient;
use crate::pipeline::Ctx;
use crate::shutdown::Shutdown;

enum Next {
    Reconnect,
    Stop,
}

/// Keeps a Socket Mode connection open until shutdown, reconnecting with backoff.
pub async fn run(ctx: Arc<Ctx>, app_client: SlackClient, mut shutdown: Shutdown) {
    let mut backoff = Duration::from_millis(500);
    let mut connections = 0u64;
    loop {
        if shutdown.is_triggered() {
            return;
        }
        if connections > 0 {
            metrics::counter!("triage_bot_slack_socket_reconnects_total").increment(1);
        }
        connections += 1;
        let outcome = connect_once(&ctx, &app_client, &mut shutdown).await;
        ctx.health.set_socket_connected(false);
        match outcome {
            Ok(Next::Stop) => return,
            Ok(Next::Reconnect) => backoff = Duration::from_millis(500),
            Err(e) => {
                tracing::warn!(error = %e, retry_in_secs = backoff.as_secs_f64(), "Socket Mode connection failed");
                tokio::select! {
                    _ = shutdown.wait() => return,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(60));
            }
        }
    }
}

async fn connect_once(
    ctx: &Arc<Ctx>,
    app_client: &SlackClient,
    shutdown: &mut Shutdown,
) -> anyhow::Result<Next> {
    let opened = app_client.call_form("apps.connections.open", &[]).await?;
    let url = opened
        .get("url")
        .and_then(Value::as_str)
        .ok_or_else(|| anyhow::anyhow!("apps.connections.open returned no url"))?;
    let (ws, _) = tokio_tungstenite::connect_async(url).await?;
    tracing::info!("Socket Mode connected");
    ctx.health.set_socket_connected(true);
    let (mut sink, mut source) = ws.split();
    let ping_every = ctx.settings.approval.socket_ping;
    let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + ping_every, ping_every);
    let mut last_heard = tokio::time::Instant::now();
    loop {
        let frame = tokio::select! {
            _ = shutdown.wait() => {
                let _ = sink.send(Message::Close(None)).await;
                return Ok(Next::Stop);
            }
            _ = ping.tick() => {
                if last_heard.elapsed() > ping_every * 2 {
                    tracing::warn!(silent_secs = last_heard.elapsed().as_secs_f64(), "SocketModeSilent: no frame from Slack, not even a pong; reconnecting");
                    return Ok(Next::Reconnect);
                }
                sink.send(Message::Ping(Vec::new().into())).await?;
                continue;
            }
            frame = source.next() => frame,
        };
        last_heard = tokio::time::Instant::now();
        let text = match frame {
            Some(Ok(Message::Text(t))) => t.to_string(),
            Some(Ok(Message::Ping(p))) => {
                sink.send(Message::Pong(p)).await?;
                continue;
            }
            Some(Ok(Message::Close(_))) | None => return Ok(Next::Reconnect),
            Some(Ok(_)) => continue,
            Some(Err(e)) => return Err(e.into()),
        };
        let envelope: Value = match serde_json::from_str(&text) {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(error = %e, "unparseable Socket Mode frame");
                continue;
            }
        };
        match envelope.get("type").and_then(Value::as_str) {
            Some("hello") => tracing::debug!("Socket Mode hello"),
            Some("disconnect") => {
                tracing::info!(reason = ?envelope.get("reason"), "Socket Mode: reconnect requested");
                return Ok(Next::Reconnect);
            }
            Some(kind @ ("interactive" | "events_api")) => {
                let kind = kind.to_string();
                let payload = envelope.get("payload").cloned().unwrap_or(Value::Null);
                let ctx = ctx.clone();
                // Record the decision before acknowledging when it is quick (it usually is: one
                // transaction), so a crash in between makes Slack redeliver instead of losing it.
                let mut work = tokio::spawn(async move { dispatch(&ctx, &kind, payload).await });
                // A modal submission's answer (field errors, a replacement view) rides on the ack.
                let answer = match tokio::time::timeout(ACK_WITHIN, &mut work).await {
                    Ok(Ok(answer)) => answer,
                    _ => None,
                };
                if let Some(id) = envelope.get("envelope_id").and_then(Value::as_str) {
                    let mut ack = json!({ "envelope_id": id });
                    if let Some(payload) = answer {
                        ack["payload"] = payload;
                    }
                    sink.send(Message::Text(ack.to_string().into())).await?;
                }
            }
            other => tracing::debug!(kind = ?other, "ignoring Socket Mode envelope"),
        }
    }
}

/// Handles one envelope's payload; returns what the ack must carry (a modal's answer), if any.
async fn dispatch(ctx: &Ctx, kind: &str, payload: Value) -> Option<Value> {
    match kind {
        "interactive" => match serde_json::from_value(payload) {
            Ok(p) => super::interactions::handle_payload(ctx, &p).await.answer,
            Err(e) => {
                tracing::warn!(error = %e, "malformed Socket Mode interaction");
                None
            }
        },
        _ => {
            if let Err(e) = super::events::handle_json(ctx, &payload).await {
                tracing::error!(error = %e, "cannot handle a Socket Mode event");
            }
            None
        }
    }
}
