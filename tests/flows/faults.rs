//! The operator's dependencies misbehave: one request in five to Elasticsearch, Kibana (the
//! assistant and Cases), Slack and the Windows host (WinRM, NTLM-sealed) fails — a 503, a 429
//! with Retry-After, a connection cut before the answer, an answer cut off half-way *after* the
//! request was handled, a slow answer. Every incident still completes, every command runs once
//! (a Command whose answer was lost is looked for by its chosen id before it is sent again), and
//! nothing is posted, created or commented twice.

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
    world.winrm.faults.set(0.2, seed + 3, &FaultKind::ALL);

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
        triage_bot::demo::wait_for_incidents(&app, IncidentState::Executed, INCIDENTS, T * 6).await
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

    let all = [
        &world.es.faults,
        &world.kibana.faults,
        &world.slack.faults,
        &world.winrm.faults,
    ];
    let injected: Vec<_> = all.iter().flat_map(|f| f.injected()).collect();
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
    assert!(
        world.winrm.faults.injected().len() >= 10,
        "the host's faults were met too"
    );
    for f in all {
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

/// `triage-bot incidents …` as the operator runs it, on the app's database.
async fn incidents_cli(world: &World, args: &[&str]) -> String {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_triage-bot"))
        .arg("incidents")
        .args(args)
        .env_clear()
        .env("DATABASE_URL", world.database_url())
        .env("USER", "oncall-eng")
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[tokio::test]
async fn a_job_that_gives_up_waits_in_the_dead_letters_until_the_operator_retries_it() {
    let world = World::start().await.unwrap();
    // Slack refuses every message for longer than the give-up budget (the directory still works,
    // so the handler is found).
    world.slack.faults.exempt("/api/users.");
    world.slack.faults.set(1.0, 7, &[FaultKind::Unavailable]);
    let app = world
        .start_app_with(&[("JOB_GIVE_UP_SECS", "0.5"), ("RETRY_BASE_SECS", "0.02")])
        .await
        .unwrap();
    let incident = wait_for_state(&app, IncidentState::AwaitingApproval, T)
        .await
        .unwrap();
    triage_bot::demo::wait_until_settled(&app, T).await.unwrap();
    assert!(top_level(&world).is_empty());

    let failed = incidents_cli(&world, &["list", "--state", "failed"]).await;
    assert!(failed.contains(&incident.id), "{failed}");
    assert!(failed.contains("gave up: post_approval"), "{failed}");
    assert!(failed.contains("Slack"), "the reason is shown: {failed}");
    let shown = incidents_cli(&world, &["show", &incident.id]).await;
    assert!(shown.contains("Jobs that gave up"), "{shown}");
    let executed = incidents_cli(&world, &["list", "--state", "executed"]).await;
    assert!(executed.is_empty(), "{executed}");

    // The operator fixes Slack and retries: the card is posted, once, and the retry audited.
    world.slack.faults.off();
    let retried = incidents_cli(&world, &["retry", &incident.id]).await;
    assert!(retried.contains("Queued"), "{retried}");
    wait_for_approval_request(&world).await;
    triage_bot::demo::wait_until_settled(&app, T).await.unwrap();
    assert_eq!(top_level(&world).len(), 1);
    assert!(
        incidents_cli(&world, &["list", "--state", "failed"])
            .await
            .is_empty()
    );
    let trail = app.ctx.store.audit_trail(&incident.id).await.unwrap();
    assert!(
        trail
            .iter()
            .any(|a| a.event == "JobsRetried" && a.actor == "cli:oncall-eng"),
        "{trail:?}"
    );
    finish(&world, app).await;
}
