//! WinRM host emulator: a Windows host's WS-Management service with the WinRS cmd shell
//! (`POST /wsman`, SOAP 1.2), Basic auth and NTLM with message sealing (server side through
//! `sspi`'s NTLM acceptor, one security context per TCP connection), and a table of canned
//! outputs keyed by the PowerShell script decoded from `-EncodedCommand` (or by the raw command
//! line for non-PowerShell commands). Two wrappers are unwrapped so tests see what really ran:
//! triage-bot's approved-command wrapper (the command comes base64-encoded in the shell's
//! `TRIAGE_BOT_COMMAND` environment variable) and the stdin bootstrap (the script arrives with
//! `rsp:Send`; the command only starts once stdin ends).
//!
//! It owns the shell/command state, the output table, the per-connection NTLM contexts and the
//! record of every request and every executed command. It does not run anything, does not do
//! Kerberos, CredSSP or PSRP.
//!
//! Wire facts it reproduces, from real Windows traffic (shared/reference/winrm.md):
//! - strict request checks like a real host: SOAP 1.2 envelope, a MessageID, a known Action, the
//!   cmd-shell ResourceURI, `mustUnderstand` header blocks that must be understood (with or
//!   without a prefix on the attribute), the ShellId selector on everything but Create
//!   (`w:InvalidSelectors`, 2150858843), a known CommandId on Receive/Signal/Send;
//! - lenient where Windows is: `a:To` (pywinrm sends `http://windows-host:5985/wsman`), any
//!   prefixes, `TRUE`/`True`, codepage 437 or 65001;
//! - answers shaped like the recorded ones: `a:RelatesTo` = the request's MessageID,
//!   CreateResponse with `x:ResourceCreated` and `rsp:Shell`, ReceiveResponse with base64
//!   `rsp:Stream` chunks (stdout split over several chunks and two responses, so clients must
//!   join bytes before decoding), End markers, `CommandState/Done` with `rsp:ExitCode`;
//! - `w:TimedOut` faults (2150858793) on Receive for commands seeded with [`WinRmEmulator::set_delay`];
//! - faults as HTTP 500 with `s:Fault` and `f:WSManFault Code=… Machine=…`;
//! - powershell.exe's stderr as CLIXML (`#< CLIXML\r\n<Objs…><S S="Error">…_x000D__x000A_</S>`);
//! - a 401 with an empty body and `WWW-Authenticate: Negotiate` and `Basic realm="WSMAN"` on bad
//!   or missing credentials (only the schemes enabled with [`WinRmEmulator::set_auth`]);
//! - NTLM as Windows does it over HTTP (winrm.md §3.2–§3.3): raw NTLMSSP under `Negotiate`, the
//!   challenge in a 401, 200 after the authenticate message, then `multipart/encrypted`
//!   HTTP-SPNEGO-session-encrypted bodies both ways (faults too), the `Length=` checked after
//!   unsealing; with `AllowUnencrypted=false` a plaintext body is refused with 401;
//! - cmd.exe's 8191-character command-line limit ("The command line is too long.", exit 1).
//!
//! Layout, one way only: this file holds [`WinRmEmulator`]; `http.rs` the wire side, on top of
//! `ntlm.rs` (handshake, sealing), `tls.rs` (the HTTPS listener; certificates from [`TestPki`]), `soap.rs` (envelopes in and out)
//! and `shell.rs` → `command.rs` (the operations); `powershell.rs` knows PowerShell's encodings,
//! `xml.rs` parses and escapes XML, and `state.rs` holds the host's configuration and record,
//! importing none of the others.

mod command;
mod http;
mod ntlm;
mod powershell;
mod shell;
mod soap;
mod state;
mod tls;
mod xml;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::routing::post;

use self::http::handle;
pub use self::powershell::{
    APPROVED_COMMAND_VAR, APPROVED_WRAPPER, STDIN_BOOTSTRAP, clixml_stderr, decode_powershell,
};
pub use self::soap::{
    WSMAN_FILENAME_TOO_LONG, WSMAN_INVALID_PARAMETER, WSMAN_INVALID_SELECTORS,
    WSMAN_SCHEMA_VALIDATION, WSMAN_TIMED_OUT,
};
use self::state::{Canned, Shared};
pub use self::state::{
    EmulatorAuth, ExecutedCommand, RecordedRequest, RecordedSignal, WinRmEmulatorConfig, WinRmState,
};
use self::tls::{Peer, TlsListener};
use crate::server::Recorder;
pub use crate::tls::TestPki;

/// An emulated Windows host. Clones share state.
#[derive(Clone)]
pub struct WinRmEmulator {
    addr: SocketAddr,
    shared: Arc<Shared>,
    https: bool,
    /// HTTP-level faults, off until a test sets them: a fault drawn before the host handles a
    /// request leaves its NTLM context where it was, as a proxy's 503 or a cut connection would.
    pub faults: crate::faults::Faults,
}

impl WinRmEmulator {
    /// The host behind an HTTPS listener (5986-style) with a certificate from `pki`;
    /// [`Self::url`] then gives `https://127.0.0.1:PORT/wsman`.
    pub async fn start_https(cfg: WinRmEmulatorConfig, pki: &TestPki) -> anyhow::Result<Self> {
        Self::start_with(cfg, Some(pki.acceptor()?)).await
    }

    pub async fn start(cfg: WinRmEmulatorConfig) -> anyhow::Result<Self> {
        Self::start_with(cfg, None).await
    }

    async fn start_with(
        cfg: WinRmEmulatorConfig,
        tls: Option<tokio_rustls::TlsAcceptor>,
    ) -> anyhow::Result<Self> {
        let shared = Arc::new(Shared {
            cfg,
            rec: Recorder::new(WinRmState::new()),
            auth: std::sync::Mutex::new(EmulatorAuth::default()),
            ntlm: std::sync::Mutex::new(HashMap::new()),
            forget_ntlm: std::sync::atomic::AtomicBool::new(false),
        });
        let faults = crate::faults::Faults::default();
        let router = crate::faults::wrap(
            Router::new()
                .route("/wsman", post(handle))
                .with_state(shared.clone()),
            &faults,
        );
        // Served here rather than through `server::spawn`: NTLM needs the peer address of
        // each request to find its connection's security context.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let https = tls.is_some();
        let app = router.into_make_service_with_connect_info::<Peer>();
        match tls {
            None => {
                tokio::spawn(async move {
                    if let Err(e) = axum::serve(listener, app).await {
                        tracing::error!(error = %e, "winrm emulator stopped");
                    }
                });
            }
            Some(acceptor) => {
                let listener = TlsListener {
                    tcp: listener,
                    acceptor,
                };
                tokio::spawn(async move {
                    if let Err(e) = axum::serve(listener, app).await {
                        tracing::error!(error = %e, "winrm emulator stopped");
                    }
                });
            }
        }
        Ok(Self {
            addr,
            shared,
            https,
            faults,
        })
    }

    /// Starts a host configured like a stock Windows (NTLM with sealing only).
    pub async fn start_stock(cfg: WinRmEmulatorConfig) -> anyhow::Result<Self> {
        let emu = Self::start(cfg).await?;
        emu.set_auth(EmulatorAuth::stock());
        Ok(emu)
    }

    /// Which schemes the host accepts from now on.
    pub fn set_auth(&self, auth: EmulatorAuth) {
        *self.shared.auth.lock().unwrap_or_else(|p| p.into_inner()) = auth;
    }

    /// Forgets every connection's NTLM context when the next request arrives, as a service
    /// restart would: that request gets 401 and the client must authenticate again.
    pub fn drop_ntlm_contexts(&self) {
        self.shared
            .forget_ntlm
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// `http://127.0.0.1:PORT/wsman` (`https://` for [`Self::start_https`]).
    pub fn url(&self) -> String {
        let scheme = if self.https { "https" } else { "http" };
        format!("{scheme}://{}/wsman", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Output for an exact script (decoded from `-EncodedCommand`) or, for commands that are
    /// not PowerShell-encoded, the exact command line. For PowerShell, a non-empty `stderr` is
    /// sent as CLIXML error records unless it already starts with `#< CLIXML`.
    pub fn set_response(&self, script: &str, stdout: &str, stderr: &str, exit_code: i64) {
        let canned = Canned {
            stdout: stdout.to_owned(),
            stderr: stderr.to_owned(),
            exit_code,
        };
        self.shared.rec.update(|s| {
            s.responses.insert(script.to_owned(), canned);
        });
    }

    /// Output for anything not in the table. Without it: empty stdout, a "not recognized" error
    /// on stderr (PowerShell's or cmd.exe's wording) and exit code 1.
    pub fn set_default_response(&self, stdout: &str, stderr: &str, exit_code: i64) {
        let canned = Canned {
            stdout: stdout.to_owned(),
            stderr: stderr.to_owned(),
            exit_code,
        };
        self.shared
            .rec
            .update(|s| s.default_response = Some(canned));
    }

    /// The next `receives_before_done` Receives of commands running `script` (or that command
    /// line) answer the `w:TimedOut` fault, as a host does while a command prints nothing.
    pub fn set_delay(&self, script: &str, receives_before_done: usize) {
        self.shared.rec.update(|s| {
            s.delays.insert(script.to_owned(), receives_before_done);
        });
    }

    /// How long a delayed Receive is held before its `w:TimedOut` fault (a real host holds it
    /// for the whole OperationTimeout; the hold is capped by the request's OperationTimeout).
    /// Default 20 ms, so retry loops are exercised without busy-spinning.
    pub fn set_timed_out_hold(&self, hold: Duration) {
        self.shared.rec.update(|s| s.timed_out_hold = hold);
    }

    /// Lets every command still held back by [`Self::set_delay`] finish at its next Receive, as
    /// a slow command on a host eventually does.
    pub fn release_running(&self) {
        self.shared.rec.update(|s| {
            for shell in s.shells.values_mut() {
                for cmd in shell.commands.values_mut() {
                    cmd.timeouts_left = 0;
                }
            }
        });
    }

    /// Forgets every shell and its commands, as a host reboot or the shell's idle timeout
    /// does: a later Receive on them gets `w:InvalidSelectors`.
    pub fn forget_shells(&self) {
        self.shared.rec.update(|s| s.shells.clear());
    }

    /// The next `n` requests get `status` with an empty body, before any auth or parsing.
    pub fn fail_next(&self, n: usize, status: u16) {
        self.shared.rec.update(|s| {
            s.fail_next = n;
            s.fail_status = status;
        });
    }

    pub fn executed(&self) -> Vec<ExecutedCommand> {
        self.shared.rec.read().executed.clone()
    }

    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.rec.read().requests.clone()
    }

    pub fn signals(&self) -> Vec<RecordedSignal> {
        self.shared.rec.read().signals.clone()
    }

    /// The stdin bytes a command received through `rsp:Send`, if any.
    pub fn stdin(&self, command_id: &str) -> Option<Vec<u8>> {
        self.shared.rec.read().stdin.get(command_id).cloned()
    }

    pub fn auth_failures(&self) -> usize {
        self.shared.rec.read().auth_failures
    }

    /// NTLM handshakes completed.
    pub fn ntlm_logons(&self) -> usize {
        self.shared.rec.read().ntlm_logons
    }

    /// Shells created and not deleted (tests assert 0 after a run).
    pub fn open_shells(&self) -> usize {
        self.shared.rec.read().open_shells()
    }

    pub async fn wait_until(
        &self,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&WinRmState) -> bool,
    ) -> anyhow::Result<()> {
        self.shared.rec.wait_until(what, timeout, pred).await
    }
}
