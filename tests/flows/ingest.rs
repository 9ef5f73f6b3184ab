//! The operator's view of ingest: both alert indices are polled with their own severity rule, a
//! document that cannot be an alert is kept with its reason instead of being dropped, and
//! nothing is triaged twice.

use crate::common::*;
use serde_json::json;

#[tokio::test]
async fn an_elastic_defend_alert_is_picked_up_by_its_own_severity_and_time_fields() {
    let world = World::start().await.unwrap();
    // Drop the security alert: only the raw Defend alert should arrive.
    world.es.delete_doc(ALERT_INDEX, ALERT_ID);
    let now = chrono::Utc::now().to_rfc3339();
    let defend = |id: &str, severity: u64| {
        json!({
            "@timestamp": now, "message": "Malware Prevention Alert",
            "event": { "kind": "alert", "module": "endpoint", "dataset": "endpoint.alerts", "id": id,
                       "code": "malicious_file", "severity": severity, "risk_score": severity, "created": now },
            "rule": { "name": "Malicious file: odupd.exe", "id": "mal-001" },
            "agent": { "id": "2b1eb7f7-bd61-436a-98af-c2b182043476", "type": "endpoint" },
            "host": { "name": HOST, "hostname": HOST, "ip": ["10.20.4.42"], "os": { "family": "windows" } },
            "user": { "name": "jdoe" },
            "file": { "path": "C:\\ProgramData\\odu\\odupd.exe" }
        })
    };
    let index = ".ds-logs-endpoint.alerts-default-2025.03.04-000001";
    world
        .es
        .index_doc(index, "defend-critical", defend("evt-critical", 99));
    world
        .es
        .index_doc(index, "defend-high", defend("evt-high", 73));
    let app = world.start_app().await.unwrap();
    wait_for_approval_request(&world).await;

    let incidents = app.ctx.store.incidents().await.unwrap();
    assert_eq!(
        incidents.len(),
        1,
        "only the critical one (event.severity ≥ 99)"
    );
    let alert = incidents[0].alert().unwrap();
    assert_eq!(incidents[0].source, "endpoint_alerts");
    assert_eq!(alert.index, index);
    assert_eq!(alert.rule_name, "Malicious file: odupd.exe");
    assert_eq!(alert.severity, triage_bot::domain::Severity::Critical);
    let searched: Vec<serde_json::Value> = world.es.search_bodies();
    assert!(
        searched
            .iter()
            .any(|b| b.to_string().contains("\"event.severity\":{\"gte\":99")),
        "{searched:?}"
    );
    finish(&world, app).await;
}

#[tokio::test]
async fn a_malformed_alert_is_kept_with_its_reason_and_does_not_block_the_others() {
    let world = World::start().await.unwrap();
    let now = chrono::Utc::now().to_rfc3339();
    world.es.index_doc(
        ALERT_INDEX,
        "broken-1",
        json!({ "@timestamp": now, "kibana.alert.uuid": "broken-1", "kibana.alert.severity": "critical", "kibana.alert.rule.name": "No host here" }),
    );
    let app = world.start_app().await.unwrap();
    wait_for_approval_request(&world).await;
    let before = world.es.searches().len();
    world
        .es
        .wait_until("another poll", T, |s| s.searches.len() >= before + 2)
        .await
        .unwrap();

    let rejections = app.ctx.store.rejections().await.unwrap();
    assert_eq!(
        rejections,
        [(
            "broken-1".to_string(),
            "alert document has no `host.name` field".to_string()
        )]
    );
    assert_eq!(
        app.ctx.store.incidents().await.unwrap().len(),
        1,
        "the good alert is triaged"
    );
    finish(&world, app).await;
}

#[tokio::test]
async fn an_alert_storm_on_one_host_becomes_one_incident_with_every_alert_attached() {
    let world = World::start().await.unwrap();
    let app = world.start_app().await.unwrap();
    wait_for_approval_request(&world).await;
    triage_bot::demo::wait_until_settled(&app, T).await.unwrap();

    // The same rule fires twice more on the same host.
    for id in ["storm-2", "storm-3"] {
        let doc = triage_bot::samples::alert_document(id, &chrono::Utc::now().to_rfc3339());
        world.es.index_doc(ALERT_INDEX, id, doc);
    }
    world
        .slack
        .wait_until("two grouping notes", T, |s| {
            s.messages
                .iter()
                .filter(|m| m.text.contains("Another alert for this rule"))
                .count()
                == 2
        })
        .await
        .unwrap();
    let case = wait_for_record(&world, &app).await;

    assert_eq!(
        app.ctx.store.incidents().await.unwrap().len(),
        1,
        "one incident"
    );
    assert_eq!(top_level(&world).len(), 1, "one approval message");
    assert_eq!(
        world
            .kibana
            .calls()
            .iter()
            .filter(|c| !c.last_user_content.starts_with("Who handles"))
            .count(),
        1,
        "triaged once"
    );
    let attached: Vec<&str> = case["comments"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["type"] == "alert")
        .filter_map(|c| c["alertId"].as_str())
        .collect();
    assert_eq!(
        attached,
        [ALERT_ID, "storm-2", "storm-3"],
        "every alert of the incident attached"
    );
    let incident = app.ctx.store.incidents().await.unwrap().remove(0);
    assert_eq!(
        app.ctx
            .store
            .grouped_alerts(&incident.id)
            .await
            .unwrap()
            .len(),
        2
    );
    finish(&world, app).await;
}

#[tokio::test]
async fn without_a_grouping_window_every_alert_is_its_own_incident() {
    let world = World::start().await.unwrap();
    world.es.index_doc(
        ALERT_INDEX,
        "other-1",
        triage_bot::samples::alert_document("other-1", &chrono::Utc::now().to_rfc3339()),
    );
    let app = world
        .start_app_with(&[("POLICY_GROUP_WINDOW_SECS", "0")])
        .await
        .unwrap();
    world
        .slack
        .wait_until("two approval messages", T, |s| {
            s.messages.iter().filter(|m| m.thread_ts.is_none()).count() == 2
        })
        .await
        .unwrap();
    wait_for_record(&world, &app).await;
    assert_eq!(app.ctx.store.incidents().await.unwrap().len(), 2);
    assert_eq!(world.kibana.cases().len(), 2);
    finish(&world, app).await;
}

/// A document an attacker can shape — a file name with an unpaired UTF-16 surrogate escape, or
/// JSON nested hundreds deep — is kept in `ingest_rejections` with its id and reason, and the
/// good alert after it is still triaged: one document cannot blind the bot.
#[tokio::test]
async fn poison_documents_are_rejected_one_by_one_and_the_good_alert_still_arrives() {
    let world = World::start().await.unwrap();
    world.es.delete_doc(ALERT_INDEX, ALERT_ID);
    let earlier = (chrono::Utc::now() - chrono::Duration::seconds(30)).to_rfc3339();
    let now = chrono::Utc::now().to_rfc3339();
    // Queries match on a clean copy; `_source` goes out as the raw bytes Elasticsearch stored.
    let surrogate_doc = triage_bot::samples::alert_document("poison-surrogate", &earlier);
    let mut raw = surrogate_doc.to_string();
    raw = raw.replacen("odupd.exe", "odupd\\uD800.exe", 1);
    world
        .es
        .index_raw(ALERT_INDEX, "poison-surrogate", surrogate_doc, &raw);
    let deep_doc = triage_bot::samples::alert_document("poison-deep", &earlier);
    let mut raw = deep_doc.to_string();
    raw.pop(); // the closing brace
    raw.push_str(&format!(r#","x":{}{}}}"#, "[".repeat(600), "]".repeat(600)));
    world
        .es
        .index_raw(ALERT_INDEX, "poison-deep", deep_doc, &raw);
    world.es.index_doc(
        ALERT_INDEX,
        "good-after",
        triage_bot::samples::alert_document("good-after", &now),
    );
    let app = world
        .start_app_with(&[("POLICY_GROUP_WINDOW_SECS", "0")])
        .await
        .unwrap();

    // The lossy document is an alert (its name carries U+FFFD); the deep one is rejected.
    let rejected = {
        let deadline = tokio::time::Instant::now() + T;
        loop {
            let r = app.ctx.store.rejections().await.unwrap();
            if !r.is_empty() {
                break r;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no rejection recorded"
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    };
    assert_eq!(rejected.len(), 1, "{rejected:?}");
    assert_eq!(rejected[0].0, "poison-deep");
    assert!(rejected[0].1.contains("cannot be decoded"), "{rejected:?}");
    let deadline = tokio::time::Instant::now() + T;
    let incidents = loop {
        let incidents = app.ctx.store.incidents().await.unwrap();
        if incidents.len() >= 2 {
            break incidents;
        }
        assert!(tokio::time::Instant::now() < deadline, "{incidents:?}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    let ids: Vec<&str> = incidents.iter().map(|i| i.alert_id.as_str()).collect();
    assert!(
        ids.contains(&"good-after"),
        "the good alert is triaged: {ids:?}"
    );
    assert!(ids.contains(&"poison-surrogate"), "read lossily: {ids:?}");
    let lossy = incidents
        .iter()
        .find(|i| i.alert_id == "poison-surrogate")
        .unwrap();
    assert!(
        lossy.alert_json.contains("odupd\u{FFFD}.exe"),
        "{}",
        lossy.alert_json
    );
    app.stop().await;
}

/// An alert storm larger than one poll can read (here 120 alerts a millisecond apart, pages of 2,
/// at most 50 pages a poll): every alert is ingested over the following polls — the cursor goes
/// on where the last poll stopped instead of re-reading the same first pages.
#[tokio::test]
async fn a_storm_larger_than_one_poll_is_read_to_the_end() {
    storm_is_read_to_the_end(1).await;
}

/// The same storm with every alert at the same instant: pages of equal timestamps are told apart
/// by the tie-breaker, so none is skipped or read forever.
#[tokio::test]
async fn a_storm_of_equal_timestamps_is_read_to_the_end() {
    storm_is_read_to_the_end(0).await;
}

async fn storm_is_read_to_the_end(spacing_ms: i64) {
    let world = World::start().await.unwrap();
    world.es.delete_doc(ALERT_INDEX, ALERT_ID);
    let base = chrono::Utc::now() - chrono::Duration::seconds(10);
    let n = 120;
    for i in 0..n {
        let id = format!("storm-{i:03}");
        let at = (base + chrono::Duration::milliseconds(i * spacing_ms)).to_rfc3339();
        world.es.index_doc(
            ALERT_INDEX,
            &id,
            triage_bot::samples::alert_document(&id, &at),
        );
    }
    let app = world
        .start_app_with(&[
            ("POLL_BATCH_SIZE", "2"),
            ("POLICY_GROUP_WINDOW_SECS", "3600"),
        ])
        .await
        .unwrap();
    // Same rule, same host: one incident, every other alert grouped into it — none lost.
    let deadline = tokio::time::Instant::now() + T;
    loop {
        let incidents = app.ctx.store.incidents().await.unwrap();
        let grouped = match incidents.first() {
            Some(i) => app.ctx.store.grouped_alerts(&i.id).await.unwrap().len(),
            None => 0,
        };
        if incidents.len() + grouped == n as usize {
            assert_eq!(incidents.len(), 1);
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} of {n} alerts ingested",
            incidents.len() + grouped
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    app.stop().await;
}
