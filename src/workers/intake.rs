//! Alert intake: every `POLL_INTERVAL_SECS`, each source is read (the ingest stage) and each
//! alert handed to the action policy (the policy stage); a page's checkpoint moves only after all
//! its alerts were handed on, so a crash re-reads rather than skips. Every intake path — this
//! poll, the Kibana webhook push, the index-action worker — hands its alerts on through
//! [`accept`], the one call of the policy stage.

use std::sync::Arc;
use std::time::Duration;

use crate::config::AlertSource;
use crate::domain::Alert;
use crate::pipeline::Ctx;
use crate::pipeline::ingest::es_alerts::SourcePoll;
use crate::pipeline::policy::{self, Admitted};
use crate::shutdown::Shutdown;
use crate::store::Lead;

/// What one poll of a source did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PollStats {
    pub new: usize,
    /// Joined an existing incident (same rule, same host, within the grouping window).
    pub grouped: usize,
    pub duplicates: usize,
    pub rejected: usize,
    /// Recorded without an incident of their own: suppressed, unmatched, in a digest, a
    /// status note.
    pub held: usize,
}

impl PollStats {
    pub fn add(&mut self, other: PollStats) {
        self.new += other.new;
        self.grouped += other.grouped;
        self.duplicates += other.duplicates;
        self.rejected += other.rejected;
        self.held += other.held;
    }
}

/// The longest wait between polls while Elasticsearch keeps failing.
const MAX_BACKOFF: Duration = Duration::from_secs(300);

/// Polls every alert source until shutdown.
pub async fn run(ctx: Arc<Ctx>, shutdown: Shutdown) {
    let sources = ctx.settings.elastic.sources.clone();
    let interval = ctx.settings.elastic.poll_interval;
    run_sources(ctx, sources, interval, Lead::Main, shutdown).await
}

/// Polls `sources` every `interval` until shutdown. While polls fail (Elasticsearch down,
/// credentials revoked) the wait doubles up to five minutes and ONE warning says so; the next
/// success says it recovered — an outage is two log lines, not one per interval.
pub async fn run_sources(
    ctx: Arc<Ctx>,
    sources: Vec<AlertSource>,
    interval: Duration,
    lead: Lead,
    mut shutdown: Shutdown,
) {
    // Per source: consecutive failed polls.
    let mut failures = vec![0u32; sources.len()];
    let mut leading = false;
    loop {
        if !ctx.replica.leads(lead).await {
            // Another replica polls (each alert is read by one); this one takes over the lead
            // when that one is gone.
            tokio::select! {
                _ = shutdown.wait() => return,
                _ = tokio::time::sleep(interval) => {}
            }
            continue;
        }
        if !leading {
            leading = true;
            ctx.health.polling_started();
        }
        for (source, failed) in sources.iter().zip(failures.iter_mut()) {
            let polled = poll_source(&ctx, source).await;
            let note = outage_note(*failed, polled.is_ok());
            match polled {
                Ok(stats) => {
                    ctx.health.poll_succeeded(&source.name);
                    if note == Some(OutageNote::Recovered) {
                        tracing::info!(source = %source.name, failed_polls = *failed, "AlertPollRecovered: polling again");
                    }
                    *failed = 0;
                    if stats.new + stats.grouped > 0 {
                        tracing::info!(source = %source.name, new = stats.new, duplicates = stats.duplicates, rejected = stats.rejected, "AlertsPolled");
                    }
                }
                Err(e) => {
                    metrics::counter!("triage_bot_poll_errors_total", "source" => source.name.clone()).increment(1);
                    if note == Some(OutageNote::Failing) {
                        tracing::warn!(source = %source.name, index = %source.index, error = %e, "AlertPollFailing: retrying with backoff (up to every {}s); logged again when it recovers", MAX_BACKOFF.as_secs());
                    } else {
                        tracing::debug!(source = %source.name, error = %e, "alert poll still failing");
                    }
                    *failed = failed.saturating_add(1);
                }
            }
        }
        let wait = backoff(interval, failures.iter().copied().max().unwrap_or(0));
        tokio::select! {
            _ = shutdown.wait() => return,
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

/// What an outage is worth saying: the first failure, and the first success after failures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutageNote {
    Failing,
    Recovered,
}

/// The note for a poll that `ok` or not, after `failed_before` failures in a row.
pub fn outage_note(failed_before: u32, ok: bool) -> Option<OutageNote> {
    match (ok, failed_before) {
        (false, 0) => Some(OutageNote::Failing),
        (true, n) if n > 0 => Some(OutageNote::Recovered),
        _ => None,
    }
}

/// The wait after `failures` failed polls in a row: the interval, doubling per failure, at most
/// [`MAX_BACKOFF`] (never less than the interval).
pub fn backoff(interval: Duration, failures: u32) -> Duration {
    if failures == 0 {
        return interval;
    }
    let factor = 2u32.saturating_pow(failures.min(16));
    interval
        .saturating_mul(factor)
        .min(MAX_BACKOFF.max(interval))
}

/// One poll of one source: every page, every alert through [`accept`].
pub async fn poll_source(ctx: &Ctx, source: &AlertSource) -> anyhow::Result<PollStats> {
    let mut stats = PollStats::default();
    let mut poll = SourcePoll::start(ctx, source).await?;
    while let Some(page) = poll.next_page(ctx).await? {
        stats.add(accept(ctx, &source.name, &page.alerts).await?);
        stats.rejected += page.rejected;
        poll.checkpoint(ctx, &page).await?;
    }
    Ok(stats)
}

/// Hands alerts that arrived by any path (the alert poll, the Kibana webhook, the index-action
/// worker) to the policy stage, and wakes the workers when there is new work. An alert already
/// seen by another path is a duplicate there (the seen set is keyed by alert id), so it is
/// triaged once.
pub async fn accept(ctx: &Ctx, source: &str, alerts: &[Alert]) -> anyhow::Result<PollStats> {
    let stats = admit_all(&ctx.store, &ctx.policy, source, alerts).await?;
    if stats.new + stats.grouped > 0 {
        ctx.wake.notify_one();
    }
    Ok(stats)
}

/// The one place the policy stage is called: each alert through `policy::admit`, counted and
/// logged. Takes the store rather than the whole context so the benchmark can measure it alone.
pub async fn admit_all(
    store: &crate::store::Store,
    engine: &policy::Engine,
    source: &str,
    alerts: &[Alert],
) -> anyhow::Result<PollStats> {
    let mut stats = PollStats::default();
    for alert in alerts {
        match policy::admit(store, engine, source, alert).await? {
            Admitted::New(id) => {
                stats.new += 1;
                metrics::counter!("triage_bot_alerts_ingested_total", "source" => source.to_string()).increment(1);
                tracing::info!(incident.id = %id, alert.id = %alert.id, host.name = %alert.host_name, rule = %alert.rule_name, "AlertReceived");
            }
            Admitted::Grouped(id) => {
                stats.grouped += 1;
                metrics::counter!("triage_bot_alerts_grouped_total", "source" => source.to_string()).increment(1);
                tracing::info!(incident.id = %id, alert.id = %alert.id, host.name = %alert.host_name, "AlertGrouped");
            }
            Admitted::Duplicate => stats.duplicates += 1,
            Admitted::Held(_) => stats.held += 1,
        }
    }
    Ok(stats)
}

/// Polls the index a Kibana Index connector writes rule actions to (`INDEX_ACTION_INDEX`), until
/// shutdown; returns at once when none is configured.
pub async fn run_index_action(ctx: Arc<Ctx>, shutdown: Shutdown) {
    let Some(action) = ctx.settings.intake.index_action.clone() else {
        return;
    };
    tracing::info!(index = %action.source.index, interval_secs = action.interval.as_secs_f64(), "index-action worker started");
    run_sources(
        ctx,
        vec![action.source],
        action.interval,
        Lead::IndexAction,
        shutdown,
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An outage of any length is two log lines: when it starts and when it ends.
    #[test]
    fn an_outage_is_noted_once_and_its_end_once() {
        let outcomes = [true, false, false, false, false, true, true, false, true];
        let mut failed = 0;
        let mut notes = Vec::new();
        for ok in outcomes {
            notes.extend(outage_note(failed, ok));
            failed = if ok { 0 } else { failed + 1 };
        }
        use OutageNote::*;
        assert_eq!(notes, [Failing, Recovered, Failing, Recovered]);
    }

    #[test]
    fn backoff_doubles_up_to_five_minutes() {
        let i = Duration::from_secs(30);
        assert_eq!(backoff(i, 0), i);
        assert_eq!(backoff(i, 1), Duration::from_secs(60));
        assert_eq!(backoff(i, 3), Duration::from_secs(240));
        assert_eq!(backoff(i, 4), MAX_BACKOFF);
        assert_eq!(backoff(i, 1000), MAX_BACKOFF);
        let long = Duration::from_secs(600);
        assert_eq!(backoff(long, 2), long);
    }
}
