//! `triage-bot bench --service`: the service's own costs, against the emulators, each beside its
//! baseline measured in the same run.
//!
//! - **Overhead**: an alert pushed to `/api/webhook/kibana` (push intake: no poll interval) →
//!   its Slack approval message, with an assistant that answers at once; one alert at a time, so
//!   each figure is one incident's path through ingest, policy, triage, handler, Slack and case —
//!   p50 and p99 over the sample. Baseline: the bare HTTP round trip of an empty push.
//! - **Idle memory**: the resident set of a real `triage-bot serve` process (this binary, started
//!   against the emulators), after it settled with nothing to do.
//! - **WinRM fan-out**: 8 approved commands on each of 50 hosts, every command taking 100 ms on
//!   the emulated host, through the real runner (per-host order, `RUNNER_MAX_PARALLEL_HOSTS` at
//!   once): wall time against the bound `8 × 100 ms × ⌈50 / RUNNER_MAX_PARALLEL_HOSTS⌉` and against
//!   running them one after another (measured on a sample of hosts, extrapolated — it says so).

use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::json;

use crate::demo::{World, wait_until_settled};
use crate::runners::{CommandRunner, SelectingRunner, Target};

const SECRET: &str = "bench-push-secret";

/// The p-th percentile (nearest rank) of sorted samples; zero for none.
fn percentile(sorted: &[Duration], p: f64) -> Duration {
    crate::pipeline::record::report::percentile(sorted, p).unwrap_or_default()
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

pub async fn run(alerts: usize, postgres: Option<&str>) -> anyhow::Result<()> {
    if postgres.is_some() {
        println!("database: a fresh PostgreSQL database per scenario");
    }
    overhead(alerts, postgres).await?;
    idle_memory(postgres).await?;
    fanout(postgres).await
}

async fn overhead(alerts: usize, postgres: Option<&str>) -> anyhow::Result<()> {
    anyhow::ensure!(alerts >= 1, "--alerts must be at least 1");
    let world = World::start_on(postgres).await?;
    let app = world
        .start_app_with(&[
            ("KIBANA_WEBHOOK_SECRET", SECRET),
            ("POLICY_GROUP_WINDOW_SECS", "0"),
            // The seeded alert is polled once at start; later polls find nothing new.
            ("POLL_INTERVAL_SECS", "3600"),
        ])
        .await?;
    crate::demo::wait_for_state(&app, crate::domain::IncidentState::AwaitingApproval, T).await?;
    wait_until_settled(&app, T).await?;
    let http = reqwest::Client::new();
    let url = format!("{}/api/webhook/kibana", app.url());
    let push = |body: serde_json::Value| {
        http.post(&url)
            .header("X-Triage-Bot-Token", SECRET)
            .json(&body)
            .send()
    };
    // Baseline: the round trip of a push that carries no alert.
    let mut baseline = Vec::new();
    for _ in 0..alerts.min(200) {
        let t = Instant::now();
        let r = push(json!([])).await?;
        anyhow::ensure!(r.status().is_success(), "empty push: {}", r.status());
        baseline.push(t.elapsed());
    }
    let mut samples = Vec::with_capacity(alerts);
    for i in 0..alerts {
        let id = format!("overhead-{i:05}");
        let mut doc = crate::samples::alert_document(&id, &chrono::Utc::now().to_rfc3339());
        doc["kibana.alert.rule.name"] = json!(format!("Overhead rule {i:05}"));
        doc["_id"] = json!(id);
        let posted_before = world.slack.messages().len();
        let t = Instant::now();
        let r = push(json!([doc])).await?;
        anyhow::ensure!(r.status().as_u16() == 202, "push: {}", r.status());
        world
            .slack
            .wait_until("the approval message", T, |s| {
                s.messages[posted_before..]
                    .iter()
                    .any(|m| m.thread_ts.is_none())
            })
            .await?;
        samples.push(t.elapsed());
        wait_until_settled(&app, T).await?;
    }
    app.stop().await;
    samples.sort();
    baseline.sort();
    println!(
        "overhead: push → approval message, {alerts} alerts one at a time, assistant answering at once"
    );
    println!(
        "  p50 {}   p99 {}   max {}",
        ms(percentile(&samples, 50.0)),
        ms(percentile(&samples, 99.0)),
        ms(*samples.last().unwrap_or(&Duration::ZERO))
    );
    println!(
        "  baseline (empty push round trip): p50 {}   p99 {}; p99 ratio {:.1}x",
        ms(percentile(&baseline, 50.0)),
        ms(percentile(&baseline, 99.0)),
        percentile(&samples, 99.0).as_secs_f64() / percentile(&baseline, 99.0).as_secs_f64()
    );
    Ok(())
}

const T: Duration = Duration::from_secs(30);

/// Resident set of a process, from `/proc/<pid>/status` (`VmRSS` or `VmHWM`), in MiB.
pub(super) fn proc_mib(pid: u32, field: &str) -> anyhow::Result<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .context("reading /proc (the memory figures need Linux)")?;
    let line = status
        .lines()
        .find(|l| l.starts_with(field))
        .with_context(|| format!("no {field} in /proc/{pid}/status"))?;
    let kib: f64 = line
        .split_whitespace()
        .nth(1)
        .context("malformed status line")?
        .parse()?;
    Ok(kib / 1024.0)
}

async fn idle_memory(postgres: Option<&str>) -> anyhow::Result<()> {
    let world = World::start_on(postgres).await?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let mut child = tokio::process::Command::new(std::env::current_exe()?)
        .arg("serve")
        .env_clear()
        .envs(world.env())
        .env("HTTP_BIND", format!("127.0.0.1:{port}"))
        .env("RUST_LOG", "error")
        .current_dir(&world.dir)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()?;
    let pid = child.id().context("the serve process")?;
    // Settled: the seeded alert's card is out and its case written.
    world
        .slack
        .wait_until("the approval message", T, |s| !s.messages.is_empty())
        .await?;
    world
        .kibana
        .wait_until("the case", T, |s| !s.cases.is_empty())
        .await?;
    // And ready: the database answers and the source was polled.
    let ready = format!("http://127.0.0.1:{port}/readyz");
    let deadline = Instant::now() + T;
    while !reqwest::get(&ready)
        .await
        .is_ok_and(|r| r.status().is_success())
    {
        anyhow::ensure!(Instant::now() < deadline, "serve never became ready");
        tokio::task::yield_now().await;
    }
    let rss = proc_mib(pid, "VmRSS:")?;
    let hwm = proc_mib(pid, "VmHWM:")?;
    child.kill().await?;
    println!(
        "memory: `triage-bot serve` ({}) idle after one incident: RSS {rss:.1} MiB, peak {hwm:.1} MiB",
        if cfg!(debug_assertions) {
            "debug build"
        } else {
            "release build"
        }
    );
    Ok(())
}

async fn fanout(postgres: Option<&str>) -> anyhow::Result<()> {
    const HOSTS: usize = 50;
    const COMMANDS: usize = 8;
    const COMMAND_MS: u64 = 100;
    let world = World::start_on(postgres).await?;
    // Each command answers "still running" once, held 100 ms, then finishes: ~100 ms a command.
    world
        .winrm
        .set_timed_out_hold(Duration::from_millis(COMMAND_MS));
    world.winrm.set_default_response("ok\r\n", "", 0);
    let commands: Vec<String> = (0..COMMANDS)
        .map(|c| format!("Get-Date -Format 'fanout-{c}'"))
        .collect();
    for c in &commands {
        world.winrm.set_delay(c, 1);
    }
    let hosts: Vec<String> = (0..HOSTS).map(|h| format!("WS-FAN-{h:02}")).collect();
    let map = hosts
        .iter()
        .map(|h| format!("{h}={}", world.winrm.url()))
        .collect::<Vec<_>>()
        .join(",");
    let settings = world.settings_with(&[("WINRM_HOST_MAP", &map)])?;
    let parallel = settings.runner.max_parallel_hosts;
    let runner = std::sync::Arc::new(SelectingRunner::from_settings(&settings)?);
    // Re-arm the delay for every run: the emulator counts it per command it starts.
    let one_host = |runner: std::sync::Arc<SelectingRunner>, host: String| {
        let commands = commands.clone();
        async move {
            let _permit = runner.lock_host(&host).await;
            for c in &commands {
                runner
                    .run_on(&Target::host(host.clone()), c)
                    .await
                    .map_err(|e| anyhow::anyhow!("{host}: {e}"))?;
            }
            anyhow::Ok(())
        }
    };
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for h in &hosts {
        tasks.spawn(one_host(runner.clone(), h.clone()));
    }
    while let Some(r) = tasks.join_next().await {
        r??;
    }
    let wall = started.elapsed();
    let executed = world.winrm.executed().len();
    anyhow::ensure!(
        executed == HOSTS * COMMANDS,
        "{executed} commands ran, expected {}",
        HOSTS * COMMANDS
    );
    // Serial: the same commands one after another, on a sample of hosts.
    let sample = 5;
    let t = Instant::now();
    for h in hosts.iter().take(sample) {
        one_host(runner.clone(), h.clone()).await?;
    }
    let serial = t.elapsed() / sample as u32 * HOSTS as u32;
    let bound =
        Duration::from_millis(COMMAND_MS * COMMANDS as u64) * HOSTS.div_ceil(parallel) as u32;
    println!(
        "WinRM fan-out: {COMMANDS} commands x {HOSTS} hosts at {COMMAND_MS} ms each, RUNNER_MAX_PARALLEL_HOSTS={parallel}"
    );
    println!(
        "  wall {:.2}s; bound {:.2}s (wall / bound {:.2}); serial {:.1}s (measured on {sample} hosts, extrapolated) = {:.1}x slower",
        wall.as_secs_f64(),
        bound.as_secs_f64(),
        wall.as_secs_f64() / bound.as_secs_f64(),
        serial.as_secs_f64(),
        serial.as_secs_f64() / wall.as_secs_f64()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let s: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile(&s, 50.0), Duration::from_millis(50));
        assert_eq!(percentile(&s, 99.0), Duration::from_millis(99));
        assert_eq!(percentile(&s[..1], 99.0), Duration::from_millis(1));
    }
}
