//! The choices an approver has and the rules around them: investigation only, approver groups,
//! the two-person rule for remediation, and what happens when nobody decides.

use crate::common::*;

#[tokio::test]
async fn investigation_only_runs_the_read_only_commands_and_nothing_else() {
    let world = World::start().await.unwrap();
    let app = world.start_app().await.unwrap();
    wait_for_approval_request(&world).await;

    let (status, _) = world
        .click(&app, HANDLER_ID, ACTION_APPROVE_INVESTIGATION)
        .await
        .unwrap();
    assert_eq!(status, 200);
    let done = wait_for_state(&app, IncidentState::Executed, T)
        .await
        .unwrap();
    wait_for_batch_summary(&world).await;

    let ran: Vec<String> = world
        .winrm
        .executed()
        .into_iter()
        .filter_map(|e| e.script)
        .collect();
    let investigation: Vec<String> = COMMANDS[..5].iter().map(|(c, _)| c.to_string()).collect();
    assert_eq!(ran, investigation, "only the investigation commands ran");
    let commands = app.ctx.store.commands(&done.id).await.unwrap();
    assert!(
        commands[5..]
            .iter()
            .all(|c| c.status == CommandStatus::Skipped && c.started_at.is_none())
    );
    let msg = top_level(&world).remove(0);
    assert!(all_text(&msg.blocks).contains("*Approved (investigation only)*"));
    let case = wait_for_record(&world, &app).await;
    assert!(case["comments"].as_array().unwrap().iter().any(|c| {
        c["comment"]
            .as_str()
            .is_some_and(|t| t.starts_with("**Approved (investigation only)**"))
    }));
    finish(&world, app).await;
}

#[tokio::test]
async fn a_member_of_an_approver_group_may_decide() {
    let world = World::start().await.unwrap();
    world.slack.add_user("U0CAROL", "carol", "Carol Lead", None);
    world.slack.add_usergroup("S0SOCLEADS", &["U0CAROL"]);
    let app = world
        .start_app_with(&[("SLACK_APPROVER_GROUPS", "S0SOCLEADS")])
        .await
        .unwrap();
    wait_for_approval_request(&world).await;

    world.click(&app, "U0CAROL", ACTION_DECLINE).await.unwrap();
    let incident = wait_for_state(&app, IncidentState::Declined, T)
        .await
        .unwrap();
    assert_eq!(incident.decided_by.as_deref(), Some("U0CAROL"));
    assert!(
        world
            .slack
            .calls()
            .iter()
            .any(|c| c.method == "usergroups.users.list")
    );
    finish(&world, app).await;
}

#[tokio::test]
async fn remediation_needs_two_different_approvers_under_the_two_person_rule() {
    let world = World::start().await.unwrap();
    let app = with_second_approver(&world, true).await;

    // First approval: recorded, nothing runs, the buttons stay with a note.
    world.click(&app, HANDLER_ID, ACTION_APPROVE).await.unwrap();
    wait_for_message(&world, "the first-approval note on the message", |m| {
        m.thread_ts.is_none()
            && m.blocks
                .to_string()
                .contains("needs a second, different approver")
    })
    .await;
    let incident = app.ctx.store.incidents().await.unwrap().remove(0);
    assert_eq!(incident.state, IncidentState::AwaitingApproval);
    assert_eq!(incident.first_approver.as_deref(), Some(HANDLER_ID));
    assert!(block_types(&top_level(&world)[0].blocks).contains(&"actions".to_string()));

    // The same person again is refused.
    world.click(&app, HANDLER_ID, ACTION_APPROVE).await.unwrap();
    wait_for_ephemeral(&world, "the refusal", |e| {
        e.text.contains("second, different approver") && e.text.contains("already approved")
    })
    .await;
    assert!(world.winrm.executed().is_empty());

    // A second, different approver: now it runs.
    world.click(&app, "U0BOB", ACTION_APPROVE).await.unwrap();
    let done = wait_for_state(&app, IncidentState::Executed, T)
        .await
        .unwrap();
    assert_eq!(done.decided_by.as_deref(), Some("U0BOB"));
    assert_eq!(world.winrm.executed().len(), COMMANDS.len());
    let audit = app.ctx.store.audit_trail(&done.id).await.unwrap();
    assert!(
        audit
            .iter()
            .any(|a| a.event == "FirstApproval" && a.actor == HANDLER_ID)
    );
    assert!(
        audit
            .iter()
            .any(|a| a.event == "ApprovalDecided" && a.actor == "U0BOB")
    );
    finish(&world, app).await;
}

#[tokio::test]
async fn an_undecided_incident_is_escalated_once_then_expires() {
    let world = World::start().await.unwrap();
    let app = world
        .start_app_with(&[
            ("APPROVAL_TIMEOUT_SECS", "1.5"),
            ("APPROVAL_ESCALATE_AFTER_SECS", "0.3"),
            ("APPROVAL_ESCALATE_TO", "S0BACKUP"),
        ])
        .await
        .unwrap();
    wait_for_approval_request(&world).await;
    let root = top_level(&world).remove(0);
    let value = triage_bot::demo::button_value(&root.blocks, ACTION_APPROVE).unwrap();

    wait_for_message(&world, "the escalation mention", |m| {
        m.text.contains("<!subteam^S0BACKUP>")
    })
    .await;
    let incident = wait_for_state(&app, IncidentState::Expired, T)
        .await
        .unwrap();
    wait_for_message(&world, "the expired message", |m| {
        m.thread_ts.is_none() && m.blocks.to_string().contains("*Expired*")
    })
    .await;
    let case = wait_for_case_description(&world, "| State | expired |").await;

    assert_eq!(
        world
            .slack
            .messages()
            .iter()
            .filter(|m| m.text.contains("<!subteam^S0BACKUP>"))
            .count(),
        1,
        "escalated once"
    );
    assert!(!block_types(&top_level(&world)[0].blocks).contains(&"actions".to_string()));
    let comments: Vec<String> = comment_texts(&case);
    assert!(comments.iter().any(|c| c.starts_with("**Escalated**")));
    assert!(comments.iter().any(|c| c.starts_with("**Expired**")));
    // Expiry ends the response; nobody acknowledged it.
    assert!(
        comments
            .iter()
            .any(|c| c.starts_with("**Response times**") && c.contains("no human decision"))
    );
    let expired = app.ctx.store.incident(&incident.id).await.unwrap().unwrap();
    assert!(expired.responded_at.is_some() && expired.acknowledged_at.is_none());
    // A late click (from a stale client that still shows the buttons) changes nothing.
    let (status, _) = world
        .click_value(&app, HANDLER_ID, &root.ts, ACTION_APPROVE, &value)
        .await
        .unwrap();
    assert_eq!(status, 200);
    wait_for_ephemeral(&world, "the late-click note", |e| {
        e.text.contains("already decided")
    })
    .await;
    assert!(world.winrm.executed().is_empty());
    assert_eq!(
        app.ctx
            .store
            .incident(&incident.id)
            .await
            .unwrap()
            .unwrap()
            .state,
        IncidentState::Expired
    );
    finish(&world, app).await;
}
