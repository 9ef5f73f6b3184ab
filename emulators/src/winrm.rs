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

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use axum::routing::post;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use quick_xml::XmlVersion;
use quick_xml::events::Event;
use quick_xml::name::ResolveResult;
use quick_xml::reader::NsReader;
use sspi::{
    AuthIdentity, BufferType, CredentialUse, DataRepresentation, EncryptionFlags, Ntlm,
    SecurityBuffer, SecurityBufferRef, SecurityStatus, ServerRequestFlags, Sspi, SspiImpl,
    Username,
};

use crate::server::Recorder;

const NS_SOAP: &str = "http://www.w3.org/2003/05/soap-envelope";
const NS_SOAP11: &str = "http://schemas.xmlsoap.org/soap/envelope/";
const NS_ADDRESSING: &str = "http://schemas.xmlsoap.org/ws/2004/08/addressing";
const NS_WSMAN: &str = "http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd";
const NS_WSMAN_MS: &str = "http://schemas.microsoft.com/wbem/wsman/1/wsman.xsd";
const NS_SHELL: &str = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell";
const NS_TRANSFER: &str = "http://schemas.xmlsoap.org/ws/2004/09/transfer";
const NS_FAULT: &str = "http://schemas.microsoft.com/wbem/wsman/1/wsmanfault";

const RESOURCE_URI_CMD: &str = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/cmd";
const ACTION_CREATE: &str = "http://schemas.xmlsoap.org/ws/2004/09/transfer/Create";
const ACTION_DELETE: &str = "http://schemas.xmlsoap.org/ws/2004/09/transfer/Delete";
const ACTION_COMMAND: &str = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/Command";
const ACTION_RECEIVE: &str = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/Receive";
const ACTION_SEND: &str = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/Send";
const ACTION_SIGNAL: &str = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/Signal";
const ACTION_FAULT: &str = "http://schemas.dmtf.org/wbem/wsman/1/wsman/fault";
const ADDRESS_ANONYMOUS: &str = "http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous";
const STATE_RUNNING: &str =
    "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/CommandState/Running";
const STATE_DONE: &str =
    "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/CommandState/Done";
const SIGNAL_PREFIX: &str = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/signal/";

const SOAP_CONTENT_TYPE: &str = "application/soap+xml;charset=UTF-8";

/// WSManFault codes (winrm.md §4.2).
pub const WSMAN_TIMED_OUT: u32 = 2_150_858_793;
pub const WSMAN_INVALID_SELECTORS: u32 = 2_150_858_843;
pub const WSMAN_SCHEMA_VALIDATION: u32 = 2_150_858_817;
pub const WSMAN_INVALID_PARAMETER: u32 = 87;
pub const WSMAN_FILENAME_TOO_LONG: u32 = 2_147_942_606;

/// cmd.exe's command-line limit, and CreateProcess's (less the NUL) with WINRS_SKIP_CMD_SHELL.
const CMD_LINE_LIMIT: usize = 8191;
const CREATE_PROCESS_LIMIT: usize = 32766;
/// The host's MaxTimeoutms default; OperationTimeout above it is refused by Windows, capped here.
const MAX_OPERATION_TIMEOUT: Duration = Duration::from_secs(60);

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

/// The exact text of triage-bot's approved-command wrapper (a copy of
/// `triage_bot::clients::winrm::powershell::APPROVED_WRAPPER`; the client's tests fail if the two
/// drift, because the emulator would then not find the approved command).
pub const APPROVED_WRAPPER: &str = "# triage-bot approved-command wrapper v1\n\
$ProgressPreference = 'SilentlyContinue'\n\
$VerbosePreference = 'SilentlyContinue'\n\
$WarningPreference = 'SilentlyContinue'\n\
$triageBotCommand = [Text.Encoding]::UTF8.GetString([Convert]::FromBase64String($env:TRIAGE_BOT_COMMAND))\n\
try { & ([ScriptBlock]::Create($triageBotCommand)) | Format-List | Out-String -Width 120 } catch { 'Error: ' + $_.Exception.Message }\n";
/// The environment variable the wrapper reads.
pub const APPROVED_COMMAND_VAR: &str = "TRIAGE_BOT_COMMAND";
/// The exact text of triage-bot's stdin bootstrap (a copy of the client's `STDIN_BOOTSTRAP`).
pub const STDIN_BOOTSTRAP: &str = "# triage-bot stdin bootstrap v1\n\
$ProgressPreference = 'SilentlyContinue'\n\
& chcp.com 65001 > $null\n\
$triageBotScript = $input | Out-String\n\
& ([ScriptBlock]::Create($triageBotScript))\n";

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
struct Canned {
    stdout: String,
    stderr: String,
    exit_code: i64,
}

#[derive(Debug)]
struct ShellState {
    codepage: u32,
    noprofile: Option<bool>,
    env: Vec<(String, String)>,
    commands: HashMap<String, CommandState>,
}

#[derive(Debug)]
struct CommandState {
    stdout: Vec<u8>,
    stderr: Vec<u8>,
    exit_code: i64,
    /// `w:TimedOut` faults still to give before any output.
    timeouts_left: usize,
    /// 0: nothing sent; 1: first half sent (Running); 2: Done sent.
    stage: u8,
    terminated: bool,
    /// The stdin bootstrap waits for `End="true"` before anything runs; its record is made then.
    pending: Option<Box<ExecutedCommand>>,
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
    shells: HashMap<String, ShellState>,
    responses: HashMap<String, Canned>,
    default_response: Option<Canned>,
    delays: HashMap<String, usize>,
    fail_next: usize,
    fail_status: u16,
    timed_out_hold: Duration,
}

impl WinRmState {
    fn new() -> Self {
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

/// An emulated Windows host. Clones share state.
#[derive(Clone)]
pub struct WinRmEmulator {
    addr: SocketAddr,
    shared: Arc<Shared>,
    https: bool,
}

struct Shared {
    cfg: WinRmEmulatorConfig,
    rec: Arc<Recorder<WinRmState>>,
    auth: std::sync::Mutex<EmulatorAuth>,
    /// NTLM contexts by client address: NTLM authenticates the TCP connection, not requests.
    ntlm: std::sync::Mutex<HashMap<SocketAddr, NtlmConn>>,
    /// Set by [`WinRmEmulator::drop_ntlm_contexts`]; applied when the next request arrives, so
    /// an answer already on its way is still sealed with the old context.
    forget_ntlm: std::sync::atomic::AtomicBool,
}

/// The server side of one connection's NTLM.
struct NtlmConn {
    ntlm: Ntlm,
    creds: Option<sspi::AuthIdentityBuffers>,
    authenticated: bool,
}

/// A certificate authority and a host certificate for `127.0.0.1`, made with the `openssl`
/// command line for one HTTPS emulator.
pub struct TestPki {
    /// PEM of the CA that signed the host certificate (what a client trusts with a custom CA).
    pub ca_pem: std::path::PathBuf,
    cert_pem: std::path::PathBuf,
    key_pem: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl TestPki {
    /// Generates a P-256 CA and a server certificate for IP 127.0.0.1 (SAN), valid two days.
    pub fn generate() -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let p = |n: &str| dir.path().join(n);
        let run = |args: &[&str]| -> anyhow::Result<()> {
            let out = std::process::Command::new("openssl")
                .args(args)
                .output()
                .map_err(|e| {
                    anyhow::anyhow!(
                        "cannot run openssl ({e}); the HTTPS emulator needs the openssl CLI"
                    )
                })?;
            anyhow::ensure!(
                out.status.success(),
                "openssl {:?} failed: {}",
                args.first(),
                String::from_utf8_lossy(&out.stderr)
            );
            Ok(())
        };
        let s = |p: &std::path::Path| p.to_string_lossy().into_owned();
        std::fs::write(
            p("host.ext"),
            "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n",
        )?;
        run(&[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            &s(&p("ca.key")),
            "-out",
            &s(&p("ca.pem")),
            "-days",
            "2",
            "-subj",
            "/CN=triage-bot emulator CA",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ])?;
        run(&[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            &s(&p("host.key")),
            "-out",
            &s(&p("host.csr")),
            "-subj",
            "/CN=127.0.0.1",
        ])?;
        run(&[
            "x509",
            "-req",
            "-in",
            &s(&p("host.csr")),
            "-CA",
            &s(&p("ca.pem")),
            "-CAkey",
            &s(&p("ca.key")),
            "-CAcreateserial",
            "-out",
            &s(&p("host.pem")),
            "-days",
            "2",
            "-extfile",
            &s(&p("host.ext")),
        ])?;
        Ok(Self {
            ca_pem: p("ca.pem"),
            cert_pem: p("host.pem"),
            key_pem: p("host.key"),
            _dir: dir,
        })
    }

    fn acceptor(&self) -> anyhow::Result<tokio_rustls::TlsAcceptor> {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let certs =
            CertificateDer::pem_file_iter(&self.cert_pem)?.collect::<Result<Vec<_>, _>>()?;
        let key = PrivateKeyDer::from_pem_file(&self.key_pem)?;
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
        Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
    }
}

/// The client's address, as connection info for both listeners (NTLM contexts are keyed by it).
#[derive(Clone, Copy, Debug)]
struct Peer(SocketAddr);

impl
    axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, tokio::net::TcpListener>>
    for Peer
{
    fn connect_info(s: axum::serve::IncomingStream<'_, tokio::net::TcpListener>) -> Self {
        Peer(*s.remote_addr())
    }
}

impl axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, TlsListener>> for Peer {
    fn connect_info(s: axum::serve::IncomingStream<'_, TlsListener>) -> Self {
        Peer(*s.remote_addr())
    }
}

/// TLS in front of the emulator's TCP listener. Handshakes run one at a time, which is fine
/// for tests; a failed one (a client refusing the certificate) is logged and skipped.
struct TlsListener {
    tcp: tokio::net::TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
}

impl axum::serve::Listener for TlsListener {
    type Io = tokio_rustls::server::TlsStream<tokio::net::TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let Ok((tcp, addr)) = self.tcp.accept().await else {
                continue;
            };
            match self.acceptor.accept(tcp).await {
                Ok(tls) => return (tls, addr),
                Err(e) => tracing::debug!(error = %e, "winrm emulator: TLS handshake failed"),
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.tcp.local_addr()
    }
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
        let router = Router::new()
            .route("/wsman", post(handle))
            .with_state(shared.clone());
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

// ---------------------------------------------------------------------------------------------
// HTTP handling.

async fn handle(
    State(shared): State<Arc<Shared>>,
    ConnectInfo(Peer(peer)): ConnectInfo<Peer>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let fail = shared.rec.update(|s| {
        if s.fail_next > 0 {
            s.fail_next -= 1;
            let status = s.fail_status;
            s.requests.push(recorded(None, None, None, status, None));
            Some(status)
        } else {
            None
        }
    });
    if let Some(status) = fail {
        return empty(StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR));
    }
    if shared
        .forget_ntlm
        .swap(false, std::sync::atomic::Ordering::SeqCst)
    {
        shared
            .ntlm
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }
    let auth = *shared.auth.lock().unwrap_or_else(|p| p.into_inner());
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .unwrap_or("");
    let (scheme, token) = authorization
        .split_once(' ')
        .map(|(a, b)| (a, b.trim()))
        .unwrap_or((authorization, ""));

    if auth.negotiate && scheme.eq_ignore_ascii_case("negotiate") {
        match negotiate_leg(&shared, peer, token) {
            NegotiateLeg::Challenge(tok) => {
                shared
                    .rec
                    .update(|s| s.requests.push(recorded(None, None, None, 401, None)));
                return Response::builder()
                    .status(StatusCode::UNAUTHORIZED)
                    .header(
                        header::WWW_AUTHENTICATE,
                        format!(
                            "Negotiate {}",
                            base64::engine::general_purpose::STANDARD.encode(tok)
                        ),
                    )
                    .header(header::CONTENT_LENGTH, "0")
                    .body(Body::empty())
                    .expect("static response");
            }
            NegotiateLeg::Denied => return unauthorized(&shared, auth),
            NegotiateLeg::Authenticated => {
                shared.rec.update(|s| s.ntlm_logons += 1);
                if body.is_empty() {
                    // pywinrm and triage-bot send the authenticate message with no body.
                    shared
                        .rec
                        .update(|s| s.requests.push(recorded(None, None, None, 200, None)));
                    return empty(StatusCode::OK);
                }
            }
        }
    } else if scheme.eq_ignore_ascii_case("basic") {
        if !auth.basic || !auth.allow_unencrypted || !basic_ok(&shared.cfg, token) {
            return unauthorized(&shared, auth);
        }
        return serve_plain(&shared, &headers, &body).await;
    }

    // No (usable) Authorization header: only a connection authenticated with NTLM may go on.
    let authenticated = shared
        .ntlm
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get(&peer)
        .is_some_and(|c| c.authenticated);
    if !authenticated || !auth.negotiate {
        return unauthorized(&shared, auth);
    }
    let sealed = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| {
            let ct = ct.to_ascii_lowercase();
            ct.starts_with("multipart/encrypted")
                && ct.contains("protocol=\"application/http-spnego-session-encrypted\"")
        });
    if !sealed {
        if !auth.allow_unencrypted {
            // AllowUnencrypted=false: Windows keeps answering 401 (hashicorp/packer#6205).
            return unauthorized(&shared, auth);
        }
        return serve_plain(&shared, &headers, &body).await;
    }
    let plain = match with_conn(&shared, peer, |c| unseal(&mut c.ntlm, &body)) {
        Some(Ok(p)) => p,
        Some(Err(e)) => {
            tracing::warn!(error = %e, "winrm emulator: cannot unseal a request");
            shared
                .rec
                .update(|s| s.requests.push(recorded(None, None, None, 400, None)));
            return empty(StatusCode::BAD_REQUEST);
        }
        None => return unauthorized(&shared, auth),
    };
    shared.rec.update(|s| s.sealed_requests += 1);
    let host = host_of(&headers);
    let (status, xml, hold) = process(&shared, &String::from_utf8_lossy(&plain), &host, true);
    let sealed_body = match with_conn(&shared, peer, |c| seal(&mut c.ntlm, xml.as_bytes())) {
        Some(Ok(b)) => b,
        _ => return empty(StatusCode::INTERNAL_SERVER_ERROR),
    };
    if let Some(hold) = hold {
        tokio::time::sleep(hold).await;
    }
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, ENCRYPTED_CONTENT_TYPE)
        .body(Body::from(sealed_body))
        .expect("static response")
}

fn host_of(headers: &HeaderMap) -> String {
    headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost")
        .to_owned()
}

fn unauthorized(shared: &Shared, auth: EmulatorAuth) -> Response {
    shared.rec.update(|s| {
        s.auth_failures += 1;
        s.requests.push(recorded(None, None, None, 401, None));
    });
    let mut b = Response::builder().status(StatusCode::UNAUTHORIZED);
    if auth.negotiate {
        b = b.header(header::WWW_AUTHENTICATE, "Negotiate");
    }
    if auth.basic {
        b = b.header(header::WWW_AUTHENTICATE, r#"Basic realm="WSMAN""#);
    }
    b.header(header::CONTENT_LENGTH, "0")
        .body(Body::empty())
        .expect("static response")
}

/// A plaintext SOAP request (Basic, or NTLM with AllowUnencrypted=true).
async fn serve_plain(shared: &Shared, headers: &HeaderMap, body: &Bytes) -> Response {
    if !soap_content_type(headers) {
        shared
            .rec
            .update(|s| s.requests.push(recorded(None, None, None, 415, None)));
        return empty(StatusCode::UNSUPPORTED_MEDIA_TYPE);
    }
    let host = host_of(headers);
    let (status, xml, hold) = process(shared, &String::from_utf8_lossy(body), &host, false);
    if let Some(hold) = hold {
        tokio::time::sleep(hold).await;
    }
    soap(status, xml)
}

/// Parses, validates and dispatches one SOAP request; returns the status, the answer and how
/// long to hold it (the `w:TimedOut` case).
fn process(
    shared: &Shared,
    text: &str,
    host: &str,
    sealed: bool,
) -> (StatusCode, String, Option<Duration>) {
    let outcome = match Request::parse(text) {
        Ok(req) => shared.rec.update(|s| {
            let reply = dispatch(&shared.cfg, s, &req, host);
            if let Some(last) = s.requests.last_mut() {
                last.sealed = sealed;
            }
            reply
        }),
        Err(fault) => {
            let reply = Reply::Fault(*fault);
            shared.rec.update(|s| {
                let mut r = recorded(None, None, None, 500, reply.wsman_code());
                r.sealed = sealed;
                s.requests.push(r);
            });
            reply
        }
    };
    let machine = &shared.cfg.host_name;
    match outcome {
        Reply::Ok(xml) => (StatusCode::OK, xml, None),
        Reply::Fault(f) => (StatusCode::INTERNAL_SERVER_ERROR, f.render(machine), None),
        Reply::TimedOut { fault, hold } => (
            StatusCode::INTERNAL_SERVER_ERROR,
            fault.render(machine),
            Some(hold),
        ),
    }
}

enum NegotiateLeg {
    Challenge(Vec<u8>),
    Authenticated,
    Denied,
}

fn with_conn<R>(
    shared: &Shared,
    peer: SocketAddr,
    f: impl FnOnce(&mut NtlmConn) -> R,
) -> Option<R> {
    let mut map = shared.ntlm.lock().unwrap_or_else(|p| p.into_inner());
    map.get_mut(&peer).map(f)
}

/// One leg of the NTLM handshake on this connection: a negotiate message starts a fresh
/// context (also on an already authenticated connection: the client re-authenticates), an
/// authenticate message finishes it.
fn negotiate_leg(shared: &Shared, peer: SocketAddr, token: &str) -> NegotiateLeg {
    let Ok(msg) = base64::engine::general_purpose::STANDARD.decode(token) else {
        return NegotiateLeg::Denied;
    };
    let kind = ntlm_message_type(&msg);
    let mut map = shared.ntlm.lock().unwrap_or_else(|p| p.into_inner());
    match kind {
        Some(1) => {
            let identity = AuthIdentity {
                username: match Username::parse(&shared.cfg.username) {
                    Ok(u) => u,
                    Err(_) => return NegotiateLeg::Denied,
                },
                password: shared.cfg.password.clone().into(),
            };
            let mut ntlm = Ntlm::new();
            let Ok(creds) = ntlm
                .acquire_credentials_handle()
                .with_credential_use(CredentialUse::Inbound)
                .with_auth_data(&identity)
                .execute(&mut ntlm)
            else {
                return NegotiateLeg::Denied;
            };
            let mut conn = NtlmConn {
                ntlm,
                creds: creds.credentials_handle,
                authenticated: false,
            };
            match accept(&mut conn, msg) {
                Ok((_, out)) => {
                    map.insert(peer, conn);
                    NegotiateLeg::Challenge(out)
                }
                Err(_) => NegotiateLeg::Denied,
            }
        }
        Some(3) => {
            let Some(mut conn) = map.remove(&peer) else {
                return NegotiateLeg::Denied;
            };
            // sspi's acceptor checks the password against the user the client names; whether
            // that is our account is the host's business.
            let user_ok = ntlm_user(&msg).is_some_and(|u| {
                let expected = shared
                    .cfg
                    .username
                    .rsplit('\\')
                    .next()
                    .unwrap_or(&shared.cfg.username);
                let got = u.rsplit('\\').next().unwrap_or(&u);
                let got = got.split('@').next().unwrap_or(got);
                got.eq_ignore_ascii_case(expected.split('@').next().unwrap_or(expected))
            });
            if !user_ok {
                return NegotiateLeg::Denied;
            }
            match accept(&mut conn, msg) {
                Ok((status, _)) => {
                    let done = if matches!(
                        status,
                        SecurityStatus::CompleteNeeded | SecurityStatus::CompleteAndContinue
                    ) {
                        conn.ntlm.complete_auth_token(&mut []).is_ok()
                    } else {
                        status == SecurityStatus::Ok
                    };
                    if !done {
                        return NegotiateLeg::Denied;
                    }
                    conn.authenticated = true;
                    map.insert(peer, conn);
                    NegotiateLeg::Authenticated
                }
                Err(_) => NegotiateLeg::Denied,
            }
        }
        _ => NegotiateLeg::Denied,
    }
}

fn accept(conn: &mut NtlmConn, msg: Vec<u8>) -> Result<(SecurityStatus, Vec<u8>), sspi::Error> {
    let mut input = vec![SecurityBuffer::new(msg, BufferType::Token)];
    let mut output = vec![SecurityBuffer::new(Vec::new(), BufferType::Token)];
    let builder = conn
        .ntlm
        .accept_security_context()
        .with_credentials_handle(&mut conn.creds)
        .with_context_requirements(ServerRequestFlags::empty())
        .with_target_data_representation(DataRepresentation::Native)
        .with_input(&mut input)
        .with_output(&mut output);
    let r = conn
        .ntlm
        .accept_security_context_impl(builder)?
        .resolve_to_result()?;
    Ok((r.status, std::mem::take(&mut output[0].buffer)))
}

/// The NTLMSSP message type (1 negotiate, 2 challenge, 3 authenticate).
fn ntlm_message_type(msg: &[u8]) -> Option<u32> {
    if msg.len() < 12 || &msg[..8] != b"NTLMSSP\0" {
        return None;
    }
    Some(u32::from_le_bytes([msg[8], msg[9], msg[10], msg[11]]))
}

/// `DOMAIN\user` from an authenticate message (MS-NLMP 2.2.1.3: DomainNameFields at 28,
/// UserNameFields at 36, UTF-16LE when NEGOTIATE_UNICODE is set).
fn ntlm_user(msg: &[u8]) -> Option<String> {
    let field = |at: usize| -> Option<&[u8]> {
        let len = u16::from_le_bytes([*msg.get(at)?, *msg.get(at + 1)?]) as usize;
        let off = u32::from_le_bytes(msg.get(at + 4..at + 8)?.try_into().ok()?) as usize;
        msg.get(off..off + len)
    };
    let flags = u32::from_le_bytes(msg.get(60..64)?.try_into().ok()?);
    let text = |b: &[u8]| -> String {
        if flags & 1 != 0 {
            let units: Vec<u16> = b
                .chunks_exact(2)
                .map(|c| u16::from_le_bytes([c[0], c[1]]))
                .collect();
            String::from_utf16_lossy(&units)
        } else {
            String::from_utf8_lossy(b).into_owned()
        }
    };
    let domain = text(field(28)?);
    let user = text(field(36)?);
    Some(if domain.is_empty() {
        user
    } else {
        format!("{domain}\\{user}")
    })
}

const ENCRYPTED_CONTENT_TYPE: &str = "multipart/encrypted;protocol=\"application/HTTP-SPNEGO-session-encrypted\";boundary=\"Encrypted Boundary\"";

/// Seals `plain` and frames it (MS-WSMV 2.2.9.1.1; written apart from the client's framing so a
/// bug cannot hide on both sides).
fn seal(ntlm: &mut Ntlm, plain: &[u8]) -> Result<Vec<u8>, sspi::Error> {
    let mut data = plain.to_vec();
    let mut sig = [0u8; 16];
    let mut bufs = [
        SecurityBufferRef::token_buf(&mut sig),
        SecurityBufferRef::data_buf(&mut data),
    ];
    ntlm.encrypt_message(EncryptionFlags::empty(), &mut bufs)?;
    let mut out = format!(
        "--Encrypted Boundary\r\n\tContent-Type: application/HTTP-SPNEGO-session-encrypted\r\n\tOriginalContent: type=application/soap+xml;charset=UTF-8;Length={}\r\n--Encrypted Boundary\r\n\tContent-Type: application/octet-stream\r\n",
        plain.len()
    )
    .into_bytes();
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&sig);
    out.extend_from_slice(&data);
    out.extend_from_slice(b"--Encrypted Boundary--\r\n");
    Ok(out)
}

/// Unframes and unseals a request body, checking `Length=` against what was decrypted.
fn unseal(ntlm: &mut Ntlm, body: &[u8]) -> Result<Vec<u8>, String> {
    const SEP: &[u8] = b"--Encrypted Boundary\r\n";
    let find = |hay: &[u8], needle: &[u8], from: usize| {
        hay[from..]
            .windows(needle.len())
            .position(|w| w == needle)
            .map(|p| p + from)
    };
    let mut out = Vec::new();
    let mut pos = 0;
    while let Some(h) = find(body, SEP, pos) {
        let header_start = h + SEP.len();
        let d = find(body, SEP, header_start).ok_or("no data part")?;
        let header = String::from_utf8_lossy(&body[header_start..d]);
        if !header.contains("\tContent-Type: application/HTTP-SPNEGO-session-encrypted\r\n") {
            return Err(format!("bad part header {header:?}"));
        }
        let length: usize = header
            .split("Length=")
            .nth(1)
            .and_then(|l| l.trim().split(|c: char| !c.is_ascii_digit()).next())
            .and_then(|l| l.parse().ok())
            .ok_or("no Length=")?;
        let data_start = d + SEP.len();
        let octet = b"\tContent-Type: application/octet-stream\r\n";
        let rest = body[data_start..]
            .strip_prefix(&octet[..])
            .ok_or("no octet-stream header")?;
        if rest.len() < 4 {
            return Err("truncated".into());
        }
        let sig_len = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        let rest = &rest[4..];
        if rest.len() < sig_len + length {
            return Err("shorter than Length=".into());
        }
        let mut sig = rest[..sig_len].to_vec();
        let mut data = rest[sig_len..sig_len + length].to_vec();
        let mut bufs = [
            SecurityBufferRef::token_buf(&mut sig),
            SecurityBufferRef::data_buf(&mut data),
        ];
        ntlm.decrypt_message(&mut bufs).map_err(|e| e.to_string())?;
        let plain = bufs[1].data();
        if plain.len() != length {
            return Err("length mismatch after unsealing".into());
        }
        out.extend_from_slice(plain);
        pos = body.len() - rest[sig_len + length..].len();
    }
    if !body[pos..].starts_with(b"--Encrypted Boundary--") {
        return Err("no closing boundary".into());
    }
    Ok(out)
}

fn recorded(
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

fn empty(status: StatusCode) -> Response {
    Response::builder()
        .status(status)
        .header(header::CONTENT_LENGTH, "0")
        .body(Body::empty())
        .expect("static response")
}

fn soap(status: StatusCode, xml: String) -> Response {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, SOAP_CONTENT_TYPE)
        .body(Body::from(xml))
        .expect("static response")
}

fn basic_ok(cfg: &WinRmEmulatorConfig, token: &str) -> bool {
    let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(token.trim()) else {
        return false;
    };
    let Ok(decoded) = String::from_utf8(decoded) else {
        return false;
    };
    let Some((user, pass)) = decoded.split_once(':') else {
        return false;
    };
    user.eq_ignore_ascii_case(&cfg.username) && pass == cfg.password
}

/// `application/soap+xml`, with a UTF-8 charset when one is given.
fn soap_content_type(headers: &HeaderMap) -> bool {
    let Some(ct) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let mut parts = ct.split(';');
    let media = parts.next().unwrap_or("").trim();
    if !media.eq_ignore_ascii_case("application/soap+xml") {
        return false;
    }
    parts.all(|p| match p.trim().split_once('=') {
        Some((k, v)) if k.trim().eq_ignore_ascii_case("charset") => {
            let v = v.trim().trim_matches('"');
            v.eq_ignore_ascii_case("utf-8") || v.eq_ignore_ascii_case("utf8")
        }
        _ => true,
    })
}

// ---------------------------------------------------------------------------------------------
// Request parsing and validation.

/// A validated request envelope.
struct Request {
    message_id: String,
    action: String,
    shell_id: Option<String>,
    options: Vec<(String, String)>,
    operation_timeout: Duration,
    body: Element,
}

impl Request {
    fn parse(xml: &str) -> Result<Request, Box<FaultSpec>> {
        let root = parse_document(xml).map_err(|e| {
            Box::new(FaultSpec::schema(
                None,
                format!("The WS-Management service cannot process the request because the XML is invalid: {e}"),
            ))
        })?;
        if root.is(NS_SOAP11, "Envelope") {
            return Err(Box::new(FaultSpec {
                code: "s:VersionMismatch",
                ..FaultSpec::schema(None, "SOAP 1.1 envelopes are not supported.".into())
            }));
        }
        if !root.is(NS_SOAP, "Envelope") {
            return Err(Box::new(FaultSpec::schema(
                None,
                "The root element is not a SOAP 1.2 Envelope.".into(),
            )));
        }
        let header = root.child(NS_SOAP, "Header").ok_or_else(|| {
            Box::new(FaultSpec::schema(
                None,
                "The envelope has no Header.".into(),
            ))
        })?;
        let body = root
            .child(NS_SOAP, "Body")
            .ok_or_else(|| Box::new(FaultSpec::schema(None, "The envelope has no Body.".into())))?
            .clone();

        let message_id = header
            .child(NS_ADDRESSING, "MessageID")
            .map(|m| m.trimmed().to_owned())
            .filter(|m| !m.is_empty());
        let Some(message_id) = message_id else {
            return Err(Box::new(FaultSpec {
                subcode: Some("a:MessageInformationHeaderRequired"),
                ..FaultSpec::schema(None, "The request has no MessageID header.".into())
            }));
        };
        let relates = Some(message_id.clone());

        for block in &header.children {
            if must_understand(block) && !understood(block) {
                return Err(Box::new(FaultSpec {
                    relates_to: relates,
                    code: "s:MustUnderstand",
                    subcode: None,
                    reason: format!(
                        "The WS-Management service cannot process a SOAP header in the request that is marked as mustUnderstand: {}",
                        block.local
                    ),
                    wsman_code: None,
                    not_understood: Some((
                        block.ns.clone().unwrap_or_default(),
                        block.local.clone(),
                    )),
                }));
            }
        }

        let action = header
            .child(NS_ADDRESSING, "Action")
            .map(|a| a.trimmed().to_owned())
            .unwrap_or_default();
        if ![
            ACTION_CREATE,
            ACTION_DELETE,
            ACTION_COMMAND,
            ACTION_RECEIVE,
            ACTION_SEND,
            ACTION_SIGNAL,
        ]
        .contains(&action.as_str())
        {
            return Err(Box::new(FaultSpec {
                subcode: Some("a:ActionNotSupported"),
                ..FaultSpec::schema(
                    relates,
                    format!("The WS-Management service does not support the action {action:?}."),
                )
            }));
        }

        let resource = header
            .child(NS_WSMAN, "ResourceURI")
            .map(|r| r.trimmed().to_owned())
            .unwrap_or_default();
        if !resource.eq_ignore_ascii_case(RESOURCE_URI_CMD) {
            return Err(Box::new(FaultSpec {
                subcode: Some("w:DestinationUnreachable"),
                ..FaultSpec::schema(
                    relates,
                    format!(
                        "The WS-Management service cannot process the request because the resource URI {resource:?} is not supported here."
                    ),
                )
            }));
        }

        let mut operation_timeout = MAX_OPERATION_TIMEOUT;
        if let Some(t) = header.child(NS_WSMAN, "OperationTimeout") {
            match parse_iso_duration(t.trimmed()) {
                Some(d) => operation_timeout = d.min(MAX_OPERATION_TIMEOUT),
                None => {
                    return Err(Box::new(FaultSpec {
                        subcode: Some("w:InvalidParameter"),
                        ..FaultSpec::schema(
                            relates,
                            format!(
                                "The OperationTimeout {:?} is not a valid duration.",
                                t.trimmed()
                            ),
                        )
                    }));
                }
            }
        }
        if let Some(m) = header.child(NS_WSMAN, "MaxEnvelopeSize")
            && m.trimmed().parse::<u32>().is_err()
        {
            return Err(Box::new(FaultSpec::schema(
                relates,
                "MaxEnvelopeSize is not a number.".into(),
            )));
        }

        let shell_id = header
            .child(NS_WSMAN, "SelectorSet")
            .and_then(|set| {
                set.children
                    .iter()
                    .find(|s| s.is(NS_WSMAN, "Selector") && s.attr("Name") == Some("ShellId"))
            })
            .map(|s| s.trimmed().to_owned());
        let options = header
            .child(NS_WSMAN, "OptionSet")
            .map(|set| {
                set.children
                    .iter()
                    .filter(|o| o.is(NS_WSMAN, "Option"))
                    .map(|o| {
                        (
                            o.attr("Name").unwrap_or("").to_owned(),
                            o.trimmed().to_owned(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();

        Ok(Request {
            message_id,
            action,
            shell_id,
            options,
            operation_timeout,
            body,
        })
    }

    fn option(&self, name: &str) -> Option<&str> {
        self.options
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// `mustUnderstand="true"` (or `1`), unprefixed (pywinrm) or SOAP-prefixed (pypsrp).
fn must_understand(block: &Element) -> bool {
    block.attrs.iter().any(|(ns, local, value)| {
        local == "mustUnderstand"
            && (ns.is_none() || ns.as_deref() == Some(NS_SOAP))
            && matches!(value.trim().to_ascii_lowercase().as_str(), "true" | "1")
    })
}

/// The header blocks a Windows host processes.
fn understood(block: &Element) -> bool {
    const KNOWN: &[(&str, &str)] = &[
        (NS_ADDRESSING, "To"),
        (NS_ADDRESSING, "ReplyTo"),
        (NS_ADDRESSING, "MessageID"),
        (NS_ADDRESSING, "Action"),
        (NS_WSMAN, "ResourceURI"),
        (NS_WSMAN, "MaxEnvelopeSize"),
        (NS_WSMAN, "Locale"),
        (NS_WSMAN, "OperationTimeout"),
        (NS_WSMAN, "SelectorSet"),
        (NS_WSMAN, "OptionSet"),
        (NS_WSMAN_MS, "DataLocale"),
        (NS_WSMAN_MS, "SessionId"),
        (NS_WSMAN_MS, "OperationID"),
        (NS_WSMAN_MS, "SequenceId"),
    ];
    KNOWN.iter().any(|(ns, local)| block.is(ns, local))
}

/// `PT20S`, `PT60.000S`, `PT1M30S`, `P0DT0H0M5S`.
fn parse_iso_duration(s: &str) -> Option<Duration> {
    let rest = s.strip_prefix('P')?;
    let (date, time) = match rest.split_once('T') {
        Some((d, t)) => (d, t),
        None => (rest, ""),
    };
    let mut secs = 0f64;
    let mut num = String::new();
    for ch in date.chars() {
        match ch {
            '0'..='9' | '.' => num.push(ch),
            'D' => secs += num.parse::<f64>().ok()? * 86400.0,
            _ => return None,
        }
        if ch == 'D' {
            num.clear();
        }
    }
    if !num.is_empty() {
        return None;
    }
    for ch in time.chars() {
        let unit = match ch {
            '0'..='9' | '.' => {
                num.push(ch);
                continue;
            }
            'H' => 3600.0,
            'M' => 60.0,
            'S' => 1.0,
            _ => return None,
        };
        secs += num.parse::<f64>().ok()? * unit;
        num.clear();
    }
    if !num.is_empty() || !secs.is_finite() || secs < 0.0 {
        return None;
    }
    Some(Duration::from_secs_f64(secs))
}

// ---------------------------------------------------------------------------------------------
// Operations.

enum Reply {
    Ok(String),
    Fault(FaultSpec),
    TimedOut { fault: FaultSpec, hold: Duration },
}

impl Reply {
    fn wsman_code(&self) -> Option<u32> {
        match self {
            Reply::Ok(_) => None,
            Reply::Fault(f) | Reply::TimedOut { fault: f, .. } => f.wsman_code,
        }
    }

    fn status(&self) -> u16 {
        match self {
            Reply::Ok(_) => 200,
            _ => 500,
        }
    }
}

fn dispatch(cfg: &WinRmEmulatorConfig, s: &mut WinRmState, req: &Request, host: &str) -> Reply {
    let reply = match req.action.as_str() {
        ACTION_CREATE => create(cfg, s, req, host),
        other => match req.shell_id.as_deref() {
            Some(id) if s.shells.contains_key(id) => match other {
                ACTION_COMMAND => command(s, req, id),
                ACTION_RECEIVE => receive(s, req, id),
                ACTION_SEND => send(s, req, id),
                ACTION_SIGNAL => signal(s, req, id),
                _ => delete(s, req, id),
            },
            Some(id) => Reply::Fault(FaultSpec::invalid_selectors(
                &req.message_id,
                format!("The request for the Windows Remote Shell with ShellId {id} failed because the shell was not found on the server. Possible causes are: the specified ShellId is incorrect or the shell no longer exists on the server."),
            )),
            None => Reply::Fault(FaultSpec::invalid_selectors(
                &req.message_id,
                "The WS-Management service cannot process the request because the request contained invalid selectors for the resource.".into(),
            )),
        },
    };
    s.requests.push(recorded(
        Some(&req.action),
        req.shell_id.as_deref(),
        Some(&req.message_id),
        reply.status(),
        reply.wsman_code(),
    ));
    reply
}

fn create(cfg: &WinRmEmulatorConfig, s: &mut WinRmState, req: &Request, host: &str) -> Reply {
    let Some(shell) = req.body.child(NS_SHELL, "Shell") else {
        return Reply::Fault(FaultSpec::schema(
            Some(req.message_id.clone()),
            "The Create request has no rsp:Shell in its body.".into(),
        ));
    };
    let codepage = match req.option("WINRS_CODEPAGE") {
        None => 437,
        Some(v) => match v.parse::<u32>() {
            Ok(cp) => cp,
            Err(_) => {
                return Reply::Fault(FaultSpec::invalid_parameter(
                    &req.message_id,
                    format!("WINRS_CODEPAGE {v:?} is not a codepage."),
                ));
            }
        },
    };
    let noprofile = match req.option("WINRS_NOPROFILE") {
        None => None,
        Some(v) if v.eq_ignore_ascii_case("true") => Some(true),
        Some(v) if v.eq_ignore_ascii_case("false") => Some(false),
        Some(v) => {
            return Reply::Fault(FaultSpec::invalid_parameter(
                &req.message_id,
                format!("WINRS_NOPROFILE {v:?} is not TRUE or FALSE."),
            ));
        }
    };
    let mut env = Vec::new();
    if let Some(e) = shell.child(NS_SHELL, "Environment") {
        for v in &e.children {
            let name = v.attr("Name").unwrap_or("");
            if !v.is(NS_SHELL, "Variable") || name.is_empty() {
                return Reply::Fault(FaultSpec::schema(
                    Some(req.message_id.clone()),
                    "rsp:Environment holds something other than named rsp:Variable elements."
                        .into(),
                ));
            }
            env.push((name.to_owned(), v.text.clone()));
        }
    }
    let input = shell
        .child(NS_SHELL, "InputStreams")
        .map(|e| e.trimmed().to_owned())
        .unwrap_or_else(|| "stdin".into());
    let output = shell
        .child(NS_SHELL, "OutputStreams")
        .map(|e| e.trimmed().to_owned())
        .unwrap_or_else(|| "stdout stderr".into());

    let id = uuid::Uuid::new_v4().to_string().to_uppercase();
    s.shells.insert(
        id.clone(),
        ShellState {
            codepage,
            noprofile,
            env,
            commands: HashMap::new(),
        },
    );
    s.shells_created += 1;
    let body = format!(
        concat!(
            "<x:ResourceCreated><a:Address>http://{host}/wsman</a:Address><a:ReferenceParameters>",
            "<w:ResourceURI>{uri}</w:ResourceURI><w:SelectorSet><w:Selector Name=\"ShellId\">{id}</w:Selector>",
            "</w:SelectorSet></a:ReferenceParameters></x:ResourceCreated>",
            "<rsp:Shell xmlns:rsp=\"{shell_ns}\"><rsp:ShellId>{id}</rsp:ShellId>",
            "<rsp:ResourceUri>{uri}</rsp:ResourceUri><rsp:Owner>{owner}</rsp:Owner>",
            "<rsp:ClientIP>127.0.0.1</rsp:ClientIP><rsp:IdleTimeOut>PT7200.000S</rsp:IdleTimeOut>",
            "<rsp:InputStreams>{input}</rsp:InputStreams><rsp:OutputStreams>{output}</rsp:OutputStreams>",
            "<rsp:ShellRunTime>P0DT0H0M0S</rsp:ShellRunTime><rsp:ShellInactivity>P0DT0H0M0S</rsp:ShellInactivity>",
            "</rsp:Shell>"
        ),
        host = esc(host),
        uri = RESOURCE_URI_CMD,
        id = id,
        shell_ns = NS_SHELL,
        owner = esc(&format!("{}\\{}", cfg.host_name, cfg.username)),
        input = esc(&input),
        output = esc(&output),
    );
    Reply::Ok(response(
        "http://schemas.xmlsoap.org/ws/2004/09/transfer/CreateResponse",
        &req.message_id,
        &body,
    ))
}

fn command(s: &mut WinRmState, req: &Request, shell_id: &str) -> Reply {
    let Some(line) = req.body.child(NS_SHELL, "CommandLine") else {
        return Reply::Fault(FaultSpec::schema(
            Some(req.message_id.clone()),
            "The Command request has no rsp:CommandLine.".into(),
        ));
    };
    let Some(cmd) = line.child(NS_SHELL, "Command") else {
        return Reply::Fault(FaultSpec::schema(
            Some(req.message_id.clone()),
            "The Command request has no rsp:Command.".into(),
        ));
    };
    let mut command_line = cmd.text.clone();
    for arg in line.children.iter().filter(|c| c.is(NS_SHELL, "Arguments")) {
        command_line.push(' ');
        command_line.push_str(&arg.text);
    }
    let skip_cmd = req
        .option("WINRS_SKIP_CMD_SHELL")
        .is_some_and(|v| v.eq_ignore_ascii_case("true"));
    if skip_cmd && command_line.len() > CREATE_PROCESS_LIMIT {
        return Reply::Fault(FaultSpec {
            relates_to: Some(req.message_id.clone()),
            code: "s:Receiver",
            subcode: Some("w:InternalError"),
            reason: "The filename or extension is too long. ".into(),
            wsman_code: Some(WSMAN_FILENAME_TOO_LONG),
            not_understood: None,
        });
    }

    let outer_script = decode_powershell(&command_line);
    let command_id = uuid::Uuid::new_v4().to_string().to_uppercase();
    let shell = s.shells.get(shell_id).expect("checked by dispatch");
    let mut record = ExecutedCommand {
        shell_id: shell_id.to_owned(),
        command_id: command_id.clone(),
        command_line: command_line.clone(),
        script: outer_script.clone(),
        outer_script: outer_script.clone(),
        wrapped: false,
        via_stdin: false,
        codepage: shell.codepage,
        noprofile: shell.noprofile,
        env: shell.env.clone(),
        at: Utc::now(),
    };
    let too_long = !skip_cmd && command_line.len() > CMD_LINE_LIMIT;
    if !too_long && outer_script.as_deref() == Some(STDIN_BOOTSTRAP) {
        // Nothing runs until stdin ends; the record is made then, with the script read.
        record.via_stdin = true;
        let shell = s.shells.get_mut(shell_id).expect("checked by dispatch");
        shell.commands.insert(
            command_id.clone(),
            CommandState {
                stdout: Vec::new(),
                stderr: Vec::new(),
                exit_code: 0,
                timeouts_left: 0,
                stage: 0,
                terminated: false,
                pending: Some(Box::new(record)),
            },
        );
    } else {
        let (state, record) = if too_long {
            (
                CommandState {
                    stdout: Vec::new(),
                    stderr: b"The command line is too long.\r\n".to_vec(),
                    exit_code: 1,
                    timeouts_left: 0,
                    stage: 0,
                    terminated: false,
                    pending: None,
                },
                record,
            )
        } else {
            start_command(s, record)
        };
        let shell = s.shells.get_mut(shell_id).expect("checked by dispatch");
        shell.commands.insert(command_id.clone(), state);
        s.executed.push(record);
    }
    Reply::Ok(response(
        "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/CommandResponse",
        &req.message_id,
        &format!(
            "<rsp:CommandResponse><rsp:CommandId>{command_id}</rsp:CommandId></rsp:CommandResponse>"
        ),
    ))
}

/// Takes the wrapper off (triage-bot's approved-command wrapper reads the command from the
/// shell's environment), looks the script up in the output table and builds the command's
/// state. A wrapper whose variable is missing or not base64 of UTF-8 fails the way
/// PowerShell would.
fn start_command(s: &WinRmState, mut record: ExecutedCommand) -> (CommandState, ExecutedCommand) {
    let mut failure: Option<String> = None;
    if record.script.as_deref() == Some(APPROVED_WRAPPER) {
        record.wrapped = true;
        let value = record
            .env
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(APPROVED_COMMAND_VAR))
            .map(|(_, v)| v.trim().to_owned());
        let decoded = value
            .as_deref()
            .and_then(|v| base64::engine::general_purpose::STANDARD.decode(v).ok())
            .and_then(|b| String::from_utf8(b).ok());
        match decoded {
            Some(inner) => record.script = Some(inner),
            None => {
                record.script = None;
                failure = Some(format!(
                    "Exception calling \"FromBase64String\" with \"1\" argument(s): \"The input is not a valid Base-64 string\" ({APPROVED_COMMAND_VAR} is {})\r\n",
                    if value.is_some() {
                        "malformed"
                    } else {
                        "not set"
                    }
                ));
            }
        }
    }
    let powershell = record.outer_script.is_some();
    let key = record
        .script
        .clone()
        .unwrap_or_else(|| record.command_line.trim().to_owned());
    let canned = match failure {
        Some(stderr) => Canned {
            stdout: String::new(),
            stderr,
            exit_code: 1,
        },
        None => s
            .responses
            .get(&key)
            .or(s.default_response.as_ref())
            .cloned()
            .unwrap_or_else(|| not_recognized(&key, powershell)),
    };
    let stderr = if powershell {
        clixml_stderr(&canned.stderr)
    } else {
        canned.stderr.clone()
    };
    let state = CommandState {
        stdout: canned.stdout.into_bytes(),
        stderr: stderr.into_bytes(),
        exit_code: canned.exit_code,
        timeouts_left: s.delays.get(&key).copied().unwrap_or(0),
        stage: 0,
        terminated: false,
        pending: None,
    };
    (state, record)
}

/// What a host prints for a name it cannot find.
fn not_recognized(key: &str, powershell: bool) -> Canned {
    let first = key.split_whitespace().next().unwrap_or(key);
    let stderr = if powershell {
        format!(
            "{first} : The term '{first}' is not recognized as the name of a cmdlet, function, script file, or operable program. Check the spelling of the name, or if a path was included, verify that the path is correct and try again.\r\nAt line:1 char:1\r\n"
        )
    } else {
        format!(
            "'{first}' is not recognized as an internal or external command,\r\noperable program or batch file.\r\n"
        )
    };
    Canned {
        stdout: String::new(),
        stderr,
        exit_code: 1,
    }
}

fn find_command<'s>(
    s: &'s mut WinRmState,
    req: &Request,
    shell_id: &str,
    command_id: &str,
) -> Result<&'s mut CommandState, Box<Reply>> {
    s.shells
        .get_mut(shell_id)
        .and_then(|sh| sh.commands.get_mut(command_id))
        .filter(|c| !c.terminated)
        .ok_or_else(|| {
            Box::new(Reply::Fault(FaultSpec::invalid_selectors(
                &req.message_id,
                format!("The WS-Management service cannot process the request because the request contained an operation on a command identifier {command_id} that does not exist."),
            )))
        })
}

fn receive(s: &mut WinRmState, req: &Request, shell_id: &str) -> Reply {
    let desired = req
        .body
        .child(NS_SHELL, "Receive")
        .and_then(|r| r.child(NS_SHELL, "DesiredStream"));
    let Some(command_id) = desired.and_then(|d| d.attr("CommandId")).map(str::to_owned) else {
        // What Windows says to a Receive without a CommandId (pypsrp test_winrs_fail_poll_process).
        return Reply::Fault(FaultSpec::invalid_parameter(
            &req.message_id,
            "The parameter is incorrect. ".into(),
        ));
    };
    let hold = s.timed_out_hold.min(req.operation_timeout);
    let cmd = match find_command(s, req, shell_id, &command_id) {
        Ok(c) => c,
        Err(reply) => return *reply,
    };
    if cmd.pending.is_some() || cmd.timeouts_left > 0 {
        // Still waiting for stdin (the bootstrap reads all of it first), or a slow command.
        cmd.timeouts_left = cmd.timeouts_left.saturating_sub(1);
        return Reply::TimedOut {
            fault: FaultSpec {
                relates_to: Some(req.message_id.clone()),
                code: "s:Receiver",
                subcode: Some("w:TimedOut"),
                reason: "The WS-Management service cannot complete the operation within the time specified in OperationTimeout.  ".into(),
                wsman_code: Some(WSMAN_TIMED_OUT),
                not_understood: None,
            },
            hold,
        };
    }

    let id = &command_id;
    let stream = |name: &str, data: &[u8]| {
        if data.is_empty() {
            String::new()
        } else {
            format!(
                r#"<rsp:Stream Name="{name}" CommandId="{id}">{}</rsp:Stream>"#,
                base64::engine::general_purpose::STANDARD.encode(data)
            )
        }
    };
    // Split points: stdout in half (the first half again in two chunks), stderr after the
    // CLIXML marker line when there is one, as pywinrm's recorded response does.
    let half = cmd.stdout.len() / 2;
    let err_split = if cmd.stderr.starts_with(b"#< CLIXML\r\n") {
        11
    } else {
        cmd.stderr.len() / 2
    };
    let mut body = String::from("<rsp:ReceiveResponse>");
    let has_output = !cmd.stdout.is_empty() || !cmd.stderr.is_empty();
    if cmd.stage == 0 && has_output {
        body.push_str(&stream("stdout", &cmd.stdout[..half / 2]));
        body.push_str(&stream("stdout", &cmd.stdout[half / 2..half]));
        body.push_str(&stream("stderr", &cmd.stderr[..err_split]));
        body.push_str(&format!(
            r#"<rsp:CommandState CommandId="{id}" State="{STATE_RUNNING}"></rsp:CommandState>"#
        ));
        cmd.stage = 1;
    } else {
        if cmd.stage < 2 {
            let (out_from, err_from) = if cmd.stage == 1 {
                (half, err_split)
            } else {
                (0, 0)
            };
            body.push_str(&stream("stdout", &cmd.stdout[out_from..]));
            body.push_str(&stream("stderr", &cmd.stderr[err_from..]));
            body.push_str(&format!(
                r#"<rsp:Stream Name="stdout" CommandId="{id}" End="true"></rsp:Stream><rsp:Stream Name="stderr" CommandId="{id}" End="true"></rsp:Stream>"#
            ));
        }
        body.push_str(&format!(
            r#"<rsp:CommandState CommandId="{id}" State="{STATE_DONE}"><rsp:ExitCode>{}</rsp:ExitCode></rsp:CommandState>"#,
            cmd.exit_code
        ));
        cmd.stage = 2;
    }
    body.push_str("</rsp:ReceiveResponse>");
    Reply::Ok(response(
        "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/ReceiveResponse",
        &req.message_id,
        &body,
    ))
}

fn send(s: &mut WinRmState, req: &Request, shell_id: &str) -> Reply {
    let Some(stream) = req
        .body
        .child(NS_SHELL, "Send")
        .and_then(|r| r.child(NS_SHELL, "Stream"))
    else {
        return Reply::Fault(FaultSpec::schema(
            Some(req.message_id.clone()),
            "The Send request has no rsp:Stream.".into(),
        ));
    };
    let Some(command_id) = stream.attr("CommandId").map(str::to_owned) else {
        return Reply::Fault(FaultSpec::invalid_parameter(
            &req.message_id,
            "The parameter is incorrect. ".into(),
        ));
    };
    if let Err(reply) = find_command(s, req, shell_id, &command_id) {
        return *reply;
    }
    let data = match base64::engine::general_purpose::STANDARD.decode(stream.trimmed()) {
        Ok(d) => d,
        Err(_) => {
            return Reply::Fault(FaultSpec::schema(
                Some(req.message_id.clone()),
                "The stdin stream is not valid base64.".into(),
            ));
        }
    };
    let end = stream
        .attr("End")
        .is_some_and(|v| v.eq_ignore_ascii_case("true"));
    s.stdin.entry(command_id.clone()).or_default().extend(data);
    if end {
        let pending = s
            .shells
            .get_mut(shell_id)
            .and_then(|sh| sh.commands.get_mut(&command_id))
            .and_then(|c| c.pending.take());
        if let Some(mut record) = pending {
            let input = s.stdin.get(&command_id).cloned().unwrap_or_default();
            // `$input | Out-String` adds a line break after the last line; the script is
            // what was sent.
            record.script = Some(String::from_utf8_lossy(&input).into_owned());
            let (state, record) = start_command(s, *record);
            if let Some(cmd) = s
                .shells
                .get_mut(shell_id)
                .and_then(|sh| sh.commands.get_mut(&command_id))
            {
                *cmd = state;
            }
            s.executed.push(record);
        }
    }
    Reply::Ok(response(
        "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/SendResponse",
        &req.message_id,
        "<rsp:SendResponse/>",
    ))
}

fn signal(s: &mut WinRmState, req: &Request, shell_id: &str) -> Reply {
    let sig = req.body.child(NS_SHELL, "Signal");
    let Some(command_id) = sig.and_then(|e| e.attr("CommandId")).map(str::to_owned) else {
        return Reply::Fault(FaultSpec::invalid_parameter(
            &req.message_id,
            "The parameter is incorrect. ".into(),
        ));
    };
    let code = sig
        .and_then(|e| e.child(NS_SHELL, "Code"))
        .map(|c| c.trimmed().to_owned())
        .unwrap_or_default();
    let known = code
        .strip_prefix(SIGNAL_PREFIX)
        .is_some_and(|c| matches!(c, "terminate" | "ctrl_c" | "ctrl_break"));
    if !known {
        return Reply::Fault(FaultSpec::invalid_parameter(
            &req.message_id,
            format!("The signal code {code:?} is not supported."),
        ));
    }
    match find_command(s, req, shell_id, &command_id) {
        Ok(cmd) => cmd.terminated = true,
        Err(reply) => return *reply,
    }
    s.signals.push(RecordedSignal {
        shell_id: shell_id.to_owned(),
        command_id,
        code,
    });
    Reply::Ok(response(
        "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/SignalResponse",
        &req.message_id,
        "<rsp:SignalResponse/>",
    ))
}

fn delete(s: &mut WinRmState, req: &Request, shell_id: &str) -> Reply {
    s.shells.remove(shell_id);
    s.shells_deleted += 1;
    Reply::Ok(response(
        "http://schemas.xmlsoap.org/ws/2004/09/transfer/DeleteResponse",
        &req.message_id,
        "",
    ))
}

// ---------------------------------------------------------------------------------------------
// Response rendering.

fn esc(s: &str) -> std::borrow::Cow<'_, str> {
    quick_xml::escape::escape(s)
}

fn new_message_id() -> String {
    format!("uuid:{}", uuid::Uuid::new_v4().to_string().to_uppercase())
}

fn envelope_open() -> String {
    format!(
        r#"<s:Envelope xml:lang="en-US" xmlns:s="{NS_SOAP}" xmlns:a="{NS_ADDRESSING}" xmlns:x="{NS_TRANSFER}" xmlns:w="{NS_WSMAN}" xmlns:rsp="{NS_SHELL}" xmlns:p="{NS_WSMAN_MS}">"#
    )
}

fn response(action: &str, relates_to: &str, body: &str) -> String {
    let body = if body.is_empty() {
        "<s:Body></s:Body>".to_owned()
    } else {
        format!("<s:Body>{body}</s:Body>")
    };
    format!(
        "{}<s:Header><a:Action>{action}</a:Action><a:MessageID>{}</a:MessageID><a:To>{ADDRESS_ANONYMOUS}</a:To><a:RelatesTo>{}</a:RelatesTo></s:Header>{body}</s:Envelope>",
        envelope_open(),
        new_message_id(),
        esc(relates_to)
    )
}

/// A fault to send: SOAP code and subcode, reason, WSManFault code.
#[derive(Debug, Clone)]
struct FaultSpec {
    relates_to: Option<String>,
    code: &'static str,
    subcode: Option<&'static str>,
    reason: String,
    wsman_code: Option<u32>,
    /// For `s:MustUnderstand`: the header block not understood (namespace, local name).
    not_understood: Option<(String, String)>,
}

impl FaultSpec {
    /// A malformed request. The notes do not record the exact code Windows uses for every such
    /// case, so they all carry SchemaValidationError's code with a subcode naming the problem.
    fn schema(relates_to: Option<String>, reason: String) -> Self {
        Self {
            relates_to,
            code: "s:Sender",
            subcode: Some("w:SchemaValidationError"),
            reason,
            wsman_code: Some(WSMAN_SCHEMA_VALIDATION),
            not_understood: None,
        }
    }

    fn invalid_selectors(message_id: &str, reason: String) -> Self {
        Self {
            relates_to: Some(message_id.to_owned()),
            code: "s:Sender",
            subcode: Some("w:InvalidSelectors"),
            reason,
            wsman_code: Some(WSMAN_INVALID_SELECTORS),
            not_understood: None,
        }
    }

    fn invalid_parameter(message_id: &str, reason: String) -> Self {
        Self {
            relates_to: Some(message_id.to_owned()),
            code: "s:Sender",
            subcode: Some("w:InvalidParameter"),
            reason,
            wsman_code: Some(WSMAN_INVALID_PARAMETER),
            not_understood: None,
        }
    }

    fn render(&self, machine: &str) -> String {
        let mut header = format!(
            "<s:Header><a:Action>{ACTION_FAULT}</a:Action><a:MessageID>{}</a:MessageID><a:To>{ADDRESS_ANONYMOUS}</a:To>",
            new_message_id()
        );
        if let Some(r) = &self.relates_to {
            header.push_str(&format!("<a:RelatesTo>{}</a:RelatesTo>", esc(r)));
        }
        if let Some((ns, local)) = &self.not_understood {
            header.push_str(&format!(
                r#"<s:NotUnderstood qname="nu:{}" xmlns:nu="{}"/>"#,
                esc(local),
                esc(ns)
            ));
        }
        header.push_str("</s:Header>");
        let mut code = format!("<s:Code><s:Value>{}</s:Value>", self.code);
        if let Some(sub) = self.subcode {
            code.push_str(&format!("<s:Subcode><s:Value>{sub}</s:Value></s:Subcode>"));
        }
        code.push_str("</s:Code>");
        let detail = match self.wsman_code {
            Some(c) => format!(
                r#"<s:Detail><f:WSManFault xmlns:f="{NS_FAULT}" Code="{c}" Machine="{}"><f:Message>{}</f:Message></f:WSManFault></s:Detail>"#,
                esc(machine),
                esc(&self.reason)
            ),
            None => String::new(),
        };
        format!(
            r#"{}{header}<s:Body><s:Fault>{code}<s:Reason><s:Text xml:lang="en-US">{}</s:Text></s:Reason>{detail}</s:Fault></s:Body></s:Envelope>"#,
            envelope_open(),
            esc(&self.reason)
        )
    }
}

/// powershell.exe with redirected stdio writes error records to stderr as CLIXML: one
/// `<S S="Error">` per line, CRLF escaped as `_x000D__x000A_`.
pub fn clixml_stderr(stderr: &str) -> String {
    if stderr.is_empty() || stderr.starts_with("#< CLIXML") {
        return stderr.to_owned();
    }
    let mut out = String::from(
        "#< CLIXML\r\n<Objs Version=\"1.1.0.1\" xmlns=\"http://schemas.microsoft.com/powershell/2004/04\">",
    );
    for line in stderr.split_inclusive('\n') {
        let body = line.trim_end_matches(['\r', '\n']);
        let mut escaped = clixml_escape(body);
        if line.ends_with('\n') {
            escaped.push_str("_x000D__x000A_");
        }
        out.push_str(&format!("<S S=\"Error\">{}</S>", esc(&escaped)));
    }
    out.push_str("</Objs>");
    out
}

/// CLIXML string escaping: control characters as `_xHHHH_`, and an underscore that would
/// start such a sequence as `_x005F_`.
fn clixml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let chars: Vec<char> = s.chars().collect();
    for (i, &ch) in chars.iter().enumerate() {
        let starts_escape = ch == '_'
            && chars.get(i + 1) == Some(&'x')
            && chars.len() > i + 6
            && chars[i + 2..i + 6].iter().all(char::is_ascii_hexdigit)
            && chars[i + 6] == '_';
        if starts_escape {
            out.push_str("_x005F_");
        } else if (ch as u32) < 0x20 && ch != '\t' {
            out.push_str(&format!("_x{:04X}_", ch as u32));
        } else {
            out.push(ch);
        }
    }
    out
}

/// Finds the script in a `powershell[.exe] … -EncodedCommand <base64>` line: the flag
/// case-insensitive and abbreviated as powershell.exe accepts (`-e`, `-ec`, `-enc`, …), the
/// value base64 of UTF-16LE. `None` for anything else (cmd commands, `-Command`, bad base64).
pub fn decode_powershell(command_line: &str) -> Option<String> {
    let args = split_args(command_line);
    let exe = args.first()?.to_ascii_lowercase();
    let base = exe.rsplit(['\\', '/']).next().unwrap_or(&exe);
    if base != "powershell" && base != "powershell.exe" {
        return None;
    }
    let mut i = 1;
    while i < args.len() {
        let arg = &args[i];
        let name = arg
            .strip_prefix('-')
            .or_else(|| arg.strip_prefix('/'))?
            .to_ascii_lowercase();
        if name.is_empty() {
            return None; // `-`: the script comes from stdin
        }
        if name == "e" || name == "ec" || (name.len() >= 2 && "encodedcommand".starts_with(&name)) {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(args.get(i + 1)?)
                .ok()?;
            if bytes.len() % 2 != 0 {
                return None;
            }
            let units: Vec<u16> = bytes
                .chunks_exact(2)
                .map(|c| u16::from_le_bytes([c[0], c[1]]))
                .collect();
            return String::from_utf16(&units).ok();
        }
        let takes_value = name == "ep"
            || (name.len() >= 2 && "executionpolicy".starts_with(&name))
            || ["inputformat", "outputformat", "windowstyle", "version"]
                .iter()
                .any(|p| p.starts_with(&name))
            || (name.len() >= 3 && "psconsolefile".starts_with(&name))
            || (name.len() >= 4 && "configurationname".starts_with(&name));
        if takes_value {
            i += 2;
            continue;
        }
        if "command".starts_with(&name) || "file".starts_with(&name) {
            return None;
        }
        i += 1;
    }
    None
}

/// Splits a command line on whitespace, honouring double quotes.
fn split_args(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut has = false;
    for ch in s.chars() {
        match ch {
            '"' => {
                quoted = !quoted;
                has = true;
            }
            c if c.is_whitespace() && !quoted => {
                if has {
                    out.push(std::mem::take(&mut cur));
                    has = false;
                }
            }
            c => {
                cur.push(c);
                has = true;
            }
        }
    }
    if has {
        out.push(cur);
    }
    out
}

// ---------------------------------------------------------------------------------------------
// A small namespace-aware XML tree (the emulator parses requests independently of the client's
// parser, so a shared bug cannot hide on both sides).

#[derive(Debug, Clone, Default)]
struct Element {
    ns: Option<String>,
    local: String,
    attrs: Vec<(Option<String>, String, String)>,
    children: Vec<Element>,
    text: String,
}

impl Element {
    fn is(&self, ns: &str, local: &str) -> bool {
        self.local == local && self.ns.as_deref() == Some(ns)
    }

    fn child(&self, ns: &str, local: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.is(ns, local))
    }

    fn attr(&self, local: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(ns, l, _)| ns.is_none() && l == local)
            .map(|(_, _, v)| v.as_str())
    }

    fn trimmed(&self) -> &str {
        self.text.trim()
    }
}

fn ns_string(r: ResolveResult<'_>) -> Option<String> {
    match r {
        ResolveResult::Bound(ns) => Some(AsRef::<str>::as_ref(&ns).to_owned()),
        _ => None,
    }
}

fn parse_document(xml: &str) -> Result<Element, String> {
    let mut reader = NsReader::from_str(xml);
    let mut stack: Vec<Element> = Vec::new();
    let mut root: Option<Element> = None;
    loop {
        let (res, event) = reader.read_resolved_event().map_err(|e| e.to_string())?;
        let finished = match event {
            Event::Start(ref start) | Event::Empty(ref start) => {
                if let ResolveResult::Unknown(prefix) = &res {
                    return Err(format!("undeclared namespace prefix {prefix:?}"));
                }
                let mut el = Element {
                    ns: ns_string(res),
                    local: AsRef::<str>::as_ref(&start.local_name()).to_owned(),
                    ..Element::default()
                };
                for attr in start.attributes() {
                    let attr = attr.map_err(|e| e.to_string())?;
                    if attr.key.as_namespace_binding().is_some() {
                        continue;
                    }
                    let (ans, alocal) = reader.resolver().resolve_attribute(attr.key);
                    let value = attr
                        .normalized_value(XmlVersion::Implicit1_0)
                        .map_err(|e| e.to_string())?;
                    el.attrs.push((
                        ns_string(ans),
                        AsRef::<str>::as_ref(&alocal).to_owned(),
                        value.into_owned(),
                    ));
                }
                if matches!(event, Event::Start(_)) {
                    stack.push(el);
                    None
                } else {
                    Some(el)
                }
            }
            Event::End(_) => Some(stack.pop().ok_or("unbalanced end tag")?),
            Event::Text(t) => {
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(&t.xml10_content());
                }
                None
            }
            Event::CData(c) => {
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(&c.xml10_content());
                }
                None
            }
            Event::GeneralRef(r) => {
                let resolved = match r.resolve_char_ref().map_err(|e| e.to_string())? {
                    Some(ch) => ch.to_string(),
                    None => quick_xml::escape::resolve_predefined_entity(&r.xml10_content())
                        .ok_or_else(|| format!("unknown entity &{};", r.xml10_content()))?
                        .to_owned(),
                };
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(&resolved);
                }
                None
            }
            Event::Eof => break,
            Event::Comment(_) | Event::Decl(_) | Event::PI(_) | Event::DocType(_) => None,
        };
        if let Some(el) = finished {
            match stack.last_mut() {
                Some(parent) => parent.children.push(el),
                None if root.is_none() => root = Some(el),
                None => return Err("more than one root element".into()),
            }
        }
    }
    if !stack.is_empty() {
        return Err("document ended inside an element".into());
    }
    root.ok_or_else(|| "empty document".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(script: &str) -> String {
        let bytes: Vec<u8> = script.encode_utf16().flat_map(u16::to_le_bytes).collect();
        base64::engine::general_purpose::STANDARD.encode(bytes)
    }

    #[test]
    fn decodes_encoded_command_variants() {
        let b = enc("Write-Output hello");
        assert_eq!(b, "VwByAGkAdABlAC0ATwB1AHQAcAB1AHQAIABoAGUAbABsAG8A");
        for line in [
            format!("powershell -encodedcommand {b}"),
            format!("powershell.exe -NoProfile -NonInteractive -EncodedCommand {b}"),
            format!("PowerShell.EXE -enc {b}"),
            format!("powershell -e {b}"),
            format!("powershell -ec {b}"),
            format!("powershell -ExecutionPolicy Bypass -EncodedCommand {b}"),
            format!(
                r#""C:\Windows\System32\WindowsPowerShell\v1.0\powershell.exe" /NoLogo -EncodedCommand {b}"#
            ),
        ] {
            assert_eq!(
                decode_powershell(&line).as_deref(),
                Some("Write-Output hello"),
                "{line}"
            );
        }
        for line in [
            "ipconfig /all".to_owned(),
            "powershell -Command Get-Date".to_owned(),
            format!("powershell -ex {b}"),
            "powershell -EncodedCommand !!!".to_owned(),
            "powershell -EncodedCommand".to_owned(),
        ] {
            assert_eq!(decode_powershell(&line), None, "{line}");
        }
    }

    #[test]
    fn clixml_rendering() {
        let x = clixml_stderr("boom\r\nline two _x0041_\n");
        assert!(x.starts_with("#< CLIXML\r\n<Objs"));
        assert!(x.contains(r#"<S S="Error">boom_x000D__x000A_</S>"#), "{x}");
        assert!(x.contains("line two _x005F_x0041__x000D__x000A_"), "{x}");
        assert_eq!(clixml_stderr(""), "");
        assert_eq!(
            clixml_stderr("#< CLIXML\r\n<Objs/>"),
            "#< CLIXML\r\n<Objs/>"
        );
    }

    #[test]
    fn durations() {
        assert_eq!(parse_iso_duration("PT20S"), Some(Duration::from_secs(20)));
        assert_eq!(
            parse_iso_duration("PT60.000S"),
            Some(Duration::from_secs(60))
        );
        assert_eq!(
            parse_iso_duration("PT1.5S"),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(parse_iso_duration("PT1M30S"), Some(Duration::from_secs(90)));
        assert_eq!(
            parse_iso_duration("P0DT0H0M5S"),
            Some(Duration::from_secs(5))
        );
        assert_eq!(parse_iso_duration("20"), None);
        assert_eq!(parse_iso_duration("PT20"), None);
    }

    #[test]
    fn must_understand_with_and_without_prefix() {
        let doc = format!(
            r#"<env:Envelope xmlns:env="{NS_SOAP}" xmlns:w="{NS_WSMAN}" xmlns:z="urn:zzz"><env:Header><w:ResourceURI mustUnderstand="true">x</w:ResourceURI><z:Custom env:mustUnderstand="1"/><z:Other mustUnderstand="false"/></env:Header><env:Body/></env:Envelope>"#
        );
        let root = parse_document(&doc).unwrap();
        let h = root.child(NS_SOAP, "Header").unwrap();
        assert!(must_understand(&h.children[0]) && understood(&h.children[0]));
        assert!(must_understand(&h.children[1]) && !understood(&h.children[1]));
        assert!(!must_understand(&h.children[2]));
    }

    /// A request the way pypsrp writes one: `s:` prefixes and `s:mustUnderstand`.
    fn request(action: &str, shell_id: Option<&str>, extra_header: &str, body: &str) -> String {
        let selector = shell_id
            .map(|id| {
                format!(r#"<wsman:SelectorSet><wsman:Selector Name="ShellId">{id}</wsman:Selector></wsman:SelectorSet>"#)
            })
            .unwrap_or_default();
        format!(
            r#"<s:Envelope xmlns:s="{NS_SOAP}" xmlns:wsa="{NS_ADDRESSING}" xmlns:wsman="{NS_WSMAN}" xmlns:rsp="{NS_SHELL}"><s:Header><wsa:To>http://x:5985/wsman</wsa:To><wsa:MessageID>uuid:REQ-1</wsa:MessageID><wsman:OperationTimeout>PT20S</wsman:OperationTimeout><wsman:ResourceURI s:mustUnderstand="true">{RESOURCE_URI_CMD}</wsman:ResourceURI><wsa:Action s:mustUnderstand="true">{action}</wsa:Action>{selector}{extra_header}</s:Header><s:Body>{body}</s:Body></s:Envelope>"#
        )
    }

    fn cfg() -> WinRmEmulatorConfig {
        WinRmEmulatorConfig {
            host_name: "WIN-T".into(),
            username: "u".into(),
            password: "p".into(),
        }
    }

    fn run(s: &mut WinRmState, xml: &str) -> Reply {
        match Request::parse(xml) {
            Ok(req) => dispatch(&cfg(), s, &req, "x:5985"),
            Err(f) => Reply::Fault(*f),
        }
    }

    fn ok(reply: Reply) -> Element {
        match reply {
            Reply::Ok(xml) => {
                let root = parse_document(&xml).unwrap();
                let header = root.child(NS_SOAP, "Header").unwrap();
                assert_eq!(
                    header.child(NS_ADDRESSING, "RelatesTo").unwrap().trimmed(),
                    "uuid:REQ-1"
                );
                root.child(NS_SOAP, "Body").unwrap().clone()
            }
            Reply::Fault(f) | Reply::TimedOut { fault: f, .. } => panic!("fault: {f:?}"),
        }
    }

    fn fault_code(reply: Reply) -> (Option<&'static str>, Option<u32>) {
        match reply {
            Reply::Fault(f) | Reply::TimedOut { fault: f, .. } => (f.subcode, f.wsman_code),
            Reply::Ok(xml) => panic!("expected a fault, got {xml}"),
        }
    }

    fn create(s: &mut WinRmState) -> String {
        let body = ok(run(
            s,
            &request(
                ACTION_CREATE,
                None,
                "",
                "<rsp:Shell><rsp:InputStreams>stdin</rsp:InputStreams></rsp:Shell>",
            ),
        ));
        let created = body.child(NS_TRANSFER, "ResourceCreated").unwrap();
        let selector = created
            .child(NS_ADDRESSING, "ReferenceParameters")
            .and_then(|r| r.child(NS_WSMAN, "SelectorSet"))
            .and_then(|s| s.child(NS_WSMAN, "Selector"))
            .unwrap();
        let id = selector.trimmed().to_owned();
        let shell = body.child(NS_SHELL, "Shell").unwrap();
        assert_eq!(shell.child(NS_SHELL, "ShellId").unwrap().trimmed(), id);
        id
    }

    fn command(s: &mut WinRmState, shell: &str, line: &str) -> String {
        let body = ok(run(
            s,
            &request(
                ACTION_COMMAND,
                Some(shell),
                "",
                &format!(
                    "<rsp:CommandLine><rsp:Command>{}</rsp:Command></rsp:CommandLine>",
                    esc(line)
                ),
            ),
        ));
        body.child(NS_SHELL, "CommandResponse")
            .and_then(|c| c.child(NS_SHELL, "CommandId"))
            .unwrap()
            .trimmed()
            .to_owned()
    }

    fn receive_req(shell: &str, cmd: &str) -> String {
        request(
            ACTION_RECEIVE,
            Some(shell),
            "",
            &format!(
                r#"<rsp:Receive><rsp:DesiredStream CommandId="{cmd}">stdout stderr</rsp:DesiredStream></rsp:Receive>"#
            ),
        )
    }

    #[test]
    fn full_flow_with_chunked_output() {
        let mut s = WinRmState::new();
        s.responses.insert(
            "Get-Date".into(),
            Canned {
                stdout: "Monday 1 January\r\n".into(),
                stderr: "oops\r\n".into(),
                exit_code: 2,
            },
        );
        let shell = create(&mut s);
        let cmd = command(
            &mut s,
            &shell,
            &format!("powershell -EncodedCommand {}", enc("Get-Date")),
        );
        assert_eq!(s.executed[0].script.as_deref(), Some("Get-Date"));
        assert_eq!(
            s.executed[0].codepage, 437,
            "Windows' default when no codepage is sent"
        );

        let mut stdout = Vec::new();
        let mut stderr = Vec::new();
        let mut stdout_chunks = 0;
        let mut exit = None;
        for _ in 0..5 {
            let body = ok(run(&mut s, &receive_req(&shell, &cmd)));
            let resp = body.child(NS_SHELL, "ReceiveResponse").unwrap();
            for st in resp.children.iter().filter(|c| c.is(NS_SHELL, "Stream")) {
                let data = base64::engine::general_purpose::STANDARD
                    .decode(st.trimmed())
                    .unwrap();
                match st.attr("Name") {
                    Some("stdout") if !data.is_empty() => {
                        stdout_chunks += 1;
                        stdout.extend(data);
                    }
                    Some("stderr") => stderr.extend(data),
                    _ => {}
                }
            }
            let state = resp.child(NS_SHELL, "CommandState").unwrap();
            if state.attr("State") == Some(STATE_DONE) {
                exit = Some(
                    state
                        .child(NS_SHELL, "ExitCode")
                        .unwrap()
                        .trimmed()
                        .to_owned(),
                );
                break;
            }
        }
        assert_eq!(stdout, b"Monday 1 January\r\n");
        assert!(stdout_chunks >= 2, "stdout must come in several chunks");
        let stderr = String::from_utf8(stderr).unwrap();
        assert!(stderr.starts_with("#< CLIXML\r\n<Objs"), "{stderr}");
        assert!(
            stderr.contains(r#"<S S="Error">oops_x000D__x000A_</S>"#),
            "{stderr}"
        );
        assert_eq!(exit.as_deref(), Some("2"));

        ok(run(
            &mut s,
            &request(
                ACTION_SIGNAL,
                Some(&shell),
                "",
                &format!(
                    r#"<rsp:Signal CommandId="{cmd}"><rsp:Code>{SIGNAL_PREFIX}terminate</rsp:Code></rsp:Signal>"#
                ),
            ),
        ));
        assert_eq!(
            fault_code(run(&mut s, &receive_req(&shell, &cmd))).1,
            Some(WSMAN_INVALID_SELECTORS)
        );
        ok(run(&mut s, &request(ACTION_DELETE, Some(&shell), "", "")));
        assert_eq!(s.open_shells(), 0);
        assert_eq!(
            fault_code(run(&mut s, &request(ACTION_DELETE, Some(&shell), "", ""))).1,
            Some(WSMAN_INVALID_SELECTORS),
            "the shell is gone"
        );
    }

    #[test]
    fn delayed_receives_time_out_first() {
        let mut s = WinRmState::new();
        s.delays.insert("slow".into(), 2);
        let shell = create(&mut s);
        let cmd = command(&mut s, &shell, &format!("powershell -enc {}", enc("slow")));
        for _ in 0..2 {
            match run(&mut s, &receive_req(&shell, &cmd)) {
                Reply::TimedOut { fault, .. } => {
                    assert_eq!(fault.wsman_code, Some(WSMAN_TIMED_OUT));
                    assert_eq!(fault.subcode, Some("w:TimedOut"));
                }
                _ => panic!("expected w:TimedOut"),
            }
        }
        ok(run(&mut s, &receive_req(&shell, &cmd)));
    }

    #[test]
    fn strict_validation() {
        let mut s = WinRmState::new();
        let shell = create(&mut s);
        let line = "<rsp:CommandLine><rsp:Command>hostname</rsp:Command></rsp:CommandLine>";

        // ShellId selector missing, or unknown.
        assert_eq!(
            fault_code(run(&mut s, &request(ACTION_COMMAND, None, "", line))).1,
            Some(WSMAN_INVALID_SELECTORS)
        );
        assert_eq!(
            fault_code(run(
                &mut s,
                &request(ACTION_COMMAND, Some("NOPE"), "", line)
            ))
            .1,
            Some(WSMAN_INVALID_SELECTORS)
        );
        // Unknown CommandId; Receive without one.
        assert_eq!(
            fault_code(run(&mut s, &receive_req(&shell, "NOPE"))).1,
            Some(WSMAN_INVALID_SELECTORS)
        );
        assert_eq!(
            fault_code(run(
                &mut s,
                &request(
                    ACTION_RECEIVE,
                    Some(&shell),
                    "",
                    "<rsp:Receive><rsp:DesiredStream>stdout</rsp:DesiredStream></rsp:Receive>"
                )
            ))
            .1,
            Some(WSMAN_INVALID_PARAMETER)
        );
        // Unknown Action, wrong ResourceURI, no MessageID, not understood header, SOAP 1.1.
        assert_eq!(
            fault_code(run(
                &mut s,
                &request("http://example.com/Nope", Some(&shell), "", "")
            ))
            .0,
            Some("a:ActionNotSupported")
        );
        let wrong_uri = request(ACTION_COMMAND, Some(&shell), "", line).replace(
            RESOURCE_URI_CMD,
            "http://schemas.microsoft.com/powershell/Microsoft.PowerShell",
        );
        assert_eq!(
            fault_code(run(&mut s, &wrong_uri)).0,
            Some("w:DestinationUnreachable")
        );
        let no_id = request(ACTION_COMMAND, Some(&shell), "", line)
            .replace("<wsa:MessageID>uuid:REQ-1</wsa:MessageID>", "");
        assert_eq!(
            fault_code(run(&mut s, &no_id)).0,
            Some("a:MessageInformationHeaderRequired")
        );
        match run(
            &mut s,
            &request(
                ACTION_COMMAND,
                Some(&shell),
                r#"<z:Thing xmlns:z="urn:z" s:mustUnderstand="true"/>"#,
                line,
            ),
        ) {
            Reply::Fault(f) => {
                assert_eq!(f.code, "s:MustUnderstand");
                assert!(f.render("h").contains("NotUnderstood"));
            }
            _ => panic!("expected MustUnderstand"),
        }
        let soap11 =
            format!(r#"<e:Envelope xmlns:e="{NS_SOAP11}"><e:Header/><e:Body/></e:Envelope>"#);
        assert_eq!(
            fault_code(run(&mut s, &soap11)).1,
            Some(WSMAN_SCHEMA_VALIDATION)
        );
        assert!(matches!(run(&mut s, "<not xml"), Reply::Fault(_)));
        // A not-understood header that is optional is fine.
        ok(run(
            &mut s,
            &request(
                ACTION_COMMAND,
                Some(&shell),
                r#"<z:Thing xmlns:z="urn:z" s:mustUnderstand="false"/>"#,
                line,
            ),
        ));
        assert_eq!(s.open_shells(), 1);
    }

    /// The decoded stderr bytes of a ReceiveResponse body.
    fn stderr_chunks(body: &Element) -> Vec<u8> {
        body.child(NS_SHELL, "ReceiveResponse")
            .unwrap()
            .children
            .iter()
            .filter(|c| c.attr("Name") == Some("stderr"))
            .flat_map(|c| {
                base64::engine::general_purpose::STANDARD
                    .decode(c.trimmed())
                    .unwrap()
            })
            .collect()
    }

    #[test]
    fn command_line_too_long_for_cmd() {
        let mut s = WinRmState::new();
        let shell = create(&mut s);
        let cmd = command(
            &mut s,
            &shell,
            &format!("echo {}", "a".repeat(CMD_LINE_LIMIT)),
        );
        let body = ok(run(&mut s, &receive_req(&shell, &cmd)));
        let stderr = stderr_chunks(&body);
        // The first Receive carries part of it; the rest comes with Done.
        let body2 = ok(run(&mut s, &receive_req(&shell, &cmd)));
        let rest = stderr_chunks(&body2);
        assert_eq!(
            [stderr, rest].concat(),
            b"The command line is too long.\r\n"
        );
    }
}
