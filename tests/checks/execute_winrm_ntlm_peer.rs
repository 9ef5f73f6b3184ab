//! triage-bot's NTLM client against an independent NTLM acceptor: pyspnego (the library behind
//! pywinrm and pypsrp) in `emulators/checks/winrm_ntlm_peer.py`. The emulator's acceptor is
//! sspi, like the client, so this is the check that the two are not merely agreeing with each
//! other: logon, sealed requests, sealed answers unsealed, the whole shell lifecycle.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use triage_bot::clients::winrm::{WinRmAuth, WinRmClient, WinRmConfig, WinRmError};
use triage_bot::secret::Secret;

const PASSWORD: &str = "Pysp-NeGo-1!";

fn config(port: u16, password: &str) -> WinRmConfig {
    WinRmConfig {
        auth: WinRmAuth::Ntlm,
        operation_timeout: Duration::from_secs(2),
        read_timeout: Duration::from_secs(5),
        command_timeout: Duration::from_secs(10),
        ..WinRmConfig::new(
            format!("http://127.0.0.1:{port}/wsman"),
            "WIN\\vagrant",
            Secret::new(password),
        )
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ntlm_client_against_pyspnego() {
    emulators::pycheck::ensure_requirements()
        .await
        .unwrap_or_else(|e| panic!("python requirements: {e}"));
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut pythonpath = root.join("target").join("pydeps").into_os_string();
    if let Some(existing) = std::env::var_os("PYTHONPATH") {
        pythonpath.push(":");
        pythonpath.push(existing);
    }
    let mut child =
        tokio::process::Command::new(std::env::var("PYTHON").unwrap_or_else(|_| "python3".into()))
            .arg(root.join("emulators/checks/winrm_ntlm_peer.py"))
            .args(["WIN", "vagrant", PASSWORD, "hello from pyspnego ✓\r\n"])
            .env("PYTHONPATH", pythonpath)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("python3 runs");
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    tokio::time::timeout(Duration::from_secs(30), stdout.read_line(&mut line))
        .await
        .expect("the peer starts")
        .unwrap();
    let port: u16 = line
        .trim()
        .strip_prefix("PORT ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .parse()
        .unwrap();

    let out = WinRmClient::new(config(port, PASSWORD))
        .unwrap()
        .run_powershell("hostname")
        .await
        .expect("logon and sealed exchange with pyspnego");
    assert_eq!(out.stdout, "hello from pyspnego ✓\r\n");
    assert_eq!(out.exit_code, 0);

    let err = WinRmClient::new(config(port, "wrong-password"))
        .unwrap()
        .run_powershell("hostname")
        .await
        .unwrap_err();
    assert!(
        matches!(err, WinRmError::Auth { status: 401, .. }),
        "{err:?}"
    );

    drop(child.stdin.take());
    let mut rest = String::new();
    tokio::time::timeout(Duration::from_secs(30), stdout.read_to_string(&mut rest))
        .await
        .expect("the peer stops")
        .unwrap();
    let status = child.wait().await.unwrap();
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .await
        .unwrap();
    assert!(status.success(), "peer failed: {stderr}");
    let seen = rest
        .lines()
        .find_map(|l| l.strip_prefix("SEEN "))
        .unwrap_or_else(|| panic!("no SEEN line in {rest:?}; stderr: {stderr}"));
    assert_eq!(
        seen, "logon Create Command Receive Signal Delete",
        "the whole lifecycle, sealed, after one logon"
    );
}
