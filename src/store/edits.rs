//! Queries on what analysts did to a proposal: edits made in the Edit… modal (`proposal_edits`),
//! revisions that supersede a proposal (`incidents.superseded_by`), and the response-time marks
//! (`incidents.acknowledged_at`, `responded_at`).
//!
//! An edit replaces the incident's `commands` rows with the list the analyst submitted and the
//! approval hash with the one binding that list — only while the incident awaits approval and
//! still has the hash the modal was opened for (compare-and-set), so a stale modal changes nothing.

use super::text;
use sqlx::AnyConnection;

use super::Store;
use crate::domain::{CommandKind, ProposedCommand};

/// One command of a submitted edit: before → after.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct EditRow {
    pub incident_id: String,
    pub round: i64,
    pub seq: i64,
    #[sqlx(try_from = "String")]
    pub kind: CommandKind,
    pub before_text: String,
    pub after_text: Option<String>,
    pub change: String,
    pub edited_by: String,
    pub edited_at: String,
}

/// What one submission of the Edit… modal changes.
pub struct EditSubmission<'a> {
    pub incident: &'a str,
    /// The approval hash the modal was opened for.
    pub old_hash: &'a str,
    /// The hash binding the host and `commands`.
    pub new_hash: &'a str,
    /// The list that will be approved, numbered from 1.
    pub commands: &'a [ProposedCommand],
    /// `(seq shown, kind, before, after or None when dropped)` for every command shown.
    pub changes: &'a [(i64, CommandKind, String, Option<String>)],
    pub user: &'a str,
    pub at: &'a str,
}

impl Store {
    /// Replaces the proposal with the edited list. False (and nothing written) when the
    /// incident is no longer awaiting approval or its proposal changed since the modal opened.
    /// A first approval given for the old list is withdrawn: it approved something else.
    pub async fn apply_edit(
        conn: &mut AnyConnection,
        e: &EditSubmission<'_>,
    ) -> anyhow::Result<bool> {
        let changed = sqlx::query(
            "UPDATE incidents SET approval_hash = $1, first_approver = NULL, first_approved_at = NULL,
                    updated_at = $2
             WHERE id = $3 AND state = 'awaiting_approval' AND approval_hash = $4",
        )
        .bind(e.new_hash)
        .bind(e.at)
        .bind(e.incident)
        .bind(e.old_hash)
        .execute(&mut *conn)
        .await?
        .rows_affected();
        if changed != 1 {
            return Ok(false);
        }
        sqlx::query("DELETE FROM commands WHERE incident_id = $1")
            .bind(e.incident)
            .execute(&mut *conn)
            .await?;
        Store::insert_commands(conn, e.incident, e.commands).await?;
        let round: i64 = sqlx::query_scalar(
            "SELECT coalesce(max(round), 0) + 1 FROM proposal_edits WHERE incident_id = $1",
        )
        .bind(e.incident)
        .fetch_one(&mut *conn)
        .await?;
        for (seq, kind, before, after) in e.changes {
            let change = match after {
                None => "dropped",
                Some(a) if a == before => "unchanged",
                Some(_) => "edited",
            };
            sqlx::query(
                "INSERT INTO proposal_edits (incident_id, round, seq, kind, before_text, after_text,
                    change, edited_by, edited_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            )
            .bind(e.incident)
            .bind(round)
            .bind(seq)
            .bind(kind.as_str())
            .bind(text(before))
            .bind(after.as_deref().map(text))
            .bind(change)
            .bind(e.user)
            .bind(e.at)
            .execute(&mut *conn)
            .await?;
        }
        Ok(true)
    }

    /// Every edit of one incident, in order.
    pub async fn proposal_edits(&self, incident: &str) -> anyhow::Result<Vec<EditRow>> {
        Ok(sqlx::query_as(
            "SELECT incident_id, round, seq, kind, before_text, after_text, change, edited_by, edited_at
             FROM proposal_edits WHERE incident_id = $1 ORDER BY round, seq",
        )
        .bind(incident)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Every edit of incidents created at or after `since` (RFC 3339 text), for the report.
    pub async fn proposal_edits_since(&self, since: &str) -> anyhow::Result<Vec<EditRow>> {
        Ok(sqlx::query_as(
            "SELECT e.incident_id, e.round, e.seq, e.kind, e.before_text, e.after_text, e.change,
                    e.edited_by, e.edited_at
             FROM proposal_edits e JOIN incidents i ON i.id = e.incident_id
             WHERE i.created_at >= $1 ORDER BY e.incident_id, e.round, e.seq",
        )
        .bind(since)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Incidents created at or after `since` (RFC 3339 text), oldest first.
    pub async fn incidents_since(&self, since: &str) -> anyhow::Result<Vec<super::IncidentRow>> {
        Ok(
            sqlx::query_as("SELECT * FROM incidents WHERE created_at >= $1 ORDER BY created_at")
                .bind(since)
                .fetch_all(&self.pool)
                .await?,
        )
    }

    /// The approval hash as it stands inside `conn`'s transaction.
    pub async fn approval_hash_of(
        conn: &mut AnyConnection,
        id: &str,
    ) -> Result<Option<String>, sqlx::Error> {
        Ok(sqlx::query_scalar::<_, Option<String>>(
            "SELECT approval_hash FROM incidents WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?
        .flatten())
    }

    /// Who acknowledged an incident and when, as it stands inside `conn`'s transaction.
    pub async fn acknowledgement(
        conn: &mut AnyConnection,
        id: &str,
    ) -> Result<(Option<String>, Option<String>), sqlx::Error> {
        Ok(
            sqlx::query_as("SELECT acknowledged_at, acknowledged_by FROM incidents WHERE id = $1")
                .bind(id)
                .fetch_optional(&mut *conn)
                .await?
                .unwrap_or((None, None)),
        )
    }

    /// The proposal awaiting approval in the thread of `root`: the root itself, else its newest
    /// follow-up proposal still open.
    pub async fn open_proposal_in_thread(
        &self,
        root: &str,
    ) -> anyhow::Result<Option<super::IncidentRow>> {
        Ok(sqlx::query_as(
            "SELECT * FROM incidents
             WHERE (id = $1 OR parent_incident = $1) AND state = 'awaiting_approval'
             ORDER BY (id = $1), created_at DESC, id DESC LIMIT 1",
        )
        .bind(root)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// Records which revision replaced a proposal (the state move is the caller's).
    pub async fn record_superseded(
        conn: &mut AnyConnection,
        id: &str,
        by: &str,
    ) -> Result<(), sqlx::Error> {
        sqlx::query("UPDATE incidents SET superseded_by = $1 WHERE id = $2")
            .bind(by)
            .bind(id)
            .execute(&mut *conn)
            .await?;
        Ok(())
    }

    /// The first human decision on an incident (approval, first approval, edit, decline,
    /// revision request). True when this was the first.
    pub async fn mark_acknowledged(
        conn: &mut AnyConnection,
        id: &str,
        user: &str,
        at: &str,
    ) -> Result<bool, sqlx::Error> {
        let n = sqlx::query(
            "UPDATE incidents SET acknowledged_at = $1, acknowledged_by = $2
             WHERE id = $3 AND acknowledged_at IS NULL",
        )
        .bind(at)
        .bind(user)
        .bind(id)
        .execute(&mut *conn)
        .await?
        .rows_affected();
        Ok(n == 1)
    }

    /// When the response to an incident ended. True when this was the first time; the
    /// proposals it superseded (a chain of revisions) end with it, and are returned.
    pub async fn mark_responded(
        conn: &mut AnyConnection,
        id: &str,
        at: &str,
    ) -> Result<(bool, Vec<String>), sqlx::Error> {
        let mut ended = Vec::new();
        let n = sqlx::query(
            "UPDATE incidents SET responded_at = $1 WHERE id = $2 AND responded_at IS NULL",
        )
        .bind(at)
        .bind(id)
        .execute(&mut *conn)
        .await?
        .rows_affected();
        let mut current = id.to_string();
        // A chain of revisions is short; the bound only guards against a hand-made cycle.
        for _ in 0..32 {
            let older: Option<String> = sqlx::query_scalar(
                "SELECT id FROM incidents WHERE superseded_by = $1 AND responded_at IS NULL",
            )
            .bind(&current)
            .fetch_optional(&mut *conn)
            .await?;
            let Some(older) = older else { break };
            sqlx::query("UPDATE incidents SET responded_at = $1 WHERE id = $2")
                .bind(at)
                .bind(&older)
                .execute(&mut *conn)
                .await?;
            ended.push(older.clone());
            current = older;
        }
        Ok((n == 1, ended))
    }
}
