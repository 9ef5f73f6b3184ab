//! Checks the WinRM emulator with pywinrm, the independent real client: starts the emulator
//! in-process, seeds it, runs `checks/pywinrm_check.py` against it and requires exit 0. pywinrm is
//! installed on demand by [`emulators::pycheck`]; a check that cannot run fails, never skips.

use emulators::winrm::{EmulatorAuth, WinRmEmulator, WinRmEmulatorConfig};
use serde_json::json;

const USER: &str = "vagrant";
const PASSWORD: &str = "Emul4ted-Pass!";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pywinrm_runs_commands_against_the_emulator() {
    let emu = WinRmEmulator::start(WinRmEmulatorConfig {
        host_name: "WIN-EMU01".into(),
        username: USER.into(),
        password: PASSWORD.into(),
    })
    .await
    .expect("emulator starts");
    run_pywinrm_cases(&emu, "basic").await;
    assert_eq!(emu.shared_sealed(), 0, "basic mode is plaintext");
}

/// The same cases with pywinrm's NTLM transport (requests_ntlm + pyspnego, message encryption)
/// against a host configured like a stock Windows: Basic off, AllowUnencrypted=false. Every
/// WS-Management request must have come sealed, through the emulator's sspi acceptor.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pywinrm_ntlm_with_message_encryption_against_a_stock_host() {
    let emu = WinRmEmulator::start(WinRmEmulatorConfig {
        host_name: "WIN-EMU01".into(),
        username: USER.into(),
        password: PASSWORD.into(),
    })
    .await
    .expect("emulator starts");
    emu.set_auth(EmulatorAuth::stock());
    run_pywinrm_cases(&emu, "ntlm").await;
    let requests = emu.requests();
    let soap: Vec<_> = requests.iter().filter(|r| r.action.is_some()).collect();
    assert!(!soap.is_empty());
    assert!(
        soap.iter().all(|r| r.sealed),
        "every WS-Man request was sealed: {soap:#?}"
    );
    assert!(emu.ntlm_logons() >= 1);
}

async fn run_pywinrm_cases(emu: &WinRmEmulator, transport: &str) {
    emu.set_response("Write-Output hello", "hello\r\n", "", 0);
    emu.set_response(
        r#"Write-Error "Error""#,
        "",
        "Write-Error \"Error\" : Error\r\n    + CategoryInfo          : NotSpecified: (:) [Write-Error], WriteErrorException\r\n",
        1,
    );
    emu.set_response("Start-Sleep 5; 'late'", "late\r\n", "", 0);
    emu.set_delay("Start-Sleep 5; 'late'", 2);
    emu.set_response(
        "ipconfig /all",
        "\r\nWindows IP Configuration\r\n\r\n   Host Name . . . . . . . . . . . . : WIN-EMU01\r\n",
        "",
        0,
    );
    emu.set_response("exit 3", "", "", 3);
    emu.set_response("findstr x", "", "", 0);

    let cases = json!([
        {"kind": "ps", "script": "Write-Output hello", "stdout": "hello\r\n", "exit": 0},
        {"kind": "ps", "script": "Write-Error \"Error\"", "stdout": "", "exit": 1,
         "stderr_contains": "Write-Error \"Error\" : Error"},
        {"kind": "ps", "script": "Start-Sleep 5; 'late'", "stdout": "late\r\n", "exit": 0},
        {"kind": "ps", "script": "exit 3", "stdout": "", "exit": 3},
        {"kind": "ps", "script": "Get-Unknown", "exit": 1,
         "stderr_contains": "The term 'Get-Unknown' is not recognized"},
        {"kind": "cmd", "command": "ipconfig", "args": ["/all"],
         "stdout": "\r\nWindows IP Configuration\r\n\r\n   Host Name . . . . . . . . . . . . : WIN-EMU01\r\n",
         "exit": 0},
        {"kind": "stdin", "command": "findstr x", "input": "x marks the spot\r\n"},
        {"kind": "bad_auth"},
        {"kind": "bad_shell"},
    ]);
    let out = emulators::pycheck::run_check(
        "pywinrm_check.py",
        &[
            emu.url(),
            USER.into(),
            PASSWORD.into(),
            cases.to_string(),
            transport.into(),
        ],
    )
    .await
    .unwrap_or_else(|e| panic!("pywinrm check: {e}"));

    eprintln!("{out}");

    // What pywinrm sent, as the host saw it.
    let executed = emu.executed();
    let ps: Vec<_> = executed.iter().filter(|e| e.script.is_some()).collect();
    assert_eq!(ps.len(), 5, "{executed:#?}");
    assert!(
        ps.iter()
            .all(|e| e.command_line.starts_with("powershell -encodedcommand ")),
        "pywinrm's own PowerShell line"
    );
    assert!(
        executed.iter().all(|e| e.codepage == 437),
        "pywinrm's default codepage"
    );
    assert!(
        executed
            .iter()
            .any(|e| e.script.is_none() && e.command_line == "ipconfig /all")
    );
    let stdin_cmd = executed
        .iter()
        .find(|e| e.command_line == "findstr x")
        .expect("the stdin case ran");
    let got = emu.stdin(&stdin_cmd.command_id);
    assert_eq!(
        got.as_deref(),
        Some(&b"x marks the spot\r\n"[..]),
        "stdin via rsp:Send"
    );
    assert_eq!(emu.open_shells(), 0, "pywinrm closed every shell");
    assert!(emu.auth_failures() >= 1, "the bad_auth case was refused");
}

trait SealedCount {
    fn shared_sealed(&self) -> usize;
}

impl SealedCount for WinRmEmulator {
    fn shared_sealed(&self) -> usize {
        self.requests().iter().filter(|r| r.sealed).count()
    }
}
