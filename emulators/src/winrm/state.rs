//! What the emulated host is and holds: its configuration ([`WinRmEmulatorConfig`],
//! [`EmulatorAuth`]), the shells and commands with their canned outputs, the record of every
//! request, executed command and signal ([`WinRmState`]), and what the HTTP handler shares across
//! requests — the per-connection NTLM contexts among it (`Shared`, `NtlmConn`).
//!
//! It depends on no other WinRM file.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sspi::Ntlm;

use crate::server::Recorder;

/// Who the emulated host is and whom it lets in.
#[derive(Debug, Clone)]
pub struct WinRmEmulatorConfig {
    /// Goes into faults' `Machine` and the shell's `Owner` (`HOST\user`).
    pub host_name: String,
    /// Compared case-insensitively, like a Windows account name.
    pub username: String,
    pub password: String,
}

/// Which authentication the host accepts: the `Service/Auth` and `AllowUnencrypted` settings
/// of `winrm get winrm/config`. The default (all on) suits the Basic-over-HTTP tests and pywinrm's
/// basic mode; [`EmulatorAuth::stock`] is a stock host (NTLM only, sealing required).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EmulatorAuth {
    pub basic: bool,
    pub negotiate: bool,
    pub allow_unencrypted: bool,
}

impl Default for EmulatorAuth {
    fn default() -> Self {
        Self {
            basic: true,
            negotiate: true,
            allow_unencrypted: true,
        }
    }
}

impl EmulatorAuth {
    /// A stock Windows host: Negotiate only, `AllowUnencrypted=false`.
    pub fn stock() -> Self {
        Self {
            basic: false,
            negotiate: true,
            allow_unencrypted: false,
        }
    }
}

/// One command the host was asked to run.
#[derive(Debug, Clone)]
pub struct ExecutedCommand {
    pub shell_id: String,
    pub command_id: String,
    /// The raw `rsp:Command` text, followed by the `rsp:Arguments` joined with spaces when there
    /// are any (Windows joins them the same way).
    pub command_line: String,
    /// The script that ran, with every wrapper taken off: for triage-bot's approved-command
    /// wrapper the approved command decoded from the environment, for the stdin bootstrap the
    /// script read from stdin, otherwise the script decoded from `-EncodedCommand`. `None` when
    /// the line is not PowerShell-encoded.
    pub script: Option<String>,
    /// The script decoded from `-EncodedCommand` itself (the wrapper or bootstrap when there is
    /// one).
    pub outer_script: Option<String>,
    /// True when the command came inside triage-bot's approved-command wrapper.
    pub wrapped: bool,
    /// True when the script came over stdin to the bootstrap.
    pub via_stdin: bool,
    /// The shell's WINRS_CODEPAGE (pywinrm sends 437, triage-bot 65001).
    pub codepage: u32,
    /// The shell's WINRS_NOPROFILE (`None` when not sent).
    pub noprofile: Option<bool>,
    /// The shell's `rsp:Environment` variables.
    pub env: Vec<(String, String)>,
    pub at: DateTime<Utc>,
}

impl ExecutedCommand {
    /// The approved command text as the operator saw it: [`Self::script`] when the command
    /// came in triage-bot's wrapper, else `None`.
    pub fn approved_command(&self) -> Option<&str> {
        if self.wrapped {
            self.script.as_deref()
        } else {
            None
        }
    }
}

/// One request as the host saw it, with the status it answered.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    /// The Action URI, when the envelope got far enough to have one.
    pub action: Option<String>,
    pub shell_id: Option<String>,
    pub message_id: Option<String>,
    pub status: u16,
    /// `f:WSManFault/@Code` when the answer was a fault that carries one.
    pub wsman_code: Option<u32>,
    /// True when the request came sealed (NTLM) and the answer went back sealed.
    pub sealed: bool,
    pub at: DateTime<Utc>,
}

/// A signal a client sent to a command.
#[derive(Debug, Clone)]
pub struct RecordedSignal {
    pub shell_id: String,
    pub command_id: String,
    /// The signal code URI, e.g. `…/windows/shell/signal/terminate`.
    pub code: String,
}

/// Canned output for one script or command line.
#[derive(Debug, Clone)]
pub(super) struct Canned {
    pub(super) stdout: String,
    pub(super) stderr: String,
    pub(super) exit_code: i64,
}

#[derive(Debug)]
pub(super) struct ShellState {
    pub(super) codepage: u32,
    pub(super) noprofile: Option<bool>,
    pub(super) env: Vec<(String, String)>,
    pub(super) commands: HashMap<String, CommandState>,
}

#[derive(Debug)]
pub(super) struct CommandState {
    pub(super) stdout: Vec<u8>,
    pub(super) stderr: Vec<u8>,
    pub(super) exit_code: i64,
    /// `w:TimedOut` faults still to give before any output.
    pub(super) timeouts_left: usize,
    /// 0: nothing sent; 1: first half sent (Running); 2: Done sent.
    pub(super) stage: u8,
    pub(super) terminated: bool,
    /// The stdin bootstrap waits for `End="true"` before anything runs; its record is made then.
    pub(super) pending: Option<Box<ExecutedCommand>>,
}

/// Everything the emulator knows and recorded. Public fields are for `wait_until` predicates.
#[derive(Debug)]
pub struct WinRmState {
    pub executed: Vec<ExecutedCommand>,
    pub requests: Vec<RecordedRequest>,
    pub signals: Vec<RecordedSignal>,
    /// stdin bytes received with `rsp:Send`, per CommandId.
    pub stdin: HashMap<String, Vec<u8>>,
    pub auth_failures: usize,
    /// NTLM handshakes completed (authenticate message accepted).
    pub ntlm_logons: usize,
    /// Requests that came sealed and were unsealed.
    pub sealed_requests: usize,
    pub shells_created: usize,
    pub shells_deleted: usize,
    pub(super) shells: HashMap<String, ShellState>,
    pub(super) responses: HashMap<String, Canned>,
    pub(super) default_response: Option<Canned>,
    pub(super) delays: HashMap<String, usize>,
    pub(super) fail_next: usize,
    pub(super) fail_status: u16,
    pub(super) timed_out_hold: Duration,
}

impl WinRmState {
    pub(super) fn new() -> Self {
        Self {
            executed: Vec::new(),
            requests: Vec::new(),
            signals: Vec::new(),
            stdin: HashMap::new(),
            auth_failures: 0,
            ntlm_logons: 0,
            sealed_requests: 0,
            shells_created: 0,
            shells_deleted: 0,
            shells: HashMap::new(),
            responses: HashMap::new(),
            default_response: None,
            delays: HashMap::new(),
            fail_next: 0,
            fail_status: 500,
            timed_out_hold: Duration::from_millis(20),
        }
    }

    /// Shells created and not deleted.
    pub fn open_shells(&self) -> usize {
        self.shells.len()
    }

    /// Ids of the shells still open.
    pub fn open_shell_ids(&self) -> Vec<String> {
        self.shells.keys().cloned().collect()
    }

    /// How many requests with this Action (full URI or its last segment, e.g. `"Delete"`).
    pub fn count_action(&self, action: &str) -> usize {
        self.requests
            .iter()
            .filter(|r| {
                r.action
                    .as_deref()
                    .is_some_and(|a| a == action || a.rsplit('/').next() == Some(action))
            })
            .count()
    }
}

/// What the host shares across requests and with [`WinRmEmulator`](crate::winrm::WinRmEmulator).
pub(super) struct Shared {
    pub(super) cfg: WinRmEmulatorConfig,
    pub(super) rec: Arc<Recorder<WinRmState>>,
    pub(super) auth: std::sync::Mutex<EmulatorAuth>,
    /// NTLM contexts by client address: NTLM authenticates the TCP connection, not requests.
    pub(super) ntlm: std::sync::Mutex<HashMap<SocketAddr, NtlmConn>>,
    /// Set by
    /// [`WinRmEmulator::drop_ntlm_contexts`](crate::winrm::WinRmEmulator::drop_ntlm_contexts);
    /// applied when the next request arrives, so an answer already on its way is still sealed
    /// with the old context.
    pub(super) forget_ntlm: std::sync::atomic::AtomicBool,
}

/// The server side of one connection's NTLM.
pub(super) struct NtlmConn {
    pub(super) ntlm: Ntlm,
    pub(super) creds: Option<sspi::AuthIdentityBuffers>,
    pub(super) authenticated: bool,
}

pub(super) fn recorded(
    action: Option<&str>,
    shell_id: Option<&str>,
    message_id: Option<&str>,
    status: u16,
    wsman_code: Option<u32>,
) -> RecordedRequest {
    RecordedRequest {
        action: action.map(str::to_owned),
        shell_id: shell_id.map(str::to_owned),
        message_id: message_id.map(str::to_owned),
        status,
        wsman_code,
        sealed: false,
        at: Utc::now(),
    }
}
