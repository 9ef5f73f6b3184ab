//! Independent-client checks: each emulator is started in-process, seeded, and exercised by the
//! official python client of the real system (`elasticsearch`, `slack_sdk`), so the emulators are
//! held to what real clients expect rather than to what our own client happens to send.
//!
//! The python packages are pinned in `emulators/checks/requirements.txt` and installed on demand by
//! [`emulators::pycheck`]; a check that cannot run fails, it never skips.

use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::http::HeaderMap;
use emulators::elasticsearch::ElasticEmulator;
use emulators::slack::{self, SlackEmulator};

/// Runs a check script; any failure (including a failed install) fails the test with its output.
async fn run_check(script: &str, args: &[String]) -> String {
    emulators::pycheck::run_check(script, args)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_elasticsearch_client_pages_through_alerts() {
    let es = ElasticEmulator::start()
        .await
        .expect("start elasticsearch emulator");
    es.seed_sample_alerts();

    let out = run_check("es_check.py", &[es.url()]).await;
    assert!(out.contains("es_check: all good"), "{out}");

    // The python client speaks the compatibility media type; the emulator saw real searches.
    let searches = es.searches();
    assert!(searches.len() >= 8, "searches recorded: {}", searches.len());
    let first = &searches[0];
    assert_eq!(first["method"], "POST");
    assert_eq!(first["path"], "/.alerts-security.alerts-default/_search");
    assert_eq!(first["body"]["size"], 2);
    assert!(first["body"]["query"]["bool"]["filter"].is_array());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_slack_sdk_drives_the_web_api_and_verifies_our_signatures() {
    let token = "xoxb-check-token";
    let secret = "8f742231b10e8888abcd99yyyzzz85a5";
    let slack = SlackEmulator::start(token)
        .await
        .expect("start slack emulator");
    slack.add_user(
        "U0ALICE",
        "alice",
        "Alice Analyst",
        Some("alice@example.com"),
    );
    slack.add_user("U0BOB", "bob", "Bob Responder", Some("bob@example.com"));
    slack.add_user("U0CAROL", "carol", "Carol NoEmail", None);
    slack.add_user("U0DAVE", "dave", "Dave Oncall", Some("dave@example.com"));
    slack.add_usergroup("S0SOC", &["U0ALICE", "U0BOB"]);
    slack.rate_limit_next(1, 7);

    // A stand-in app that records what our `post_interaction` helper sends it.
    type Seen = Arc<Mutex<Option<(HeaderMap, Bytes)>>>;
    let seen: Seen = Arc::default();
    let app = axum::Router::new().route(
        "/slack/interactions",
        axum::routing::post({
            let seen = seen.clone();
            move |headers: HeaderMap, body: Bytes| {
                let seen = seen.clone();
                async move {
                    *seen.lock().unwrap_or_else(|p| p.into_inner()) = Some((headers, body));
                    ""
                }
            }
        }),
    );
    let addr = emulators::server::spawn(app, &Default::default())
        .await
        .expect("spawn stand-in app");
    let ts = chrono::Utc::now().timestamp();
    let payload = slack::block_actions_payload(
        "U0ALICE",
        "alice",
        "C0SOC",
        "1700000000.000100",
        "approve",
        "inc-1",
    );
    let (status, _) = slack::post_interaction(
        &format!("http://{addr}/slack/interactions"),
        secret,
        &payload,
        ts,
    )
    .await
    .expect("post interaction");
    assert_eq!(status, 200);
    let (headers, body) = seen
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .take()
        .expect("the app received the interaction");
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
            .unwrap_or_default()
    };
    assert_eq!(header("content-type"), "application/x-www-form-urlencoded");
    assert_eq!(header("x-slack-request-timestamp"), ts.to_string());
    let body = String::from_utf8(body.to_vec()).expect("form body is UTF-8");
    let signature = header("x-slack-signature");
    assert_eq!(signature, slack::sign(secret, ts, &body));

    let out = run_check(
        "slack_check.py",
        &[
            slack.url(),
            token.to_string(),
            secret.to_string(),
            ts.to_string(),
            body,
            signature,
        ],
    )
    .await;
    assert!(out.contains("slack_check: all good"), "{out}");

    // What the emulator recorded from a real client.
    let opened: Vec<_> = slack
        .calls_of("views.open")
        .into_iter()
        .map(|c| c.error)
        .collect();
    assert_eq!(
        opened,
        [
            None,
            Some("exchanged_trigger_id".into()),
            Some("expired_trigger_id".into()),
            Some("invalid_arguments".into())
        ]
    );
    assert_eq!(slack.views().len(), 1);
    assert_eq!(slack.views()[0].updates, 1);
    let calls = slack.calls();
    assert_eq!(calls[0].error.as_deref(), Some("ratelimited"));
    let form_post = slack
        .calls_of("chat.postMessage")
        .into_iter()
        .find(|c| c.params["text"] == "thread reply")
        .expect("the form-encoded post was recorded");
    assert!(
        form_post.params["blocks"].is_array(),
        "form `blocks` string parsed into JSON"
    );
    // slack_sdk POSTs every method, with users.list's arguments in the query string.
    let list_calls = slack.calls_of("users.list");
    assert_eq!(list_calls.len(), 3, "{list_calls:?}");
    assert!(list_calls[1].params["cursor"].is_string(), "{list_calls:?}");
    let messages = slack.messages();
    assert_eq!(messages.len(), 2);
    assert_eq!(messages[0].updated, 1);
    assert_eq!(messages[0].text, "Approved by <@U0ALICE>");
    assert_eq!(
        messages[0]
            .metadata
            .as_ref()
            .map(|m| m["event_type"].clone()),
        Some(serde_json::json!("triage_approval"))
    );
    assert_eq!(
        messages[1].thread_ts.as_deref(),
        Some(messages[0].ts.as_str())
    );
    assert_eq!(slack.ephemerals().len(), 1);
}
