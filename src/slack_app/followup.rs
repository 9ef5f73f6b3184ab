//! Follow-up questions from the Slack thread, answered in the incident's AI conversation, with
//! the question and answer posted to the thread and recorded in the case.
//!
//! When an answer proposes commands, they become a follow-up incident: same alert, same case,
//! same conversation, with its own approval block in the parent's thread — and the same rules
//! (safety gate, approvers, hash binding, first click wins, expiry).

use serde_json::json;

use crate::app::Ctx;
use crate::domain::{Alert, IncidentId, Triage, incident::approval_hash};
use crate::store::{IncidentRow, Job, Store, now_text, outbox};
use crate::triage::{parser::parse_answer, safety};
use crate::workers::JobError;

pub async fn answer(
    ctx: &Ctx,
    incident: &IncidentRow,
    question: &str,
    user: &str,
    job_id: i64,
) -> Result<(), JobError> {
    let alert = incident.alert().map_err(JobError::permanent)?;
    let prompt = ctx
        .prompts
        .followup(&alert, question)
        .map_err(JobError::permanent)?;
    let reply = ctx
        .assistant
        .ask(&prompt, incident.conversation_id.as_deref())
        .await
        .map_err(JobError::from_client)?;
    let text = reply.text.trim().to_string();
    let proposal = parse_answer(&text);

    let mut tx = ctx.store.write_tx().await.map_err(JobError::retry)?;
    let asked = format!(
        "<@{user}> asked: {}\n\n{}",
        super::blocks::escape(question),
        super::blocks::escape(&text)
    );
    outbox::enqueue(&mut tx, &incident.id, &Job::ThreadReply { text: asked })
        .await
        .map_err(JobError::retry)?;
    let comment =
        format!("**Question from Slack user {user}:** {question}\n\n**AI assistant:** {text}");
    outbox::enqueue(&mut tx, &incident.id, &Job::CaseComment { text: comment })
        .await
        .map_err(JobError::retry)?;
    if !proposal.is_empty() {
        propose(ctx, &mut tx, incident, &alert, &proposal, &text, job_id).await?;
    }
    tx.commit().await.map_err(JobError::retry)?;
    Ok(())
}

/// Records the commands of a thread answer as a follow-up incident awaiting approval.
async fn propose(
    ctx: &Ctx,
    tx: &mut sqlx::SqliteConnection,
    parent: &IncidentRow,
    alert: &Alert,
    proposal: &Triage,
    raw: &str,
    job_id: i64,
) -> Result<(), JobError> {
    let id = IncidentId::new();
    let mut commands = proposal.commands();
    safety::classify_all(&ctx.settings.triage.safety, alert, &mut commands);
    let hash = approval_hash(&id, &alert.host_name, &commands);
    let now = now_text();
    // The job id makes the follow-up's alert key unique: a re-run job cannot propose twice.
    let inserted = sqlx::query(
        "INSERT INTO incidents (id, alert_id, source, state, host_name, alert_json, triage_json, raw_answer,
            handler_name, handler_slack_id, conversation_id, approval_hash, case_id, case_version,
            parent_incident, thread_root_ts, created_at, updated_at)
         VALUES (?, ?, 'followup', 'awaiting_approval', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT(alert_id) DO NOTHING",
    )
    .bind(&id.0)
    .bind(format!("{}#followup:{job_id}", parent.alert_id))
    .bind(&alert.host_name)
    .bind(&parent.alert_json)
    .bind(serde_json::to_string(proposal).map_err(JobError::permanent)?)
    .bind(raw)
    .bind(&parent.handler_name)
    .bind(&parent.handler_slack_id)
    .bind(&parent.conversation_id)
    .bind(&hash)
    .bind(&parent.case_id)
    .bind(&parent.case_version)
    .bind(&parent.id)
    .bind(parent.thread_ts())
    .bind(&now)
    .bind(&now)
    .execute(&mut *tx)
    .await
    .map_err(JobError::retry)?
    .rows_affected();
    if inserted == 0 {
        return Ok(());
    }
    Store::insert_commands(tx, &id.0, &commands)
        .await
        .map_err(JobError::retry)?;
    Store::audit(
        tx,
        &id.0,
        "assistant",
        "FollowUpProposed",
        json!({ "parent": parent.id, "commands": commands.len() }),
    )
    .await
    .map_err(JobError::retry)?;
    outbox::enqueue(tx, &id.0, &Job::PostApproval)
        .await
        .map_err(JobError::retry)?;
    tracing::info!(incident.id = %id, parent = %parent.id, commands = commands.len(), "FollowUpProposed");
    Ok(())
}
