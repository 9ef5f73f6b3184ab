//! The operator's dependencies misbehave: one request in five to Elasticsearch, Kibana (the
//! assistant and Cases) and Slack fails — a 503, a 429 with Retry-After, a connection cut before
//! the answer, an answer cut off half-way *after* the request was handled, a slow answer. Every
//! incident still completes, and nothing is posted, created or commented twice.

use std::collections::HashMap;

use crate::common::*;
use emulators::faults::FaultKind;

const INCIDENTS: usize = 12;

#[tokio::test]
async fn at_twenty_percent_faults_every_incident_completes_once() {
    let seed: u64 = std::env::var("TRIAGE_BOT_FAULT_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20261207);
    println!("fault seed {seed} (replay with TRIAGE_BOT_FAULT_SEED={seed})");
    let world = World::start().await.unwrap();
    for i in 1..INCIDENTS {
        let id = format!("alert-fault-{i:02}");
        let doc = triage_bot::samples::alert_document(&id, &chrono::Utc::now().to_rfc3339());
        world.es.index_doc(ALERT_INDEX, &id, doc);
    }
    world.es.faults.set(0.2, seed, &FaultKind::ALL);
    world.kibana.faults.set(0.2, seed + 1, &FaultKind::ALL);
    world.slack.faults.set(0.2, seed + 2, &FaultKind::ALL);

    // Grouping off: each alert is its own incident.
    let app = world
        .start_app_with(&[("POLICY_GROUP_WINDOW_SECS", "0")])
        .await
        .unwrap();
    let cards = |w: &World| {
        top_level(w)
            .into_iter()
            .filter(|m| m.blocks.to_string().contains(ACTION_APPROVE))
            .collect::<Vec<_>>()
    };
    world
        .slack
        .wait_until("every approval card", T * 3, |s| {
            s.messages
                .iter()
                .filter(|m| m.thread_ts.is_none() && m.blocks.to_string().contains(ACTION_APPROVE))
                .count()
                >= INCIDENTS
        })
        .await
        .unwrap();
    for card in cards(&world) {
        let value = triage_bot::demo::button_value(&card.blocks, ACTION_APPROVE).unwrap();
        let (status, _) = world
            .click_value(&app, HANDLER_ID, &card.ts, ACTION_APPROVE, &value)
            .await
            .unwrap();
        assert_eq!(status, 200);
    }
    if let Err(e) =
        triage_bot::demo::wait_for_incidents(&app, IncidentState::Executed, INCIDENTS, T * 3).await
    {
        for i in app.ctx.store.incidents().await.unwrap() {
            println!(
                "{} {} error={:?} hash={:?}",
                i.id, i.state, i.error, i.approval_hash
            );
        }
        for m in world.slack.ephemerals() {
            println!("ephemeral: {m:?}");
        }
        panic!("{e}");
    }
    triage_bot::demo::wait_until_settled(&app, T * 3)
        .await
        .unwrap();

    let injected: Vec<_> = [&world.es.faults, &world.kibana.faults, &world.slack.faults]
        .iter()
        .flat_map(|f| f.injected())
        .collect();
    let mut by_kind: HashMap<FaultKind, usize> = HashMap::new();
    for f in &injected {
        *by_kind.entry(f.kind).or_default() += 1;
    }
    println!("{} faults injected: {by_kind:?}", injected.len());
    assert!(
        by_kind.len() == FaultKind::ALL.len(),
        "every kind of fault was met: {by_kind:?}"
    );
    assert!(
        injected
            .iter()
            .any(|f| f.kind == FaultKind::TruncatedAnswer && f.method == "POST"),
        "a write whose answer was lost"
    );
    for f in [&world.es.faults, &world.kibana.faults, &world.slack.faults] {
        f.off();
    }

    // One incident, one card and one case per alert; every command ran once.
    let incidents = app.ctx.store.incidents().await.unwrap();
    assert_eq!(incidents.len(), INCIDENTS);
    assert!(incidents.iter().all(|i| i.state == IncidentState::Executed));
    assert_eq!(top_level(&world).len(), INCIDENTS, "no card posted twice");
    assert_eq!(
        world.kibana.cases().len(),
        INCIDENTS,
        "no case created twice"
    );
    assert_eq!(
        world.winrm.executed().len(),
        INCIDENTS * COMMANDS.len(),
        "each command ran once"
    );
    // No thread reply and no case comment twice.
    for root in top_level(&world) {
        let replies: Vec<String> = world
            .slack
            .messages()
            .into_iter()
            .filter(|m| m.thread_ts.as_deref() == Some(root.ts.as_str()))
            .map(|m| m.text)
            .collect();
        let mut seen = std::collections::HashSet::new();
        for r in &replies {
            assert!(seen.insert(r), "thread reply posted twice: {r}");
        }
    }
    for case in world.kibana.cases() {
        let comments = comment_texts(&case);
        let mut seen = std::collections::HashSet::new();
        for c in &comments {
            assert!(seen.insert(c), "case comment posted twice: {c}");
        }
        assert!(
            comments.len() > COMMANDS.len(),
            "every result is on the case"
        );
    }
    finish(&world, app).await;
}
