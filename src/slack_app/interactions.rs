//! Button clicks: `POST /slack/interactions`.
//!
//! The request is verified (signature and window) before anything is parsed; then the decision
//! is taken in one database transaction — only an authorised person, only for the exact command
//! list and host the buttons were shown for (the hash in the button value), and only the first
//! valid click. Slack gets its 200 at once; the Slack update, case comment and command run are
//! queued in the same transaction and happen after the ack.

use axum::http::{HeaderMap, StatusCode};
use serde_json::json;

use super::blocks::{ACTION_APPROVE, ACTION_DECLINE};
use super::signature;
use crate::app::Ctx;
use crate::clients::slack::wire::InteractionPayload;
use crate::domain::{Decision, IncidentState};
use crate::store::incidents::StateConflict;
use crate::store::{Job, Store, now_text, outbox};

/// What happened to a click (for the log and the tests; Slack only sees 200).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClickOutcome {
    Decided(Decision),
    NotAuthorised,
    Stale,
    AlreadyDecided,
    UnknownIncident,
    Ignored,
}

/// The HTTP handler body: verify, parse, decide.
pub async fn handle(ctx: &Ctx, headers: &HeaderMap, body: &str) -> (StatusCode, String) {
    if let Err(e) = signature::verify(&ctx.settings.slack.signing_secret, headers, body) {
        tracing::warn!(error = %e, "refused a Slack interaction");
        metrics::counter!("triage_bot_slack_requests_refused_total").increment(1);
        return (StatusCode::UNAUTHORIZED, e.to_string());
    }
    let payload = match parse_form_payload(body) {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!(error = %e, "malformed Slack interaction");
            return (StatusCode::BAD_REQUEST, e);
        }
    };
    let outcome = click(ctx, &payload).await;
    tracing::info!(?outcome, "interaction handled");
    ctx.wake.notify_one();
    (StatusCode::OK, String::new())
}

fn parse_form_payload(body: &str) -> Result<InteractionPayload, String> {
    let form: Vec<(String, String)> =
        serde_urlencoded::from_str(body).map_err(|e| format!("body is not form-encoded: {e}"))?;
    let json = form
        .into_iter()
        .find(|(k, _)| k == "payload")
        .map(|(_, v)| v)
        .ok_or("no payload field")?;
    serde_json::from_str(&json).map_err(|e| format!("payload is not a block_actions object: {e}"))
}

async fn click(ctx: &Ctx, p: &InteractionPayload) -> ClickOutcome {
    if p.kind != "block_actions" {
        return ClickOutcome::Ignored;
    }
    let Some(user) = p.user.as_ref().map(|u| u.id.clone()) else {
        return ClickOutcome::Ignored;
    };
    let Some(action) = p
        .actions
        .iter()
        .find(|a| a.action_id == ACTION_APPROVE || a.action_id == ACTION_DECLINE)
    else {
        return ClickOutcome::Ignored;
    };
    let decision = if action.action_id == ACTION_APPROVE {
        Decision::Approve
    } else {
        Decision::Decline
    };
    let value = action.value.clone().unwrap_or_default();
    let (incident_id, hash) = value.split_once(':').unwrap_or((value.as_str(), ""));
    let channel = p
        .container
        .as_ref()
        .and_then(|c| c.channel_id.clone())
        .or_else(|| p.channel.as_ref().map(|c| c.id.clone()))
        .unwrap_or_else(|| ctx.settings.slack.channel.clone());
    match decide(ctx, incident_id, hash, &user, decision, &channel).await {
        Ok(o) => o,
        Err(e) => {
            tracing::error!(error = %e, incident.id = incident_id, "cannot record a decision");
            let _ = ctx
                .slack
                .post_ephemeral(
                    &channel,
                    &user,
                    "triage-bot could not record your decision; please try again.",
                )
                .await;
            ClickOutcome::Ignored
        }
    }
}

/// Takes a decision for `incident_id` by `user`, if they may.
pub async fn decide(
    ctx: &Ctx,
    incident_id: &str,
    hash: &str,
    user: &str,
    decision: Decision,
    channel: &str,
) -> anyhow::Result<ClickOutcome> {
    let Some(incident) = ctx.store.incident(incident_id).await? else {
        return Ok(ClickOutcome::UnknownIncident);
    };
    let authorised = incident.handler_slack_id.as_deref() == Some(user)
        || ctx.settings.slack.approvers.iter().any(|a| a == user);
    let refuse = |text: String| Job::Ephemeral {
        channel: channel.to_string(),
        user: user.to_string(),
        text,
    };
    if !authorised {
        let mut tx = ctx.store.write_tx().await?;
        Store::audit(
            &mut tx,
            incident_id,
            user,
            "DecisionRefused",
            json!({"reason": "not an authorised approver", "decision": decision.as_str()}),
        )
        .await?;
        outbox::enqueue(&mut tx, incident_id, &refuse("You are not an approver for this incident, so your click changed nothing. The tagged handler or a configured approver must decide.".into())).await?;
        tx.commit().await?;
        tracing::warn!(
            incident.id = incident_id,
            slack.user = user,
            "DecisionRefused"
        );
        return Ok(ClickOutcome::NotAuthorised);
    }
    if incident.approval_hash.as_deref() != Some(hash) {
        let mut tx = ctx.store.write_tx().await?;
        Store::audit(
            &mut tx,
            incident_id,
            user,
            "DecisionRefused",
            json!({"reason": "stale or tampered approval value"}),
        )
        .await?;
        outbox::enqueue(
            &mut tx,
            incident_id,
            &refuse(
                "This button no longer matches the proposed commands; nothing was changed.".into(),
            ),
        )
        .await?;
        tx.commit().await?;
        return Ok(ClickOutcome::Stale);
    }
    let next = match decision {
        Decision::Approve => IncidentState::Approved,
        Decision::Decline => IncidentState::Declined,
    };
    // Read before taking the write lock: a pool query inside the transaction could wait on a
    // connection held by another writer that is itself waiting for our lock.
    let commands = ctx.store.commands(incident_id).await?;
    let mut tx = ctx.store.write_tx().await?;
    match Store::transition(&mut tx, incident_id, next).await {
        Ok(()) => {}
        Err(e) if e.is::<StateConflict>() => {
            Store::audit(
                &mut tx,
                incident_id,
                user,
                "DecisionIgnored",
                json!({"reason": "already decided", "state": incident.state}),
            )
            .await?;
            let by = incident
                .decided_by
                .as_deref()
                .map(|u| format!(" by <@{u}>"))
                .unwrap_or_default();
            outbox::enqueue(
                &mut tx,
                incident_id,
                &refuse(format!(
                    "This incident was already decided{by}; your click changed nothing."
                )),
            )
            .await?;
            tx.commit().await?;
            return Ok(ClickOutcome::AlreadyDecided);
        }
        Err(e) => return Err(e),
    }
    let at = now_text();
    sqlx::query("UPDATE incidents SET decision = ?, decided_by = ?, decided_at = ? WHERE id = ?")
        .bind(decision.as_str())
        .bind(user)
        .bind(&at)
        .bind(incident_id)
        .execute(&mut *tx)
        .await?;
    Store::audit(&mut tx, incident_id, user, "ApprovalDecided", json!({"decision": decision.as_str(), "commands": commands.iter().map(|c| &c.text).collect::<Vec<_>>(), "host": incident.host_name, "hash": hash})).await?;
    outbox::enqueue(&mut tx, incident_id, &Job::UpdateApprovalMessage).await?;
    let list: Vec<String> = commands
        .iter()
        .map(|c| format!("{}. `{}`", c.seq, c.text.replace('`', "'")))
        .collect();
    let comment = match decision {
        Decision::Approve => format!(
            "**Approved** by Slack user {user} at {at}. Commands to run on {}:\n\n{}",
            incident.host_name,
            list.join("\n")
        ),
        Decision::Decline => format!(
            "**Declined** by Slack user {user} at {at}. Nothing was run. Proposed commands were:\n\n{}",
            list.join("\n")
        ),
    };
    outbox::enqueue(&mut tx, incident_id, &Job::CaseComment { text: comment }).await?;
    match decision {
        Decision::Approve => outbox::enqueue(&mut tx, incident_id, &Job::Execute).await?,
        Decision::Decline => outbox::enqueue(&mut tx, incident_id, &Job::FinalizeCase).await?,
    }
    tx.commit().await?;
    tracing::info!(
        incident.id = incident_id,
        slack.user = user,
        decision = decision.as_str(),
        "ApprovalDecided"
    );
    metrics::counter!("triage_bot_decisions_total", "decision" => decision.as_str()).increment(1);
    Ok(ClickOutcome::Decided(decision))
}
