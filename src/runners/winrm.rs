//! The WinRM runner: each approved command goes to the host's WS-Management endpoint inside the
//! fixed PowerShell wrapper ([`crate::clients::winrm::powershell::APPROVED_WRAPPER`]), the
//! command itself base64-encoded in the shell's environment — never spliced into script text.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use super::{CommandRunner, RemoteCommand, RunError, RunFuture, RunOutput, ShellJournal, Target};
use crate::clients::winrm::{CommandOutput, WinRmClient, WinRmConfig};
use crate::config::WinRmSettings;

fn output(out: CommandOutput) -> RunOutput {
    let mut stdout = out.stdout;
    if out.truncated {
        stdout.push_str("\n… (output truncated by triage-bot)");
    }
    if out.incomplete {
        stdout.push_str("\n… (part of the output was lost on the way from the host)");
    }
    RunOutput {
        stdout,
        stderr: out.stderr,
        exit_code: out.exit_code,
    }
}

/// Runs commands over WinRM with the configured transport (NTLM with sealing, or Basic).
pub struct WinRmRunner {
    settings: WinRmSettings,
    /// Shared by every client this runner makes (see [`WinRmConfig::keep_on_cancel`]).
    keep_on_cancel: Arc<AtomicBool>,
}

impl WinRmRunner {
    pub fn new(settings: WinRmSettings) -> Self {
        Self {
            settings,
            keep_on_cancel: Arc::new(AtomicBool::new(false)),
        }
    }

    /// The client configuration for `host` (its endpoint from the template or the host map).
    pub fn config_for(settings: &WinRmSettings, endpoint: String) -> WinRmConfig {
        let mut cfg = WinRmConfig::new(
            endpoint,
            settings.username.clone(),
            settings.password.clone(),
        );
        cfg.auth = settings.transport;
        cfg.tls = settings.tls.clone();
        cfg.operation_timeout = settings.operation_timeout;
        // pywinrm's rule: the HTTP read timeout must exceed the operation timeout, or a quiet
        // Receive looks like a dead host (winrm.md §1.3).
        cfg.read_timeout = settings.operation_timeout + Duration::from_secs(10);
        cfg.command_timeout = settings.command_timeout;
        cfg.max_output_bytes = settings.max_output_bytes;
        cfg
    }

    fn client(&self, target: &Target) -> Result<WinRmClient, RunError> {
        let endpoint = self
            .settings
            .endpoint_for(&target.host, &target.ips)
            .map_err(RunError::permanent)?;
        let mut cfg = Self::config_for(&self.settings, endpoint);
        cfg.keep_on_cancel = self.keep_on_cancel.clone();
        WinRmClient::new(cfg).map_err(RunError::from_client)
    }
}

impl CommandRunner for WinRmRunner {
    fn run<'a>(&'a self, host: &'a str, command: &'a str) -> RunFuture<'a> {
        Box::pin(async move { self.run_on(&Target::host(host), command).await })
    }

    fn run_on<'a>(&'a self, target: &'a Target, command: &'a str) -> RunFuture<'a> {
        Box::pin(async move {
            let client = self.client(target)?;
            let out = client
                .run_approved(command)
                .await
                .map_err(RunError::from_client)?;
            Ok(output(out))
        })
    }

    fn run_tracked<'a>(
        &'a self,
        target: &'a Target,
        command: &'a str,
        journal: &'a dyn ShellJournal,
    ) -> RunFuture<'a> {
        Box::pin(async move {
            let client = self.client(target)?;
            let out = client
                .run_approved_tracked(command, journal)
                .await
                .map_err(RunError::from_client)?;
            Ok(output(out))
        })
    }

    fn reattach<'a>(
        &'a self,
        _target: &'a Target,
        remote: &'a RemoteCommand,
    ) -> Option<RunFuture<'a>> {
        Some(Box::pin(async move {
            // The endpoint the command was sent to, not today's template: it is where it runs.
            let mut cfg = Self::config_for(&self.settings, remote.endpoint.clone());
            cfg.keep_on_cancel = self.keep_on_cancel.clone();
            let client = WinRmClient::new(cfg).map_err(RunError::from_client)?;
            let out = client.reattach(remote).await.map_err(|e| {
                if e.is_gone() {
                    RunError::permanent(format!(
                        "the host no longer has the command (its shell was closed or the host restarted): {e}"
                    ))
                } else {
                    RunError::from_client(e)
                }
            })?;
            Ok(output(out))
        }))
    }

    fn can_reattach(&self, _host: &str) -> bool {
        true
    }

    fn leave_running_on_cancel(&self) {
        self.keep_on_cancel.store(true, Ordering::SeqCst);
    }

    fn runner_name(&self, _host: &str) -> &'static str {
        "winrm"
    }

    fn describe(&self, target: &Target) -> Option<String> {
        Some(
            match self.settings.endpoint_for(&target.host, &target.ips) {
                Ok(endpoint) => format!("WinRM at {endpoint}"),
                Err(e) => format!("WinRM — {e}"),
            },
        )
    }
}
