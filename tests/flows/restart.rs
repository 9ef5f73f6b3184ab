//! The operator restarts triage-bot while an approval is pending: no second Slack message, no
//! second case, and the click after the restart still runs the commands — once.

use crate::common::*;

#[tokio::test]
async fn a_restart_between_post_and_click_loses_nothing_and_repeats_nothing() {
    let world = World::start().await.unwrap();
    let first = world.start_app().await.unwrap();
    wait_for_approval_request(&world).await;
    first.stop().await;

    let searches_before = world.es.searches().len();
    let second = world.start_app().await.unwrap();
    // Let the new process poll the same alert index twice over (it still holds the alert).
    world
        .es
        .wait_until("two more poll cycles", T, |s| {
            s.searches.len() >= searches_before + 4
        })
        .await
        .unwrap();
    assert_eq!(top_level(&world).len(), 1, "no second approval message");
    assert_eq!(
        second.ctx.store.incidents().await.unwrap().len(),
        1,
        "the alert was not triaged again"
    );
    assert_eq!(
        world
            .kibana
            .calls()
            .iter()
            .filter(|c| !c.last_user_content.starts_with("Who handles"))
            .count(),
        1,
        "one triage call in all"
    );

    let (status, _) = world
        .click(&second, HANDLER_ID, ACTION_APPROVE)
        .await
        .unwrap();
    assert_eq!(status, 200);
    wait_for_state(&second, IncidentState::Executed, T)
        .await
        .unwrap();
    wait_for_batch_summary(&world).await;
    wait_for_record(&world, &second).await;

    assert_eq!(
        world.winrm.executed().len(),
        COMMANDS.len(),
        "each command ran once"
    );
    assert_eq!(top_level(&world).len(), 1);
    assert_eq!(world.kibana.cases().len(), 1, "no second case");
    finish(&world, second).await;
}

#[tokio::test]
async fn a_batch_cut_short_by_a_crash_is_interrupted_not_rerun() {
    let world = World::start().await.unwrap();
    let app = world.start_app().await.unwrap();
    wait_for_approval_request(&world).await;
    let incident = app.ctx.store.incidents().await.unwrap().remove(0);
    app.stop().await;

    // Simulate a kill -9 in the middle of the batch: approved, executing, command 1 sent to a
    // shell the host no longer has (it restarted meanwhile) and never finished, the execute job
    // still marked running.
    let store = triage_bot::store::Store::connect(&world.database_url())
        .await
        .unwrap();
    let remote = serde_json::json!({"endpoint": world.winrm.url(), "shell_id": "0D7C3A5E-0000-4000-8000-000000000001", "command_id": "0D7C3A5E-0000-4000-8000-000000000002"});
    sqlx::query("UPDATE commands SET status = 'running', started_at = '2026-01-01T00:00:01Z', remote = $1 WHERE seq = 1")
        .bind(remote.to_string())
        .execute(&store.pool)
        .await
        .unwrap();
    for sql in [
        "UPDATE incidents SET state = 'executing', decision = 'approved', decided_by = 'U0ALICE', decided_at = '2026-01-01T00:00:00Z'",
        "INSERT INTO outbox (incident_id, lane, kind, payload, status, attempts, not_before, created_at) SELECT id, 'exec', 'execute', '{\"kind\":\"execute\"}', 'running', 1, '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z' FROM incidents",
    ] {
        sqlx::query(sql).execute(&store.pool).await.unwrap();
    }
    store.pool.close().await;

    let app = world.start_app().await.unwrap();
    wait_for_state(&app, IncidentState::Interrupted, T)
        .await
        .unwrap();
    wait_for_message(&world, "the interruption notice", |m| {
        m.text.contains("restarted while running") && m.text.contains("Outcome unknown for 1")
    })
    .await;
    let commands = app.ctx.store.commands(&incident.id).await.unwrap();
    assert_eq!(commands[0].status, CommandStatus::Interrupted);
    assert!(
        commands[0]
            .error
            .as_deref()
            .is_some_and(|e| e.contains("no longer has the command")),
        "{:?}",
        commands[0].error
    );
    assert!(
        commands[1..]
            .iter()
            .all(|c| c.status == CommandStatus::Skipped)
    );
    assert!(world.winrm.executed().is_empty(), "nothing was re-run");
    // The interrupted batch ended its response; the offer below is a new proposal.
    let interrupted = app.ctx.store.incident(&incident.id).await.unwrap().unwrap();
    assert!(interrupted.responded_at.is_some());

    // What did not complete is offered again in the thread; only a fresh approval runs it.
    let offer = thread_offer(&world, &app).await;
    let blocks = offer.blocks.to_string();
    assert!(blocks.contains("had not started"), "{blocks}");
    // The command whose outcome is unknown is named apart, and is not part of the offer.
    assert!(
        blocks.contains("Outcome unknown, not offered again"),
        "{blocks}"
    );
    approve_offer(&world, &app, &offer, 7).await;
    let ran: Vec<String> = world
        .winrm
        .executed()
        .into_iter()
        .filter_map(|e| e.script)
        .collect();
    let expected: Vec<String> = COMMANDS[1..].iter().map(|(c, _)| c.to_string()).collect();
    assert_eq!(
        ran, expected,
        "only what never started, once, after the fresh approval"
    );
    finish(&world, app).await;
}
