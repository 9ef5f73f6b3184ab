//! Background workers: the outbox runner that performs queued side effects with retries, and
//! the start-up recovery that makes a restart safe.
//!
//! Jobs run concurrently across incidents and lanes (bounded), strictly in order within one
//! incident's lane. A failed job is retried with exponential backoff when the error says a retry
//! can help, and otherwise kept as `failed` with its error and reported.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use shutdown::Shutdown;
use tokio::task::JoinSet;
use tracing::Instrument;

pub mod expiry;
pub mod shutdown;

use crate::app::Ctx;
use crate::domain::IncidentState;
use crate::slack_app::followup::ThreadProposal;
use crate::store::{Job, OutboxRow, Store, outbox};

/// Attempts before a retryable job is given up.
pub const MAX_ATTEMPTS: i64 = 8;
const MAX_CONCURRENT_JOBS: usize = 8;

/// Why a job did not complete, and whether trying again can help.
#[derive(Debug)]
pub struct JobError {
    pub retryable: bool,
    pub message: String,
    /// Wait at least this long before the retry (e.g. a Retry-After).
    pub retry_after: Option<Duration>,
}

impl JobError {
    pub fn retry(e: impl std::fmt::Display) -> Self {
        Self {
            retryable: true,
            message: e.to_string(),
            retry_after: None,
        }
    }

    pub fn permanent(e: impl std::fmt::Display) -> Self {
        Self {
            retryable: false,
            message: format!("{e:#}"),
            retry_after: None,
        }
    }

    /// Classifies a client error by its own `is_retryable`.
    pub fn from_client<E: crate::clients::Retryable + std::fmt::Display>(e: E) -> Self {
        Self {
            retryable: e.is_retryable(),
            message: e.to_string(),
            retry_after: None,
        }
    }
}

/// Exponential backoff from the configured base, capped at five minutes.
fn backoff(base: Duration, attempt: i64) -> Duration {
    base.saturating_mul(1u32 << attempt.clamp(0, 12) as u32)
        .min(Duration::from_secs(300))
}

/// Runs the outbox until shutdown.
pub async fn run_outbox(ctx: Arc<Ctx>, mut shutdown: Shutdown) {
    let mut running: JoinSet<()> = JoinSet::new();
    loop {
        // Arm the wake-up before looking, so a job queued while we look is not missed.
        let wake = ctx.wake.notified();
        tokio::pin!(wake);
        wake.as_mut().enable();
        while running.len() < MAX_CONCURRENT_JOBS && !shutdown.is_triggered() {
            match ctx.store.claim_next().await {
                Ok(Some(row)) => {
                    let ctx = ctx.clone();
                    running.spawn(async move { handle(&ctx, row).await });
                }
                Ok(None) => break,
                Err(e) => {
                    tracing::error!(error = %e, "cannot claim outbox work");
                    break;
                }
            }
        }
        tokio::select! {
            _ = shutdown.wait() => break,
            _ = &mut wake => {}
            Some(_) = running.join_next(), if !running.is_empty() => {}
            _ = tokio::time::sleep(ctx.settings.worker_tick) => {}
        }
    }
    // Let in-flight jobs finish so their results are recorded.
    while running.join_next().await.is_some() {}
}

async fn handle(ctx: &Ctx, row: OutboxRow) {
    let span = tracing::info_span!("job", job.id = row.id, job.kind = %row.kind, incident.id = %row.incident_id, attempt = row.attempts);
    let result = dispatch(ctx, &row).instrument(span).await;
    let store = &ctx.store;
    let outcome = match result {
        Ok(()) => store.complete(row.id).await,
        // Records and messages must not be lost to an outage: retry those for as long as it
        // lasts (the backoff is capped); other work gives up after MAX_ATTEMPTS.
        Err(e)
            if e.retryable
                && (row.attempts < MAX_ATTEMPTS
                    || matches!(row.lane.as_str(), "case" | "slack")) =>
        {
            let delay = e
                .retry_after
                .unwrap_or_else(|| backoff(ctx.settings.retry_base, row.attempts));
            tracing::warn!(job.id = row.id, job.kind = %row.kind, incident.id = %row.incident_id, error = %e.message, retry_in_secs = delay.as_secs(), "job failed; will retry");
            store.retry_later(row.id, delay, &e.message).await
        }
        Err(e) => {
            tracing::error!(job.id = row.id, job.kind = %row.kind, incident.id = %row.incident_id, error = %e.message, "JobFailed");
            metrics::counter!("triage_bot_jobs_failed_total", "kind" => row.kind.clone())
                .increment(1);
            report_failure(ctx, &row, &e.message).await;
            store.fail(row.id, &e.message).await
        }
    };
    if let Err(e) = outcome {
        tracing::error!(job.id = row.id, error = %e, "cannot record job outcome");
    }
    ctx.wake.notify_one();
}

async fn dispatch(ctx: &Ctx, row: &OutboxRow) -> Result<(), JobError> {
    let job = row.job().map_err(JobError::permanent)?;
    let incident = ctx
        .store
        .incident(&row.incident_id)
        .await
        .map_err(JobError::retry)?
        .ok_or_else(|| {
            JobError::permanent(format!("incident {} does not exist", row.incident_id))
        })?;
    match job {
        Job::Triage => crate::triage::run(ctx, &incident, row.attempts).await,
        Job::PostApproval => {
            crate::slack_app::notify::post_approval(ctx, &incident, row.attempts).await
        }
        Job::UpdateApprovalMessage => {
            crate::slack_app::notify::update_approval_message(ctx, &incident).await
        }
        Job::ThreadReply { text } => {
            crate::slack_app::notify::thread_reply(ctx, &incident, &text).await
        }
        Job::Ephemeral {
            channel,
            user,
            text,
        } => crate::slack_app::notify::ephemeral(ctx, &channel, &user, &text).await,
        Job::CreateCase => crate::record::create_case(ctx, &incident).await,
        Job::CaseComment { text } => {
            crate::record::comment(ctx, &incident, &text, row.id, row.attempts).await
        }
        Job::AttachAlert { alert_id } => {
            crate::record::attach_grouped(ctx, &incident, &alert_id, row.attempts).await
        }
        Job::CaseStatus { status } => crate::record::set_status(ctx, &incident, &status).await,
        Job::FinalizeCase => crate::record::finalize(ctx, &incident).await,
        Job::Execute => crate::execute::run_batch(ctx, &incident).await,
        Job::Isolate => crate::execute::isolate(ctx, &incident).await,
        Job::FollowUp { question, user } => {
            crate::slack_app::followup::answer(ctx, &incident, &question, &user, row.id).await
        }
    }
}

/// A job that gave up leaves a trace where people look: the log (above), the incident's error
/// column, and — for the case — a thread note; for Slack — a case comment.
async fn report_failure(ctx: &Ctx, row: &OutboxRow, message: &str) {
    let note = format!("triage-bot could not complete `{}`: {}", row.kind, message);
    let _ = ctx
        .store
        .set_field(
            &row.incident_id,
            crate::store::incidents::IncidentField::Error,
            Some(&note),
        )
        .await;
    let follow_up = match row.lane.as_str() {
        "case" => Some(Job::ThreadReply {
            text: format!(":warning: {note}"),
        }),
        "slack" | "exec" | "ai" => Some(Job::CaseComment { text: note.clone() }),
        _ => None,
    };
    if let Some(job) = follow_up
        && let Err(e) = ctx.store.enqueue(&row.incident_id, &job).await
    {
        tracing::error!(error = %e, "cannot queue the failure report");
    }
}

/// Start-up recovery: jobs that were running when the process died. A command batch is never
/// re-run on its own — its incident becomes `interrupted` and people are told; every other job
/// is idempotent and simply queued again.
pub async fn recover(ctx: &Ctx) -> anyhow::Result<()> {
    let store = &ctx.store;
    for row in store.orphaned_jobs().await? {
        if row.kind != "execute" {
            tracing::info!(job.id = row.id, job.kind = %row.kind, incident.id = %row.incident_id, "requeueing job interrupted by a restart");
            store.requeue(row.id).await?;
            continue;
        }
        let state = store
            .incident(&row.incident_id)
            .await?
            .and_then(|i| i.state());
        if state == Some(IncidentState::Approved) {
            // Died before the batch began: nothing ran, so starting it is still the approved action.
            store.requeue(row.id).await?;
            continue;
        }
        // Read before taking the write lock (see `interactions::decide`).
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
        let unfinished: Vec<(String, String)> = sqlx::query_as(
            "SELECT kind, text FROM commands WHERE incident_id = ?
               AND (status = 'interrupted' OR (status = 'skipped' AND error IS NULL)) ORDER BY seq",
        )
        .bind(&row.incident_id)
        .fetch_all(&mut *tx)
        .await?;
        let mut offered = false;
        if let (Some(parent), false) = (parent, unfinished.is_empty()) {
            let alert = parent.alert()?;
            let (inv, rem): (Vec<_>, Vec<_>) = unfinished
                .into_iter()
                .partition(|(k, _)| k == "investigation");
            let proposal = crate::domain::Triage {
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
            offered =
                crate::slack_app::followup::propose_in_thread(ctx, &mut tx, &parent, &alert, offer)
                    .await?;
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
        outbox::enqueue(&mut tx, &row.incident_id, &Job::FinalizeCase).await?;
        sqlx::query("UPDATE outbox SET status = 'failed', last_error = 'interrupted by a restart' WHERE id = ?").bind(row.id).execute(&mut *tx).await?;
        tx.commit().await?;
        tracing::warn!(incident.id = %row.incident_id, interrupted, "ExecutionInterrupted");
    }
    Ok(())
}
