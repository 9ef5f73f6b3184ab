//! The analyst asks the assistant follow-up questions in the alert's Slack thread; answers come
//! back in the thread, in the incident's AI conversation, and both land in the case.

use crate::common::*;
use emulators::slack::{app_mention_event, event_callback, message_event, post_event};
use serde_json::json;

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

#[tokio::test]
async fn the_events_endpoint_answers_url_verification_and_refuses_forgeries() {
    let world = World::start().await.unwrap();
    let app = world.start_app().await.unwrap();
    let url = format!("{}/slack/events", app.url());
    let challenge = json!({ "token": "x", "challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P", "type": "url_verification" });
    let (status, body) = post_event(&url, SIGNING_SECRET, &challenge, now())
        .await
        .unwrap();
    assert_eq!(
        (status, body.as_str()),
        (200, "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P")
    );
    let (status, _) = post_event(&url, "wrong-secret", &challenge, now())
        .await
        .unwrap();
    assert_eq!(status, 401);
    let (status, _) = post_event(&url, SIGNING_SECRET, &challenge, now() - 3600)
        .await
        .unwrap();
    assert_eq!(status, 401);
    finish(&world, app).await;
}

#[tokio::test]
async fn a_question_in_the_thread_is_answered_there_in_the_same_conversation_and_recorded() {
    let world = World::start().await.unwrap();
    let app = world.start_app().await.unwrap();
    wait_for_approval_request(&world).await;
    // The app has recorded where its message is (Slack shows it a moment before that).
    triage_bot::demo::wait_until_settled(&app, T).await.unwrap();
    let root = top_level(&world).remove(0);
    let url = format!("{}/slack/events", app.url());

    let question = "Is odupd.exe signed by anyone?";
    let delivery = ask_in_thread(&world, &app, HANDLER_ID, &root.ts, question).await;
    let ts = delivery["event"]["ts"].as_str().unwrap().to_string();
    // Slack retries the same delivery, and the mention arrives a second time as app_mention.
    post_event(&url, SIGNING_SECRET, &delivery, now())
        .await
        .unwrap();
    let mention = event_callback(app_mention_event(
        HANDLER_ID,
        CHANNEL,
        &format!("<@UBOT> {question}"),
        &ts,
        Some(&root.ts),
    ));
    post_event(&url, SIGNING_SECRET, &mention, now())
        .await
        .unwrap();
    // The bot's own thread messages are not questions.
    let mut own = message_event(
        "UBOT",
        CHANNEL,
        "Audit record: …",
        "1.000001",
        Some(&root.ts),
    );
    own["bot_id"] = json!("BBOT");
    post_event(&url, SIGNING_SECRET, &event_callback(own), now())
        .await
        .unwrap();

    wait_for_message(&world, "the answer in the thread", |m| {
        m.thread_ts.as_deref() == Some(root.ts.as_str()) && m.text.contains("asked:")
    })
    .await;
    world
        .kibana
        .wait_until("the Q&A in the case", T, |s| {
            s.cases.iter().any(|c| {
                c.case["comments"]
                    .to_string()
                    .contains("Question from Slack user")
            })
        })
        .await
        .unwrap();

    let incident = app.ctx.store.incidents().await.unwrap().remove(0);
    let followups: Vec<_> = world
        .kibana
        .calls()
        .into_iter()
        .filter(|c| c.last_user_content.contains(question))
        .collect();
    assert_eq!(followups.len(), 1, "one question, asked once");
    assert_eq!(
        followups[0].conversation_id, incident.conversation_id,
        "in the incident's conversation"
    );
    assert!(incident.conversation_id.is_some());
    let answers = world
        .slack
        .messages()
        .into_iter()
        .filter(|m| m.text.contains("asked:"))
        .count();
    assert_eq!(answers, 1);
    finish(&world, app).await;
}

#[tokio::test]
async fn commands_proposed_in_a_thread_answer_get_their_own_approval_under_the_same_rules() {
    let world = World::start().await.unwrap();
    let triage = triage_bot::samples::triage_answer();
    world.kibana.set_responder(move |call| {
        if call.last_user_content.starts_with("Who handles") {
            "Alice Analyst".into()
        } else if call.last_user_content.contains("Is the service still installed?") {
            "It may be. Check and stop it:\n\nInvestigation Commands:\n1. `Get-Service -Name odu`\n\nRemediation Commands:\n1. `Stop-Service -Name odu -Force`\n".into()
        } else {
            triage.clone()
        }
    });
    world.winrm.set_response(
        "Get-Service -Name odu",
        "Status Name\r\nRunning odu\r\n",
        "",
        0,
    );
    world
        .winrm
        .set_response("Stop-Service -Name odu -Force", "", "", 0);
    let app = world.start_app().await.unwrap();
    wait_for_approval_request(&world).await;
    // The app has recorded where its message is (Slack shows it a moment before that).
    triage_bot::demo::wait_until_settled(&app, T).await.unwrap();
    let root = top_level(&world).remove(0);
    world.click(&app, HANDLER_ID, ACTION_DECLINE).await.unwrap();
    wait_for_state(&app, IncidentState::Declined, T)
        .await
        .unwrap();

    let question = "Is the service still installed?";
    ask_in_thread(&world, &app, HANDLER_ID, &root.ts, question).await;

    // The proposal arrives as an approval block inside the same thread.
    wait_for_message(&world, "the follow-up approval block", |m| {
        m.thread_ts.as_deref() == Some(root.ts.as_str())
            && m.blocks.to_string().contains("triage_approve")
    })
    .await;
    let block_msg = world
        .slack
        .messages()
        .into_iter()
        .find(|m| m.thread_ts.is_some() && m.blocks.to_string().contains("triage_approve"))
        .unwrap();
    assert!(
        block_msg
            .blocks
            .to_string()
            .contains("Stop-Service -Name odu -Force")
    );
    assert_eq!(top_level(&world).len(), 1, "no new top-level message");

    // Someone who is not an approver cannot approve it either.
    let value = triage_bot::demo::button_value(&block_msg.blocks, ACTION_APPROVE).unwrap();
    world
        .click_value(&app, OTHER_USER, &block_msg.ts, ACTION_APPROVE, &value)
        .await
        .unwrap();
    wait_for_ephemeral(&world, "the refusal", |e| e.user == OTHER_USER).await;
    assert!(world.winrm.executed().is_empty());

    // The handler approves: exactly the two proposed commands run, results in the thread.
    world
        .click_value(&app, HANDLER_ID, &block_msg.ts, ACTION_APPROVE, &value)
        .await
        .unwrap();
    wait_for_message(&world, "the follow-up results", |m| {
        m.thread_ts.as_deref() == Some(root.ts.as_str()) && m.text.contains("2 succeeded, 0 failed")
    })
    .await;
    let ran: Vec<String> = world
        .winrm
        .executed()
        .into_iter()
        .filter_map(|e| e.script)
        .collect();
    assert_eq!(
        ran,
        ["Get-Service -Name odu", "Stop-Service -Name odu -Force"]
    );
    let incidents = app.ctx.store.incidents().await.unwrap();
    let child = incidents
        .iter()
        .find(|i| i.parent_incident.is_some())
        .unwrap();
    assert_eq!(child.state, IncidentState::Executed);
    assert_eq!(
        child.case_id,
        incidents
            .iter()
            .find(|i| i.parent_incident.is_none())
            .unwrap()
            .case_id,
        "the same case"
    );
    world
        .kibana
        .wait_until("the follow-up results in the case", T, |s| {
            s.cases.iter().any(|c| {
                c.case["comments"]
                    .to_string()
                    .contains("Stop-Service -Name odu -Force")
                    && c.case["comments"]
                        .to_string()
                        .contains("Result: exit code 0")
            })
        })
        .await
        .unwrap();
    assert_eq!(world.kibana.cases().len(), 1);
    finish(&world, app).await;
}
