//! Follow-up questions from the Slack thread, answered in the incident's AI conversation, with
//! the question and answer posted to the thread and recorded in the case.
//!
//! When an answer proposes commands, they become a follow-up incident: same alert, same case,
//! same conversation, with its own approval block in the parent's thread — and the same rules
//! (safety gate, approvers, hash binding, first click wins, expiry).

use serde_json::json;

use crate::clients::ai::{self, Purpose};
use crate::domain::{Alert, IncidentId, Triage, incident::approval_hash};
use crate::pipeline::triage::{parser::parse_answer, safety};
use crate::pipeline::{Ctx, JobError};
use crate::store::incidents::FollowUpRecord;
use crate::store::{IncidentRow, Job, Store, outbox};
use crate::text::escape;

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
    ai::count_call(Purpose::FollowUp);
    let reply = ctx
        .assistant
        .ask(&prompt, incident.conversation_id.as_deref())
        .await
        .map_err(JobError::from_client)?;
    let text = reply.text.trim().to_string();
    let proposal = parse_answer(&text);

    let mut tx = ctx.store.write_tx().await.map_err(JobError::retry)?;
    let asked = format!("<@{user}> asked: {}\n\n{}", escape(question), escape(&text));
    outbox::enqueue(&mut tx, &incident.id, &Job::ThreadReply { text: asked })
        .await
        .map_err(JobError::retry)?;
    let comment =
        format!("**Question from Slack user {user}:** {question}\n\n**AI assistant:** {text}");
    outbox::enqueue(&mut tx, &incident.id, &Job::CaseComment { text: comment })
        .await
        .map_err(JobError::retry)?;
    if !proposal.is_empty() {
        propose_in_thread(
            ctx,
            &mut tx,
            incident,
            &alert,
            ThreadProposal {
                triage: &proposal,
                raw: &text,
                source: "followup",
                key: format!("followup:{job_id}"),
            },
        )
        .await
        .map_err(JobError::retry)?;
    }
    tx.commit().await.map_err(JobError::retry)?;
    Ok(())
}

/// What a follow-up proposes, and why.
pub struct ThreadProposal<'a> {
    pub triage: &'a Triage,
    /// The assistant's answer, kept with the proposal (empty when there is none).
    pub raw: &'a str,
    /// `followup` (an answer in the thread) or `resume` (left unfinished by a crash).
    pub source: &'a str,
    /// Makes the proposal idempotent: a key is proposed at most once per parent.
    pub key: String,
}

/// Records commands as a follow-up incident awaiting approval in `parent`'s thread: commands an
/// answer proposed (`source` "followup") or those a crash left unfinished (`source` "resume").
/// `key` makes it idempotent: the same key never proposes twice. True if it was recorded now.
pub async fn propose_in_thread(
    ctx: &Ctx,
    tx: &mut sqlx::SqliteConnection,
    parent: &IncidentRow,
    alert: &Alert,
    proposal: ThreadProposal<'_>,
) -> anyhow::Result<bool> {
    let id = IncidentId::new();
    let mut commands = proposal.triage.commands();
    safety::classify_all(&ctx.settings.triage.safety, alert, &mut commands);
    let hash = approval_hash(&id, &alert.host_name, &commands);
    let record = FollowUpRecord {
        id: &id,
        parent,
        host: &alert.host_name,
        key: &proposal.key,
        source: proposal.source,
        triage: proposal.triage,
        raw: proposal.raw,
        approval_hash: &hash,
    };
    let inserted = Store::insert_follow_up(tx, &record).await?;
    if !inserted {
        return Ok(false);
    }
    Store::insert_commands(tx, &id.0, &commands).await?;
    Store::audit(
        tx,
        &id.0,
        "triage-bot",
        "FollowUpProposed",
        json!({ "parent": parent.id, "source": proposal.source, "commands": commands.len() }),
    )
    .await?;
    outbox::enqueue(tx, &id.0, &Job::PostApproval).await?;
    tracing::info!(incident.id = %id, parent = %parent.id, source = proposal.source, commands = commands.len(), "FollowUpProposed");
    Ok(true)
}
