//! The on-call engineer's questions, from the command line: `snooze` quiets a host for a while,
//! `explain` says which policy an alert meets and what it would get now (and changes nothing),
//! and a policy file with a mistake is refused with its line and column.

use std::process::Command;

fn triage_bot(dir: &std::path::Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_triage-bot"));
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env(
            "DATABASE_URL",
            format!("sqlite://{}?mode=rwc", dir.join("t.db").display()),
        )
        .current_dir(dir);
    cmd
}

fn run(cmd: &mut Command) -> (bool, String) {
    let out = cmd.output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn snooze_then_explain_says_suppressed_and_why() {
    let dir = tempfile::tempdir().unwrap();
    let alert = dir.path().join("alert.json");
    let doc = triage_bot::samples::alert_document("a-1", &chrono::Utc::now().to_rfc3339());
    std::fs::write(&alert, doc.to_string()).unwrap();
    let host = doc["host"]["name"].as_str().unwrap();

    let (ok, out) = run(triage_bot(dir.path()).args(["explain", alert.to_str().unwrap()]));
    assert!(ok, "{out}");
    assert!(out.contains("policy:   default (match: *)"), "{out}");
    assert!(out.contains("outcome:  dispatched"), "{out}");
    assert!(out.contains("recorded: nothing yet"), "{out}");

    let target = format!("host:{host}");
    let (ok, out) = run(triage_bot(dir.path()).args(["snooze", &target, "2h", "--by", "ana"]));
    assert!(ok && out.contains("snoozed until"), "{out}");
    let (ok, out) = run(triage_bot(dir.path()).args(["snooze", "--list"]));
    assert!(
        ok && out.contains(&target) && out.contains("by ana"),
        "{out}"
    );

    let (ok, out) = run(triage_bot(dir.path()).args(["explain", alert.to_str().unwrap()]));
    assert!(ok, "{out}");
    assert!(out.contains("outcome:  suppressed"), "{out}");
    assert!(out.contains("is snoozed until"), "{out}");

    let (ok, out) = run(triage_bot(dir.path()).args(["snooze", "--clear"]));
    assert!(ok && out.contains("cleared 1"), "{out}");
    let (ok, out) = run(triage_bot(dir.path()).args(["snooze", "web:1", "2h"]));
    assert!(
        !ok && out.contains("expected host:NAME or rule:NAME"),
        "{out}"
    );
    let (ok, out) = run(triage_bot(dir.path()).args(["snooze", &target, "2 weeks"]));
    assert!(!ok && out.contains("unknown unit"), "{out}");
}

#[test]
fn explain_refuses_a_bad_policy_file_with_its_position() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("policies.toml");
    std::fs::write(
        &file,
        "[[policy]]\nname = \"x\"\nmatch = 'host.name: web-* AND AND'\nnotify = \"episode\"\n",
    )
    .unwrap();
    let alert = dir.path().join("alert.json");
    let doc = triage_bot::samples::alert_document("a-1", "2026-12-07T10:00:00Z");
    std::fs::write(&alert, doc.to_string()).unwrap();
    let (ok, out) = run(triage_bot(dir.path())
        .env("POLICY_FILE", &file)
        .args(["explain", alert.to_str().unwrap()]));
    assert!(!ok);
    assert!(
        out.contains("policies.toml:3:31: bad match expression"),
        "{out}"
    );
}
