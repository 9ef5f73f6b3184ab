//! Start-up recovery: what a crash left half done. Every job is idempotent except a command
//! batch, which is never re-run on its own.

use serde_json::json;

use crate::domain::{CommandKind, IncidentState, Triage};
use crate::pipeline::Ctx;
use crate::pipeline::approval::followup::{ThreadProposal, propose_in_thread};
use crate::store::{Job, Store, outbox};

/// Start-up recovery: jobs that were running when the process died. A command batch is never
/// re-run on its own — its incident becomes `interrupted` and people are told; every other job
/// is idempotent and simply queued again.
pub async fn recover(ctx: &Ctx) -> anyhow::Result<()> {
    let store = &ctx.store;
    for row in store.orphaned_jobs().await? {
        if row.kind != Job::Execute.name() {
            tracing::info!(job.id = row.id, job.kind = %row.kind, incident.id = %row.incident_id, "requeueing job interrupted by a restart");
            store.requeue(row.id).await?;
            continue;
        }
        let state = store.incident(&row.incident_id).await?.map(|i| i.state);
        if state == Some(IncidentState::Approved) {
            // Died before the batch began: nothing ran, so starting it is still the approved action.
            store.requeue(row.id).await?;
            continue;
        }
        // Read before taking the write lock (see `approval::decide::decide`).
        let parent = store.incident(&row.incident_id).await?;
        let mut tx = store.write_tx().await?;
        let interrupted = Store::interrupt_commands(&mut tx, &row.incident_id).await?;
        if state == Some(IncidentState::Executing) {
            Store::transition(&mut tx, &row.incident_id, IncidentState::Interrupted).await?;
        }
        Store::audit(
            &mut tx,
            &row.incident_id,
            "triage-bot",
            "ExecutionInterrupted",
            json!({ "interrupted_commands": interrupted }),
        )
        .await?;
        // What did not complete is offered again, for a fresh approval, in the same thread.
        let unfinished = Store::unfinished_commands(&mut tx, &row.incident_id).await?;
        let mut offered = false;
        if let (Some(parent), false) = (&parent, unfinished.is_empty()) {
            let alert = parent.alert()?;
            let (inv, rem): (Vec<_>, Vec<_>) = unfinished
                .into_iter()
                .partition(|(k, _)| *k == CommandKind::Investigation);
            let proposal = Triage {
                summary: format!(
                    "triage-bot restarted while running the approved commands on {}. These did not complete; {interrupted} of them had started, so it may or may not have taken effect on the host.",
                    parent.host_name
                ),
                investigation: inv.into_iter().map(|(_, t)| t).collect(),
                remediation: rem.into_iter().map(|(_, t)| t).collect(),
                warnings: Vec::new(),
            };
            let key = format!("resume:{}", row.id);
            let offer = ThreadProposal {
                triage: &proposal,
                raw: "",
                source: "resume",
                key,
            };
            offered = propose_in_thread(ctx, &mut tx, parent, &alert, offer)
                .await?
                .is_some();
        }
        let text = format!(
            ":warning: triage-bot restarted while running the approved commands. {interrupted} command(s) were in flight and their outcome is unknown; nothing was run again and the remaining commands were skipped.{}",
            if offered {
                " The commands that did not complete are offered below for a fresh approval."
            } else {
                " Check the host, then triage again if needed."
            }
        );
        outbox::enqueue(
            &mut tx,
            &row.incident_id,
            &Job::ThreadReply { text: text.clone() },
        )
        .await?;
        outbox::enqueue(&mut tx, &row.incident_id, &Job::CaseComment { text }).await?;
        // The approved batch ended here, interrupted; what is offered again is a new proposal
        // with its own times.
        let mut times = None;
        if let Some(incident) = &parent {
            let at = crate::store::now_text();
            times = Some(
                crate::pipeline::approval::times::responded(&mut tx, incident, &at, "interrupted")
                    .await?,
            );
        }
        outbox::enqueue(&mut tx, &row.incident_id, &Job::FinalizeCase).await?;
        Store::fail_in(&mut tx, row.id, "interrupted by a restart").await?;
        tx.commit().await?;
        if let Some(t) = times {
            t.observe();
        }
        tracing::warn!(incident.id = %row.incident_id, interrupted, "ExecutionInterrupted");
    }
    Ok(())
}
