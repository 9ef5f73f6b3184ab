//! Queries of the action policies: dispatch outcomes (why each alert was or was not paged),
//! policy groups, snoozes, digest windows, and the policy and route an incident carries.

use super::text;
use chrono::{DateTime, Utc};
use sqlx::AnyConnection;

use super::{Store, time_text};

/// One dispatch outcome to record.
#[derive(Debug, Clone)]
pub struct OutcomeRecord<'a> {
    pub alert_id: &'a str,
    pub source: &'a str,
    pub policy: Option<&'a str>,
    pub outcome: &'a str,
    pub reason: &'a str,
    pub rule: &'a str,
    pub host: &'a str,
    pub alert_status: &'a str,
    pub incident_id: Option<&'a str>,
    pub digest_window: Option<DateTime<Utc>>,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize)]
pub struct OutcomeRow {
    pub id: i64,
    pub alert_id: String,
    pub source: String,
    pub policy: Option<String>,
    pub outcome: String,
    pub reason: String,
    pub rule: String,
    pub host: String,
    pub alert_status: String,
    pub incident_id: Option<String>,
    pub digest_window: Option<String>,
    pub at: String,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct GroupRow {
    pub incident_id: String,
    pub opened_at: String,
    pub last_notified_at: String,
    pub status: String,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SnoozeRow {
    pub kind: String,
    pub value: String,
    pub until: String,
    pub created_by: String,
    pub created_at: String,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DigestRow {
    pub policy: String,
    pub window_start: String,
    pub window_end: String,
    pub channel: Option<String>,
}

/// Parses a stored time (RFC 3339).
pub fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

impl Store {
    pub async fn record_outcome(
        conn: &mut AnyConnection,
        r: &OutcomeRecord<'_>,
    ) -> Result<i64, sqlx::Error> {
        let id = sqlx::query_scalar(
            "INSERT INTO dispatch_outcomes (alert_id, source, policy, outcome, reason, rule, host,
                 alert_status, incident_id, digest_window, at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING id",
        )
        .bind(r.alert_id)
        .bind(r.source)
        .bind(r.policy)
        .bind(r.outcome)
        .bind(text(r.reason))
        .bind(text(r.rule))
        .bind(text(r.host))
        .bind(r.alert_status)
        .bind(r.incident_id)
        .bind(r.digest_window.map(time_text))
        .bind(time_text(r.at))
        .fetch_one(&mut *conn)
        .await?;
        Ok(id)
    }

    /// The status recorded with an alert's last outcome (`None`: never evaluated).
    pub async fn last_alert_status(
        conn: &mut AnyConnection,
        alert_id: &str,
    ) -> Result<Option<String>, sqlx::Error> {
        sqlx::query_scalar(
            "SELECT alert_status FROM dispatch_outcomes WHERE alert_id = $1 ORDER BY id DESC LIMIT 1",
        )
        .bind(alert_id)
        .fetch_optional(&mut *conn)
        .await
    }

    /// Every outcome recorded for an alert, oldest first.
    pub async fn outcomes_for_alert(&self, alert_id: &str) -> Result<Vec<OutcomeRow>, sqlx::Error> {
        sqlx::query_as(
            "SELECT id, alert_id, source, policy, outcome, reason, rule, host, alert_status,
                    incident_id, digest_window, at
             FROM dispatch_outcomes WHERE alert_id = $1 ORDER BY id",
        )
        .bind(alert_id)
        .fetch_all(&self.pool)
        .await
    }

    /// How many outcomes of each kind are recorded.
    pub async fn outcome_counts(&self) -> Result<Vec<(String, i64)>, sqlx::Error> {
        sqlx::query_as(
            "SELECT outcome, count(*) FROM dispatch_outcomes GROUP BY outcome ORDER BY outcome",
        )
        .fetch_all(&self.pool)
        .await
    }

    pub async fn policy_group(
        conn: &mut AnyConnection,
        policy: &str,
        key: &str,
    ) -> Result<Option<GroupRow>, sqlx::Error> {
        sqlx::query_as(
            "SELECT incident_id, opened_at, last_notified_at, status FROM policy_groups
             WHERE policy = $1 AND group_key = $2",
        )
        .bind(policy)
        .bind(key)
        .fetch_optional(&mut *conn)
        .await
    }

    /// Opens (or reopens) a group on a new incident.
    pub async fn open_group(
        conn: &mut AnyConnection,
        policy: &str,
        key: &str,
        incident: &str,
        at: DateTime<Utc>,
    ) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO policy_groups (policy, group_key, incident_id, opened_at, last_notified_at, status)
             VALUES ($1, $2, $3, $4, $5, 'active')
             ON CONFLICT (policy, group_key) DO UPDATE SET incident_id = excluded.incident_id,
                 opened_at = excluded.opened_at, last_notified_at = excluded.last_notified_at,
                 status = 'active'",
        )
        .bind(policy)
        .bind(key)
        .bind(incident)
        .bind(time_text(at))
        .bind(time_text(at))
        .execute(&mut *conn)
        .await?;
        Ok(())
    }

    /// Records that a group spoke at `at`, and its status now.
    pub async fn group_notified(
        conn: &mut AnyConnection,
        policy: &str,
        key: &str,
        at: DateTime<Utc>,
        status: &str,
    ) -> Result<(), sqlx::Error> {
        sqlx::query(
            "UPDATE policy_groups SET last_notified_at = $1, status = $2 WHERE policy = $3 AND group_key = $4",
        )
        .bind(time_text(at))
        .bind(status)
        .bind(policy)
        .bind(key)
        .execute(&mut *conn)
        .await?;
        Ok(())
    }

    /// Snoozes in force at `now`.
    pub async fn active_snoozes(
        conn: &mut AnyConnection,
        now: DateTime<Utc>,
    ) -> Result<Vec<SnoozeRow>, sqlx::Error> {
        sqlx::query_as(
            "SELECT kind, value, until, created_by, created_at FROM snoozes WHERE until > $1 ORDER BY until",
        )
        .bind(time_text(now))
        .fetch_all(&mut *conn)
        .await
    }

    /// Sets (or replaces) a snooze.
    pub async fn snooze(
        &self,
        kind: &str,
        value: &str,
        until: DateTime<Utc>,
        by: &str,
    ) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO snoozes (kind, value, until, created_by, created_at) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (kind, value) DO UPDATE SET until = excluded.until,
                 created_by = excluded.created_by, created_at = excluded.created_at",
        )
        .bind(kind)
        .bind(value)
        .bind(time_text(until))
        .bind(by)
        .bind(super::now_text())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Clears one snooze (`Some`) or all (`None`); returns how many were cleared.
    pub async fn clear_snoozes(&self, which: Option<(&str, &str)>) -> Result<u64, sqlx::Error> {
        let r = match which {
            Some((kind, value)) => {
                sqlx::query("DELETE FROM snoozes WHERE kind = $1 AND value = $2")
                    .bind(kind)
                    .bind(value)
                    .execute(&self.pool)
                    .await?
            }
            None => {
                sqlx::query("DELETE FROM snoozes")
                    .execute(&self.pool)
                    .await?
            }
        };
        Ok(r.rows_affected())
    }

    /// Notes a digest window (once per policy and window).
    pub async fn open_digest(
        conn: &mut AnyConnection,
        policy: &str,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        channel: Option<&str>,
    ) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO digests (policy, window_start, window_end, channel) VALUES ($1, $2, $3, $4)
             ON CONFLICT DO NOTHING",
        )
        .bind(policy)
        .bind(time_text(start))
        .bind(time_text(end))
        .bind(channel)
        .execute(&mut *conn)
        .await?;
        Ok(())
    }

    /// Digest windows that ended by `now` and have no message queued yet.
    pub async fn due_digests(&self, now: DateTime<Utc>) -> Result<Vec<DigestRow>, sqlx::Error> {
        sqlx::query_as(
            "SELECT policy, window_start, window_end, channel FROM digests
             WHERE queued_at IS NULL AND window_end <= $1 ORDER BY window_end",
        )
        .bind(time_text(now))
        .fetch_all(&self.pool)
        .await
    }

    /// Marks a digest queued; false when another tick got there first.
    pub async fn mark_digest_queued(
        conn: &mut AnyConnection,
        policy: &str,
        window_start: &str,
    ) -> Result<bool, sqlx::Error> {
        let r = sqlx::query(
            "UPDATE digests SET queued_at = $1 WHERE policy = $2 AND window_start = $3 AND queued_at IS NULL",
        )
        .bind(super::now_text())
        .bind(policy)
        .bind(window_start)
        .execute(&mut *conn)
        .await?;
        Ok(r.rows_affected() == 1)
    }

    /// The alerts of one digest window, counted per rule and host (most first).
    pub async fn digest_counts(
        &self,
        policy: &str,
        window_start: &str,
    ) -> Result<Vec<(String, String, i64)>, sqlx::Error> {
        sqlx::query_as(
            "SELECT rule, host, count(*) AS n FROM dispatch_outcomes
             WHERE policy = $1 AND digest_window = $2 GROUP BY rule, host ORDER BY n DESC, rule, host",
        )
        .bind(policy)
        .bind(window_start)
        .fetch_all(&self.pool)
        .await
    }

    /// Outcomes not yet copied to the outcome index, oldest first.
    pub async fn unindexed_outcomes(&self, limit: i64) -> Result<Vec<OutcomeRow>, sqlx::Error> {
        sqlx::query_as(
            "SELECT id, alert_id, source, policy, outcome, reason, rule, host, alert_status,
                    incident_id, digest_window, at
             FROM dispatch_outcomes WHERE indexed_at IS NULL ORDER BY id LIMIT $1",
        )
        .bind(limit)
        .fetch_all(&self.pool)
        .await
    }

    pub async fn mark_outcomes_indexed(&self, ids: &[i64]) -> Result<(), sqlx::Error> {
        let mut tx = self.write_tx().await?;
        let now = super::now_text();
        for id in ids {
            sqlx::query("UPDATE dispatch_outcomes SET indexed_at = $1 WHERE id = $2")
                .bind(&now)
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await
    }

    /// Records the policy and route an incident was opened under.
    pub async fn set_incident_policy(
        conn: &mut AnyConnection,
        incident: &str,
        policy: &str,
        route_json: &str,
    ) -> Result<(), sqlx::Error> {
        sqlx::query("UPDATE incidents SET policy = $1, route_json = $2 WHERE id = $3")
            .bind(policy)
            .bind(route_json)
            .bind(incident)
            .execute(&mut *conn)
            .await?;
        Ok(())
    }

    /// The route (JSON) an incident was opened under, if its policy set one.
    pub async fn incident_route(&self, incident: &str) -> Result<Option<String>, sqlx::Error> {
        let r: Option<Option<String>> =
            sqlx::query_scalar("SELECT route_json FROM incidents WHERE id = $1")
                .bind(incident)
                .fetch_optional(&self.pool)
                .await?;
        Ok(r.flatten())
    }

    /// Grouped alerts of an incident not yet attached to its case, oldest first.
    pub async fn unattached_grouped(
        &self,
        incident: &str,
    ) -> anyhow::Result<Vec<crate::domain::Alert>> {
        let rows: Vec<String> = sqlx::query_scalar(
            "SELECT alert_json FROM incident_alerts WHERE incident_id = $1 AND attached_at IS NULL
             ORDER BY received_at",
        )
        .bind(incident)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| Ok(serde_json::from_str(r)?)).collect()
    }

    /// One alert grouped into `incident`, with whether it is attached to the case yet.
    pub async fn grouped_alert(
        &self,
        incident: &str,
        alert_id: &str,
    ) -> anyhow::Result<Option<(crate::domain::Alert, bool)>> {
        let row: Option<(String, Option<String>)> = sqlx::query_as(
            "SELECT alert_json, attached_at FROM incident_alerts WHERE incident_id = $1 AND alert_id = $2",
        )
        .bind(incident)
        .bind(alert_id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|(json, at)| Ok((serde_json::from_str(&json)?, at.is_some())))
            .transpose()
    }

    /// Whether `incident` has a job of `kind` waiting to start (one that has not read anything
    /// yet, so work added now is still seen by it).
    pub async fn job_waiting(
        conn: &mut AnyConnection,
        incident: &str,
        kind: &str,
    ) -> Result<bool, sqlx::Error> {
        let n: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM outbox WHERE incident_id = $1 AND kind = $2 AND status = 'pending' AND attempts = 0",
        )
        .bind(incident)
        .bind(kind)
        .fetch_one(&mut *conn)
        .await?;
        Ok(n > 0)
    }

    /// Records grouped alerts as attached to their incident's case.
    pub async fn mark_grouped_attached(&self, alert_ids: &[&str]) -> Result<(), sqlx::Error> {
        let mut tx = self.write_tx().await?;
        let now = super::now_text();
        for id in alert_ids {
            sqlx::query("UPDATE incident_alerts SET attached_at = $1 WHERE alert_id = $2")
                .bind(&now)
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await
    }
}
