//! Clicks that must not run anything: No, a click from someone who is not an approver, a forged
//! signature, a stale timestamp — and a double click that must run the commands only once.

use crate::common::*;

#[tokio::test]
async fn no_records_the_decision_and_runs_nothing() {
    let world = World::start().await.unwrap();
    let app = world.start_app().await.unwrap();
    wait_for_approval_request(&world).await;

    let (status, _) = world.click(&app, HANDLER_ID, ACTION_DECLINE).await.unwrap();
    assert_eq!(status, 200);
    wait_for_state(&app, IncidentState::Declined, T)
        .await
        .unwrap();
    let case = wait_for_case_description(&world, "**declined** by Slack user").await;

    assert!(world.winrm.executed().is_empty(), "nothing ran");
    let description = case["description"].as_str().unwrap();
    assert!(
        description.contains("Proposed commands"),
        "the proposal is recorded"
    );
    assert!(description.contains(COMMANDS[0].0.replace('`', "'").as_str()));
    // Not just any update: the case link can update the message before the decision does.
    let declined = format!("*Declined* by <@{HANDLER_ID}>");
    wait_for_message(&world, "the message shows the decision", |m| {
        m.thread_ts.is_none() && all_text(&m.blocks).contains(&declined)
    })
    .await;
    let msg = top_level(&world).remove(0);
    assert!(!block_types(&msg.blocks).contains(&"actions".to_string()));
    finish(&world, app).await;
}

#[tokio::test]
async fn a_click_from_someone_else_is_refused_privately_and_changes_nothing() {
    let world = World::start().await.unwrap();
    let app = world.start_app().await.unwrap();
    wait_for_approval_request(&world).await;

    let (status, _) = world.click(&app, OTHER_USER, ACTION_APPROVE).await.unwrap();
    assert_eq!(status, 200, "Slack always gets its ack");
    world
        .slack
        .wait_until("an ephemeral refusal", T, |s| !s.ephemerals.is_empty())
        .await
        .unwrap();
    let eph = world.slack.ephemerals();
    assert_eq!(eph.len(), 1);
    assert_eq!(eph[0].user, OTHER_USER);
    assert!(eph[0].text.contains("not an approver"));

    let incident = app.ctx.store.incidents().await.unwrap().remove(0);
    assert_eq!(incident.state, IncidentState::AwaitingApproval);
    assert!(incident.decided_by.is_none());
    let audit = app.ctx.store.audit_trail(&incident.id).await.unwrap();
    assert!(
        audit
            .iter()
            .any(|a| a.event == "DecisionRefused" && a.actor == OTHER_USER),
        "the attempt is audited"
    );
    assert!(world.winrm.executed().is_empty());
    let msg = top_level(&world).remove(0);
    assert!(
        block_types(&msg.blocks).contains(&"actions".to_string()),
        "the buttons are still there"
    );
    assert!(
        !all_text(&msg.blocks).contains("Approved"),
        "no decision shown"
    );

    // The handler can still decide.
    world.click(&app, HANDLER_ID, ACTION_APPROVE).await.unwrap();
    wait_for_state(&app, IncidentState::Executed, T)
        .await
        .unwrap();
    finish(&world, app).await;
}

#[tokio::test]
async fn forged_and_stale_requests_get_401_and_change_nothing() {
    let world = World::start().await.unwrap();
    let app = world.start_app().await.unwrap();
    wait_for_approval_request(&world).await;

    let now = chrono::Utc::now().timestamp();
    let (status, _) = world
        .click_at(
            &app,
            HANDLER_ID,
            ACTION_APPROVE,
            now,
            "not-the-signing-secret",
        )
        .await
        .unwrap();
    assert_eq!(status, 401, "forged signature");
    let (status, _) = world
        .click_at(&app, HANDLER_ID, ACTION_APPROVE, now - 301, SIGNING_SECRET)
        .await
        .unwrap();
    assert_eq!(status, 401, "stale timestamp");
    let (status, _) = world
        .click_at(&app, HANDLER_ID, ACTION_APPROVE, now + 600, SIGNING_SECRET)
        .await
        .unwrap();
    assert_eq!(status, 401, "timestamp from the future");

    let incident = app.ctx.store.incidents().await.unwrap().remove(0);
    assert_eq!(incident.state, IncidentState::AwaitingApproval);
    assert!(world.winrm.executed().is_empty());
    assert!(world.slack.ephemerals().is_empty());
    finish(&world, app).await;
}

#[tokio::test]
async fn a_double_click_runs_the_commands_once() {
    let world = World::start().await.unwrap();
    let app = world.start_app().await.unwrap();
    wait_for_approval_request(&world).await;

    let (a, b) = tokio::join!(
        world.click(&app, HANDLER_ID, ACTION_APPROVE),
        world.click(&app, HANDLER_ID, ACTION_APPROVE)
    );
    assert_eq!(a.unwrap().0, 200);
    assert_eq!(b.unwrap().0, 200);
    wait_for_state(&app, IncidentState::Executed, T)
        .await
        .unwrap();
    wait_for_batch_summary(&world).await;
    world
        .slack
        .wait_until("the 'already decided' note", T, |s| {
            !s.ephemerals.is_empty()
        })
        .await
        .unwrap();

    assert_eq!(
        world.winrm.executed().len(),
        COMMANDS.len(),
        "each command ran exactly once"
    );
    let eph = world.slack.ephemerals();
    assert!(eph[0].text.contains("already decided"), "{eph:?}");
    let decided: Vec<_> = app
        .ctx
        .store
        .audit_trail(&app.ctx.store.incidents().await.unwrap()[0].id)
        .await
        .unwrap()
        .into_iter()
        .filter(|a| a.event == "ApprovalDecided")
        .collect();
    assert_eq!(decided.len(), 1);
    finish(&world, app).await;
}

#[tokio::test]
async fn a_button_value_for_other_commands_or_another_host_approves_nothing() {
    let world = World::start().await.unwrap();
    let app = world.start_app().await.unwrap();
    wait_for_approval_request(&world).await;
    let msg = top_level(&world).remove(0);
    let value = triage_bot::demo::button_value(&msg.blocks, ACTION_APPROVE).unwrap();
    let (incident, _hash) = value.split_once(':').unwrap();

    // Same incident, a hash for a different command list (as a forged or stale button would carry).
    let tampered = format!("{incident}:{}", "0".repeat(32));
    let (status, _) = world
        .click_value(&app, HANDLER_ID, &msg.ts, ACTION_APPROVE, &tampered)
        .await
        .unwrap();
    assert_eq!(status, 200);
    wait_for_ephemeral(&world, "the refusal", |e| {
        e.text.contains("no longer matches")
    })
    .await;
    let row = app.ctx.store.incident(incident).await.unwrap().unwrap();
    assert_eq!(row.state, IncidentState::AwaitingApproval);
    let audit = app.ctx.store.audit_trail(incident).await.unwrap();
    assert!(
        audit
            .iter()
            .any(|a| a.event == "DecisionRefused" && a.detail.contains("stale or tampered"))
    );
    assert!(world.winrm.executed().is_empty());
    finish(&world, app).await;
}
