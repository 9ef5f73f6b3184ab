//! Outbound Slack jobs: the approval message, its in-place update after the decision, thread
//! replies and ephemeral notes.

use serde_json::json;

use super::blocks::{self, HandlerTag};
use crate::app::Ctx;
use crate::domain::IncidentState;
use crate::store::IncidentRow;
use crate::workers::JobError;

pub fn handler_tag(incident: &IncidentRow) -> HandlerTag {
    HandlerTag {
        slack_id: incident.handler_slack_id.clone(),
        name: incident.handler_name.clone(),
    }
}

/// The approval message body for an incident (deterministic, so the update can rebuild it).
pub async fn approval_body(
    ctx: &Ctx,
    incident: &IncidentRow,
) -> Result<serde_json::Value, JobError> {
    let alert = incident.alert().map_err(JobError::permanent)?;
    let channel = &ctx.settings.slack.channel;
    if incident.state() == Some(IncidentState::TriageFailed) {
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
    Ok(blocks::approval_message(
        channel,
        &incident.id,
        &alert,
        &triage,
        &commands,
        &handler_tag(incident),
        &value,
        None,
    ))
}

pub async fn post_approval(
    ctx: &Ctx,
    incident: &IncidentRow,
    attempt: i64,
) -> Result<(), JobError> {
    if incident.slack_ts.is_some() {
        return Ok(());
    }
    let body = approval_body(ctx, incident).await?;
    let channel = ctx.settings.slack.channel.clone();
    // A previous attempt may have posted and died before recording the ts: look before posting
    // again, by the incident id carried in the message metadata.
    if attempt > 1
        && let Ok(Some(ts)) = ctx
            .slack
            .find_incident_message(&channel, &incident.id)
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
    Ok(())
}

pub async fn update_approval_message(ctx: &Ctx, incident: &IncidentRow) -> Result<(), JobError> {
    let (Some(channel), Some(ts)) = (&incident.slack_channel, &incident.slack_ts) else {
        return Err(JobError::retry(
            "the approval message has not been posted yet",
        ));
    };
    let original = approval_body(ctx, incident).await?;
    let line = decision_line(incident);
    let mut body = blocks::decided_message(&original, &line);
    body["channel"] = json!(channel);
    body["ts"] = json!(ts);
    ctx.slack
        .update_message(&body)
        .await
        .map_err(JobError::from_client)
}

/// "✅ Approved by <@U1> at 2026-… — running 8 commands on WS-1".
pub fn decision_line(incident: &IncidentRow) -> String {
    let who = incident
        .decided_by
        .as_deref()
        .map(|u| format!("<@{u}>"))
        .unwrap_or_else(|| "nobody".into());
    let when = incident.decided_at.as_deref().unwrap_or("?");
    match incident.decision.as_deref() {
        Some("approved") => format!(
            ":white_check_mark: *Approved* by {who} at {when} — running the commands above on {} one after another; results follow in this thread.",
            blocks::escape(&incident.host_name)
        ),
        Some("declined") => format!(":no_entry: *Declined* by {who} at {when} — nothing will run."),
        _ => format!("Decision recorded at {when}."),
    }
}

pub async fn thread_reply(ctx: &Ctx, incident: &IncidentRow, text: &str) -> Result<(), JobError> {
    let (Some(channel), Some(ts)) = (&incident.slack_channel, &incident.slack_ts) else {
        return Err(JobError::retry(
            "the incident message has not been posted yet",
        ));
    };
    let body = json!({
        "channel": channel,
        "thread_ts": ts,
        "text": blocks::fit(text, 3900),
        "unfurl_links": false,
        "unfurl_media": false,
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
