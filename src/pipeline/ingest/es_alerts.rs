//! Reads the Elasticsearch alert indices for new alerts of the configured severity (and the
//! source's other conditions: rule names, rule tags, workflow status — all in the query), and the
//! index a Kibana Index connector writes rule actions to, whose documents each carry a rule's
//! hits (`SourceKind::IndexAction`, read by [`super::action_doc`]).
//!
//! Each source has a checkpoint: the `search_after` cursor (time + tie-breaker) of the last hit
//! handed on. A poll first continues from the cursor, sorted by time and tie-breaker — so a storm
//! of any size is read to its end over as many polls as it takes, never re-reading the same first
//! pages — and then sweeps the window just behind the checkpoint for alerts indexed after their
//! timestamp (late arrivals), a bounded number of pages. The seen set (the incidents' unique alert
//! ids, kept by the policy stage) makes re-reads harmless. A restart therefore neither re-triages
//! nor skips an alert. A document that is not a usable alert — or cannot even be decoded — is
//! kept in `ingest_rejections` with the reason, and the cursor moves past it.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::action_doc;
use crate::clients::elastic::SearchHit;
use crate::config::{AlertSource, SeverityFilter, SourceKind};
use crate::domain::Alert;
use crate::pipeline::Ctx;

/// Late-arriving alerts within this window behind the checkpoint are still picked up.
const OVERLAP: Duration = Duration::from_secs(300);
/// Pages the cursor pass reads per poll; the next poll goes on from where it stopped.
const MAX_PAGES_PER_POLL: usize = 50;
/// Pages the late-arrival sweep reads per poll (it re-reads the window each time).
const MAX_SWEEP_PAGES: usize = 10;

/// The search body of one page.
pub fn query(
    source: &AlertSource,
    since: DateTime<Utc>,
    until: Option<DateTime<Utc>>,
    size: usize,
    after: Option<&[Value]>,
) -> Value {
    let mut filter = Vec::new();
    match &source.filter {
        SeverityFilter::Term { field, value } => {
            filter.push(json!({ "term": { field.as_str(): value } }))
        }
        SeverityFilter::Terms { field, values } => {
            filter.push(json!({ "terms": { field.as_str(): values } }))
        }
        SeverityFilter::AtLeast { field, value } => {
            filter.push(json!({ "range": { field.as_str(): { "gte": value } } }))
        }
        SeverityFilter::Any => {}
    }
    for c in &source.conditions {
        filter.push(json!({ "terms": { c.field.as_str(): c.values } }));
    }
    let mut range = json!({ "gte": since.to_rfc3339_opts(chrono::SecondsFormat::Millis, true) });
    if let Some(until) = until {
        range["lte"] = json!(until.to_rfc3339_opts(chrono::SecondsFormat::Millis, true));
    }
    filter.push(json!({ "range": { source.timestamp_field.as_str(): range } }));
    let mut body = json!({
        "size": size,
        "query": { "bool": { "filter": filter } },
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
    /// The cursor after this page (the last hit's sort values), when it moves the checkpoint:
    /// pages of the cursor pass do, pages of the late sweep do not.
    cursor: Option<(i64, Vec<Value>)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pass {
    /// Onwards from the checkpoint's cursor.
    Cursor,
    /// Back over the overlap window behind where the poll started, for late arrivals.
    Sweep,
    Done,
}

/// One poll of one source: the cursor pass, then the late-arrival sweep.
pub struct SourcePoll<'a> {
    source: &'a AlertSource,
    /// Where the cursor pass starts: the checkpoint time (or the initial lookback).
    since: DateTime<Utc>,
    after: Option<Vec<Value>>,
    /// The checkpoint this poll started from, for the sweep's window (`None`: first poll).
    start: Option<DateTime<Utc>>,
    pass: Pass,
    pages: usize,
}

impl<'a> SourcePoll<'a> {
    /// Starts where the source's checkpoint says (or the initial lookback, the first time).
    pub async fn start(ctx: &Ctx, source: &'a AlertSource) -> anyhow::Result<Self> {
        let checkpoint = ctx.store.checkpoint(&source.name).await?;
        let start = checkpoint
            .as_ref()
            .and_then(|(ms, _)| DateTime::from_timestamp_millis(*ms));
        let (since, after) = match checkpoint {
            // A checkpoint without a cursor (written by an older version) re-reads the overlap.
            Some((_, None)) => (start.unwrap_or_else(Utc::now) - OVERLAP, None),
            Some((_, cursor)) => (start.unwrap_or_else(Utc::now), cursor),
            None => (
                source
                    .start_time
                    .unwrap_or_else(|| Utc::now() - ctx.settings.elastic.initial_lookback),
                None,
            ),
        };
        Ok(Self {
            source,
            since,
            after,
            start,
            pass: Pass::Cursor,
            pages: 0,
        })
    }

    /// Reads the next page, or `None` when the poll is over. Documents that are not usable
    /// alerts are recorded as rejections here.
    pub async fn next_page(&mut self, ctx: &Ctx) -> anyhow::Result<Option<Page>> {
        // A pass that used up its pages hands over to the next one.
        loop {
            let limit = match self.pass {
                Pass::Cursor => MAX_PAGES_PER_POLL,
                Pass::Sweep => MAX_SWEEP_PAGES,
                Pass::Done => return Ok(None),
            };
            if self.pages < limit {
                break;
            }
            self.next_pass();
        }
        self.pages += 1;
        let (source, batch_size) = (self.source, self.source.batch_size.max(1));
        let (since, until) = match self.pass {
            Pass::Sweep => {
                let start = self.start.unwrap_or_else(Utc::now);
                (start - OVERLAP, Some(start))
            }
            _ => (self.since, None),
        };
        let body = query(source, since, until, batch_size, self.after.as_deref());
        let hits = ctx.elastic.search(&source.index, body).await?;
        let mut page = Page::default();
        for hit in &hits {
            let rejected: Vec<(String, String, String, Value)> = match hit {
                SearchHit::Decoded(hit) => match source.kind {
                    SourceKind::Alerts => match Alert::from_document(
                        &hit.id,
                        &hit.index,
                        &hit.source,
                        &source.timestamp_field,
                    ) {
                        Ok(alert) => {
                            page.alerts.push(alert);
                            continue;
                        }
                        Err(e) => vec![(
                            hit.id.clone(),
                            hit.index.clone(),
                            e.to_string(),
                            hit.source.clone(),
                        )],
                    },
                    // An action document: each of its hits is an alert, or rejected alone.
                    SourceKind::IndexAction => {
                        match action_doc::entries(&hit.id, &hit.index, &hit.source) {
                            Ok(entries) => {
                                page.alerts.extend(entries.alerts);
                                entries
                                    .rejected
                                    .into_iter()
                                    .map(|r| (r.doc_id, r.index, r.reason, r.doc))
                                    .collect()
                            }
                            Err(reason) => vec![(
                                hit.id.clone(),
                                hit.index.clone(),
                                format!("index-action document: {reason}"),
                                hit.source.clone(),
                            )],
                        }
                    }
                },
                // Kept with its reason; the cursor still moves past it.
                SearchHit::Undecodable(u) => vec![(
                    u.id.clone(),
                    u.index.clone(),
                    u.reason.clone(),
                    json!({ "undecodable_excerpt": u.excerpt }),
                )],
            };
            for (id, index, reason, doc) in rejected {
                page.rejected += 1;
                record_rejection(ctx, &source.name, &id, &index, &reason, &doc).await?;
            }
        }
        if let Some(last) = hits.last()
            && !last.sort().is_empty()
        {
            self.after = Some(last.sort().to_vec());
            if self.pass == Pass::Cursor {
                let ts = last
                    .sort()
                    .first()
                    .and_then(Value::as_i64)
                    .or_else(|| {
                        page.alerts
                            .iter()
                            .map(|a| a.timestamp.timestamp_millis())
                            .max()
                    })
                    .unwrap_or_else(|| self.since.timestamp_millis());
                page.cursor = Some((ts, last.sort().to_vec()));
            }
        }
        if hits.len() < batch_size || hits.last().is_none_or(|h| h.sort().is_empty()) {
            self.next_pass();
        }
        Ok(Some(page))
    }

    fn next_pass(&mut self) {
        self.pass = match self.pass {
            // The first poll of a source has no window behind it to sweep.
            Pass::Cursor if self.start.is_some() => Pass::Sweep,
            _ => Pass::Done,
        };
        self.after = None;
        self.pages = 0;
    }

    /// Moves the checkpoint past a page whose alerts were all handed on.
    pub async fn checkpoint(&self, ctx: &Ctx, page: &Page) -> anyhow::Result<()> {
        if let Some((ts, cursor)) = &page.cursor {
            ctx.store
                .save_checkpoint(&self.source.name, *ts, cursor)
                .await?;
        }
        Ok(())
    }
}

/// Keeps a document (or an entry of one) that could not be an alert, with the reason, in
/// `ingest_rejections`; counted and logged the first time only.
pub async fn record_rejection(
    ctx: &Ctx,
    source: &str,
    id: &str,
    index: &str,
    reason: &str,
    doc: &Value,
) -> anyhow::Result<()> {
    if ctx
        .store
        .reject_document(source, id, index, reason, doc)
        .await?
    {
        metrics::counter!("triage_bot_alerts_rejected_total", "source" => source.to_string())
            .increment(1);
        tracing::warn!(source = %source, doc.id = %id, doc.index = %index, reason = %reason, "AlertRejected: kept in ingest_rejections");
    }
    Ok(())
}
