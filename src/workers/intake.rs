//! Alert intake: every `POLL_INTERVAL_SECS`, each source is read (the ingest stage) and each
//! alert handed to the action policy (the policy stage); a page's checkpoint moves only after all
//! its alerts were handed on, so a crash re-reads rather than skips.

use std::sync::Arc;

use crate::config::AlertSource;
use crate::pipeline::Ctx;
use crate::pipeline::ingest::es_alerts::SourcePoll;
use crate::pipeline::policy::{self, Admitted};
use crate::shutdown::Shutdown;

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

/// Polls every source until shutdown.
pub async fn run(ctx: Arc<Ctx>, mut shutdown: Shutdown) {
    loop {
        for source in &ctx.settings.elastic.sources {
            let polled = poll_source(&ctx, source).await;
            if polled.is_ok() {
                ctx.health.poll_succeeded(&source.name);
            }
            match polled {
                Ok(stats) if stats.new + stats.grouped > 0 => {
                    tracing::info!(source = %source.name, new = stats.new, duplicates = stats.duplicates, rejected = stats.rejected, "AlertsPolled");
                    ctx.wake.notify_one();
                }
                Ok(_) => {}
                Err(e) => {
                    metrics::counter!("triage_bot_poll_errors_total", "source" => source.name.clone()).increment(1);
                    tracing::warn!(source = %source.name, error = %e, "alert poll failed; will retry next interval");
                }
            }
        }
        tokio::select! {
            _ = shutdown.wait() => return,
            _ = tokio::time::sleep(ctx.settings.elastic.poll_interval) => {}
        }
    }
}

/// One poll of one source: every page, every alert through the policy.
pub async fn poll_source(ctx: &Ctx, source: &AlertSource) -> anyhow::Result<PollStats> {
    let mut stats = PollStats::default();
    let mut poll = SourcePoll::start(ctx, source).await?;
    while let Some(page) = poll.next_page(ctx).await? {
        stats.rejected += page.rejected;
        for alert in &page.alerts {
            match policy::admit(&ctx.store, &ctx.policy, &source.name, alert).await? {
                Admitted::New(id) => {
                    stats.new += 1;
                    metrics::counter!("triage_bot_alerts_ingested_total", "source" => source.name.clone()).increment(1);
                    tracing::info!(incident.id = %id, alert.id = %alert.id, host.name = %alert.host_name, rule = %alert.rule_name, "AlertReceived");
                }
                Admitted::Grouped(id) => {
                    stats.grouped += 1;
                    metrics::counter!("triage_bot_alerts_grouped_total", "source" => source.name.clone()).increment(1);
                    tracing::info!(incident.id = %id, alert.id = %alert.id, host.name = %alert.host_name, "AlertGrouped");
                }
                Admitted::Duplicate => stats.duplicates += 1,
                Admitted::Held(_) => stats.held += 1,
            }
        }
        poll.checkpoint(ctx, &page).await?;
    }
    Ok(stats)
}
