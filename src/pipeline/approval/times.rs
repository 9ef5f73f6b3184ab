//! Response times, recorded where the audit is: **time to acknowledge** (alert time → the first
//! human decision: an approval, a first approval, an edit, a decline or a revision request) and
//! **time to respond** (alert time → the last approved command finished, or the decline, or the
//! expiry).
//!
//! Both are marked on the incident in the transaction that makes them true, written into the
//! case (a closing comment here; the description table in `record`), and exported as the
//! Prometheus histograms `triage_bot_time_to_acknowledge_seconds` and
//! `triage_bot_time_to_respond_seconds{outcome}` — observed only after the transaction
//! committed, and only the first time, so a retried job never counts twice.

use chrono::{DateTime, Utc};

use crate::store::{IncidentRow, Job, Store, outbox};

/// Seconds from the alert's time to `at` (RFC 3339); `None` when either cannot be read.
pub fn seconds_since_alert(incident: &IncidentRow, at: &str) -> Option<f64> {
    let alert = incident.alert().ok()?;
    let at = DateTime::parse_from_rfc3339(at).ok()?.with_timezone(&Utc);
    Some(((at - alert.timestamp).num_milliseconds() as f64 / 1000.0).max(0.0))
}

/// "45s", "3m 05s", "2h 07m", "1d 03h".
pub fn human(secs: f64) -> String {
    let s = secs.round() as i64;
    match s {
        ..60 => format!("{s}s"),
        60..3600 => format!("{}m {:02}s", s / 60, s % 60),
        3600..86400 => format!("{}h {:02}m", s / 3600, (s % 3600) / 60),
        _ => format!("{}d {:02}h", s / 86400, (s % 86400) / 3600),
    }
}

/// Figures to export once the transaction that marked them has committed.
#[derive(Debug, Default)]
#[must_use = "observe() after the commit"]
pub struct Observed {
    acknowledge: Option<f64>,
    respond: Option<(f64, &'static str)>,
}

impl Observed {
    pub fn merge(&mut self, other: Observed) {
        self.acknowledge = self.acknowledge.or(other.acknowledge);
        self.respond = self.respond.or(other.respond);
    }

    pub fn observe(self) {
        if let Some(s) = self.acknowledge {
            metrics::histogram!("triage_bot_time_to_acknowledge_seconds").record(s);
        }
        if let Some((s, outcome)) = self.respond {
            metrics::histogram!("triage_bot_time_to_respond_seconds", "outcome" => outcome)
                .record(s);
        }
    }
}

/// Marks the first human decision on `incident` by `user` at `at` (a no-op after the first).
pub async fn acknowledged(
    tx: &mut sqlx::AnyConnection,
    incident: &IncidentRow,
    user: &str,
    at: &str,
) -> anyhow::Result<Observed> {
    let fresh = Store::mark_acknowledged(tx, &incident.id, user, at).await?;
    Ok(Observed {
        acknowledge: fresh.then(|| seconds_since_alert(incident, at)).flatten(),
        respond: None,
    })
}

/// Marks the end of the response (`outcome`: executed, execution_failed, declined, expired,
/// interrupted) and queues the closing case comment with both times. A no-op after the first.
pub async fn responded(
    tx: &mut sqlx::AnyConnection,
    incident: &IncidentRow,
    at: &str,
    outcome: &'static str,
) -> anyhow::Result<Observed> {
    let (fresh, superseded) = Store::mark_responded(tx, &incident.id, at).await?;
    if !fresh {
        return Ok(Observed::default());
    }
    // The proposals this one revised end with it: their case records are rewritten too.
    for older in superseded {
        outbox::enqueue(tx, &older, &Job::FinalizeCase).await?;
    }
    let (ack_at, ack_by) = Store::acknowledgement(tx, &incident.id).await?;
    let respond = seconds_since_alert(incident, at);
    let ack = ack_at
        .as_deref()
        .and_then(|a| seconds_since_alert(incident, a));
    let ack_text = match (ack, &ack_by, &ack_at) {
        (Some(s), Some(by), Some(when)) => format!(
            "time to acknowledge **{}** (first decision by Slack user {by} at {when})",
            human(s)
        ),
        _ => "no human decision".to_string(),
    };
    let respond_text = respond
        .map(|s| format!("time to respond **{}** ({outcome} at {at})", human(s)))
        .unwrap_or_else(|| format!("{outcome} at {at}"));
    let alert_at = incident
        .alert()
        .map(|a| crate::store::time_text(a.timestamp))
        .unwrap_or_default();
    let text =
        format!("**Response times** from the alert at {alert_at}: {ack_text}; {respond_text}.");
    outbox::enqueue(tx, &incident.id, &Job::CaseComment { text }).await?;
    Ok(Observed {
        acknowledge: None,
        respond: respond.map(|s| (s, outcome)),
    })
}
