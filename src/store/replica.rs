//! Several replicas on one database: which backend the store runs on, each replica's liveness,
//! and which replica leads the singleton work (the pollers and the clocks).
//!
//! On PostgreSQL a replica's liveness is a session advisory lock held on a connection of its
//! own. When the process dies, that connection closes and the server drops the lock at once, so a
//! survivor takes over the dead replica's running jobs without waiting for a heartbeat to go
//! stale. Leadership is another session lock on the same connection, so it ends the same way.
//! If the connection is lost while the process lives, the others may already be taking over its
//! jobs: [`Replica::lost`] resolves and the service stops rather than run on beside them.
//!
//! SQLite is one replica by construction (one file on one host): every replica other than this
//! one is gone, and this one leads.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use sqlx::{AnyConnection, Connection};
use tokio::sync::Mutex;

use super::Store;

/// The database the store runs on, from the scheme of `DATABASE_URL`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn of_url(url: &str) -> anyhow::Result<Self> {
        if url.starts_with("sqlite:") {
            Ok(Self::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Self::Postgres)
        } else {
            anyhow::bail!("DATABASE_URL must start with sqlite: or postgres://")
        }
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Sqlite => "SQLite",
            Self::Postgres => "PostgreSQL",
        })
    }
}

/// The singleton work one replica leads, each under an advisory lock of its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lead {
    /// Polling the alert indices, the approval clock, digests and the outcome index (`serve`).
    Main,
    /// Polling the ELK index-action index (`serve` with `INDEX_ACTION_INDEX`, or the separate
    /// `index-action-worker`).
    IndexAction,
}

impl Lead {
    fn lock(self) -> i64 {
        match self {
            Self::Main => 0x7472_6961_6765_0002,
            Self::IndexAction => 0x7472_6961_6765_0003,
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// The lock key of a replica's liveness: FNV-1a of its id, so every replica computes the same key.
fn liveness_key(replica: &str) -> i64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in b"triage-bot replica ".iter().chain(replica.as_bytes()) {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h as i64
}

/// This process as one replica of the service.
pub struct Replica {
    id: String,
    /// PostgreSQL: the connection that holds this replica's locks. `None` on SQLite.
    conn: Option<Mutex<AnyConnection>>,
    leads: [AtomicBool; 2],
}

impl Replica {
    /// Joins the replicas sharing `store`: on PostgreSQL, opens the liveness connection and takes
    /// this replica's lock on it.
    pub async fn join(store: &Store) -> anyhow::Result<Self> {
        let id = store.replica_id().to_string();
        let conn = match store.backend() {
            super::Backend::Sqlite => None,
            super::Backend::Postgres => {
                let mut conn = store.pool.acquire().await?.detach();
                sqlx::query("SELECT 1 FROM pg_advisory_lock($1)")
                    .bind(liveness_key(&id))
                    .execute(&mut conn)
                    .await?;
                Some(Mutex::new(conn))
            }
        };
        tracing::info!(replica = %id, backend = %store.backend(), "joined as a replica");
        Ok(Self {
            id,
            // SQLite: the one replica leads from the start.
            leads: [
                AtomicBool::new(conn.is_none()),
                AtomicBool::new(conn.is_none()),
            ],
            conn,
        })
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// Whether this replica has taken `lead` (without asking for it).
    pub fn is_leading(&self, lead: Lead) -> bool {
        self.leads[lead.index()].load(Ordering::Acquire)
    }

    /// Whether this replica leads `lead`, taking it if nobody holds it. Once taken, it is held
    /// until the process (or its liveness connection) ends.
    pub async fn leads(&self, lead: Lead) -> bool {
        let flag = &self.leads[lead.index()];
        if flag.load(Ordering::Acquire) {
            return true;
        }
        let Some(conn) = &self.conn else {
            flag.store(true, Ordering::Release);
            return true;
        };
        let mut conn = conn.lock().await;
        let took: Result<bool, _> = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
            .bind(lead.lock())
            .fetch_one(&mut *conn)
            .await;
        match took {
            Ok(true) => {
                tracing::info!(replica = %self.id, lead = ?lead, "ReplicaLeads: this replica now does this singleton work");
                flag.store(true, Ordering::Release);
                true
            }
            Ok(false) => false,
            Err(e) => {
                tracing::warn!(error = %e, "cannot ask for the lead");
                false
            }
        }
    }

    /// Whether the replica `other` (an id from `outbox.claimed_by`, `None` for a claim older than
    /// replicas) is still running. On SQLite only this replica is.
    pub async fn is_alive(&self, other: Option<&str>) -> anyhow::Result<bool> {
        let Some(other) = other else {
            return Ok(false);
        };
        if other == self.id {
            return Ok(true);
        }
        let Some(conn) = &self.conn else {
            return Ok(false);
        };
        let mut conn = conn.lock().await;
        let key = liveness_key(other);
        // Taking the lock proves nobody holds it: the replica is gone. Give it straight back.
        let free: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
            .bind(key)
            .fetch_one(&mut *conn)
            .await?;
        if free {
            sqlx::query_scalar::<_, bool>("SELECT pg_advisory_unlock($1)")
                .bind(key)
                .fetch_one(&mut *conn)
                .await?;
        }
        Ok(!free)
    }

    /// Holds `host` for one batch across replicas, waiting while a live replica holds it; a
    /// gone holder's lease is taken over. On SQLite (one replica) the process's own host lock is
    /// all there is, and this holds nothing. Released when the lease is dropped.
    pub async fn hold_host(&self, store: &Store, host: &str) -> anyhow::Result<HostLease> {
        if self.conn.is_none() {
            return Ok(HostLease(None));
        }
        let mut waits = 0u32;
        loop {
            if store.take_host(host, &self.id).await? {
                return Ok(HostLease(Some((
                    store.clone(),
                    host.to_string(),
                    self.id.clone(),
                ))));
            }
            match store.host_holder(host).await? {
                Some(holder) if !self.is_alive(Some(&holder)).await? => {
                    tracing::warn!(host, replica = %holder, "taking over the host lease of a replica that is gone");
                    store.release_host(host, &holder).await?;
                    continue;
                }
                _ => {}
            }
            if waits == 0 {
                tracing::info!(
                    host,
                    "another replica runs a batch on this host; waiting for it"
                );
            }
            waits += 1;
            // Another replica's batch takes seconds to minutes; a short steady poll is enough.
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Resolves when this replica can no longer prove it is alive (its liveness connection is
    /// lost): the others may be taking over its jobs. Never resolves on SQLite.
    pub async fn lost(&self, every: Duration) -> anyhow::Error {
        let Some(conn) = &self.conn else {
            return std::future::pending().await;
        };
        loop {
            tokio::time::sleep(every).await;
            if let Err(e) = conn.lock().await.ping().await {
                return anyhow::anyhow!(
                    "lost the database connection that holds this replica's liveness lock: {e}"
                );
            }
        }
    }
}

/// A host held across replicas (see [`Replica::hold_host`]); let go when dropped.
pub struct HostLease(Option<(Store, String, String)>);

impl Drop for HostLease {
    fn drop(&mut self) {
        if let Some((store, host, holder)) = self.0.take() {
            // Drop cannot wait; if the process dies first, the next holder sees this one gone.
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                rt.spawn(async move {
                    if let Err(e) = store.release_host(&host, &holder).await {
                        tracing::warn!(host = %host, error = %e, "host lease not released");
                    }
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scheme_of_the_url_names_the_backend() {
        assert_eq!(
            Backend::of_url("sqlite://x.db?mode=rwc").unwrap(),
            Backend::Sqlite
        );
        assert_eq!(Backend::of_url("sqlite::memory:").unwrap(), Backend::Sqlite);
        assert_eq!(
            Backend::of_url("postgres://u@h/db").unwrap(),
            Backend::Postgres
        );
        assert_eq!(
            Backend::of_url("postgresql://u@h/db").unwrap(),
            Backend::Postgres
        );
        let e = Backend::of_url("mysql://u@h/db").unwrap_err().to_string();
        assert!(e.contains("sqlite: or postgres://"), "{e}");
    }

    #[test]
    fn liveness_keys_are_stable_and_distinct() {
        assert_eq!(liveness_key("a"), liveness_key("a"));
        assert_ne!(liveness_key("a"), liveness_key("b"));
    }
}

/// Several replicas on one PostgreSQL database (`scripts/test` provides the server).
#[cfg(test)]
mod postgres {
    use super::Lead;
    use crate::store::outbox::Job;
    use crate::store::{Replica, Store};

    async fn two_replicas() -> (Store, Store) {
        let admin = crate::config::test_postgres()
            .expect("TRIAGE_BOT_TEST_POSTGRES is not set: run the tests with scripts/test");
        let url = Store::scratch_postgres(&admin).await.unwrap();
        (
            Store::connect(&url).await.unwrap(),
            Store::connect(&url).await.unwrap(),
        )
    }

    #[tokio::test]
    async fn one_replica_leads_until_it_is_gone_and_its_liveness_goes_with_it() {
        let (a, b) = two_replicas().await;
        let ra = Replica::join(&a).await.unwrap();
        let rb = Replica::join(&b).await.unwrap();
        assert!(ra.leads(Lead::Main).await, "the first to ask leads");
        assert!(!rb.leads(Lead::Main).await, "only one leads");
        assert!(!rb.is_leading(Lead::Main));
        assert!(
            rb.leads(Lead::IndexAction).await,
            "the index-action lead is apart"
        );
        assert!(!ra.leads(Lead::IndexAction).await);
        assert!(rb.is_alive(Some(ra.id())).await.unwrap());
        assert!(ra.is_alive(Some(rb.id())).await.unwrap());
        assert!(!rb.is_alive(None).await.unwrap(), "a claim without owner");
        // Asking does not take the other's lock: it is still seen alive.
        assert!(rb.is_alive(Some(ra.id())).await.unwrap());

        // Replica a's process ends: its connection closes and the server drops its locks.
        let a_id = ra.id().to_string();
        drop(ra);
        a.pool.close().await;
        let mut waited = 0;
        while rb.is_alive(Some(&a_id)).await.unwrap() {
            // The server notices the closed socket asynchronously; bounded, not a sleep-for-sync.
            waited += 1;
            assert!(waited < 200, "a's liveness lock outlived its connection");
            tokio::task::yield_now().await;
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        let mut waited = 0;
        while !rb.leads(Lead::Main).await {
            waited += 1;
            assert!(waited < 200, "b never took the lead");
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }

    #[tokio::test]
    async fn replicas_claiming_at_once_each_get_different_jobs() {
        let (a, b) = two_replicas().await;
        for i in 0..200 {
            a.enqueue(&format!("i{i}"), &Job::CreateCase).await.unwrap();
        }
        let claim_all = |s: Store| async move {
            let mut got = Vec::new();
            while let Some(row) = s.claim_next().await.unwrap() {
                got.push(row.id);
            }
            got
        };
        let (ga, gb) = tokio::join!(
            tokio::spawn(claim_all(a.clone())),
            tokio::spawn(claim_all(b.clone()))
        );
        let (ga, gb) = (ga.unwrap(), gb.unwrap());
        let mut all: Vec<i64> = ga.iter().chain(gb.iter()).copied().collect();
        all.sort();
        all.dedup();
        assert_eq!(
            all.len(),
            200,
            "every job claimed once: {} + {}",
            ga.len(),
            gb.len()
        );
        assert_eq!(ga.len() + gb.len(), 200, "no job claimed twice");
    }

    #[tokio::test]
    async fn the_running_jobs_of_a_gone_replica_are_taken_over_once() {
        let (a, b) = two_replicas().await;
        let c = Store::connect(&a_url(&a).await).await.unwrap();
        a.enqueue("i1", &Job::CreateCase).await.unwrap();
        a.enqueue("i2", &Job::CreateCase).await.unwrap();
        let j1 = a.claim_next().await.unwrap().unwrap();
        let j2 = a.claim_next().await.unwrap().unwrap();
        let owners = b.running_job_owners().await.unwrap();
        assert_eq!(owners, vec![Some(a.replica_id().to_string())]);
        assert!(
            a.running_job_owners().await.unwrap().is_empty(),
            "not its own"
        );
        // Two survivors race for them: each job goes to exactly one.
        let (x, y) = tokio::join!(
            b.take_over_jobs(Some(a.replica_id())),
            c.take_over_jobs(Some(a.replica_id()))
        );
        let mut taken: Vec<i64> = x
            .unwrap()
            .into_iter()
            .chain(y.unwrap())
            .map(|r| r.id)
            .collect();
        taken.sort();
        assert_eq!(taken, vec![j1.id, j2.id]);
        assert!(
            b.running_job_owners().await.unwrap().len() <= 1,
            "c's, if c took any"
        );
    }

    /// The URL `store` was opened with: the scratch database's name, read back from the server.
    async fn a_url(store: &Store) -> String {
        let name: String = sqlx::query_scalar("SELECT current_database()::text")
            .fetch_one(&store.pool)
            .await
            .unwrap();
        let admin = crate::config::test_postgres().unwrap();
        let (server, _) = admin.rsplit_once('/').unwrap();
        format!("{server}/{name}")
    }

    #[tokio::test]
    async fn a_host_is_held_by_one_replica_at_a_time_and_a_gone_holder_is_taken_over() {
        use std::time::Duration;
        let (a, b) = two_replicas().await;
        let (ra, rb) = (
            Replica::join(&a).await.unwrap(),
            Replica::join(&b).await.unwrap(),
        );
        let lease = ra.hold_host(&a, "WS-1").await.unwrap();
        // b waits while a holds it, but another host is free.
        let other = rb.hold_host(&b, "WS-2").await.unwrap();
        assert!(
            tokio::time::timeout(Duration::from_millis(600), rb.hold_host(&b, "WS-1"))
                .await
                .is_err(),
            "b took a host a holds"
        );
        drop(lease);
        let held = tokio::time::timeout(Duration::from_secs(10), rb.hold_host(&b, "WS-1"))
            .await
            .expect("released by a")
            .unwrap();
        assert_eq!(
            b.host_holder("WS-1").await.unwrap().as_deref(),
            Some(rb.id())
        );
        drop((held, other));

        // a holds it again and dies holding it: b takes it over.
        let lease = ra.hold_host(&a, "WS-3").await.unwrap();
        std::mem::forget(lease);
        drop(ra);
        a.pool.close().await;
        let held = tokio::time::timeout(Duration::from_secs(10), rb.hold_host(&b, "WS-3"))
            .await
            .expect("a's lease outlived a")
            .unwrap();
        assert_eq!(
            b.host_holder("WS-3").await.unwrap().as_deref(),
            Some(rb.id())
        );
        drop(held);
    }

    #[tokio::test]
    async fn sslmode_require_connects_over_tls() {
        let admin = crate::config::test_postgres().unwrap();
        let url = Store::scratch_postgres(&admin).await.unwrap();
        let plain = Store::connect(&format!("{url}?sslmode=disable"))
            .await
            .unwrap();
        assert_eq!(plain.encrypted().await.unwrap(), Some(false));
        let tls = Store::connect(&format!("{url}?sslmode=require"))
            .await
            .unwrap();
        assert_eq!(tls.encrypted().await.unwrap(), Some(true));
    }
}
