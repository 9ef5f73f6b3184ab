//! Polls the Elasticsearch alert indices for new alerts of the configured severity.
//!
//! Each source has a checkpoint (the newest alert time seen). A poll reads from the checkpoint
//! minus an overlap — alerts can be indexed a little after their timestamp — sorted by time and a
//! tie-breaker, paging with `search_after`; the seen set (the incidents' unique alert ids) makes
//! the overlap harmless. A restart therefore neither re-triages nor skips an alert.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use crate::app::Ctx;
use crate::config::{AlertSource, SeverityFilter};
use crate::domain::Alert;
use crate::store::incidents::Ingested;
use crate::workers::shutdown::Shutdown;

/// Late-arriving alerts within this window behind the checkpoint are still picked up.
const OVERLAP: Duration = Duration::from_secs(300);
const MAX_PAGES_PER_POLL: usize = 50;

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PollStats {
    pub new: usize,
    /// Joined an existing incident (same rule, same host, within the grouping window).
    pub grouped: usize,
    pub duplicates: usize,
    pub rejected: usize,
}

/// Polls every source forever, until shutdown.
pub async fn run(ctx: Arc<Ctx>, mut shutdown: Shutdown) {
    loop {
        for source in &ctx.settings.elastic.sources {
            match poll_source(&ctx, source).await {
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

/// The search body of one page.
pub fn query(
    source: &AlertSource,
    since: DateTime<Utc>,
    size: usize,
    after: Option<&[Value]>,
) -> Value {
    let severity = match &source.filter {
        SeverityFilter::Term { field, value } => json!({ "term": { field.as_str(): value } }),
        SeverityFilter::AtLeast { field, value } => {
            json!({ "range": { field.as_str(): { "gte": value } } })
        }
    };
    let mut body = json!({
        "size": size,
        "query": { "bool": { "filter": [
            severity,
            { "range": { source.timestamp_field.as_str(): { "gte": since.to_rfc3339_opts(chrono::SecondsFormat::Millis, true) } } }
        ] } },
        "sort": [
            { source.timestamp_field.as_str(): { "order": "asc" } },
            { source.tiebreak_field.as_str(): { "order": "asc", "unmapped_type": "keyword" } }
        ]
    });
    if let Some(after) = after {
        body["search_after"] = json!(after);
    }
    body
}

pub async fn poll_source(ctx: &Ctx, source: &AlertSource) -> anyhow::Result<PollStats> {
    let es = &ctx.settings.elastic;
    let since = match ctx.store.checkpoint(&source.name).await? {
        Some(ms) => DateTime::from_timestamp_millis(ms).unwrap_or_else(Utc::now) - OVERLAP,
        None => Utc::now() - es.initial_lookback,
    };
    let mut stats = PollStats::default();
    let mut after: Option<Vec<Value>> = None;
    for _ in 0..MAX_PAGES_PER_POLL {
        let body = query(source, since, es.batch_size, after.as_deref());
        let hits = ctx.elastic.search(&source.index, body).await?;
        let mut newest: Option<DateTime<Utc>> = None;
        for hit in &hits {
            match Alert::from_document(&hit.id, &hit.index, &hit.source, &source.timestamp_field) {
                Ok(alert) => {
                    newest = newest.max(Some(alert.timestamp));
                    match ctx
                        .store
                        .ingest(&source.name, &alert, es.group_window)
                        .await?
                    {
                        Ingested::New(id) => {
                            stats.new += 1;
                            metrics::counter!("triage_bot_alerts_ingested_total", "source" => source.name.clone()).increment(1);
                            tracing::info!(incident.id = %id, alert.id = %alert.id, host.name = %alert.host_name, rule = %alert.rule_name, "AlertReceived");
                        }
                        Ingested::Grouped(id) => {
                            stats.grouped += 1;
                            metrics::counter!("triage_bot_alerts_grouped_total", "source" => source.name.clone()).increment(1);
                            tracing::info!(incident.id = %id, alert.id = %alert.id, host.name = %alert.host_name, "AlertGrouped");
                        }
                        Ingested::Duplicate => stats.duplicates += 1,
                    }
                }
                Err(e) => {
                    stats.rejected += 1;
                    if ctx
                        .store
                        .reject_document(
                            &source.name,
                            &hit.id,
                            &hit.index,
                            &e.to_string(),
                            &hit.source,
                        )
                        .await?
                    {
                        metrics::counter!("triage_bot_alerts_rejected_total", "source" => source.name.clone()).increment(1);
                        tracing::warn!(source = %source.name, doc.id = %hit.id, doc.index = %hit.index, reason = %e, "AlertRejected: kept in ingest_rejections");
                    }
                }
            }
        }
        if let Some(t) = newest {
            ctx.store
                .save_checkpoint(&source.name, t.timestamp_millis())
                .await?;
        }
        match hits.last() {
            Some(last) if hits.len() >= es.batch_size && !last.sort.is_empty() => {
                after = Some(last.sort.clone())
            }
            _ => break,
        }
    }
    Ok(stats)
}
