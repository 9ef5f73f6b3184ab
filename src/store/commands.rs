//! Queries on `commands`: the exact proposed commands and each one's run record.
//!
//! A command moves through [`CommandStatus`]: `proposed → running → succeeded | failed`, or
//! `running → interrupted` when the process died mid-run (it is then never re-run without a fresh
//! approval), or `proposed → skipped | blocked`. Rows are typed when read: a stored kind, status
//! or risk that is none of the known names fails to decode, so nothing runs on a guess.

use super::text;
use sqlx::AnyConnection;

use super::{Store, now_text};
use crate::domain::{CommandKind, CommandStatus, ProposedCommand, Risk};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct CommandRow {
    pub incident_id: String,
    pub seq: i64,
    #[sqlx(try_from = "String")]
    pub kind: CommandKind,
    pub text: String,
    #[sqlx(try_from = "String")]
    pub status: CommandStatus,
    pub exit_code: Option<i64>,
    pub stdout: Option<String>,
    pub stderr: Option<String>,
    pub error: Option<String>,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    #[sqlx(try_from = "String")]
    pub risk: Risk,
    pub risk_reasons: String,
    /// Where the command runs on its host (JSON), recorded before it was sent.
    pub remote: Option<String>,
}

impl CommandRow {
    pub fn proposed(&self) -> ProposedCommand {
        ProposedCommand {
            seq: self.seq,
            kind: self.kind,
            text: self.text.clone(),
            risk: self.risk,
            reasons: serde_json::from_str(&self.risk_reasons).unwrap_or_default(),
        }
    }
}

/// The outcome of one command run.
#[derive(Debug, Clone)]
pub struct CommandResult {
    pub succeeded: bool,
    pub exit_code: Option<i64>,
    pub stdout: String,
    pub stderr: String,
    pub error: Option<String>,
}

impl Store {
    pub async fn insert_commands(
        conn: &mut AnyConnection,
        incident: &str,
        cmds: &[ProposedCommand],
    ) -> Result<(), sqlx::Error> {
        for c in cmds {
            sqlx::query(
                "INSERT INTO commands (incident_id, seq, kind, text, risk, risk_reasons)
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(incident)
            .bind(c.seq)
            .bind(c.kind.as_str())
            .bind(text(&c.text))
            .bind(c.risk.as_str())
            .bind(serde_json::to_string(&c.reasons).unwrap_or_else(|_| "[]".into()))
            .execute(&mut *conn)
            .await?;
        }
        Ok(())
    }

    pub async fn commands(&self, incident: &str) -> anyhow::Result<Vec<CommandRow>> {
        Ok(
            sqlx::query_as("SELECT * FROM commands WHERE incident_id = $1 ORDER BY seq")
                .bind(incident)
                .fetch_all(&self.pool)
                .await?,
        )
    }

    /// Marks a command as started. Committed before the command is sent, so a crash after this
    /// point can never lead to a silent second run.
    pub async fn start_command(&self, incident: &str, seq: i64) -> anyhow::Result<bool> {
        let r = sqlx::query("UPDATE commands SET status = 'running', started_at = $1 WHERE incident_id = $2 AND seq = $3 AND status = 'proposed'")
            .bind(now_text())
            .bind(incident)
            .bind(seq)
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected() == 1)
    }

    pub async fn finish_command(
        &self,
        incident: &str,
        seq: i64,
        result: &CommandResult,
    ) -> anyhow::Result<()> {
        sqlx::query(
            "UPDATE commands SET status = $1, exit_code = $2, stdout = $3, stderr = $4, error = $5, finished_at = $6
             WHERE incident_id = $7 AND seq = $8 AND status = 'running'",
        )
        .bind(if result.succeeded { "succeeded" } else { "failed" })
        .bind(result.exit_code)
        .bind(text(&result.stdout))
        .bind(text(&result.stderr))
        .bind(result.error.as_deref().map(text))
        .bind(now_text())
        .bind(incident)
        .bind(seq)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Where a started command runs on its host (JSON from the runner), before it is sent.
    pub async fn set_command_remote(
        &self,
        incident: &str,
        seq: i64,
        remote: &str,
    ) -> anyhow::Result<()> {
        let r = sqlx::query(
            "UPDATE commands SET remote = $1 WHERE incident_id = $2 AND seq = $3 AND status = 'running'",
        )
        .bind(remote)
        .bind(incident)
        .bind(seq)
        .execute(&self.pool)
        .await?;
        anyhow::ensure!(
            r.rows_affected() == 1,
            "command {seq} of incident {incident} is not running"
        );
        Ok(())
    }

    /// A command that was running when the process died and whose outcome could not be
    /// collected from the host: `interrupted`, with the reason.
    pub async fn command_outcome_unknown(
        &self,
        incident: &str,
        seq: i64,
        reason: &str,
    ) -> anyhow::Result<()> {
        sqlx::query(
            "UPDATE commands SET status = 'interrupted', finished_at = $1, error = $2
             WHERE incident_id = $3 AND seq = $4 AND status = 'running'",
        )
        .bind(now_text())
        .bind(text(reason))
        .bind(incident)
        .bind(seq)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// A command marked running whose host ids were never recorded was never sent: back to
    /// `proposed`, as if it had not been started.
    pub async fn command_not_sent(&self, incident: &str, seq: i64) -> anyhow::Result<()> {
        sqlx::query(
            "UPDATE commands SET status = 'proposed', started_at = NULL
             WHERE incident_id = $1 AND seq = $2 AND status = 'running' AND remote IS NULL",
        )
        .bind(incident)
        .bind(seq)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// A blocked command is recorded as such and never started.
    pub async fn block_command(&self, incident: &str, seq: i64) -> anyhow::Result<()> {
        sqlx::query(
            "UPDATE commands SET status = 'blocked', finished_at = $1,
                    error = 'blocked by the safety gate; never run'
             WHERE incident_id = $2 AND seq = $3 AND status = 'proposed'",
        )
        .bind(now_text())
        .bind(incident)
        .bind(seq)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Commands that were running when the process died become `interrupted`; the rest of the
    /// batch is skipped. Returns how many were interrupted.
    pub async fn interrupt_commands(
        conn: &mut AnyConnection,
        incident: &str,
    ) -> anyhow::Result<u64> {
        let n = sqlx::query("UPDATE commands SET status = 'interrupted', finished_at = $1, error = 'outcome unknown: triage-bot stopped while this command was running; it was not re-run' WHERE incident_id = $2 AND status = 'running'")
            .bind(now_text())
            .bind(incident)
            .execute(&mut *conn)
            .await?
            .rows_affected();
        sqlx::query(
            "UPDATE commands SET status = 'skipped' WHERE incident_id = $1 AND status = 'proposed'",
        )
        .bind(incident)
        .execute(&mut *conn)
        .await?;
        Ok(n)
    }

    /// Remediation not approved ("investigation only") is never started.
    pub async fn skip_remediation(
        conn: &mut AnyConnection,
        incident: &str,
    ) -> Result<(), sqlx::Error> {
        sqlx::query("UPDATE commands SET status = 'skipped', error = 'not approved (investigation only)' WHERE incident_id = $1 AND kind = 'remediation' AND status = 'proposed'")
            .bind(incident)
            .execute(&mut *conn)
            .await?;
        Ok(())
    }

    /// The commands a stopped batch did not complete: those interrupted mid-run and those
    /// skipped without an error of their own, in order.
    pub async fn unfinished_commands(
        conn: &mut AnyConnection,
        incident: &str,
    ) -> Result<Vec<(CommandKind, String)>, sqlx::Error> {
        let rows: Vec<(String, String)> = sqlx::query_as(
            "SELECT kind, text FROM commands WHERE incident_id = $1
               AND status = 'skipped' AND error IS NULL ORDER BY seq",
        )
        .bind(incident)
        .fetch_all(&mut *conn)
        .await?;
        rows.into_iter()
            .map(|(kind, text)| {
                CommandKind::try_from(kind)
                    .map(|k| (k, text))
                    .map_err(|e| sqlx::Error::Decode(Box::new(e)))
            })
            .collect()
    }
}
