//! The analyst's view of enrichment (`ENRICHMENT_ENABLED`): the AI is told — fenced as untrusted
//! data — how many other alerts the host and the user had in the last 24 hours, from which rules,
//! and which open cases name the host; the Slack card says the same in one line.

use crate::common::*;
use serde_json::json;
use triage_bot::clients::kibana::KibanaHttp;
use triage_bot::clients::kibana::cases::{CasesClient, NewCase};

#[tokio::test]
async fn the_prompt_and_the_card_carry_what_else_happened_on_the_host_and_to_the_user() {
    let world = World::start().await.unwrap();
    let recent = (chrono::Utc::now() - chrono::Duration::hours(2)).to_rfc3339();
    let old = (chrono::Utc::now() - chrono::Duration::hours(30)).to_rfc3339();
    // High, not critical: not triaged themselves, but known.
    let other = |id: &str, host: &str, rule: &str, at: &str| {
        let mut d = triage_bot::samples::alert_document(id, at);
        d["kibana.alert.severity"] = json!("high");
        d["kibana.alert.rule.name"] = json!(rule);
        d["host"]["name"] = json!(host);
        d
    };
    world.es.index_doc(
        ALERT_INDEX,
        "other-1",
        other("other-1", HOST, "Rule B", &recent),
    );
    world.es.index_doc(
        ALERT_INDEX,
        "other-2",
        other("other-2", HOST, "Rule C", &recent),
    );
    world.es.index_doc(
        ALERT_INDEX,
        "other-3",
        other("other-3", "WS-OTHER", "Rule B", &recent),
    );
    world
        .es
        .index_doc(ALERT_INDEX, "old-1", other("old-1", HOST, "Rule D", &old));
    let settings = world
        .settings_with(&[("ENRICHMENT_ENABLED", "true")])
        .unwrap();
    let cases = CasesClient::new(KibanaHttp::new(&settings.kibana).unwrap());
    let earlier = cases
        .create(NewCase {
            title: format!("Earlier incident on {HOST}"),
            description: "Lateral movement seen last week".into(),
            tags: vec![],
            severity: triage_bot::domain::Severity::High,
            category: None,
            assignee: None,
        })
        .await
        .unwrap();
    let app = triage_bot::app::App::start(settings, None).await.unwrap();
    wait_for_approval_request(&world).await;

    let prompt = world
        .kibana
        .calls()
        .into_iter()
        .map(|c| c.last_user_content)
        .find(|c| c.contains("BEGIN ALERT"))
        .unwrap();
    let context = prompt
        .split("BEGIN CONTEXT (untrusted data)")
        .nth(1)
        .expect("context in the prompt");
    let context = context.split("END CONTEXT").next().unwrap();
    assert!(context.contains("\"alerts\": 2"), "{context}");
    assert!(context.contains("\"alerts\": 3"), "{context}");
    assert!(
        context.contains("Rule B") && context.contains("Rule C"),
        "{context}"
    );
    assert!(
        !context.contains("Rule D"),
        "older than the window: {context}"
    );
    assert!(context.contains(&earlier.id), "{context}");

    let card = top_level(&world).remove(0);
    let line = format!(
        ":mag: Last 24h: 2 other alert(s) on {HOST} (Rule B, Rule C) · 3 other alert(s) for user SYSTEM (Rule B, Rule C) · open cases naming the host: <{}|Earlier incident on {HOST}>",
        app.ctx.settings.kibana.case_url(&earlier.id)
    );
    let context_lines: Vec<&str> = card
        .blocks
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| b["type"] == "context")
        .filter_map(|b| b["elements"][0]["text"].as_str())
        .collect();
    assert!(context_lines.contains(&line.as_str()), "{context_lines:?}");
    // Recorded: a retried triage asks with the same context.
    let incident = app.ctx.store.incidents().await.unwrap().remove(0);
    assert!(
        app.ctx
            .store
            .enrichment(&incident.id)
            .await
            .unwrap()
            .is_some()
    );
    finish(&world, app).await;
}
