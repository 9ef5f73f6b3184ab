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
pub mod replica;

use std::str::FromStr;

use anyhow::Context;
use chrono::{DateTime, SecondsFormat, Utc};
use sqlx::AnyConnection;
use sqlx::AnyPool;
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};

pub use incidents::IncidentRow;
pub use outbox::{Job, OutboxRow};
pub use replica::{Backend, HostLease, Lead, Replica};

/// The two migration sets, paired by version and name (`tests/checks/migrations.rs`).
pub static SQLITE_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
pub static POSTGRES_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// The PostgreSQL advisory lock every write transaction takes first (see [`Store::write_tx`]).
const WRITE_LOCK: i64 = 0x7472_6961_6765_0001;

/// Handle to the database; cheap to clone.
#[derive(Clone, Debug)]
pub struct Store {
    pub pool: AnyPool,
    backend: Backend,
    /// This process's name among the replicas: the `claimed_by` of the jobs it runs.
    replica_id: std::sync::Arc<str>,
}

impl Store {
    /// Opens the database named by a `sqlite:` or `postgres:` URL (creating a SQLite file if
    /// needed) and runs pending migrations.
    pub async fn connect(url: &str) -> anyhow::Result<Self> {
        let store = Self::open(url).await?;
        store
            .migrator()
            .run(&store.pool)
            .await
            .context("database migration failed")?;
        Ok(store)
    }

    fn migrator(&self) -> &'static sqlx::migrate::Migrator {
        match self.backend {
            Backend::Sqlite => &SQLITE_MIGRATOR,
            Backend::Postgres => &POSTGRES_MIGRATOR,
        }
    }

    /// Opens the database without migrating it (`check-config --connect` looks before anything
    /// is changed).
    pub async fn open(url: &str) -> anyhow::Result<Self> {
        sqlx::any::install_default_drivers();
        let backend = Backend::of_url(url)?;
        let url = match backend {
            // A file is created unless the URL says otherwise, as the default URL does.
            Backend::Sqlite if !url.contains("mode=") && !url.contains(":memory:") => {
                let sep = if url.contains('?') { '&' } else { '?' };
                format!("{url}{sep}mode=rwc")
            }
            _ => url.to_string(),
        };
        let opts = AnyConnectOptions::from_str(&url)
            .with_context(|| format!("DATABASE_URL is not a valid {backend} URL"))?;
        let pool = AnyPoolOptions::new()
            .max_connections(8)
            .min_connections(1)
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        // WAL lets readers go on beside the one writer; the busy timeout makes
                        // a writer queue for the lock instead of failing.
                        for pragma in [
                            "PRAGMA journal_mode = WAL",
                            "PRAGMA busy_timeout = 10000",
                            "PRAGMA foreign_keys = ON",
                        ] {
                            sqlx::query(pragma).execute(&mut *conn).await?;
                        }
                    }
                    Ok(())
                })
            })
            .connect_with(opts)
            .await
            .with_context(|| format!("cannot open the {backend} database"))?;
        Ok(Self {
            pool,
            backend,
            replica_id: uuid::Uuid::new_v4().to_string().into(),
        })
    }

    /// Makes an empty database on the PostgreSQL server of `admin_url` and returns its URL: each
    /// test gets its own. Tests only.
    pub async fn scratch_postgres(admin_url: &str) -> anyhow::Result<String> {
        use sqlx::Connection;
        sqlx::any::install_default_drivers();
        let mut admin = AnyConnection::connect(admin_url)
            .await
            .with_context(|| "cannot reach the test PostgreSQL (TRIAGE_BOT_TEST_POSTGRES)")?;
        // Letters and digits only: safe to name in the statement.
        let name = format!("tb_{}", uuid::Uuid::new_v4().simple());
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut admin)
            .await?;
        admin.close().await?;
        let (base, query) = admin_url.split_once('?').unwrap_or((admin_url, ""));
        let server = match base.split_once("://") {
            Some((scheme, rest)) => {
                format!("{scheme}://{}", rest.split('/').next().unwrap_or(rest))
            }
            None => anyhow::bail!("TRIAGE_BOT_TEST_POSTGRES is not a postgres:// URL"),
        };
        Ok(match query {
            "" => format!("{server}/{name}"),
            q => format!("{server}/{name}?{q}"),
        })
    }

    /// The stores a store test runs on: a SQLite file in `dir`, and a scratch PostgreSQL database
    /// (`scripts/test` provides the server). Tests only.
    pub async fn for_tests(dir: &std::path::Path) -> Vec<Store> {
        let sqlite = format!("sqlite://{}?mode=rwc", dir.join("t.db").display());
        let postgres = crate::config::test_postgres().expect(
            "TRIAGE_BOT_TEST_POSTGRES is not set: run the tests with scripts/test, which starts a \
             throwaway PostgreSQL for them",
        );
        let postgres = Self::scratch_postgres(&postgres).await.unwrap();
        vec![
            Self::connect(&sqlite).await.unwrap(),
            Self::connect(&postgres).await.unwrap(),
        ]
    }

    /// Migrations this build has that the database has not run yet (all of them for a new
    /// database). The service runs them at start.
    pub async fn pending_migrations(&self) -> usize {
        let applied: i64 =
            sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations WHERE success")
                .fetch_one(&self.pool)
                .await
                .unwrap_or(0);
        self.migrator()
            .iter()
            .count()
            .saturating_sub(applied as usize)
    }

    /// Whether the connection to the database is encrypted: `None` on SQLite (a local file).
    pub async fn encrypted(&self) -> Result<Option<bool>, sqlx::Error> {
        match self.backend {
            Backend::Sqlite => Ok(None),
            Backend::Postgres => sqlx::query_scalar(
                "SELECT coalesce((SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()), false)",
            )
            .fetch_one(&self.pool)
            .await
            .map(Some),
        }
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub fn replica_id(&self) -> &str {
        &self.replica_id
    }

    /// This store as the replica named `name` (`REPLICA_NAME`): its id becomes `name-XXXXXXXX`,
    /// readable in logs and claims, and still this process's own.
    pub fn named(mut self, name: &str) -> Self {
        let suffix = uuid::Uuid::new_v4().simple().to_string();
        self.replica_id = format!("{name}-{}", &suffix[..8]).into();
        self
    }

    /// A write transaction that takes the write lock up front. On SQLite, `BEGIN IMMEDIATE`:
    /// concurrent writers queue on the busy timeout instead of failing with SQLITE_BUSY on lock
    /// upgrade. On PostgreSQL, one transaction-scoped advisory lock shared by every replica: the
    /// store's read-check-write transactions (the first decision wins, a job is enqueued once)
    /// see each other's commits exactly as on SQLite. Single-statement claims do not take it.
    pub async fn write_tx(&self) -> Result<sqlx::Transaction<'static, sqlx::Any>, sqlx::Error> {
        match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await,
            Backend::Postgres => {
                let mut tx = self.pool.begin().await?;
                sqlx::query("SELECT 1 FROM pg_advisory_xact_lock($1)")
                    .bind(WRITE_LOCK)
                    .execute(&mut *tx)
                    .await?;
                Ok(tx)
            }
        }
    }

    pub async fn ping(&self) -> bool {
        sqlx::query("SELECT 1").execute(&self.pool).await.is_ok()
    }

    /// Appends an audit record.
    pub async fn audit(
        conn: &mut AnyConnection,
        incident: &str,
        actor: &str,
        event: &str,
        detail: serde_json::Value,
    ) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO audit (incident_id, at, actor, event, detail) VALUES ($1, $2, $3, $4, $5)",
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
            "SELECT at, actor, event, detail FROM audit WHERE incident_id = $1 ORDER BY id",
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

/// Free text as the store keeps it: the last guard for text that may still carry NUL (error
/// messages quoting outside text). Values that are compared or hashed are made NUL-free where
/// they enter ([`crate::text::nul_free`]), so this changes nothing for them. (JSON columns need
/// nothing: serde_json escapes NUL.)
pub(crate) fn text(s: &str) -> String {
    crate::text::nul_free(s).into_owned()
}

pub fn now_text() -> String {
    time_text(Utc::now())
}

pub fn time_text(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Host leases across replicas (`replica::Replica::hold_host`).
impl Store {
    /// Takes `host` for `holder` if nobody holds it.
    pub async fn take_host(&self, host: &str, holder: &str) -> Result<bool, sqlx::Error> {
        let r = sqlx::query(
            "INSERT INTO host_leases (host, holder, since) VALUES ($1, $2, $3)
             ON CONFLICT (host) DO NOTHING",
        )
        .bind(host)
        .bind(holder)
        .bind(now_text())
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected() == 1)
    }

    pub async fn host_holder(&self, host: &str) -> Result<Option<String>, sqlx::Error> {
        sqlx::query_scalar("SELECT holder FROM host_leases WHERE host = $1")
            .bind(host)
            .fetch_optional(&self.pool)
            .await
    }

    /// Lets go of `host` if `holder` still holds it.
    pub async fn release_host(&self, host: &str, holder: &str) -> Result<(), sqlx::Error> {
        sqlx::query("DELETE FROM host_leases WHERE host = $1 AND holder = $2")
            .bind(host)
            .bind(holder)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

impl Store {
    /// Every (table, column) of the schema, sorted: the two migration sets must give the same.
    pub async fn columns(&self) -> Result<Vec<(String, String)>, sqlx::Error> {
        let sql = match self.backend {
            Backend::Sqlite => {
                "SELECT m.name, p.name FROM sqlite_master m JOIN pragma_table_info(m.name) p
                 WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%' AND m.name NOT LIKE '_sqlx%'
                 ORDER BY 1, 2"
            }
            Backend::Postgres => {
                "SELECT table_name::text, column_name::text FROM information_schema.columns
                 WHERE table_schema = current_schema() AND table_name NOT LIKE '_sqlx%'
                 ORDER BY 1, 2"
            }
        };
        sqlx::query_as(sql).fetch_all(&self.pool).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_migration_sets_are_paired_by_version_and_name() {
        let names = |dir: &str| {
            let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
            let mut v: Vec<String> = std::fs::read_dir(path)
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            v.sort();
            v
        };
        let sqlite = names("migrations/sqlite");
        assert!(sqlite.len() >= 12, "{sqlite:?}");
        assert_eq!(sqlite, names("migrations/postgres"));
    }

    #[tokio::test]
    async fn both_backends_migrate_to_the_same_tables_and_columns() {
        let dir = tempfile::tempdir().unwrap();
        let stores = Store::for_tests(dir.path()).await;
        let sqlite = stores[0].columns().await.unwrap();
        let postgres = stores[1].columns().await.unwrap();
        assert!(sqlite.len() > 100, "{} columns", sqlite.len());
        assert!(sqlite.contains(&("outbox".into(), "claimed_by".into())));
        assert_eq!(sqlite, postgres);
    }

    #[test]
    fn nul_is_kept_as_a_replacement_character() {
        assert_eq!(text("a\0b"), "a\u{FFFD}b");
        assert_eq!(text("plain"), "plain");
    }
}
