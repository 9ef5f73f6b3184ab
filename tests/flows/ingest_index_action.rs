//! The operator's view of the index-action worker: a Kibana rule's Index connector writes one
//! document per action run into an index (`rule.name`, `@timestamp`, `context.hits` as an array
//! or as the string `"[{{context.hits}}]"` renders to); each hit becomes an alert named after the
//! rule. A document whose hits cannot be read is kept with its reason and never stops the cursor;
//! a restart goes on where the last recorded page ended, without triaging anything twice.

use crate::common::*;
use serde_json::{Value, json};
use triage_bot::cli::index_action::{IndexActionArgs, settings};

const ACTIONS: &str = "triage-bot-actions";

/// A search hit as `{{context.hits}}` hands it on: an event of a Windows host.
fn hit(id: &str, host: &str, at: &str) -> Value {
    json!({ "_id": id, "_index": ".ds-logs-system.security-default-000001", "_score": 1.0, "_source": {
        "@timestamp": at, "event": { "id": id, "code": "4625", "severity": 99 },
        "host": { "name": host, "os": { "family": "windows" }, "ip": ["10.20.4.42"] },
        "user": { "name": "jdoe" }, "message": "An account failed to log on"
    }})
}

/// The document the printed rule action writes (`setup kibana-connector --kind index`).
fn action_doc(key: &str, at: &str, hits: Value) -> Value {
    json!({ "@timestamp": at, "rule.name": "Brute force on a workstation", "rule.id": "r-1",
            "triage_bot": { "key": key }, "context.hits": hits })
}

fn ago(secs: i64) -> String {
    (chrono::Utc::now() - chrono::Duration::seconds(secs)).to_rfc3339()
}

fn worker_env() -> Vec<(&'static str, &'static str)> {
    vec![
        ("INDEX_ACTION_INDEX", ACTIONS),
        ("INDEX_ACTION_INTERVAL_SECS", "0.2"),
        ("POLICY_GROUP_WINDOW_SECS", "0"),
    ]
}

async fn wait_for_incident_count(
    app: &triage_bot::app::RunningApp,
    n: usize,
) -> Vec<triage_bot::store::IncidentRow> {
    let deadline = tokio::time::Instant::now() + T;
    loop {
        let incidents = app.ctx.store.incidents().await.unwrap();
        if incidents.len() >= n {
            return incidents;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} of {n} incidents",
            incidents.len()
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn hits_as_an_array_and_as_a_json_string_become_alerts_named_after_the_rule() {
    let world = World::start().await.unwrap();
    world.es.delete_doc(ALERT_INDEX, ALERT_ID);
    world.es.index_doc(
        ACTIONS,
        "a1",
        action_doc("k1", &ago(20), json!([hit("evt-1", "WS-A", &ago(25))])),
    );
    // What "[{{context.hits}}]" renders: the hits joined by commas, in a string — here with the
    // trailing comma a hand-written template can leave.
    let text = format!(
        "[{},{},]",
        hit("evt-2", "WS-B", &ago(15)),
        hit("evt-3", "WS-C", &ago(15))
    );
    world
        .es
        .index_doc(ACTIONS, "a2", action_doc("k2", &ago(10), json!(text)));
    let app = world.start_app_with(&worker_env()).await.unwrap();
    let incidents = wait_for_incident_count(&app, 3).await;
    let ids: Vec<&str> = incidents.iter().map(|i| i.alert_id.as_str()).collect();
    assert_eq!(ids.len(), 3);
    for id in ["evt-1", "evt-2", "evt-3"] {
        assert!(ids.contains(&id), "{ids:?}");
    }
    for i in &incidents {
        assert_eq!(i.source, "index_action");
        let alert = i.alert().unwrap();
        assert_eq!(alert.rule_name, "Brute force on a workstation");
        assert_eq!(alert.index, ".ds-logs-system.security-default-000001");
    }
    wait_for_approval_request(&world).await;
    assert!(app.ctx.store.rejections().await.unwrap().is_empty());
    // The worker's query: time and tie-breaker, nothing about severity.
    let searched = world.es.search_bodies();
    let ours = searched
        .iter()
        .find(|b| b.to_string().contains("triage_bot.key.keyword"))
        .unwrap();
    assert_eq!(ours["sort"][0]["@timestamp"]["order"], "asc", "{ours}");
    finish(&world, app).await;
}

#[tokio::test]
async fn a_document_whose_hits_cannot_be_read_is_kept_and_the_next_one_still_arrives() {
    let world = World::start().await.unwrap();
    world.es.delete_doc(ALERT_INDEX, ALERT_ID);
    world.es.index_doc(
        ACTIONS,
        "bad-1",
        action_doc(
            "k1",
            &ago(20),
            json!("[{\"_id\": \"evt-x\", \"_source\": {"),
        ),
    );
    world
        .es
        .index_doc(ACTIONS, "bad-2", action_doc("k2", &ago(15), json!(42)));
    world.es.index_doc(
        ACTIONS,
        "good-3",
        action_doc("k3", &ago(10), json!([hit("evt-ok", "WS-A", &ago(12))])),
    );
    let app = world
        .start_app_with(&[worker_env(), vec![("INDEX_ACTION_BATCH_SIZE", "1")]].concat())
        .await
        .unwrap();
    let incidents = wait_for_incident_count(&app, 1).await;
    assert_eq!(incidents[0].alert_id, "evt-ok");
    let mut rejections = app.ctx.store.rejections().await.unwrap();
    rejections.sort();
    assert_eq!(rejections.len(), 2, "{rejections:?}");
    assert_eq!(rejections[0].0, "bad-1");
    assert!(
        rejections[0].1.starts_with(
            "index-action document: `context.hits`: not a JSON array of hits: EOF while parsing"
        ),
        "{rejections:?}"
    );
    assert_eq!(rejections[1].0, "bad-2");
    assert!(
        rejections[1].1.contains("is a number, not an array"),
        "{rejections:?}"
    );
    // The cursor moves past all three (pages of one; the checkpoint is saved just after the
    // page's alerts are recorded): nothing is read again from the start.
    let deadline = tokio::time::Instant::now() + T;
    loop {
        let checkpoint = app.ctx.store.checkpoint("index_action").await.unwrap();
        let key = checkpoint.and_then(|(_, c)| c).map(|c| c[1].clone());
        if key == Some(json!("k3")) {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "cursor at {key:?}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    finish(&world, app).await;
}

/// A crash after a page's alerts were recorded but before its checkpoint: the next run reads that
/// page again, finds its alerts already seen, and goes on — every hit once, none lost.
#[tokio::test]
async fn a_restart_mid_page_resumes_without_duplicates() {
    let world = World::start().await.unwrap();
    world.es.delete_doc(ALERT_INDEX, ALERT_ID);
    for i in 0..5 {
        let at = ago(50 - i * 5);
        let id = format!("evt-{i}");
        world.es.index_doc(
            ACTIONS,
            &format!("doc-{i}"),
            action_doc(
                &format!("k{i}"),
                &at,
                json!([hit(&id, &format!("WS-{i}"), &at)]),
            ),
        );
    }
    let env = world.env();
    let lookup = |k: &str| match k {
        "POLICY_GROUP_WINDOW_SECS" => Some("0".to_string()),
        _ => env.get(k).cloned(),
    };
    // The flags stand in for the variables.
    let args = IndexActionArgs {
        index: Some(ACTIONS.into()),
        size: Some(2),
        start_time: Some(ago(3600)),
        interval: Some(0.2),
    };
    let s = settings(&args, &lookup).unwrap();
    let action = s.intake.index_action.clone().unwrap();
    assert_eq!(
        (action.source.index.as_str(), action.source.batch_size),
        (ACTIONS, 2)
    );
    assert_eq!(action.interval, std::time::Duration::from_millis(200));

    // First run: page one recorded and checkpointed, page two recorded, then the crash.
    {
        let ctx = triage_bot::app::build_ctx(s.clone(), None).await.unwrap();
        let mut poll =
            triage_bot::pipeline::ingest::es_alerts::SourcePoll::start(&ctx, &action.source)
                .await
                .unwrap();
        let page = poll.next_page(&ctx).await.unwrap().unwrap();
        triage_bot::workers::intake::accept(&ctx, &action.source.name, &page.alerts)
            .await
            .unwrap();
        poll.checkpoint(&ctx, &page).await.unwrap();
        let page = poll.next_page(&ctx).await.unwrap().unwrap();
        let stats = triage_bot::workers::intake::accept(&ctx, &action.source.name, &page.alerts)
            .await
            .unwrap();
        assert_eq!(stats.new, 2);
        ctx.store.pool.close().await;
    }
    // The restart.
    let ctx = triage_bot::app::build_ctx(s, None).await.unwrap();
    let stats = triage_bot::workers::intake::poll_source(&ctx, &action.source)
        .await
        .unwrap();
    assert_eq!(stats.new, 1, "only the hit never recorded: {stats:?}");
    assert!(stats.duplicates >= 2, "page two read again: {stats:?}");
    let incidents = ctx.store.incidents().await.unwrap();
    let mut ids: Vec<&str> = incidents.iter().map(|i| i.alert_id.as_str()).collect();
    ids.sort();
    assert_eq!(ids, ["evt-0", "evt-1", "evt-2", "evt-3", "evt-4"]);
    // Settings without an index are refused with the fix.
    let e = settings(&IndexActionArgs::default(), &|k| env.get(k).cloned()).unwrap_err();
    assert!(e.to_string().contains("--index"), "{e}");
}
