//! The operator's view of the Kibana webhook push: a Kibana Webhook connector posts a rule's
//! alerts to `/api/webhook/kibana` with the shared secret; they are triaged like polled alerts,
//! exactly once whichever path brought them first. Refusals say why, with the right status.

use crate::common::*;
use serde_json::{Value, json};

const SECRET: &str = "push-secret-0123456789";
const HEADER: &str = "X-Triage-Bot-Token";

fn webhook_env() -> Vec<(&'static str, &'static str)> {
    vec![
        ("KIBANA_WEBHOOK_SECRET", SECRET),
        ("KIBANA_WEBHOOK_MAX_BYTES", "65536"),
        ("POLICY_GROUP_WINDOW_SECS", "0"),
    ]
}

/// What `{{{context.alerts}}}` renders for one alert: the alert document with `_id`/`_index`.
fn pushed_alert(id: &str) -> Value {
    let mut doc = triage_bot::samples::alert_document(id, &chrono::Utc::now().to_rfc3339());
    doc["_id"] = json!(id);
    doc["_index"] = json!(ALERT_INDEX);
    doc
}

async fn push(
    app: &triage_bot::app::RunningApp,
    token: Option<&str>,
    body: impl Into<reqwest::Body>,
) -> (u16, Value) {
    let mut req = reqwest::Client::new()
        .post(format!("{}/api/webhook/kibana", app.url()))
        .header("content-type", "application/json")
        .body(body);
    if let Some(token) = token {
        req = req.header(HEADER, token);
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    let text = res.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(json!(text)))
}

#[tokio::test]
async fn a_push_without_the_secret_is_refused_and_too_large_or_malformed_bodies_say_why() {
    let world = World::start().await.unwrap();
    // Off unless a secret is configured.
    let app = world.start_app().await.unwrap();
    let (status, _) = push(&app, Some(SECRET), json!([]).to_string()).await;
    assert_eq!(status, 404);
    app.stop().await;

    let app = world.start_app_with(&webhook_env()).await.unwrap();
    let good = json!({ "alerts": [pushed_alert("pushed-x")] }).to_string();
    let (status, body) = push(&app, None, good.clone()).await;
    assert_eq!(status, 401, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("missing"),
        "{body}"
    );
    let (status, body) = push(&app, Some("push-secret-wrong"), good.clone()).await;
    assert_eq!(status, 401, "{body}");
    assert!(!body.to_string().contains(SECRET));

    let huge = json!({ "alerts": [pushed_alert("big")], "pad": "x".repeat(70_000) }).to_string();
    let (status, body) = push(&app, Some(SECRET), huge).await;
    assert_eq!(status, 413, "{body}");
    assert!(body["error"].as_str().unwrap().contains("65536"), "{body}");

    let (status, body) = push(&app, Some(SECRET), "{\"alerts\": [{\"a\": 1}".to_string()).await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .starts_with("the body is not valid JSON: EOF while parsing"),
        "{body}"
    );
    let (status, body) = push(&app, Some(SECRET), json!({ "hello": 1 }).to_string()).await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("no `context.hits`"),
        "{body}"
    );

    // None of that made an incident; the refused bodies are on record with their reasons.
    let rejections = app.ctx.store.rejections().await.unwrap();
    assert_eq!(rejections.len(), 2, "{rejections:?}");
    assert!(rejections.iter().any(|(_, r)| r.contains("not valid JSON")));
    let incidents = app.ctx.store.incidents().await.unwrap();
    assert!(
        incidents.iter().all(|i| i.alert_id == ALERT_ID),
        "{incidents:?}"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_pushed_alert_becomes_an_incident_with_its_card_and_a_repeat_push_is_ignored() {
    let world = World::start().await.unwrap();
    world.es.delete_doc(ALERT_INDEX, ALERT_ID);
    let app = world.start_app_with(&webhook_env()).await.unwrap();
    // One good alert and one that cannot be an alert: the bad one is kept, the good one goes on.
    let mut broken = pushed_alert("pushed-broken");
    broken.as_object_mut().unwrap().remove("host");
    let body = json!({ "alerts": [pushed_alert("pushed-1"), broken] }).to_string();
    let (status, answer) = push(&app, Some(SECRET), body.clone()).await;
    assert_eq!(status, 202, "{answer}");
    assert_eq!(answer["new"], 1, "{answer}");
    assert_eq!(answer["rejected"][0]["id"], "pushed-broken", "{answer}");
    // Persisted before the answer: the incident is there already.
    let incidents = app.ctx.store.incidents().await.unwrap();
    assert_eq!(incidents.len(), 1);
    assert_eq!(incidents[0].alert_id, "pushed-1");
    assert_eq!(incidents[0].source, "kibana_webhook");
    wait_for_approval_request(&world).await;

    // Kibana retries (or the rule fires again with the same alert): nothing new.
    let (status, answer) = push(&app, Some(SECRET), body).await;
    assert_eq!(status, 202, "{answer}");
    assert_eq!(answer["new"], 0, "{answer}");
    assert_eq!(answer["duplicates"], 1, "{answer}");
    triage_bot::demo::wait_until_settled(&app, T).await.unwrap();
    assert_eq!(app.ctx.store.incidents().await.unwrap().len(), 1);
    assert_eq!(top_level(&world).len(), 1, "one approval card");
    let rejections = app.ctx.store.rejections().await.unwrap();
    assert_eq!(rejections.len(), 1, "{rejections:?}");
    assert!(rejections[0].1.contains("host.name"), "{rejections:?}");
    let metrics = metrics_page(&app).await;
    assert!(
        metrics.contains("triage_bot_alerts_ingested_total{source=\"kibana_webhook\"}"),
        "{metrics}"
    );
    finish(&world, app).await;
}

#[tokio::test]
async fn an_alert_that_arrives_by_poll_and_by_push_is_triaged_once() {
    let world = World::start().await.unwrap();
    let app = world.start_app_with(&webhook_env()).await.unwrap();
    // Poll first: the seeded alert is polled, then Kibana pushes the same alert.
    wait_for_approval_request(&world).await;
    let (status, answer) = push(
        &app,
        Some(SECRET),
        json!([pushed_alert(ALERT_ID)]).to_string(),
    )
    .await;
    assert_eq!(status, 202, "{answer}");
    assert_eq!(answer["duplicates"], 1, "{answer}");

    // Push first: a new alert is pushed, then it shows up in the alert index too.
    let (status, answer) = push(
        &app,
        Some(SECRET),
        json!({ "alerts": [pushed_alert("both-ways")] }).to_string(),
    )
    .await;
    assert_eq!((status, answer["new"].clone()), (202, json!(1)), "{answer}");
    let doc = triage_bot::samples::alert_document("both-ways", &chrono::Utc::now().to_rfc3339());
    world.es.index_doc(ALERT_INDEX, "both-ways", doc);
    // Wait until the poll has certainly read and handed it on: the source's cursor is past it.
    let deadline = tokio::time::Instant::now() + T;
    loop {
        let checkpoint = app.ctx.store.checkpoint("security_alerts").await.unwrap();
        let key = checkpoint.and_then(|(_, c)| c).map(|c| c[1].clone());
        if key == Some(json!("both-ways")) {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "cursor at {key:?}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    triage_bot::demo::wait_until_settled(&app, T).await.unwrap();
    let incidents = app.ctx.store.incidents().await.unwrap();
    let ids: Vec<&str> = incidents.iter().map(|i| i.alert_id.as_str()).collect();
    assert_eq!(ids, [ALERT_ID, "both-ways"]);
    assert_eq!(top_level(&world).len(), 2, "one card per alert");
    finish(&world, app).await;
}

/// The other body a rule can send: `rule.name` with its search hits (here as the string a
/// `"[{{context.hits}}]"` template renders); each hit is an alert named after the rule.
#[tokio::test]
async fn a_push_of_rule_hits_becomes_alerts_named_after_the_rule() {
    let world = World::start().await.unwrap();
    world.es.delete_doc(ALERT_INDEX, ALERT_ID);
    let app = world.start_app_with(&webhook_env()).await.unwrap();
    let now = chrono::Utc::now().to_rfc3339();
    let hit = json!({ "_id": "evt-9", "_index": ".ds-logs-system.security-default-000001", "_source": {
        "@timestamp": now, "event": { "severity": 99 }, "user": { "name": "jdoe" },
        "host": { "name": HOST, "os": { "family": "windows" } }
    }});
    let body =
        json!({ "rule.name": "Odd logons", "rule.id": "r-7", "context.hits": format!("[{hit},]") });
    let (status, answer) = push(&app, Some(SECRET), body.to_string()).await;
    assert_eq!((status, answer["new"].clone()), (202, json!(1)), "{answer}");
    let incident = app.ctx.store.incidents().await.unwrap().remove(0);
    let alert = incident.alert().unwrap();
    assert_eq!(
        (
            alert.id.0.as_str(),
            alert.rule_name.as_str(),
            alert.rule_id.as_deref()
        ),
        ("evt-9", "Odd logons", Some("r-7"))
    );
    wait_for_approval_request(&world).await;
    finish(&world, app).await;
}
