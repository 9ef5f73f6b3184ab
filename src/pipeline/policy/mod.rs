//! The policy stage: what happens to an alert once it is read — the action policy that keeps an
//! alert storm from flooding anyone, and the record of why.
//!
//! Today's rule is grouping: an alert seen before (by any path) is a duplicate and changes
//! nothing; an alert of the same rule on the same host as an incident opened within the grouping
//! window (`POLICY_GROUP_WINDOW_SECS`) joins that incident — its case gets the alert, its thread
//! a note — instead of asking anyone again; anything else opens an incident and queues its
//! triage. Each outcome is one transaction with its audit record and outbox jobs.

use std::time::Duration;

use serde_json::json;

use crate::domain::{Alert, IncidentId};
use crate::store::{Job, Store, outbox};

/// What the policy did with an alert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admitted {
    /// A new incident, queued for triage.
    New(IncidentId),
    /// Joined an existing incident (same rule, same host, within the grouping window).
    Grouped(IncidentId),
    /// Seen before; nothing changed.
    Duplicate,
}

/// Applies the policy to one alert read from `source`. `group_window`: `None` turns grouping off.
pub async fn admit(
    store: &Store,
    source: &str,
    alert: &Alert,
    group_window: Option<Duration>,
) -> anyhow::Result<Admitted> {
    let mut tx = store.write_tx().await?;
    if Store::alert_seen(&mut tx, &alert.id.0).await? {
        return Ok(Admitted::Duplicate);
    }
    if let Some(window) = group_window {
        let since = chrono::Utc::now() - chrono::Duration::from_std(window)?;
        let rule_key = alert
            .rule_id
            .clone()
            .unwrap_or_else(|| alert.rule_name.clone());
        let open =
            Store::recent_incident_for_rule(&mut tx, source, &alert.host_name, &rule_key, since)
                .await?;
        if let Some(incident) = open {
            let alerts = Store::group_alert(&mut tx, &incident, alert).await?;
            let attach = Job::AttachAlert {
                alert_id: alert.id.0.clone(),
            };
            outbox::enqueue(&mut tx, &incident, &attach).await?;
            let note = Job::AlertGroupedNote {
                alert_id: alert.id.0.clone(),
                at: alert.timestamp,
                alerts,
            };
            outbox::enqueue(&mut tx, &incident, &note).await?;
            Store::audit(
                &mut tx,
                &incident,
                "triage-bot",
                "AlertGrouped",
                json!({"alert_id": alert.id.0, "index": alert.index}),
            )
            .await?;
            tx.commit().await?;
            return Ok(Admitted::Grouped(IncidentId(incident)));
        }
    }
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
        json!({"alert_id": alert.id.0, "source": source, "index": alert.index}),
    )
    .await?;
    tx.commit().await?;
    Ok(Admitted::New(id))
}
