//! AI calls have a pool of their own (`ASSISTANT_MAX_CONCURRENT`): while the assistant is slow
//! — its answers held by the emulator until the test releases them — another incident's
//! approval, command run, thread replies and case comments go through, and no more AI calls are
//! in flight than the setting allows.

use crate::common::*;

#[tokio::test]
async fn a_slow_assistant_does_not_hold_up_another_incidents_slack_and_case_work() {
    let world = World::start().await.unwrap();
    let app = world.start_app().await.unwrap();
    wait_for_approval_request(&world).await;

    // Twelve more alerts, whose triage answers the model takes its time over: at least as many
    // AI calls in flight as the whole pool of 8 that all jobs used to share.
    world.kibana.hold_answers();
    for i in 1..=12 {
        index_alert_on(&world, &format!("held-{i}"), &format!("WS-HELD-{i:02}"));
    }
    world
        .kibana
        .wait_until("eight triage answers in flight", T, |s| s.answering >= 8)
        .await
        .unwrap();

    let (status, _) = world.click(&app, HANDLER_ID, ACTION_APPROVE).await.unwrap();
    assert_eq!(status, 200);
    wait_for_batch_summary(&world).await;
    let last_command = COMMANDS[COMMANDS.len() - 1].0;
    world
        .kibana
        .wait_until("the last command's result in the case", T, |s| {
            s.cases.iter().any(|c| {
                c.case["comments"].as_array().is_some_and(|cs| {
                    cs.iter().any(|x| {
                        x["comment"]
                            .as_str()
                            .is_some_and(|t| t.contains(last_command))
                    })
                })
            })
        })
        .await
        .unwrap();
    // The approval, the run, the thread and the case went through while the triages waited:
    // none of them has been answered, and the rest of the twelve got their own AI slots.
    world
        .kibana
        .wait_until("all twelve triage answers in flight", T, |s| {
            s.answering == 12
        })
        .await
        .unwrap();
    assert_eq!(
        world.kibana.calls().len(),
        2 + 12,
        "one triage and one handler question before the hold, twelve triages held since"
    );

    world.kibana.release_answers();
    wait_for_incidents(&app, IncidentState::AwaitingApproval, 12, T)
        .await
        .unwrap();
    finish(&world, app).await;
}

#[tokio::test]
async fn no_more_ai_calls_are_in_flight_than_assistant_max_concurrent() {
    let world = World::start().await.unwrap();
    world.kibana.hold_answers();
    for i in 1..=9 {
        index_alert_on(&world, &format!("bound-{i}"), &format!("WS-BOUND-{i}"));
    }
    let app = world
        .start_app_with(&[("ASSISTANT_MAX_CONCURRENT", "4")])
        .await
        .unwrap();
    world
        .kibana
        .wait_until("four triage answers in flight", T, |s| s.answering == 4)
        .await
        .unwrap();
    // Every alert is in, with its triage queued: the runner could claim them all if it would.
    wait_for_incidents(&app, IncidentState::Received, 6, T)
        .await
        .unwrap();
    let counts = app.ctx.store.outbox_counts().await.unwrap();
    assert!(
        counts.contains(&("running".to_string(), 4))
            && counts.contains(&("pending".to_string(), 6)),
        "{counts:?}"
    );

    world.kibana.release_answers();
    wait_for_incidents(&app, IncidentState::AwaitingApproval, 10, T)
        .await
        .unwrap();
    assert_eq!(
        world.kibana.max_answering(),
        4,
        "never more than ASSISTANT_MAX_CONCURRENT answers at once"
    );
    app.stop().await;
}
