//! Handler resolution through the app: the routing table (rule tag → user group, host pattern →
//! e-mail resolved with users.lookupByEmail), the assistant's answer as fallback, and the
//! "unassigned" path that mentions the fallback group.

use crate::common::*;
use triage_bot::app::App;

async fn approval_text(world: &World) -> (String, String) {
    wait_for_approval_request(world).await;
    let msg = top_level(world).remove(0);
    (all_text(&msg.blocks), msg.text)
}

fn asked_who_handles(world: &World) -> bool {
    world
        .kibana
        .calls()
        .iter()
        .any(|c| c.last_user_content.starts_with("Who handles"))
}

#[tokio::test]
async fn a_rule_tag_routes_to_a_user_group() {
    let world = World::start().await.unwrap();
    let settings = world
        .settings_with(&[(
            "HANDLER_ROUTES",
            "windows=U0NOBODY01,tag:Tactic: Persistence=S0IRTEAM1",
        )])
        .unwrap();
    let app = App::start(settings, None).await.unwrap();
    let incident = wait_for_state(&app, IncidentState::AwaitingApproval, T)
        .await
        .unwrap();
    assert_eq!(incident.handler_slack_id.as_deref(), Some("S0IRTEAM1"));
    let (blocks, text) = approval_text(&world).await;
    assert!(blocks.contains("<!subteam^S0IRTEAM1>"), "{blocks}");
    assert!(text.contains("<!subteam^S0IRTEAM1>"));
    assert!(
        !asked_who_handles(&world),
        "the table answered; the AI was not asked"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_host_pattern_routes_to_an_email_resolved_in_slack() {
    let world = World::start().await.unwrap();
    let settings = world
        .settings_with(&[(
            "HANDLER_ROUTES",
            "*=U0NOBODY01,host:ws-fin-*=Alice@Example.com",
        )])
        .unwrap();
    let app = App::start(settings, None).await.unwrap();
    let incident = wait_for_state(&app, IncidentState::AwaitingApproval, T)
        .await
        .unwrap();
    assert_eq!(incident.handler_slack_id.as_deref(), Some(HANDLER_ID));
    let lookups = world.slack.calls_of("users.lookupByEmail");
    assert_eq!(lookups.len(), 1);
    assert_eq!(lookups[0].params["email"], "Alice@Example.com");
    let (blocks, _) = approval_text(&world).await;
    assert!(blocks.contains(&format!("<@{HANDLER_ID}>")));
    app.stop().await;
}

#[tokio::test]
async fn nobody_found_mentions_the_fallback_group() {
    let world = World::start().await.unwrap();
    world.kibana.set_responder({
        let answer = triage_bot::samples::triage_answer();
        move |call| {
            if call.last_user_content.starts_with("Who handles") {
                "Zed Unknown".into()
            } else {
                answer.clone()
            }
        }
    });
    let settings = world
        .settings_with(&[("SLACK_FALLBACK_GROUP", "S0SOCTEAM")])
        .unwrap();
    let app = App::start(settings, None).await.unwrap();
    let incident = wait_for_state(&app, IncidentState::AwaitingApproval, T)
        .await
        .unwrap();
    assert!(asked_who_handles(&world));
    assert_eq!(incident.handler_name.as_deref(), Some("Zed Unknown"));
    assert_eq!(incident.handler_slack_id.as_deref(), Some("S0SOCTEAM"));
    assert!(
        !world.slack.calls_of("users.list").is_empty(),
        "the name was looked up"
    );
    let (blocks, _) = approval_text(&world).await;
    assert!(blocks.contains("<!subteam^S0SOCTEAM>"), "{blocks}");
    app.stop().await;
}

#[tokio::test]
async fn no_answer_and_no_group_is_unassigned() {
    let world = World::start().await.unwrap();
    world.kibana.set_responder({
        let answer = triage_bot::samples::triage_answer();
        move |call| {
            if call.last_user_content.starts_with("Who handles") {
                "I do not have information about who handles alerts in your organisation.".into()
            } else {
                answer.clone()
            }
        }
    });
    let app = world.start_app().await.unwrap();
    let incident = wait_for_state(&app, IncidentState::AwaitingApproval, T)
        .await
        .unwrap();
    assert_eq!(incident.handler_slack_id, None);
    assert_eq!(incident.handler_name, None);
    let (blocks, _) = approval_text(&world).await;
    assert!(blocks.contains("*Handler:* unassigned"), "{blocks}");
    app.stop().await;
}

fn handler_questions(world: &World) -> usize {
    world
        .kibana
        .calls()
        .iter()
        .filter(|c| c.last_user_content.starts_with("Who handles"))
        .count()
}

#[tokio::test]
async fn a_storm_of_windows_alerts_asks_who_handles_them_once_even_after_a_restart() {
    let world = World::start().await.unwrap();
    for i in 1..=5 {
        index_alert_on(&world, &format!("storm-{i}"), &format!("WS-STORM-{i:02}"));
    }
    let app = world.start_app().await.unwrap();
    let incidents = wait_for_incidents(&app, IncidentState::AwaitingApproval, 6, T)
        .await
        .unwrap();
    assert!(
        incidents
            .iter()
            .all(|i| i.handler_slack_id.as_deref() == Some(HANDLER_ID)),
        "every incident tags the handler the one answer named"
    );
    let triages = world
        .kibana
        .calls()
        .iter()
        .filter(|c| c.last_user_content.contains("BEGIN ALERT"))
        .count();
    assert_eq!(triages, 6);
    assert_eq!(handler_questions(&world), 1, "one answer per OS family");
    let metrics = metrics_page(&app).await;
    for purpose in ["triage", "handler"] {
        assert!(
            metrics.contains(&format!(
                "triage_bot_ai_calls_total{{purpose=\"{purpose}\"}}"
            )),
            "{metrics}"
        );
    }
    app.stop().await;

    // The answer is kept in the database: after a restart a new alert does not ask again.
    index_alert_on(&world, "storm-7", "WS-STORM-07");
    let app = world.start_app().await.unwrap();
    wait_for_incidents(&app, IncidentState::AwaitingApproval, 7, T)
        .await
        .unwrap();
    assert_eq!(handler_questions(&world), 1);
    finish(&world, app).await;
}

#[tokio::test]
async fn with_the_cache_off_every_alert_asks_who_handles_it() {
    let world = World::start().await.unwrap();
    for i in 1..=2 {
        index_alert_on(&world, &format!("nocache-{i}"), &format!("WS-NOCACHE-{i}"));
    }
    let app = world
        .start_app_with(&[("HANDLER_CACHE_SECS", "0")])
        .await
        .unwrap();
    wait_for_incidents(&app, IncidentState::AwaitingApproval, 3, T)
        .await
        .unwrap();
    assert_eq!(handler_questions(&world), 3);
    app.stop().await;
}
