//! Slack reaches triage-bot two ways — signed HTTP requests and Socket Mode — with the same
//! handlers behind both; and an independent signer (python `slack_sdk`) agrees with our checks.

use crate::common::*;
use serde_json::json;

#[tokio::test]
async fn socket_mode_delivers_the_click_and_every_envelope_is_acknowledged() {
    let world = World::start().await.unwrap();
    world
        .slack
        .enable_socket_mode("xapp-1-emulated-app-token")
        .await
        .unwrap();
    let app = world
        .start_app_with(&[
            ("SLACK_TRANSPORT", "socket"),
            ("SLACK_APP_TOKEN", "xapp-1-emulated-app-token"),
        ])
        .await
        .unwrap();
    wait_for_approval_request(&world).await;
    world
        .slack
        .wait_until("the app's WebSocket", T, |s| !s.socket_senders.is_empty())
        .await
        .unwrap();

    // Slack asks for a reconnect, as it does every few hours; the app comes back.
    world.slack.socket_disconnect_all();
    world
        .slack
        .wait_until("a second connection", T, |s| {
            s.socket_connects >= 2 && s.socket_senders.iter().any(|t| !t.is_closed())
        })
        .await
        .unwrap();

    // The handler clicks Yes: the same block_actions payload, inside an `interactive` envelope.
    triage_bot::demo::wait_until_settled(&app, T).await.unwrap();
    let msg = top_level(&world).remove(0);
    let value = triage_bot::demo::button_value(&msg.blocks, ACTION_APPROVE).unwrap();
    let payload = emulators::slack::block_actions_payload(
        HANDLER_ID,
        "alice",
        CHANNEL,
        &msg.ts,
        ACTION_APPROVE,
        &value,
    );
    let envelope_id = world
        .slack
        .send_socket_envelope("interactive", payload)
        .unwrap();
    world
        .slack
        .wait_until("the ack", T, |s| {
            s.socket_acks
                .iter()
                .any(|a| a["envelope_id"] == envelope_id.as_str())
        })
        .await
        .unwrap();
    wait_for_state(&app, IncidentState::Executed, T)
        .await
        .unwrap();
    wait_for_batch_summary(&world).await;
    assert_eq!(world.winrm.executed().len(), COMMANDS.len());

    // A thread question as an `events_api` envelope.
    let ts = world.slack.add_user_message(
        CHANNEL,
        HANDLER_ID,
        "what did command 4 show?",
        Some(&msg.ts),
    );
    let event = emulators::slack::event_callback(emulators::slack::message_event(
        HANDLER_ID,
        CHANNEL,
        "what did command 4 show?",
        &ts,
        Some(&msg.ts),
    ));
    let id = world
        .slack
        .send_socket_envelope("events_api", event)
        .unwrap();
    wait_for_message(&world, "the answer in the thread", |m| {
        m.text.contains("asked: what did command 4 show?")
    })
    .await;
    assert!(
        world
            .slack
            .recorder()
            .read()
            .socket_acks
            .iter()
            .any(|a| a["envelope_id"] == id.as_str())
    );
    finish(&world, app).await;
}

#[tokio::test]
async fn requests_signed_by_slack_sdk_are_accepted_and_tampered_or_stale_ones_refused() {
    let world = World::start().await.unwrap();
    let app = world.start_app().await.unwrap();
    let out = emulators::pycheck::run_check(
        "slack_signature_check.py",
        &[
            format!("{}/slack/interactions", app.url()),
            SIGNING_SECRET.to_string(),
        ],
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(out.contains("'valid': 200"), "{out}");
    app.stop().await;
}

#[tokio::test]
async fn slack_rate_limits_are_waited_out_and_nothing_is_dropped() {
    let world = World::start().await.unwrap();
    // The approval post is throttled twice with Retry-After: 1.
    world.slack.rate_limit_next(2, 1);
    let app = world.start_app().await.unwrap();
    wait_for_approval_request(&world).await;
    let calls = world.slack.calls();
    let limited = calls
        .iter()
        .filter(|c| c.error.as_deref() == Some("ratelimited"))
        .count();
    assert_eq!(limited, 2);
    assert_eq!(top_level(&world).len(), 1, "posted once, after waiting");
    let _ = json!(null);
    finish(&world, app).await;
}

/// A Socket Mode connection that dies without closing (no frames, no pongs) is noticed by its
/// pings and replaced; meanwhile `/readyz` says why the service is not ready, and `/metrics`
/// counts the reconnect.
#[tokio::test]
async fn a_silently_dead_socket_is_detected_and_replaced() {
    let world = World::start().await.unwrap();
    let app = world
        .start_app_with(&[
            ("SLACK_TRANSPORT", "socket"),
            ("SLACK_APP_TOKEN", "xapp-1-emulated-app-token"),
            ("SLACK_SOCKET_PING_SECS", "0.2"),
        ])
        .await
        .unwrap();
    let readyz = || async {
        let r = reqwest::get(format!("{}/readyz", app.url())).await.unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    };
    // Socket Mode is not on in the workspace yet: the app cannot connect, and is not ready.
    let (status, why) = readyz().await;
    assert_eq!(status, 503);
    assert!(why.contains("Socket Mode disconnected"), "{why}");

    world
        .slack
        .enable_socket_mode("xapp-1-emulated-app-token")
        .await
        .unwrap();
    world
        .slack
        .wait_until("the app's WebSocket", T, |s| s.socket_connects >= 1)
        .await
        .unwrap();
    wait_for_approval_request(&world).await;
    wait_until_ready(&app).await;

    world.slack.silence_open_sockets();
    world
        .slack
        .wait_until("a new connection after the silent one", T, |s| {
            s.socket_connects >= 2
        })
        .await
        .unwrap();
    wait_until_ready(&app).await;
    let metrics = reqwest::get(format!("{}/metrics", app.url()))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("triage_bot_slack_socket_reconnects_total"),
        "{metrics}"
    );
    assert!(
        metrics.contains("triage_bot_slack_socket_connected 1"),
        "{metrics}"
    );
    app.stop().await;
}

/// Polls `/readyz` (the probe a load balancer would poll) until it answers 200.
async fn wait_until_ready(app: &triage_bot::app::RunningApp) {
    let deadline = tokio::time::Instant::now() + T;
    loop {
        let r = reqwest::get(format!("{}/readyz", app.url())).await.unwrap();
        let status = r.status().as_u16();
        let body = r.text().await.unwrap();
        if status == 200 {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never ready: {body}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// An alert source that keeps failing makes the service not ready, with the source named.
#[tokio::test]
async fn a_source_that_cannot_be_polled_makes_the_service_not_ready() {
    let world = World::start().await.unwrap();
    let app = world.start_app().await.unwrap();
    wait_until_ready(&app).await;
    world.es.fail_next(10_000, 503);
    let deadline = tokio::time::Instant::now() + T;
    loop {
        let r = reqwest::get(format!("{}/readyz", app.url())).await.unwrap();
        let status = r.status().as_u16();
        let body = r.text().await.unwrap();
        if status == 503 {
            assert!(body.contains("no successful poll of"), "{body}");
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "still ready");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    app.stop().await;
}
