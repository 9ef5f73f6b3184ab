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
