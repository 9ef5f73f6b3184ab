//! Queries on `incidents` (and the ingest rejections and checkpoints that precede them).

use super::text;
use serde_json::json;
use sqlx::AnyConnection;

use super::{Store, now_text};
use crate::domain::{Alert, Decision, IncidentId, IncidentState, Triage};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct IncidentRow {
    pub id: String,
    pub alert_id: String,
    pub source: String,
    #[sqlx(try_from = "String")]
    pub state: IncidentState,
    pub host_name: String,
    pub alert_json: String,
    pub triage_json: Option<String>,
    pub raw_answer: Option<String>,
    pub handler_name: Option<String>,
    pub handler_slack_id: Option<String>,
    pub conversation_id: Option<String>,
    pub approval_hash: Option<String>,
    pub slack_channel: Option<String>,
    pub slack_ts: Option<String>,
    pub case_id: Option<String>,
    pub case_version: Option<String>,
    pub decision: Option<String>,
    pub decided_by: Option<String>,
    pub decided_at: Option<String>,
    pub error: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    pub approval_requested_at: Option<String>,
    pub escalated_at: Option<String>,
    pub approval_scope: Option<String>,
    pub first_approver: Option<String>,
    pub first_approved_at: Option<String>,
    pub slack_permalink: Option<String>,
    pub parent_incident: Option<String>,
    pub thread_root_ts: Option<String>,
    pub superseded_by: Option<String>,
    pub acknowledged_at: Option<String>,
    pub acknowledged_by: Option<String>,
    pub responded_at: Option<String>,
}

impl IncidentRow {
    /// The ts of the thread this incident talks in: its own message, or, for a follow-up
    /// proposal, the parent's (Slack threads have one root; replies to a reply go nowhere).
    pub fn thread_ts(&self) -> Option<&str> {
        self.thread_root_ts.as_deref().or(self.slack_ts.as_deref())
    }
}

impl IncidentRow {
    pub fn alert(&self) -> anyhow::Result<Alert> {
        Ok(serde_json::from_str(&self.alert_json)?)
    }

    pub fn triage(&self) -> Option<Triage> {
        self.triage_json
            .as_deref()
            .and_then(|t| serde_json::from_str(t).ok())
    }

    pub fn incident_id(&self) -> IncidentId {
        IncidentId(self.id.clone())
    }
}

/// A move the state machine does not allow (another worker or click got there first).
#[derive(Debug, thiserror::Error)]
#[error("incident {id} is {actual}, cannot move it to {wanted}")]
pub struct StateConflict {
    pub id: String,
    pub actual: String,
    pub wanted: IncidentState,
}

impl Store {
    /// Whether an alert was seen before: it opened an incident or joined one.
    pub async fn alert_seen(conn: &mut AnyConnection, alert_id: &str) -> Result<bool, sqlx::Error> {
        let seen: i64 = sqlx::query_scalar(
            "SELECT (SELECT count(*) FROM incidents WHERE alert_id = $1)
                  + (SELECT count(*) FROM incident_alerts WHERE alert_id = $1)",
        )
        .bind(alert_id)
        .fetch_one(&mut *conn)
        .await?;
        Ok(seen > 0)
    }

    /// Attaches an alert to an existing incident; returns how many alerts the incident has now,
    /// its first one included.
    pub async fn group_alert(
        conn: &mut AnyConnection,
        incident: &str,
        alert: &Alert,
    ) -> anyhow::Result<i64> {
        sqlx::query("INSERT INTO incident_alerts (alert_id, incident_id, alert_json, received_at) VALUES ($1, $2, $3, $4)")
            .bind(&alert.id.0)
            .bind(incident)
            .bind(serde_json::to_string(alert)?)
            .bind(now_text())
            .execute(&mut *conn)
            .await?;
        let grouped: i64 =
            sqlx::query_scalar("SELECT count(*) FROM incident_alerts WHERE incident_id = $1")
                .bind(incident)
                .fetch_one(&mut *conn)
                .await?;
        Ok(grouped + 1)
    }

    /// Opens an incident in `received` for an alert. False when the alert already has one.
    pub async fn open_incident(
        conn: &mut AnyConnection,
        id: &IncidentId,
        source: &str,
        alert: &Alert,
    ) -> anyhow::Result<bool> {
        let now = now_text();
        let inserted = sqlx::query(
            "INSERT INTO incidents (id, alert_id, source, state, host_name, alert_json, created_at, updated_at)
             VALUES ($1, $2, $3, 'received', $4, $5, $6, $7) ON CONFLICT(alert_id) DO NOTHING",
        )
        .bind(&id.0)
        .bind(&alert.id.0)
        .bind(source)
        .bind(text(&alert.host_name))
        .bind(serde_json::to_string(alert)?)
        .bind(&now)
        .bind(&now)
        .execute(&mut *conn)
        .await?
        .rows_affected();
        Ok(inserted == 1)
    }

    /// The alerts grouped into an incident after its first one.
    pub async fn grouped_alerts(&self, incident: &str) -> anyhow::Result<Vec<Alert>> {
        let rows: Vec<String> = sqlx::query_scalar(
            "SELECT alert_json FROM incident_alerts WHERE incident_id = $1 ORDER BY received_at",
        )
        .bind(incident)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| Ok(serde_json::from_str(r)?)).collect()
    }

    /// Keeps a document that could not be normalised, with the reason. True if it is new.
    pub async fn reject_document(
        &self,
        source: &str,
        doc_id: &str,
        index: &str,
        reason: &str,
        doc: &serde_json::Value,
    ) -> anyhow::Result<bool> {
        let r = sqlx::query(
            "INSERT INTO ingest_rejections (source, doc_id, doc_index, reason, document, received_at)
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
        )
        .bind(source)
        .bind(doc_id)
        .bind(index)
        .bind(text(reason))
        .bind(doc.to_string())
        .bind(now_text())
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected() == 1)
    }

    pub async fn rejections(&self) -> anyhow::Result<Vec<(String, String)>> {
        Ok(
            sqlx::query_as("SELECT doc_id, reason FROM ingest_rejections ORDER BY received_at")
                .fetch_all(&self.pool)
                .await?,
        )
    }

    /// Where a source's last poll stopped: the newest alert time and the `search_after` cursor
    /// of the last hit handed on (`None` before the first poll; no cursor from older versions).
    pub async fn checkpoint(
        &self,
        source: &str,
    ) -> anyhow::Result<Option<(i64, Option<Vec<serde_json::Value>>)>> {
        let row: Option<(i64, Option<String>)> =
            sqlx::query_as("SELECT last_ts_ms, cursor FROM checkpoints WHERE source = $1")
                .bind(source)
                .fetch_optional(&self.pool)
                .await?;
        Ok(row.map(|(ts, cursor)| {
            let cursor = cursor.and_then(|c| serde_json::from_str(&c).ok());
            (ts, cursor)
        }))
    }

    /// Records where the poll got to: the time and the cursor of the last hit handed on.
    pub async fn save_checkpoint(
        &self,
        source: &str,
        ts_ms: i64,
        cursor: &[serde_json::Value],
    ) -> anyhow::Result<()> {
        sqlx::query(
            "INSERT INTO checkpoints (source, last_ts_ms, cursor, updated_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT(source) DO UPDATE SET last_ts_ms = excluded.last_ts_ms,
                 cursor = excluded.cursor, updated_at = excluded.updated_at",
        )
        .bind(source)
        .bind(ts_ms)
        .bind(serde_json::Value::from(cursor.to_vec()).to_string())
        .bind(now_text())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn incident(&self, id: &str) -> anyhow::Result<Option<IncidentRow>> {
        Ok(sqlx::query_as("SELECT * FROM incidents WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?)
    }

    pub async fn incidents(&self) -> anyhow::Result<Vec<IncidentRow>> {
        Ok(
            sqlx::query_as("SELECT * FROM incidents ORDER BY created_at")
                .fetch_all(&self.pool)
                .await?,
        )
    }

    /// Moves an incident along the state machine inside `conn`'s transaction; refuses an illegal
    /// move, and a move from a state other than the one read (compare-and-set).
    pub async fn transition(
        conn: &mut AnyConnection,
        id: &str,
        next: IncidentState,
    ) -> anyhow::Result<()> {
        let current: Option<String> =
            sqlx::query_scalar("SELECT state FROM incidents WHERE id = $1")
                .bind(id)
                .fetch_optional(&mut *conn)
                .await?;
        let current = current.ok_or_else(|| anyhow::anyhow!("incident {id} does not exist"))?;
        let from = IncidentState::parse(&current)
            .ok_or_else(|| anyhow::anyhow!("incident {id} has unknown state {current}"))?;
        if !from.can_move_to(next) {
            return Err(StateConflict {
                id: id.into(),
                actual: current,
                wanted: next,
            }
            .into());
        }
        let changed = sqlx::query(
            "UPDATE incidents SET state = $1, updated_at = $2 WHERE id = $3 AND state = $4",
        )
        .bind(next.as_str())
        .bind(now_text())
        .bind(id)
        .bind(&current)
        .execute(&mut *conn)
        .await?
        .rows_affected();
        if changed != 1 {
            return Err(StateConflict {
                id: id.into(),
                actual: current,
                wanted: next,
            }
            .into());
        }
        Store::audit(
            conn,
            id,
            "triage-bot",
            "StateChanged",
            json!({"from": current, "to": next.as_str()}),
        )
        .await?;
        Ok(())
    }

    /// Sets one nullable text column of an incident, chosen from a fixed list.
    pub async fn set_field(
        &self,
        id: &str,
        column: IncidentField,
        value: Option<&str>,
    ) -> anyhow::Result<()> {
        let sql = match column {
            IncidentField::ConversationId => {
                "UPDATE incidents SET conversation_id = $1, updated_at = $2 WHERE id = $3"
            }
            IncidentField::Error => {
                "UPDATE incidents SET error = $1, updated_at = $2 WHERE id = $3"
            }
            IncidentField::SlackPermalink => {
                "UPDATE incidents SET slack_permalink = $1, updated_at = $2 WHERE id = $3"
            }
        };
        sqlx::query(sql)
            .bind(value.map(text))
            .bind(now_text())
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn set_slack_message(&self, id: &str, channel: &str, ts: &str) -> anyhow::Result<()> {
        sqlx::query(
            "UPDATE incidents SET slack_channel = $1, slack_ts = $2, updated_at = $3,
                    approval_requested_at = coalesce(approval_requested_at, $4) WHERE id = $5",
        )
        .bind(channel)
        .bind(ts)
        .bind(now_text())
        .bind(now_text())
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn set_case(&self, id: &str, case_id: &str, version: &str) -> anyhow::Result<()> {
        sqlx::query(
            "UPDATE incidents SET case_id = $1, case_version = $2, updated_at = $3 WHERE id = $4",
        )
        .bind(case_id)
        .bind(version)
        .bind(now_text())
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}

#[derive(Debug, Clone, Copy)]
pub enum IncidentField {
    ConversationId,
    Error,
    SlackPermalink,
}

impl Store {
    /// The incident whose approval message is the root of this Slack thread.
    pub async fn incident_by_thread(
        &self,
        channel: &str,
        thread_ts: &str,
    ) -> anyhow::Result<Option<IncidentRow>> {
        Ok(
            sqlx::query_as("SELECT * FROM incidents WHERE slack_channel = $1 AND slack_ts = $2")
                .bind(channel)
                .bind(thread_ts)
                .fetch_optional(&self.pool)
                .await?,
        )
    }
}

/// What a successful triage leaves on the incident.
pub struct TriageRecord<'a> {
    pub triage: &'a Triage,
    /// The assistant's answer as it came.
    pub raw: &'a str,
    pub handler_name: Option<&'a str>,
    pub handler_slack_id: Option<&'a str>,
    /// Binds the approval to the host and the exact command list.
    pub approval_hash: &'a str,
}

/// A follow-up proposal: a child incident in its parent's thread, sharing its alert, case and
/// conversation.
pub struct FollowUpRecord<'a> {
    pub id: &'a IncidentId,
    pub parent: &'a IncidentRow,
    /// The alert's host, which the approval hash binds.
    pub host: &'a str,
    /// Makes the proposal idempotent: one child per parent and key.
    pub key: &'a str,
    /// `followup` (an answer in the thread) or `resume` (left unfinished by a crash).
    pub source: &'a str,
    pub triage: &'a Triage,
    pub raw: &'a str,
    pub approval_hash: &'a str,
}

impl Store {
    /// Records a triage's result and who handles it (the state move is the caller's).
    pub async fn record_triage(
        conn: &mut AnyConnection,
        id: &str,
        r: &TriageRecord<'_>,
    ) -> anyhow::Result<()> {
        sqlx::query("UPDATE incidents SET triage_json = $1, raw_answer = $2, handler_name = $3, handler_slack_id = $4, approval_hash = $5 WHERE id = $6")
            .bind(serde_json::to_string(r.triage)?)
            .bind(text(r.raw))
            .bind(r.handler_name)
            .bind(r.handler_slack_id)
            .bind(r.approval_hash)
            .bind(id)
            .execute(&mut *conn)
            .await?;
        Ok(())
    }

    /// Records why a triage failed, with the raw answer when there was one.
    pub async fn record_triage_failure(
        conn: &mut AnyConnection,
        id: &str,
        raw: Option<&str>,
        reason: &str,
    ) -> Result<(), sqlx::Error> {
        sqlx::query("UPDATE incidents SET raw_answer = $1, error = $2 WHERE id = $3")
            .bind(raw.map(text))
            .bind(text(reason))
            .bind(id)
            .execute(&mut *conn)
            .await?;
        Ok(())
    }

    /// Records who decided what, and when (the state move is the caller's).
    pub async fn record_decision(
        conn: &mut AnyConnection,
        id: &str,
        decision: Decision,
        user: &str,
        at: &str,
    ) -> Result<(), sqlx::Error> {
        sqlx::query("UPDATE incidents SET decision = $1, decided_by = $2, decided_at = $3, approval_scope = $4 WHERE id = $5")
            .bind(decision.as_str())
            .bind(user)
            .bind(at)
            .bind(decision.scope())
            .bind(id)
            .execute(&mut *conn)
            .await?;
        Ok(())
    }

    /// The first half of the two-person rule, for the list bound by `hash`. False when the
    /// incident is no longer awaiting approval, already has a first approver (another click got
    /// there first), or its proposal changed (an edit).
    pub async fn record_first_approval(
        conn: &mut AnyConnection,
        id: &str,
        user: &str,
        at: &str,
        hash: &str,
    ) -> Result<bool, sqlx::Error> {
        let recorded = sqlx::query(
            "UPDATE incidents SET first_approver = $1, first_approved_at = $2, updated_at = $3
             WHERE id = $4 AND state = 'awaiting_approval' AND first_approver IS NULL
               AND approval_hash = $5",
        )
        .bind(user)
        .bind(at)
        .bind(at)
        .bind(id)
        .bind(hash)
        .execute(&mut *conn)
        .await?
        .rows_affected();
        Ok(recorded == 1)
    }

    /// How many audit records of `event` an incident has.
    pub async fn count_events(
        conn: &mut AnyConnection,
        id: &str,
        event: &str,
    ) -> Result<i64, sqlx::Error> {
        sqlx::query_scalar("SELECT count(*) FROM audit WHERE incident_id = $1 AND event = $2")
            .bind(id)
            .bind(event)
            .fetch_one(&mut *conn)
            .await
    }

    /// Incidents whose approval message is out and waiting for a decision.
    pub async fn awaiting_approval(&self) -> Result<Vec<IncidentRow>, sqlx::Error> {
        sqlx::query_as(
            "SELECT * FROM incidents WHERE state = 'awaiting_approval' AND approval_requested_at IS NOT NULL",
        )
        .fetch_all(&self.pool)
        .await
    }

    /// Marks an incident escalated, once. False when it was escalated or decided meanwhile.
    pub async fn mark_escalated(conn: &mut AnyConnection, id: &str) -> Result<bool, sqlx::Error> {
        let marked = sqlx::query("UPDATE incidents SET escalated_at = $1 WHERE id = $2 AND escalated_at IS NULL AND state = 'awaiting_approval'")
            .bind(now_text())
            .bind(id)
            .execute(&mut *conn)
            .await?
            .rows_affected();
        Ok(marked == 1)
    }

    /// Records a Slack delivery key (an `event_id`, a message ts); false when it was seen before.
    pub async fn first_delivery(conn: &mut AnyConnection, key: &str) -> Result<bool, sqlx::Error> {
        let fresh = sqlx::query(
            "INSERT INTO slack_events (event_id, received_at) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        )
        .bind(key)
        .bind(now_text())
        .execute(&mut *conn)
        .await?
        .rows_affected();
        Ok(fresh == 1)
    }

    /// Records a follow-up proposal as a child incident awaiting approval. False when the same
    /// key was proposed before.
    pub async fn insert_follow_up(
        conn: &mut AnyConnection,
        f: &FollowUpRecord<'_>,
    ) -> anyhow::Result<bool> {
        let now = now_text();
        let parent = f.parent;
        let inserted = sqlx::query(
            "INSERT INTO incidents (id, alert_id, source, state, host_name, alert_json, triage_json, raw_answer,
                handler_name, handler_slack_id, conversation_id, approval_hash, case_id, case_version,
                parent_incident, thread_root_ts, created_at, updated_at)
             VALUES ($1, $2, $3, 'awaiting_approval', $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)
             ON CONFLICT(alert_id) DO NOTHING",
        )
        .bind(&f.id.0)
        .bind(format!("{}#{}", parent.alert_id, f.key))
        .bind(f.source)
        .bind(text(f.host))
        .bind(&parent.alert_json)
        .bind(serde_json::to_string(f.triage)?)
        .bind(text(f.raw))
        .bind(&parent.handler_name)
        .bind(&parent.handler_slack_id)
        .bind(&parent.conversation_id)
        .bind(f.approval_hash)
        .bind(&parent.case_id)
        .bind(&parent.case_version)
        .bind(&parent.id)
        .bind(parent.thread_ts())
        .bind(&now)
        .bind(&now)
        .execute(&mut *conn)
        .await?
        .rows_affected();
        Ok(inserted == 1)
    }
}
