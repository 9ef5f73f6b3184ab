//! Edit… then approve: an approver opens a modal listing every proposed command in its own
//! prefilled text field, with a checkbox to include it, edits and picks, and submits — which
//! approves the edited list.
//!
//! The click's `trigger_id` lives three seconds, once: the modal is opened at once with a
//! "loading" view, and the checks (who, which proposal, still open?) fill it with the editor or
//! with why nothing can change (`views.update`). The submission (`view_submission`) is untrusted
//! input like any AI proposal: every kept command goes through the safety gate again, and a
//! blocked or empty one is refused with a field error (`response_action: errors`) before
//! anything is written. An accepted submission is one transaction: the edited list replaces the
//! proposal under a new approval hash (compare-and-set on the old one, so a stale modal or one
//! racing a click changes nothing), the edits (before → after, by whom, when) are recorded, and
//! the submitter's approval is taken with the same rules as a click — including the two-person
//! rule, where the submission is the first approval and a second approver clicks Yes on the
//! updated card.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::blocks::{
    EDIT_INCLUDE_ACTION, EDIT_MAX_CHARS, EDIT_MAX_COMMANDS, EDIT_TEXT_ACTION, REVISE_BLOCK,
    edit_block_ids, edit_modal, notice_modal, revise_modal,
};
use super::decide::{ClickOutcome, Decided, is_authorised, write_decision, write_first_approval};
use crate::clients::slack::wire::ViewPayload;
use crate::domain::{
    CommandKind, Decision, IncidentState, ProposedCommand, incident::approval_hash,
};
use crate::pipeline::Ctx;
use crate::pipeline::triage::safety;
use crate::store::edits::EditSubmission;
use crate::store::{IncidentRow, Job, Store, now_text, outbox};

/// What Slack is told in answer to a submission: nothing (the modal closes), field errors, or
/// a replacement view (why nothing changed).
#[derive(Debug, Clone, PartialEq)]
pub enum SubmitAnswer {
    Close,
    Errors(BTreeMap<String, String>),
    Update(Value),
}

impl SubmitAnswer {
    /// The synchronous response body (HTTP) or Socket Mode ack `payload`; `None` to close.
    pub fn body(&self) -> Option<Value> {
        match self {
            SubmitAnswer::Close => None,
            SubmitAnswer::Errors(errors) => {
                Some(json!({ "response_action": "errors", "errors": errors }))
            }
            SubmitAnswer::Update(view) => {
                Some(json!({ "response_action": "update", "view": view }))
            }
        }
    }
}

/// Why an incident's proposal cannot be edited now, in words for the modal; `None` if it can.
fn closed_reason(incident: &IncidentRow, hash: &str) -> Option<String> {
    let who = incident
        .decided_by
        .as_deref()
        .map(|u| format!(" by <@{u}>"))
        .unwrap_or_default();
    let when = incident
        .decided_at
        .as_deref()
        .map(|t| format!(" at {t}"))
        .unwrap_or_default();
    match incident.state {
        IncidentState::AwaitingApproval if incident.approval_hash.as_deref() == Some(hash) => None,
        IncidentState::AwaitingApproval => Some(
            "This proposal changed since the message you clicked was shown (someone edited it). Look at the message again; nothing was changed.".into(),
        ),
        IncidentState::Superseded => Some(
            "This proposal was superseded by a revised one in the thread; nothing can change here. Use the newest proposal.".into(),
        ),
        IncidentState::Expired => Some(
            "This incident expired without a decision; nothing can change. Triage it from the case.".into(),
        ),
        IncidentState::Declined => Some(format!(
            "This incident was already declined{who}{when}; nothing can change."
        )),
        state => Some(format!(
            "This incident was already decided{who}{when} (now {state}); nothing can change."
        )),
    }
}

/// Which modal a click opens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Modal {
    /// Edit… — the commands, to edit and pick, then approve.
    Edit,
    /// Request changes… — an instruction to the assistant.
    RequestChanges,
}

impl Modal {
    fn title(self) -> &'static str {
        match self {
            Modal::Edit => "Edit proposed commands",
            Modal::RequestChanges => "Request changes",
        }
    }

    /// The audit events of a refusal (not an approver) and of a click on a closed proposal.
    fn refusals(self) -> (&'static str, &'static str) {
        match self {
            Modal::Edit => ("EditRefused", "EditIgnored"),
            Modal::RequestChanges => ("RevisionRefused", "RevisionIgnored"),
        }
    }

    /// What a refused submission of this modal did not change, in words.
    fn noun(self) -> &'static str {
        match self {
            Modal::Edit => "edit",
            Modal::RequestChanges => "request",
        }
    }
}

/// The Edit… or Request changes… click: opens the modal within the trigger's life, then fills it.
pub async fn open_editor(
    ctx: &Ctx,
    incident_id: &str,
    hash: &str,
    user: &str,
    trigger_id: &str,
    which: Modal,
) -> anyhow::Result<ClickOutcome> {
    let loading = notice_modal(which.title(), "Loading the proposal…");
    let (view_id, view_hash) = ctx.slack.views_open(trigger_id, &loading).await?;
    let (outcome, view) = editor_for(ctx, incident_id, hash, user, which).await?;
    ctx.slack
        .views_update(&view_id, Some(&view_hash), &view)
        .await?;
    Ok(outcome)
}

/// The view an Edit… click gets: the editor, or why nothing can change (audited).
async fn editor_for(
    ctx: &Ctx,
    incident_id: &str,
    hash: &str,
    user: &str,
    which: Modal,
) -> anyhow::Result<(ClickOutcome, Value)> {
    let title = which.title();
    let (refused, ignored) = which.refusals();
    let Some(incident) = ctx.store.incident(incident_id).await? else {
        let view = notice_modal(title, "This incident is unknown to triage-bot.");
        return Ok((ClickOutcome::UnknownIncident, view));
    };
    if !is_authorised(ctx, &incident, user).await {
        audit_refusal(
            ctx,
            incident_id,
            user,
            refused,
            "not an authorised approver",
        )
        .await?;
        let view = notice_modal(
            title,
            "You are not an approver for this incident, so you cannot change its commands. The tagged handler or a configured approver must decide.",
        );
        return Ok((ClickOutcome::NotAuthorised, view));
    }
    if let Some(reason) = closed_reason(&incident, hash) {
        audit_refusal(ctx, incident_id, user, ignored, &reason).await?;
        let outcome = if incident.state == IncidentState::AwaitingApproval {
            ClickOutcome::Stale
        } else {
            ClickOutcome::AlreadyDecided
        };
        return Ok((outcome, notice_modal("Nothing can change", &reason)));
    }
    if let Some(text) = super::decide::summary_only(ctx, incident_id).await {
        audit_refusal(ctx, incident_id, user, refused, SUMMARY_ONLY).await?;
        return Ok((ClickOutcome::Stale, notice_modal(title, text)));
    }
    let metadata = format!("{incident_id}:{hash}");
    if which == Modal::RequestChanges {
        return Ok((ClickOutcome::Ignored, revise_modal(&metadata)));
    }
    let commands: Vec<ProposedCommand> = ctx
        .store
        .commands(incident_id)
        .await?
        .iter()
        .map(|c| c.proposed())
        .collect();
    if commands.len() > EDIT_MAX_COMMANDS
        || commands
            .iter()
            .any(|c| c.text.chars().count() > EDIT_MAX_CHARS)
    {
        let view = notice_modal(
            title,
            &format!(
                "This proposal is too large to edit in Slack (at most {EDIT_MAX_COMMANDS} commands of {EDIT_MAX_CHARS} characters). Decide on it as it stands, or ask for a revision in the thread."
            ),
        );
        return Ok((ClickOutcome::Ignored, view));
    }
    Ok((
        ClickOutcome::Ignored,
        edit_modal(&incident.host_name, &commands, &metadata),
    ))
}

/// The audited reason of a refusal on a summary-only route (as `decide::admit` records it).
pub(super) const SUMMARY_ONLY: &str = "summary-only policy route";

async fn audit_refusal(
    ctx: &Ctx,
    incident: &str,
    user: &str,
    event: &str,
    reason: &str,
) -> anyhow::Result<()> {
    let mut tx = ctx.store.write_tx().await?;
    Store::audit(&mut tx, incident, user, event, json!({ "reason": reason })).await?;
    tx.commit().await?;
    tracing::warn!(incident.id = incident, slack.user = user, reason, "{event}");
    Ok(())
}

/// One command as the modal returned it.
struct Picked {
    seq: i64,
    kind: CommandKind,
    before: String,
    /// `Some(text)` when included.
    after: Option<String>,
}

/// Reads what the analyst entered for every command shown; a field missing from the state (a
/// forged or truncated submission) or an included command left empty is an error on that field.
fn read_values(
    view: &ViewPayload,
    shown: &[ProposedCommand],
) -> (Vec<Picked>, BTreeMap<String, String>) {
    let empty = Default::default();
    let values = view.state.as_ref().map(|s| &s.values).unwrap_or(&empty);
    let mut errors = BTreeMap::new();
    let mut picked = Vec::new();
    for c in shown {
        let (text_id, run_id) = edit_block_ids(c.seq);
        let text = values
            .get(&text_id)
            .and_then(|b| b.get(EDIT_TEXT_ACTION))
            .map(|v| v.value.clone().unwrap_or_default());
        let included = values
            .get(&run_id)
            .and_then(|b| b.get(EDIT_INCLUDE_ACTION))
            .and_then(|v| v.selected_options.as_ref())
            .is_some_and(|o| o.iter().any(|o| o.value == "include"));
        let Some(text) = text else {
            errors.insert(
                text_id,
                "This command is missing from the submission.".into(),
            );
            continue;
        };
        let text = text.trim().to_string();
        if included && text.is_empty() {
            errors.insert(
                text_id,
                "A command to run cannot be empty; untick it to leave it out.".into(),
            );
            continue;
        }
        picked.push(Picked {
            seq: c.seq,
            kind: c.kind,
            before: c.text.clone(),
            after: included.then_some(text),
        });
    }
    (picked, errors)
}

/// What every modal submission is checked for first, like a click: the form is a proposal's,
/// the incident known, the user an approver, the proposal still open. `Err`: the modal to show
/// instead (refusals audited with [`Modal::refusals`]).
async fn checked(
    ctx: &Ctx,
    view: &ViewPayload,
    user: &str,
    which: Modal,
) -> anyhow::Result<Result<(IncidentRow, String), SubmitAnswer>> {
    let title = "Nothing changed";
    let ((refused, ignored), noun) = (which.refusals(), which.noun());
    let metadata = view.private_metadata.clone().unwrap_or_default();
    let Some((incident_id, hash)) = metadata.split_once(':') else {
        return Ok(Err(SubmitAnswer::Update(notice_modal(
            title,
            "This form does not belong to a triage-bot proposal.",
        ))));
    };
    let Some(incident) = ctx.store.incident(incident_id).await? else {
        return Ok(Err(SubmitAnswer::Update(notice_modal(
            title,
            "This incident is unknown to triage-bot.",
        ))));
    };
    if !is_authorised(ctx, &incident, user).await {
        audit_refusal(
            ctx,
            incident_id,
            user,
            refused,
            "not an authorised approver",
        )
        .await?;
        return Ok(Err(SubmitAnswer::Update(notice_modal(
            title,
            &format!("You are not an approver for this incident, so your {noun} changed nothing."),
        ))));
    }
    if let Some(reason) = closed_reason(&incident, hash) {
        audit_refusal(ctx, incident_id, user, ignored, &reason).await?;
        return Ok(Err(SubmitAnswer::Update(notice_modal(title, &reason))));
    }
    if let Some(text) = super::decide::summary_only(ctx, incident_id).await {
        audit_refusal(ctx, incident_id, user, refused, SUMMARY_ONLY).await?;
        return Ok(Err(SubmitAnswer::Update(notice_modal(title, text))));
    }
    Ok(Ok((incident, hash.to_string())))
}

/// A `view_submission` of the Edit… modal by `user`.
pub async fn submit(ctx: &Ctx, view: &ViewPayload, user: &str) -> anyhow::Result<SubmitAnswer> {
    let title = "Nothing changed";
    let (incident, hash) = match checked(ctx, view, user, Modal::Edit).await? {
        Ok(open) => open,
        Err(answer) => return Ok(answer),
    };
    let (incident_id, hash) = (incident.id.as_str(), hash.as_str());
    let shown: Vec<ProposedCommand> = ctx
        .store
        .commands(incident_id)
        .await?
        .iter()
        .map(|c| c.proposed())
        .collect();
    // Every problem at once, so the analyst fixes them in one go.
    let (picked, mut errors) = read_values(view, &shown);
    // The gate, again: an edit is untrusted input.
    let alert = incident.alert()?;
    let mut final_list: Vec<ProposedCommand> = picked
        .iter()
        .filter_map(|p| {
            p.after.as_ref().map(|text| ProposedCommand {
                seq: p.seq,
                kind: p.kind,
                text: text.clone(),
                risk: p.kind.default_risk(),
                reasons: vec![],
            })
        })
        .collect();
    safety::classify_all(&ctx.settings.triage.safety, &alert, &mut final_list);
    for c in final_list.iter().filter(|c| !c.may_run()) {
        let why = crate::text::truncate(
            &format!(
                "Blocked by the safety gate: {}. Change it or untick it.",
                c.reasons.join("; ")
            ),
            300,
            "…",
        );
        errors.insert(edit_block_ids(c.seq).0, why);
    }
    if final_list.is_empty() && errors.is_empty() {
        let first = shown.first().map(|c| edit_block_ids(c.seq).1);
        errors.insert(
            first.unwrap_or_default(),
            "Tick at least one command, or press No on the message to decline.".into(),
        );
    }
    if !errors.is_empty() {
        metrics::counter!("triage_bot_edit_submissions_total", "outcome" => "refused").increment(1);
        return Ok(SubmitAnswer::Errors(errors));
    }
    // The approved list, numbered in the order it runs.
    for (i, c) in final_list.iter_mut().enumerate() {
        c.seq = i as i64 + 1;
    }
    let new_hash = approval_hash(&incident.incident_id(), &incident.host_name, &final_list);
    let changes: Vec<(i64, CommandKind, String, Option<String>)> = picked
        .iter()
        .map(|p| (p.seq, p.kind, p.before.clone(), p.after.clone()))
        .collect();
    let at = now_text();
    let runs_remediation = final_list
        .iter()
        .any(|c| c.kind == CommandKind::Remediation);
    let two_person = ctx.settings.approval.two_person_remediation && runs_remediation;
    let channel = incident
        .slack_channel
        .clone()
        .unwrap_or_else(|| ctx.settings.slack.channel.clone());

    let mut tx = ctx.store.write_tx().await?;
    let applied = Store::apply_edit(
        &mut tx,
        &EditSubmission {
            incident: incident_id,
            old_hash: hash,
            new_hash: &new_hash,
            commands: &final_list,
            changes: &changes,
            user,
            at: &at,
        },
    )
    .await?;
    if !applied {
        drop(tx);
        let reason = "The incident changed while you edited (decided, or edited by someone else); your edit changed nothing. Look at the message again.";
        audit_refusal(ctx, incident_id, user, "EditIgnored", reason).await?;
        return Ok(SubmitAnswer::Update(notice_modal(title, reason)));
    }
    Store::audit(
        &mut tx,
        incident_id,
        user,
        "ProposalEdited",
        json!({
            "host": incident.host_name,
            "old_hash": hash,
            "new_hash": new_hash,
            "changes": changes.iter().map(|(seq, kind, before, after)| json!({
                "seq": seq, "kind": kind.as_str(), "before": before, "after": after
            })).collect::<Vec<_>>(),
            "final": final_list.iter().map(|c| &c.text).collect::<Vec<_>>(),
        }),
    )
    .await?;
    let (slack_note, case_note) = edit_notes(&incident.host_name, &picked, &final_list, user, &at);
    outbox::enqueue(&mut tx, incident_id, &Job::ThreadReply { text: slack_note }).await?;
    outbox::enqueue(&mut tx, incident_id, &Job::CaseComment { text: case_note }).await?;
    // The edit withdrew any first approval of the old list (`apply_edit`).
    let edited = IncidentRow {
        approval_hash: Some(new_hash.clone()),
        first_approver: None,
        first_approved_at: None,
        ..incident.clone()
    };
    let times = if two_person {
        let recorded =
            Store::record_first_approval(&mut tx, incident_id, user, &at, &new_hash).await?;
        anyhow::ensure!(
            recorded,
            "the edited proposal could not take its first approval"
        );
        write_first_approval(&mut tx, &edited, user, &channel, &at).await?
    } else {
        Store::transition(&mut tx, incident_id, IncidentState::Approved).await?;
        write_decision(
            &mut tx,
            &edited,
            &final_list,
            Decided {
                decision: Decision::Approve,
                user,
                hash: &new_hash,
                at: &at,
            },
        )
        .await?
    };
    tx.commit().await?;
    times.observe();
    ctx.wake.notify_one();
    metrics::counter!("triage_bot_edit_submissions_total", "outcome" => "approved").increment(1);
    if !two_person {
        metrics::counter!("triage_bot_decisions_total", "decision" => "approved").increment(1);
    }
    tracing::info!(
        incident.id = incident_id,
        slack.user = user,
        commands = final_list.len(),
        two_person,
        "ProposalEdited"
    );
    Ok(SubmitAnswer::Close)
}

/// A `view_submission` of the Request changes modal by `user`: checked like a click, then the
/// revision is queued for the assistant (`followup::revise`), bound to this proposal.
pub async fn submit_revision(
    ctx: &Ctx,
    view: &ViewPayload,
    user: &str,
) -> anyhow::Result<SubmitAnswer> {
    let (incident, _) = match checked(ctx, view, user, Modal::RequestChanges).await? {
        Ok(open) => open,
        Err(answer) => return Ok(answer),
    };
    let incident_id = incident.id.as_str();
    let instruction = view
        .state
        .as_ref()
        .and_then(|s| s.values.get(REVISE_BLOCK))
        .and_then(|b| b.get(EDIT_TEXT_ACTION))
        .and_then(|v| v.value.as_deref())
        .map(str::trim)
        .unwrap_or_default()
        .to_string();
    if instruction.is_empty() {
        let mut errors = BTreeMap::new();
        errors.insert(
            REVISE_BLOCK.to_string(),
            "Say what the assistant should change.".to_string(),
        );
        return Ok(SubmitAnswer::Errors(errors));
    }
    // The thread's AI lane belongs to its root incident: the revision is asked there, in order
    // with the thread's questions.
    let root = incident.parent_incident.as_deref().unwrap_or(incident_id);
    let job = Job::Revise {
        instruction,
        user: user.to_string(),
        at: now_text(),
        target: Some(incident_id.to_string()),
    };
    ctx.store.enqueue(root, &job).await?;
    ctx.wake.notify_one();
    Ok(SubmitAnswer::Close)
}

/// The thread note and the case comment for an edit: before → after per command, and the
/// final list that the approval binds.
fn edit_notes(
    host: &str,
    picked: &[Picked],
    final_list: &[ProposedCommand],
    user: &str,
    at: &str,
) -> (String, String) {
    use crate::text::escape;
    let tick = |s: &str| s.replace('`', "'");
    let mut slack = format!(
        ":pencil2: <@{user}> edited the proposal at {at} and approved the edited list for {}:",
        escape(host)
    );
    let mut case = format!(
        "**Proposal edited** by Slack user {user} at {at}; the approval is bound to the edited list for {host}.\n\n**Changes** (as proposed → as approved):\n"
    );
    for p in picked {
        let (s, c) = match &p.after {
            None => (
                format!("\n• {}. dropped: `{}`", p.seq, escape(&tick(&p.before))),
                format!("\n- {}. dropped: `{}`", p.seq, tick(&p.before)),
            ),
            Some(a) if *a == p.before => (
                String::new(),
                format!("\n- {}. kept: `{}`", p.seq, tick(&p.before)),
            ),
            Some(a) => (
                format!(
                    "\n• {}. `{}` → `{}`",
                    p.seq,
                    escape(&tick(&p.before)),
                    escape(&tick(a))
                ),
                format!(
                    "\n- {}. edited: `{}` → `{}`",
                    p.seq,
                    tick(&p.before),
                    tick(a)
                ),
            ),
        };
        slack.push_str(&s);
        case.push_str(&c);
    }
    case.push_str("\n\n**Final list:**\n");
    for c in final_list {
        case.push_str(&format!(
            "\n{}. [{}] `{}`",
            c.seq,
            c.kind.as_str(),
            tick(&c.text)
        ));
    }
    (slack, case)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_answer_names_the_field() {
        let mut e = BTreeMap::new();
        e.insert("cmd:2:text".to_string(), "Blocked".to_string());
        let body = SubmitAnswer::Errors(e).body().unwrap();
        assert_eq!(body["response_action"], "errors");
        assert_eq!(body["errors"]["cmd:2:text"], "Blocked");
        assert_eq!(SubmitAnswer::Close.body(), None);
    }
}
