//! The approval clock: an incident nobody decides on is escalated once (a mention of a backup
//! user or group, if configured) and then expires — its message updated, its case told — so an
//! alert never waits for a decision forever. [`tick`] is one pass; the timer that calls it is
//! `workers::timers`.

use chrono::{DateTime, Utc};
use serde_json::json;

use crate::domain::IncidentState;
use crate::pipeline::Ctx;
use crate::store::incidents::StateConflict;
use crate::store::{IncidentRow, Job, Store, now_text, outbox};

/// One pass over the incidents awaiting a decision.
pub async fn tick(ctx: &Ctx) -> anyhow::Result<()> {
    let waiting = ctx.store.awaiting_approval().await?;
    let now = Utc::now();
    let settings = &ctx.settings.approval;
    for incident in waiting {
        let Some(asked) = incident
            .approval_requested_at
            .as_deref()
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.with_timezone(&Utc))
        else {
            continue;
        };
        let waited = (now - asked).to_std().unwrap_or_default();
        if waited >= settings.timeout {
            expire(ctx, &incident).await?;
        } else if let (Some(after), Some(target)) = (settings.escalate_after, &settings.escalate_to)
            && waited >= after
            && incident.escalated_at.is_none()
        {
            escalate(ctx, &incident, target, asked).await?;
        }
    }
    Ok(())
}

async fn expire(ctx: &Ctx, incident: &IncidentRow) -> anyhow::Result<()> {
    let mut tx = ctx.store.write_tx().await?;
    match Store::transition(&mut tx, &incident.id, IncidentState::Expired).await {
        Ok(()) => {}
        // Decided in the meantime: nothing to expire.
        Err(e) if e.is::<StateConflict>() => return Ok(()),
        Err(e) => return Err(e),
    }
    let minutes = ctx.settings.approval.timeout.as_secs_f64() / 60.0;
    Store::audit(
        &mut tx,
        &incident.id,
        "triage-bot",
        "ApprovalExpired",
        json!({ "timeout_minutes": minutes }),
    )
    .await?;
    outbox::enqueue(&mut tx, &incident.id, &Job::UpdateApprovalMessage).await?;
    let text = format!(
        "**Expired** at {}: no decision within {minutes:.0} minutes. Nothing was run.",
        now_text()
    );
    outbox::enqueue(&mut tx, &incident.id, &Job::CaseComment { text }).await?;
    let times = super::times::responded(&mut tx, incident, &now_text(), "expired").await?;
    outbox::enqueue(&mut tx, &incident.id, &Job::FinalizeCase).await?;
    tx.commit().await?;
    times.observe();
    ctx.wake.notify_one();
    tracing::warn!(incident.id = %incident.id, "ApprovalExpired");
    Ok(())
}

/// `U…` → `<@U…>`, `S…` → `<!subteam^S…>`.
pub fn mention(target: &str) -> String {
    if target.starts_with('S') {
        format!("<!subteam^{target}>")
    } else {
        format!("<@{target}>")
    }
}

async fn escalate(
    ctx: &Ctx,
    incident: &IncidentRow,
    target: &str,
    asked: DateTime<Utc>,
) -> anyhow::Result<()> {
    let mut tx = ctx.store.write_tx().await?;
    let marked = Store::mark_escalated(&mut tx, &incident.id).await?;
    if !marked {
        return Ok(());
    }
    let deadline =
        asked + chrono::Duration::from_std(ctx.settings.approval.timeout).unwrap_or_default();
    let text = format!(
        ":rotating_light: {} — this critical alert on {} is still waiting for a decision. It expires at {}.",
        mention(target),
        crate::text::escape(&incident.host_name),
        deadline.format("%H:%M UTC")
    );
    Store::audit(
        &mut tx,
        &incident.id,
        "triage-bot",
        "ApprovalEscalated",
        json!({ "to": target }),
    )
    .await?;
    outbox::enqueue(&mut tx, &incident.id, &Job::ThreadReply { text }).await?;
    let comment = format!(
        "**Escalated** at {} to Slack {target}: no decision yet.",
        now_text()
    );
    outbox::enqueue(&mut tx, &incident.id, &Job::CaseComment { text: comment }).await?;
    tx.commit().await?;
    ctx.wake.notify_one();
    tracing::warn!(incident.id = %incident.id, slack.user = target, "ApprovalEscalated");
    Ok(())
}
