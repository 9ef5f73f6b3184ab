//! The deploying engineer's first minutes: configuration errors name the variable and what was
//! expected, secrets never print, `parse` shows how an assistant answer is read, and `safety
//! check` shows why the gate judges a command as it does.

use std::process::Command;

fn triage_bot() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_triage-bot"));
    // Start from nothing: no .env, no inherited settings.
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .current_dir(std::env::temp_dir());
    cmd
}

fn full_env(cmd: &mut Command) -> &mut Command {
    cmd.env("ELASTICSEARCH_URL", "http://127.0.0.1:9")
        .env("KIBANA_URL", "http://127.0.0.1:9")
        .env("KIBANA_CONNECTOR_ID", "gpt")
        .env("SLACK_BOT_TOKEN", "xoxb-super-secret-token")
        .env("SLACK_SIGNING_SECRET", "signing-secret-value")
        .env("SLACK_CHANNEL", "C1")
        .env("WINRM_USERNAME", "CORP\\svc")
        .env("WINRM_PASSWORD", "hunter2-password")
}

#[test]
fn serve_without_settings_fails_naming_the_variable() {
    let out = triage_bot().arg("serve").output().unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("ELASTICSEARCH_URL") && stderr.contains("is required"),
        "{stderr}"
    );
}

#[test]
fn a_malformed_value_is_named_with_what_was_expected() {
    let out = full_env(&mut triage_bot())
        .env("POLL_INTERVAL_SECS", "often")
        .arg("check-config")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("POLL_INTERVAL_SECS: expected a number of seconds, got \"often\""),
        "{stderr}"
    );
}

#[test]
fn check_config_prints_the_settings_without_any_secret() {
    let out = full_env(&mut triage_bot())
        .arg("check-config")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("security_alerts"));
    for secret in [
        "xoxb-super-secret-token",
        "signing-secret-value",
        "hunter2-password",
    ] {
        assert!(!stdout.contains(secret), "{secret} leaked");
    }
    assert!(stdout.contains("[redacted]"));
}

#[test]
fn parse_prints_the_triage_as_json() {
    let mut child = triage_bot()
        .args(["parse", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"**Summary:** host 10.0.0.1 is hit.\r\n\r\n### Investigation Commands\r\n1. `Get-Process`\r\n\r\n### Remediation Commands\r\n1) `Stop-Process -Id 4 -Force` - kills it\r\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["summary"], "host 10.0.0.1 is hit.");
    assert_eq!(v["investigation"], serde_json::json!(["Get-Process"]));
    assert_eq!(
        v["remediation"],
        serde_json::json!(["Stop-Process -Id 4 -Force"])
    );
}

/// `safety check` judges commands against an alert file and says why, with the same settings as
/// the service.
#[test]
fn safety_check_prints_each_verdict_with_its_reasons() {
    let dir = tempfile::tempdir().unwrap();
    let alert = dir.path().join("alert.json");
    let doc = triage_bot::samples::alert_document("a1", "2025-03-04T10:15:32.118Z");
    std::fs::write(&alert, serde_json::to_string(&doc).unwrap()).unwrap();
    let out = triage_bot()
        .args(["safety", "check", "--alert"])
        .arg(&alert)
        .args([
            "Set-MpPreference -DisableRealtimeMonitoring $true",
            "Set-MpPreference -DisableRealtimeMonitoring $false",
            "Get-Process -Id 3312 | Select-Object Path",
            "wevtutil epl Security C:\\IR\\Security.evtx",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let blocks: Vec<&str> = stdout
        .split("\n\n")
        .filter(|b| !b.trim().is_empty())
        .collect();
    assert_eq!(blocks.len(), 4, "{stdout}");
    assert!(
        blocks[0].starts_with("BLOCKED") && blocks[0].contains("weakens protection"),
        "{stdout}"
    );
    assert!(
        blocks[1].starts_with("changes state") && blocks[1].contains("back on"),
        "{stdout}"
    );
    assert!(blocks[2].starts_with("read-only"), "{stdout}");
    // Without SAFETY_EVIDENCE_DIRS the export's folder is one the alert never named.
    assert!(
        blocks[3].starts_with("BLOCKED") && blocks[3].contains("path C:\\IR"),
        "{stdout}"
    );

    let out = triage_bot()
        .env("SAFETY_EVIDENCE_DIRS", "C:\\IR")
        .args(["safety", "check", "--json", "--alert"])
        .arg(&alert)
        .arg("wevtutil epl Security C:\\IR\\Security.evtx")
        .output()
        .unwrap();
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v[0]["risk"], "read_only", "{v}");
    assert_eq!(v[0]["kind"], "investigation");

    let out = triage_bot()
        .env("SAFETY_EVIDENCE_DIRS", "C:\\")
        .args(["safety", "check", "whoami"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("SAFETY_EVIDENCE_DIRS"),
        "a bad setting is named"
    );
}

#[test]
fn the_index_action_worker_and_the_connector_setup_name_what_is_missing() {
    let out = full_env(&mut triage_bot())
        .arg("index-action-worker")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("no action index: pass --index NAME or set INDEX_ACTION_INDEX"),
        "{stderr}"
    );
    let out = full_env(&mut triage_bot())
        .args([
            "index-action-worker",
            "--index",
            "a",
            "--start-time",
            "last week",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("INDEX_ACTION_START_TIME: expected an RFC 3339 time"),
        "{stderr}"
    );
    let out = full_env(&mut triage_bot())
        .env("KIBANA_WEBHOOK_SECRET", "webhook-secret-value")
        .args(["setup", "kibana-connector", "--kind", "webhook"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--kind webhook needs --url"), "{stderr}");
    assert!(!stderr.contains("webhook-secret-value"), "{stderr}");
}
