//! What drives the pipeline: [`intake`] (alerts into the policy stage), the outbox runner here
//! (each queued job to the stage that performs it), [`timers`] (the approval clock) and
//! [`recover`] (start-up after a crash). Workers call stages; stages never call workers.
//!
//! Jobs run concurrently across incidents and lanes, strictly in order within one incident's
//! lane. They run in two pools: AI jobs (triage, thread questions) up to
//! `ASSISTANT_MAX_CONCURRENT` at once, everything else (Slack, cases, execution, Defend) up to
//! [`MAX_CONCURRENT_OTHER_JOBS`] — so a slow model never holds up a thread reply or a case
//! comment, and a busy Slack never holds up the AI. A failed job is retried with exponential
//! backoff when the error says a retry can help, and otherwise kept as `failed` with its error
//! and reported.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinSet;
use tracing::Instrument;

pub mod intake;
pub mod recover;
pub mod timers;

pub use recover::recover;

use crate::pipeline::approval::{followup, notify};
use crate::pipeline::{Ctx, JobError, MAX_ATTEMPTS, execute, record, triage};
use crate::shutdown::Shutdown;
use crate::store::outbox::{Lane, LaneFilter};
use crate::store::{Job, OutboxRow};

/// Jobs of the lanes that are not AI (Slack, case, exec, Defend) running at once.
pub const MAX_CONCURRENT_OTHER_JOBS: usize = 8;

/// The two pools of the outbox runner and how full each is.
struct Pools {
    ai_limit: usize,
    ai: usize,
    other: usize,
}

impl Pools {
    /// Which jobs may be claimed now; `None` when both pools are full.
    fn claimable(&self) -> Option<LaneFilter> {
        match (
            self.ai < self.ai_limit,
            self.other < MAX_CONCURRENT_OTHER_JOBS,
        ) {
            (true, true) => Some(LaneFilter::Any),
            (true, false) => Some(LaneFilter::Only(Lane::Ai)),
            (false, true) => Some(LaneFilter::Except(Lane::Ai)),
            (false, false) => None,
        }
    }

    fn count(&mut self, ai: bool, delta: isize) {
        let n = if ai { &mut self.ai } else { &mut self.other };
        *n = n.saturating_add_signed(delta);
    }
}

/// Tries at recording a job's outcome before it is left `running` for the next start.
const RECORD_ATTEMPTS: u32 = 5;

/// How long ago the job was queued.
fn queued_for(row: &OutboxRow) -> Duration {
    chrono::DateTime::parse_from_rfc3339(&row.created_at)
        .ok()
        .and_then(|t| {
            (chrono::Utc::now() - t.with_timezone(&chrono::Utc))
                .to_std()
                .ok()
        })
        .unwrap_or_default()
}

use crate::clients::{backoff, jitter};

/// Runs the outbox until shutdown.
pub async fn run_outbox(ctx: Arc<Ctx>, mut shutdown: Shutdown) {
    let mut running: JoinSet<()> = JoinSet::new();
    // Which pool each running job counts in, by task id (a job that panicked is still counted
    // out of the right pool).
    let mut pool_of = HashMap::new();
    let mut pools = Pools {
        ai_limit: ctx.settings.triage.assistant.max_concurrent.max(1),
        ai: 0,
        other: 0,
    };
    loop {
        // Arm the wake-up before looking, so a job queued while we look is not missed.
        let wake = ctx.wake.notified();
        tokio::pin!(wake);
        wake.as_mut().enable();
        while !shutdown.is_triggered() {
            let Some(filter) = pools.claimable() else {
                break;
            };
            match ctx.store.claim_next_in(filter).await {
                Ok(Some(row)) => {
                    let ai = row.lane == Lane::Ai;
                    pools.count(ai, 1);
                    let ctx = ctx.clone();
                    let task = running.spawn(async move { handle(&ctx, row).await });
                    pool_of.insert(task.id(), ai);
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
            Some(done) = running.join_next_with_id(), if !running.is_empty() => {
                let id = match &done {
                    Ok((id, ())) => *id,
                    Err(e) => {
                        tracing::error!(error = %e, "an outbox job panicked");
                        e.id()
                    }
                };
                if let Some(ai) = pool_of.remove(&id) {
                    pools.count(ai, -1);
                }
            }
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
    enum Record {
        Complete,
        Retry(Duration, String),
        Fail(String),
    }
    let record = match result {
        Ok(()) => Record::Complete,
        // Records and messages must not be lost to an outage: retry those through it (the
        // backoff is capped) for up to JOB_GIVE_UP_SECS; other work gives up after
        // MAX_ATTEMPTS. A job that gives up waits in the dead letters (`incidents retry`).
        Err(e)
            if e.retryable
                && (row.attempts < MAX_ATTEMPTS
                    || (matches!(row.lane, Lane::Case | Lane::Slack)
                        && queued_for(&row) < ctx.settings.give_up_after)) =>
        {
            let delay = e
                .retry_after
                .unwrap_or_else(|| backoff(ctx.settings.retry_base, row.attempts, jitter()));
            tracing::warn!(job.id = row.id, job.kind = %row.kind, incident.id = %row.incident_id, error = %e.message, retry_in_secs = delay.as_secs(), "job failed; will retry");
            Record::Retry(delay, e.message)
        }
        Err(e) => {
            tracing::error!(job.id = row.id, job.kind = %row.kind, incident.id = %row.incident_id, error = %e.message, "JobFailed");
            metrics::counter!("triage_bot_jobs_failed_total", "kind" => row.kind.clone())
                .increment(1);
            report_failure(ctx, &row, &e.message).await;
            Record::Fail(e.message)
        }
    };
    // A job whose outcome is not recorded stays `running` until the next start: under a write
    // storm the database can stay locked past its busy timeout, so try a few more times.
    for attempt in 1..=RECORD_ATTEMPTS {
        let outcome = match &record {
            Record::Complete => store.complete(row.id).await,
            Record::Retry(delay, message) => store.retry_later(row.id, *delay, message).await,
            Record::Fail(message) => store.fail(row.id, message).await,
        };
        match outcome {
            Ok(()) => break,
            Err(e) if attempt < RECORD_ATTEMPTS => {
                tracing::warn!(job.id = row.id, error = %e, "cannot record job outcome yet; trying again");
                tokio::time::sleep(Duration::from_millis(200) * attempt).await;
            }
            Err(e) => tracing::error!(job.id = row.id, error = %e, "cannot record job outcome"),
        }
    }
    ctx.wake.notify_one();
}

async fn dispatch(ctx: &Ctx, row: &OutboxRow) -> Result<(), JobError> {
    let job = row.job().map_err(JobError::permanent)?;
    // A digest belongs to a policy window, not an incident.
    if let Job::PostDigest {
        policy,
        window_start,
        window_end,
        channel,
    } = &job
    {
        let window = (window_start.as_str(), window_end.as_str());
        return crate::pipeline::policy::post_digest(ctx, policy, window, channel.as_deref()).await;
    }
    let incident = ctx
        .store
        .incident(&row.incident_id)
        .await
        .map_err(JobError::retry)?
        .ok_or_else(|| {
            JobError::permanent(format!("incident {} does not exist", row.incident_id))
        })?;
    match job {
        Job::Triage => triage::run(ctx, &incident, row.attempts).await,
        Job::PostApproval => notify::post_approval(ctx, &incident, row.attempts).await,
        Job::UpdateApprovalMessage => notify::update_approval_message(ctx, &incident).await,
        Job::ThreadReply { text } => {
            notify::thread_reply(ctx, &incident, &text, row.id, row.attempts).await
        }
        Job::AlertGroupedNote {
            alert_id,
            at,
            alerts,
        } => {
            let job = (row.id, row.attempts);
            notify::alert_grouped_note(ctx, &incident, &alert_id, at, alerts, job).await
        }
        Job::Ephemeral {
            channel,
            user,
            text,
        } => notify::ephemeral(ctx, &channel, &user, &text).await,
        Job::CreateCase => record::create_case(ctx, &incident).await,
        Job::CaseComment { text } => {
            record::comment(ctx, &incident, &text, row.id, row.attempts).await
        }
        Job::AttachAlert { alert_id } => {
            record::attach_grouped(ctx, &incident, &alert_id, row.attempts).await
        }
        Job::CaseStatus { status } => record::set_status(ctx, &incident, &status).await,
        Job::FinalizeCase => record::finalize(ctx, &incident).await,
        Job::Execute => execute::run_batch(ctx, &incident).await,
        Job::ResumeInterrupted => execute::resume_interrupted(ctx, &incident).await,
        Job::Isolate => execute::isolate(ctx, &incident).await,
        Job::FollowUp { question, user } => {
            followup::answer(ctx, &incident, &question, &user, row.id).await
        }
        Job::Revise {
            instruction,
            user,
            at,
            target,
        } => {
            let request = followup::RevisionRequest {
                instruction: &instruction,
                user: &user,
                at: &at,
                target: target.as_deref(),
            };
            followup::revise(ctx, &incident, &request, row.id).await
        }
        Job::PostDigest { .. } => Ok(()),
    }
}

/// A job that gave up leaves a trace where people look: the log (above), the incident's error
/// column, and — for the case — a thread note; for Slack — a case comment.
async fn report_failure(ctx: &Ctx, row: &OutboxRow, message: &str) {
    // A digest has no incident, thread or case to report to: the log says it.
    if row.kind == "post_digest" {
        return;
    }
    let note = format!("triage-bot could not complete `{}`: {}", row.kind, message);
    let _ = ctx
        .store
        .set_field(
            &row.incident_id,
            crate::store::incidents::IncidentField::Error,
            Some(&note),
        )
        .await;
    let follow_up = match row.lane {
        Lane::Case => Some(Job::ThreadReply {
            text: format!(":warning: {note}"),
        }),
        Lane::Slack | Lane::Exec | Lane::Ai => Some(Job::CaseComment { text: note.clone() }),
        Lane::Defend => None,
    };
    if let Some(job) = follow_up
        && let Err(e) = ctx.store.enqueue(&row.incident_id, &job).await
    {
        tracing::error!(error = %e, "cannot queue the failure report");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_is_capped_and_jitters_within_the_upper_half() {
        let base = Duration::from_millis(100);
        assert_eq!(backoff(base, 1, 0.0), Duration::from_millis(100));
        assert_eq!(backoff(base, 1, 1.0), Duration::from_millis(200));
        assert_eq!(backoff(base, 3, 0.5), Duration::from_millis(600));
        assert_eq!(backoff(base, 40, 1.0), Duration::from_secs(300));
        let waits: std::collections::HashSet<_> =
            (0..50).map(|_| backoff(base, 4, jitter())).collect();
        assert!(
            waits.len() > 40,
            "retries spread out: {} distinct",
            waits.len()
        );
        assert!(
            waits
                .iter()
                .all(|w| *w >= Duration::from_millis(800) && *w <= Duration::from_millis(1600))
        );
    }
}
