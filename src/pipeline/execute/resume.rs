//! What follows a crash in the middle of an approved batch (`Job::ResumeInterrupted`, queued by
//! start-up recovery): no command is ever run again on its own.
//!
//! - A command that was **running** was recorded with its shell and command ids before it was
//!   sent (`run_batch` → `CommandRunner::run_tracked`); the host still holds it (a WinRS shell
//!   lives until its idle timeout), so its outcome is collected from there
//!   (`CommandRunner::reattach`) and recorded like any result.
//! - Only when the host no longer has it (or the runner cannot reattach) is its outcome
//!   **unknown**: recorded `interrupted` with the reason, named apart with a warning, and never
//!   part of a plain Yes again.
//! - A command marked running whose ids were never recorded was never sent (the ids are written
//!   first), so it counts as not started.
//! - What had **not started** is offered again, for a fresh approval, in the same thread.

use serde_json::json;

use super::result_text;
use crate::domain::{CommandKind, CommandStatus, IncidentState, Triage};
use crate::pipeline::approval::followup::{ThreadProposal, propose_in_thread};
use crate::pipeline::{Ctx, JobError};
use crate::runners::{RemoteCommand, RunOutput, Target};
use crate::store::commands::CommandRow;
use crate::store::{IncidentRow, Job, Store, outbox};

/// Resumes an incident whose batch a crash cut short. Idempotent: once the incident has left
/// `executing` there is nothing to do.
pub async fn resume_interrupted(ctx: &Ctx, incident: &IncidentRow) -> Result<(), JobError> {
    if incident.state != IncidentState::Executing {
        return Ok(());
    }
    let host = incident.host_name.clone();
    let target = Target::of_incident(incident);
    // Nothing else may run on this host while its last batch's outcome is being collected.
    let _held = super::hold_host(ctx, &host).await?;
    let commands = ctx
        .store
        .commands(&incident.id)
        .await
        .map_err(JobError::retry)?;
    let mut collected = 0usize;
    let mut unknown: Vec<&CommandRow> = Vec::new();
    for cmd in commands
        .iter()
        .filter(|c| c.status == CommandStatus::Running)
    {
        let remote: Option<RemoteCommand> = cmd
            .remote
            .as_deref()
            .and_then(|r| serde_json::from_str(r).ok());
        let outcome = match &remote {
            None if ctx.runner.can_reattach(&host) => {
                // Its ids are recorded before it is sent, so it never reached the host.
                ctx.store
                    .command_not_sent(&incident.id, cmd.seq)
                    .await
                    .map_err(JobError::retry)?;
                continue;
            }
            _ => match remote
                .as_ref()
                .and_then(|r| ctx.runner.reattach(&target, r))
            {
                Some(run) => run.await.map_err(|e| e.message),
                None => {
                    Err("this runner cannot collect a command's outcome after a restart".into())
                }
            },
        };
        match outcome {
            Ok(out) => {
                record_collected(ctx, incident, cmd, out).await?;
                collected += 1;
            }
            Err(reason) => {
                let reason = format!(
                    "outcome unknown: triage-bot stopped while this command ran, and {reason}; it was not re-run"
                );
                tracing::warn!(incident.id = %incident.id, host.name = %host, command.seq = cmd.seq, error = %reason, "CommandOutcomeUnknown");
                ctx.store
                    .command_outcome_unknown(&incident.id, cmd.seq, &reason)
                    .await
                    .map_err(JobError::retry)?;
                unknown.push(cmd);
            }
        }
    }
    finish(ctx, incident, collected, &unknown)
        .await
        .map_err(JobError::retry)
}

/// Records a result collected after the restart, and posts it like any other.
async fn record_collected(
    ctx: &Ctx,
    incident: &IncidentRow,
    cmd: &CommandRow,
    out: RunOutput,
) -> Result<(), JobError> {
    let result = super::ran(out);
    ctx.store
        .finish_command(&incident.id, cmd.seq, &result)
        .await
        .map_err(JobError::retry)?;
    tracing::info!(incident.id = %incident.id, host.name = %incident.host_name, command.seq = cmd.seq, exit_code = ?result.exit_code, "CommandOutcomeCollected");
    let started = cmd
        .started_at
        .as_deref()
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok());
    let took = started
        .map(|t| (chrono::Utc::now() - t.with_timezone(&chrono::Utc)).to_std())
        .and_then(Result::ok)
        .unwrap_or_default();
    let text = result_text(cmd.seq, &cmd.text, &incident.host_name, &result, took);
    let note = "collected from the host after triage-bot restarted; output printed before the restart may be missing";
    ctx.store
        .enqueue(
            &incident.id,
            &Job::ThreadReply {
                text: format!("{}\n_({note})_", text.slack),
            },
        )
        .await
        .map_err(JobError::retry)?;
    ctx.store
        .enqueue(
            &incident.id,
            &Job::CaseComment {
                text: format!("{}\n\n_({note})_", text.case),
            },
        )
        .await
        .map_err(JobError::retry)?;
    Ok(())
}

/// One transaction: the rest skipped, the incident `interrupted`, the audit, the notices, and
/// a fresh approval for what never started.
async fn finish(
    ctx: &Ctx,
    incident: &IncidentRow,
    collected: usize,
    unknown: &[&CommandRow],
) -> anyhow::Result<()> {
    let alert = incident.alert()?;
    let mut tx = ctx.store.write_tx().await?;
    Store::interrupt_commands(&mut tx, &incident.id).await?;
    Store::transition(&mut tx, &incident.id, IncidentState::Interrupted).await?;
    let not_started = Store::unfinished_commands(&mut tx, &incident.id).await?;
    Store::audit(
        &mut tx,
        &incident.id,
        "triage-bot",
        "ExecutionInterrupted",
        json!({ "collected": collected, "outcome_unknown": unknown.iter().map(|c| c.seq).collect::<Vec<_>>(),
                "not_started": not_started.len() }),
    )
    .await?;
    let unknown_list = unknown
        .iter()
        .map(|c| {
            format!(
                "{}. `{}`",
                c.seq,
                crate::text::escape(&c.text.replace('`', "'"))
            )
        })
        .collect::<Vec<_>>()
        .join(", ");
    let mut offered = false;
    if !not_started.is_empty() {
        let (inv, rem): (Vec<_>, Vec<_>) = not_started
            .iter()
            .cloned()
            .partition(|(k, _)| *k == CommandKind::Investigation);
        let mut warnings = Vec::new();
        if !unknown.is_empty() {
            warnings.push(format!(
                "Outcome unknown, not offered again (check the host first): {unknown_list}"
            ));
        }
        let proposal = Triage {
            summary: format!(
                "triage-bot restarted while running the approved commands on {}. These {} command(s) had not started; approving runs them, nothing else.",
                incident.host_name,
                not_started.len()
            ),
            investigation: inv.into_iter().map(|(_, t)| t).collect(),
            remediation: rem.into_iter().map(|(_, t)| t).collect(),
            warnings,
        };
        let offer = ThreadProposal {
            triage: &proposal,
            raw: "",
            source: "resume",
            key: format!("resume:{}", incident.id),
        };
        offered = propose_in_thread(ctx, &mut tx, incident, &alert, offer)
            .await?
            .is_some();
    }
    let mut text = ":warning: triage-bot restarted while running the approved commands. Nothing was run again on its own.".to_string();
    if collected > 0 {
        text.push_str(&format!(
            " {collected} command(s) that were running finished on the host; their results were collected (above)."
        ));
    }
    if !unknown.is_empty() {
        text.push_str(&format!(
            " :grey_question: Outcome unknown for {}: {unknown_list} — it may or may not have taken effect on the host; check the host before running it again.",
            unknown.len()
        ));
    }
    if offered {
        text.push_str(&format!(
            " {} command(s) had not started; they are offered below for a fresh approval.",
            not_started.len()
        ));
    } else if not_started.is_empty() {
        text.push_str(" No approved command was left unstarted.");
    }
    outbox::enqueue(
        &mut tx,
        &incident.id,
        &Job::ThreadReply { text: text.clone() },
    )
    .await?;
    outbox::enqueue(&mut tx, &incident.id, &Job::CaseComment { text }).await?;
    // The approved batch ended here, interrupted; what is offered again is a new proposal with
    // its own times.
    let times = crate::pipeline::approval::times::responded(
        &mut tx,
        incident,
        &crate::store::now_text(),
        "interrupted",
    )
    .await?;
    outbox::enqueue(&mut tx, &incident.id, &Job::FinalizeCase).await?;
    tx.commit().await?;
    times.observe();
    tracing::warn!(incident.id = %incident.id, collected, unknown = unknown.len(), not_started = not_started.len(), "ExecutionInterrupted");
    Ok(())
}
