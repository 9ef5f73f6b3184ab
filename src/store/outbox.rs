//! The outbox: side effects written in the same transaction as the state change that implies
//! them, then performed by the workers with retries.
//!
//! Each job belongs to a lane (the outside system it talks to). Jobs of one incident and lane run
//! strictly in order; lanes and incidents run independently, so a long command batch never holds
//! up a Slack thread reply.

use super::text;
use chrono::{Duration as ChronoDuration, Utc};
use serde::{Deserialize, Serialize};
use sqlx::AnyConnection;

use super::{Store, now_text, time_text};
use crate::domain::UnknownName;

/// A side effect to perform.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Job {
    /// Ask the assistant, parse, resolve the handler.
    Triage,
    /// Post the approval message (or, for a failed triage, the failure notice).
    PostApproval,
    /// Replace the approval message's buttons with the decision.
    UpdateApprovalMessage,
    /// A reply in the incident's thread.
    ThreadReply { text: String },
    /// A message only `user` can see.
    Ephemeral {
        channel: String,
        user: String,
        text: String,
    },
    /// Create (or find) the incident's case and attach the alert.
    CreateCase,
    /// A comment on the incident's case.
    CaseComment { text: String },
    /// Rewrite the case description with the full record once the incident has settled.
    FinalizeCase,
    /// Attach an alert grouped into the incident to its case.
    AttachAlert { alert_id: String },
    /// Tell the incident's thread that another alert joined it (`alerts`: how many it has now).
    AlertGroupedNote {
        alert_id: String,
        at: chrono::DateTime<Utc>,
        alerts: i64,
    },
    /// Set the case status (`open`, `in-progress`, `closed`).
    CaseStatus { status: String },
    /// Run the approved command batch.
    Execute,
    /// After a crash cut a batch short: collect the outcome of the commands that were running
    /// from their host, record the rest as interrupted, and offer what never started again.
    ResumeInterrupted,
    /// Isolate the host through Elastic Defend (an approver's "Isolate host" click).
    Isolate,
    /// Answer a question asked in the incident's Slack thread, in its AI conversation.
    FollowUp { question: String, user: String },
    /// Ask the assistant to revise a proposal in the incident's thread, as `user` instructed at
    /// `at`: `target` (from the Request changes modal), or the newest open one (a `revise:`
    /// thread reply).
    Revise {
        instruction: String,
        user: String,
        at: String,
        #[serde(default)]
        target: Option<String>,
    },
    /// Post a digest policy's summary of one window (filed under a `digest:…` key, not an
    /// incident).
    PostDigest {
        policy: String,
        window_start: String,
        window_end: String,
        channel: Option<String>,
    },
}

/// The outside system a job talks to. Jobs of one incident and lane run strictly in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lane {
    Ai,
    Slack,
    Case,
    Exec,
    Defend,
}

impl Lane {
    pub const ALL: [Lane; 5] = [Lane::Ai, Lane::Slack, Lane::Case, Lane::Exec, Lane::Defend];

    pub fn as_str(self) -> &'static str {
        match self {
            Lane::Ai => "ai",
            Lane::Slack => "slack",
            Lane::Case => "case",
            Lane::Exec => "exec",
            Lane::Defend => "defend",
        }
    }
}

/// Which lanes a claim may take a job from (the outbox runner's pools).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LaneFilter {
    Any,
    Only(Lane),
    Except(Lane),
}

/// Where a job is: `pending → running → done | failed` (or back to `pending` for a retry).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobStatus {
    Pending,
    Running,
    Done,
    Failed,
}

impl JobStatus {
    pub const ALL: [JobStatus; 4] = [
        JobStatus::Pending,
        JobStatus::Running,
        JobStatus::Done,
        JobStatus::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Pending => "pending",
            JobStatus::Running => "running",
            JobStatus::Done => "done",
            JobStatus::Failed => "failed",
        }
    }
}

macro_rules! decode_stored_name {
    ($($ty:ty => $what:literal),* $(,)?) => {$(
        impl TryFrom<String> for $ty {
            type Error = UnknownName;

            fn try_from(name: String) -> Result<Self, Self::Error> {
                Self::ALL
                    .into_iter()
                    .find(|v| v.as_str() == name)
                    .ok_or(UnknownName { what: $what, name })
            }
        }

        impl std::fmt::Display for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    )*};
}

decode_stored_name! {
    Lane => "outbox lane",
    JobStatus => "job status",
}

impl Job {
    pub fn lane(&self) -> Lane {
        match self {
            Job::Triage | Job::FollowUp { .. } | Job::Revise { .. } => Lane::Ai,
            Job::PostApproval
            | Job::UpdateApprovalMessage
            | Job::ThreadReply { .. }
            | Job::AlertGroupedNote { .. }
            | Job::Ephemeral { .. }
            | Job::PostDigest { .. } => Lane::Slack,
            Job::CreateCase
            | Job::CaseComment { .. }
            | Job::FinalizeCase
            | Job::CaseStatus { .. }
            | Job::AttachAlert { .. } => Lane::Case,
            Job::Execute | Job::ResumeInterrupted => Lane::Exec,
            Job::Isolate => Lane::Defend,
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Job::Triage => "triage",
            Job::PostApproval => "post_approval",
            Job::UpdateApprovalMessage => "update_approval_message",
            Job::ThreadReply { .. } => "thread_reply",
            Job::AlertGroupedNote { .. } => "alert_grouped_note",
            Job::Ephemeral { .. } => "ephemeral",
            Job::CreateCase => "create_case",
            Job::CaseComment { .. } => "case_comment",
            Job::FinalizeCase => "finalize_case",
            Job::CaseStatus { .. } => "case_status",
            Job::AttachAlert { .. } => "attach_alert",
            Job::Execute => "execute",
            Job::ResumeInterrupted => "resume_interrupted",
            Job::Isolate => "isolate",
            Job::FollowUp { .. } => "follow_up",
            Job::Revise { .. } => "revise",
            Job::PostDigest { .. } => "post_digest",
        }
    }
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct OutboxRow {
    pub id: i64,
    pub incident_id: String,
    #[sqlx(try_from = "String")]
    pub lane: Lane,
    pub kind: String,
    pub payload: String,
    #[sqlx(try_from = "String")]
    pub status: JobStatus,
    pub attempts: i64,
    pub last_error: Option<String>,
    /// When the job was queued (again, after `incidents retry`).
    pub created_at: String,
}

impl OutboxRow {
    pub fn job(&self) -> anyhow::Result<Job> {
        Ok(serde_json::from_str(&self.payload)?)
    }
}

/// Queues a job inside the caller's transaction.
pub async fn enqueue(
    conn: &mut AnyConnection,
    incident: &str,
    job: &Job,
) -> Result<(), sqlx::Error> {
    let now = now_text();
    sqlx::query("INSERT INTO outbox (incident_id, lane, kind, payload, not_before, created_at) VALUES ($1, $2, $3, $4, $5, $6)")
        .bind(incident)
        .bind(job.lane().as_str())
        .bind(job.name())
        .bind(serde_json::to_string(job).unwrap_or_else(|_| "{}".into()))
        .bind(&now)
        .bind(&now)
        .execute(conn)
        .await?;
    Ok(())
}

impl Store {
    /// Queues a job on its own (when no state change goes with it).
    pub async fn enqueue(&self, incident: &str, job: &Job) -> anyhow::Result<()> {
        let mut tx = self.write_tx().await?;
        enqueue(&mut tx, incident, job).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Claims the next due job whose lane has nothing earlier still pending or running.
    pub async fn claim_next(&self) -> anyhow::Result<Option<OutboxRow>> {
        self.claim_next_in(LaneFilter::Any).await
    }

    /// Claims the next due job of the lanes `filter` allows whose lane has nothing earlier
    /// still pending or running.
    pub async fn claim_next_in(&self, filter: LaneFilter) -> anyhow::Result<Option<OutboxRow>> {
        // `?2` is the lane to keep to or leave out; with Any it matches nothing and is unused.
        let (keep, lane) = match filter {
            LaneFilter::Any => (None, ""),
            LaneFilter::Only(l) => (Some(true), l.as_str()),
            LaneFilter::Except(l) => (Some(false), l.as_str()),
        };
        // PostgreSQL: several replicas claim at once; each skips the rows another is claiming
        // (SKIP LOCKED) instead of queueing behind it. A job earlier in the same lane is seen
        // while another replica claims it (still pending in this snapshot), so lane order holds.
        macro_rules! claim {
            ($lock:literal) => {
                concat!(
                    "UPDATE outbox SET status = 'running', attempts = attempts + 1, claimed_by = $4
                     WHERE id = (
                        SELECT o.id FROM outbox o
                        WHERE o.status = 'pending' AND o.not_before <= $1
                          AND ($3 IS NULL OR (o.lane = $2) = $3)
                          AND NOT EXISTS (
                            SELECT 1 FROM outbox e
                            WHERE e.incident_id = o.incident_id AND e.lane = o.lane AND e.id < o.id
                              AND e.status IN ('pending', 'running'))
                        ORDER BY o.id LIMIT 1",
                    $lock,
                    ")
                     RETURNING id, incident_id, lane, kind, payload, status, attempts, last_error, created_at"
                )
            };
        }
        let sql = match self.backend() {
            super::Backend::Sqlite => claim!(""),
            super::Backend::Postgres => claim!(" FOR UPDATE SKIP LOCKED"),
        };
        let row = sqlx::query_as(sql)
            .bind(now_text())
            .bind(lane)
            .bind(keep)
            .bind(self.replica_id())
            .fetch_optional(&self.pool)
            .await?;
        Ok(row)
    }

    pub async fn complete(&self, id: i64) -> anyhow::Result<()> {
        sqlx::query(
            "UPDATE outbox SET status = 'done', finished_at = $1, last_error = NULL WHERE id = $2",
        )
        .bind(now_text())
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Puts a job back for a later attempt.
    pub async fn retry_later(
        &self,
        id: i64,
        delay: std::time::Duration,
        error: &str,
    ) -> anyhow::Result<()> {
        let at =
            Utc::now() + ChronoDuration::from_std(delay).unwrap_or(ChronoDuration::seconds(60));
        sqlx::query(
            "UPDATE outbox SET status = 'pending', not_before = $1, last_error = $2 WHERE id = $3",
        )
        .bind(time_text(at))
        .bind(text(error))
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Gives up on a job; it stays in the table with its error, for the operator.
    pub async fn fail(&self, id: i64, error: &str) -> anyhow::Result<()> {
        sqlx::query(
            "UPDATE outbox SET status = 'failed', finished_at = $1, last_error = $2 WHERE id = $3",
        )
        .bind(now_text())
        .bind(text(error))
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The replicas other than this one that have jobs running (`None`: claimed before replicas
    /// were recorded). Recovery asks which of them are gone.
    pub async fn running_job_owners(&self) -> anyhow::Result<Vec<Option<String>>> {
        Ok(sqlx::query_scalar(
            "SELECT DISTINCT claimed_by FROM outbox
             WHERE status = 'running' AND claimed_by IS DISTINCT FROM $1",
        )
        .bind(self.replica_id())
        .fetch_all(&self.pool)
        .await?)
    }

    /// The jobs other replicas are running: (who claimed it, its kind, its incident).
    pub async fn running_claims(&self) -> anyhow::Result<Vec<(Option<String>, String, String)>> {
        Ok(sqlx::query_as(
            "SELECT claimed_by, kind, incident_id FROM outbox
             WHERE status = 'running' AND claimed_by IS DISTINCT FROM $1",
        )
        .bind(self.replica_id())
        .fetch_all(&self.pool)
        .await?)
    }

    /// Takes over the running jobs of a replica that is gone: they become this replica's, to
    /// recover. One statement, so of two survivors exactly one gets each job. They are returned
    /// so the caller can decide (a command batch must not simply run again).
    pub async fn take_over_jobs(&self, owner: Option<&str>) -> anyhow::Result<Vec<OutboxRow>> {
        let mut rows: Vec<OutboxRow> = sqlx::query_as(
            "UPDATE outbox SET claimed_by = $1
             WHERE status = 'running' AND claimed_by IS NOT DISTINCT FROM $2
             RETURNING id, incident_id, lane, kind, payload, status, attempts, last_error, created_at",
        )
        .bind(self.replica_id())
        .bind(owner)
        .fetch_all(&self.pool)
        .await?;
        rows.sort_by_key(|r| r.id);
        Ok(rows)
    }

    pub async fn requeue(&self, id: i64) -> anyhow::Result<()> {
        sqlx::query("UPDATE outbox SET status = 'pending' WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Jobs still to perform (pending or running).
    pub async fn unfinished_jobs(&self) -> Result<i64, sqlx::Error> {
        sqlx::query_scalar("SELECT count(*) FROM outbox WHERE status IN ('pending', 'running')")
            .fetch_one(&self.pool)
            .await
    }

    /// Jobs that gave up after their retries (dead letters), oldest first; `incident` narrows
    /// the list to one incident.
    pub async fn dead_jobs(&self, incident: Option<&str>) -> anyhow::Result<Vec<OutboxRow>> {
        Ok(sqlx::query_as(
            "SELECT id, incident_id, lane, kind, payload, status, attempts, last_error, created_at FROM outbox
             WHERE status = 'failed' AND ($1 IS NULL OR incident_id = $1) ORDER BY id",
        )
        .bind(incident)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Queues an incident's dead jobs again, attempts from zero, and clears its error — except
    /// command batches (`execute`), which only a fresh approval may start. Returns what was
    /// queued.
    pub async fn retry_dead_jobs(&self, incident: &str) -> anyhow::Result<Vec<OutboxRow>> {
        let mut tx = self.write_tx().await?;
        let rows: Vec<OutboxRow> = sqlx::query_as(
            "UPDATE outbox SET status = 'pending', attempts = 0, last_error = NULL, not_before = $1,
                    created_at = $1
             WHERE incident_id = $2 AND status = 'failed' AND kind != 'execute'
             RETURNING id, incident_id, lane, kind, payload, status, attempts, last_error, created_at",
        )
        .bind(now_text())
        .bind(incident)
        .fetch_all(&mut *tx)
        .await?;
        if !rows.is_empty() {
            sqlx::query("UPDATE incidents SET error = NULL WHERE id = $1")
                .bind(incident)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(rows)
    }

    /// Gives up on a job inside the caller's transaction (recovery: a batch that a restart cut
    /// short is never re-run).
    pub async fn fail_in(
        conn: &mut AnyConnection,
        id: i64,
        error: &str,
    ) -> Result<(), sqlx::Error> {
        sqlx::query("UPDATE outbox SET status = 'failed', last_error = $1 WHERE id = $2")
            .bind(text(error))
            .bind(id)
            .execute(conn)
            .await?;
        Ok(())
    }

    /// Counts by status, for /metrics and /readyz.
    pub async fn outbox_counts(&self) -> anyhow::Result<Vec<(String, i64)>> {
        Ok(
            sqlx::query_as("SELECT status, count(*) FROM outbox GROUP BY status")
                .fetch_all(&self.pool)
                .await?,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn claims_keep_to_the_lanes_asked_for_and_to_lane_order() {
        let dir = tempfile::tempdir().unwrap();
        for store in Store::for_tests(dir.path()).await {
            claims_keep_to_lanes(store).await;
        }
    }

    async fn claims_keep_to_lanes(store: Store) {
        store.enqueue("a", &Job::Triage).await.unwrap();
        store.enqueue("b", &Job::Triage).await.unwrap();
        store
            .enqueue("a", &Job::ThreadReply { text: "1".into() })
            .await
            .unwrap();
        store
            .enqueue("a", &Job::ThreadReply { text: "2".into() })
            .await
            .unwrap();
        store.enqueue("c", &Job::CreateCase).await.unwrap();

        let not_ai = store
            .claim_next_in(LaneFilter::Except(Lane::Ai))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (not_ai.incident_id.as_str(), not_ai.kind.as_str()),
            ("a", "thread_reply")
        );
        // The second reply of `a` waits for the first; the case of `c` does not.
        let next = store
            .claim_next_in(LaneFilter::Except(Lane::Ai))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (next.incident_id.as_str(), next.kind.as_str()),
            ("c", "create_case")
        );
        assert!(
            store
                .claim_next_in(LaneFilter::Except(Lane::Ai))
                .await
                .unwrap()
                .is_none()
        );
        let ai = store
            .claim_next_in(LaneFilter::Only(Lane::Ai))
            .await
            .unwrap()
            .unwrap();
        assert_eq!((ai.incident_id.as_str(), ai.lane), ("a", Lane::Ai));
        let any = store.claim_next().await.unwrap().unwrap();
        assert_eq!((any.incident_id.as_str(), any.lane), ("b", Lane::Ai));
        assert!(store.claim_next().await.unwrap().is_none());
        store.complete(not_ai.id).await.unwrap();
        let second = store.claim_next().await.unwrap().unwrap();
        assert_eq!(second.payload, r#"{"kind":"thread_reply","text":"2"}"#);
    }
}
