//! The operator's view of action policies: a policy file decides, per alert, whether someone is
//! paged, in which channel and with what on offer; noisy hosts go into a digest; Kibana's
//! maintenance windows are honoured; and every alert read leaves one dispatch outcome, in the
//! database and in the outcome index, that says why.

use crate::common::*;
use triage_bot::pipeline::approval::blocks::{ACTION_EDIT, EDIT_CALLBACK};

const POLICIES: &str = r#"
[[policy]]
name = "scanners"
match = 'host.name: scan-*'
notify = "digest"
window = "2s"

[[policy]]
name = "hosts"
match = 'kibana.alert.severity: "critical"'
notify = "group"
group_by = ["host.name"]
window = "1h"
frequency = "on_status_change"
[policy.route]
channel = "C0ROUTED"
offer = "summary"
"#;

const OUTCOMES: &str = "triage-bot-dispatch-outcomes";

#[tokio::test]
async fn a_policy_file_routes_groups_digests_suppresses_and_records_why() {
    let world = World::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("policies.toml");
    std::fs::write(&file, POLICIES).unwrap();
    // The sample alert on HOST, two more on HOST, three on scanners, one in a Kibana window.
    for id in ["h-2", "h-3"] {
        index_alert_on(&world, id, HOST);
    }
    for (id, host) in [("s-1", "scan-1"), ("s-2", "scan-1"), ("s-3", "scan-2")] {
        index_alert_on(&world, id, host);
    }
    index_alert_on(&world, "mw-1", "mw-host");
    world
        .kibana
        .add_maintenance_window("mw-a", "SQL upgrade", "running", Some("host.name: mw-*"));
    world
        .kibana
        .add_maintenance_window("mw-b", "last week", "finished", None);
    let app = world
        .start_app_with(&[
            ("POLICY_FILE", file.to_str().unwrap()),
            ("DISPATCH_OUTCOME_INDEX", OUTCOMES),
        ])
        .await
        .unwrap();

    // One card, in the policy's channel, summary only: no commands, no buttons.
    world
        .slack
        .wait_until("the card and the digest", T, |s| {
            s.messages.iter().filter(|m| m.thread_ts.is_none()).count() == 2
        })
        .await
        .unwrap();
    let top = top_level(&world);
    let card = top
        .iter()
        .find(|m| m.channel == "C0ROUTED")
        .expect("routed card");
    assert!(!block_types(&card.blocks).contains(&"actions".to_string()));
    assert!(
        all_text(&card.blocks).contains("Summary only"),
        "{}",
        card.blocks
    );
    for (command, _) in COMMANDS {
        assert!(
            !all_text(&card.blocks).contains(command),
            "{command} offered"
        );
    }
    let digest = top.iter().find(|m| m.channel == CHANNEL).expect("digest");
    let text = all_text(&digest.blocks);
    assert!(text.contains("3 alerts"), "{text}");
    assert!(
        text.contains("scan-1 — 2") && text.contains("scan-2 — 1"),
        "{text}"
    );
    assert!(!block_types(&digest.blocks).contains(&"actions".to_string()));

    // Every alert has its outcome, in the database and in the index.
    world
        .es
        .wait_until("7 outcomes indexed", T, |s| {
            s.indices.get(OUTCOMES).is_some_and(|d| d.len() == 7)
        })
        .await
        .unwrap();
    let mut counts = app.ctx.store.outcome_counts().await.unwrap();
    counts.sort();
    assert_eq!(
        counts,
        [
            ("dispatched".to_string(), 4),
            ("suppressed".to_string(), 1),
            ("throttled".to_string(), 2),
        ]
    );
    let held = app.ctx.store.outcomes_for_alert("mw-1").await.unwrap();
    assert_eq!(held[0].outcome, "suppressed");
    assert!(held[0].reason.contains("SQL upgrade"), "{}", held[0].reason);
    let indexed = world.es.recorder().read().indices[OUTCOMES].clone();
    let doc = indexed
        .iter()
        .map(|d| &d.source)
        .find(|d| d["kibana"]["alert"]["uuid"] == "mw-1")
        .expect("mw-1 indexed");
    assert_eq!(doc["outcome"], "suppressed");
    assert_eq!(doc["policy"], "hosts");
    assert_eq!(doc["host"]["name"], "mw-host");

    // One incident for HOST, both later alerts attached to it.
    let incidents = app.ctx.store.incidents().await.unwrap();
    assert_eq!(incidents.len(), 1);
    assert_eq!(
        app.ctx
            .store
            .grouped_alerts(&incidents[0].id)
            .await
            .unwrap()
            .len(),
        2
    );
    finish(&world, app).await;
}

#[tokio::test]
async fn kibana_without_the_maintenance_window_api_leaves_the_local_schedules() {
    let world = World::start().await.unwrap();
    world.kibana.maintenance_api_answers(404);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("policies.toml");
    let now = chrono::Utc::now();
    let local = format!(
        "[[policy]]\nname = \"all\"\nmatch = '*'\nnotify = \"episode\"\n\n[[maintenance]]\nname = \"now\"\nstart = \"{}\"\nend = \"{}\"\n",
        (now - chrono::Duration::minutes(5)).to_rfc3339(),
        (now + chrono::Duration::hours(1)).to_rfc3339()
    );
    std::fs::write(&file, local).unwrap();
    let app = world
        .start_app_with(&[("POLICY_FILE", file.to_str().unwrap())])
        .await
        .unwrap();
    let ctx = app.ctx.clone();
    let outcome = async {
        loop {
            let rows = ctx.store.outcomes_for_alert(ALERT_ID).await.unwrap();
            if let Some(r) = rows.into_iter().next() {
                return r;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    };
    let r = tokio::time::timeout(T, outcome).await.expect("an outcome");
    assert_eq!(r.outcome, "suppressed");
    assert!(
        r.reason.contains("local maintenance window \"now\""),
        "{}",
        r.reason
    );
    assert!(app.ctx.store.incidents().await.unwrap().is_empty());
    assert!(top_level(&world).is_empty());
    let asked = world
        .kibana
        .requests()
        .iter()
        .any(|r| r.path.contains("maintenance_window/_find") && r.status == 404);
    assert!(asked, "the API was tried");
    finish(&world, app).await;
}

#[tokio::test]
async fn a_bad_policy_file_stops_start_up_with_the_line_and_column() {
    let world = World::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("policies.toml");
    std::fs::write(
        &file,
        "[[policy]]\nname = \"x\"\nmatch = 'host.name: (a OR'\nnotify = \"episode\"\n",
    )
    .unwrap();
    let err = world
        .start_app_with(&[("POLICY_FILE", file.to_str().unwrap())])
        .await
        .err()
        .expect("refused");
    let text = format!("{err:#}");
    assert!(text.contains("policies.toml:3:"), "{text}");
    assert!(text.contains("bad match expression"), "{text}");
}

/// Alerts that join an incident while its triage is still running used to wait in the case
/// lane for a case that could only be created behind them; now the case, once created, takes
/// them all (in one attachment), and nothing waits.
#[tokio::test]
async fn alerts_grouped_before_the_case_exists_are_attached_when_it_is_created() {
    let world = World::start().await.unwrap();
    world.kibana.hold_answers();
    for i in 0..5 {
        index_alert_on(&world, &format!("early-{i}"), HOST);
    }
    let app = world.start_app().await.unwrap();
    let ctx = app.ctx.clone();
    let grouped = async {
        loop {
            let incidents = ctx.store.incidents().await.unwrap();
            if let Some(i) = incidents.first()
                && ctx.store.grouped_alerts(&i.id).await.unwrap().len() == 5
            {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    };
    tokio::time::timeout(T, grouped)
        .await
        .expect("5 alerts grouped");
    world.kibana.release_answers();
    world
        .kibana
        .wait_until("one case with all 6 alerts", T, |s| {
            s.cases.len() == 1 && s.cases[0].case["totalAlerts"] == 6
        })
        .await
        .unwrap();
    finish(&world, app).await;
}

/// A summary-only route shows no buttons; a click or an Edit… crafted anyway (the incident id and
/// approval hash are guessable from the audit) changes nothing and runs nothing.
#[tokio::test]
async fn on_a_summary_only_route_a_crafted_click_or_edit_changes_nothing() {
    let world = World::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("policies.toml");
    std::fs::write(
        &file,
        "[[policy]]\nname = \"all\"\nmatch = '*'\nnotify = \"episode\"\n[policy.route]\noffer = \"summary\"\n",
    )
    .unwrap();
    let app = world
        .start_app_with(&[("POLICY_FILE", file.to_str().unwrap())])
        .await
        .unwrap();
    wait_for_approval_request(&world).await;
    let card = top_level(&world).remove(0);
    assert!(!block_types(&card.blocks).contains(&"actions".to_string()));
    let incident = app.ctx.store.incidents().await.unwrap().remove(0);
    let value = format!(
        "{}:{}",
        incident.id,
        incident.approval_hash.clone().unwrap()
    );
    for action in [ACTION_APPROVE, ACTION_EDIT] {
        let (status, _) = world
            .click_value(&app, HANDLER_ID, &card.ts, action, &value)
            .await
            .unwrap();
        assert_eq!(status, 200);
    }
    // The Edit… click got a notice, not the editor.
    world
        .slack
        .wait_until("the notice", T, |s| !s.views.is_empty())
        .await
        .unwrap();
    let views = world.slack.views();
    assert!(
        views.iter().all(|v| v.view["callback_id"] != EDIT_CALLBACK
            && v.view.to_string().contains("summary only")),
        "{views:?}"
    );
    let trail = app.ctx.store.audit_trail(&incident.id).await.unwrap();
    let refusals = trail
        .iter()
        .filter(|e| e.detail.contains("summary-only policy route"))
        .count();
    assert_eq!(refusals, 2, "{trail:?}");
    let now = app.ctx.store.incident(&incident.id).await.unwrap().unwrap();
    assert_eq!(now.state, IncidentState::AwaitingApproval);
    assert!(world.winrm.executed().is_empty());
    app.stop().await;
}
