//! The dry-run runner: records what would run, and where, and runs nothing — for shadow mode
//! (the whole loop against production alerts with no effect on hosts) and demos. Each command
//! "succeeds" with an output that says plainly that nothing ran, so Slack and the case never
//! suggest otherwise.

use std::sync::Mutex;

use chrono::{DateTime, Utc};

use super::{CommandRunner, RunFuture, RunOutput, Target};

/// One command that would have run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DryRunRecord {
    pub host: String,
    pub command: String,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Default)]
pub struct DryRunRunner {
    records: Mutex<Vec<DryRunRecord>>,
}

impl DryRunRunner {
    pub fn new() -> Self {
        Self::default()
    }

    /// Everything that would have run, in order.
    pub fn records(&self) -> Vec<DryRunRecord> {
        self.records
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn record(&self, host: &str, command: &str) -> RunOutput {
        tracing::info!(host.name = %host, command.len = command.len(), "DryRunCommandRecorded");
        self.records
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(DryRunRecord {
                host: host.to_owned(),
                command: command.to_owned(),
                at: Utc::now(),
            });
        RunOutput {
            stdout: format!("[dry run] not executed on {host}; this command would have run."),
            stderr: String::new(),
            exit_code: 0,
        }
    }
}

impl CommandRunner for DryRunRunner {
    fn run<'a>(&'a self, host: &'a str, command: &'a str) -> RunFuture<'a> {
        Box::pin(async move { Ok(self.record(host, command)) })
    }

    fn run_on<'a>(&'a self, target: &'a Target, command: &'a str) -> RunFuture<'a> {
        self.run(&target.host, command)
    }

    fn runner_name(&self, _host: &str) -> &'static str {
        "dry_run"
    }

    fn describe(&self, _target: &Target) -> Option<String> {
        Some("dry run — nothing is executed on the host".into())
    }
}
