//! How an approved command reaches a host.
//!
//! [`CommandRunner`] is the seam between "what was approved" and "how it reaches the host":
//! [`winrm::WinRmRunner`] (WS-Management, NTLM with sealing or Basic over HTTPS),
//! [`defend::DefendRunner`] (Elastic Defend response actions through Kibana) and
//! [`dry_run::DryRunRunner`] (records, runs nothing). [`select::SelectingRunner`] picks one per
//! host group (`config::RunnerSettings`) and keeps commands on one host in order while different
//! hosts run in parallel, bounded. The execute stage (`pipeline::execute`) decides *what* runs;
//! this module only knows *how*.

pub mod defend;
pub mod dry_run;
pub mod select;
pub mod winrm;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use crate::clients::Retryable;
pub use crate::clients::winrm::{RemoteCommand, ShellJournal};
use crate::domain::Alert;
use crate::domain::alert::str_field;
use crate::store::IncidentRow;

pub use defend::{DefendRunner, isolate_offer};
pub use dry_run::{DryRunRecord, DryRunRunner};
pub use select::{HostPermit, SelectingRunner};
pub use winrm::WinRmRunner;

/// Why a command could not be run on the host. The message is for people (it never holds a
/// secret); `retryable` keeps the client's own verdict — e.g. WinRM's "refused before anything
/// was sent" — so a caller can tell a host that was never reached from one that may have run it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct RunError {
    pub message: String,
    pub retryable: bool,
}

impl RunError {
    /// A failure that trying again cannot fix (or where the command may already have run).
    pub fn permanent(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            retryable: false,
        }
    }

    /// Classifies a client error by its own `is_retryable`.
    pub fn from_client<E: Retryable + std::fmt::Display>(e: E) -> Self {
        Self {
            message: e.to_string(),
            retryable: e.is_retryable(),
        }
    }
}

impl From<String> for RunError {
    fn from(message: String) -> Self {
        Self::permanent(message)
    }
}

impl From<&str> for RunError {
    fn from(message: &str) -> Self {
        Self::permanent(message)
    }
}

impl Retryable for RunError {
    fn is_retryable(&self) -> bool {
        self.retryable
    }
}

/// What one command produced on the host.
#[derive(Debug, Clone)]
pub struct RunOutput {
    pub stdout: String,
    pub stderr: String,
    pub exit_code: i64,
}

pub type RunFuture<'a> = Pin<Box<dyn Future<Output = Result<RunOutput, RunError>> + Send + 'a>>;
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Where a command runs: the alert's host plus what some runners need besides its name (the
/// Elastic Defend agent id, the alert and case to log the action in).
#[derive(Debug, Clone, Default)]
pub struct Target {
    pub host: String,
    /// The alert's `host.ip` values (for an endpoint template with `{ip}`).
    pub ips: Vec<String>,
    pub agent_id: Option<String>,
    pub alert_id: Option<String>,
    pub case_id: Option<String>,
}

impl Target {
    pub fn host(host: impl Into<String>) -> Self {
        Self {
            host: host.into(),
            ..Self::default()
        }
    }

    /// The target of an incident: its host, and the addresses, agent id and alert id its alert
    /// carries.
    pub fn of_incident(incident: &IncidentRow) -> Self {
        match incident.alert() {
            Ok(alert) => Self::of_alert(incident, &alert),
            Err(_) => Self {
                host: incident.host_name.clone(),
                alert_id: Some(incident.alert_id.clone()),
                case_id: incident.case_id.clone(),
                ..Self::default()
            },
        }
    }

    /// [`Self::of_incident`] when the alert is already read.
    pub fn of_alert(incident: &IncidentRow, alert: &Alert) -> Self {
        let field = |path: &str| str_field(&alert.raw, path);
        Self {
            host: incident.host_name.clone(),
            ips: alert.host_ips.clone(),
            agent_id: field("agent.id").or_else(|| field("elastic.agent.id")),
            alert_id: Some(incident.alert_id.clone()),
            case_id: incident.case_id.clone(),
        }
    }
}

/// Runs one PowerShell command on a host. Errors are human-readable reasons (no secrets) that
/// keep the client's own retryable-or-not classification.
pub trait CommandRunner: Send + Sync {
    /// Runs `command` on `host`.
    fn run<'a>(&'a self, host: &'a str, command: &'a str) -> RunFuture<'a>;

    /// Runs `command` on `target`; runners that need more than the host name (Elastic Defend
    /// needs the agent id) override this.
    fn run_on<'a>(&'a self, target: &'a Target, command: &'a str) -> RunFuture<'a> {
        self.run(&target.host, command)
    }

    /// [`Self::run_on`], recording where the command runs in `journal` before it is sent, so a
    /// process that dies mid-command can be followed by one that collects its outcome
    /// ([`Self::reattach`]). Runners that cannot find a command again ignore the journal.
    fn run_tracked<'a>(
        &'a self,
        target: &'a Target,
        command: &'a str,
        _journal: &'a dyn ShellJournal,
    ) -> RunFuture<'a> {
        self.run_on(target, command)
    }

    /// Collects the outcome of a command that a process which died had started, from where
    /// `run_tracked` recorded it. `None`: this runner cannot, and the outcome stays unknown.
    fn reattach<'a>(
        &'a self,
        _target: &'a Target,
        _remote: &'a RemoteCommand,
    ) -> Option<RunFuture<'a>> {
        None
    }

    /// Whether `run_tracked` records where each command runs on `host` before sending it —
    /// so a command with nothing recorded was never sent.
    fn can_reattach(&self, _host: &str) -> bool {
        false
    }

    /// From now on, a run cancelled by dropping its future leaves its command running on the
    /// host (for the next start to collect) instead of terminating it: called when a shutdown's
    /// grace runs out.
    fn leave_running_on_cancel(&self) {}

    /// Which runner handles `host` (for messages and the audit trail).
    fn runner_name(&self, _host: &str) -> &'static str {
        "custom"
    }

    /// Where and how `target` is reached, in words for the Slack message and the case (e.g.
    /// "WinRM at https://10.20.4.42:5986/wsman"); `None` when there is nothing to say.
    fn describe(&self, _target: &Target) -> Option<String> {
        None
    }

    /// Held for a whole batch: commands on one host run in order, different hosts in parallel
    /// up to a bound. The default does not limit anything.
    fn lock_host<'a>(&'a self, _host: &'a str) -> BoxFuture<'a, HostPermit> {
        Box::pin(async { HostPermit::unlimited() })
    }
}

/// The runner the service uses: the one each host group is configured for
/// (`RUNNER_DEFAULT`, `RUNNER_HOST_GROUPS`), with per-host ordering and the parallel-host bound.
pub fn build(settings: &crate::config::Settings) -> anyhow::Result<Arc<dyn CommandRunner>> {
    Ok(Arc::new(SelectingRunner::from_settings(settings)?))
}
