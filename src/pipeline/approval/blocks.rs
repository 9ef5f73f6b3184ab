//! The Slack messages triage-bot posts, as Block Kit JSON.
//!
//! Alert fields and AI output are untrusted text: they go through [`crate::text::escape`] so they can never
//! create mentions, channel pings or links, and long content is cut to Block Kit's limits
//! (3,000 characters per section text, 150 per header, 75 per button).

use serde_json::{Value, json};

use crate::domain::{Alert, CommandKind, HandlerTag, ProposedCommand, Risk, Triage};
use crate::text::escape;

pub const ACTION_APPROVE: &str = "triage_approve";
pub const ACTION_DECLINE: &str = "triage_decline";
pub const ACTION_APPROVE_INVESTIGATION: &str = "triage_approve_investigation";
pub const ACTION_ISOLATE: &str = "triage_isolate_host";
/// "Edit…": opens the modal in which an approver edits and picks the commands, then approves.
pub const ACTION_EDIT: &str = "triage_edit";
/// "Request changes…": opens a modal asking what the assistant should change.
pub const ACTION_REQUEST_CHANGES: &str = "triage_request_changes";
/// The `callback_id` of the Request changes modal, and its one field.
pub const REVISE_CALLBACK: &str = "triage_request_changes";
pub const REVISE_BLOCK: &str = "instruction";
/// The `callback_id` of the Edit… modal, so its `view_submission` is recognised.
pub const EDIT_CALLBACK: &str = "triage_edit_proposal";
/// Most commands the Edit… modal can hold: two input blocks each, within a modal's 100 blocks.
pub const EDIT_MAX_COMMANDS: usize = 45;
/// Longest command a `plain_text_input` can hold.
pub const EDIT_MAX_CHARS: usize = 3000;
const MAX_BLOCKS: usize = 50;
const SECTION_MAX: usize = 3000;
const HEADER_MAX: usize = 150;

/// Cuts to `max` characters with a note pointing to the case.
pub fn fit(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    const NOTE: &str = "… (full list in the case)";
    // Room for the note, its newline and a possible code-block closer.
    let cut = crate::text::truncate(text, max.saturating_sub(NOTE.chars().count() + 5), "");
    // Keep a code block closed if the cut fell inside it.
    let closer = if cut.matches("```").count() % 2 == 1 {
        "\n```"
    } else {
        ""
    };
    format!("{cut}{closer}\n{NOTE}")
}

fn section(text: &str) -> Value {
    json!({ "type": "section", "text": { "type": "mrkdwn", "text": fit(text, SECTION_MAX) } })
}

fn header(alert: &Alert) -> Value {
    let text = format!("{} alert: {}", alert.severity.title(), alert.rule_name);
    json!({ "type": "header", "text": { "type": "plain_text", "text": fit_plain(&text, HEADER_MAX), "emoji": true } })
}

fn fit_plain(text: &str, max: usize) -> String {
    crate::text::truncate(text, max, "…")
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

/// One line per command: number, risk (blocked ones with the reason) and the command, escaped.
fn command_line(c: &ProposedCommand) -> String {
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
}

/// The numbered command list inside a code block (so backticks and markup in commands show
/// literally), split over as many sections as Block Kit's 3,000-character limit needs.
pub fn command_sections(title: &str, commands: &[ProposedCommand]) -> Vec<Value> {
    let mut sections = Vec::new();
    let mut current: Vec<String> = Vec::new();
    let mut heading = format!("*{title}* ({})", commands.len());
    let budget = SECTION_MAX - 200;
    for c in commands {
        let line = fit(&command_line(c), budget - heading.len());
        let size: usize =
            current.iter().map(|l| l.chars().count() + 1).sum::<usize>() + line.chars().count();
        if !current.is_empty() && size + heading.len() > budget {
            sections.push(section(&format!(
                "{heading}\n```\n{}\n```",
                current.join("\n")
            )));
            current.clear();
            heading = format!("*{title}* (continued)");
        }
        current.push(line);
    }
    if current.is_empty() {
        sections.push(section(&format!("{heading}\n_none_")));
    } else {
        sections.push(section(&format!(
            "{heading}\n```\n{}\n```",
            current.join("\n")
        )));
    }
    sections
}

/// Everything the approval message shows.
pub struct ApprovalView<'a> {
    pub channel: &'a str,
    pub incident: &'a str,
    pub alert: &'a Alert,
    pub triage: &'a Triage,
    pub commands: &'a [ProposedCommand],
    pub handler: &'a HandlerTag,
    /// `incident:hash`, carried by every decision button.
    pub approval_value: &'a str,
    pub alert_url: Option<String>,
    pub case_url: Option<String>,
    /// Once decided or expired: the line that replaces the buttons.
    pub outcome: Option<String>,
    /// While still open: a note above the buttons (e.g. a first approval recorded).
    pub note: Option<String>,
    /// Offer "Isolate host" (Elastic Defend, when the policy allows it).
    pub offer_isolate: bool,
    /// How the commands reach the host (runner and address), when known.
    pub runs_on: Option<String>,
}

/// The approval request: alert facts, AI summary, handler, commands with their risk, links, and
/// the Yes / Investigation only / No buttons — or, once decided, who decided what and when.
pub fn approval_message(v: &ApprovalView<'_>) -> Value {
    let (inv, rem): (Vec<_>, Vec<_>) = v
        .commands
        .iter()
        .cloned()
        .partition(|c| c.kind == CommandKind::Investigation);
    let runnable = v.commands.iter().filter(|c| c.may_run()).count();
    let runnable_inv = inv.iter().filter(|c| c.may_run()).count();
    let mut blocks = vec![
        header(v.alert),
        section(&facts(v.alert)),
        section(&format!("*AI summary*\n{}", escape(&v.triage.summary))),
        section(&format!(
            "*Handler:* {} — please review and decide.{}",
            v.handler.mention(),
            v.runs_on
                .as_deref()
                .map(|how| format!(
                    "\n*Runs on:* {} — {}",
                    escape(&v.alert.host_name),
                    escape(how)
                ))
                .unwrap_or_default()
        )),
    ];
    blocks.extend(command_sections("Investigation commands", &inv));
    blocks.extend(command_sections("Remediation commands", &rem));
    if !v.triage.warnings.is_empty() {
        blocks.push(section(&format!(
            ":warning: {}",
            escape(&v.triage.warnings.join("; "))
        )));
    }
    let links: Vec<String> = [
        (&v.alert_url, "Alert in Kibana"),
        (&v.case_url, "Kibana case"),
    ]
    .into_iter()
    .filter_map(|(url, label)| url.as_ref().map(|u| format!("<{u}|{label}>")))
    .collect();
    if !links.is_empty() {
        blocks.push(json!({ "type": "context", "elements": [{ "type": "mrkdwn", "text": links.join(" · ") }] }));
    }
    // Keep room for the closing blocks within Slack's 50-block limit.
    if blocks.len() > MAX_BLOCKS - 3 {
        blocks.truncate(MAX_BLOCKS - 4);
        blocks.push(section("… (full list in the case)"));
    }
    match &v.outcome {
        Some(line) => blocks.push(section(line)),
        None => {
            if let Some(note) = &v.note {
                blocks.push(section(note));
            }
            let confirm = |n: usize| {
                json!({
                    "title": { "type": "plain_text", "text": "Run these commands?" },
                    "text": { "type": "plain_text", "text": fit_plain(&format!("{n} commands will run on {}.", v.alert.host_name), 300) },
                    "confirm": { "type": "plain_text", "text": "Run" },
                    "deny": { "type": "plain_text", "text": "Cancel" }
                })
            };
            let mut elements = vec![json!({
                "type": "button", "action_id": ACTION_APPROVE, "style": "primary", "value": v.approval_value,
                "text": { "type": "plain_text", "text": fit_plain(&format!("Yes, run {runnable} commands"), 75) },
                "confirm": confirm(runnable)
            })];
            if runnable_inv > 0 && runnable_inv < runnable {
                elements.push(json!({
                    "type": "button", "action_id": ACTION_APPROVE_INVESTIGATION, "value": v.approval_value,
                    "text": { "type": "plain_text", "text": fit_plain(&format!("Investigation only ({runnable_inv})"), 75) },
                    "confirm": confirm(runnable_inv)
                }));
            }
            elements.push(json!({
                "type": "button", "action_id": ACTION_EDIT, "value": v.approval_value,
                "text": { "type": "plain_text", "text": "Edit…" }
            }));
            elements.push(json!({
                "type": "button", "action_id": ACTION_REQUEST_CHANGES, "value": v.approval_value,
                "text": { "type": "plain_text", "text": "Request changes…" }
            }));
            if v.offer_isolate {
                elements.push(json!({
                    "type": "button", "action_id": ACTION_ISOLATE, "value": v.approval_value,
                    "text": { "type": "plain_text", "text": "Isolate host" },
                    "confirm": {
                        "title": { "type": "plain_text", "text": "Isolate this host?" },
                        "text": { "type": "plain_text", "text": fit_plain(&format!("Elastic Defend will cut {} off the network (except from Elastic).", v.alert.host_name), 300) },
                        "confirm": { "type": "plain_text", "text": "Isolate" },
                        "deny": { "type": "plain_text", "text": "Cancel" }
                    }
                }));
            }
            elements.push(json!({
                "type": "button", "action_id": ACTION_DECLINE, "style": "danger", "value": v.approval_value,
                "text": { "type": "plain_text", "text": "No" }
            }));
            blocks.push(json!({ "type": "actions", "block_id": format!("approval:{}", v.incident), "elements": elements }));
        }
    }
    json!({
        "channel": v.channel,
        "text": fallback_text(v.alert, v.handler),
        "blocks": blocks,
        "unfurl_links": false,
        "unfurl_media": false,
        "metadata": { "event_type": "triage_incident", "event_payload": { "incident_id": v.incident } },
    })
}

/// The block ids of one command's text field and include checkbox in the Edit… modal.
pub fn edit_block_ids(seq: i64) -> (String, String) {
    (format!("cmd:{seq}:text"), format!("cmd:{seq}:run"))
}

/// The action ids inside those blocks.
pub const EDIT_TEXT_ACTION: &str = "text";
pub const EDIT_INCLUDE_ACTION: &str = "include";

/// The Edit… modal: the host (read-only), then every proposed command in its own prefilled
/// multiline text field with a checkbox to include it. `private_metadata` carries
/// `incident:hash`, so a submission is bound to the proposal the modal was opened for.
pub fn edit_modal(host: &str, commands: &[ProposedCommand], private_metadata: &str) -> Value {
    let mut blocks = vec![section(&format!(
        "*Host:* {} (fixed — the approval is bound to it)\nEdit a command, or untick it to leave it out. Every command is checked by the safety gate again; *submitting approves the edited list* (remediation still needs a second approver when the two-person rule is on).",
        escape(host)
    ))];
    for c in commands {
        let (text_id, run_id) = edit_block_ids(c.seq);
        let verdict = match (c.risk, c.reasons.is_empty()) {
            (Risk::Blocked, _) => format!("BLOCKED: {}", c.reasons.join("; ")),
            (risk, true) => risk.label().to_string(),
            (risk, false) => format!("{} — {}", risk.label(), c.reasons.join("; ")),
        };
        let label = format!("{}. {} ({verdict})", c.seq, c.kind.as_str());
        blocks.push(json!({
            "type": "input", "block_id": text_id,
            "label": { "type": "plain_text", "text": fit_plain(&label, 2000) },
            "element": {
                "type": "plain_text_input", "action_id": EDIT_TEXT_ACTION, "multiline": true,
                "initial_value": c.text, "max_length": EDIT_MAX_CHARS
            }
        }));
        let option = json!({
            "text": { "type": "plain_text", "text": fit_plain(&format!("Run command {} on {host}", c.seq), 75) },
            "value": "include"
        });
        let mut element = json!({
            "type": "checkboxes", "action_id": EDIT_INCLUDE_ACTION, "options": [option.clone()]
        });
        if c.may_run() {
            element["initial_options"] = json!([option]);
        }
        blocks.push(json!({
            "type": "input", "block_id": run_id, "optional": true,
            "label": { "type": "plain_text", "text": fit_plain(&format!("Include command {}", c.seq), 2000) },
            "element": element
        }));
    }
    json!({
        "type": "modal",
        "callback_id": EDIT_CALLBACK,
        "private_metadata": private_metadata,
        "title": { "type": "plain_text", "text": "Edit proposed commands" },
        "submit": { "type": "plain_text", "text": "Approve edited list" },
        "close": { "type": "plain_text", "text": "Cancel" },
        "blocks": blocks
    })
}

/// The Request changes modal: one field for the instruction to the assistant.
/// `private_metadata` carries `incident:hash` of the proposal to revise.
pub fn revise_modal(private_metadata: &str) -> Value {
    json!({
        "type": "modal",
        "callback_id": REVISE_CALLBACK,
        "private_metadata": private_metadata,
        "title": { "type": "plain_text", "text": "Request changes" },
        "submit": { "type": "plain_text", "text": "Ask the assistant" },
        "close": { "type": "plain_text", "text": "Cancel" },
        "blocks": [
            section("Tell the assistant what to change. Its revised proposal is checked by the safety gate and posted in the thread for approval; this proposal can then no longer be approved."),
            {
                "type": "input", "block_id": REVISE_BLOCK,
                "label": { "type": "plain_text", "text": "What should change?" },
                "element": {
                    "type": "plain_text_input", "action_id": EDIT_TEXT_ACTION, "multiline": true,
                    "max_length": 2000,
                    "placeholder": { "type": "plain_text", "text": "e.g. don't stop the process, collect memory first" }
                }
            }
        ]
    })
}

/// A modal that only says something (no submit button): while loading, or why nothing can
/// change. `title` fits Slack's 24 characters.
pub fn notice_modal(title: &str, text: &str) -> Value {
    json!({
        "type": "modal",
        "title": { "type": "plain_text", "text": fit_plain(title, 24) },
        "close": { "type": "plain_text", "text": "Close" },
        "blocks": [section(text)]
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
        assert!(f.ends_with("(full list in the case)"));
    }
}
