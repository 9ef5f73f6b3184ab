//! Follow-up questions from the Slack thread, answered in the incident's AI conversation, with
//! the question and answer posted to the thread and recorded in the case.
//!
//! When an answer proposes commands, they become a follow-up incident: same alert, same case,
//! same conversation, with its own approval block in the parent's thread — and the same rules
//! (safety gate, approvers, hash binding, first click wins, expiry).
//!
//! A reply starting with `revise:` asks for changes instead ([`revise`]): the instruction goes
//! to the assistant in the same conversation with the proposal as it stands, and the revised
//! proposal is posted the same way, as a follow-up (source `revision`); the one it replaces
//! moves to `superseded` in the same transaction, so its buttons approve nothing any more.

use serde_json::json;

use crate::clients::ai::{self, Purpose};
use crate::domain::{Alert, IncidentId, IncidentState, Triage, incident::approval_hash};
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

/// A request for changes: who asked, when, what, and for which proposal (`None`: the newest
/// one open in the thread).
pub struct RevisionRequest<'a> {
    pub instruction: &'a str,
    pub user: &'a str,
    pub at: &'a str,
    pub target: Option<&'a str>,
}

/// "Request changes": an authorised approver's instruction (the Request changes modal, or a
/// `revise:` thread reply) to revise a proposal in `root`'s thread.
pub async fn revise(
    ctx: &Ctx,
    root: &IncidentRow,
    request: &RevisionRequest<'_>,
    job_id: i64,
) -> Result<(), JobError> {
    let (instruction, user, at) = (request.instruction, request.user, request.at);
    let target = match request.target {
        Some(id) => ctx
            .store
            .incident(id)
            .await
            .map_err(JobError::retry)?
            .filter(|i| i.state == IncidentState::AwaitingApproval),
        None => ctx
            .store
            .open_proposal_in_thread(&root.id)
            .await
            .map_err(JobError::retry)?,
    };
    let Some(target) = target else {
        let text = format!(
            ":information_source: <@{user}> asked for a revision, but the proposal is no longer awaiting approval (decided, expired or revised meanwhile), so there is nothing to revise."
        );
        return ctx
            .store
            .enqueue(&root.id, &Job::ThreadReply { text })
            .await
            .map_err(JobError::retry);
    };
    if let Some(text) = super::decide::summary_only(ctx, &target.id).await {
        let text = format!(":information_source: <@{user}> asked for a revision: {text}");
        return ctx
            .store
            .enqueue(&root.id, &Job::ThreadReply { text })
            .await
            .map_err(JobError::retry);
    }
    if !super::decide::is_authorised(ctx, &target, user).await {
        let mut tx = ctx.store.write_tx().await.map_err(JobError::retry)?;
        Store::audit(
            &mut tx,
            &target.id,
            user,
            "RevisionRefused",
            json!({ "reason": "not an authorised approver", "instruction": instruction }),
        )
        .await
        .map_err(JobError::retry)?;
        let job = Job::Ephemeral {
            channel: target
                .slack_channel
                .clone()
                .unwrap_or_else(|| ctx.settings.slack.channel.clone()),
            user: user.to_string(),
            text: "You are not an approver for this incident, so your revision request changed nothing. The tagged handler or a configured approver may ask for changes.".into(),
        };
        outbox::enqueue(&mut tx, &target.id, &job)
            .await
            .map_err(JobError::retry)?;
        tx.commit().await.map_err(JobError::retry)?;
        return Ok(());
    }
    let alert = target.alert().map_err(JobError::permanent)?;
    let current: Vec<_> = ctx
        .store
        .commands(&target.id)
        .await
        .map_err(JobError::retry)?
        .iter()
        .map(|c| c.proposed())
        .collect();
    let prompt = ctx
        .prompts
        .revision(&alert, &current, instruction)
        .map_err(JobError::permanent)?;
    ai::count_call(Purpose::Revision);
    let reply = ctx
        .assistant
        .ask(&prompt, target.conversation_id.as_deref())
        .await
        .map_err(JobError::from_client)?;
    let text = reply.text.trim().to_string();
    let proposal = parse_answer(&text);

    let mut tx = ctx.store.write_tx().await.map_err(JobError::retry)?;
    Store::audit(
        &mut tx,
        &target.id,
        user,
        "RevisionRequested",
        json!({ "instruction": instruction, "at": at }),
    )
    .await
    .map_err(JobError::retry)?;
    let times = super::times::acknowledged(&mut tx, &target, user, at)
        .await
        .map_err(JobError::retry)?;
    let asked = format!(
        ":memo: <@{user}> asked for changes: {}\n\n{}",
        escape(instruction),
        escape(&text)
    );
    outbox::enqueue(&mut tx, &root.id, &Job::ThreadReply { text: asked })
        .await
        .map_err(JobError::retry)?;
    let mut comment = format!(
        "**Revision requested** by Slack user {user} at {at}: {instruction}\n\n**AI assistant:** {text}"
    );
    if proposal.is_empty() {
        comment.push_str("\n\nThe answer proposed no commands; the proposal stands.");
    } else {
        let key = format!("revision:{job_id}");
        let revised = propose_in_thread(
            ctx,
            &mut tx,
            root,
            &alert,
            ThreadProposal {
                triage: &proposal,
                raw: &text,
                source: "revision",
                key,
            },
        )
        .await
        .map_err(JobError::retry)?;
        if let Some(new_id) = revised {
            match Store::transition(&mut tx, &target.id, IncidentState::Superseded).await {
                Ok(()) => {
                    Store::record_superseded(&mut tx, &target.id, &new_id.0)
                        .await
                        .map_err(JobError::retry)?;
                    Store::audit(
                        &mut tx,
                        &target.id,
                        user,
                        "ProposalSuperseded",
                        json!({ "by": new_id.0 }),
                    )
                    .await
                    .map_err(JobError::retry)?;
                    outbox::enqueue(&mut tx, &target.id, &Job::UpdateApprovalMessage)
                        .await
                        .map_err(JobError::retry)?;
                    outbox::enqueue(&mut tx, &target.id, &Job::FinalizeCase)
                        .await
                        .map_err(JobError::retry)?;
                    comment.push_str(&format!(
                        "\n\nThe proposal `{}` is **superseded** by the revised proposal `{new_id}`; it can no longer be approved.",
                        target.id
                    ));
                }
                // Decided while the assistant was revising: the decision stands, and the revision
                // is offered as one more proposal under the same rules.
                Err(e) if e.is::<crate::store::incidents::StateConflict>() => {
                    comment.push_str(&format!(
                        "\n\nThe proposal `{}` was decided while the assistant revised it; the revision `{new_id}` is offered as a further proposal.",
                        target.id
                    ));
                }
                Err(e) => return Err(JobError::retry(e)),
            }
        }
    }
    outbox::enqueue(&mut tx, &root.id, &Job::CaseComment { text: comment })
        .await
        .map_err(JobError::retry)?;
    tx.commit().await.map_err(JobError::retry)?;
    times.observe();
    ctx.wake.notify_one();
    tracing::info!(incident.id = %target.id, slack.user = user, "RevisionRequested");
    Ok(())
}

/// What a follow-up proposes, and why.
pub struct ThreadProposal<'a> {
    pub triage: &'a Triage,
    /// The assistant's answer, kept with the proposal (empty when there is none).
    pub raw: &'a str,
    /// `followup` (an answer in the thread), `resume` (left unfinished by a crash) or
    /// `revision` (a revision an analyst asked for).
    pub source: &'a str,
    /// Makes the proposal idempotent: a key is proposed at most once per parent.
    pub key: String,
}

/// Records commands as a follow-up incident awaiting approval in `parent`'s thread: commands an
/// answer proposed (`source` "followup") or those a crash left unfinished (`source` "resume").
/// `key` makes it idempotent: the same key never proposes twice. The new incident's id if it
/// was recorded now.
pub async fn propose_in_thread(
    ctx: &Ctx,
    tx: &mut sqlx::AnyConnection,
    parent: &IncidentRow,
    alert: &Alert,
    proposal: ThreadProposal<'_>,
) -> anyhow::Result<Option<IncidentId>> {
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
        return Ok(None);
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
    Ok(Some(id))
}
