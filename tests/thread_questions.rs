//! The analyst asks the assistant follow-up questions in the alert's Slack thread; answers come
//! back in the thread, in the incident's AI conversation, and both land in the case.

mod common;

use common::*;
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
    let (status, body) = post_event(&url, SIGNING_SECRET, &challenge, now()).await.unwrap();
    assert_eq!((status, body.as_str()), (200, "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"));
    let (status, _) = post_event(&url, "wrong-secret", &challenge, now()).await.unwrap();
    assert_eq!(status, 401);
    let (status, _) = post_event(&url, SIGNING_SECRET, &challenge, now() - 3600).await.unwrap();
    assert_eq!(status, 401);
    finish(&world, app).await;
}

#[tokio::test]
async fn a_question_in_the_thread_is_answered_there_in_the_same_conversation_and_recorded() {
    let world = World::start().await.unwrap();
    let app = world.start_app().await.unwrap();
    wait_for_approval_request(&world).await;
    let root = top_level(&world).remove(0);
    let url = format!("{}/slack/events", app.url());

    let question = "Is odupd.exe signed by anyone?";
    let ts = world.slack.add_user_message(CHANNEL, HANDLER_ID, question, Some(&root.ts));
    let delivery = event_callback(message_event(HANDLER_ID, CHANNEL, question, &ts, Some(&root.ts)));
    let (status, _) = post_event(&url, SIGNING_SECRET, &delivery, now()).await.unwrap();
    assert_eq!(status, 200);
    // Slack retries the same delivery, and the mention arrives a second time as app_mention.
    post_event(&url, SIGNING_SECRET, &delivery, now()).await.unwrap();
    let mention = event_callback(app_mention_event(HANDLER_ID, CHANNEL, &format!("<@UBOT> {question}"), &ts, Some(&root.ts)));
    post_event(&url, SIGNING_SECRET, &mention, now()).await.unwrap();
    // The bot's own thread messages are not questions.
    let mut own = message_event("UBOT", CHANNEL, "Audit record: …", "1.000001", Some(&root.ts));
    own["bot_id"] = json!("BBOT");
    post_event(&url, SIGNING_SECRET, &event_callback(own), now()).await.unwrap();

    world.slack.wait_until("the answer in the thread", T, |s| s.messages.iter().any(|m| m.thread_ts.as_deref() == Some(root.ts.as_str()) && m.text.contains("asked:"))).await.unwrap();
    world.kibana.wait_until("the Q&A in the case", T, |s| s.cases.iter().any(|c| c.case["comments"].to_string().contains("Question from Slack user"))).await.unwrap();

    let incident = app.ctx.store.incidents().await.unwrap().remove(0);
    let followups: Vec<_> = world.kibana.calls().into_iter().filter(|c| c.last_user_content.contains(question)).collect();
    assert_eq!(followups.len(), 1, "one question, asked once");
    assert_eq!(followups[0].conversation_id, incident.conversation_id, "in the incident's conversation");
    assert!(incident.conversation_id.is_some());
    let answers = world.slack.messages().into_iter().filter(|m| m.text.contains("asked:")).count();
    assert_eq!(answers, 1);
    finish(&world, app).await;
}
