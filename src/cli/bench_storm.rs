//! `triage-bot bench --storm`: an alert storm through the whole service against the emulators
//! under a group policy — by default 10,000 critical alerts across 50 hosts in one burst, grouped
//! by `host.name` within an hour, notified on status change only. The figures: wall time until
//! every alert has its outcome and the outbox is drained, peak RSS (`VmHWM`, of this process,
//! which also holds the emulators and their 10,000 documents — an upper bound for the service),
//! Slack messages posted (at most one per group per window is the goal), and the most AI calls
//! seen at once against `ASSISTANT_MAX_CONCURRENT`. Fails when an alert is lost (no outcome, or
//! neither an incident nor a recorded hold), a group posted twice, or the AI limit was exceeded.

use std::time::{Duration, Instant};

use crate::app::App;
use crate::demo::{World, index_alert_on, wait_until_settled};
use crate::samples::{ALERT_ID, ALERT_INDEX};

/// What the storm benchmark runs.
#[derive(Debug, Clone)]
pub struct StormBench {
    pub alerts: usize,
    pub hosts: usize,
    pub latency: Duration,
    /// The PostgreSQL server (admin URL) to keep the record on instead of SQLite.
    pub postgres: Option<String>,
}

const POLICY: &str = r#"
[[policy]]
name = "storm-by-host"
match = 'kibana.alert.severity: "critical"'
notify = "group"
group_by = ["host.name"]
window = "1h"
frequency = "on_status_change"
"#;

/// Peak resident set size of this process in MB (`VmHWM`), where `/proc` has it.
pub fn peak_rss_mb() -> Option<f64> {
    super::bench_service::proc_mib(std::process::id(), "VmHWM:").ok()
}

pub async fn run(b: &StormBench) -> anyhow::Result<()> {
    anyhow::ensure!(
        b.alerts >= 1 && b.hosts >= 1,
        "--alerts and --hosts must be at least 1"
    );
    let world = World::start_on(b.postgres.as_deref()).await?;
    world.kibana.set_answer_delay(Some(b.latency));
    world.es.delete_doc(ALERT_INDEX, ALERT_ID);
    for i in 0..b.alerts {
        index_alert_on(
            &world,
            &format!("storm-{i:05}"),
            &format!("WS-STORM-{:03}", i % b.hosts),
        );
    }
    let dir = tempfile::tempdir()?;
    let policy_file = dir.path().join("policies.toml");
    std::fs::write(&policy_file, POLICY)?;
    let max_ai = std::env::var("ASSISTANT_MAX_CONCURRENT").unwrap_or_else(|_| "16".into());
    let settings = world.settings_with(&[
        ("POLL_BATCH_SIZE", "500"),
        ("POLICY_FILE", policy_file.to_str().unwrap_or_default()),
        ("ASSISTANT_MAX_CONCURRENT", &max_ai),
    ])?;
    let limit = settings.triage.assistant.max_concurrent;
    println!(
        "storm: {} critical alerts on {} hosts in one burst, group policy by host.name (1h, on status change), assistant latency {:.1}s, ASSISTANT_MAX_CONCURRENT={limit}",
        b.alerts,
        b.hosts,
        b.latency.as_secs_f64()
    );
    let rss_before = peak_rss_mb();
    let started = Instant::now();
    let app = App::start(settings, None).await?;
    let deadline = Duration::from_secs(600) + b.latency * (b.hosts as u32 * 2);
    // Every alert evaluated (one outcome each), then every side effect performed.
    let evaluated = async {
        loop {
            let n: i64 = app
                .ctx
                .store
                .outcome_counts()
                .await?
                .iter()
                .map(|(_, n)| n)
                .sum();
            if n as usize >= b.alerts {
                return anyhow::Ok(());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    tokio::time::timeout(deadline, evaluated)
        .await
        .map_err(|_| anyhow::anyhow!("not every alert was evaluated within {deadline:?}"))??;
    let intake_done = started.elapsed();
    wait_until_settled(&app, deadline).await?;
    let took = started.elapsed();

    let store = &app.ctx.store;
    let outcomes = store.outcome_counts().await?;
    let incidents = store.incidents().await?;
    let mut grouped = 0;
    for i in &incidents {
        grouped += store.grouped_alerts(&i.id).await?.len();
    }
    let messages = world.slack.messages();
    let top: Vec<_> = messages.iter().filter(|m| m.thread_ts.is_none()).collect();
    let replies = messages.len() - top.len();
    // The incident's own thread carries its case link (one per incident); anything else in a
    // thread is a note about an alert.
    let mut reply_kinds: std::collections::BTreeMap<String, usize> = Default::default();
    for m in messages.iter().filter(|m| m.thread_ts.is_some()) {
        let kind: String = m.text.chars().take(32).collect();
        *reply_kinds.entry(kind).or_default() += 1;
    }
    let alert_notes = messages
        .iter()
        .filter(|m| m.thread_ts.is_some() && !m.text.starts_with("Audit record"))
        .count();
    let mut per_host = std::collections::HashMap::new();
    for i in &incidents {
        *per_host.entry(i.host_name.clone()).or_insert(0usize) += 1;
    }
    let most_per_group = per_host.values().copied().max().unwrap_or(0);
    let overlap = world.kibana.max_answering();
    let ai_calls = world.kibana.calls().len();
    let rss = peak_rss_mb();
    app.stop().await;

    println!(
        "  wall time:            {:.1}s (all {} alerts evaluated after {:.1}s)",
        took.as_secs_f64(),
        b.alerts,
        intake_done.as_secs_f64()
    );
    println!("  outcomes:             {outcomes:?}");
    println!(
        "  incidents:            {} ({} alerts grouped into them; {} = {} alerts)",
        incidents.len(),
        grouped,
        incidents.len() + grouped,
        b.alerts
    );
    println!(
        "  Slack messages:       {} posted ({} top-level, {replies} thread replies); most incidents per group: {most_per_group}",
        messages.len(),
        top.len()
    );
    println!("  thread replies:       {reply_kinds:?}");
    println!("  AI calls:             {ai_calls}; at most {overlap} at once (limit {limit})");
    match (rss, rss_before) {
        (Some(peak), Some(before)) => println!(
            "  peak RSS (VmHWM):     {peak:.0} MB for the whole process, emulators and their documents included ({before:.0} MB before the service started)"
        ),
        _ => println!("  peak RSS:             not available on this system"),
    }
    anyhow::ensure!(
        incidents.len() + grouped == b.alerts,
        "alerts lost: {} incidents + {grouped} grouped != {}",
        incidents.len(),
        b.alerts
    );
    anyhow::ensure!(
        most_per_group <= 1 && top.len() <= b.hosts && alert_notes == 0,
        "more than one Slack notification for a group in its window"
    );
    anyhow::ensure!(
        overlap <= limit,
        "{overlap} AI calls at once, over the limit of {limit}"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn peak_rss_is_read_where_proc_exists() {
        if std::path::Path::new("/proc/self/status").exists() {
            assert!(super::peak_rss_mb().unwrap() > 0.0);
        }
    }

    #[test]
    fn the_storm_policy_parses() {
        crate::pipeline::policy::Policies::parse("storm", super::POLICY).unwrap();
    }
}
