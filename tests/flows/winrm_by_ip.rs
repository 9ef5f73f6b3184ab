//! A SOC without DNS for every workstation: the WinRM endpoint is built from the alert's host
//! address (`{ip}` in `WINRM_ENDPOINT_TEMPLATE`, chosen inside `WINRM_IP_NETWORKS`), and the
//! Slack message and the case say which address the commands ran against.

use crate::common::*;

#[tokio::test]
async fn commands_run_against_the_alerts_address_and_the_record_says_which() {
    let world = World::start().await.unwrap();
    // The host has a public address first and its management address on loopback (where the
    // emulated host listens); only the latter is inside the configured networks.
    let mut doc = triage_bot::samples::alert_document(ALERT_ID, &chrono::Utc::now().to_rfc3339());
    doc["host"]["ip"] = serde_json::json!(["203.0.113.7", "fe80::1", "127.0.0.1"]);
    world.es.index_doc(ALERT_INDEX, ALERT_ID, doc);
    let port = world.winrm.addr().port();
    let template = format!("http://{{ip}}:{port}/wsman");
    let endpoint = format!("http://127.0.0.1:{port}/wsman");
    let app = world
        .start_app_with(&[
            ("WINRM_HOST_MAP", ""),
            ("WINRM_ENDPOINT_TEMPLATE", &template),
            ("WINRM_IP_NETWORKS", "127.0.0.0/8, 10.0.0.0/8"),
        ])
        .await
        .unwrap();

    wait_for_approval_request(&world).await;
    let msg = top_level(&world).remove(0);
    let text = all_text(&msg.blocks);
    assert!(
        text.contains(&format!("*Runs on:* {HOST} — WinRM at {endpoint}")),
        "{text}"
    );
    world.click(&app, HANDLER_ID, ACTION_APPROVE).await.unwrap();
    wait_for_state(&app, IncidentState::Executed, T)
        .await
        .unwrap();
    assert_eq!(world.winrm.executed().len(), COMMANDS.len());
    let case = wait_for_case_description(&world, "| Commands run via |").await;
    let description = case["description"].as_str().unwrap();
    assert!(
        description.contains(&format!("| Commands run via | WinRM at {endpoint} |")),
        "{description}"
    );
    finish(&world, app).await;
}
