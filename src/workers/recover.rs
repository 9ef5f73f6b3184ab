//! Recovery: what a crash left half done, at start-up and — with several replicas — whenever a
//! replica is gone. Every job is idempotent except a command batch, which is never re-run on its
//! own.

use std::sync::Arc;

use serde_json::json;

use crate::domain::IncidentState;
use crate::pipeline::Ctx;
use crate::shutdown::Shutdown;
use crate::store::{Backend, Job, OutboxRow, Store, outbox};

/// Recovers the jobs that were running in a replica that is gone (at start-up on SQLite: the
/// process before this one). A command batch is never re-run on its own: one that had begun is
/// handed to `Job::ResumeInterrupted` (the execute stage collects what was running from the host,
/// and offers what never started for a fresh approval); every other job is idempotent and simply
/// queued again. Of two survivors, exactly one takes over each job.
pub async fn recover(ctx: &Ctx) -> anyhow::Result<()> {
    for owner in ctx.store.running_job_owners().await? {
        if ctx.replica.is_alive(owner.as_deref()).await? {
            continue;
        }
        let rows = ctx.store.take_over_jobs(owner.as_deref()).await?;
        if !rows.is_empty() && owner.is_some() {
            tracing::warn!(
                replica = owner.as_deref().unwrap_or_default(),
                jobs = rows.len(),
                "ReplicaGone: taking over its running jobs"
            );
        }
        for row in rows {
            recover_job(ctx, row).await?;
        }
    }
    Ok(())
}

/// With several replicas (PostgreSQL), looks for replicas that are gone every
/// `WORKER_TICK_SECS` until shutdown. On SQLite there is one replica, recovered at start-up.
pub async fn sweep(ctx: Arc<Ctx>, mut shutdown: Shutdown) {
    if ctx.store.backend() == Backend::Sqlite {
        return;
    }
    loop {
        tokio::select! {
            _ = shutdown.wait() => return,
            _ = tokio::time::sleep(ctx.settings.worker_tick) => {}
        }
        if let Err(e) = recover(&ctx).await {
            tracing::error!(error = %e, "recovery of a gone replica's jobs failed");
        }
    }
}

async fn recover_job(ctx: &Ctx, row: OutboxRow) -> anyhow::Result<()> {
    let store = &ctx.store;
    if row.kind != Job::Execute.name() {
        tracing::info!(job.id = row.id, job.kind = %row.kind, incident.id = %row.incident_id, "requeueing job interrupted by a restart");
        store.requeue(row.id).await?;
        ctx.wake.notify_one();
        return Ok(());
    }
    let state = store.incident(&row.incident_id).await?.map(|i| i.state);
    if state == Some(IncidentState::Approved) {
        // Died before the batch began: nothing ran, so starting it is still the approved action.
        store.requeue(row.id).await?;
        ctx.wake.notify_one();
        return Ok(());
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
    ctx.wake.notify_one();
    Ok(())
}
