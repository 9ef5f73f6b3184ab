//! `triage-bot case show INCIDENT_ID`: the local audit record of one incident — what was
//! proposed, who decided what and when, what ran with which result, and where its case is —
//! read from the database alone, so it works while Kibana is down.

use std::fmt::Write as _;

use crate::store::Store;

/// Renders the record; `case_base` is the Kibana base URL for the case link, if known.
pub async fn render(
    store: &Store,
    incident_id: &str,
    case_base: Option<&str>,
) -> anyhow::Result<String> {
    let incident = store
        .incident(incident_id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("no incident {incident_id} in this database"))?;
    let alert = incident.alert()?;
    let mut out = String::new();
    let _ = writeln!(out, "Incident {}  [{}]", incident.id, incident.state);
    let _ = writeln!(
        out,
        "Alert     {} ({}) — {} on {}",
        alert.id, alert.index, alert.rule_name, alert.host_name
    );
    let _ = writeln!(
        out,
        "Severity  {}  risk {}",
        alert.severity.as_str(),
        alert
            .risk_score
            .map(|r| r.to_string())
            .unwrap_or_else(|| "n/a".into())
    );
    let _ = writeln!(out, "Received  {}", incident.created_at);
    for grouped in store.grouped_alerts(&incident.id).await? {
        let _ = writeln!(
            out,
            "Grouped   {} ({}) at {}",
            grouped.id,
            grouped.index,
            grouped.timestamp.to_rfc3339()
        );
    }
    match (&incident.case_id, case_base) {
        (Some(id), Some(base)) => {
            let _ = writeln!(out, "Case      {id}  {base}/app/security/cases/{id}");
        }
        (Some(id), None) => {
            let _ = writeln!(out, "Case      {id}");
        }
        (None, _) => {
            let _ = writeln!(out, "Case      (not created yet)");
        }
    }
    if let Some(link) = &incident.slack_permalink {
        let _ = writeln!(out, "Slack     {link}");
    }
    let handler = incident
        .handler_slack_id
        .clone()
        .or(incident.handler_name.clone())
        .unwrap_or_else(|| "unassigned".into());
    let _ = writeln!(out, "Handler   {handler}");
    if let Some(t) = incident.triage() {
        let _ = writeln!(out, "\nAI summary\n  {}", t.summary);
    } else if let Some(e) = &incident.error {
        let _ = writeln!(out, "\nError\n  {e}");
    }
    let _ = writeln!(out, "\nDecision");
    match (
        &incident.decision,
        &incident.decided_by,
        &incident.decided_at,
    ) {
        (Some(d), Some(by), Some(at)) => {
            let scope = incident
                .approval_scope
                .as_deref()
                .map(|s| format!(" ({s})"))
                .unwrap_or_default();
            let _ = writeln!(out, "  {d}{scope} by {by} at {at}");
            if let (Some(first), Some(at)) = (&incident.first_approver, &incident.first_approved_at)
            {
                let _ = writeln!(out, "  first approval by {first} at {at}");
            }
        }
        _ => {
            let _ = writeln!(out, "  none");
        }
    }
    let commands = store.commands(&incident.id).await?;
    let _ = writeln!(out, "\nCommands ({})", commands.len());
    for c in &commands {
        let p = c.proposed();
        let exit = c
            .exit_code
            .map(|e| format!(" exit {e}"))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "  {}. [{} · {}] {} → {}{exit}",
            c.seq,
            p.kind.as_str(),
            p.risk.label(),
            c.text,
            c.status
        );
        if !p.reasons.is_empty() {
            let _ = writeln!(out, "       reasons: {}", p.reasons.join("; "));
        }
        if let Some(e) = &c.error {
            let _ = writeln!(out, "       error: {e}");
        }
        if let (Some(s), Some(f)) = (&c.started_at, &c.finished_at) {
            let _ = writeln!(out, "       ran {s} → {f}");
        }
    }
    let _ = writeln!(out, "\nAudit trail");
    for a in store.audit_trail(&incident.id).await? {
        let _ = writeln!(
            out,
            "  {}  {:<22} {:<12} {}",
            a.at, a.event, a.actor, a.detail
        );
    }
    Ok(out)
}
