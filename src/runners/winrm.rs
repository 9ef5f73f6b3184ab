//! The WinRM runner: each approved command goes to the host's WS-Management endpoint inside the
//! fixed PowerShell wrapper ([`crate::clients::winrm::powershell::APPROVED_WRAPPER`]), the
//! command itself base64-encoded in the shell's environment — never spliced into script text.

use std::time::Duration;

use super::{CommandRunner, RunError, RunFuture, RunOutput, Target};
use crate::clients::winrm::{WinRmClient, WinRmConfig};
use crate::config::WinRmSettings;

/// Runs commands over WinRM with the configured transport (NTLM with sealing, or Basic).
pub struct WinRmRunner {
    settings: WinRmSettings,
}

impl WinRmRunner {
    pub fn new(settings: WinRmSettings) -> Self {
        Self { settings }
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
        WinRmClient::new(Self::config_for(&self.settings, endpoint)).map_err(RunError::from_client)
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
            let mut stdout = out.stdout;
            if out.truncated {
                stdout.push_str("\n… (output truncated by triage-bot)");
            }
            Ok(RunOutput {
                stdout,
                stderr: out.stderr,
                exit_code: out.exit_code,
            })
        })
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
