//! The WinRM client against the in-process Windows host emulator: the whole Create → Command →
//! Receive → Signal → Delete flow over real HTTP, including the failure paths, always checking
//! that no shell is left open on the host.

use std::net::TcpListener;
use std::time::Duration;

use emulators::winrm::{WinRmEmulator, WinRmEmulatorConfig};

use super::*;

pub(crate) const USER: &str = "vagrant";
pub(crate) const PASSWORD: &str = "Sup3r-Secret-pw!";

/// A Windows host emulator that knows [`USER`] with [`PASSWORD`].
pub(crate) async fn emulator() -> WinRmEmulator {
    WinRmEmulator::start(WinRmEmulatorConfig {
        host_name: "WIN-EMU01".into(),
        username: USER.into(),
        password: PASSWORD.into(),
    })
    .await
    .expect("emulator starts")
}

fn config(endpoint: String, password: &str) -> WinRmConfig {
    WinRmConfig {
        operation_timeout: Duration::from_secs(2),
        read_timeout: Duration::from_secs(5),
        command_timeout: Duration::from_secs(10),
        ..WinRmConfig::new(endpoint, USER, Secret::new(password))
    }
}

fn client(emu: &WinRmEmulator) -> WinRmClient {
    WinRmClient::new(config(emu.url(), PASSWORD)).expect("valid config")
}

#[tokio::test]
async fn normal_run_returns_stdout_and_deletes_the_shell() {
    let emu = emulator().await;
    let script = "Get-Process -Name lsass | Select-Object Id,Name";
    // Non-ASCII output: the emulator splits stdout across chunks and responses, so this only
    // decodes right if chunks are joined as bytes first.
    emu.set_response(
        script,
        "Id   Name\r\n--   ----\r\n624  lsass — ok ✓\r\n",
        "",
        0,
    );
    let out = client(&emu).run_powershell(script).await.expect("runs");
    assert_eq!(
        out.stdout,
        "Id   Name\r\n--   ----\r\n624  lsass — ok ✓\r\n"
    );
    assert_eq!(out.stderr, "");
    assert_eq!(out.exit_code, 0);
    assert!(!out.truncated);
    assert_eq!(emu.open_shells(), 0);

    let executed = emu.executed();
    assert_eq!(executed.len(), 1);
    assert_eq!(executed[0].script.as_deref(), Some(script));
    assert_eq!(executed[0].codepage, 65001);
    assert!(
        executed[0]
            .command_line
            .starts_with("powershell.exe -NoProfile -NonInteractive -EncodedCommand ")
    );
    // The script never appears in clear on the command line.
    assert!(!executed[0].command_line.contains("Get-Process"));
    assert_eq!(emu.signals().len(), 1, "terminate is sent after Done");
}

#[tokio::test]
async fn delayed_command_retries_timed_out_receives() {
    let emu = emulator().await;
    emu.set_response("Start-Sleep 30; 'done'", "done\r\n", "", 0);
    emu.set_delay("Start-Sleep 30; 'done'", 3);
    let out = client(&emu)
        .run_powershell("Start-Sleep 30; 'done'")
        .await
        .expect("TimedOut faults are retried");
    assert_eq!(out.stdout, "done\r\n");
    let timed_out = emu
        .requests()
        .iter()
        .filter(|r| r.wsman_code == Some(2_150_858_793))
        .count();
    assert_eq!(timed_out, 3);
    assert_eq!(emu.open_shells(), 0);
}

#[tokio::test]
async fn non_zero_exit_with_clixml_stderr_is_cleaned() {
    let emu = emulator().await;
    emu.set_response(
        r#"Write-Error "Error""#,
        "",
        "Write-Error \"Error\" : Error\r\n    + CategoryInfo          : NotSpecified: (:) [Write-Error], WriteErrorException\r\n",
        1,
    );
    let out = client(&emu)
        .run_powershell(r#"Write-Error "Error""#)
        .await
        .expect("a failing command is still a completed run");
    assert_eq!(out.exit_code, 1);
    assert!(out.stderr_raw.starts_with("#< CLIXML\r\n"));
    assert_eq!(
        out.stderr,
        "Write-Error \"Error\" : Error\n    + CategoryInfo          : NotSpecified: (:) [Write-Error], WriteErrorException"
    );
    assert_eq!(emu.open_shells(), 0);
}

#[tokio::test]
async fn unknown_script_gets_the_not_recognized_default() {
    let emu = emulator().await;
    let out = client(&emu).run_powershell("Get-Nothing").await.unwrap();
    assert_eq!(out.exit_code, 1);
    assert!(
        out.stderr
            .contains("The term 'Get-Nothing' is not recognized")
    );
}

#[tokio::test]
async fn exit_code_above_i32_max() {
    let emu = emulator().await;
    emu.set_response("crash", "", "", 3_221_225_477);
    let out = client(&emu).run_powershell("crash").await.unwrap();
    assert_eq!(out.exit_code, 3_221_225_477);
}

#[tokio::test]
async fn output_is_capped() {
    let emu = emulator().await;
    emu.set_response("big", &"é".repeat(100), "", 0);
    let mut cfg = config(emu.url(), PASSWORD);
    cfg.max_output_bytes = 51; // cuts the 26th "é" (2 bytes) in half
    let out = WinRmClient::new(cfg)
        .unwrap()
        .run_powershell("big")
        .await
        .unwrap();
    assert!(out.truncated);
    assert_eq!(out.stdout, "é".repeat(25));
    assert_eq!(emu.open_shells(), 0);
}

#[tokio::test]
async fn wrong_password_is_an_auth_error_and_leaks_nothing() {
    let emu = emulator().await;
    let wrong = "Wr0ng-Passw0rd-xyz";
    let client = WinRmClient::new(config(emu.url(), wrong)).unwrap();
    let err = client.run_powershell("hostname").await.unwrap_err();
    match &err {
        WinRmError::Auth {
            status,
            offered_schemes,
        } => {
            assert_eq!(*status, 401);
            assert!(offered_schemes.contains(&"Negotiate".to_owned()));
            assert!(offered_schemes.contains(&"Basic".to_owned()));
        }
        other => panic!("expected Auth, got {other:?}"),
    }
    assert!(!err.is_retryable());
    for shown in [err.to_string(), format!("{err:?}"), format!("{client:?}")] {
        assert!(!shown.contains(wrong), "password leaked: {shown}");
    }
    assert_eq!(emu.open_shells(), 0);
    assert!(emu.executed().is_empty());
    assert_eq!(emu.auth_failures(), 1);
}

#[tokio::test]
async fn unreachable_endpoint_is_a_retryable_connect_error() {
    // Bind and drop: the port is then closed on loopback.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let client =
        WinRmClient::new(config(format!("http://127.0.0.1:{port}/wsman"), PASSWORD)).unwrap();
    let err = client.run_powershell("hostname").await.unwrap_err();
    assert!(
        matches!(
            err,
            WinRmError::Connect {
                phase: Phase::Create,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.is_retryable());
    assert!(!err.to_string().contains(PASSWORD));
}

#[tokio::test]
async fn command_deadline_terminates_and_still_deletes_the_shell() {
    let emu = emulator().await;
    emu.set_response("Wait-Forever", "never", "", 0);
    emu.set_delay("Wait-Forever", usize::MAX);
    let mut cfg = config(emu.url(), PASSWORD);
    cfg.command_timeout = Duration::from_secs(1);
    let err = WinRmClient::new(cfg)
        .unwrap()
        .run_powershell("Wait-Forever")
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            WinRmError::Timeout {
                phase: Phase::Run,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(!err.is_retryable(), "the command had started");
    assert_eq!(emu.open_shells(), 0);
    assert_eq!(emu.signals().len(), 1);
}

#[tokio::test]
async fn dropped_run_still_deletes_the_shell() {
    let emu = emulator().await;
    emu.set_delay("Wait-Forever", usize::MAX);
    let client = client(&emu);
    let run = tokio::spawn(async move { client.run_powershell("Wait-Forever").await });
    emu.wait_until("the command to start", Duration::from_secs(5), |s| {
        !s.executed.is_empty()
    })
    .await
    .unwrap();
    // The caller gives up mid-receive; the guard must clean up in the background.
    run.abort();
    emu.wait_until("the shell to be deleted", Duration::from_secs(5), |s| {
        s.shells_created == 1 && s.open_shells() == 0
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn service_unavailable_on_create_is_retryable() {
    let emu = emulator().await;
    emu.set_response("hostname", "WIN-EMU01\r\n", "", 0);
    let client = client(&emu);
    // A refusal or two is tried again inside the run, on a fresh connection.
    emu.fail_next(2, 503);
    assert_eq!(
        client.run_powershell("hostname").await.unwrap().stdout,
        "WIN-EMU01\r\n"
    );
    // One that lasts gives the caller a retryable error: nothing was started.
    emu.fail_next(6, 503);
    let err = client.run_powershell("hostname").await.unwrap_err();
    assert!(
        matches!(err, WinRmError::Http { status: 503, .. }),
        "{err:?}"
    );
    assert!(err.is_retryable());
    // The next attempt goes through.
    assert_eq!(
        client.run_powershell("hostname").await.unwrap().stdout,
        "WIN-EMU01\r\n"
    );
    assert_eq!(emu.open_shells(), 0);
}

#[tokio::test]
async fn long_script_goes_through_stdin_to_the_bootstrap() {
    let emu = emulator().await;
    // 4,000 characters cannot fit cmd.exe's 8,191 once UTF-16LE and base64 have grown them.
    let script = format!("'{}' | Out-Null; 'long ok é'", "a".repeat(4000));
    emu.set_response(&script, "long ok é\r\n", "", 0);
    let out = client(&emu).run_powershell(&script).await.expect("runs");
    assert_eq!(out.stdout, "long ok é\r\n");
    let executed = emu.executed();
    assert_eq!(executed.len(), 1);
    let e = &executed[0];
    assert!(e.via_stdin);
    assert_eq!(
        e.script.as_deref(),
        Some(script.as_str()),
        "the script read from stdin"
    );
    assert_eq!(
        e.outer_script.as_deref(),
        Some(powershell::STDIN_BOOTSTRAP),
        "the emulator knows the client's bootstrap text"
    );
    assert!(e.command_line.len() <= MAX_COMMAND_LINE);
    assert_eq!(emu.stdin(&e.command_id).unwrap(), script.as_bytes());
    assert_eq!(emu.open_shells(), 0);
}

#[tokio::test]
async fn approved_command_runs_inside_the_wrapper_as_data() {
    let emu = emulator().await;
    // Quotes, braces, a here-string end and a comment: none of it may reach the script text.
    let command = "Get-Service -Name 'Win*' | Where-Object { $_.Status -eq \"Running\" } # '@ }";
    emu.set_response(command, "Name : WinRM\r\n", "", 0);
    let out = client(&emu).run_approved(command).await.expect("runs");
    assert_eq!(out.stdout, "Name : WinRM\r\n");
    let e = &emu.executed()[0];
    assert!(e.wrapped);
    assert_eq!(e.approved_command(), Some(command));
    assert_eq!(e.script.as_deref(), Some(command));
    assert_eq!(
        e.outer_script.as_deref(),
        Some(powershell::APPROVED_WRAPPER),
        "the emulator's copy of the wrapper is the client's"
    );
    assert_eq!(
        emulators::winrm::APPROVED_WRAPPER,
        powershell::APPROVED_WRAPPER
    );
    assert_eq!(
        emulators::winrm::STDIN_BOOTSTRAP,
        powershell::STDIN_BOOTSTRAP
    );
    assert!(!e.command_line.contains("Get-Service"));
    assert!(!e.outer_script.as_deref().unwrap().contains("Get-Service"));
    assert_eq!(e.noprofile, Some(true));
    assert_eq!(e.codepage, 65001);
    assert_eq!(e.env.len(), 1);
    assert_eq!(e.env[0].0, powershell::APPROVED_COMMAND_VAR);
}

fn ntlm_config(emu: &WinRmEmulator, password: &str) -> WinRmConfig {
    WinRmConfig {
        auth: WinRmAuth::Ntlm,
        ..config(emu.url(), password)
    }
}

#[tokio::test]
async fn ntlm_with_sealing_against_a_stock_host() {
    let emu = emulator().await;
    emu.set_auth(emulators::winrm::EmulatorAuth::stock());
    emu.set_response("hostname", "WIN-EMU01\r\n", "", 0);
    emu.set_response("Start-Sleep 3; 'late'", "late\r\n", "", 0);
    emu.set_delay("Start-Sleep 3; 'late'", 2);
    let client = WinRmClient::new(ntlm_config(&emu, PASSWORD)).unwrap();
    let out = client.run_powershell("hostname").await.expect("NTLM run");
    assert_eq!(out.stdout, "WIN-EMU01\r\n");
    // TimedOut faults come back sealed too, and are retried.
    let out = client
        .run_powershell("Start-Sleep 3; 'late'")
        .await
        .expect("sealed faults are unsealed");
    assert_eq!(out.stdout, "late\r\n");
    let requests = emu.requests();
    let soap: Vec<_> = requests.iter().filter(|r| r.action.is_some()).collect();
    assert!(soap.len() >= 10, "{soap:#?}");
    assert!(soap.iter().all(|r| r.sealed), "every envelope was sealed");
    assert_eq!(
        soap.iter()
            .filter(|r| r.wsman_code == Some(2_150_858_793))
            .count(),
        2
    );
    // One logon per run: each run owns its connection.
    assert_eq!(emu.ntlm_logons(), 2);
    assert_eq!(emu.open_shells(), 0);
}

#[tokio::test]
async fn ntlm_wrong_password_is_an_auth_error() {
    let emu = emulator().await;
    emu.set_auth(emulators::winrm::EmulatorAuth::stock());
    let wrong = "Not-The-Passw0rd";
    let client = WinRmClient::new(ntlm_config(&emu, wrong)).unwrap();
    let err = client.run_powershell("hostname").await.unwrap_err();
    assert!(
        matches!(err, WinRmError::Auth { status: 401, ref offered_schemes } if offered_schemes == &["Negotiate".to_owned()]),
        "{err:?}"
    );
    assert!(!err.to_string().contains(wrong) && !format!("{err:?}").contains(wrong));
    assert!(emu.executed().is_empty());
    assert_eq!(emu.ntlm_logons(), 0);
}

#[tokio::test]
async fn basic_is_refused_by_a_stock_host() {
    let emu = emulator().await;
    emu.set_auth(emulators::winrm::EmulatorAuth::stock());
    let err = client(&emu).run_powershell("hostname").await.unwrap_err();
    assert!(
        matches!(err, WinRmError::Auth { ref offered_schemes, .. } if offered_schemes == &["Negotiate".to_owned()]),
        "{err:?}"
    );
}

#[tokio::test]
async fn ntlm_reauthenticates_once_when_the_host_forgets_the_context() {
    let emu = emulator().await;
    emu.set_auth(emulators::winrm::EmulatorAuth::stock());
    emu.set_delay("Wait-Bit", 1);
    emu.set_timed_out_hold(Duration::from_millis(300));
    emu.set_response("Wait-Bit", "ok\r\n", "", 0);
    let client = WinRmClient::new(ntlm_config(&emu, PASSWORD)).unwrap();
    let run = tokio::spawn(async move { client.run_powershell("Wait-Bit").await });
    emu.wait_until("the command to start", Duration::from_secs(5), |s| {
        !s.executed.is_empty()
    })
    .await
    .unwrap();
    // A service restart: the next sealed request gets 401 and the client logs on again.
    emu.drop_ntlm_contexts();
    let out = run.await.unwrap().expect("re-authenticated");
    assert_eq!(out.stdout, "ok\r\n");
    assert_eq!(emu.ntlm_logons(), 2);
    assert_eq!(emu.open_shells(), 0);
}

#[test]
fn ntlm_needs_http_and_a_known_transport_name() {
    let mut cfg = config("https://win:5986/wsman".into(), PASSWORD);
    cfg.auth = WinRmAuth::Ntlm;
    assert!(matches!(cfg.validate(), Err(WinRmError::Config(_))));
    assert_eq!(WinRmAuth::parse("NTLM"), Some(WinRmAuth::Ntlm));
    assert_eq!(WinRmAuth::parse("kerberos"), None);
}

#[test]
fn missing_or_bad_ca_file_is_a_config_error() {
    let mut cfg = config("https://win:5986/wsman".into(), PASSWORD);
    cfg.tls.ca_file = Some("/nonexistent/ca.pem".into());
    let err = WinRmClient::new(cfg.clone()).unwrap_err();
    assert!(matches!(err, WinRmError::Config(ref m) if m.contains("/nonexistent/ca.pem")));
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("ca.pem");
    std::fs::write(&bad, "not a certificate").unwrap();
    cfg.tls.ca_file = Some(bad);
    assert!(matches!(WinRmClient::new(cfg), Err(WinRmError::Config(_))));
}

#[tokio::test]
async fn concurrent_runs_use_separate_shells() {
    let emu = emulator().await;
    emu.set_response("'a'", "a\r\n", "", 0);
    emu.set_response("'b'", "b\r\n", "", 0);
    let c = client(&emu);
    let (a, b) = tokio::join!(c.run_powershell("'a'"), c.run_powershell("'b'"));
    assert_eq!(a.unwrap().stdout, "a\r\n");
    assert_eq!(b.unwrap().stdout, "b\r\n");
    let shells: std::collections::HashSet<_> =
        emu.executed().into_iter().map(|e| e.shell_id).collect();
    assert_eq!(shells.len(), 2);
    assert_eq!(emu.open_shells(), 0);
}

#[test]
fn config_validation() {
    let ok = config("http://win:5985/wsman".into(), PASSWORD);
    assert!(ok.validate().is_ok());

    let mut bad = ok.clone();
    bad.read_timeout = bad.operation_timeout;
    assert!(matches!(bad.validate(), Err(WinRmError::Config(_))));

    let mut bad = ok.clone();
    bad.endpoint = format!("http://{USER}:{PASSWORD}@win:5985/wsman");
    let err = WinRmClient::new(bad).unwrap_err();
    assert!(matches!(err, WinRmError::Config(_)));
    assert!(!err.to_string().contains(PASSWORD), "{err}");

    let mut bad = ok.clone();
    bad.endpoint = "ftp://win/wsman".into();
    assert!(bad.validate().is_err());

    let mut bad = ok;
    bad.max_output_bytes = 0;
    assert!(bad.validate().is_err());
}

#[test]
fn no_error_or_debug_output_shows_the_password() {
    let cfg = config("http://win:5985/wsman".into(), PASSWORD);
    let client = WinRmClient::new(cfg.clone()).unwrap();
    let errors = [
        WinRmError::Auth {
            status: 401,
            offered_schemes: vec!["Negotiate".into()],
        },
        WinRmError::Config("x".into()),
        WinRmError::Timeout {
            phase: Phase::Run,
            after: Duration::from_secs(1),
        },
        WinRmError::Http {
            phase: Phase::Create,
            status: 500,
            body: "oops".into(),
        },
    ];
    for shown in errors
        .iter()
        .flat_map(|e| [e.to_string(), format!("{e:?}")])
        .chain([format!("{cfg:?}"), format!("{client:?}")])
    {
        assert!(!shown.contains(PASSWORD), "{shown}");
    }
}

#[test]
fn run_future_is_send() {
    fn assert_send<T: Send>(_: &T) {}
    let client = WinRmClient::new(config("http://win:5985/wsman".into(), PASSWORD)).unwrap();
    let fut = client.run_powershell("hostname");
    assert_send(&fut);
}

async fn https_emulator() -> (WinRmEmulator, emulators::winrm::TestPki) {
    let pki = emulators::winrm::TestPki::generate().expect("openssl makes a CA and a host cert");
    let emu = WinRmEmulator::start_https(
        WinRmEmulatorConfig {
            host_name: "WIN-EMU01".into(),
            username: USER.into(),
            password: PASSWORD.into(),
        },
        &pki,
    )
    .await
    .expect("emulator starts");
    emu.set_response("hostname", "WIN-EMU01\r\n", "", 0);
    (emu, pki)
}

#[tokio::test]
async fn basic_over_https_with_a_custom_ca() {
    let (emu, pki) = https_emulator().await;
    assert!(emu.url().starts_with("https://127.0.0.1:"));
    let mut cfg = config(emu.url(), PASSWORD);
    cfg.tls.ca_file = Some(pki.ca_pem.clone());
    let out = WinRmClient::new(cfg)
        .unwrap()
        .run_powershell("hostname")
        .await
        .unwrap();
    assert_eq!(out.stdout, "WIN-EMU01\r\n");
    assert_eq!(emu.open_shells(), 0);
}

#[tokio::test]
async fn https_certificates_are_validated_by_default() {
    let (emu, _pki) = https_emulator().await;
    // The host's CA is not trusted: the TLS handshake fails before anything is sent.
    let err = client(&emu).run_powershell("hostname").await.unwrap_err();
    assert!(
        matches!(
            err,
            WinRmError::Connect {
                phase: Phase::Create,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(emu.requests().is_empty());
    // The explicit insecure switch accepts it (and logs a warning).
    let mut cfg = config(emu.url(), PASSWORD);
    cfg.tls.insecure = true;
    let out = WinRmClient::new(cfg)
        .unwrap()
        .run_powershell("hostname")
        .await
        .unwrap();
    assert_eq!(out.stdout, "WIN-EMU01\r\n");
}

/// A journal that keeps what it was told, or refuses to record.
struct Journal {
    seen: std::sync::Mutex<Vec<RemoteCommand>>,
    refuse: bool,
}

#[async_trait::async_trait]
impl ShellJournal for Journal {
    async fn record(&self, remote: &RemoteCommand) -> Result<(), String> {
        if self.refuse {
            return Err("database is locked".into());
        }
        self.seen.lock().unwrap().push(remote.clone());
        Ok(())
    }
}

#[tokio::test]
async fn a_tracked_run_records_its_ids_before_sending_and_the_host_uses_the_chosen_id() {
    let emu = emulator().await;
    emu.set_response("Get-Date", "today\r\n", "", 0);
    let journal = Journal {
        seen: Default::default(),
        refuse: false,
    };
    let out = client(&emu)
        .run_approved_tracked("Get-Date", &journal)
        .await
        .expect("runs");
    assert_eq!(out.stdout, "today\r\n");
    let seen = journal.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1, "one record: the host took the chosen id");
    let executed = emu.executed();
    assert_eq!(seen[0].shell_id, executed[0].shell_id);
    assert_eq!(seen[0].command_id, executed[0].command_id);
    assert_eq!(seen[0].endpoint, emu.url());
}

#[tokio::test]
async fn when_the_ids_cannot_be_recorded_nothing_is_sent() {
    let emu = emulator().await;
    let journal = Journal {
        seen: Default::default(),
        refuse: true,
    };
    let err = client(&emu)
        .run_approved_tracked("Stop-Process -Id 4242 -Force", &journal)
        .await
        .unwrap_err();
    assert!(matches!(err, WinRmError::Journal(_)), "{err}");
    assert!(!err.is_retryable());
    assert!(
        emu.executed().is_empty(),
        "the command never reached the host"
    );
    assert_eq!(emu.open_shells(), 0, "the shell was deleted");
}

#[tokio::test]
async fn reattach_collects_a_command_started_by_another_client_or_reports_it_gone() {
    let emu = emulator().await;
    emu.set_response("Get-Date", "today\r\n", "", 0);
    emu.set_delay("Get-Date", 1_000_000);
    let journal = Journal {
        seen: Default::default(),
        refuse: false,
    };
    // The first client dies mid-command (its future dropped with cleanup kept off, as when a
    // process is killed): the host keeps the shell and the command.
    let first = client(&emu);
    first.config().keep_on_cancel.store(true, Ordering::SeqCst);
    let run = first.run_approved_tracked("Get-Date", &journal);
    assert!(
        tokio::time::timeout(Duration::from_millis(300), run)
            .await
            .is_err()
    );
    let remote = journal.seen.lock().unwrap()[0].clone();
    assert_eq!(emu.open_shells(), 1);

    emu.release_running();
    let out = client(&emu).reattach(&remote).await.expect("collected");
    assert_eq!(out.exit_code, 0);
    // A Receive the first client had in flight may have taken the first chunk with it.
    assert!(
        !out.stdout.is_empty() && "today\r\n".ends_with(&out.stdout),
        "{:?}",
        out.stdout
    );
    assert_eq!(emu.executed().len(), 1, "not run again");
    assert_eq!(emu.open_shells(), 0, "and its shell deleted");

    let err = client(&emu).reattach(&remote).await.unwrap_err();
    assert!(err.is_gone(), "{err}");
}

/// A host that answers each phase from a script: what `tests/data/bad/wsman/` holds for the
/// phase under test, a well-formed answer for the others.
#[derive(Debug)]
struct ScriptedHost {
    bad_phase: Phase,
    bad_body: String,
}

struct ScriptedSession {
    bad_phase: Phase,
    bad_body: String,
}

impl Transport for ScriptedHost {
    fn endpoint(&self) -> &str {
        "http://scripted.invalid:5985/wsman"
    }

    fn session(&self) -> Box<dyn transport::TransportSession> {
        Box::new(ScriptedSession {
            bad_phase: self.bad_phase,
            bad_body: self.bad_body.clone(),
        })
    }
}

impl transport::TransportSession for ScriptedSession {
    fn exchange<'a>(
        &'a mut self,
        phase: Phase,
        envelope: String,
        _timeout: Duration,
    ) -> transport::BoxFuture<'a, Result<transport::SoapReply, WinRmError>> {
        Box::pin(async move {
            // A real exchange waits on the network; without a yield an answer-at-once host would
            // never let the run's deadline fire.
            tokio::task::yield_now().await;
            let message_id = envelope
                .split("<a:MessageID>")
                .nth(1)
                .and_then(|s| s.split('<').next())
                .unwrap_or_default()
                .to_owned();
            let wrap = |body: &str| {
                format!(
                    r#"<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" xmlns:a="http://schemas.xmlsoap.org/ws/2004/08/addressing" xmlns:rsp="http://schemas.microsoft.com/wbem/wsman/1/windows/shell"><s:Header><a:RelatesTo>{message_id}</a:RelatesTo></s:Header><s:Body>{body}</s:Body></s:Envelope>"#
                )
            };
            let body = if phase == self.bad_phase {
                self.bad_body
                    .replace("{relates}", &message_id)
                    .replace("{cmd}", "CMD-1")
            } else {
                match phase {
                    Phase::Create => {
                        wrap("<rsp:Shell><rsp:ShellId>SHELL-1</rsp:ShellId></rsp:Shell>")
                    }
                    Phase::Command => wrap(
                        "<rsp:CommandResponse><rsp:CommandId>CMD-1</rsp:CommandId></rsp:CommandResponse>",
                    ),
                    _ => wrap(""),
                }
            };
            Ok(transport::SoapReply { status: 200, body })
        })
    }
}

/// Every bad WS-Man answer in the corpus — garbage, truncated, HTML, huge, deep, invalid UTF-8,
/// entity tricks, bad base64, odd exit codes — ends the run with a clear error (or, for the few a
/// host may legitimately send, a result), never a panic or a hang.
#[tokio::test]
async fn bad_ws_man_answers_from_the_corpus_give_clear_errors() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/bad/wsman");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(files.len() >= 20);
    for path in files {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let bytes = std::fs::read(&path).unwrap();
        let mut text = String::from_utf8_lossy(&bytes).into_owned();
        // Megabyte answers are kept small in git: `@@REPEAT <char> <count>@@`.
        if let Some(at) = text.find("@@REPEAT ") {
            let end = at + text[at..].find("@@</").unwrap_or(text.len() - at);
            let spec: Vec<&str> = text[at + 9..end].split(' ').collect();
            let fill = spec[0].repeat(spec[1].parse().unwrap());
            text.replace_range(at..end + 2, &fill);
        }
        let bad_phase = if name.starts_with("create") {
            Phase::Create
        } else {
            Phase::Receive
        };
        let host = std::sync::Arc::new(ScriptedHost {
            bad_phase,
            bad_body: text,
        });
        let cfg = WinRmConfig {
            command_timeout: Duration::from_secs(1),
            ..config("http://scripted.invalid:5985/wsman".into(), PASSWORD)
        };
        let client = WinRmClient::with_transport(cfg, host).unwrap();
        let outcome =
            tokio::time::timeout(Duration::from_secs(20), client.run_powershell("Get-Date"))
                .await
                .unwrap_or_else(|_| panic!("{name}: no answer within the deadline"));
        match outcome {
            Err(e) => {
                let msg = e.to_string();
                assert!(!msg.is_empty() && msg.len() < 4_000, "{name}: {msg}");
                assert!(!msg.contains(PASSWORD), "{name}");
            }
            // A Receive answer without streams is a host saying "nothing yet": the deadline ends it
            // with Timeout above; anything accepted must at least carry an exit code.
            Ok(out) => assert!(
                name.starts_with("receive-04") || out.exit_code != 0 || !out.stdout.is_empty(),
                "{name}: accepted as {out:?}"
            ),
        }
    }
}
