//! `triage-bot demo`: the whole loop, once, against in-process emulators, printed as a timeline.
//! The world it runs in ([`crate::demo::World`]) is the one the flow tests use.

use std::time::Duration;

use serde_json::{Value, json};

use crate::demo::*;
use crate::domain::IncidentState;

/// Renders Block Kit as readable text for the terminal.
pub fn render_blocks(blocks: &Value) -> String {
    let mut out = Vec::new();
    for b in blocks.as_array().into_iter().flatten() {
        match b.get("type").and_then(Value::as_str) {
            Some("header") => out.push(format!(
                "== {} ==",
                b.pointer("/text/text")
                    .and_then(Value::as_str)
                    .unwrap_or("")
            )),
            Some("section") => out.push(
                b.pointer("/text/text")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string(),
            ),
            Some("context") => out.extend(
                b.get("elements")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(|e| e.get("text").and_then(Value::as_str))
                    .map(|t| format!("({t})")),
            ),
            Some("actions") => {
                let buttons: Vec<String> = b
                    .get("elements")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .map(|e| {
                        format!(
                            "[ {} ]",
                            e.pointer("/text/text")
                                .and_then(Value::as_str)
                                .unwrap_or("?")
                        )
                    })
                    .collect();
                out.push(buttons.join("  "));
            }
            _ => {}
        }
    }
    out.join("\n")
}

fn indent(text: &str) -> String {
    text.lines()
        .map(|l| format!("    {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

pub async fn run() -> anyhow::Result<()> {
    let world = World::start().await?;
    println!("triage-bot demo — every outside system is an in-process emulator on 127.0.0.1\n");
    println!(
        "  Elasticsearch {}\n  Kibana        {}\n  Slack Web API {}\n  WinRM host    {} ({HOST})\n",
        world.es.url(),
        world.kibana.url(),
        world.slack.url(),
        world.winrm.url()
    );
    let app = world.start_app().await?;
    let t = Duration::from_secs(30);

    let incident = wait_for_state(&app, IncidentState::AwaitingApproval, t).await?;
    let alert = incident.alert()?;
    println!(
        "1. Alert picked up from {}\n    {} — {} on {} ({}), risk {}\n",
        alert.index,
        alert.severity.title(),
        alert.rule_name,
        alert.host_name,
        alert.primary_ip().unwrap_or("?"),
        alert.risk_score.unwrap_or(0.0)
    );
    let triage = incident
        .triage()
        .ok_or_else(|| anyhow::anyhow!("no triage stored"))?;
    println!(
        "2. AI triage (Kibana Security AI Assistant, {} call(s))\n    Summary: {}",
        world.kibana.calls().len(),
        triage.summary
    );
    println!(
        "    Investigation commands ({}):",
        triage.investigation.len()
    );
    for (i, c) in triage.investigation.iter().enumerate() {
        println!("      {}. {c}", i + 1);
    }
    println!("    Remediation commands ({}):", triage.remediation.len());
    for (i, c) in triage.remediation.iter().enumerate() {
        println!("      {}. {c}", i + 1);
    }
    println!(
        "    Handler: {} → Slack user {}\n",
        incident.handler_name.as_deref().unwrap_or("?"),
        incident
            .handler_slack_id
            .as_deref()
            .unwrap_or("(not found)")
    );

    world
        .slack
        .wait_until("the approval message", t, |s| !s.messages.is_empty())
        .await?;
    let msg = world
        .slack
        .messages()
        .into_iter()
        .next()
        .ok_or_else(|| anyhow::anyhow!("no message"))?;
    let out_dir = std::env::temp_dir().join(format!("triage-bot-demo-{}", std::process::id()));
    std::fs::create_dir_all(&out_dir)?;
    let blocks_path = out_dir.join("approval-message.json");
    std::fs::write(
        &blocks_path,
        serde_json::to_string_pretty(
            &json!({ "channel": msg.channel, "text": msg.text, "blocks": msg.blocks }),
        )?,
    )?;
    println!(
        "3. Slack approval message posted to {} (ts {})\n    Fallback text: {}\n{}\n    Block Kit JSON: {}\n",
        msg.channel,
        msg.ts,
        msg.text,
        indent(&render_blocks(&msg.blocks)),
        blocks_path.display()
    );

    let (status, _) = world
        .click(
            &app,
            HANDLER_ID,
            crate::pipeline::approval::blocks::ACTION_APPROVE,
        )
        .await?;
    println!(
        "4. {HANDLER_NAME} (<@{HANDLER_ID}>) clicked \"Yes\" — signed request to /slack/interactions → HTTP {status}\n"
    );

    let done = wait_for_state(&app, IncidentState::Executed, t).await?;
    println!(
        "5. Commands run over WinRM on {HOST} ({} WS-Management shells opened and closed):",
        world.winrm.executed().len()
    );
    for c in app.ctx.store.commands(&done.id).await? {
        println!(
            "    {}. [{}] {} → {} (exit {})",
            c.seq,
            c.kind,
            c.text,
            c.status,
            c.exit_code
                .map(|e| e.to_string())
                .unwrap_or_else(|| "-".into())
        );
        let out = c.stdout.unwrap_or_default();
        if !out.trim().is_empty() {
            println!("{}", indent(&indent(out.trim_end())));
        }
    }
    world
        .slack
        .wait_until("the final thread summary", t, |s| {
            s.messages
                .iter()
                .any(|m| m.thread_ts.is_some() && m.text.contains("Finished on"))
        })
        .await?;
    let replies = world
        .slack
        .messages()
        .into_iter()
        .filter(|m| m.thread_ts.is_some())
        .count();
    let updated = world
        .slack
        .messages()
        .into_iter()
        .next()
        .map(|m| render_blocks(&m.blocks))
        .unwrap_or_default();
    println!(
        "\n    Slack: approval message updated in place; {replies} replies in its thread. It now ends with:\n{}\n",
        indent(updated.lines().last().unwrap_or(""))
    );

    wait_until_settled(&app, t).await?;
    let case = world
        .kibana
        .cases()
        .into_iter()
        .next()
        .ok_or_else(|| anyhow::anyhow!("no case"))?;
    println!(
        "6. Kibana case {}\n    Title: {}\n    Severity: {}  Tags: {}",
        case["id"].as_str().unwrap_or("?"),
        case["title"].as_str().unwrap_or("?"),
        case["severity"].as_str().unwrap_or("?"),
        case["tags"]
    );
    println!(
        "    Description ({} characters):\n{}",
        case["description"]
            .as_str()
            .map(|d| d.chars().count())
            .unwrap_or(0),
        indent(&indent(case["description"].as_str().unwrap_or("")))
    );
    let comments = case["comments"].as_array().cloned().unwrap_or_default();
    println!("    Comments ({}):", comments.len());
    for c in &comments {
        let text = match c["type"].as_str() {
            Some("alert") => format!("[alert attached] {} in {}", c["alertId"], c["index"]),
            _ => c["comment"]
                .as_str()
                .unwrap_or("")
                .lines()
                .next()
                .unwrap_or("")
                .to_string(),
        };
        println!("      - {text}");
    }
    app.stop().await;
    println!("\nDone: alert → AI triage → Slack approval → WinRM → Kibana case.");
    Ok(())
}
