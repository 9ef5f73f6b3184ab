//! The pipeline: one folder per stage, in the order an incident moves through them.
//!
//! ```text
//! ingest ──► policy ──► triage ──► approval ──► execute ──► record
//! (alerts)   (new,      (AI call,  (Slack card,  (runner,    (Kibana case,
//!            grouped,   parse,     decisions,    one command  comments,
//!            duplicate) safety,    expiry,       at a time)   final record)
//!                       handler)   thread Q&A)
//! ```
//!
//! A stage may use an earlier stage's items (approval renders what triage parsed), never a later
//! one's; stages hand work on through the outbox (`store::outbox`), which the workers run. Every
//! stage function gets the shared [`Ctx`] and answers with a [`JobError`] that says whether a
//! retry can help.

pub mod approval;
pub mod execute;
pub mod ingest;
pub mod policy;
pub mod record;
pub mod triage;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;

use crate::clients::ai::Assistant;
use crate::clients::elastic::ElasticClient;
use crate::clients::kibana::cases::CasesClient;
use crate::clients::slack::SlackClient;
use crate::config::Settings;
use crate::runners::CommandRunner;
use crate::store::Store;
use triage::prompt::Prompts;

/// Attempts before a retryable job is given up.
pub const MAX_ATTEMPTS: i64 = 8;

/// Everything a stage needs: the settings, the store, and one client per outside system.
pub struct Ctx {
    pub settings: Settings,
    pub store: Store,
    /// This process among the replicas: whether it leads the pollers and clocks, and which
    /// others are gone.
    pub replica: crate::store::Replica,
    pub elastic: ElasticClient,
    pub assistant: Arc<dyn Assistant>,
    pub cases: CasesClient,
    pub slack: SlackClient,
    pub prompts: Prompts,
    pub runner: Arc<dyn CommandRunner>,
    /// Wakes the outbox worker when new work is queued.
    pub wake: Notify,
    /// What the readiness probe reports: Socket Mode up, sources polled.
    pub health: crate::health::Health,
    /// Held while the handler question is asked, so the triage jobs of an alert storm that miss
    /// the cached answer together ask it once (`triage::handler`).
    pub handler_question: tokio::sync::Mutex<()>,
    /// The action policies in force, their clock and Kibana's maintenance windows.
    pub policy: policy::Engine,
}

/// Why a job did not complete, and whether trying again can help.
#[derive(Debug)]
pub struct JobError {
    pub retryable: bool,
    pub message: String,
    /// Wait at least this long before the retry (e.g. a Retry-After).
    pub retry_after: Option<Duration>,
}

impl JobError {
    pub fn retry(e: impl std::fmt::Display) -> Self {
        Self {
            retryable: true,
            message: e.to_string(),
            retry_after: None,
        }
    }

    pub fn permanent(e: impl std::fmt::Display) -> Self {
        Self {
            retryable: false,
            message: format!("{e:#}"),
            retry_after: None,
        }
    }

    /// Classifies a client error by its own `is_retryable`.
    pub fn from_client<E: crate::clients::Retryable + std::fmt::Display>(e: E) -> Self {
        Self {
            retryable: e.is_retryable(),
            message: e.to_string(),
            retry_after: None,
        }
    }
}

/// A database error inside a job. A row that cannot be decoded will not decode on the next try
/// either, nor will a value PostgreSQL refuses (SQLSTATE class 22, data exception), so those are
/// permanent; anything else (busy, locked, serialization, pool timeout, I/O) is retried.
impl From<sqlx::Error> for JobError {
    fn from(e: sqlx::Error) -> Self {
        match &e {
            sqlx::Error::ColumnDecode { .. }
            | sqlx::Error::Decode(_)
            | sqlx::Error::ColumnNotFound(_)
            | sqlx::Error::TypeNotFound { .. } => Self::permanent(e),
            sqlx::Error::Database(db) if db.code().is_some_and(|c| c.starts_with("22")) => {
                Self::permanent(e)
            }
            _ => Self::retry(e),
        }
    }
}
