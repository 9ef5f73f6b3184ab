//! Chaos: `triage-bot serve` runs as its own process and is killed with SIGKILL at random points
//! while fifty incidents go through the whole loop — alerts polled, the assistant asked, cards
//! posted, clicks (signed, as Slack sends them) answered, commands run on a host where some are
//! slow, cases written — and restarted on the same database each time. At the end: every alert
//! has one incident, one card and one case; no command ran twice, none without an approval by
//! the handler; batches cut off were resumed (outcome collected, the rest offered for a fresh
//! approval); no thread reply or case comment appears twice.
//!
//! The seed is printed; `TRIAGE_BOT_CHAOS_SEED=N` replays its kill schedule (the interleaving of
//! concurrent work still varies).

use std::collections::{HashMap, HashSet};
use std::process::Stdio;
use std::time::Duration;

use crate::common::*;
use emulators::faults::Rng;
use triage_bot::samples::{HANDLER_NAME, triage_answer};
use triage_bot::store::Store;

const ALERTS: usize = 50;
const KILLS: usize = 12;

/// Commands the assistant proposes for alert `n`: unique to it, so the host's record tells
/// incidents apart. The second is slow on the host, so kills land mid-command.
fn commands_of(n: usize) -> [String; 4] {
    [
        format!("Get-Date -Format 'chaos-{n:02}-1'"),
        format!("Write-Output 'chaos-{n:02}-2'"),
        format!("Get-Service -Name 'chaos{n:02}'"),
        format!("Stop-Service -Name 'chaos{n:02}'"),
    ]
}

fn answer_for(n: usize) -> String {
    let c = commands_of(n);
    format!(
        "**Summary:** Chaos alert {n:02}.\n\n**Investigation Commands:**\n1. `{}`\n2. `{}`\n3. `{}`\n\n**Remediation Commands:**\n1. `{}`\n",
        c[0], c[1], c[2], c[3]
    )
}

/// The alert number a triage prompt is about (`chaos-NN` in its alert id).
fn alert_number(prompt: &str) -> Option<usize> {
    let at = prompt.find("chaos-alert-")? + "chaos-alert-".len();
    prompt.get(at..at + 2)?.parse().ok()
}

/// A wait between `lo` and `hi` milliseconds, from the seeded schedule.
fn millis(rng: &mut Rng, lo: u64, hi: u64) -> Duration {
    Duration::from_millis(lo + rng.next_u64() % (hi - lo))
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn spawn(world: &World, database_url: &str, name: &str, port: u16) -> tokio::process::Child {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_triage-bot"))
        .arg("serve")
        .env_clear()
        .envs(world.env())
        .env("DATABASE_URL", database_url)
        .env("REPLICA_NAME", name)
        .env("HTTP_BIND", format!("127.0.0.1:{port}"))
        .env("POLICY_GROUP_WINDOW_SECS", "0")
        .env("RUST_LOG", "error")
        .current_dir(&world.dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap()
}

/// Acts as the handler in Slack: clicks Approve on every card and every fresh offer not yet
/// decided, on every replica in `urls` (as a double-click reaching two replicas would). A click
/// no live process answered is clicked again later.
async fn click_everything(world: &World, urls: &[String], decided: &mut HashSet<String>) {
    for m in world.slack.messages() {
        if decided.contains(&m.ts) {
            continue;
        }
        let Some(value) = triage_bot::demo::button_value(&m.blocks, ACTION_APPROVE) else {
            continue;
        };
        let payload = emulators::slack::block_actions_payload(
            HANDLER_ID,
            "alice",
            &m.channel,
            &m.ts,
            ACTION_APPROVE,
            &value,
        );
        let mut clicks = tokio::task::JoinSet::new();
        for url in urls {
            let (url, payload) = (format!("{url}/slack/interactions"), payload.clone());
            clicks.spawn(async move {
                let at = chrono::Utc::now().timestamp();
                emulators::slack::post_interaction(&url, SIGNING_SECRET, &payload, at).await
            });
        }
        let sent = clicks.join_all().await;
        if sent.iter().any(|s| matches!(s, Ok((200, _)))) {
            decided.insert(m.ts.clone());
        }
    }
}

/// Waits (briefly: the process may be between lives) for a card or offer not yet decided.
async fn next_card(world: &World, decided: &HashSet<String>) {
    let _ = world
        .slack
        .wait_until("a card to decide", Duration::from_millis(100), |s| {
            s.messages
                .iter()
                .any(|m| !decided.contains(&m.ts) && m.blocks.to_string().contains(ACTION_APPROVE))
        })
        .await;
}

/// The emulated world of a chaos run: `alerts` alerts of their own rules on the one host, an
/// assistant proposing each its own commands (the second slow on the host).
async fn chaos_world(alerts: usize) -> World {
    let world = World::start().await.unwrap();
    // The seeded alert stays; the others of rules of their own, all on the one host.
    for n in 1..alerts {
        add_alert(&world, n);
    }
    let demo_answer = triage_answer();
    world.kibana.set_responder(move |call| {
        if call.last_user_content.starts_with("Who handles") {
            format!("{HANDLER_NAME}.")
        } else {
            match alert_number(&call.last_user_content) {
                Some(n) => answer_for(n),
                None => demo_answer.clone(),
            }
        }
    });
    world.winrm.set_default_response("ok\r\n", "", 0);
    world.winrm.set_timed_out_hold(Duration::from_millis(60));
    world
}

/// Alert `n` in Elasticsearch, of a rule of its own; its second command is slow on the host.
fn add_alert(world: &World, n: usize) {
    let mut doc = triage_bot::samples::alert_document(
        &format!("chaos-alert-{n:02}"),
        &chrono::Utc::now().to_rfc3339(),
    );
    doc["kibana.alert.rule.name"] = serde_json::json!(format!("Chaos rule {n:02}"));
    doc["kibana.alert.rule.rule_id"] = serde_json::json!(format!("chaos-rule-{n:02}"));
    world
        .es
        .index_doc(ALERT_INDEX, &format!("chaos-alert-{n:02}"), doc);
    world.winrm.set_delay(&commands_of(n)[1], 3);
}

#[tokio::test]
async fn fifty_incidents_survive_random_sigkills_without_anything_twice() {
    let seed: u64 = std::env::var("TRIAGE_BOT_CHAOS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(424242);
    println!("chaos seed {seed} (replay with TRIAGE_BOT_CHAOS_SEED={seed})");
    let mut rng = Rng::new(seed);

    let world = chaos_world(ALERTS).await;
    let mut decided = HashSet::new();
    let mut kills = 0;
    let port = free_port();
    let urls = [format!("http://127.0.0.1:{port}")];
    let db = world.database_url();
    let mut child = spawn(&world, &db, "chaos", port);
    while kills < KILLS {
        let until = tokio::time::Instant::now() + millis(&mut rng, 300, 2_500);
        while tokio::time::Instant::now() < until {
            click_everything(&world, &urls, &mut decided).await;
            next_card(&world, &decided).await;
        }
        child.kill().await.unwrap();
        kills += 1;
        child = spawn(&world, &db, "chaos", port);
    }

    // No more kills: let the last process finish everything.
    let store = Store::connect(&db).await.unwrap();
    settle(&world, &store, &urls, &mut decided, ALERTS).await;
    child.kill().await.unwrap();
    println!("{kills} kills");
    nothing_lost_nothing_twice(&world, &store, ALERTS).await;
}

/// Two replicas of `serve` on one PostgreSQL database, every click sent to both (as a
/// double-click reaching two replicas behind a load balancer would), and the one that leads
/// SIGKILLed while commands run. The survivor takes over the lead (the alerts indexed after the
/// kill are polled) and the dead one's running jobs (a batch it was running is resumed, never
/// re-run); nothing is lost and nothing happens twice.
#[tokio::test]
async fn two_replicas_on_postgres_lose_and_repeat_nothing_when_one_is_killed() {
    const FIRST: usize = 16;
    const LATER: usize = 4;
    let world = chaos_world(FIRST).await;
    // Slow commands take 1.5 s here: the kill lands while a's batch is still running.
    world.winrm.set_timed_out_hold(Duration::from_millis(500));
    let db = if world.database_url().starts_with("postgres") {
        world.database_url()
    } else {
        let admin = triage_bot::config::test_postgres()
            .expect("TRIAGE_BOT_TEST_POSTGRES is not set: run the tests with scripts/test");
        Store::scratch_postgres(&admin).await.unwrap()
    };
    let (pa, pb) = (free_port(), free_port());
    let urls = [pa, pb].map(|p| format!("http://127.0.0.1:{p}"));
    let mut a = spawn(&world, &db, "a", pa);
    // Replica a posts a card only once it has polled, so it leads; then b joins and follows.
    world
        .slack
        .wait_until("replica a's first card", T, |s| !s.messages.is_empty())
        .await
        .unwrap();
    let mut b = spawn(&world, &db, "b", pb);
    let store = Store::connect(&db).await.unwrap();
    let mut decided = HashSet::new();

    // Kill the leader while it runs a batch (its slow second command on the host): a batch it
    // claimed whose incident is executing (not one still waiting for the host).
    let deadline = tokio::time::Instant::now() + T * 3;
    let a_runs_a_batch = |claims: Vec<(Option<String>, String, String)>, executing: Vec<String>| {
        claims
            .into_iter()
            .filter(|(owner, kind, incident)| {
                owner.as_deref().is_some_and(|o| o.starts_with("a-"))
                    && kind == "execute"
                    && executing.contains(incident)
            })
            .count()
    };
    let in_flight = loop {
        click_everything(&world, &urls, &mut decided).await;
        let executing = store
            .incidents()
            .await
            .unwrap()
            .into_iter()
            .filter(|i| i.state == IncidentState::Executing)
            .map(|i| i.id)
            .collect();
        let running = a_runs_a_batch(store.running_claims().await.unwrap(), executing);
        if running > 0 {
            break running;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "replica a ran no batch"
        );
        next_card(&world, &decided).await;
    };
    a.kill().await.unwrap();
    // Alerts raised after the kill: only the survivor can read them.
    for n in FIRST..FIRST + LATER {
        add_alert(&world, n);
    }
    settle(&world, &store, &urls, &mut decided, FIRST + LATER).await;
    b.kill().await.unwrap();
    println!("replica a killed running {in_flight} batches");
    assert!(in_flight > 0);
    // Replica b took them over: each of a's batches cut short was recorded so and resumed.
    let mut cut_short = 0;
    for i in store.incidents().await.unwrap() {
        cut_short += store
            .audit_trail(&i.id)
            .await
            .unwrap()
            .iter()
            .filter(|e| e.event == "ExecutionCutShort")
            .count();
    }
    assert!(
        cut_short >= in_flight,
        "{cut_short} batches taken over of {in_flight}"
    );
    nothing_lost_nothing_twice(&world, &store, FIRST + LATER).await;
}

/// Clicks until every alert's incident has settled and no job is left.
async fn settle(
    world: &World,
    store: &Store,
    urls: &[String],
    decided: &mut HashSet<String>,
    alerts: usize,
) {
    let deadline = tokio::time::Instant::now() + T * 6;
    loop {
        click_everything(world, urls, decided).await;
        let incidents = store.incidents().await.unwrap();
        let settled = incidents.len() >= alerts
            && incidents.iter().all(|i| {
                matches!(
                    i.state,
                    IncidentState::Executed
                        | IncidentState::ExecutionFailed
                        | IncidentState::Interrupted
                )
            })
            && store.unfinished_jobs().await.unwrap() == 0;
        if settled {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not settled: {:?}",
            incidents
                .iter()
                .map(|i| (i.id.clone(), i.state))
                .collect::<Vec<_>>()
        );
        next_card(world, decided).await;
    }
}

/// What a run of crashes must leave: one incident, card and case per alert; no command run
/// twice, none without the handler's recorded approval; every cut-off batch with commands left
/// offered again; no thread reply or case comment twice.
async fn nothing_lost_nothing_twice(world: &World, store: &Store, alerts: usize) {
    let incidents = store.incidents().await.unwrap();
    let roots: Vec<_> = incidents
        .iter()
        .filter(|i| i.parent_incident.is_none())
        .collect();
    let mut collected = 0;
    let mut unknown = 0;
    for i in &incidents {
        for a in store.audit_trail(&i.id).await.unwrap() {
            if a.event == "ExecutionInterrupted" {
                let d: serde_json::Value = serde_json::from_str(&a.detail).unwrap();
                collected += d["collected"].as_u64().unwrap_or(0);
                unknown += d["outcome_unknown"].as_array().map_or(0, Vec::len);
            }
        }
    }
    println!(
        "{} incidents, {} batches resumed with a fresh offer; {collected} commands in flight collected from the host after a restart, {unknown} with an unknown outcome",
        roots.len(),
        incidents.len() - roots.len()
    );

    // One incident, one card, one case per alert.
    let distinct: HashSet<_> = roots.iter().map(|i| i.alert_id.clone()).collect();
    assert_eq!(roots.len(), alerts);
    assert_eq!(distinct.len(), alerts, "one incident per alert");
    assert_eq!(top_level(world).len(), alerts, "one card per alert");
    assert_eq!(world.kibana.cases().len(), alerts, "one case per alert");

    // No command ran twice on the host.
    let mut runs: HashMap<String, usize> = HashMap::new();
    for e in world.winrm.executed() {
        if let Some(c) = e.approved_command() {
            *runs.entry(c.to_string()).or_default() += 1;
        }
    }
    let twice: Vec<_> = runs.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "commands run twice: {twice:?}");

    // Nothing ran without a recorded approval by the handler: every command the host ran is a
    // started command of an incident the handler approved.
    let mut approved_texts = HashSet::new();
    for i in &incidents {
        let commands = store.commands(&i.id).await.unwrap();
        let started = commands
            .iter()
            .filter(|c| c.started_at.is_some() || c.remote.is_some());
        if i.decision.as_deref() == Some("approved") && i.decided_by.as_deref() == Some(HANDLER_ID)
        {
            approved_texts.extend(started.map(|c| c.text.clone()));
        } else {
            assert_eq!(started.count(), 0, "{} ran without approval", i.id);
        }
    }
    for text in runs.keys() {
        assert!(
            approved_texts.contains(text),
            "ran without a recorded approval: {text}"
        );
    }
    // Every command of every alert ran (once) or is recorded as not run.
    assert!(
        runs.len() >= alerts * 3,
        "most commands ran: {}",
        runs.len()
    );

    // A batch cut off is interrupted and offered again in its thread.
    for i in roots
        .iter()
        .filter(|i| i.state == IncidentState::Interrupted)
    {
        let commands = store.commands(&i.id).await.unwrap();
        let not_started = commands
            .iter()
            .any(|c| c.status == CommandStatus::Skipped && c.error.is_none());
        if not_started {
            assert!(
                incidents
                    .iter()
                    .any(|f| f.parent_incident.as_deref() == Some(i.id.as_str())),
                "{} was interrupted with commands left, and nothing was offered",
                i.id
            );
        }
    }

    // No thread reply twice (each carries its job id), no case comment twice (each its marker).
    let mut replies = HashSet::new();
    for m in world.slack.messages() {
        if let Some(job) = m
            .metadata
            .as_ref()
            .and_then(|md| md.pointer("/event_payload/reply_job"))
            .and_then(|j| j.as_str())
        {
            assert!(
                replies.insert((m.thread_ts.clone(), job.to_string())),
                "thread reply posted twice: {}",
                m.text
            );
        }
    }
    for case in world.kibana.cases() {
        let mut seen = HashSet::new();
        for c in comment_texts(&case) {
            assert!(seen.insert(c.clone()), "case comment posted twice: {c}");
        }
    }
}
