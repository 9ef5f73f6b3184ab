//! The operator's view of which alerts are triaged: a severity threshold, rule names, rule tags
//! and the workflow status, all applied in the Elasticsearch query, and a backfill start time.

use crate::common::*;
use serde_json::{Value, json};

fn alert(id: &str, at: &str, change: impl FnOnce(&mut Value)) -> Value {
    let mut doc = triage_bot::samples::alert_document(id, at);
    change(&mut doc);
    doc
}

#[tokio::test]
async fn only_alerts_meeting_every_condition_are_triaged_and_a_backfill_reaches_back() {
    let world = World::start().await.unwrap();
    let now = chrono::Utc::now().to_rfc3339();
    let three_days_ago = (chrono::Utc::now() - chrono::Duration::days(3)).to_rfc3339();
    let four_days_ago = (chrono::Utc::now() - chrono::Duration::days(4)).to_rfc3339();
    let docs = [
        alert("high-open", &now, |d| {
            d["kibana.alert.severity"] = json!("high")
        }),
        alert("medium-open", &now, |d| {
            d["kibana.alert.severity"] = json!("medium")
        }),
        alert("high-closed", &now, |d| {
            d["kibana.alert.severity"] = json!("high");
            d["kibana.alert.workflow_status"] = json!("closed");
        }),
        alert("other-rule", &now, |d| {
            d["kibana.alert.rule.name"] = json!("Something else")
        }),
        alert("untagged", &now, |d| {
            d["kibana.alert.rule.tags"] = json!(["OS: Linux"])
        }),
        alert("old-critical", &three_days_ago, |_| {}),
    ];
    for doc in docs {
        let id = doc["kibana.alert.uuid"].as_str().unwrap().to_string();
        world.es.index_doc(ALERT_INDEX, &id, doc);
    }
    let app = world
        .start_app_with(&[
            ("ALERT_SEVERITY", "high"),
            (
                "ALERT_RULE_NAMES",
                "Registry Run Key Set by WMI Provider Host, Another rule",
            ),
            ("ALERT_RULE_TAGS", "OS: Windows"),
            ("ALERT_WORKFLOW_STATUS", "open"),
            ("POLL_START_TIME", &four_days_ago),
            ("POLICY_GROUP_WINDOW_SECS", "0"),
            ("ENDPOINT_ALERTS_INDEX", "-"),
        ])
        .await
        .unwrap();
    let incidents = wait_for_incidents(&app, IncidentState::AwaitingApproval, 3, T)
        .await
        .unwrap();
    assert_eq!(incidents.len(), 3);
    // Two more polls: nothing else arrives.
    let before = world.es.searches().len();
    world
        .es
        .wait_until("two more polls", T, |s| s.searches.len() >= before + 2)
        .await
        .unwrap();
    let mut ids: Vec<String> = app
        .ctx
        .store
        .incidents()
        .await
        .unwrap()
        .into_iter()
        .map(|i| i.alert_id)
        .collect();
    ids.sort();
    let mut want = vec![
        ALERT_ID.to_string(),
        "high-open".into(),
        "old-critical".into(),
    ];
    want.sort();
    assert_eq!(ids, want);
    // Filtered by Elasticsearch, not after reading: the query carries every condition.
    let body = world.es.search_bodies().remove(0);
    let filters = body["query"]["bool"]["filter"].to_string();
    for clause in [
        r#"{"terms":{"kibana.alert.severity":["high","critical"]}}"#,
        r#"{"terms":{"kibana.alert.rule.name":["Registry Run Key Set by WMI Provider Host","Another rule"]}}"#,
        r#"{"terms":{"kibana.alert.rule.tags":["OS: Windows"]}}"#,
        r#"{"terms":{"kibana.alert.workflow_status":["open"]}}"#,
    ] {
        assert!(filters.contains(clause), "{clause} not in {filters}");
    }
    let metrics = metrics_page(&app).await;
    assert!(
        metrics.contains("triage_bot_alerts_ingested_total{source=\"security_alerts\"}"),
        "{metrics}"
    );
    app.stop().await;
}
