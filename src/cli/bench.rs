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

pub async fn run(postgres: Option<&str>) -> anyhow::Result<()> {
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
    let sqlite = format!("sqlite://{}?mode=rwc", dir.join("bench.db").display());
    let result = store_figures(&sqlite).await;
    let _ = std::fs::remove_dir_all(&dir);
    let sqlite = result?;
    if let Some(admin) = postgres {
        let url = Store::scratch_postgres(admin).await?;
        let pg = store_figures(&url).await?;
        println!("PostgreSQL against SQLite in this run (rate ratio, > 1: PostgreSQL faster):");
        for (what, s, p) in [
            ("ingest", sqlite.ingest, pg.ingest),
            ("dedupe", sqlite.dedupe, pg.dedupe),
            ("outbox, one claimer", sqlite.outbox, pg.outbox),
            ("outbox, two replicas", sqlite.outbox, pg.outbox_two),
        ] {
            println!("  {what:<22} {:.2}×", p / s);
        }
    }
    Ok(())
}

/// Rates (per second) on one database.
struct StoreRates {
    ingest: f64,
    dedupe: f64,
    outbox: f64,
    /// PostgreSQL only: two stores (two replicas' pools) claiming at once.
    outbox_two: f64,
}

fn per_sec(n: usize, took: Duration) -> f64 {
    n as f64 / took.as_secs_f64()
}

/// Ingest, dedupe and outbox throughput on a fresh database at `url`.
async fn store_figures(url: &str) -> anyhow::Result<StoreRates> {
    let store = Store::connect(url).await?;
    let db = store.backend().to_string();
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
    let ingest = t.elapsed();
    println!("ingest alert ({db}, 1 tx each): {}", rate(n, ingest));
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
    let dedupe = t.elapsed();
    println!("re-poll seen alert ({db}, dedupe): {}", rate(n, dedupe));
    assert_eq!(dup, n);
    // Half the jobs by one claimer, the other half by two at once (PostgreSQL: two replicas'
    // pools, SKIP LOCKED); on SQLite the second half is claimed by one as well.
    let jobs = store.unfinished_jobs().await? as usize;
    let t = Instant::now();
    let one = drain(&store, jobs / 2).await?;
    let outbox = t.elapsed();
    println!("claim + complete outbox job ({db}): {}", rate(one, outbox));
    let mut outbox_two = per_sec(one, outbox);
    if store.backend() == crate::store::Backend::Postgres {
        let other = Store::connect(url).await?;
        let t = Instant::now();
        let (a, b) = tokio::join!(drain(&store, usize::MAX), drain(&other, usize::MAX));
        let (took, two) = (t.elapsed(), a? + b?);
        println!("claim + complete, two replicas ({db}): {}", rate(two, took));
        outbox_two = per_sec(two, took);
    }
    Ok(StoreRates {
        ingest: per_sec(n, ingest),
        dedupe: per_sec(n, dedupe),
        outbox: per_sec(one, outbox),
        outbox_two,
    })
}

/// Claims and completes up to `max` jobs; how many there were.
async fn drain(store: &Store, max: usize) -> anyhow::Result<usize> {
    let mut claimed = 0;
    while claimed < max
        && let Some(row) = store.claim_next().await?
    {
        store.complete(row.id).await?;
        claimed += 1;
    }
    Ok(claimed)
}
