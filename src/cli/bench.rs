//! `triage-bot bench`: throughput figures for the hot paths that do not wait on an outside
//! system — parsing assistant answers, ingesting alerts into the store (one transaction each,
//! with its outbox row), and rendering the approval message. Measured in-process on the machine
//! it runs on; the numbers in the closing notes come from here, not from tests.

use std::time::{Duration, Instant};

use crate::domain::Alert;
use crate::domain::HandlerTag;
use crate::pipeline::approval::blocks::{self, ApprovalView};
use crate::pipeline::policy;
use crate::pipeline::triage::parser::parse_answer;
use crate::store::Store;
use crate::workers::intake::admit_all;

fn rate(n: usize, took: Duration) -> String {
    format!(
        "{n} in {:.3}s = {:.0}/s ({:.1} µs each)",
        took.as_secs_f64(),
        n as f64 / took.as_secs_f64(),
        took.as_secs_f64() * 1e6 / n as f64
    )
}

pub async fn run() -> anyhow::Result<()> {
    let answer = crate::samples::triage_answer();
    let n = 20_000;
    let t = Instant::now();
    let mut commands = 0;
    for _ in 0..n {
        commands += parse_answer(&answer).commands().len();
    }
    println!(
        "parse assistant answer (8 commands):   {}",
        rate(n, t.elapsed())
    );
    assert_eq!(commands, n * 8);

    let doc = crate::samples::alert_document("a", &chrono::Utc::now().to_rfc3339());
    let alert = Alert::from_document("a", "idx", &doc, "@timestamp")?;
    let triage = parse_answer(&answer);
    let cmds = triage.commands();
    let handler = HandlerTag {
        slack_id: Some("U0ALICE".into()),
        name: None,
    };
    let n = 20_000;
    let t = Instant::now();
    for _ in 0..n {
        let msg = blocks::approval_message(&ApprovalView {
            channel: "C1",
            incident: "i",
            alert: &alert,
            triage: &triage,
            commands: &cmds,
            handler: &handler,
            approval_value: "i:h",
            alert_url: None,
            case_url: None,
            outcome: None,
            note: None,
            offer_isolate: false,
            runs_on: None,
        });
        std::hint::black_box(msg);
    }
    println!(
        "render approval message (Block Kit):   {}",
        rate(n, t.elapsed())
    );

    // A fresh database of its own, removed afterwards (a production build has no tempfile).
    let dir = std::env::temp_dir().join(format!("triage-bot-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let result = store_figures(&dir).await;
    let _ = std::fs::remove_dir_all(&dir);
    result
}

/// Ingest, dedupe and outbox throughput on a fresh SQLite database in `dir`.
async fn store_figures(dir: &std::path::Path) -> anyhow::Result<()> {
    let store = Store::connect(&format!(
        "sqlite://{}?mode=rwc",
        dir.join("bench.db").display()
    ))
    .await?;
    let n = 2_000;
    // Grouping off: every alert its own incident, as this figure always measured.
    let engine = policy::Engine::new(policy::Policies::default_grouping(None));
    let t = Instant::now();
    for i in 0..n {
        let id = format!("alert-{i}");
        let doc = crate::samples::alert_document(&id, &chrono::Utc::now().to_rfc3339());
        let alert = Alert::from_document(&id, "idx", &doc, "@timestamp")?;
        admit_all(&store, &engine, "bench", std::slice::from_ref(&alert)).await?;
    }
    println!(
        "ingest alert (SQLite, WAL, 1 tx each): {}",
        rate(n, t.elapsed())
    );
    let t = Instant::now();
    let mut dup = 0;
    for i in 0..n {
        let id = format!("alert-{i}");
        let doc = crate::samples::alert_document(&id, &chrono::Utc::now().to_rfc3339());
        let alert = Alert::from_document(&id, "idx", &doc, "@timestamp")?;
        dup += admit_all(&store, &engine, "bench", std::slice::from_ref(&alert))
            .await?
            .duplicates;
    }
    println!(
        "re-poll seen alert (dedupe):           {}",
        rate(n, t.elapsed())
    );
    assert_eq!(dup, n);
    let t = Instant::now();
    let mut claimed = 0;
    while let Some(row) = store.claim_next().await? {
        store.complete(row.id).await?;
        claimed += 1;
    }
    println!(
        "claim + complete outbox job:           {}",
        rate(claimed, t.elapsed())
    );
    Ok(())
}
