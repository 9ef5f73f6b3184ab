//! WinRM client: runs one PowerShell script on a Windows host over WS-Management with the WinRS
//! cmd shell (Create → Command → Receive… → Signal → Delete), the way pywinrm's `run_ps` does,
//! with the safety rules of DESIGN §4: the script only ever travels base64-encoded in
//! `-EncodedCommand`, the password never reaches a log line or an error, and the shell is
//! deleted on every path (success, error, deadline, even a dropped future) because leaked
//! shells count against the per-user quota (winrm.md §1.9).
//!
//! Layout: [`soap`] builds and parses envelopes (no I/O), [`transport`] moves them (Basic over
//! HTTP(S) with custom CA / insecure options), [`ntlm`] is NTLM with message sealing over HTTP,
//! [`powershell`] encodes scripts, wraps approved commands and cleans CLIXML, [`error`] is the
//! error type callers branch on.

pub mod error;
pub mod ntlm;
pub mod powershell;
pub mod soap;
pub mod transport;

#[cfg(test)]
pub(crate) mod tests;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tracing::Instrument as _;

pub use crate::config::{TlsOptions, WinRmAuth};
pub use error::{Phase, WinRmError};
pub use ntlm::NtlmTransport;
pub use powershell::PowerShellInvocation;
pub use powershell::{MAX_COMMAND_LINE, clean_clixml, encode_powershell};
pub use transport::{BasicTransport, Transport, TransportSession};

use crate::secret::Secret;
use soap::{Envelope, RequestContext};

/// Connection and limits for one Windows host.
#[derive(Debug, Clone)]
pub struct WinRmConfig {
    /// `http://host:5985/wsman` or `https://host:5986/wsman`.
    pub endpoint: String,
    pub auth: WinRmAuth,
    /// Certificate validation for HTTPS endpoints.
    pub tls: TlsOptions,
    pub username: String,
    pub password: Secret,
    /// WS-Management OperationTimeout: how long the host holds a Receive open waiting for
    /// output before answering `w:TimedOut`. Must stay ≤ the host's MaxTimeoutms (60 s).
    pub operation_timeout: Duration,
    /// HTTP read timeout per request; must exceed `operation_timeout` or every quiet Receive
    /// would look like a dead host.
    pub read_timeout: Duration,
    /// Deadline for one command, from Command until Done; then it is terminated.
    pub command_timeout: Duration,
    /// Most bytes kept of stdout and of stderr each; the rest is dropped and `truncated` set.
    pub max_output_bytes: usize,
    /// When set, a run cancelled by dropping its future (a shutdown whose grace ran out) leaves
    /// the command running on the host instead of terminating it: the next start collects its
    /// outcome ([`WinRmClient::reattach`]). A deadline still terminates the command.
    pub keep_on_cancel: Arc<AtomicBool>,
}

impl WinRmConfig {
    /// A config with the defaults: operation timeout 20 s and read timeout 30 s (pywinrm's
    /// pair), a 5-minute command deadline, 1 MiB of output per stream.
    pub fn new(endpoint: impl Into<String>, username: impl Into<String>, password: Secret) -> Self {
        Self {
            endpoint: endpoint.into(),
            auth: WinRmAuth::Basic,
            tls: TlsOptions::default(),
            username: username.into(),
            password,
            operation_timeout: Duration::from_secs(20),
            read_timeout: Duration::from_secs(30),
            command_timeout: Duration::from_secs(300),
            max_output_bytes: 1024 * 1024,
            keep_on_cancel: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Checks what cannot work, with messages that name the setting and never the password.
    pub fn validate(&self) -> Result<(), WinRmError> {
        let url = reqwest::Url::parse(&self.endpoint)
            .map_err(|e| WinRmError::Config(format!("endpoint is not a URL: {e}")))?;
        if !url.username().is_empty() || url.password().is_some() {
            // Refuse rather than echo: the URL would end up in errors and logs.
            return Err(WinRmError::Config(
                "endpoint must not contain credentials; set username/password instead".into(),
            ));
        }
        if !matches!(url.scheme(), "http" | "https") {
            return Err(WinRmError::Config(format!(
                "endpoint scheme must be http or https, not {}",
                url.scheme()
            )));
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(WinRmError::Config("endpoint has no host".into()));
        }
        if self.auth == WinRmAuth::Ntlm && url.scheme() != "http" {
            return Err(WinRmError::Config(
                "transport ntlm seals messages over http://; for https:// use basic".into(),
            ));
        }
        if self.username.is_empty() {
            return Err(WinRmError::Config("username is empty".into()));
        }
        if self.operation_timeout < Duration::from_secs(1) {
            return Err(WinRmError::Config(
                "operation_timeout must be at least 1s".into(),
            ));
        }
        if self.read_timeout <= self.operation_timeout {
            return Err(WinRmError::Config(format!(
                "read_timeout ({:?}) must be greater than operation_timeout ({:?})",
                self.read_timeout, self.operation_timeout
            )));
        }
        if self.command_timeout.is_zero() {
            return Err(WinRmError::Config(
                "command_timeout must be positive".into(),
            ));
        }
        if self.max_output_bytes == 0 {
            return Err(WinRmError::Config(
                "max_output_bytes must be positive".into(),
            ));
        }
        Ok(())
    }

    /// The host part of the endpoint, for the `host.name` span field.
    fn host_name(&self) -> String {
        reqwest::Url::parse(&self.endpoint)
            .ok()
            .and_then(|u| u.host_str().map(str::to_owned))
            .unwrap_or_default()
    }
}

/// What a command produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandOutput {
    /// stdout, decoded as UTF-8 (codepage 65001) after joining all chunks.
    pub stdout: String,
    /// stderr made readable: CLIXML reduced to its text lines (see [`clean_clixml`]).
    pub stderr: String,
    /// stderr exactly as received (lossy UTF-8), for the audit trail.
    pub stderr_raw: String,
    /// The process exit code; 32-bit unsigned on the wire (0xC0000005 = 3221225477). -1 when
    /// the host reported Done without one (pywinrm does the same).
    pub exit_code: i64,
    /// True when stdout or stderr went over `max_output_bytes` and was cut.
    pub truncated: bool,
    /// True when an answer from the host was lost on the way and asked for again: the output
    /// it carried is missing (WS-Man does not send it twice).
    pub incomplete: bool,
}

/// Where a started command lives on its host — enough for another process to Receive its
/// outcome after a crash ([`WinRmClient::reattach`]).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RemoteCommand {
    pub endpoint: String,
    pub shell_id: String,
    pub command_id: String,
}

/// Records where a command runs. [`WinRmClient::run_approved_tracked`] awaits it after the shell
/// exists and *before* the Command request is sent (with a client-chosen CommandId), and again
/// if the host answers with an id of its own; when recording fails, nothing is sent.
#[async_trait::async_trait]
pub trait ShellJournal: Send + Sync {
    async fn record(&self, remote: &RemoteCommand) -> Result<(), String>;
}

/// A WinRM client for one host. Cheap to clone; each run uses its own shell.
#[derive(Clone, Debug)]
pub struct WinRmClient {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    cfg: WinRmConfig,
    host_name: String,
    transport: Arc<dyn Transport>,
}

/// Raw stdin bytes per `rsp:Send`: 64 KiB become about 87 KiB of base64, inside 150 KiB.
const STDIN_CHUNK: usize = 64 * 1024;

/// Connect timeout for Basic; short, because an unreachable host should fail fast.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

impl WinRmClient {
    /// A client with the transport `cfg.auth` names: NTLM with sealing, or Basic (with
    /// `cfg.tls` for HTTPS).
    pub fn new(cfg: WinRmConfig) -> Result<Self, WinRmError> {
        cfg.validate()?;
        let connect_timeout = CONNECT_TIMEOUT.min(cfg.read_timeout);
        let transport: Arc<dyn Transport> = match cfg.auth {
            WinRmAuth::Basic => Arc::new(BasicTransport::with_tls(
                &cfg.endpoint,
                &cfg.username,
                cfg.password.clone(),
                connect_timeout,
                &cfg.tls,
            )?),
            WinRmAuth::Ntlm => Arc::new(NtlmTransport::new(
                &cfg.endpoint,
                &cfg.username,
                cfg.password.clone(),
                connect_timeout,
            )?),
        };
        Self::with_transport(cfg, transport)
    }

    /// A client over any transport (NTLM with sealing, later). `cfg.endpoint` is still used for
    /// validation and the span; the transport's own endpoint goes into `a:To`.
    pub fn with_transport(
        cfg: WinRmConfig,
        transport: Arc<dyn Transport>,
    ) -> Result<Self, WinRmError> {
        cfg.validate()?;
        let host_name = cfg.host_name();
        Ok(Self {
            inner: Arc::new(Inner {
                cfg,
                host_name,
                transport,
            }),
        })
    }

    pub fn config(&self) -> &WinRmConfig {
        &self.inner.cfg
    }

    /// Runs one PowerShell script: creates a shell (WINRS_CODEPAGE 65001, WINRS_NOPROFILE TRUE),
    /// runs `powershell.exe -NoProfile -NonInteractive -EncodedCommand <base64(UTF-16LE(script))>`,
    /// receives until Done (retrying `w:TimedOut`, joining chunks before decoding), then signals
    /// terminate and deletes the shell — always, also after an error or the command deadline.
    /// Scripts whose encoded line would pass cmd.exe's 8,191 characters go through stdin to a
    /// short encoded bootstrap instead.
    pub async fn run_powershell(&self, script: &str) -> Result<CommandOutput, WinRmError> {
        self.run_invocation(powershell::invoke_script(script)).await
    }

    /// Runs an approved command inside the fixed wrapper ([`powershell::APPROVED_WRAPPER`]):
    /// the command reaches the host base64-encoded in a shell environment variable and is
    /// compiled there with `[ScriptBlock]::Create`, never spliced into script text.
    pub async fn run_approved(&self, command: &str) -> Result<CommandOutput, WinRmError> {
        self.run_invocation(powershell::invoke_approved(command)?)
            .await
    }

    /// [`Self::run_approved`], recording the shell and command ids in `journal` before the
    /// command is sent, so that a process that dies mid-command can be followed by one that
    /// collects its outcome ([`Self::reattach`]) instead of running it again.
    pub async fn run_approved_tracked(
        &self,
        command: &str,
        journal: &dyn ShellJournal,
    ) -> Result<CommandOutput, WinRmError> {
        let inv = powershell::invoke_approved(command)?;
        self.run_command_line(&inv, Some(journal))
            .instrument(self.span())
            .await
    }

    /// Runs one prepared powershell.exe invocation (see [`PowerShellInvocation`]).
    pub async fn run_invocation(
        &self,
        inv: PowerShellInvocation,
    ) -> Result<CommandOutput, WinRmError> {
        self.run_command_line(&inv, None)
            .instrument(self.span())
            .await
    }

    /// Collects the outcome of a command started by another process (one that died): Receive on
    /// the same shell and command until Done, then terminate and delete the shell. Output the
    /// dead process already received is not sent again, so stdout may lack its beginning.
    /// `w:InvalidSelectors` ([`WinRmError::is_gone`]) means the host no longer has it.
    pub async fn reattach(&self, remote: &RemoteCommand) -> Result<CommandOutput, WinRmError> {
        let span = tracing::info_span!(
            "winrm.reattach",
            host.name = %self.inner.host_name,
            winrm.endpoint = %self.inner.transport.endpoint(),
            winrm.shell_id = %remote.shell_id,
            winrm.command_id = %remote.command_id,
        );
        async {
            let inner = &self.inner;
            let mut session = inner.transport.session();
            let outcome = match tokio::time::timeout(
                inner.cfg.command_timeout,
                self.receive_all(&mut session, &remote.shell_id, &remote.command_id, false),
            )
            .await
            {
                Ok(r) => r,
                Err(_) => Err(WinRmError::Timeout {
                    phase: Phase::Run,
                    after: inner.cfg.command_timeout,
                }),
            };
            if matches!(outcome, Err(WinRmError::Timeout { .. })) {
                session = inner.transport.session();
            }
            if !matches!(&outcome, Err(e) if e.is_gone()) {
                cleanup(
                    inner,
                    &mut session,
                    &remote.shell_id,
                    Some(&remote.command_id),
                )
                .await;
            }
            outcome
        }
        .instrument(span)
        .await
    }

    fn span(&self) -> tracing::Span {
        tracing::info_span!(
            "winrm.run",
            host.name = %self.inner.host_name,
            winrm.endpoint = %self.inner.transport.endpoint(),
            winrm.shell_id = tracing::field::Empty,
            winrm.command_id = tracing::field::Empty,
        )
    }

    async fn run_command_line(
        &self,
        inv: &PowerShellInvocation,
        journal: Option<&dyn ShellJournal>,
    ) -> Result<CommandOutput, WinRmError> {
        let inner = &self.inner;
        let started = tokio::time::Instant::now();
        let mut session = inner.transport.session();
        let shell_id = self.create_shell(&mut session, &inv.env).await?;
        tracing::Span::current().record("winrm.shell_id", shell_id.as_str());

        // From here on the shell exists: the guard deletes it even if this future is dropped.
        let mut guard = CleanupGuard {
            inner: inner.clone(),
            shell_id: shell_id.clone(),
            command_id: None,
            armed: true,
        };
        let deadline = inner.cfg.command_timeout;
        let outcome = match tokio::time::timeout(
            deadline,
            self.execute(&mut session, &shell_id, inv, journal, &mut guard.command_id),
        )
        .await
        {
            Ok(result) => result,
            Err(_) => {
                tracing::warn!(after = ?deadline, "command deadline passed; terminating");
                Err(WinRmError::Timeout {
                    phase: Phase::Run,
                    after: deadline,
                })
            }
        };
        // An exchange cut off by the deadline may leave a connection-bound session (NTLM) out of
        // step, so clean up through a fresh one then.
        if matches!(outcome, Err(WinRmError::Timeout { .. })) {
            session = inner.transport.session();
        }
        cleanup(inner, &mut session, &shell_id, guard.command_id.as_deref()).await;
        guard.armed = false;

        match &outcome {
            Ok(out) => tracing::info!(
                exit_code = out.exit_code,
                truncated = out.truncated,
                elapsed_ms = started.elapsed().as_millis() as u64,
                "WinRmCommandFinished"
            ),
            Err(e) => tracing::warn!(error = %e, "WinRmCommandFailed"),
        }
        outcome
    }

    async fn create_shell(
        &self,
        session: &mut Box<dyn TransportSession>,
        vars: &[(String, String)],
    ) -> Result<String, WinRmError> {
        let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let env = exchange_retrying(
            &self.inner,
            session,
            Phase::Create,
            soap::ACTION_CREATE,
            |ctx| soap::create_shell_with_env(ctx, soap::CODEPAGE_UTF8, &vars),
            &mut false,
        )
        .await?;
        soap::parse_shell_id(&env)
    }

    /// Command + the Receive loop. `command_id` is filled in as soon as it is known so cleanup
    /// can signal the command even when this future is cut off by the deadline.
    async fn execute(
        &self,
        session: &mut Box<dyn TransportSession>,
        shell_id: &str,
        inv: &PowerShellInvocation,
        journal: Option<&dyn ShellJournal>,
        command_id: &mut Option<String>,
    ) -> Result<CommandOutput, WinRmError> {
        let inner = &self.inner;
        let remote = |command_id: &str| RemoteCommand {
            endpoint: inner.transport.endpoint().to_owned(),
            shell_id: shell_id.to_owned(),
            command_id: command_id.to_owned(),
        };
        // Tracked runs choose the id so that it is on record before the command can start.
        let chosen = journal.map(|_| uuid::Uuid::new_v4().to_string().to_uppercase());
        if let (Some(journal), Some(id)) = (journal, &chosen) {
            journal
                .record(&remote(id))
                .await
                .map_err(WinRmError::Journal)?;
        }
        // A Command whose answer was lost may have started or not. With a chosen id, the first
        // Receive on it tells: the host has it (collect it), or `w:InvalidSelectors` (it never
        // started: send it again, with the same id). Never sent again once it may have run.
        let mut resent = 0;
        loop {
            let sent = exchange_retrying(
                inner,
                session,
                Phase::Command,
                soap::ACTION_COMMAND,
                |ctx| soap::command(ctx, shell_id, &inv.command_line, chosen.as_deref()),
                &mut false,
            )
            .await;
            let (cmd_id, unconfirmed) = match (sent, &chosen) {
                (Ok(env), _) => (soap::parse_command_id(&env)?, false),
                (Err(e), Some(id))
                    if transient(&e) == Some(Transient::AnswerLost) && inv.stdin.is_none() =>
                {
                    tracing::warn!(error = %e, "WinRmCommandAnswerLost: asking the host whether it started");
                    *session = inner.transport.session();
                    (id.clone(), true)
                }
                (Err(e), _) => return Err(e),
            };
            tracing::Span::current().record("winrm.command_id", cmd_id.as_str());
            *command_id = Some(cmd_id.clone());
            if let Some(journal) = journal
                && chosen.as_deref() != Some(cmd_id.as_str())
            {
                // An older host chose its own id: record that one (it is running already, so a
                // failure here is logged, not returned — the command must not be left unwatched).
                if let Err(e) = journal.record(&remote(&cmd_id)).await {
                    tracing::warn!(error = %e, "could not record the host's command id");
                }
            }
            if let Some(stdin) = &inv.stdin {
                // Chunks well under MaxEnvelopeSize once base64 adds its third (winrm.md §1.7).
                let chunks: Vec<&[u8]> = if stdin.is_empty() {
                    vec![&[][..]]
                } else {
                    stdin.chunks(STDIN_CHUNK).collect()
                };
                let last = chunks.len() - 1;
                for (i, chunk) in chunks.into_iter().enumerate() {
                    exchange_retrying(
                        inner,
                        session,
                        Phase::Send,
                        soap::ACTION_SEND,
                        |ctx| soap::send_stdin(ctx, shell_id, &cmd_id, chunk, i == last),
                        &mut false,
                    )
                    .await?;
                }
            }
            match self
                .receive_all(session, shell_id, &cmd_id, unconfirmed)
                .await
            {
                Err(WinRmError::NotStarted) if resent + 1 < REQUEST_ATTEMPTS => {
                    tracing::info!("the host never had the command; sending it again");
                    *command_id = None;
                    resent += 1;
                }
                outcome => return outcome,
            }
        }
    }

    /// The Receive loop of one command, until Done.
    /// `unconfirmed`: the command's start was not confirmed (its Command answer was lost); a
    /// first Receive answered `w:InvalidSelectors` then means it never started
    /// ([`WinRmError::NotStarted`]). An answer lost on the way (its output with it) is asked for
    /// again, and the output is marked incomplete.
    async fn receive_all(
        &self,
        session: &mut Box<dyn TransportSession>,
        shell_id: &str,
        cmd_id: &str,
        unconfirmed: bool,
    ) -> Result<CommandOutput, WinRmError> {
        let inner = &self.inner;
        let mut stdout = Collected::new(inner.cfg.max_output_bytes);
        let mut stderr = Collected::new(inner.cfg.max_output_bytes);
        let mut polls = 0u32;
        let mut unconfirmed = unconfirmed;
        let mut answer_lost = false;
        let exit_code = loop {
            polls += 1;
            let reply = exchange_retrying(
                inner,
                session,
                Phase::Receive,
                soap::ACTION_RECEIVE,
                |ctx| soap::receive(ctx, shell_id, cmd_id),
                &mut answer_lost,
            )
            .await;
            let env = match reply {
                Ok(env) => env,
                // The host had no output within OperationTimeout: normal, ask again. The
                // command deadline bounds this loop.
                Err(e) if e.is_operation_timeout() => {
                    tracing::debug!(polls, "no output yet (w:TimedOut); receiving again");
                    unconfirmed = false;
                    continue;
                }
                // No answer has confirmed the command yet, and the host does not know it: it
                // never started. (A command the host had stays until its Signal terminate, Done
                // or not, so a lost answer cannot have taken it away.)
                Err(e) if unconfirmed && e.is_gone() => {
                    return Err(WinRmError::NotStarted);
                }
                Err(e) => return Err(e),
            };
            unconfirmed = false;
            let chunk = soap::parse_receive(&env)?;
            stdout.push(&chunk.stdout);
            stderr.push(&chunk.stderr);
            if chunk.done {
                break chunk.exit_code.unwrap_or_else(|| {
                    tracing::warn!("CommandState Done without ExitCode");
                    -1
                });
            }
        };
        if answer_lost {
            tracing::warn!("an answer from the host was lost on the way; the output may lack part");
        }
        let truncated = stdout.truncated || stderr.truncated;
        let stderr_raw = stderr.into_string();
        Ok(CommandOutput {
            stdout: stdout.into_string(),
            stderr: clean_clixml(&stderr_raw),
            stderr_raw,
            exit_code,
            truncated,
            incomplete: answer_lost,
        })
    }
}

/// Tries of one WS-Man request whose failure was transient, each on a fresh session.
const REQUEST_ATTEMPTS: i64 = 6;

/// How a request failed, when trying it again may help.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Transient {
    /// The host did not handle it: no connection, 503, 429.
    NotHandled,
    /// Sent, but its answer was lost (cut off, timed out): the host may have acted on it.
    AnswerLost,
}

fn transient(e: &WinRmError) -> Option<Transient> {
    match e {
        WinRmError::Connect { .. } => Some(Transient::NotHandled),
        WinRmError::Http {
            status: 429 | 503, ..
        } => Some(Transient::NotHandled),
        WinRmError::Transport { .. } => Some(Transient::AnswerLost),
        WinRmError::Timeout { phase, .. } if *phase != Phase::Run => Some(Transient::AnswerLost),
        _ => None,
    }
}

/// Where a request whose answer was lost may simply be sent again: a Create (at worst the host
/// keeps an unused shell until its idle timeout), a Receive (output in the lost answer is gone;
/// the caller is told), a Signal, a Delete. Not a Command (a second run: reconciled by its chosen
/// id instead) or a Send (input twice).
fn resendable_after_lost_answer(phase: Phase) -> bool {
    matches!(
        phase,
        Phase::Create | Phase::Receive | Phase::Signal | Phase::Delete
    )
}

/// [`exchange`], trying a transient failure again (backoff with jitter, a fresh session each
/// time: a connection-bound NTLM session is out of step after a lost exchange) up to
/// [`REQUEST_ATTEMPTS`]. `answer_lost` is set when an answer the host gave was lost on the way.
async fn exchange_retrying(
    inner: &Inner,
    session: &mut Box<dyn TransportSession>,
    phase: Phase,
    action: &str,
    build: impl Fn(&RequestContext<'_>) -> String,
    answer_lost: &mut bool,
) -> Result<Envelope, WinRmError> {
    let mut attempt = 1;
    loop {
        let err = match exchange(inner, session.as_mut(), phase, action, &build).await {
            Ok(env) => return Ok(env),
            Err(e) => e,
        };
        let again = match transient(&err) {
            Some(Transient::NotHandled) => true,
            Some(Transient::AnswerLost) => resendable_after_lost_answer(phase),
            None => false,
        };
        if !again || attempt >= REQUEST_ATTEMPTS {
            return Err(err);
        }
        if transient(&err) == Some(Transient::AnswerLost) {
            *answer_lost = true;
        }
        tracing::warn!(%phase, attempt, error = %err, "WinRmRequestRetried: trying again on a fresh connection");
        metrics::counter!("triage_bot_winrm_request_retries_total", "phase" => phase.to_string())
            .increment(1);
        let wait = crate::clients::backoff(RETRY_BASE, attempt, crate::clients::jitter());
        tokio::time::sleep(wait).await;
        *session = inner.transport.session();
        attempt += 1;
    }
}

/// The first wait of [`exchange_retrying`] (then doubling, with jitter).
const RETRY_BASE: Duration = Duration::from_millis(100);

/// Sends one request built with a fresh MessageID and checks the answer belongs to it.
async fn exchange(
    inner: &Inner,
    session: &mut dyn TransportSession,
    phase: Phase,
    action: &str,
    build: impl FnOnce(&RequestContext<'_>) -> String,
) -> Result<Envelope, WinRmError> {
    let message_id = soap::new_message_id();
    let ctx = RequestContext {
        to: inner.transport.endpoint(),
        message_id: &message_id,
        operation_timeout: inner.cfg.operation_timeout,
    };
    let request = build(&ctx);
    tracing::trace!(%phase, %message_id, "WS-Man request");
    let reply = session
        .exchange(phase, request, inner.cfg.read_timeout)
        .await?;
    soap::interpret(phase, reply.status, &reply.body, &message_id, action)
}

/// Signal terminate (when a command was started) and Delete. Failures are logged, not
/// returned: the run's own outcome is what the caller needs, and a fault saying the command or
/// shell is already gone means the job is done.
async fn cleanup(
    inner: &Inner,
    session: &mut Box<dyn TransportSession>,
    shell_id: &str,
    command_id: Option<&str>,
) {
    let gone = |e: &WinRmError| {
        matches!(
            e.wsman_code(),
            Some(error::WSMAN_INVALID_SELECTORS | error::WSMAN_OPERATION_ABORTED)
        )
    };
    if let Some(cmd_id) = command_id {
        let r = exchange_retrying(
            inner,
            session,
            Phase::Signal,
            soap::ACTION_SIGNAL,
            |ctx| soap::signal_terminate(ctx, shell_id, cmd_id),
            &mut false,
        )
        .await;
        match r {
            Ok(_) => {}
            Err(e) if gone(&e) => tracing::debug!(error = %e, "command already gone"),
            Err(e) => tracing::warn!(error = %e, "signal terminate failed; deleting the shell"),
        }
    }
    let r = exchange_retrying(
        inner,
        session,
        Phase::Delete,
        soap::ACTION_DELETE,
        |ctx| soap::delete_shell(ctx, shell_id),
        &mut false,
    )
    .await;
    match r {
        Ok(_) => tracing::debug!("shell deleted"),
        Err(e) if gone(&e) => tracing::debug!(error = %e, "shell already gone"),
        Err(e) => {
            tracing::warn!(error = %e, %shell_id, "shell delete failed; it may leak until its idle timeout")
        }
    }
}

/// Deletes the shell if the run future is dropped before its own cleanup finished (a caller
/// timeout, a shutdown): the cleanup moves to a background task on the current runtime.
struct CleanupGuard {
    inner: Arc<Inner>,
    shell_id: String,
    command_id: Option<String>,
    armed: bool,
}

impl Drop for CleanupGuard {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        if self.inner.cfg.keep_on_cancel.load(Ordering::SeqCst) {
            tracing::info!(shell_id = %self.shell_id, "run cancelled by a shutdown; the command is left running on the host for the next start to collect");
            return;
        }
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            tracing::warn!(shell_id = %self.shell_id, "run dropped outside a runtime; shell not deleted");
            return;
        };
        let inner = self.inner.clone();
        let shell_id = std::mem::take(&mut self.shell_id);
        let command_id = self.command_id.take();
        tracing::info!(%shell_id, "run cancelled; deleting its shell in the background");
        rt.spawn(
            async move {
                let mut session = inner.transport.session();
                cleanup(&inner, &mut session, &shell_id, command_id.as_deref()).await;
            }
            .instrument(tracing::Span::current()),
        );
    }
}

/// One output stream's bytes, capped. Decoding waits until the end: a UTF-8 character or a
/// CLIXML document may be split across chunks and responses.
struct Collected {
    bytes: Vec<u8>,
    max: usize,
    truncated: bool,
}

impl Collected {
    fn new(max: usize) -> Self {
        Self {
            bytes: Vec::new(),
            max,
            truncated: false,
        }
    }

    fn push(&mut self, data: &[u8]) {
        let room = self.max.saturating_sub(self.bytes.len());
        if data.len() > room {
            self.truncated = true;
        }
        self.bytes.extend_from_slice(&data[..data.len().min(room)]);
    }

    fn into_string(self) -> String {
        let mut bytes = self.bytes;
        if self.truncated
            && let Err(e) = std::str::from_utf8(&bytes)
            && e.error_len().is_none()
        {
            // The cut fell inside a character: drop its first bytes rather than show U+FFFD.
            bytes.truncate(e.valid_up_to());
        }
        String::from_utf8(bytes)
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
    }
}
