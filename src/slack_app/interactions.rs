//! Button clicks and modal submissions: `POST /slack/interactions` (and the same payloads from
//! Socket Mode).
//!
//! The request is verified (signature and window) before anything is parsed; the click is then
//! read — which button, which incident and hash, who, in which channel — and handed to the
//! approval stage (`pipeline::approval::decide`, or `edit` for Edit… and its modal), which takes
//! the decision. Slack gets its 200 at once (within [`super::ACK_WITHIN`]); the work goes on
//! after the ack. A `view_submission` is answered in the response itself: empty to close the
//! modal, or `response_action: errors` / `update` — so it is awaited, not left in the background.

use axum::http::HeaderMap;

use super::{Rejected, signature};
use crate::clients::slack::wire::InteractionPayload;
use crate::domain::Decision;
use crate::pipeline::Ctx;
use crate::pipeline::approval::blocks::{
    ACTION_APPROVE, ACTION_APPROVE_INVESTIGATION, ACTION_DECLINE, ACTION_EDIT, ACTION_ISOLATE,
    ACTION_REQUEST_CHANGES, EDIT_CALLBACK, REVISE_CALLBACK,
};
use crate::pipeline::approval::decide::{ClickOutcome, decide, request_isolation};
use crate::pipeline::approval::edit;

/// What an interaction came to: the outcome (for the log and tests) and, for a modal
/// submission, the body Slack must get back (`None`: an empty 200).
#[derive(Debug, Clone, PartialEq)]
pub struct Handled {
    pub outcome: ClickOutcome,
    pub answer: Option<serde_json::Value>,
}

/// The HTTP handler body: verify, parse, decide. `Ok` carries the response body, if any.
pub async fn handle(
    ctx: std::sync::Arc<Ctx>,
    headers: &HeaderMap,
    body: &str,
) -> Result<Option<serde_json::Value>, Rejected> {
    if let Err(e) = signature::verify(&ctx.settings.slack.signing_secret, headers, body) {
        tracing::warn!(error = %e, "refused a Slack interaction");
        metrics::counter!("triage_bot_slack_requests_refused_total").increment(1);
        return Err(Rejected::Unauthenticated(e.to_string()));
    }
    let payload = match parse_form_payload(body) {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!(error = %e, "malformed Slack interaction");
            return Err(Rejected::Malformed(e));
        }
    };
    // Usually one transaction, well within Slack's 3 s; if Slack's own API (approver groups) is
    // slow, acknowledge anyway and let the decision finish in the background.
    let work = tokio::spawn(async move { handle_payload(&ctx, &payload).await });
    match tokio::time::timeout(super::ACK_WITHIN, work).await {
        Ok(Ok(handled)) => Ok(handled.answer),
        _ => Ok(None),
    }
}

/// The transport-independent part: HTTP and Socket Mode both end here.
pub async fn handle_payload(ctx: &Ctx, payload: &InteractionPayload) -> Handled {
    let handled = if payload.kind == "view_submission" {
        submission(ctx, payload).await
    } else {
        Handled {
            outcome: click(ctx, payload).await,
            answer: None,
        }
    };
    tracing::info!(outcome = ?handled.outcome, "interaction handled");
    ctx.wake.notify_one();
    handled
}

/// A modal submitted: the Edit… or the Request changes modal.
async fn submission(ctx: &Ctx, p: &InteractionPayload) -> Handled {
    let ignored = Handled {
        outcome: ClickOutcome::Ignored,
        answer: None,
    };
    let (Some(view), Some(user)) = (&p.view, &p.user) else {
        return ignored;
    };
    let (submitted, approves) = match view.callback_id.as_deref() {
        Some(EDIT_CALLBACK) => (edit::submit(ctx, view, &user.id).await, true),
        Some(REVISE_CALLBACK) => (edit::submit_revision(ctx, view, &user.id).await, false),
        _ => return ignored,
    };
    match submitted {
        Ok(answer) => Handled {
            outcome: match &answer {
                edit::SubmitAnswer::Close if approves => ClickOutcome::Decided(Decision::Approve),
                edit::SubmitAnswer::Close => ClickOutcome::Ignored,
                edit::SubmitAnswer::Errors(_) => ClickOutcome::Ignored,
                edit::SubmitAnswer::Update(_) => ClickOutcome::Stale,
            },
            answer: answer.body(),
        },
        Err(e) => {
            tracing::error!(error = %e, "cannot record an edited proposal");
            let view = crate::pipeline::approval::blocks::notice_modal(
                "Nothing changed",
                "triage-bot could not record your edit; nothing was approved. Please try again.",
            );
            Handled {
                outcome: ClickOutcome::Ignored,
                answer: edit::SubmitAnswer::Update(view).body(),
            }
        }
    }
}

fn parse_form_payload(body: &str) -> Result<InteractionPayload, String> {
    let form: Vec<(String, String)> =
        serde_urlencoded::from_str(body).map_err(|e| format!("body is not form-encoded: {e}"))?;
    let json = form
        .into_iter()
        .find(|(k, _)| k == "payload")
        .map(|(_, v)| v)
        .ok_or("no payload field")?;
    serde_json::from_str(&json).map_err(|e| format!("payload is not an interaction object: {e}"))
}

async fn click(ctx: &Ctx, p: &InteractionPayload) -> ClickOutcome {
    if p.kind != "block_actions" {
        return ClickOutcome::Ignored;
    }
    let Some(user) = p.user.as_ref().map(|u| u.id.clone()) else {
        return ClickOutcome::Ignored;
    };
    let modal = p.actions.iter().find_map(|a| match a.action_id.as_str() {
        ACTION_EDIT => Some((a, edit::Modal::Edit)),
        ACTION_REQUEST_CHANGES => Some((a, edit::Modal::RequestChanges)),
        _ => None,
    });
    if let Some((action, which)) = modal {
        let value = action.value.clone().unwrap_or_default();
        let (incident_id, hash) = value.split_once(':').unwrap_or((value.as_str(), ""));
        let Some(trigger) = p.trigger_id.as_deref() else {
            return ClickOutcome::Ignored;
        };
        return match edit::open_editor(ctx, incident_id, hash, &user, trigger, which).await {
            Ok(o) => o,
            Err(e) => {
                tracing::error!(error = %e, incident.id = incident_id, "cannot open the Edit… modal");
                ClickOutcome::Ignored
            }
        };
    }
    if let Some(action) = p.actions.iter().find(|a| a.action_id == ACTION_ISOLATE) {
        let value = action.value.clone().unwrap_or_default();
        let (incident_id, hash) = value.split_once(':').unwrap_or((value.as_str(), ""));
        let channel = p
            .channel
            .as_ref()
            .map(|c| c.id.clone())
            .unwrap_or_else(|| ctx.settings.slack.channel.clone());
        return match request_isolation(ctx, incident_id, hash, &user, &channel).await {
            Ok(o) => o,
            Err(e) => {
                tracing::error!(error = %e, incident.id = incident_id, "cannot record an isolation request");
                ClickOutcome::Ignored
            }
        };
    }
    let Some((action, decision)) = p.actions.iter().find_map(|a| {
        let d = match a.action_id.as_str() {
            ACTION_APPROVE => Decision::Approve,
            ACTION_APPROVE_INVESTIGATION => Decision::ApproveInvestigation,
            ACTION_DECLINE => Decision::Decline,
            _ => return None,
        };
        Some((a, d))
    }) else {
        return ClickOutcome::Ignored;
    };
    let value = action.value.clone().unwrap_or_default();
    let (incident_id, hash) = value.split_once(':').unwrap_or((value.as_str(), ""));
    let channel = p
        .container
        .as_ref()
        .and_then(|c| c.channel_id.clone())
        .or_else(|| p.channel.as_ref().map(|c| c.id.clone()))
        .unwrap_or_else(|| ctx.settings.slack.channel.clone());
    match decide(ctx, incident_id, hash, &user, decision, &channel).await {
        Ok(o) => o,
        Err(e) => {
            tracing::error!(error = %e, incident.id = incident_id, "cannot record a decision");
            let _ = ctx
                .slack
                .post_ephemeral(
                    &channel,
                    &user,
                    "triage-bot could not record your decision; please try again.",
                )
                .await;
            ClickOutcome::Ignored
        }
    }
}
