//! Independent-client checks: each emulator is started in-process, seeded, and exercised by the
//! official python client of the real system (`elasticsearch`, `slack_sdk`), so the emulators are
//! held to what real clients expect rather than to what our own client happens to send.
//!
//! The python packages are pinned in `emulators/checks/requirements.txt`. A missing package fails
//! the test (with the install command), it never skips: a silent skip would let the emulators
//! drift from the real wire format unnoticed. Set `PYTHON` to choose the interpreter.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::HeaderMap;
use emulators::elasticsearch::ElasticEmulator;
use emulators::slack::{self, SlackEmulator};

const INSTALL_HINT: &str = "pip install -r emulators/checks/requirements.txt";

fn python() -> String {
    std::env::var("PYTHON").unwrap_or_else(|_| "python3".to_string())
}

fn checks_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("checks")
}

/// Fails (never skips) when the interpreter or the module is missing.
async fn require_module(module: &str) {
    let out = tokio::process::Command::new(python())
        .args(["-c", &format!("import {module}")])
        .output()
        .await;
    match out {
        Ok(o) if o.status.success() => {}
        Ok(o) => panic!(
            "python module `{module}` is not installed; run `{INSTALL_HINT}`\n{}",
            String::from_utf8_lossy(&o.stderr)
        ),
        Err(e) => panic!("cannot run `{}` ({e}); install python3, then run `{INSTALL_HINT}`", python()),
    }
}

/// Runs `checks/<script> <args…>` and asserts it exits 0, showing its output otherwise.
async fn run_check(script: &str, args: &[String]) -> String {
    let child = tokio::process::Command::new(python())
        .arg(checks_dir().join(script))
        .args(args)
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(120), child)
        .await
        .unwrap_or_else(|_| panic!("{script} did not finish within 120 s"))
        .unwrap_or_else(|e| panic!("cannot run {script}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{script} failed with {}\n--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}",
        out.status
    );
    stdout
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_elasticsearch_client_pages_through_alerts() {
    require_module("elasticsearch").await;
    let es = ElasticEmulator::start().await.expect("start elasticsearch emulator");
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
    require_module("slack_sdk").await;
    let token = "xoxb-check-token";
    let secret = "8f742231b10e8888abcd99yyyzzz85a5";
    let slack = SlackEmulator::start(token).await.expect("start slack emulator");
    slack.add_user("U0ALICE", "alice", "Alice Analyst", Some("alice@example.com"));
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
    let addr = emulators::server::spawn(app).await.expect("spawn stand-in app");
    let ts = chrono::Utc::now().timestamp();
    let payload =
        slack::block_actions_payload("U0ALICE", "alice", "C0SOC", "1700000000.000100", "approve", "inc-1");
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
        headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_string).unwrap_or_default()
    };
    assert_eq!(header("content-type"), "application/x-www-form-urlencoded");
    assert_eq!(header("x-slack-request-timestamp"), ts.to_string());
    let body = String::from_utf8(body.to_vec()).expect("form body is UTF-8");
    let signature = header("x-slack-signature");
    assert_eq!(signature, slack::sign(secret, ts, &body));

    let out = run_check(
        "slack_check.py",
        &[slack.url(), token.to_string(), secret.to_string(), ts.to_string(), body, signature],
    )
    .await;
    assert!(out.contains("slack_check: all good"), "{out}");

    // What the emulator recorded from a real client.
    let calls = slack.calls();
    assert_eq!(calls[0].error.as_deref(), Some("ratelimited"));
    let form_post = slack
        .calls_of("chat.postMessage")
        .into_iter()
        .find(|c| c.params["text"] == "thread reply")
        .expect("the form-encoded post was recorded");
    assert!(form_post.params["blocks"].is_array(), "form `blocks` string parsed into JSON");
    assert!(slack.calls_of("users.list").iter().all(|c| c.http_method == "GET"));
    let messages = slack.messages();
    assert_eq!(messages.len(), 2);
    assert_eq!(messages[0].updated, 1);
    assert_eq!(messages[0].text, "Approved by <@U0ALICE>");
    assert_eq!(
        messages[0].metadata.as_ref().map(|m| m["event_type"].clone()),
        Some(serde_json::json!("triage_approval"))
    );
    assert_eq!(messages[1].thread_ts.as_deref(), Some(messages[0].ts.as_str()));
    assert_eq!(slack.ephemerals().len(), 1);
}
