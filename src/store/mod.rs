//! Persistence: the sqlx pool, migrations, and the queries of each table.
//!
//! Every state change is one transaction that also writes the outbox rows for the side effects it
//! implies ([`outbox`]), so a crash at any point leaves either both or neither.

pub mod commands;
pub mod dispatch;
pub mod edits;
pub mod enrichment;
pub mod handlers;
pub mod incidents;
pub mod outbox;

use std::str::FromStr;
use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, SecondsFormat, Utc};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};

pub use incidents::IncidentRow;
pub use outbox::{Job, OutboxRow};

pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Handle to the database; cheap to clone.
#[derive(Clone, Debug)]
pub struct Store {
    pub pool: SqlitePool,
}

impl Store {
    /// Opens (creating if needed) the database and runs pending migrations.
    pub async fn connect(url: &str) -> anyhow::Result<Self> {
        let opts = SqliteConnectOptions::from_str(url)
            .with_context(|| "DATABASE_URL is not a valid sqlite URL")?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .min_connections(1)
            .connect_with(opts)
            .await
            .context("cannot open the database")?;
        MIGRATOR
            .run(&pool)
            .await
            .context("database migration failed")?;
        Ok(Self { pool })
    }

    /// A write transaction that takes the write lock up front, so concurrent writers queue on
    /// the busy timeout instead of failing with SQLITE_BUSY on lock upgrade.
    pub async fn write_tx(&self) -> Result<sqlx::Transaction<'static, sqlx::Sqlite>, sqlx::Error> {
        self.pool.begin_with("BEGIN IMMEDIATE").await
    }

    pub async fn ping(&self) -> bool {
        sqlx::query("SELECT 1").execute(&self.pool).await.is_ok()
    }

    /// Appends an audit record.
    pub async fn audit(
        conn: &mut sqlx::SqliteConnection,
        incident: &str,
        actor: &str,
        event: &str,
        detail: serde_json::Value,
    ) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO audit (incident_id, at, actor, event, detail) VALUES (?, ?, ?, ?, ?)",
        )
        .bind(incident)
        .bind(now_text())
        .bind(actor)
        .bind(event)
        .bind(detail.to_string())
        .execute(conn)
        .await?;
        Ok(())
    }

    pub async fn audit_trail(&self, incident: &str) -> Result<Vec<AuditRow>, sqlx::Error> {
        sqlx::query_as(
            "SELECT at, actor, event, detail FROM audit WHERE incident_id = ? ORDER BY id",
        )
        .bind(incident)
        .fetch_all(&self.pool)
        .await
    }
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AuditRow {
    pub at: String,
    pub actor: String,
    pub event: String,
    pub detail: String,
}

pub fn now_text() -> String {
    time_text(Utc::now())
}

pub fn time_text(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}
