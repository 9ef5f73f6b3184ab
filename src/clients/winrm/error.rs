//! [`WinRmError`]: everything that can go wrong talking to a Windows host over WinRM, shaped so
//! callers can branch on it (retry or not, auth vs. fault vs. transport) and so that no variant
//! can carry a credential: the password only ever lives in a [`crate::secret::Secret`] inside the
//! transport, and endpoints with `user:pass@` in them are refused at configuration time.

use std::fmt;
use std::time::Duration;

/// A boxed source error from the HTTP layer (reqwest today, a hand-owned connection for NTLM
/// later), kept opaque so the error type does not tie callers to one HTTP stack.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Which WS-Management operation an error happened in. Callers need it to know whether the
/// command may already have started (see [`WinRmError::is_retryable`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// `transfer/Create` of the cmd shell; no command exists yet.
    Create,
    /// `shell/Command`: starting the command line.
    Command,
    /// `shell/Send`: feeding stdin; the command is running.
    Send,
    /// `shell/Receive`: collecting output; the command is running.
    Receive,
    /// `shell/Signal` terminate, during cleanup.
    Signal,
    /// `transfer/Delete` of the shell, during cleanup.
    Delete,
    /// The command as a whole, from Command until `CommandState/Done` (the per-command deadline).
    Run,
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Phase::Create => "create shell",
            Phase::Command => "start command",
            Phase::Send => "send input",
            Phase::Receive => "receive output",
            Phase::Signal => "signal terminate",
            Phase::Delete => "delete shell",
            Phase::Run => "command run",
        })
    }
}

/// WSManFault code of `w:TimedOut`: "no output within OperationTimeout" — on Receive it only
/// means "ask again" (winrm.md §1.6, §4.2).
pub const WSMAN_TIMED_OUT: u32 = 2_150_858_793;
/// WSManFault code of `w:InvalidSelectors`: the shell or command id does not exist (any more).
pub const WSMAN_INVALID_SELECTORS: u32 = 2_150_858_843;
/// ERROR_OPERATION_ABORTED, which WinRb ignores when closing a shell (winrm.md §4.2).
pub const WSMAN_OPERATION_ABORTED: u32 = 995;

#[derive(thiserror::Error, Debug)]
pub enum WinRmError {
    /// The settings cannot work (bad endpoint, read timeout not above the operation timeout, …).
    #[error("invalid WinRM configuration: {0}")]
    Config(String),

    /// No TCP/TLS connection could be made, so this request never reached the host.
    #[error("cannot connect to WinRM endpoint {endpoint} ({phase}): {source}")]
    Connect {
        phase: Phase,
        endpoint: String,
        #[source]
        source: BoxError,
    },

    /// The request was sent but the exchange broke before a full answer (connection reset,
    /// truncated body). Unlike [`WinRmError::Connect`], the host may have acted on it.
    #[error("WinRM exchange with {endpoint} failed ({phase}): {source}")]
    Transport {
        phase: Phase,
        endpoint: String,
        #[source]
        source: BoxError,
    },

    /// An HTTP read timeout (`phase` names the operation) or, with [`Phase::Run`], the
    /// per-command deadline passing.
    #[error("WinRM {phase} timed out after {after:?}")]
    Timeout { phase: Phase, after: Duration },

    /// HTTP 401: bad credentials, or the host does not accept this auth scheme (Basic is off on a
    /// stock host) or refuses unencrypted HTTP.
    #[error(
        "WinRM authentication rejected (HTTP {status}); the host offers: {}",
        display_schemes(offered_schemes)
    )]
    Auth {
        status: u16,
        offered_schemes: Vec<String>,
    },

    /// A non-2xx answer without a SOAP fault in it.
    #[error("WinRM HTTP {status} ({phase}): {body}")]
    Http {
        phase: Phase,
        status: u16,
        body: String,
    },

    /// A SOAP fault (normally HTTP 500) with the WS-Management details (winrm.md §4.1).
    #[error(
        "WinRM fault ({phase}): {reason} [code {code}{}{}{}]",
        subcode.as_deref().map(|s| format!(", subcode {s}")).unwrap_or_default(),
        wsman_code.map(|c| format!(", WSManFault {c}")).unwrap_or_default(),
        machine.as_deref().map(|m| format!(", machine {m}")).unwrap_or_default()
    )]
    Fault {
        phase: Phase,
        http_status: u16,
        /// `s:Code/s:Value`, e.g. `s:Receiver`.
        code: String,
        /// `s:Subcode/s:Value`, e.g. `w:TimedOut`.
        subcode: Option<String>,
        /// `s:Reason/s:Text`, or the WSManFault message when there is no Reason.
        reason: String,
        /// `f:WSManFault/@Code`, often an HRESULT.
        wsman_code: Option<u32>,
        /// `f:WSManFault/@Machine`.
        machine: Option<String>,
        /// `MSFT_WmiError/error_Code` for WMI-level faults (quota errors).
        wmi_code: Option<u32>,
    },

    /// The host answered something we cannot use: not SOAP, a `RelatesTo` that is not our
    /// MessageID, a missing ShellId, bad base64, …
    #[error("WinRM protocol error: {0}")]
    Protocol(String),

    /// Where the command would run could not be recorded, so it was not sent (a command whose
    /// shell and command ids are not on record could not be found again after a crash).
    #[error("the command was not sent: its shell could not be recorded ({0})")]
    Journal(String),

    /// The host does not have a command whose start was never confirmed (its Command answer
    /// was lost): it never started. The client sends it again; this reaches a caller only when
    /// that did not help either, and the caller may try the run again.
    #[error("the host does not have the command: it never started")]
    NotStarted,

    /// The encoded PowerShell command line exceeds what cmd.exe accepts; raised before sending.
    #[error("PowerShell command line would be {len} characters, over the {max}-character limit")]
    CommandTooLong { len: usize, max: usize },
}

fn display_schemes(schemes: &[String]) -> String {
    if schemes.is_empty() {
        "(none)".to_owned()
    } else {
        schemes.join(", ")
    }
}

impl crate::clients::Retryable for WinRmError {
    fn is_retryable(&self) -> bool {
        WinRmError::is_retryable(self)
    }
}

impl WinRmError {
    /// True when calling [`super::WinRmClient::run_powershell`] again is safe and may succeed:
    /// the failure is transient *and* the command has certainly not started on the host. A
    /// command must never run twice (DESIGN §1), so anything after the Command request was
    /// delivered is not retryable, whatever the cause.
    pub fn is_retryable(&self) -> bool {
        match self {
            // A failed connect means this request was never delivered; up to Command that
            // means the command has not started.
            WinRmError::Connect { phase, .. } => matches!(phase, Phase::Create | Phase::Command),
            // Delivered but unanswered: only harmless while nothing but the shell exists.
            WinRmError::Transport { phase, .. } | WinRmError::Timeout { phase, .. } => {
                *phase == Phase::Create
            }
            // 503: the service refused the request (overloaded, restarting).
            WinRmError::Http { phase, status, .. } => {
                *status == 503 && matches!(phase, Phase::Create | Phase::Command)
            }
            WinRmError::Config(_)
            | WinRmError::Auth { .. }
            | WinRmError::Fault { .. }
            | WinRmError::Protocol(_)
            | WinRmError::Journal(_)
            | WinRmError::CommandTooLong { .. } => false,
            // Certainly not started (the host does not have it): sending it again is safe.
            WinRmError::NotStarted => true,
        }
    }

    /// The WSManFault code, when this is a fault that carried one.
    pub fn wsman_code(&self) -> Option<u32> {
        match self {
            WinRmError::Fault { wsman_code, .. } => *wsman_code,
            _ => None,
        }
    }

    /// `w:InvalidSelectors`: the shell or command no longer exists on the host (deleted, the
    /// shell's idle timeout passed, the host restarted).
    pub fn is_gone(&self) -> bool {
        self.wsman_code() == Some(WSMAN_INVALID_SELECTORS)
    }

    /// A `w:TimedOut` fault: on Receive this just means "no output yet".
    pub fn is_operation_timeout(&self) -> bool {
        self.wsman_code() == Some(WSMAN_TIMED_OUT)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn io() -> BoxError {
        Box::new(std::io::Error::from(std::io::ErrorKind::ConnectionRefused))
    }

    #[test]
    fn retryable_only_while_the_command_cannot_have_started() {
        let connect = |phase| WinRmError::Connect {
            phase,
            endpoint: "http://h:5985/wsman".into(),
            source: io(),
        };
        assert!(connect(Phase::Create).is_retryable());
        assert!(connect(Phase::Command).is_retryable());
        assert!(!connect(Phase::Receive).is_retryable());

        let transport = |phase| WinRmError::Transport {
            phase,
            endpoint: "http://h:5985/wsman".into(),
            source: io(),
        };
        assert!(transport(Phase::Create).is_retryable());
        assert!(!transport(Phase::Command).is_retryable());

        let http = |phase, status| WinRmError::Http {
            phase,
            status,
            body: String::new(),
        };
        assert!(http(Phase::Create, 503).is_retryable());
        assert!(!http(Phase::Create, 500).is_retryable());
        assert!(!http(Phase::Receive, 503).is_retryable());

        assert!(
            !WinRmError::Timeout {
                phase: Phase::Run,
                after: Duration::from_secs(1)
            }
            .is_retryable()
        );
        assert!(
            !WinRmError::Auth {
                status: 401,
                offered_schemes: vec![]
            }
            .is_retryable()
        );
        assert!(!WinRmError::Protocol("x".into()).is_retryable());
        assert!(
            !WinRmError::CommandTooLong {
                len: 9000,
                max: 8191
            }
            .is_retryable()
        );
    }

    #[test]
    fn auth_display_lists_schemes() {
        let e = WinRmError::Auth {
            status: 401,
            offered_schemes: vec!["Negotiate".into(), "Basic".into()],
        };
        assert_eq!(
            e.to_string(),
            "WinRM authentication rejected (HTTP 401); the host offers: Negotiate, Basic"
        );
    }
}
