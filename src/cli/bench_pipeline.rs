//! `triage-bot bench --pipeline`: alerts through the whole service against the emulators, with
//! the assistant answering after a fixed latency — the figures for "how long does an alert storm
//! take, and what bounds it". Compared in the same run with a serial loop shaped like the original
//! triage script: one alert at a time, two AI calls each (triage, then "who handles it?"), then
//! the Slack message.
//!
//! The pipeline run: `alerts` critical alerts on as many hosts are indexed in the Elasticsearch
//! emulator, the service is started (`ASSISTANT_MAX_CONCURRENT` from the environment, default
//! 16), and the clock stops when every incident awaits approval with its Slack message posted and
//! its case created (the outbox drained). The bound is what AI latency allows: one call per alert,
//! `ASSISTANT_MAX_CONCURRENT` at a time, so `ceil(alerts / concurrency) × latency`. The serial
//! loop runs on a sample and its time per alert is extrapolated to all alerts (it says so).

use std::time::{Duration, Instant};

use anyhow::Context;

use crate::app::App;
use crate::clients::ai;
use crate::clients::slack::SlackClient;
use crate::demo::{World, index_alert_on, wait_for_incidents, wait_until_settled};
use crate::domain::{Alert, IncidentState};
use crate::pipeline::triage::prompt::Prompts;

/// What the pipeline benchmark runs.
#[derive(Debug, Clone)]
pub struct PipelineBench {
    pub alerts: usize,
    pub latency: Duration,
    pub serial_sample: usize,
}

/// The sum of a counter's series in a Prometheus text page.
fn counter_total(page: &str, name: &str) -> f64 {
    page.lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

pub async fn run(b: &PipelineBench) -> anyhow::Result<()> {
    anyhow::ensure!(b.alerts >= 1, "--alerts must be at least 1");
    let world = World::start().await?;
    world.kibana.set_answer_delay(Some(b.latency));
    // The world holds one sample alert; the rest go to hosts of their own.
    for i in 1..b.alerts {
        index_alert_on(
            &world,
            &format!("bench-{i:05}"),
            &format!("WS-BENCH-{i:05}"),
        );
    }
    let settings = world.settings_with(&[("POLL_BATCH_SIZE", "500")])?;
    let concurrency = settings.triage.assistant.max_concurrent;
    let metrics_before = counter_total(
        &crate::telemetry::prometheus().render(),
        "triage_bot_ai_calls_total",
    );
    println!(
        "pipeline: {} critical alerts on {} hosts, assistant latency {:.1}s, ASSISTANT_MAX_CONCURRENT={concurrency}",
        b.alerts,
        b.alerts,
        b.latency.as_secs_f64()
    );
    let started = Instant::now();
    let app = App::start(settings.clone(), None).await?;
    // Generous: a stall shows up as a timeout rather than a hang.
    let deadline = b.latency * (b.alerts as u32 * 2 + 10) + Duration::from_secs(60);
    wait_for_incidents(&app, IncidentState::AwaitingApproval, b.alerts, deadline).await?;
    wait_until_settled(&app, deadline).await?;
    let took = started.elapsed();
    let incidents = app.ctx.store.incidents().await?;
    let messages = world
        .slack
        .messages()
        .iter()
        .filter(|m| m.thread_ts.is_none())
        .count();
    let cases = world.kibana.cases().len();
    let ai_calls = world.kibana.calls().len();
    let metric_calls = counter_total(
        &crate::telemetry::prometheus().render(),
        "triage_bot_ai_calls_total",
    ) - metrics_before;
    let overlap = world.kibana.max_answering();
    app.stop().await;
    anyhow::ensure!(
        incidents.len() == b.alerts && messages == b.alerts && cases == b.alerts,
        "expected {} incidents, messages and cases; got {}, {messages}, {cases}",
        b.alerts,
        incidents.len()
    );
    let rounds = b.alerts.div_ceil(concurrency);
    let bound = b.latency * rounds as u32;
    println!(
        "  wall time:            {:.1}s ({} approval messages, {} cases)",
        took.as_secs_f64(),
        messages,
        cases
    );
    println!(
        "  AI-latency bound:     {:.1}s (ceil({} / {concurrency}) x {:.1}s); wall / bound = {:.3}",
        bound.as_secs_f64(),
        b.alerts,
        b.latency.as_secs_f64(),
        took.as_secs_f64() / bound.as_secs_f64()
    );
    println!(
        "  AI calls:             {ai_calls} seen by the assistant ({:.3} per alert); /metrics triage_bot_ai_calls_total +{metric_calls}",
        ai_calls as f64 / b.alerts as f64
    );
    println!("  AI calls at once:     at most {overlap}");

    // The serial loop, on a sample of fresh alerts against the same emulated assistant.
    let sample = b.serial_sample.clamp(1, b.alerts);
    let assistant = ai::build(&settings)?;
    let prompts = Prompts::load(&settings)?;
    let slack = SlackClient::new(&settings.slack.api_url, settings.slack.bot_token.clone())?;
    let calls_before = world.kibana.calls().len();
    let serial_started = Instant::now();
    for i in 0..sample {
        let id = format!("serial-{i:05}");
        let mut doc = crate::samples::alert_document(&id, &chrono::Utc::now().to_rfc3339());
        doc["host"]["name"] = serde_json::json!(format!("WS-SERIAL-{i:05}"));
        let alert = Alert::from_document(&id, crate::samples::ALERT_INDEX, &doc, "@timestamp")?;
        let outcome =
            super::replay::replay_with(&settings, assistant.clone(), &prompts, &slack, &alert)
                .await?;
        slack
            .post_message(&outcome.slack_message)
            .await
            .context("the serial loop's Slack post")?;
    }
    let serial = serial_started.elapsed();
    let serial_calls = world.kibana.calls().len() - calls_before;
    let per_alert = serial / sample as u32;
    let serial_all = per_alert * b.alerts as u32;
    println!(
        "serial loop (one alert at a time, two AI calls each): {sample} alerts in {:.1}s = {:.2}s per alert, {:.1} AI calls per alert",
        serial.as_secs_f64(),
        per_alert.as_secs_f64(),
        serial_calls as f64 / sample as f64
    );
    println!(
        "  extrapolated to {} alerts (measured on {sample}): {:.0}s; pipeline is {:.1}x faster",
        b.alerts,
        serial_all.as_secs_f64(),
        serial_all.as_secs_f64() / took.as_secs_f64()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_are_summed_over_their_labels() {
        let page = "# TYPE triage_bot_ai_calls_total counter\ntriage_bot_ai_calls_total{purpose=\"triage\"} 10\ntriage_bot_ai_calls_total{purpose=\"handler\"} 1\ntriage_bot_ai_calls_totally 5\n";
        assert_eq!(counter_total(page, "triage_bot_ai_calls_total"), 11.0);
    }
}
