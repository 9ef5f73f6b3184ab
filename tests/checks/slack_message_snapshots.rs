//! Golden-file snapshots of the Block Kit JSON triage-bot posts: the open approval request, the
//! decided one, a long and hostile one (escaping and limits), and a failed triage. A change to the
//! messages shows up as a diff here; `UPDATE_SNAPSHOTS=1 cargo test --test
//! slack_message_snapshots` rewrites the files after a deliberate change. Every snapshot is also
//! held to the independent Block Kit validator.

use serde_json::{Value, json};
use triage_bot::domain::HandlerTag;
use triage_bot::domain::{Alert, CommandKind, ProposedCommand, Risk};
use triage_bot::pipeline::approval::blocks::{self, ApprovalView};
use triage_bot::pipeline::triage::parser::parse_answer;

fn alert(rule: &str) -> Alert {
    let mut doc = triage_bot::samples::alert_document("3f1c0b9e", "2025-03-04T10:15:32.118Z");
    doc["kibana.alert.rule.name"] = json!(rule);
    Alert::from_document(
        "3f1c0b9e",
        ".internal.alerts-security.alerts-default-000001",
        &doc,
        "@timestamp",
    )
    .unwrap()
}

fn view<'a>(
    alert: &'a Alert,
    triage: &'a triage_bot::domain::Triage,
    commands: &'a [ProposedCommand],
    handler: &'a HandlerTag,
    outcome: Option<String>,
) -> ApprovalView<'a> {
    ApprovalView {
        channel: "C0SOCALERTS",
        incident: "7d3c1f2e-0000-4000-8000-000000000001",
        alert,
        triage,
        commands,
        handler,
        approval_value: "7d3c1f2e-0000-4000-8000-000000000001:0123456789abcdef0123456789abcdef",
        alert_url: Some("https://kibana.example/app/security/alerts/redirect/3f1c0b9e".into()),
        case_url: Some("https://kibana.example/app/security/cases/66b9aa00".into()),
        outcome,
        note: None,
        offer_isolate: false,
        runs_on: None,
    }
}

fn check(name: &str, actual: &Value) {
    let path = format!("{}/tests/snapshots/{name}.json", env!("CARGO_MANIFEST_DIR"));
    let rendered = serde_json::to_string_pretty(actual).unwrap() + "\n";
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        std::fs::write(&path, &rendered).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|_| panic!("missing snapshot {path}; run with UPDATE_SNAPSHOTS=1"));
    assert!(
        expected == rendered,
        "snapshot {name} differs:\n--- expected\n{expected}\n--- actual\n{rendered}"
    );
}

async fn validate(messages: &[&Value]) {
    let calls: Vec<Value> = messages
        .iter()
        .map(|m| {
            // A modal goes through views.open (validated with slack_sdk's View model).
            if m["type"] == "modal" {
                json!({ "method": "views.open", "params": { "trigger_id": "1.2.3", "view": m } })
            } else {
                json!({ "method": "chat.postMessage", "params": m })
            }
        })
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("messages.json");
    std::fs::write(&file, serde_json::to_string(&calls).unwrap()).unwrap();
    emulators::pycheck::run_check("blockkit_check.py", &[file.display().to_string()])
        .await
        .unwrap_or_else(|e| panic!("{e}"));
}

#[tokio::test]
async fn approval_messages_match_their_snapshots_and_slack_sdk_accepts_them() {
    let alert = alert("Registry Run Key Set by WMI Provider Host");
    let triage = parse_answer(&triage_bot::samples::triage_answer());
    let mut commands = triage.commands();
    commands[7].risk = Risk::Blocked;
    commands[7].reasons = vec!["names a path the alert does not contain".into()];
    let handler = HandlerTag {
        slack_id: Some("U0ALICE".into()),
        name: Some("Alice Analyst".into()),
    };

    let open = blocks::approval_message(&view(&alert, &triage, &commands, &handler, None));
    check("approval_open", &open);
    let decided = blocks::approval_message(&view(
        &alert,
        &triage,
        &commands,
        &handler,
        Some(":white_check_mark: *Approved* by <@U0ALICE> at 2025-03-04T10:20:00.000Z".into()),
    ));
    check("approval_decided", &decided);
    let failed = blocks::triage_failed_message(
        "C0SOCALERTS",
        &alert,
        "the assistant's answer has no commands",
        Some("I cannot help with that."),
    );
    check("triage_failed", &failed);
    validate(&[&open, &decided, &failed]).await;

    // The open message offers the three decisions, with the blocked command left out of the count.
    let actions = open["blocks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["type"] == "actions")
        .unwrap();
    let texts: Vec<&str> = actions["elements"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["text"]["text"].as_str().unwrap())
        .collect();
    assert_eq!(
        texts,
        [
            "Yes, run 7 commands",
            "Investigation only (5)",
            "Edit…",
            "Request changes…",
            "No"
        ]
    );
    assert!(
        open.to_string()
            .contains("BLOCKED: names a path the alert does not contain")
    );
}

#[tokio::test]
async fn the_edit_modal_matches_its_snapshot_and_slack_sdk_accepts_it() {
    let triage = parse_answer(&triage_bot::samples::triage_answer());
    let mut commands = triage.commands();
    commands[7].risk = Risk::Blocked;
    commands[7].reasons = vec!["names a path the alert does not contain".into()];
    let modal = blocks::edit_modal(
        "WS-FIN-042",
        &commands,
        "7d3c1f2e-0000-4000-8000-000000000001:0123456789abcdef0123456789abcdef",
    );
    check("edit_modal", &modal);
    let notice = blocks::notice_modal(
        "Nothing can change",
        "This incident was already declined by <@U0BOB> at 2025-03-04T10:20:00.000Z; nothing can change.",
    );
    check("edit_notice_modal", &notice);
    let revise = blocks::revise_modal("7d3c1f2e-0000-4000-8000-000000000001:0123456789abcdef");
    check("revise_modal", &revise);
    validate(&[&modal, &notice, &revise]).await;
    // Every command in its own prefilled field; the blocked one offered unticked.
    let blocks = modal["blocks"].as_array().unwrap();
    assert_eq!(blocks.len(), 1 + 2 * commands.len());
    assert_eq!(blocks[1]["element"]["initial_value"], commands[0].text);
    assert!(blocks[2]["element"]["initial_options"].is_array());
    assert!(blocks[16]["element"].get("initial_options").is_none());
}

#[tokio::test]
async fn hostile_and_oversized_content_is_escaped_and_kept_within_block_kit_limits() {
    let rule = format!(
        "<!channel> <@U0BOSS> <https://evil.example|click> & {}",
        "R".repeat(300)
    );
    let alert = alert(&rule);
    let mut triage = parse_answer(&triage_bot::samples::triage_answer());
    triage.summary = format!("<!here> ping {}", "s".repeat(5000));
    let commands: Vec<ProposedCommand> = (1..=120)
        .map(|i| ProposedCommand {
            seq: i,
            kind: if i <= 60 {
                CommandKind::Investigation
            } else {
                CommandKind::Remediation
            },
            text: format!("Get-Item 'C:\\Temp\\<@U0BOSS>{i}' ``` {}", "x".repeat(200)),
            risk: if i <= 60 {
                Risk::ReadOnly
            } else {
                Risk::ChangesState
            },
            reasons: vec![],
        })
        .collect();
    let handler = HandlerTag {
        slack_id: None,
        name: Some("<!everyone> Bob".into()),
    };
    let msg = blocks::approval_message(&view(&alert, &triage, &commands, &handler, None));
    // Slack parses mentions and links in mrkdwn and in the top-level text; plain_text (the
    // header, buttons) is shown literally.
    let mut text = msg["text"].as_str().unwrap().to_string();
    collect_mrkdwn(&msg["blocks"], &mut text);
    for forbidden in [
        "<!channel>",
        "<@U0BOSS>",
        "<https://evil.example",
        "<!here>",
        "<!everyone>",
    ] {
        assert!(!text.contains(forbidden), "{forbidden} must be escaped");
    }
    let blocks = msg["blocks"].as_array().unwrap();
    assert!(blocks.len() <= 50);
    assert!(msg.to_string().contains("(full list in the case)"));
    assert!(blocks[0]["text"]["text"].as_str().unwrap().chars().count() <= 150);
    assert_eq!(
        blocks.last().unwrap()["type"],
        "actions",
        "the buttons survive truncation"
    );
    check("approval_oversized", &msg);
    validate(&[&msg]).await;
}

fn collect_mrkdwn(v: &Value, out: &mut String) {
    match v {
        Value::Object(m) => {
            if m.get("type") == Some(&json!("mrkdwn")) {
                out.push_str(m.get("text").and_then(Value::as_str).unwrap_or(""));
            }
            m.values().for_each(|x| collect_mrkdwn(x, out));
        }
        Value::Array(a) => a.iter().for_each(|x| collect_mrkdwn(x, out)),
        _ => {}
    }
}
