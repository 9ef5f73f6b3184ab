//! Start-up recovery: what a crash left half done. Every job is idempotent except a command
//! batch, which is never re-run on its own.

use serde_json::json;

use crate::domain::IncidentState;
use crate::pipeline::Ctx;
use crate::store::{Job, Store, outbox};

/// Start-up recovery: jobs that were running when the process died. A command batch is never
/// re-run on its own: one that had begun is handed to `Job::ResumeInterrupted` (the execute
/// stage collects what was running from the host, and offers what never started for a fresh
/// approval); every other job is idempotent and simply queued again.
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
        let mut tx = store.write_tx().await?;
        Store::audit(
            &mut tx,
            &row.incident_id,
            "triage-bot",
            "ExecutionCutShort",
            json!({ "job": row.id, "state": state.map(|s| s.to_string()) }),
        )
        .await?;
        if state == Some(IncidentState::Executing) {
            outbox::enqueue(&mut tx, &row.incident_id, &Job::ResumeInterrupted).await?;
        }
        Store::fail_in(&mut tx, row.id, "interrupted by a restart").await?;
        tx.commit().await?;
        tracing::warn!(incident.id = %row.incident_id, "ExecutionCutShort");
    }
    Ok(())
}
