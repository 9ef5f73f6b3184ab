//! The policy stage: what happens to an alert once it is read — the action policies that keep
//! an alert storm from flooding anyone, and the record of why.
//!
//! - [`kql`]: the `match` language (a KQL subset) over the alert document;
//! - [`file`]: the policy file (`POLICY_FILE`, TOML), validated at start-up; without one, the
//!   built-in default reproduces the original grouping (same rule + same host within
//!   `POLICY_GROUP_WINDOW_SECS` joins the open incident, each join a thread note);
//! - [`decide`]: the pure decision — policy, suppression, frequency → outcome and action;
//! - this module: [`admit`] loads the facts, decides, and applies the verdict in one
//!   transaction with its dispatch outcome, audit record and outbox jobs; [`digest_tick`] and
//!   [`post_digest`] send the digests; [`index_outcomes`] copies outcomes to Elasticsearch;
//!   [`refresh_kibana_windows`] follows Kibana's maintenance windows.
//!
//! An alert seen before with the same status changes nothing and records nothing (re-reads
//! of a page are normal); every other evaluation records exactly one dispatch outcome.

pub mod decide;
pub mod file;
pub mod kql;
#[cfg(test)]
mod tests;

use std::sync::RwLock;
use std::sync::atomic::{AtomicBool, Ordering};

use chrono::{DateTime, Utc};
use serde_json::json;

use crate::domain::{Alert, IncidentId};
use crate::pipeline::{Ctx, JobError};
use crate::store::dispatch::{OutcomeRecord, parse_time};
use crate::store::{Job, Store, outbox};
pub use decide::{Action, AlertStatus, Facts, KibanaWindow, Note, Outcome, Verdict};
pub use file::{Offer, Policies, Route};

/// What the policy did with an alert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admitted {
    /// A new incident, queued for triage.
    New(IncidentId),
    /// Joined an existing incident (its group within the policy's window).
    Grouped(IncidentId),
    /// Seen before with the same status; nothing changed, nothing recorded.
    Duplicate,
    /// Recorded with this outcome and no incident of its own (suppressed, unmatched, counted
    /// into a digest, or a status note on an incident already open).
    Held(Outcome),
}

/// The time the policies use for windows, throttles, snoozes and digests.
#[derive(Debug)]
pub enum Clock {
    /// Wall-clock time at start plus the tokio clock's progress since: monotonic in
    /// production, and it follows `tokio::time::pause`/`advance` in tests.
    Tokio {
        start_utc: DateTime<Utc>,
        start: tokio::time::Instant,
    },
    /// Moved only by [`Clock::advance`] (tests that also touch the database, whose pool timers
    /// would make a paused tokio clock jump on its own).
    Manual(std::sync::Mutex<DateTime<Utc>>),
}

impl Default for Clock {
    fn default() -> Self {
        Self::Tokio {
            start_utc: Utc::now(),
            start: tokio::time::Instant::now(),
        }
    }
}

impl Clock {
    pub fn manual(at: DateTime<Utc>) -> Self {
        Self::Manual(std::sync::Mutex::new(at))
    }

    pub fn now(&self) -> DateTime<Utc> {
        match self {
            Self::Tokio { start_utc, start } => {
                let elapsed = tokio::time::Instant::now().duration_since(*start);
                *start_utc + chrono::Duration::from_std(elapsed).unwrap_or_default()
            }
            Self::Manual(t) => *t.lock().unwrap_or_else(|e| e.into_inner()),
        }
    }

    /// Moves a manual clock on (a tokio clock moves with `tokio::time::advance`).
    pub fn advance(&self, by: std::time::Duration) {
        if let Self::Manual(t) = self {
            let mut t = t.lock().unwrap_or_else(|e| e.into_inner());
            *t += chrono::Duration::from_std(by).unwrap_or_default();
        }
    }
}

/// The policies in force, the clock, and what Kibana says about maintenance windows.
#[derive(Debug)]
pub struct Engine {
    pub policies: Policies,
    pub clock: Clock,
    kibana_windows: RwLock<Vec<KibanaWindow>>,
    /// Set once Kibana answered that it has no maintenance-window API (logged once).
    kibana_windows_unavailable: AtomicBool,
}

impl Engine {
    pub fn new(policies: Policies) -> Self {
        Self {
            policies,
            clock: Clock::default(),
            kibana_windows: RwLock::new(Vec::new()),
            kibana_windows_unavailable: AtomicBool::new(false),
        }
    }

    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// The policies of `POLICY_FILE`, else the built-in default.
    pub fn from_settings(settings: &crate::config::Settings) -> anyhow::Result<Self> {
        let policies = match &settings.policy.file {
            Some(path) => Policies::load(path)?,
            None => Policies::default_grouping(settings.elastic.group_window),
        };
        tracing::info!(
            policies = policies.policies.len(),
            maintenance_windows = policies.maintenance.len(),
            file = policies.origin.as_deref().unwrap_or("(built-in default)"),
            "PoliciesLoaded"
        );
        Ok(Self::new(policies))
    }

    /// Kibana maintenance windows running now (as last fetched).
    pub fn kibana_windows(&self) -> Vec<KibanaWindow> {
        self.kibana_windows
            .read()
            .map(|w| w.clone())
            .unwrap_or_default()
    }

    pub fn set_kibana_windows(&self, windows: Vec<KibanaWindow>) {
        if let Ok(mut w) = self.kibana_windows.write() {
            *w = windows;
        }
    }
}

/// Loads what the decision for `alert` depends on, inside `conn`'s transaction. `None`: seen
/// before with the same status (a re-read; nothing to decide).
async fn facts(
    conn: &mut sqlx::AnyConnection,
    engine: &Engine,
    source: &str,
    alert: &Alert,
    now: DateTime<Utc>,
) -> anyhow::Result<Option<Facts>> {
    let status = AlertStatus::of(&alert.raw);
    let last = Store::last_alert_status(conn, &alert.id.0).await?;
    let seen_before = match last {
        Some(s) if s == status.as_str() => return Ok(None),
        Some(_) => true,
        // Seen by a path that recorded no outcome (or before outcomes were recorded).
        None if Store::alert_seen(conn, &alert.id.0).await? => return Ok(None),
        None => false,
    };
    let mut facts = Facts {
        seen_before,
        kibana_windows: engine.kibana_windows(),
        ..Default::default()
    };
    if let Some(policy) = engine.policies.select(&alert.raw)
        && let Some(key) = decide::group_key(policy, alert, source)
        && let Some(g) = Store::policy_group(conn, &policy.name, &key).await?
    {
        facts.group = Some(decide::GroupState {
            incident: g.incident_id,
            opened_at: parse_time(&g.opened_at).unwrap_or(now),
            last_notified_at: parse_time(&g.last_notified_at).unwrap_or(now),
            status: g.status,
        });
    }
    facts.snoozes = Store::active_snoozes(conn, now)
        .await?
        .into_iter()
        .filter_map(|s| {
            Some(decide::Snooze {
                until: parse_time(&s.until)?,
                kind: s.kind,
                value: s.value,
            })
        })
        .collect();
    Ok(Some(facts))
}

/// What the policies would do with `alert` now, without doing it (`triage-bot explain`).
/// `None`: seen before with the same status, so it would change nothing.
pub async fn explain(
    store: &Store,
    engine: &Engine,
    source: &str,
    alert: &Alert,
) -> anyhow::Result<Option<Verdict>> {
    let now = engine.clock.now();
    let mut conn = store.pool.acquire().await?;
    Ok(facts(&mut conn, engine, source, alert, now)
        .await?
        .map(|f| decide::decide(&engine.policies, alert, source, &f, now)))
}

/// Whether `alert` was seen before with the same status — a re-read that changes nothing. Most
/// alerts a poll reads are such re-reads (the overlap behind the checkpoint, the late sweep), so
/// they are answered from a plain read instead of queueing for the database's one write lock;
/// [`facts`] checks again inside the write transaction.
async fn unchanged(store: &Store, alert: &Alert) -> anyhow::Result<bool> {
    let mut conn = store.pool.acquire().await?;
    let status = AlertStatus::of(&alert.raw);
    Ok(
        match Store::last_alert_status(&mut conn, &alert.id.0).await? {
            Some(last) => last == status.as_str(),
            None => Store::alert_seen(&mut conn, &alert.id.0).await?,
        },
    )
}

/// Applies the policies to one alert read from `source`.
pub async fn admit(
    store: &Store,
    engine: &Engine,
    source: &str,
    alert: &Alert,
) -> anyhow::Result<Admitted> {
    let now = engine.clock.now();
    if unchanged(store, alert).await? {
        return Ok(Admitted::Duplicate);
    }
    let mut tx = store.write_tx().await?;
    let Some(facts) = facts(&mut tx, engine, source, alert, now).await? else {
        return Ok(Admitted::Duplicate);
    };
    let v = decide::decide(&engine.policies, alert, source, &facts, now);
    let policy = v
        .policy
        .as_deref()
        .and_then(|n| engine.policies.policies.iter().find(|p| p.name == n));
    let status = AlertStatus::of(&alert.raw);
    let mut incident: Option<String> = None;
    let mut digest_window = None;
    let admitted = match &v.action {
        Action::Nothing => Admitted::Held(v.outcome),
        Action::Open => {
            let id = IncidentId::new();
            if !Store::open_incident(&mut tx, &id, source, alert).await? {
                return Ok(Admitted::Duplicate);
            }
            outbox::enqueue(&mut tx, &id.0, &Job::Triage).await?;
            Store::audit(
                &mut tx,
                &id.0,
                "triage-bot",
                "AlertReceived",
                json!({"alert_id": alert.id.0, "source": source, "index": alert.index,
                       "policy": v.policy, "reason": v.reason}),
            )
            .await?;
            if let Some(p) = policy {
                let route = serde_json::to_string(&p.route)?;
                Store::set_incident_policy(&mut tx, &id.0, &p.name, &route).await?;
                if let Some(key) = &v.group_key {
                    Store::open_group(&mut tx, &p.name, key, &id.0, now).await?;
                }
            }
            incident = Some(id.0.clone());
            Admitted::New(id)
        }
        Action::Join {
            incident: inc,
            note,
        } => {
            let alerts = Store::group_alert(&mut tx, inc, alert).await?;
            // The attach job takes every alert of the incident not yet in its case, so one
            // waiting job is enough (a storm queues one per incident, not one per alert).
            let attach = Job::AttachAlert {
                alert_id: alert.id.0.clone(),
            };
            if !Store::job_waiting(&mut tx, inc, attach.name()).await? {
                outbox::enqueue(&mut tx, inc, &attach).await?;
            }
            let job = match note {
                Note::None => None,
                Note::Grouped => Some(Job::AlertGroupedNote {
                    alert_id: alert.id.0.clone(),
                    at: alert.timestamp,
                    alerts,
                }),
                Note::Reminder => Some(Job::ThreadReply {
                    text: format!(
                        ":repeat: Still firing: {alerts} alerts in this group so far, the latest on {} ({}).",
                        crate::text::escape(&alert.host_name),
                        crate::text::escape(&alert.rule_name)
                    ),
                }),
                Note::Status(s) => Some(Job::ThreadReply {
                    text: status_text(alert, *s),
                }),
            };
            if let Some(job) = job {
                outbox::enqueue(&mut tx, inc, &job).await?;
                if let (Some(p), Some(key)) = (policy, &v.group_key) {
                    let group_status = match note {
                        Note::Status(s) => s.as_str(),
                        _ => "active",
                    };
                    Store::group_notified(&mut tx, &p.name, key, now, group_status).await?;
                }
            }
            Store::audit(
                &mut tx,
                inc,
                "triage-bot",
                "AlertGrouped",
                json!({"alert_id": alert.id.0, "index": alert.index, "policy": v.policy,
                       "outcome": v.outcome.as_str(), "reason": v.reason}),
            )
            .await?;
            incident = Some(inc.clone());
            Admitted::Grouped(IncidentId(inc.clone()))
        }
        Action::StatusNote {
            incident: inc,
            status,
        } => {
            let job = Job::ThreadReply {
                text: status_text(alert, *status),
            };
            outbox::enqueue(&mut tx, inc, &job).await?;
            if let (Some(p), Some(key)) = (policy, &v.group_key) {
                Store::group_notified(&mut tx, &p.name, key, now, status.as_str()).await?;
            }
            incident = Some(inc.clone());
            Admitted::Held(v.outcome)
        }
        Action::Digest { start, end } => {
            if let Some(p) = policy {
                Store::open_digest(&mut tx, &p.name, *start, *end, p.route.channel.as_deref())
                    .await?;
            }
            digest_window = Some(*start);
            Admitted::Held(v.outcome)
        }
    };
    Store::record_outcome(
        &mut tx,
        &OutcomeRecord {
            alert_id: &alert.id.0,
            source,
            policy: v.policy.as_deref(),
            outcome: v.outcome.as_str(),
            reason: &v.reason,
            rule: &alert.rule_name,
            host: &alert.host_name,
            alert_status: status.as_str(),
            incident_id: incident.as_deref(),
            digest_window,
            at: now,
        },
    )
    .await?;
    tx.commit().await?;
    metrics::counter!("triage_bot_dispatch_outcomes_total",
        "policy" => v.policy.clone().unwrap_or_default(), "outcome" => v.outcome.as_str())
    .increment(1);
    if matches!(v.outcome, Outcome::Suppressed | Outcome::Unmatched) {
        tracing::info!(alert.id = %alert.id, host.name = %alert.host_name, policy = v.policy.as_deref().unwrap_or("-"), outcome = v.outcome.as_str(), reason = %v.reason, "AlertHeld");
    }
    Ok(admitted)
}

fn status_text(alert: &Alert, status: AlertStatus) -> String {
    let what = match status {
        AlertStatus::Recovered => ":white_check_mark: Recovered",
        AlertStatus::Closed => ":white_check_mark: Closed in Kibana",
        AlertStatus::Acknowledged => ":eyes: Acknowledged in Kibana",
        AlertStatus::Active => ":rotating_light: Active again",
    };
    format!(
        "{what}: {} on {} (alert {}).",
        crate::text::escape(&alert.rule_name),
        crate::text::escape(&alert.host_name),
        crate::text::escape(&alert.id.0)
    )
}

/// The route an incident was opened under (the default route when its policy set none).
pub async fn route_of(store: &Store, incident: &str) -> Route {
    match store.incident_route(incident).await {
        Ok(Some(json)) => serde_json::from_str(&json).unwrap_or_default(),
        _ => Route::default(),
    }
}

/// Shown in place of the buttons on a card whose policy offers the summary only.
pub const SUMMARY_ONLY_LINE: &str = ":information_source: Summary only: this alert's policy offers no commands here. Follow your runbook, or see the case.";

/// The outbox incident id a digest's message job is filed under (digests have no incident).
pub fn digest_job_key(policy: &str, window_start: &str) -> String {
    format!("digest:{policy}:{window_start}")
}

/// Queues the message of every digest window that has ended, and wakes the outbox. Returns
/// how many.
pub async fn digest_tick(ctx: &Ctx) -> anyhow::Result<usize> {
    let queued = queue_due_digests(&ctx.store, &ctx.policy).await?;
    if queued > 0 {
        ctx.wake.notify_one();
    }
    Ok(queued)
}

/// Queues a [`Job::PostDigest`] for every digest window ended by the engine's clock, once each.
pub async fn queue_due_digests(store: &Store, engine: &Engine) -> anyhow::Result<usize> {
    let due = store.due_digests(engine.clock.now()).await?;
    let mut queued = 0;
    for d in due {
        let mut tx = store.write_tx().await?;
        if !Store::mark_digest_queued(&mut tx, &d.policy, &d.window_start).await? {
            continue;
        }
        let job = Job::PostDigest {
            policy: d.policy.clone(),
            window_start: d.window_start.clone(),
            window_end: d.window_end.clone(),
            channel: d.channel.clone(),
        };
        outbox::enqueue(&mut tx, &digest_job_key(&d.policy, &d.window_start), &job).await?;
        tx.commit().await?;
        queued += 1;
    }
    Ok(queued)
}

/// The digest message: counts per rule and host, no commands, no buttons.
pub fn digest_message(
    channel: &str,
    policy: &str,
    window: (&str, &str),
    counts: &[(String, String, i64)],
) -> serde_json::Value {
    use crate::text::escape;
    let total: i64 = counts.iter().map(|c| c.2).sum();
    let mut per_rule: Vec<(String, i64)> = Vec::new();
    let mut per_host: Vec<(String, i64)> = Vec::new();
    for (rule, host, n) in counts {
        match per_rule.iter_mut().find(|(r, _)| r == rule) {
            Some(e) => e.1 += n,
            None => per_rule.push((rule.clone(), *n)),
        }
        match per_host.iter_mut().find(|(h, _)| h == host) {
            Some(e) => e.1 += n,
            None => per_host.push((host.clone(), *n)),
        }
    }
    per_rule.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    per_host.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    // Slack's section text is capped at 3,000 characters: the top 20 of each, then a count.
    let list = |items: &[(String, i64)]| {
        let mut lines: Vec<String> = items
            .iter()
            .take(20)
            .map(|(k, n)| format!("• {} — {n}", escape(k)))
            .collect();
        if items.len() > 20 {
            lines.push(format!("… and {} more", items.len() - 20));
        }
        lines.join("\n")
    };
    let title = format!(
        "Digest `{}`: {total} alerts from {} to {}",
        escape(policy),
        window.0,
        window.1
    );
    json!({
        "channel": channel,
        "text": title,
        "blocks": [
            { "type": "section", "text": { "type": "mrkdwn", "text": title } },
            { "type": "section", "text": { "type": "mrkdwn", "text": format!("*Per rule*\n{}", list(&per_rule)) } },
            { "type": "section", "text": { "type": "mrkdwn", "text": format!("*Per host*\n{}", list(&per_host)) } },
            { "type": "context", "elements": [{ "type": "mrkdwn", "text": "Summary only: no triage, no commands. `triage-bot explain` tells why an alert landed here." }] }
        ],
        "unfurl_links": false,
        "unfurl_media": false,
    })
}

/// Posts one digest (an outbox job on the Slack lane).
pub async fn post_digest(
    ctx: &Ctx,
    policy: &str,
    window: (&str, &str),
    channel: Option<&str>,
) -> Result<(), JobError> {
    let counts = ctx
        .store
        .digest_counts(policy, window.0)
        .await
        .map_err(JobError::from)?;
    let channel = channel.unwrap_or(&ctx.settings.slack.channel);
    let body = digest_message(channel, policy, window, &counts);
    let posted = ctx
        .slack
        .post_message(&body)
        .await
        .map_err(JobError::from_client)?;
    tracing::info!(policy, window.start = window.0, slack.ts = %posted.ts, alerts = counts.iter().map(|c| c.2).sum::<i64>(), "DigestPosted");
    Ok(())
}

/// Copies recorded outcomes to `DISPATCH_OUTCOME_INDEX` (when set), a batch at a time; the
/// database stays the record, the index is for Kibana. Returns how many were copied.
pub async fn index_outcomes(ctx: &Ctx) -> anyhow::Result<usize> {
    let Some(index) = &ctx.settings.policy.outcome_index else {
        return Ok(0);
    };
    let rows = ctx.store.unindexed_outcomes(500).await?;
    if rows.is_empty() {
        return Ok(0);
    }
    let docs: Vec<(String, serde_json::Value)> = rows
        .iter()
        .map(|r| {
            (
                format!("outcome-{}", r.id),
                json!({
                    "@timestamp": r.at,
                    "event": { "kind": "event", "action": r.outcome, "reason": r.reason },
                    "outcome": r.outcome,
                    "policy": r.policy,
                    "reason": r.reason,
                    "kibana": { "alert": { "uuid": r.alert_id, "rule": { "name": r.rule }, "status": r.alert_status } },
                    "host": { "name": r.host },
                    "source": r.source,
                    "incident_id": r.incident_id,
                    "digest_window": r.digest_window,
                }),
            )
        })
        .collect();
    ctx.elastic.bulk_index(index, &docs).await?;
    let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
    ctx.store.mark_outcomes_indexed(&ids).await?;
    Ok(ids.len())
}

/// Fetches the Kibana maintenance windows running now. Kibana versions without the API
/// (404) or a key without the privilege (403) leave only the local schedules, logged once.
pub async fn refresh_kibana_windows(ctx: &Ctx) -> anyhow::Result<()> {
    if !ctx.settings.policy.kibana_maintenance_windows {
        return Ok(());
    }
    match ctx.cases.http().running_maintenance_windows().await {
        Ok(Some(windows)) => {
            let windows = windows
                .into_iter()
                .map(|w| KibanaWindow {
                    scope: w.scope_kql.as_deref().and_then(|k| kql::parse(k).ok()),
                    id: w.id,
                    title: w.title,
                })
                .collect();
            ctx.policy.set_kibana_windows(windows);
        }
        Ok(None) => {
            if !ctx
                .policy
                .kibana_windows_unavailable
                .swap(true, Ordering::Relaxed)
            {
                tracing::warn!(
                    "Kibana's maintenance-window API is not available (older Kibana or no privilege); only the policy file's maintenance windows apply"
                );
            }
            ctx.policy.set_kibana_windows(Vec::new());
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot read Kibana maintenance windows; keeping the last known")
        }
    }
    Ok(())
}
