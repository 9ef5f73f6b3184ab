//! The SOC lead's dashboards: after one incident runs through, `/metrics` (on its own address
//! with `METRICS_BIND`, not beside the public Slack endpoints) holds the latency histograms —
//! alert → card, AI calls, time to decision, command durations — the poll gauge and build info.

use crate::common::*;

#[tokio::test]
async fn metrics_are_served_on_their_own_address_with_the_latency_histograms() {
    let world = World::start().await.unwrap();
    let app = world
        .start_app_with(&[("METRICS_BIND", "127.0.0.1:0")])
        .await
        .unwrap();
    wait_for_approval_request(&world).await;
    world.click(&app, HANDLER_ID, ACTION_APPROVE).await.unwrap();
    wait_for_state(&app, IncidentState::Executed, T)
        .await
        .unwrap();
    triage_bot::demo::wait_until_settled(&app, T).await.unwrap();

    let public = reqwest::get(format!("{}/metrics", app.url()))
        .await
        .unwrap();
    assert_eq!(
        public.status().as_u16(),
        404,
        "not beside the Slack endpoints"
    );
    let addr = app.metrics_addr.expect("a metrics listener");
    let text = reqwest::get(format!("http://{addr}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for series in [
        "triage_bot_alert_to_card_seconds_bucket",
        "triage_bot_ai_call_seconds_bucket{backend=\"kibana\",outcome=\"ok\"",
        "triage_bot_time_to_decision_seconds_bucket{decision=\"approved\"",
        "triage_bot_command_seconds_bucket{runner=\"winrm\"",
        "triage_bot_time_to_acknowledge_seconds_bucket{le=\"86400\"}",
        "triage_bot_time_to_respond_seconds_bucket{outcome=\"executed\"",
        "triage_bot_last_successful_poll_timestamp_seconds{source=\"security_alerts\"}",
        "triage_bot_build_info{version=",
    ] {
        assert!(text.contains(series), "{series} missing from:\n{text}");
    }
    finish(&world, app).await;
}
