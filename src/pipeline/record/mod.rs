//! The audit record in Kibana: one case per incident (found by its tag before creating, so a
//! restart never makes a second), the alert attached, comments as things happen, and a final
//! description holding the whole story — summary, commands, decision, outputs; and, read from
//! the local record, the `report` of response times and how the proposals fared.

pub mod report;
pub mod show;

use std::fmt::Write as _;

use serde_json::json;

use crate::clients::kibana::cases::{MAX_TEXT, NewCase, clip};
use crate::domain::{Alert, CommandStatus, IncidentState};
use crate::pipeline::Ctx;
use crate::pipeline::JobError;
use crate::store::commands::CommandRow;
use crate::store::{IncidentRow, Job};

/// The tag that makes case creation idempotent.
pub fn incident_tag(incident: &str) -> String {
    format!("triage-bot:incident:{incident}")
}

/// `[Critical] <rule> on <host>`, at most 160 characters.
pub fn case_title(alert: &Alert) -> String {
    clip(
        &format!(
            "[{}] {} on {}",
            alert.severity.title(),
            alert.rule_name,
            alert.host_name
        ),
        160,
    )
}

/// MITRE ATT&CK tactic names of the alert's rule (`kibana.alert.rule.threat[].tactic.name`).
pub fn tactics(alert: &Alert) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(threats) = crate::domain::alert::field(&alert.raw, "kibana.alert.rule.threat")
        .and_then(|v| v.as_array())
    {
        for t in threats {
            if let Some(name) = t.pointer("/tactic/name").and_then(|n| n.as_str())
                && !out.iter().any(|o| o == name)
            {
                out.push(name.to_string());
            }
        }
    }
    out
}

/// The case for a new incident: title, tags (incident, rule, host, MITRE tactics), severity,
/// category (the first tactic) and the assignee the routing configuration names for the OS.
pub fn new_case(
    ctx: &Ctx,
    incident: &IncidentRow,
    alert: &Alert,
    commands: &[CommandRow],
) -> NewCase {
    let tactics = tactics(alert);
    let mut tags = vec![
        "triage-bot".to_string(),
        incident_tag(&incident.id),
        format!("rule:{}", alert.rule_name),
        format!("host:{}", alert.host_name),
    ];
    tags.extend(tactics.iter().map(|t| format!("tactic:{t}")));
    let os = alert.os_family.clone().unwrap_or_default();
    let assignees = &ctx.settings.cases.assignees;
    NewCase {
        title: case_title(alert),
        description: description(
            incident,
            alert,
            commands,
            &[],
            runs_on(ctx, incident, alert).as_deref(),
        ),
        tags,
        severity: alert.severity,
        category: tactics.first().cloned(),
        assignee: assignees.get(&os).or_else(|| assignees.get("*")).cloned(),
    }
}

pub async fn create_case(ctx: &Ctx, incident: &IncidentRow) -> Result<(), JobError> {
    let alert = incident.alert().map_err(JobError::permanent)?;
    let tag = incident_tag(&incident.id);
    let case = match &incident.case_id {
        // A retry after the case was recorded: read it again.
        Some(id) => ctx.cases.get(id).await.map_err(JobError::from_client)?,
        None => {
            // Look before creating: an earlier attempt may have created it and died.
            let case = match ctx
                .cases
                .find_by_tag(&tag)
                .await
                .map_err(JobError::from_client)?
            {
                Some(existing) => existing,
                None => {
                    let commands = ctx
                        .store
                        .commands(&incident.id)
                        .await
                        .map_err(JobError::retry)?;
                    let new = new_case(ctx, incident, &alert, &commands);
                    ctx.cases.create(new).await.map_err(JobError::from_client)?
                }
            };
            ctx.store
                .set_case(&incident.id, &case.id, &case.version)
                .await
                .map_err(JobError::retry)?;
            tracing::info!(incident.id = %incident.id, case.id = %case.id, "CaseCreated");
            case
        }
    };
    let case_id = case.id.clone();
    // Attach the alert unless a previous attempt already did.
    if case.total_alerts == 0 {
        keep_version(
            ctx,
            incident,
            &case_id,
            ctx.cases.attach_alert(&case_id, &alert).await,
        )
        .await?;
        let url = ctx.settings.kibana.case_url(&case_id);
        let title = crate::text::escape(&case_title(&alert));
        ctx.store
            .enqueue(
                &incident.id,
                &Job::ThreadReply {
                    text: format!("Audit record: <{url}|Kibana case {title}>"),
                },
            )
            .await
            .map_err(JobError::retry)?;
        // The approval message gains the case link.
        ctx.store
            .enqueue(&incident.id, &Job::UpdateApprovalMessage)
            .await
            .map_err(JobError::retry)?;
    }
    attach_grouped_so_far(ctx, incident, &case_id).await?;
    Ok(())
}

/// Attaches the alerts grouped into the incident that its case does not hold yet — `alert_id`
/// and any grouped after it while this job waited (`policy::admit` queues one waiting job per
/// incident) — one attachment each, each once: also when a previous attempt's answer was lost,
/// or `create_case` already took them with the others grouped before the case existed.
pub async fn attach_grouped(
    ctx: &Ctx,
    incident: &IncidentRow,
    alert_id: &str,
    attempt: i64,
) -> Result<(), JobError> {
    // Before the case exists, `create_case` attaches every alert grouped so far (this one
    // included): waiting here would hold up the case lane, and with it the case itself.
    let Some(case_id) = &incident.case_id else {
        return Ok(());
    };
    // Only this alert is read to check it: an incident in a storm has hundreds.
    if ctx
        .store
        .grouped_alert(&incident.id, alert_id)
        .await
        .map_err(JobError::retry)?
        .is_none()
    {
        return Err(JobError::permanent(format!(
            "alert {alert_id} is not grouped into this incident"
        )));
    }
    let pending = ctx
        .store
        .unattached_grouped(&incident.id)
        .await
        .map_err(JobError::retry)?;
    let in_case = if attempt > 1 && !pending.is_empty() {
        case_alert_ids(ctx, case_id).await?
    } else {
        Default::default()
    };
    for alert in &pending {
        if !in_case.contains(&alert.id.0) {
            keep_version(
                ctx,
                incident,
                case_id,
                ctx.cases.attach_alert(case_id, alert).await,
            )
            .await?;
        }
        ctx.store
            .mark_grouped_attached(&[alert.id.0.as_str()])
            .await
            .map_err(JobError::retry)?;
    }
    Ok(())
}

/// The alert ids a case holds.
async fn case_alert_ids(
    ctx: &Ctx,
    case_id: &str,
) -> Result<std::collections::HashSet<String>, JobError> {
    let case = ctx
        .cases
        .get_raw(case_id)
        .await
        .map_err(JobError::from_client)?;
    let mut ids = std::collections::HashSet::new();
    for c in case["comments"].as_array().into_iter().flatten() {
        if c["type"] == "alert" {
            match &c["alertId"] {
                serde_json::Value::String(id) => {
                    ids.insert(id.clone());
                }
                serde_json::Value::Array(list) => {
                    ids.extend(list.iter().filter_map(|i| i.as_str().map(String::from)));
                }
                _ => {}
            }
        }
    }
    Ok(ids)
}

/// Alerts grouped into the incident before its case existed (their own jobs found no case and
/// left them to this), attached in batches of up to 1,000 (Kibana's limit), skipping any an
/// earlier attempt attached.
async fn attach_grouped_so_far(
    ctx: &Ctx,
    incident: &IncidentRow,
    case_id: &str,
) -> Result<(), JobError> {
    let pending = ctx
        .store
        .unattached_grouped(&incident.id)
        .await
        .map_err(JobError::retry)?;
    if pending.is_empty() {
        return Ok(());
    }
    let in_case = case_alert_ids(ctx, case_id).await?;
    let missing: Vec<&crate::domain::Alert> = pending
        .iter()
        .filter(|a| !in_case.contains(&a.id.0))
        .collect();
    for chunk in missing.chunks(1000) {
        let written = match chunk {
            [one] => ctx.cases.attach_alert(case_id, one).await,
            many => ctx.cases.attach_alerts(case_id, many).await,
        };
        keep_version(ctx, incident, case_id, written).await?;
    }
    let ids: Vec<&str> = pending.iter().map(|a| a.id.0.as_str()).collect();
    ctx.store
        .mark_grouped_attached(&ids)
        .await
        .map_err(JobError::retry)?;
    Ok(())
}

/// Every case write answers with the case's new version; keep it for the next update.
async fn keep_version(
    ctx: &Ctx,
    incident: &IncidentRow,
    case_id: &str,
    written: Result<
        crate::clients::kibana::wire::CaseResponse,
        crate::clients::kibana::KibanaError,
    >,
) -> Result<(), JobError> {
    let case = written.map_err(JobError::from_client)?;
    ctx.store
        .set_case(&incident.id, case_id, &case.version)
        .await
        .map_err(JobError::retry)
}

/// The marker that makes a comment idempotent: a retried job finds its own earlier comment.
fn job_marker(job_id: i64) -> String {
    format!("<!-- triage-bot job {job_id} -->")
}

/// Adds a comment (split if over Kibana's limit). On a retry, parts that already reached the
/// case (their response was lost) are not posted again.
pub async fn comment(
    ctx: &Ctx,
    incident: &IncidentRow,
    text: &str,
    job_id: i64,
    attempt: i64,
) -> Result<(), JobError> {
    let Some(case_id) = &incident.case_id else {
        return Err(JobError::retry("the case has not been created yet"));
    };
    let marker = job_marker(job_id);
    let existing: Vec<String> = if attempt > 1 {
        ctx.cases
            .comment_texts(case_id)
            .await
            .map_err(JobError::from_client)?
    } else {
        Vec::new()
    };
    let parts = split_text(text, MAX_TEXT - marker.len() - 20);
    for (i, part) in parts.iter().enumerate() {
        let tagged = format!("{part}\n\n{marker}<!-- part {} -->", i + 1);
        if existing.iter().any(|c| c == &tagged) {
            continue;
        }
        keep_version(
            ctx,
            incident,
            case_id,
            ctx.cases.comment(case_id, &tagged).await,
        )
        .await?;
    }
    Ok(())
}

/// Sets the case status (`open`, `in-progress`, `closed`), at the current version.
pub async fn set_status(ctx: &Ctx, incident: &IncidentRow, status: &str) -> Result<(), JobError> {
    let (Some(case_id), Some(version)) = (&incident.case_id, &incident.case_version) else {
        return Err(JobError::retry("the case has not been created yet"));
    };
    let current = ctx
        .cases
        .get(case_id)
        .await
        .map_err(JobError::from_client)?;
    if current.status == status {
        return Ok(());
    }
    let version = if current.version.is_empty() {
        version.clone()
    } else {
        current.version
    };
    keep_version(
        ctx,
        incident,
        case_id,
        ctx.cases
            .update(case_id, &version, json!({ "status": status }))
            .await,
    )
    .await?;
    tracing::info!(incident.id = %incident.id, case.id = %case_id, status, "CaseStatusChanged");
    Ok(())
}

/// Rewrites the description with the full record once the incident has settled, and sets the
/// status it calls for: closed after a fully successful run (if configured), else unchanged.
pub async fn finalize(ctx: &Ctx, incident: &IncidentRow) -> Result<(), JobError> {
    let (Some(case_id), Some(version)) = (&incident.case_id, &incident.case_version) else {
        return Err(JobError::retry("the case has not been created yet"));
    };
    if incident.parent_incident.is_some() {
        // A follow-up proposal shares its parent's case: its decision and results are recorded
        // as comments; the description stays the parent's story.
        return Ok(());
    }
    let alert = incident.alert().map_err(JobError::permanent)?;
    let commands = ctx
        .store
        .commands(&incident.id)
        .await
        .map_err(JobError::retry)?;
    let edits = ctx
        .store
        .proposal_edits(&incident.id)
        .await
        .map_err(JobError::retry)?;
    let text = description(
        incident,
        &alert,
        &commands,
        &edits,
        runs_on(ctx, incident, &alert).as_deref(),
    );
    let mut fields = json!({ "description": text });
    if ctx.settings.cases.close_on_success && incident.state == IncidentState::Executed {
        fields["status"] = json!("closed");
    }
    // An update that changes nothing (Kibana's 406) comes back as the case as it is: see
    // `CasesClient::update`.
    let written = ctx.cases.update(case_id, version, fields).await;
    keep_version(ctx, incident, case_id, written).await?;
    Ok(())
}

fn split_text(text: &str, max: usize) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    if chars.len() <= max {
        return vec![text.to_string()];
    }
    let body_max = max - 20;
    let parts: Vec<String> = chars.chunks(body_max).map(|c| c.iter().collect()).collect();
    let n = parts.len();
    parts
        .into_iter()
        .enumerate()
        .map(|(i, p)| format!("(part {}/{n})\n{p}", i + 1))
        .collect()
}

/// The case description: alert facts, AI summary, commands with their risk, the decision, and
/// every command's output — outputs cut evenly so the whole stays within 30,000 characters.
/// How the incident's commands reach its host (runner and address), for the record.
fn runs_on(ctx: &Ctx, incident: &IncidentRow, alert: &Alert) -> Option<String> {
    ctx.runner
        .describe(&crate::runners::Target::of_alert(incident, alert))
}

pub fn description(
    incident: &IncidentRow,
    alert: &Alert,
    commands: &[CommandRow],
    edits: &[crate::store::edits::EditRow],
    runs_on: Option<&str>,
) -> String {
    let mut head = String::new();
    let _ = writeln!(
        head,
        "Triaged automatically by triage-bot (incident `{}`).\n",
        incident.id
    );
    let _ = writeln!(head, "| Field | Value |\n|---|---|");
    let row =
        |k: &str, v: &str| format!("| {k} | {} |\n", v.replace('|', "\\|").replace('\n', " "));
    head.push_str(&row("Rule", &alert.rule_name));
    head.push_str(&row("Severity", alert.severity.as_str()));
    head.push_str(&row(
        "Risk score",
        &alert
            .risk_score
            .map(|r| r.to_string())
            .unwrap_or_else(|| "n/a".into()),
    ));
    head.push_str(&row("Host", &alert.host_name));
    head.push_str(&row("IP addresses", &alert.host_ips.join(", ")));
    if let Some(how) = runs_on {
        head.push_str(&row("Commands run via", how));
    }
    head.push_str(&row("OS", alert.os_family.as_deref().unwrap_or("unknown")));
    head.push_str(&row(
        "User",
        alert.user_name.as_deref().unwrap_or("unknown"),
    ));
    head.push_str(&row("Time", &alert.timestamp.to_rfc3339()));
    head.push_str(&row("Alert id", &alert.id.0));
    head.push_str(&row("Index", &alert.index));
    head.push_str(&row("State", incident.state.as_str()));
    // Response times, beside the evidence (`approval::times`).
    use crate::pipeline::approval::times::{human, seconds_since_alert};
    if let Some(at) = &incident.acknowledged_at
        && let Some(s) = seconds_since_alert(incident, at)
    {
        let by = incident.acknowledged_by.as_deref().unwrap_or("?");
        head.push_str(&row(
            "Time to acknowledge",
            &format!("{} (first decision by Slack user {by} at {at})", human(s)),
        ));
    }
    if let Some(at) = &incident.responded_at
        && let Some(s) = seconds_since_alert(incident, at)
    {
        head.push_str(&row(
            "Time to respond",
            &format!("{} (ended {at})", human(s)),
        ));
    }
    if let Some(by) = &incident.superseded_by {
        head.push_str(&row("Superseded by", &format!("revised proposal `{by}`")));
    }
    if let Some(link) = &incident.slack_permalink {
        head.push_str(&row("Slack thread", link));
    }

    match incident.triage() {
        Some(t) => {
            let _ = writeln!(head, "\n## AI summary\n\n{}\n", t.summary);
            if !t.warnings.is_empty() {
                let _ = writeln!(head, "Parser warnings: {}\n", t.warnings.join("; "));
            }
        }
        None => {
            let _ = writeln!(
                head,
                "\n## Triage failed\n\n{}\n",
                incident.error.as_deref().unwrap_or("unknown reason")
            );
            if let Some(raw) = &incident.raw_answer {
                let _ = writeln!(
                    head,
                    "The assistant answered:\n\n````\n{}\n````\n",
                    clip(raw, 10_000)
                );
            }
        }
    }
    if !commands.is_empty() {
        let _ = writeln!(head, "## Proposed commands\n");
        for c in commands {
            let p = c.proposed();
            let reasons = if p.reasons.is_empty() {
                String::new()
            } else {
                format!(": {}", p.reasons.join("; "))
            };
            let _ = writeln!(
                head,
                "{}. [{} — {}{reasons}] `{}`",
                c.seq,
                p.kind.as_str(),
                p.risk.label(),
                c.text.replace('`', "'")
            );
        }
    }
    if !edits.is_empty() {
        // The AI's proposal as it was, and what the analyst changed before approving.
        let _ = writeln!(head, "\n## Edited before approval\n");
        for e in edits {
            let before = e.before_text.replace('`', "'");
            let line = match (e.change.as_str(), &e.after_text) {
                ("dropped", _) => format!("left out: `{before}`"),
                ("edited", Some(after)) => {
                    format!("`{before}` → `{}`", after.replace('`', "'"))
                }
                _ => format!("kept: `{before}`"),
            };
            let _ = writeln!(
                head,
                "- {}. [{}] {line} (Slack user {}, {})",
                e.seq,
                e.kind.as_str(),
                e.edited_by,
                e.edited_at
            );
        }
    }
    let _ = writeln!(head, "\n## Decision\n");
    match (
        incident.decision.as_deref(),
        &incident.decided_by,
        &incident.decided_at,
    ) {
        (Some(d), Some(by), Some(at)) => {
            let _ = writeln!(
                head,
                "**{d}** by Slack user {by} at {at}, for host {}.",
                incident.host_name
            );
        }
        _ if incident.state == IncidentState::TriageFailed => {
            let _ = writeln!(head, "No decision: nothing was proposed.");
        }
        _ if incident.state == IncidentState::Superseded => {
            let _ = writeln!(
                head,
                "Not decided: superseded by the revised proposal `{}`, which an analyst asked for; its decision and results are in the comments.",
                incident.superseded_by.as_deref().unwrap_or("?")
            );
        }
        _ => {
            let _ = writeln!(head, "Awaiting approval in Slack.");
        }
    }
    let ran: Vec<&CommandRow> = commands
        .iter()
        .filter(|c| c.started_at.is_some() || c.status != CommandStatus::Proposed)
        .collect();
    if ran.is_empty() {
        return clip(&head, MAX_TEXT);
    }
    let _ = writeln!(head, "\n## Results\n");
    let framing: usize = ran.iter().map(|c| c.text.chars().count() + 160).sum();
    let budget = MAX_TEXT.saturating_sub(head.chars().count() + framing);
    let per_command = (budget / ran.len()).max(200);
    for c in ran {
        let _ = writeln!(head, "### {}. `{}`\n", c.seq, c.text.replace('`', "'"));
        let exit = c
            .exit_code
            .map(|e| e.to_string())
            .unwrap_or_else(|| "none".into());
        let _ = writeln!(
            head,
            "Status: **{}**, exit code {exit}, started {}, finished {}.",
            c.status,
            c.started_at.as_deref().unwrap_or("-"),
            c.finished_at.as_deref().unwrap_or("-")
        );
        if let Some(err) = &c.error {
            let _ = writeln!(head, "Error: {err}");
        }
        let mut out = c.stdout.clone().unwrap_or_default();
        if let Some(stderr) = c.stderr.as_deref().filter(|s| !s.is_empty()) {
            out.push_str("\n[stderr]\n");
            out.push_str(stderr);
        }
        if !out.trim().is_empty() {
            let _ = writeln!(head, "\n````\n{}\n````", clip(&out, per_command));
        }
        head.push('\n');
    }
    clip(&head, MAX_TEXT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_comments_are_split_not_cut() {
        let text = "a".repeat(65_000);
        let parts = split_text(&text, MAX_TEXT);
        assert_eq!(parts.len(), 3);
        assert!(parts.iter().all(|p| p.chars().count() <= MAX_TEXT));
        let joined: usize = parts
            .iter()
            .map(|p| p.split_once('\n').map_or(0, |(_, body)| body.len()))
            .sum();
        assert_eq!(joined, 65_000);
    }
}
