//! Runner selection per host group, and the per-host / parallel-host discipline: commands on one
//! host run strictly in order (a host lock held for a whole batch, also across incidents), while
//! batches on different hosts run in parallel up to `RUNNER_MAX_PARALLEL_HOSTS`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedMutexGuard, OwnedSemaphorePermit, Semaphore};

use super::{
    BoxFuture, CommandRunner, DefendRunner, DryRunRunner, RemoteCommand, RunError, RunFuture,
    ShellJournal, Target, WinRmRunner,
};
use crate::config::{RunnerKind, RunnerSettings};

/// Held while a batch runs on a host; dropping it lets the next batch for that host (and
/// another host, if the parallel bound was reached) start.
pub struct HostPermit {
    _host: Option<OwnedMutexGuard<()>>,
    _slot: Option<OwnedSemaphorePermit>,
}

impl HostPermit {
    /// A permit that limits nothing (runners without a discipline of their own).
    pub fn unlimited() -> Self {
        Self {
            _host: None,
            _slot: None,
        }
    }
}

/// Per-host locks and the parallel-host bound, shareable by any runner.
pub struct HostGate {
    hosts: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    slots: Arc<Semaphore>,
}

impl HostGate {
    pub fn new(max_parallel_hosts: usize) -> Self {
        Self {
            hosts: Mutex::new(HashMap::new()),
            slots: Arc::new(Semaphore::new(max_parallel_hosts.max(1))),
        }
    }

    /// Waits for the host's lock, then for a parallel slot. In that order, so a batch waiting
    /// behind another on its own host never holds a slot another host could use.
    pub async fn enter(&self, host: &str) -> HostPermit {
        let lock = self
            .hosts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(host.to_ascii_lowercase())
            .or_default()
            .clone();
        let host_guard = lock.lock_owned().await;
        let slot = self
            .slots
            .clone()
            .acquire_owned()
            .await
            .expect("the semaphore is never closed");
        HostPermit {
            _host: Some(host_guard),
            _slot: Some(slot),
        }
    }
}

/// The configured runners, chosen per host.
pub struct SelectingRunner {
    settings: RunnerSettings,
    winrm: Option<Arc<dyn CommandRunner>>,
    defend: Option<Arc<dyn CommandRunner>>,
    dry_run: Arc<DryRunRunner>,
    gate: HostGate,
}

impl SelectingRunner {
    /// Builds the runners the host groups use (a Defend runner only when some host uses it, so
    /// a WinRM-only deployment needs no Kibana endpoint privileges).
    pub fn from_settings(settings: &crate::config::Settings) -> anyhow::Result<Self> {
        let r = &settings.runner;
        let winrm: Option<Arc<dyn CommandRunner>> = r
            .uses(RunnerKind::WinRm)
            .then(|| Arc::new(WinRmRunner::new(settings.winrm.clone())) as Arc<dyn CommandRunner>);
        let defend: Option<Arc<dyn CommandRunner>> = if r.uses(RunnerKind::Defend) {
            Some(Arc::new(DefendRunner::from_settings(settings)?))
        } else {
            None
        };
        Ok(Self::new(
            r.clone(),
            winrm,
            defend,
            Arc::new(DryRunRunner::new()),
        ))
    }

    /// Explicit runners (tests inject fakes or emulator-backed runners here).
    pub fn new(
        settings: RunnerSettings,
        winrm: Option<Arc<dyn CommandRunner>>,
        defend: Option<Arc<dyn CommandRunner>>,
        dry_run: Arc<DryRunRunner>,
    ) -> Self {
        let gate = HostGate::new(settings.max_parallel_hosts);
        Self {
            settings,
            winrm,
            defend,
            dry_run,
            gate,
        }
    }

    /// The dry-run runner's record (what would have run).
    pub fn dry_run(&self) -> Arc<DryRunRunner> {
        self.dry_run.clone()
    }

    /// Which runner kind `host` gets.
    pub fn kind_for(&self, host: &str) -> RunnerKind {
        self.settings.runner_for(host)
    }

    fn pick(&self, host: &str) -> Result<&dyn CommandRunner, String> {
        match self.kind_for(host) {
            RunnerKind::WinRm => self
                .winrm
                .as_deref()
                .ok_or_else(|| "the WinRM runner is not configured".to_owned()),
            RunnerKind::Defend => self
                .defend
                .as_deref()
                .ok_or_else(|| "the Elastic Defend runner is not configured".to_owned()),
            RunnerKind::DryRun => Ok(self.dry_run.as_ref()),
        }
    }
}

impl CommandRunner for SelectingRunner {
    fn run<'a>(&'a self, host: &'a str, command: &'a str) -> RunFuture<'a> {
        match self.pick(host) {
            Ok(r) => r.run(host, command),
            Err(e) => Box::pin(async move { Err(RunError::permanent(e)) }),
        }
    }

    fn run_on<'a>(&'a self, target: &'a Target, command: &'a str) -> RunFuture<'a> {
        match self.pick(&target.host) {
            Ok(r) => r.run_on(target, command),
            Err(e) => Box::pin(async move { Err(RunError::permanent(e)) }),
        }
    }

    fn run_tracked<'a>(
        &'a self,
        target: &'a Target,
        command: &'a str,
        journal: &'a dyn ShellJournal,
    ) -> RunFuture<'a> {
        match self.pick(&target.host) {
            Ok(r) => r.run_tracked(target, command, journal),
            Err(e) => Box::pin(async move { Err(RunError::permanent(e)) }),
        }
    }

    fn reattach<'a>(
        &'a self,
        target: &'a Target,
        remote: &'a RemoteCommand,
    ) -> Option<RunFuture<'a>> {
        self.pick(&target.host).ok()?.reattach(target, remote)
    }

    fn leave_running_on_cancel(&self) {
        if let Some(winrm) = &self.winrm {
            winrm.leave_running_on_cancel();
        }
    }

    fn can_reattach(&self, host: &str) -> bool {
        self.pick(host).is_ok_and(|r| r.can_reattach(host))
    }

    fn runner_name(&self, host: &str) -> &'static str {
        self.kind_for(host).as_str()
    }

    fn describe(&self, target: &Target) -> Option<String> {
        self.pick(&target.host).ok()?.describe(target)
    }

    fn lock_host<'a>(&'a self, host: &'a str) -> BoxFuture<'a, HostPermit> {
        Box::pin(self.gate.enter(host))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn one_host_in_order_and_a_bound_on_hosts() {
        let gate = Arc::new(HostGate::new(2));
        let a1 = gate.enter("WS-1").await;
        // The same host (any case) waits for the first batch.
        let g = gate.clone();
        let mut second = tokio::spawn(async move { g.enter("ws-1").await });
        assert!(
            tokio::time::timeout(Duration::from_millis(50), &mut second)
                .await
                .is_err(),
            "a second batch on WS-1 must wait"
        );
        // Another host gets the second slot at once.
        let b = gate.enter("WS-2").await;
        // A third host waits: both slots are taken.
        let g = gate.clone();
        let mut third = tokio::spawn(async move { g.enter("WS-3").await });
        assert!(
            tokio::time::timeout(Duration::from_millis(50), &mut third)
                .await
                .is_err()
        );
        drop(b);
        let _c = third.await.unwrap();
        drop(a1);
        // WS-1's next batch now needs a slot, which WS-3 holds together with... nothing else:
        // one slot is free again.
        let _a2 = second.await.unwrap();
    }

    #[tokio::test]
    async fn picks_the_runner_of_the_host_group() {
        let settings = RunnerSettings {
            default: RunnerKind::DryRun,
            host_groups: vec![(crate::config::HostPattern::new("srv-*"), RunnerKind::WinRm)],
            ..RunnerSettings::default()
        };
        let dry = Arc::new(DryRunRunner::new());
        let r = SelectingRunner::new(settings, None, None, dry.clone());
        let out = r.run("laptop-7", "Get-Process").await.unwrap();
        assert!(out.stdout.contains("[dry run]"));
        assert_eq!(dry.records().len(), 1);
        assert_eq!(dry.records()[0].command, "Get-Process");
        let err = r.run("srv-db1", "Get-Process").await.unwrap_err();
        assert!(
            err.message.contains("WinRM runner is not configured"),
            "{err}"
        );
        assert_eq!(r.runner_name("SRV-x"), "winrm");
    }
}
