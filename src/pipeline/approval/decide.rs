//! Decisions on an incident: Yes, Investigation only, No, and Isolate host — whoever clicks,
//! through whichever Slack transport.
//!
//! Each decision is taken in one database transaction — only by an authorised person (the tagged
//! handler, a configured approver, or a member of a configured user group), only for the exact
//! command list and host the buttons were shown for (the hash in the button value), only the
//! first valid click, and, with the two-person rule, remediation only after a second, different
//! approver. The Slack update, case entries and the command run are queued in the same
//! transaction. Every attempt, allowed or not, is audited; a refusal is explained privately.

use serde_json::json;

use crate::domain::{CommandKind, Decision, IncidentState, ProposedCommand};
use crate::pipeline::Ctx;
use crate::store::incidents::StateConflict;
use crate::store::{IncidentRow, Job, Store, now_text, outbox};

/// What happened to a click (for the log and the tests; Slack only sees 200).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClickOutcome {
    Decided(Decision),
    IsolationRequested,
    FirstApproval,
    NeedsSecondApprover,
    NotAuthorised,
    Stale,
    AlreadyDecided,
    UnknownIncident,
    Ignored,
}

/// May `user` decide on `incident`?
pub async fn is_authorised(ctx: &Ctx, incident: &IncidentRow, user: &str) -> bool {
    if incident.handler_slack_id.as_deref() == Some(user)
        || ctx.settings.slack.approvers.iter().any(|a| a == user)
    {
        return true;
    }
    // A handler that is a user group (S…) authorises its members.
    let handler_group = incident
        .handler_slack_id
        .as_deref()
        .filter(|h| h.starts_with('S'));
    for group in handler_group.into_iter().chain(
        ctx.settings
            .approval
            .approver_groups
            .iter()
            .map(String::as_str),
    ) {
        match ctx.slack.usergroup_members(group).await {
            Ok(members) if members.iter().any(|m| m == user) => return true,
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(slack.group = %group, error = %e, "cannot read approver group")
            }
        }
    }
    false
}

/// Queues a private note to `user` and audits the attempt, in one transaction.
async fn refuse(
    ctx: &Ctx,
    incident: &str,
    user: &str,
    channel: &str,
    event: &str,
    reason: &str,
    text: &str,
) -> anyhow::Result<()> {
    let mut tx = ctx.store.write_tx().await?;
    Store::audit(&mut tx, incident, user, event, json!({ "reason": reason })).await?;
    let job = Job::Ephemeral {
        channel: channel.to_string(),
        user: user.to_string(),
        text: text.to_string(),
    };
    outbox::enqueue(&mut tx, incident, &job).await?;
    tx.commit().await?;
    tracing::warn!(incident.id = incident, slack.user = user, reason, "{event}");
    Ok(())
}

/// The checks every click passes before it may change anything: the incident exists, the user
/// may decide on it, and the button's hash still matches the commands and host it was shown for.
/// A refusal is audited (as `refused_event`) and explained to the user privately.
async fn admit(
    ctx: &Ctx,
    incident_id: &str,
    hash: &str,
    user: &str,
    channel: &str,
    refused_event: &str,
) -> anyhow::Result<Result<IncidentRow, ClickOutcome>> {
    let Some(incident) = ctx.store.incident(incident_id).await? else {
        return Ok(Err(ClickOutcome::UnknownIncident));
    };
    if !is_authorised(ctx, &incident, user).await {
        let text = "You are not an approver for this incident, so your click changed nothing. The tagged handler or a configured approver must decide.";
        refuse(
            ctx,
            incident_id,
            user,
            channel,
            refused_event,
            "not an authorised approver",
            text,
        )
        .await?;
        return Ok(Err(ClickOutcome::NotAuthorised));
    }
    if incident.approval_hash.as_deref() != Some(hash) {
        let text = "This button no longer matches the proposed commands; nothing was changed.";
        refuse(
            ctx,
            incident_id,
            user,
            channel,
            refused_event,
            "stale or tampered approval value",
            text,
        )
        .await?;
        return Ok(Err(ClickOutcome::Stale));
    }
    if let Some(text) = summary_only(ctx, incident_id).await {
        refuse(
            ctx,
            incident_id,
            user,
            channel,
            refused_event,
            super::edit::SUMMARY_ONLY,
            text,
        )
        .await?;
        return Ok(Err(ClickOutcome::Stale));
    }
    Ok(Ok(incident))
}

/// The refusal for an incident whose policy route offers the summary only: its card shows no
/// buttons, and a click, an edit or a revision crafted anyway changes nothing. Every way of
/// acting on a proposal from Slack asks this.
pub(crate) async fn summary_only(ctx: &Ctx, incident_id: &str) -> Option<&'static str> {
    let route = crate::pipeline::policy::route_of(&ctx.store, incident_id).await;
    (route.offer == crate::pipeline::policy::Offer::Summary)
        .then_some("This incident's policy offers the summary only; nothing can be run from Slack.")
}

/// Takes a decision for `incident_id` by `user`, if they may.
pub async fn decide(
    ctx: &Ctx,
    incident_id: &str,
    hash: &str,
    user: &str,
    decision: Decision,
    channel: &str,
) -> anyhow::Result<ClickOutcome> {
    let incident = match admit(ctx, incident_id, hash, user, channel, "DecisionRefused").await? {
        Ok(incident) => incident,
        Err(outcome) => return Ok(outcome),
    };
    // Read before taking the write lock: a pool query inside the transaction could wait on a
    // connection held by another writer that is itself waiting for our lock.
    let commands = ctx.store.commands(incident_id).await?;
    let runs_remediation = decision == Decision::Approve
        && commands
            .iter()
            .any(|c| c.kind == CommandKind::Remediation && c.proposed().may_run());
    if ctx.settings.approval.two_person_remediation && runs_remediation {
        match incident.first_approver.as_deref() {
            None => return first_approval(ctx, &incident, user, channel, hash).await,
            Some(first) if first == user => {
                let text = "You already approved; remediation needs a second, different approver.";
                refuse(
                    ctx,
                    incident_id,
                    user,
                    channel,
                    "DecisionRefused",
                    "same approver twice",
                    text,
                )
                .await?;
                return Ok(ClickOutcome::NeedsSecondApprover);
            }
            Some(_) => {}
        }
    }
    let next = match decision {
        Decision::Approve | Decision::ApproveInvestigation => IncidentState::Approved,
        Decision::Decline => IncidentState::Declined,
    };
    let mut tx = ctx.store.write_tx().await?;
    // The proposal may have been edited since the checks above: the decision binds only the
    // list the buttons were shown for.
    if Store::approval_hash_of(&mut tx, incident_id)
        .await?
        .as_deref()
        != Some(hash)
    {
        drop(tx);
        let text = "The proposal changed while you clicked (it was edited); nothing was changed. Look at the message again.";
        refuse(
            ctx,
            incident_id,
            user,
            channel,
            "DecisionRefused",
            "proposal changed meanwhile",
            text,
        )
        .await?;
        return Ok(ClickOutcome::Stale);
    }
    match Store::transition(&mut tx, incident_id, next).await {
        Ok(()) => {}
        Err(e) if e.is::<StateConflict>() => {
            drop(tx);
            let current = ctx.store.incident(incident_id).await?;
            let text = match current {
                Some(i) if i.state == IncidentState::Superseded => "This proposal was superseded by a revised one in the thread; your click changed nothing.".to_string(),
                current => {
                    let by = current
                        .and_then(|i| i.decided_by)
                        .map(|u| format!(" by <@{u}>"))
                        .unwrap_or_default();
                    format!("This incident was already decided{by}; your click changed nothing.")
                }
            };
            refuse(
                ctx,
                incident_id,
                user,
                channel,
                "DecisionIgnored",
                "already decided",
                &text,
            )
            .await?;
            return Ok(ClickOutcome::AlreadyDecided);
        }
        Err(e) => return Err(e),
    }
    let at = now_text();
    let proposed: Vec<ProposedCommand> = commands.iter().map(|c| c.proposed()).collect();
    let times = write_decision(
        &mut tx,
        &incident,
        &proposed,
        Decided {
            decision,
            user,
            hash,
            at: &at,
        },
    )
    .await?;
    tx.commit().await?;
    times.observe();
    tracing::info!(incident.id = incident_id, slack.user = user, decision = decision.as_str(), scope = ?decision.scope(), "ApprovalDecided");
    metrics::counter!("triage_bot_decisions_total", "decision" => decision.as_str()).increment(1);
    // The approval request → the decision: how long the card waited for a person.
    if let Some(asked) = incident
        .approval_requested_at
        .as_deref()
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
    {
        let waited = (chrono::Utc::now() - asked.with_timezone(&chrono::Utc))
            .to_std()
            .unwrap_or_default();
        metrics::histogram!("triage_bot_time_to_decision_seconds", "decision" => decision.as_str())
            .record(waited.as_secs_f64());
    }
    Ok(ClickOutcome::Decided(decision))
}

/// A decision being written: what, by whom, for which approval hash, when.
pub(crate) struct Decided<'a> {
    pub decision: Decision,
    pub user: &'a str,
    pub hash: &'a str,
    pub at: &'a str,
}

/// Writes a decision already taken (the state moved inside `tx`): who and when, the audit
/// record with the exact commands and host, the response-time marks, and the side effects —
/// the card update, the case comment and status, and the run (or the final record).
pub(crate) async fn write_decision(
    tx: &mut sqlx::AnyConnection,
    incident: &IncidentRow,
    commands: &[ProposedCommand],
    d: Decided<'_>,
) -> anyhow::Result<super::times::Observed> {
    let (decision, user, at) = (d.decision, d.user, d.at);
    let incident_id = incident.id.as_str();
    Store::record_decision(tx, incident_id, decision, user, at).await?;
    if decision == Decision::ApproveInvestigation {
        // Not approved, so never started: the batch only starts `proposed` commands.
        Store::skip_remediation(tx, incident_id).await?;
    }
    let to_run: Vec<_> = commands
        .iter()
        .filter(|c| c.may_run())
        .filter(|c| {
            decision != Decision::ApproveInvestigation || c.kind == CommandKind::Investigation
        })
        .collect();
    Store::audit(
        tx,
        incident_id,
        user,
        "ApprovalDecided",
        json!({
            "decision": decision.as_str(),
            "scope": decision.scope(),
            "first_approver": incident.first_approver,
            "commands": to_run.iter().map(|c| &c.text).collect::<Vec<_>>(),
            "host": incident.host_name,
            "hash": d.hash
        }),
    )
    .await?;
    outbox::enqueue(tx, incident_id, &Job::UpdateApprovalMessage).await?;
    let list: Vec<String> = to_run
        .iter()
        .map(|c| format!("{}. `{}`", c.seq, c.text.replace('`', "'")))
        .collect();
    let all: Vec<String> = commands
        .iter()
        .map(|c| format!("{}. `{}`", c.seq, c.text.replace('`', "'")))
        .collect();
    let second = incident
        .first_approver
        .as_deref()
        .map(|f| {
            format!(
                " (first approval by Slack user {f} at {})",
                incident.first_approved_at.as_deref().unwrap_or("?")
            )
        })
        .unwrap_or_default();
    let comment = match decision {
        Decision::Approve | Decision::ApproveInvestigation => format!(
            "**Approved{}** by Slack user {user}{second} at {at}. Commands to run on {}:\n\n{}",
            if decision == Decision::ApproveInvestigation {
                " (investigation only)"
            } else {
                ""
            },
            incident.host_name,
            list.join("\n")
        ),
        Decision::Decline => format!(
            "**Declined** by Slack user {user} at {at}. Nothing was run. Proposed commands were:\n\n{}",
            all.join("\n")
        ),
    };
    outbox::enqueue(tx, incident_id, &Job::CaseComment { text: comment }).await?;
    let mut times = super::times::acknowledged(tx, incident, user, at).await?;
    match decision {
        Decision::Approve | Decision::ApproveInvestigation => {
            outbox::enqueue(
                tx,
                incident_id,
                &Job::CaseStatus {
                    status: "in-progress".into(),
                },
            )
            .await?;
            outbox::enqueue(tx, incident_id, &Job::Execute).await?;
        }
        Decision::Decline => {
            times.merge(super::times::responded(tx, incident, at, "declined").await?);
            outbox::enqueue(tx, incident_id, &Job::FinalizeCase).await?;
        }
    }
    Ok(times)
}

/// The two-person rule's first half: record the approval, keep the buttons, tell everyone.
async fn first_approval(
    ctx: &Ctx,
    incident: &IncidentRow,
    user: &str,
    channel: &str,
    hash: &str,
) -> anyhow::Result<ClickOutcome> {
    let at = now_text();
    let mut tx = ctx.store.write_tx().await?;
    let recorded = Store::record_first_approval(&mut tx, &incident.id, user, &at, hash).await?;
    if !recorded {
        drop(tx);
        let text = "This incident changed while you clicked; nothing was recorded. Look at the message again.";
        refuse(
            ctx,
            &incident.id,
            user,
            channel,
            "DecisionIgnored",
            "concurrent change",
            text,
        )
        .await?;
        return Ok(ClickOutcome::AlreadyDecided);
    }
    let times = write_first_approval(&mut tx, incident, user, channel, &at).await?;
    tx.commit().await?;
    times.observe();
    tracing::info!(incident.id = %incident.id, slack.user = user, "FirstApproval");
    Ok(ClickOutcome::FirstApproval)
}

/// Writes a first approval already recorded inside `tx`: the audit record, the card update,
/// the approver's private note and the case comment.
pub(crate) async fn write_first_approval(
    tx: &mut sqlx::AnyConnection,
    incident: &IncidentRow,
    user: &str,
    channel: &str,
    at: &str,
) -> anyhow::Result<super::times::Observed> {
    Store::audit(
        tx,
        &incident.id,
        user,
        "FirstApproval",
        json!({ "host": incident.host_name }),
    )
    .await?;
    outbox::enqueue(tx, &incident.id, &Job::UpdateApprovalMessage).await?;
    let job = Job::Ephemeral {
        channel: channel.to_string(),
        user: user.to_string(),
        text: "Your approval is recorded. Remediation needs a second, different approver before anything runs.".into(),
    };
    outbox::enqueue(tx, &incident.id, &job).await?;
    let text = format!(
        "**First approval** by Slack user {user} at {at}; waiting for a second approver (two-person rule for remediation)."
    );
    outbox::enqueue(tx, &incident.id, &Job::CaseComment { text }).await?;
    super::times::acknowledged(tx, incident, user, at).await
}

/// "Isolate host": the same checks as a decision (who, which incident and host), at most once per
/// incident, then the Defend isolation is queued. It does not decide the command approval.
pub async fn request_isolation(
    ctx: &Ctx,
    incident_id: &str,
    hash: &str,
    user: &str,
    channel: &str,
) -> anyhow::Result<ClickOutcome> {
    let incident = match admit(ctx, incident_id, hash, user, channel, "IsolationRefused").await? {
        Ok(incident) => incident,
        Err(outcome) => return Ok(outcome),
    };
    let alert = incident.alert()?;
    if !crate::runners::isolate_offer(&ctx.settings, &alert) {
        let text = "Isolation is not allowed for this host; nothing was changed.";
        refuse(
            ctx,
            incident_id,
            user,
            channel,
            "IsolationRefused",
            "isolation not allowed",
            text,
        )
        .await?;
        return Ok(ClickOutcome::Stale);
    }
    let mut tx = ctx.store.write_tx().await?;
    let already = Store::count_events(&mut tx, incident_id, "IsolationRequested").await?;
    if already > 0 {
        drop(tx);
        let text = "Isolation of this host was already requested.";
        refuse(
            ctx,
            incident_id,
            user,
            channel,
            "IsolationIgnored",
            "already requested",
            text,
        )
        .await?;
        return Ok(ClickOutcome::AlreadyDecided);
    }
    let at = now_text();
    Store::audit(
        &mut tx,
        incident_id,
        user,
        "IsolationRequested",
        json!({ "host": incident.host_name }),
    )
    .await?;
    outbox::enqueue(&mut tx, incident_id, &Job::Isolate).await?;
    let host = crate::text::escape(&incident.host_name);
    outbox::enqueue(
        &mut tx,
        incident_id,
        &Job::ThreadReply {
            text: format!(":shield: <@{user}> asked Elastic Defend to isolate {host} at {at}."),
        },
    )
    .await?;
    outbox::enqueue(
        &mut tx,
        incident_id,
        &Job::CaseComment {
            text: format!(
                "**Host isolation requested** by Slack user {user} at {at} for {}.",
                incident.host_name
            ),
        },
    )
    .await?;
    tx.commit().await?;
    tracing::info!(
        incident.id = incident_id,
        slack.user = user,
        "IsolationRequested"
    );
    Ok(ClickOutcome::IsolationRequested)
}
