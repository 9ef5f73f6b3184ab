//! An assistant answer without commands: the incident is `triage_failed`, the raw answer is
//! kept, and both Slack and the case say so.

use crate::common::*;

#[tokio::test]
async fn an_answer_without_commands_is_reported_and_kept() {
    let world = World::start().await.unwrap();
    world.kibana.set_responder(|call| {
        if call.last_user_content.starts_with("Who handles") {
            "Alice Analyst".into()
        } else {
            "I cannot help with that request.".into()
        }
    });
    let app = world.start_app().await.unwrap();

    let incident = wait_for_state(&app, IncidentState::TriageFailed, T)
        .await
        .unwrap();
    assert_eq!(
        incident.raw_answer.as_deref(),
        Some("I cannot help with that request.")
    );
    assert!(incident.error.as_deref().unwrap().contains("no commands"));

    world
        .slack
        .wait_until("the failure notice", T, |s| !s.messages.is_empty())
        .await
        .unwrap();
    let msg = top_level(&world).remove(0);
    assert!(msg.text.contains("Triage failed"));
    assert!(all_text(&msg.blocks).contains("I cannot help with that request."));
    assert!(
        !block_types(&msg.blocks).contains(&"actions".to_string()),
        "nothing to approve"
    );

    let case = wait_for_case_description(&world, "Triage failed").await;
    assert!(
        case["description"]
            .as_str()
            .unwrap()
            .contains("I cannot help with that request.")
    );
    assert!(world.winrm.executed().is_empty());
    finish(&world, app).await;
}
