//! Triage: ask the assistant about an alert, parse the answer, and work out who handles it.
//!
//! The outcome is one transaction: `awaiting_approval` with the exact command list (and the
//! approval hash that binds it), or `triage_failed` with the raw answer and the reason — and in
//! both cases the Slack message and the case are queued, so nothing is dropped silently.
//!
//! The parts: [`prompt`] (templates and the alert budget), [`parser`] (answer → commands),
//! [`safety`] (the gate every proposed command passes) and [`handler`] (who is tagged). The
//! assistant itself is `crate::clients::ai`; its settings are `crate::config::TriageSettings`.

pub mod enrich;
pub mod handler;
pub mod parser;
pub mod prompt;
pub mod safety;

use serde_json::json;

use crate::clients::Retryable;
use crate::clients::ai::{self, Purpose};
use crate::domain::{Alert, HandlerTag, IncidentState, Triage, incident::approval_hash};
use crate::pipeline::{Ctx, JobError, MAX_ATTEMPTS};
use crate::store::incidents::{IncidentField, TriageRecord};
use crate::store::{IncidentRow, Job, Store, outbox};

/// Runs the triage job of one incident.
pub async fn run(ctx: &Ctx, row: &IncidentRow, attempt: i64) -> Result<(), JobError> {
    let alert = row.alert().map_err(JobError::permanent)?;
    match row.state {
        IncidentState::Received => {
            let mut tx = ctx.store.write_tx().await.map_err(JobError::retry)?;
            Store::transition(&mut tx, &row.id, IncidentState::Triaging)
                .await
                .map_err(JobError::permanent)?;
            tx.commit().await.map_err(JobError::retry)?;
        }
        IncidentState::Triaging => {} // a retry
        other => {
            tracing::info!(incident.id = %row.id, state = ?other, "triage already done");
            return Ok(());
        }
    }

    let conversation = match &row.conversation_id {
        Some(c) => Some(c.clone()),
        None => match ctx
            .assistant
            .start_conversation(&format!(
                "triage-bot: {} on {}",
                alert.rule_name, alert.host_name
            ))
            .await
        {
            Ok(Some(id)) => {
                // Persisted before asking, so a retried job continues the same conversation.
                ctx.store
                    .set_field(&row.id, IncidentField::ConversationId, Some(&id))
                    .await
                    .map_err(JobError::retry)?;
                Some(id)
            }
            // The backend makes the conversation with the first answer.
            Ok(None) => None,
            // Older Kibana, or no privilege: triage still works; the non-streamed answer carries an id.
            Err(e) => {
                tracing::warn!(incident.id = %row.id, error = %e, "cannot create an assistant conversation; continuing without");
                None
            }
        },
    };

    let enrichment = enrich::for_incident(ctx, &row.id, &alert).await;
    let prompt = ctx
        .prompts
        .triage_with(&alert, enrichment.as_ref().map(enrich::Enrichment::as_data))
        .map_err(JobError::permanent)?;
    ai::count_call(Purpose::Triage);
    let reply = match ctx
        .assistant
        .ask_triage(&prompt, conversation.as_deref())
        .await
    {
        Ok(r) => r,
        Err(e) if e.is_retryable() && attempt < MAX_ATTEMPTS => {
            return Err(JobError::retry(e));
        }
        Err(e) => {
            fail(
                ctx,
                row,
                &format!("the AI assistant could not be asked: {e}"),
                None,
            )
            .await?;
            return Ok(());
        }
    };
    if let Some(id) = &reply.conversation_id
        && conversation.as_deref() != Some(id.as_str())
    {
        ctx.store
            .set_field(&row.id, IncidentField::ConversationId, Some(id))
            .await
            .map_err(JobError::retry)?;
    }
    let triage = parser::parse_answer(&reply.text);
    if triage.is_empty() {
        let reason = format!(
            "the assistant's answer has no commands ({})",
            triage.warnings.join("; ")
        );
        fail(ctx, row, &reason, Some(&reply.text)).await?;
        return Ok(());
    }
    // A policy route naming a handler (user or user group) decides; only without one is the
    // handler looked up (routing table, the assistant, Slack).
    let routed = crate::pipeline::policy::route_of(&ctx.store, &row.id)
        .await
        .handler;
    let handler = match routed {
        Some(h) => HandlerTag {
            slack_id: Some(h),
            name: None,
        },
        None => resolve_handler(ctx, &alert, attempt).await?,
    };
    succeed(ctx, row, &alert, &triage, &reply.text, &handler).await
}

/// Who handles the alert. A lookup a retry can fix (Slack or the assistant briefly failing) is
/// tried again here a few times, then by retrying the job; only the job's last attempt tags
/// whoever can be found — an untagged card would leave the rightful handler unable to approve.
async fn resolve_handler(ctx: &Ctx, alert: &Alert, attempt: i64) -> Result<HandlerTag, JobError> {
    let last_attempt = attempt >= MAX_ATTEMPTS - 1;
    let mut wait = ctx.settings.retry_base;
    for _ in 0..3 {
        match handler::resolve_cached(ctx, alert, !last_attempt).await {
            Ok(tag) => return Ok(tag),
            Err(e) => {
                tracing::warn!(error = %e.0, "cannot resolve the handler yet; trying again");
                tokio::time::sleep(wait).await;
                wait *= 2;
            }
        }
    }
    handler::resolve_cached(ctx, alert, !last_attempt)
        .await
        .map_err(|e| JobError::retry(format!("cannot resolve the handler yet: {}", e.0)))
}

async fn succeed(
    ctx: &Ctx,
    row: &IncidentRow,
    alert: &Alert,
    triage: &Triage,
    raw: &str,
    handler: &HandlerTag,
) -> Result<(), JobError> {
    let mut commands = triage.commands();
    safety::classify_all(&ctx.settings.triage.safety, alert, &mut commands);
    let hash = approval_hash(&row.incident_id(), &alert.host_name, &commands);
    let mut tx = ctx.store.write_tx().await.map_err(JobError::retry)?;
    Store::transition(&mut tx, &row.id, IncidentState::AwaitingApproval)
        .await
        .map_err(JobError::permanent)?;
    let record = TriageRecord {
        triage,
        raw,
        handler_name: handler.name.as_deref(),
        handler_slack_id: handler.slack_id.as_deref(),
        approval_hash: &hash,
    };
    Store::record_triage(&mut tx, &row.id, &record)
        .await
        .map_err(JobError::retry)?;
    Store::insert_commands(&mut tx, &row.id, &commands)
        .await
        .map_err(JobError::retry)?;
    Store::audit(&mut tx, &row.id, "assistant", "TriageCompleted", json!({"investigation": triage.investigation.len(), "remediation": triage.remediation.len(), "handler": handler.slack_id.clone().or(handler.name.clone()), "warnings": triage.warnings})).await.map_err(JobError::retry)?;
    outbox::enqueue(&mut tx, &row.id, &Job::CreateCase)
        .await
        .map_err(JobError::retry)?;
    outbox::enqueue(&mut tx, &row.id, &Job::PostApproval)
        .await
        .map_err(JobError::retry)?;
    tx.commit().await.map_err(JobError::retry)?;
    tracing::info!(incident.id = %row.id, alert.id = %alert.id, host.name = %alert.host_name, commands = commands.len(), "TriageCompleted");
    Ok(())
}

/// Records a failed triage with its reason (and the raw answer, if any), and still tells Slack
/// and the case.
async fn fail(
    ctx: &Ctx,
    row: &IncidentRow,
    reason: &str,
    raw: Option<&str>,
) -> Result<(), JobError> {
    let mut tx = ctx.store.write_tx().await.map_err(JobError::retry)?;
    Store::transition(&mut tx, &row.id, IncidentState::TriageFailed)
        .await
        .map_err(JobError::permanent)?;
    Store::record_triage_failure(&mut tx, &row.id, raw, reason).await?;
    Store::audit(
        &mut tx,
        &row.id,
        "triage-bot",
        "TriageFailed",
        json!({ "reason": reason }),
    )
    .await
    .map_err(JobError::retry)?;
    outbox::enqueue(&mut tx, &row.id, &Job::CreateCase)
        .await
        .map_err(JobError::retry)?;
    outbox::enqueue(&mut tx, &row.id, &Job::PostApproval)
        .await
        .map_err(JobError::retry)?;
    tx.commit().await.map_err(JobError::retry)?;
    tracing::warn!(incident.id = %row.id, reason, "TriageFailed");
    Ok(())
}
