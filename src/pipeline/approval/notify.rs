//! Outbound Slack jobs: the approval message, its in-place update after the decision, thread
//! replies and ephemeral notes.

use serde_json::json;

use super::blocks;
use crate::domain::{HandlerTag, IncidentState};
use crate::pipeline::triage::enrich::Enrichment;
use crate::pipeline::{Ctx, JobError};
use crate::runners::Target;
use crate::store::IncidentRow;
use crate::text::escape;

pub fn handler_tag(incident: &IncidentRow) -> HandlerTag {
    HandlerTag {
        slack_id: incident.handler_slack_id.clone(),
        name: incident.handler_name.clone(),
    }
}

/// The approval message for an incident as it stands now: open with buttons while awaiting a
/// decision, else with the outcome in their place. Deterministic, so an update rebuilds it.
pub async fn approval_body(
    ctx: &Ctx,
    incident: &IncidentRow,
) -> Result<serde_json::Value, JobError> {
    let alert = incident.alert().map_err(JobError::permanent)?;
    // The policy's route: its channel, and whether commands may be offered at all.
    let route = crate::pipeline::policy::route_of(&ctx.store, &incident.id).await;
    let summary_only = route.offer == crate::pipeline::policy::Offer::Summary;
    let channel = route
        .channel
        .as_deref()
        .unwrap_or(&ctx.settings.slack.channel);
    if incident.state == IncidentState::TriageFailed {
        let reason = incident.error.as_deref().unwrap_or("unknown error");
        return Ok(blocks::triage_failed_message(
            channel,
            &alert,
            reason,
            incident.raw_answer.as_deref(),
        ));
    }
    let triage = incident
        .triage()
        .ok_or_else(|| JobError::permanent("incident has no triage result"))?;
    let hash = incident.approval_hash.clone().unwrap_or_default();
    let value = format!("{}:{}", incident.id, hash);
    let commands: Vec<_> = ctx
        .store
        .commands(&incident.id)
        .await
        .map_err(JobError::retry)?
        .iter()
        .map(|c| c.proposed())
        .collect();
    let open = incident.state == IncidentState::AwaitingApproval;
    let followup_note = incident.parent_incident.as_ref().map(|_| match incident.source.as_str() {
        "resume" => ":arrows_counterclockwise: triage-bot restarted before these commands completed; they need a fresh approval.".to_string(),
        "revision" => ":memo: Revised by the assistant at an analyst's request; it replaces the proposal above, which can no longer be approved.".to_string(),
        _ => ":speech_balloon: Proposed by the assistant in answer to a question in this thread.".to_string(),
    });
    let note = incident.first_approver.as_ref().map(|u| {
        format!(
            ":hourglass: Approved by <@{u}> at {}; remediation needs a second, different approver.",
            incident.first_approved_at.as_deref().unwrap_or("?")
        )
    });
    // After an edit, the card says so: the list shown is the analyst's, not the AI's.
    let edited_by = ctx
        .store
        .proposal_edits(&incident.id)
        .await
        .map_err(JobError::retry)?
        .last()
        .map(|e| {
            format!(
                "\n:pencil2: Edited by <@{}> at {} before approval; the list above is the edited one.",
                e.edited_by, e.edited_at
            )
        })
        .unwrap_or_default();
    let handler = handler_tag(incident);
    let view = blocks::ApprovalView {
        channel,
        incident: &incident.id,
        alert: &alert,
        triage: &triage,
        commands: if summary_only { &[] } else { &commands },
        handler: &handler,
        approval_value: &value,
        alert_url: Some(alert_url(ctx, &alert)),
        case_url: incident
            .case_id
            .as_deref()
            .map(|c| ctx.settings.kibana.case_url(c)),
        outcome: match (open, summary_only) {
            (false, _) => Some(decision_line(ctx, incident) + &edited_by),
            (true, true) => Some(crate::pipeline::policy::SUMMARY_ONLY_LINE.to_string()),
            (true, false) => None,
        },
        note: if open {
            note.map(|n| n + &edited_by).or(followup_note)
        } else {
            None
        },
        offer_isolate: open
            && !summary_only
            && crate::runners::isolate_offer(&ctx.settings, &alert),
        runs_on: ctx.runner.describe(&Target::of_alert(incident, &alert)),
    };
    let mut message = blocks::approval_message(&view);
    // What the triage was told about the host and user (ENRICHMENT_ENABLED), as a context line
    // under the alert facts.
    if let Ok(Some(data)) = ctx.store.enrichment(&incident.id).await
        && let Ok(e) = serde_json::from_value::<Enrichment>(data)
        && let Some(line) = e.context_line(|id| ctx.settings.kibana.case_url(id))
        && let Some(list) = message["blocks"].as_array_mut()
        && list.len() < 50
    {
        let at = list.len().min(2);
        list.insert(
            at,
            json!({ "type": "context", "elements": [{ "type": "mrkdwn", "text": crate::text::truncate(&line, 2900, "…") }] }),
        );
    }
    Ok(message)
}

/// The alert in Kibana's Security app.
pub fn alert_url(ctx: &Ctx, alert: &crate::domain::Alert) -> String {
    let base = ctx.settings.kibana.app_base();
    format!(
        "{base}/app/security/alerts/redirect/{}?index={}&timestamp={}",
        alert.id.0,
        alert.index,
        alert
            .timestamp
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
    )
}

pub async fn post_approval(
    ctx: &Ctx,
    incident: &IncidentRow,
    attempt: i64,
) -> Result<(), JobError> {
    if incident.slack_ts.is_some() {
        return Ok(());
    }
    let mut body = approval_body(ctx, incident).await?;
    // A follow-up proposal is posted in its parent's thread.
    if let Some(root) = &incident.thread_root_ts {
        body["thread_ts"] = json!(root);
    }
    let channel = crate::pipeline::policy::route_of(&ctx.store, &incident.id)
        .await
        .channel
        .unwrap_or_else(|| ctx.settings.slack.channel.clone());
    // A previous attempt may have posted and died before recording the ts: look before posting
    // again, by the incident id carried in the message metadata.
    if attempt > 1
        && let Ok(Some(ts)) = ctx
            .slack
            .find_incident_message(&channel, &incident.id, incident.thread_root_ts.as_deref())
            .await
    {
        ctx.store
            .set_slack_message(&incident.id, &channel, &ts)
            .await
            .map_err(JobError::retry)?;
        return Ok(());
    }
    let posted = ctx
        .slack
        .post_message(&body)
        .await
        .map_err(JobError::from_client)?;
    ctx.store
        .set_slack_message(&incident.id, &posted.channel, &posted.ts)
        .await
        .map_err(JobError::retry)?;
    tracing::info!(incident.id = %incident.id, slack.ts = %posted.ts, "ApprovalRequested");
    // Alert time → the card in front of a person: the latency the SOC feels.
    if let Ok(alert) = incident.alert() {
        let waited = (chrono::Utc::now() - alert.timestamp)
            .to_std()
            .unwrap_or_default();
        metrics::histogram!("triage_bot_alert_to_card_seconds").record(waited.as_secs_f64());
    }
    // The permalink makes the case point at the conversation; a failure only costs the link.
    match ctx.slack.permalink(&posted.channel, &posted.ts).await {
        Ok(link) => {
            let field = crate::store::incidents::IncidentField::SlackPermalink;
            ctx.store
                .set_field(&incident.id, field, Some(&link))
                .await
                .map_err(JobError::retry)?;
            let text = format!("Approval requested in Slack: {link}");
            ctx.store
                .enqueue(&incident.id, &crate::store::Job::CaseComment { text })
                .await
                .map_err(JobError::retry)?;
            // The description gains the thread link (rewritten from the record, so idempotent).
            ctx.store
                .enqueue(&incident.id, &crate::store::Job::FinalizeCase)
                .await
                .map_err(JobError::retry)?;
        }
        Err(e) => {
            tracing::warn!(incident.id = %incident.id, error = %e, "cannot get the Slack permalink")
        }
    }
    Ok(())
}

/// Rewrites the approval message to match the incident's state (case link added, decision
/// taken, expired, …).
pub async fn update_approval_message(ctx: &Ctx, incident: &IncidentRow) -> Result<(), JobError> {
    let (Some(channel), Some(ts)) = (&incident.slack_channel, &incident.slack_ts) else {
        return Err(JobError::retry(
            "the approval message has not been posted yet",
        ));
    };
    let mut body = approval_body(ctx, incident).await?;
    body["channel"] = json!(channel);
    body["ts"] = json!(ts);
    if let Some(obj) = body.as_object_mut() {
        // chat.update takes neither; the message keeps its metadata.
        obj.remove("unfurl_links");
        obj.remove("unfurl_media");
        obj.remove("metadata");
    }
    ctx.slack
        .update_message(&body)
        .await
        .map_err(JobError::from_client)
}

/// "✅ Approved by <@U1> at 2026-… — running 8 commands on WS-1".
pub fn decision_line(ctx: &Ctx, incident: &IncidentRow) -> String {
    let who = incident
        .decided_by
        .as_deref()
        .map(|u| format!("<@{u}>"))
        .unwrap_or_else(|| "nobody".into());
    let when = incident.decided_at.as_deref().unwrap_or("?");
    let host = escape(&incident.host_name);
    let second = incident
        .first_approver
        .as_deref()
        .filter(|f| Some(*f) != incident.decided_by.as_deref())
        .map(|f| format!(" (first approval by <@{f}>)"))
        .unwrap_or_default();
    match (
        incident.decision.as_deref(),
        incident.approval_scope.as_deref(),
    ) {
        (Some("approved"), Some("investigation")) => format!(
            ":white_check_mark: *Approved (investigation only)* by {who}{second} at {when} — running the read-only commands on {host}; remediation will not run. Results follow in this thread."
        ),
        (Some("approved"), _) => format!(
            ":white_check_mark: *Approved* by {who}{second} at {when} — running the allowed commands above on {host} one after another; results follow in this thread."
        ),
        (Some("declined"), _) => {
            format!(":no_entry: *Declined* by {who} at {when} — nothing will run.")
        }
        _ if incident.state == IncidentState::Superseded => ":memo: *Superseded* by a revised proposal in this thread — these commands will not run from here; decide on the newest proposal.".to_string(),
        _ if incident.state == IncidentState::Expired => format!(
            ":alarm_clock: *Expired* — no decision within {} minutes; nothing will run. Triage manually from the case.",
            ctx.settings.approval.timeout.as_secs() / 60
        ),
        _ => format!("Decision recorded at {when}."),
    }
}

/// The thread note for an alert that joined this incident under the grouping policy.
pub async fn alert_grouped_note(
    ctx: &Ctx,
    incident: &IncidentRow,
    alert_id: &str,
    at: chrono::DateTime<chrono::Utc>,
    alerts: i64,
    (job_id, attempt): (i64, i64),
) -> Result<(), JobError> {
    let text = format!(
        ":repeat: Another alert for this rule on {}: `{}` at {} — grouped into this incident ({alerts} alerts so far) and attached to its case; no new approval request. Ask here if new commands are needed.",
        escape(&incident.host_name),
        escape(alert_id),
        at.format("%Y-%m-%d %H:%M:%S UTC"),
    );
    thread_reply(ctx, incident, &text, job_id, attempt).await
}

/// A reply in the incident's thread. It carries its job id in its metadata, and a retry first
/// looks for it among the thread's replies: an earlier attempt whose answer was lost may have
/// posted it, and a reply must not appear twice.
pub async fn thread_reply(
    ctx: &Ctx,
    incident: &IncidentRow,
    text: &str,
    job_id: i64,
    attempt: i64,
) -> Result<(), JobError> {
    let (Some(channel), Some(ts)) = (&incident.slack_channel, incident.thread_ts()) else {
        return Err(JobError::retry(
            "the incident message has not been posted yet",
        ));
    };
    let key = job_id.to_string();
    if attempt > 1
        && ctx
            .slack
            .find_by_metadata(channel, Some(ts), "reply_job", &key)
            .await
            .map_err(JobError::from_client)?
            .is_some()
    {
        tracing::info!(incident.id = %incident.id, job.id = job_id, "thread reply already posted by an earlier attempt");
        return Ok(());
    }
    let body = json!({
        "channel": channel,
        "thread_ts": ts,
        "text": blocks::fit(text, 3900),
        "unfurl_links": false,
        "unfurl_media": false,
        "metadata": {"event_type": "triage_bot_reply", "event_payload": {"reply_job": key}},
    });
    ctx.slack
        .post_message(&body)
        .await
        .map(|_| ())
        .map_err(JobError::from_client)
}

pub async fn ephemeral(ctx: &Ctx, channel: &str, user: &str, text: &str) -> Result<(), JobError> {
    ctx.slack
        .post_ephemeral(channel, user, text)
        .await
        .map_err(JobError::from_client)
}
