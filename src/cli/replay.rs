//! `triage-bot replay ALERT.json`: runs one triage against the configured assistant — prompt,
//! answer, parser, safety gate, handler resolution — and shows the parsed result and the Slack
//! message it would post. It posts nothing, stores nothing and creates no case (Slack is only
//! read, to resolve the handler).

use std::sync::Arc;

use anyhow::Context;
use serde::Serialize;
use serde_json::Value;

use crate::clients::ai::{self as assistant, Assistant};
use crate::clients::slack::SlackClient;
use crate::config::Settings;
use crate::domain::HandlerTag;
use crate::domain::{Alert, IncidentId, ProposedCommand, Triage, incident::approval_hash};
use crate::pipeline::approval::blocks::{self, ApprovalView};
use crate::pipeline::triage::prompt::Prompts;
use crate::pipeline::triage::{handler, parser, safety};

/// Everything a replay produced.
#[derive(Debug, Serialize)]
pub struct ReplayOutcome {
    pub assistant: &'static str,
    pub triage: Triage,
    pub commands: Vec<ProposedCommand>,
    pub handler: Option<String>,
    /// `triage_failed` when the answer offers nothing to approve.
    pub triage_failed: bool,
    /// The `chat.postMessage` body that would be sent.
    pub slack_message: Value,
    pub raw_answer: String,
}

/// Reads an alert file: an alert document, or a search hit (`_id`, `_index`, `_source`); a bare
/// document is filed under `default_index`.
pub fn read_alert(text: &str, default_index: &str) -> anyhow::Result<Alert> {
    let v: Value = serde_json::from_str(text).context("the alert file is not JSON")?;
    let (id, index, source) = match v.get("_source") {
        Some(src) => (
            v.get("_id").and_then(Value::as_str).unwrap_or_default(),
            v.get("_index")
                .and_then(Value::as_str)
                .unwrap_or(default_index),
            src,
        ),
        None => ("", default_index, &v),
    };
    Ok(Alert::from_document(id, index, source, "@timestamp")?)
}

/// Runs the triage of `alert` with the assistant the settings choose.
pub async fn replay(settings: &Settings, alert: &Alert) -> anyhow::Result<ReplayOutcome> {
    let assistant = assistant::build(settings)?;
    let prompts = Prompts::load(settings)?;
    let slack = SlackClient::new(&settings.slack.api_url, settings.slack.bot_token.clone())?;
    replay_with(settings, assistant, &prompts, &slack, alert).await
}

pub async fn replay_with(
    settings: &Settings,
    assistant: Arc<dyn Assistant>,
    prompts: &Prompts,
    slack: &SlackClient,
    alert: &Alert,
) -> anyhow::Result<ReplayOutcome> {
    let prompt = prompts.triage(alert)?;
    let reply = assistant
        .ask_triage(&prompt, None)
        .await
        .with_context(|| format!("asking the {} assistant", assistant.name()))?;
    let triage = parser::parse_answer(&reply.text);
    let mut commands = triage.commands();
    safety::classify_all(&settings.triage.safety, alert, &mut commands);
    let channel = &settings.slack.channel;
    let incident = IncidentId("replay".into());
    let (handler, slack_message, failed) = if triage.is_empty() {
        let reason = format!(
            "the assistant's answer has no commands ({})",
            triage.warnings.join("; ")
        );
        let msg = blocks::triage_failed_message(channel, alert, &reason, Some(&reply.text));
        (
            HandlerTag {
                slack_id: None,
                name: None,
            },
            msg,
            true,
        )
    } else {
        let handler = handler::resolve(
            &settings.triage.routing,
            slack,
            assistant.as_ref(),
            prompts,
            alert,
        )
        .await;
        let hash = approval_hash(&incident, &alert.host_name, &commands);
        let value = format!("{}:{hash}", incident.0);
        let msg = blocks::approval_message(&ApprovalView {
            channel,
            incident: &incident.0,
            alert,
            triage: &triage,
            commands: &commands,
            handler: &handler,
            approval_value: &value,
            alert_url: None,
            case_url: None,
            outcome: None,
            note: None,
            offer_isolate: false,
            runs_on: None,
        });
        (handler, msg, false)
    };
    Ok(ReplayOutcome {
        assistant: assistant.name(),
        handler: (handler.slack_id.is_some() || handler.name.is_some()).then(|| handler.mention()),
        triage,
        commands,
        triage_failed: failed,
        slack_message,
        raw_answer: reply.text,
    })
}

/// The CLI entry: reads the file, replays, prints JSON.
pub async fn run(file: &str) -> anyhow::Result<()> {
    let settings = Settings::from_env()?;
    let text = std::fs::read_to_string(file).with_context(|| format!("cannot read {file}"))?;
    let alert = read_alert(&text, "replay")?;
    let outcome = replay(&settings, &alert).await?;
    println!("{}", serde_json::to_string_pretty(&outcome)?);
    Ok(())
}
