//! Reads the Elasticsearch alert indices for new alerts of the configured severity.
//!
//! Each source has a checkpoint (the newest alert time seen). A poll reads from the checkpoint
//! minus an overlap — alerts can be indexed a little after their timestamp — sorted by time and a
//! tie-breaker, paging with `search_after`; the seen set (the incidents' unique alert ids, kept
//! by the policy stage) makes the overlap harmless. A restart therefore neither re-triages nor
//! skips an alert. A document that is not a usable alert is kept in `ingest_rejections` with the
//! reason, and never stops the poll.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use crate::clients::elastic::SearchHit;
use crate::config::{AlertSource, SeverityFilter};
use crate::domain::Alert;
use crate::pipeline::Ctx;

/// Late-arriving alerts within this window behind the checkpoint are still picked up.
const OVERLAP: Duration = Duration::from_secs(300);
const MAX_PAGES_PER_POLL: usize = 50;

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

/// One page of a source: its usable alerts, in order.
#[derive(Debug, Default)]
pub struct Page {
    pub alerts: Vec<Alert>,
    /// Documents kept in `ingest_rejections` instead.
    pub rejected: usize,
}

/// One poll of one source: pages from the checkpoint (minus the overlap) on, at most
/// `MAX_PAGES_PER_POLL` of them.
pub struct SourcePoll<'a> {
    source: &'a AlertSource,
    since: DateTime<Utc>,
    after: Option<Vec<Value>>,
    pages: usize,
    done: bool,
}

impl<'a> SourcePoll<'a> {
    /// Starts where the source's checkpoint says (or the initial lookback, the first time).
    pub async fn start(ctx: &Ctx, source: &'a AlertSource) -> anyhow::Result<Self> {
        let since = match ctx.store.checkpoint(&source.name).await? {
            Some(ms) => DateTime::from_timestamp_millis(ms).unwrap_or_else(Utc::now) - OVERLAP,
            None => Utc::now() - ctx.settings.elastic.initial_lookback,
        };
        Ok(Self {
            source,
            since,
            after: None,
            pages: 0,
            done: false,
        })
    }

    /// Reads the next page, or `None` when the poll is over. Undecodable documents are
    /// recorded as rejections here.
    pub async fn next_page(&mut self, ctx: &Ctx) -> anyhow::Result<Option<Page>> {
        if self.done || self.pages >= MAX_PAGES_PER_POLL {
            return Ok(None);
        }
        self.pages += 1;
        let (source, batch_size) = (self.source, ctx.settings.elastic.batch_size);
        let body = query(source, self.since, batch_size, self.after.as_deref());
        let hits = ctx.elastic.search(&source.index, body).await?;
        let mut page = Page::default();
        for hit in &hits {
            let rejected = match hit {
                SearchHit::Decoded(hit) => {
                    match Alert::from_document(
                        &hit.id,
                        &hit.index,
                        &hit.source,
                        &source.timestamp_field,
                    ) {
                        Ok(alert) => {
                            page.alerts.push(alert);
                            continue;
                        }
                        Err(e) => (&hit.id, &hit.index, e.to_string(), hit.source.clone()),
                    }
                }
                // Kept with its reason; the cursor still moves past it.
                SearchHit::Undecodable(u) => (
                    &u.id,
                    &u.index,
                    u.reason.clone(),
                    json!({ "undecodable_excerpt": u.excerpt }),
                ),
            };
            let (id, index, reason, doc) = rejected;
            page.rejected += 1;
            if ctx
                .store
                .reject_document(&source.name, id, index, &reason, &doc)
                .await?
            {
                metrics::counter!("triage_bot_alerts_rejected_total", "source" => source.name.clone()).increment(1);
                tracing::warn!(source = %source.name, doc.id = %id, doc.index = %index, reason = %reason, "AlertRejected: kept in ingest_rejections");
            }
        }
        match hits.last() {
            Some(last) if hits.len() >= batch_size && !last.sort().is_empty() => {
                self.after = Some(last.sort().to_vec())
            }
            _ => self.done = true,
        }
        Ok(Some(page))
    }

    /// Moves the checkpoint to the newest alert of a page whose alerts were all handed on.
    pub async fn checkpoint(&self, ctx: &Ctx, page: &Page) -> anyhow::Result<()> {
        if let Some(newest) = page.alerts.iter().map(|a| a.timestamp).max() {
            ctx.store
                .save_checkpoint(&self.source.name, newest.timestamp_millis())
                .await?;
        }
        Ok(())
    }
}
