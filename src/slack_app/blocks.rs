//! The Slack messages triage-bot posts, as Block Kit JSON.
//!
//! Alert fields and AI output are untrusted text: they go through [`escape`] so they can never
//! create mentions, channel pings or links, and long content is cut to Block Kit's limits
//! (3,000 characters per section text, 150 per header, 75 per button).

use serde_json::{Value, json};

use crate::domain::{Alert, CommandKind, ProposedCommand, Risk, Triage};

pub const ACTION_APPROVE: &str = "triage_approve";
pub const ACTION_DECLINE: &str = "triage_decline";
const SECTION_MAX: usize = 3000;
const HEADER_MAX: usize = 150;

/// Escapes the three characters Slack treats as control characters in text.
pub fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Cuts to `max` characters with a note pointing to the case.
pub fn fit(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    const NOTE: &str = "… (full text in the case)";
    // Room for the note, its newline and a possible code-block closer.
    let keep = max.saturating_sub(NOTE.chars().count() + 5);
    let cut: String = text.chars().take(keep).collect();
    // Keep a code block closed if the cut fell inside it.
    let closer = if cut.matches("```").count() % 2 == 1 {
        "\n```"
    } else {
        ""
    };
    format!("{cut}{closer}\n{NOTE}")
}

/// Who is tagged: a Slack mention when the id is known, else the plain (escaped) name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandlerTag {
    pub slack_id: Option<String>,
    pub name: Option<String>,
}

impl HandlerTag {
    pub fn mention(&self) -> String {
        match (&self.slack_id, &self.name) {
            (Some(id), _) => format!("<@{id}>"),
            (None, Some(name)) => escape(name),
            (None, None) => "unassigned".to_string(),
        }
    }
}

fn section(text: &str) -> Value {
    json!({ "type": "section", "text": { "type": "mrkdwn", "text": fit(text, SECTION_MAX) } })
}

fn header(alert: &Alert) -> Value {
    let text = format!("{} alert: {}", alert.severity.title(), alert.rule_name);
    json!({ "type": "header", "text": { "type": "plain_text", "text": fit_plain(&text, HEADER_MAX), "emoji": true } })
}

fn fit_plain(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut s: String = text.chars().take(max - 1).collect();
    s.push('…');
    s
}

fn facts(alert: &Alert) -> String {
    let ip = alert.primary_ip().unwrap_or("unknown IP");
    let os = alert.os_family.as_deref().unwrap_or("unknown OS");
    let user = alert.user_name.as_deref().unwrap_or("unknown");
    let risk = alert
        .risk_score
        .map(|r| format!("{r}"))
        .unwrap_or_else(|| "n/a".into());
    format!(
        "*Host:* {} ({}, {})\n*User:* {}\n*Time:* {}\n*Risk score:* {}\n*Alert:* `{}`",
        escape(&alert.host_name),
        escape(ip),
        escape(os),
        escape(user),
        alert.timestamp.format("%Y-%m-%d %H:%M:%S UTC"),
        risk,
        escape(&alert.id.0)
    )
}

/// The numbered command list, one line each with its risk, inside a code block (so backticks and
/// markup in commands are shown literally).
pub fn command_list(commands: &[ProposedCommand]) -> String {
    let lines: Vec<String> = commands
        .iter()
        .map(|c| {
            let label = match (c.risk, c.reasons.is_empty()) {
                (Risk::Blocked, false) => format!("BLOCKED: {}", c.reasons.join("; ")),
                (risk, true) => risk.label().to_string(),
                (risk, false) => format!("{} — {}", risk.label(), c.reasons.join("; ")),
            };
            format!(
                "{}. [{}] {}",
                c.seq,
                escape(&label),
                escape(&c.text.replace("```", "ˋˋˋ"))
            )
        })
        .collect();
    format!("```\n{}\n```", lines.join("\n"))
}

/// The approval request: alert facts, AI summary, handler, commands and Yes / No buttons.
#[allow(clippy::too_many_arguments)]
pub fn approval_message(
    channel: &str,
    incident: &str,
    alert: &Alert,
    triage: &Triage,
    commands: &[ProposedCommand],
    handler: &HandlerTag,
    approval_value: &str,
    case_url: Option<&str>,
) -> Value {
    let (inv, rem): (Vec<_>, Vec<_>) = commands
        .iter()
        .cloned()
        .partition(|c| c.kind == CommandKind::Investigation);
    let runnable = commands.iter().filter(|c| c.may_run()).count();
    let mut blocks = vec![
        header(alert),
        section(&facts(alert)),
        section(&format!("*AI summary*\n{}", escape(&triage.summary))),
        section(&format!(
            "*Handler:* {} — please review and decide.",
            handler.mention()
        )),
        section(&format!(
            "*Investigation commands* ({})\n{}",
            inv.len(),
            command_list(&inv)
        )),
        section(&format!(
            "*Remediation commands* ({})\n{}",
            rem.len(),
            command_list(&rem)
        )),
    ];
    if !triage.warnings.is_empty() {
        blocks.push(section(&format!(
            ":warning: {}",
            escape(&triage.warnings.join("; "))
        )));
    }
    if let Some(url) = case_url {
        blocks.push(json!({ "type": "context", "elements": [{ "type": "mrkdwn", "text": format!("<{url}|Kibana case>") }] }));
    }
    blocks.push(json!({
        "type": "actions",
        "block_id": format!("approval:{incident}"),
        "elements": [
            { "type": "button", "action_id": ACTION_APPROVE, "text": { "type": "plain_text", "text": format!("Yes, run {runnable} commands") }, "style": "primary", "value": approval_value,
              "confirm": { "title": { "type": "plain_text", "text": "Run these commands?" }, "text": { "type": "plain_text", "text": fit_plain(&format!("{runnable} commands will run on {}.", alert.host_name), 300) }, "confirm": { "type": "plain_text", "text": "Run" }, "deny": { "type": "plain_text", "text": "Cancel" } } },
            { "type": "button", "action_id": ACTION_DECLINE, "text": { "type": "plain_text", "text": "No" }, "style": "danger", "value": approval_value }
        ]
    }));
    json!({
        "channel": channel,
        "text": fallback_text(alert, handler),
        "blocks": blocks,
        "unfurl_links": false,
        "unfurl_media": false,
        "metadata": { "event_type": "triage_incident", "event_payload": { "incident_id": incident } },
    })
}

/// The notification / fallback text, which also tags the handler.
pub fn fallback_text(alert: &Alert, handler: &HandlerTag) -> String {
    format!(
        "{} alert {} on {}: approval needed from {}",
        alert.severity.title(),
        escape(&alert.rule_name),
        escape(&alert.host_name),
        handler.mention()
    )
}

/// The approval message after the decision: same content, the buttons replaced by who decided,
/// when, and what will happen.
pub fn decided_message(original: &Value, decision_line: &str) -> Value {
    let mut blocks: Vec<Value> = original
        .get("blocks")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|b| b.get("type").and_then(Value::as_str) != Some("actions"))
        .collect();
    blocks.push(json!({ "type": "section", "text": { "type": "mrkdwn", "text": fit(decision_line, SECTION_MAX) } }));
    json!({
        "channel": original.get("channel").cloned().unwrap_or(Value::Null),
        "text": original.get("text").cloned().unwrap_or(Value::Null),
        "blocks": blocks,
    })
}

/// A message for an incident whose triage failed: what went wrong and the raw answer.
pub fn triage_failed_message(
    channel: &str,
    alert: &Alert,
    reason: &str,
    raw_answer: Option<&str>,
) -> Value {
    let mut blocks = vec![
        header(alert),
        section(&facts(alert)),
        section(&format!(":x: *Triage failed:* {}", escape(reason))),
    ];
    if let Some(raw) = raw_answer {
        blocks.push(section(&format!(
            "*The assistant answered:*\n```\n{}\n```",
            escape(&raw.replace("```", "ˋˋˋ"))
        )));
    }
    blocks.push(section("No commands will be proposed for this alert; it is recorded in the Kibana case for manual triage."));
    json!({
        "channel": channel,
        "text": format!("Triage failed for {} on {}: {}", escape(&alert.rule_name), escape(&alert.host_name), escape(reason)),
        "blocks": blocks,
        "unfurl_links": false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_neutralises_mentions_and_links() {
        assert_eq!(
            escape("<!channel> & <@U1> <http://x|y>"),
            "&lt;!channel&gt; &amp; &lt;@U1&gt; &lt;http://x|y&gt;"
        );
    }

    #[test]
    fn fit_keeps_code_blocks_closed() {
        let long = format!("```\n{}\n```", "x".repeat(5000));
        let f = fit(&long, 3000);
        assert!(f.chars().count() <= 3000);
        assert_eq!(f.matches("```").count() % 2, 0);
        assert!(f.ends_with("(full text in the case)"));
    }
}
