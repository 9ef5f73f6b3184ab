//! `triage-bot replay`: one triage against the configured assistant, printed, posting nothing.

use crate::common::*;
use triage_bot::cli::replay::{read_alert, replay};
use triage_bot::domain::Risk;
use triage_bot::samples::alert_document;

#[tokio::test]
async fn replay_prints_the_parse_and_the_message_without_posting() {
    let world = World::start().await.unwrap();
    let settings = world.settings_with(&[]).unwrap();
    // A search hit, as copied from Discover or the API.
    let hit = serde_json::json!({
        "_index": ALERT_INDEX, "_id": ALERT_ID,
        "_source": alert_document(ALERT_ID, "2025-03-04T10:15:32.118Z"),
    });
    let alert = read_alert(&hit.to_string(), "replay").unwrap();
    assert_eq!(alert.index, ALERT_INDEX);
    let out = replay(&settings, &alert).await.unwrap();
    assert_eq!(out.assistant, "kibana");
    assert!(!out.triage_failed);
    assert_eq!(out.triage.investigation.len(), 5);
    assert_eq!(out.commands.len(), 8);
    assert!(out.commands.iter().all(|c| c.risk != Risk::Blocked));
    assert_eq!(
        out.handler.as_deref(),
        Some(format!("<@{HANDLER_ID}>").as_str())
    );
    assert_eq!(out.slack_message["channel"], CHANNEL);
    assert!(
        out.slack_message["blocks"]
            .to_string()
            .contains("Investigation commands")
    );
    assert!(world.slack.messages().is_empty(), "nothing was posted");
    assert!(world.slack.calls_of("chat.postMessage").is_empty());
    assert!(world.kibana.cases().is_empty(), "no case was created");
    assert!(world.winrm.executed().is_empty());
    assert_eq!(
        world.kibana.calls().len(),
        2,
        "the triage and the handler question"
    );
}

#[tokio::test]
async fn replay_of_an_answer_without_commands_shows_the_failure_message() {
    let world = World::start().await.unwrap();
    world
        .kibana
        .set_responder(|_| "I cannot help with that.".into());
    let settings = world.settings_with(&[]).unwrap();
    let alert = read_alert(
        &alert_document(ALERT_ID, "2025-03-04T10:15:32.118Z").to_string(),
        "replay",
    )
    .unwrap();
    let out = replay(&settings, &alert).await.unwrap();
    assert!(out.triage_failed);
    assert!(out.slack_message.to_string().contains("Triage failed"));
    assert!(
        out.triage
            .warnings
            .iter()
            .any(|w| w.contains("Investigation"))
    );
    assert!(world.slack.messages().is_empty());
}
