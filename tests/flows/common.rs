//! Shared steps of the flow tests: the emulated world (the same one the demo uses) and waits on
//! recorded state with deadlines — never sleeps as synchronisation.

#![allow(dead_code, unused_imports)]

use std::time::Duration;

use serde_json::Value;
pub use triage_bot::demo::{
    ALERT_ID, ALERT_INDEX, CHANNEL, COMMANDS, HANDLER_ID, HOST, OTHER_USER, SIGNING_SECRET, World,
    index_alert_on, wait_for_incidents, wait_for_state,
};
pub use triage_bot::domain::{CommandKind, CommandStatus, IncidentState, Risk};
pub use triage_bot::pipeline::approval::blocks::{
    ACTION_APPROVE, ACTION_APPROVE_INVESTIGATION, ACTION_DECLINE,
};

pub const T: Duration = Duration::from_secs(20);

/// Top-level (non-thread) messages Slack holds.
pub fn top_level(world: &World) -> Vec<emulators::slack::SlackMessage> {
    world
        .slack
        .messages()
        .into_iter()
        .filter(|m| m.thread_ts.is_none())
        .collect()
}

pub fn thread_replies(world: &World) -> Vec<emulators::slack::SlackMessage> {
    world
        .slack
        .messages()
        .into_iter()
        .filter(|m| m.thread_ts.is_some())
        .collect()
}

/// Bob, a second approver (`SLACK_APPROVERS`), beside the handler; with `two_person`, the
/// remediation needs both. Returns the started app once the approval message is posted.
pub async fn with_second_approver(world: &World, two_person: bool) -> triage_bot::app::RunningApp {
    world.slack.add_user("U0BOB", "bob", "Bob Second", None);
    let mut env = vec![("SLACK_APPROVERS", "U0BOB")];
    if two_person {
        env.push(("APPROVAL_TWO_PERSON_REMEDIATION", "true"));
    }
    let app = world.start_app_with(&env).await.unwrap();
    wait_for_approval_request(world).await;
    app
}

/// Waits until the approval message is in Slack and the case exists with the alert attached.
pub async fn wait_for_approval_request(world: &World) {
    world
        .slack
        .wait_until("the approval message", T, |s| {
            s.messages.iter().any(|m| m.thread_ts.is_none())
        })
        .await
        .unwrap();
    world
        .kibana
        .wait_until("a case with the alert attached", T, |s| {
            s.cases.iter().any(|c| {
                c.case["comments"]
                    .as_array()
                    .is_some_and(|cs| cs.iter().any(|x| x["type"] == "alert"))
            })
        })
        .await
        .unwrap();
}

/// Waits until the final thread message (batch summary) is posted.
pub async fn wait_for_batch_summary(world: &World) {
    world
        .slack
        .wait_until("the batch summary in the thread", T, |s| {
            s.messages
                .iter()
                .any(|m| m.thread_ts.is_some() && m.text.contains("Finished on"))
        })
        .await
        .unwrap();
}

/// Waits until the case description has been rewritten with `needle`.
pub async fn wait_for_case_description(world: &World, needle: &str) -> Value {
    let n = needle.to_string();
    world
        .kibana
        .wait_until("the final case description", T, move |s| {
            s.cases.iter().any(|c| {
                c.case["description"]
                    .as_str()
                    .is_some_and(|d| d.contains(&n))
            })
        })
        .await
        .unwrap();
    world.kibana.cases().remove(0)
}

pub fn block_types(blocks: &Value) -> Vec<String> {
    blocks
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["type"].as_str().unwrap().to_string())
        .collect()
}

pub fn all_text(blocks: &Value) -> String {
    blocks.to_string()
}

/// Checks every Slack message the test produced with the independent Block Kit validator
/// (python `slack_sdk` models plus the limits they do not check).
pub async fn validate_slack_messages(world: &World) {
    let calls: Vec<Value> = world
        .slack
        .calls()
        .into_iter()
        .filter(|c| c.error.is_none())
        .map(|c| serde_json::json!({ "method": c.method, "params": c.params }))
        .collect();
    let file = world.dir.join("slack-calls.json");
    std::fs::write(&file, serde_json::to_string(&calls).unwrap()).unwrap();
    emulators::pycheck::run_check("blockkit_check.py", &[file.display().to_string()])
        .await
        .unwrap_or_else(|e| panic!("Block Kit validation: {e}"));
}

/// Checks every Kibana request body the test produced against Kibana's published OpenAPI specs.
pub async fn validate_kibana_requests(world: &World) {
    let mut requests: Vec<Value> = world
        .kibana
        .case_requests()
        .into_iter()
        .map(|(method, path, body)| serde_json::json!({ "method": method, "path": path, "body": body }))
        .collect();
    requests.extend(
        world
            .kibana
            .connector_requests()
            .into_iter()
            .filter(|(method, _, _)| method != "GET" && method != "DELETE")
            .map(|(method, path, body)| serde_json::json!({ "method": method, "path": path, "body": body })),
    );
    requests.extend(world.kibana.calls().into_iter().map(|c| {
        serde_json::json!({ "method": "POST", "path": "/api/security_ai_assistant/chat/complete", "body": c.body })
    }));
    let file = world.dir.join("kibana-requests.json");
    std::fs::write(&file, serde_json::to_string(&requests).unwrap()).unwrap();
    let specs = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/specs/kibana");
    emulators::pycheck::run_check(
        "kibana_contract_check.py",
        &[specs.to_string(), file.display().to_string()],
    )
    .await
    .unwrap_or_else(|e| panic!("Kibana contract check: {e}"));
}

/// Ends a flow test: stops the app, then holds what Slack and Kibana received to the
/// independent validators.
pub async fn finish(world: &World, app: triage_bot::app::RunningApp) {
    app.stop().await;
    validate_slack_messages(world).await;
    validate_kibana_requests(world).await;
}

/// Waits until the app has nothing left to do (every queued side effect performed), then returns
/// the incident's case as Kibana holds it: the settled audit record.
pub async fn wait_for_record(world: &World, app: &triage_bot::app::RunningApp) -> Value {
    triage_bot::demo::wait_until_settled(app, T).await.unwrap();
    world.kibana.cases().remove(0)
}

/// Acts as Slack: `user` writes `text` in the thread of `root_ts`, and the Events API delivers it
/// (signed) to the app. Returns the delivery, so a test can deliver it again as a retry would.
pub async fn ask_in_thread(
    world: &World,
    app: &triage_bot::app::RunningApp,
    user: &str,
    root_ts: &str,
    text: &str,
) -> Value {
    let ts = world
        .slack
        .add_user_message(CHANNEL, user, text, Some(root_ts));
    let delivery = emulators::slack::event_callback(emulators::slack::message_event(
        user,
        CHANNEL,
        text,
        &ts,
        Some(root_ts),
    ));
    let url = format!("{}/slack/events", app.url());
    let (status, _) = emulators::slack::post_event(
        &url,
        SIGNING_SECRET,
        &delivery,
        chrono::Utc::now().timestamp(),
    )
    .await
    .unwrap();
    assert_eq!(status, 200);
    delivery
}

/// The texts of a case's user comments, in order.
pub fn comment_texts(case: &Value) -> Vec<String> {
    case["comments"]
        .as_array()
        .map(|cs| {
            cs.iter()
                .filter_map(|c| c["comment"].as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

/// The app's Prometheus page.
pub async fn metrics_page(app: &triage_bot::app::RunningApp) -> String {
    reqwest::get(format!("{}/metrics", app.url()))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// Waits until Slack holds a message for which `pred` holds.
pub async fn wait_for_message(
    world: &World,
    what: &str,
    pred: impl Fn(&emulators::slack::SlackMessage) -> bool,
) {
    world
        .slack
        .wait_until(what, T, |s| s.messages.iter().any(&pred))
        .await
        .unwrap();
}

/// Waits until Slack has delivered an ephemeral message for which `pred` holds.
pub async fn wait_for_ephemeral(
    world: &World,
    what: &str,
    pred: impl Fn(&emulators::slack::SlackEphemeral) -> bool,
) {
    world
        .slack
        .wait_until(what, T, |s| s.ephemerals.iter().any(&pred))
        .await
        .unwrap();
}

/// The fresh approval block offered in the thread of the (only) card, once the app settled.
pub async fn thread_offer(
    world: &World,
    app: &triage_bot::app::RunningApp,
) -> emulators::slack::SlackMessage {
    triage_bot::demo::wait_until_settled(app, T).await.unwrap();
    let root = top_level(world).remove(0);
    world
        .slack
        .messages()
        .into_iter()
        .find(|m| {
            m.thread_ts.as_deref() == Some(root.ts.as_str())
                && m.blocks.to_string().contains(ACTION_APPROVE)
        })
        .expect("a fresh approval block in the thread")
}

/// Acts as the handler: Approve on `offer`, then waits for its batch's summary (`ran` succeeded).
pub async fn approve_offer(
    world: &World,
    app: &triage_bot::app::RunningApp,
    offer: &emulators::slack::SlackMessage,
    ran: usize,
) {
    let value = triage_bot::demo::button_value(&offer.blocks, ACTION_APPROVE).unwrap();
    world
        .click_value(app, HANDLER_ID, &offer.ts, ACTION_APPROVE, &value)
        .await
        .unwrap();
    wait_for_message(world, "the resumed batch's summary", |m| {
        m.text.contains(&format!("{ran} succeeded, 0 failed"))
    })
    .await;
}
