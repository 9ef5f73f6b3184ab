//! The "Isolate host" button: offered when policy allows and the alert names an Elastic Defend
//! agent; only approvers may press it; the host is isolated once, through Kibana's endpoint API.

use crate::common::*;
use triage_bot::pipeline::approval::blocks::ACTION_ISOLATE;

const AGENT: &str = "2b1eb7f7-bd61-436a-98af-c2b182043476";

#[tokio::test]
async fn an_approver_isolates_the_host_through_elastic_defend_once() {
    let world = World::start().await.unwrap();
    let app = world
        .start_app_with(&[("DEFEND_ALLOW_ISOLATE", "true")])
        .await
        .unwrap();
    wait_for_approval_request(&world).await;
    triage_bot::demo::wait_until_settled(&app, T).await.unwrap();
    let root = top_level(&world).remove(0);
    let value = triage_bot::demo::button_value(&root.blocks, ACTION_ISOLATE)
        .expect("the Isolate host button is offered");

    world
        .click_value(&app, OTHER_USER, &root.ts, ACTION_ISOLATE, &value)
        .await
        .unwrap();
    wait_for_ephemeral(&world, "the refusal", |e| e.user == OTHER_USER).await;
    assert!(
        world.kibana.endpoint().isolated().is_empty(),
        "nobody unauthorised isolates a host"
    );

    world
        .click_value(&app, HANDLER_ID, &root.ts, ACTION_ISOLATE, &value)
        .await
        .unwrap();
    world
        .kibana
        .endpoint()
        .wait_until("the isolate action", T, |s| !s.actions.is_empty())
        .await
        .unwrap();
    triage_bot::demo::wait_until_settled(&app, T).await.unwrap();
    assert_eq!(world.kibana.endpoint().isolated(), [AGENT]);
    let action = world.kibana.endpoint().actions().remove(0);
    assert_eq!(action.command, "isolate");

    // A second press does not isolate again.
    world
        .click_value(&app, HANDLER_ID, &root.ts, ACTION_ISOLATE, &value)
        .await
        .unwrap();
    wait_for_ephemeral(&world, "the note", |e| e.text.contains("already requested")).await;
    assert_eq!(world.kibana.endpoint().actions().len(), 1);
    let incident = app.ctx.store.incidents().await.unwrap().remove(0);
    assert_eq!(
        incident.state,
        IncidentState::AwaitingApproval,
        "isolation is not the command approval"
    );
    let audit = app.ctx.store.audit_trail(&incident.id).await.unwrap();
    assert!(
        audit
            .iter()
            .any(|a| a.event == "IsolationRequested" && a.actor == HANDLER_ID)
    );
    finish(&world, app).await;
}

#[tokio::test]
async fn no_isolate_button_unless_policy_allows_it() {
    let world = World::start().await.unwrap();
    let app = world.start_app().await.unwrap();
    wait_for_approval_request(&world).await;
    let root = top_level(&world).remove(0);
    assert!(triage_bot::demo::button_value(&root.blocks, ACTION_ISOLATE).is_none());
    finish(&world, app).await;
}
