//! Queries on `incidents` (and the ingest rejections and checkpoints that precede them).

use serde_json::json;
use sqlx::SqliteConnection;

use super::{Job, Store, now_text, outbox};
use crate::domain::{Alert, IncidentId, IncidentState, Triage};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct IncidentRow {
    pub id: String,
    pub alert_id: String,
    pub source: String,
    pub state: String,
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

    pub fn state(&self) -> Option<IncidentState> {
        IncidentState::parse(&self.state)
    }

    pub fn incident_id(&self) -> IncidentId {
        IncidentId(self.id.clone())
    }
}

/// What ingesting an alert did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ingested {
    New(IncidentId),
    Grouped(IncidentId),
    Duplicate,
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
    /// Records a new alert as an incident in `received` and queues its triage, unless the alert
    /// was seen before. Returns the new incident id, or `None` for a duplicate.
    pub async fn ingest_alert(
        &self,
        source: &str,
        alert: &Alert,
    ) -> anyhow::Result<Option<IncidentId>> {
        match self.ingest(source, alert, None).await? {
            Ingested::New(id) => Ok(Some(id)),
            Ingested::Grouped(_) | Ingested::Duplicate => Ok(None),
        }
    }

    /// Records an alert: a duplicate (seen before) changes nothing; with a grouping window, an
    /// alert of the same rule on the same host as a recent incident joins that incident (its
    /// case gets the alert, its thread a note) instead of opening a new one; otherwise it opens
    /// an incident and queues its triage. One transaction.
    pub async fn ingest(
        &self,
        source: &str,
        alert: &Alert,
        group_window: Option<std::time::Duration>,
    ) -> anyhow::Result<Ingested> {
        let id = IncidentId::new();
        let mut tx = self.write_tx().await?;
        let now = now_text();
        let seen: i64 = sqlx::query_scalar(
            "SELECT (SELECT count(*) FROM incidents WHERE alert_id = ?1)
                  + (SELECT count(*) FROM incident_alerts WHERE alert_id = ?1)",
        )
        .bind(&alert.id.0)
        .fetch_one(&mut *tx)
        .await?;
        if seen > 0 {
            return Ok(Ingested::Duplicate);
        }
        if let Some(window) = group_window {
            let since = super::time_text(chrono::Utc::now() - chrono::Duration::from_std(window)?);
            let rule_key = alert
                .rule_id
                .clone()
                .unwrap_or_else(|| alert.rule_name.clone());
            let open: Option<String> = sqlx::query_scalar(
                "SELECT id FROM incidents
                 WHERE source = ? AND host_name = ? AND parent_incident IS NULL AND created_at >= ?
                   AND coalesce(json_extract(alert_json, '$.rule_id'), json_extract(alert_json, '$.rule_name')) = ?
                 ORDER BY created_at DESC LIMIT 1",
            )
            .bind(source)
            .bind(&alert.host_name)
            .bind(&since)
            .bind(&rule_key)
            .fetch_optional(&mut *tx)
            .await?;
            if let Some(incident) = open {
                sqlx::query("INSERT INTO incident_alerts (alert_id, incident_id, alert_json, received_at) VALUES (?, ?, ?, ?)")
                    .bind(&alert.id.0)
                    .bind(&incident)
                    .bind(serde_json::to_string(alert)?)
                    .bind(&now)
                    .execute(&mut *tx)
                    .await?;
                let grouped: i64 = sqlx::query_scalar(
                    "SELECT count(*) FROM incident_alerts WHERE incident_id = ?",
                )
                .bind(&incident)
                .fetch_one(&mut *tx)
                .await?;
                outbox::enqueue(
                    &mut tx,
                    &incident,
                    &Job::AttachAlert {
                        alert_id: alert.id.0.clone(),
                    },
                )
                .await?;
                let text = format!(
                    ":repeat: Another alert for this rule on {}: `{}` at {} — grouped into this incident ({} alerts so far) and attached to its case; no new approval request. Ask here if new commands are needed.",
                    crate::slack_app::blocks::escape(&alert.host_name),
                    crate::slack_app::blocks::escape(&alert.id.0),
                    alert.timestamp.format("%Y-%m-%d %H:%M:%S UTC"),
                    grouped + 1
                );
                outbox::enqueue(&mut tx, &incident, &Job::ThreadReply { text }).await?;
                Store::audit(
                    &mut tx,
                    &incident,
                    "triage-bot",
                    "AlertGrouped",
                    json!({"alert_id": alert.id.0, "index": alert.index}),
                )
                .await?;
                tx.commit().await?;
                return Ok(Ingested::Grouped(IncidentId(incident)));
            }
        }
        let inserted = sqlx::query(
            "INSERT INTO incidents (id, alert_id, source, state, host_name, alert_json, created_at, updated_at)
             VALUES (?, ?, ?, 'received', ?, ?, ?, ?) ON CONFLICT(alert_id) DO NOTHING",
        )
        .bind(&id.0)
        .bind(&alert.id.0)
        .bind(source)
        .bind(&alert.host_name)
        .bind(serde_json::to_string(alert)?)
        .bind(&now)
        .bind(&now)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if inserted == 0 {
            return Ok(Ingested::Duplicate);
        }
        outbox::enqueue(&mut tx, &id.0, &Job::Triage).await?;
        Store::audit(
            &mut tx,
            &id.0,
            "triage-bot",
            "AlertReceived",
            json!({"alert_id": alert.id.0, "source": source, "index": alert.index}),
        )
        .await?;
        tx.commit().await?;
        Ok(Ingested::New(id))
    }

    /// The alerts grouped into an incident after its first one.
    pub async fn grouped_alerts(&self, incident: &str) -> anyhow::Result<Vec<Alert>> {
        let rows: Vec<String> = sqlx::query_scalar(
            "SELECT alert_json FROM incident_alerts WHERE incident_id = ? ORDER BY received_at",
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
             VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
        )
        .bind(source)
        .bind(doc_id)
        .bind(index)
        .bind(reason)
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

    pub async fn checkpoint(&self, source: &str) -> anyhow::Result<Option<i64>> {
        Ok(
            sqlx::query_scalar("SELECT last_ts_ms FROM checkpoints WHERE source = ?")
                .bind(source)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    /// Moves the checkpoint forward only (a slow page never rewinds it).
    pub async fn save_checkpoint(&self, source: &str, ts_ms: i64) -> anyhow::Result<()> {
        sqlx::query(
            "INSERT INTO checkpoints (source, last_ts_ms, updated_at) VALUES (?, ?, ?)
             ON CONFLICT(source) DO UPDATE SET last_ts_ms = max(last_ts_ms, excluded.last_ts_ms), updated_at = excluded.updated_at",
        )
        .bind(source)
        .bind(ts_ms)
        .bind(now_text())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn incident(&self, id: &str) -> anyhow::Result<Option<IncidentRow>> {
        Ok(sqlx::query_as("SELECT * FROM incidents WHERE id = ?")
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
        conn: &mut SqliteConnection,
        id: &str,
        next: IncidentState,
    ) -> anyhow::Result<()> {
        let current: Option<String> =
            sqlx::query_scalar("SELECT state FROM incidents WHERE id = ?")
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
            "UPDATE incidents SET state = ?, updated_at = ? WHERE id = ? AND state = ?",
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
                "UPDATE incidents SET conversation_id = ?, updated_at = ? WHERE id = ?"
            }
            IncidentField::Error => "UPDATE incidents SET error = ?, updated_at = ? WHERE id = ?",
            IncidentField::SlackPermalink => {
                "UPDATE incidents SET slack_permalink = ?, updated_at = ? WHERE id = ?"
            }
        };
        sqlx::query(sql)
            .bind(value)
            .bind(now_text())
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn set_slack_message(&self, id: &str, channel: &str, ts: &str) -> anyhow::Result<()> {
        sqlx::query(
            "UPDATE incidents SET slack_channel = ?, slack_ts = ?, updated_at = ?,
                    approval_requested_at = coalesce(approval_requested_at, ?) WHERE id = ?",
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
            "UPDATE incidents SET case_id = ?, case_version = ?, updated_at = ? WHERE id = ?",
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
            sqlx::query_as("SELECT * FROM incidents WHERE slack_channel = ? AND slack_ts = ?")
                .bind(channel)
                .bind(thread_ts)
                .fetch_optional(&self.pool)
                .await?,
        )
    }
}
