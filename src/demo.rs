//! `triage-bot demo`: the whole loop, once, against in-process emulators, printed as a timeline.
//!
//! [`World`] — the emulators, seeded with one critical alert, a scripted assistant, a Slack
//! workspace and a Windows host — is shared with the flow tests, so the demo shows exactly what
//! the tests check.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Value, json};

use crate::app::{App, RunningApp};
use crate::config::Settings;
use crate::domain::IncidentState;
use emulators::elasticsearch::ElasticEmulator;
use emulators::kibana::KibanaEmulator;
use emulators::slack::SlackEmulator;
use emulators::winrm::{WinRmEmulator, WinRmEmulatorConfig};

pub const HOST: &str = "WS-FIN-042";
pub const HOST_IP: &str = "10.20.4.42";
pub const ALERT_ID: &str = "3f1c0b9e6a7d4e58b2c2a1f0d9e8c7b6a5f4e3d2c1b0a9f8e7d6c5b4a3f2e1d0";
pub const ALERT_INDEX: &str = ".internal.alerts-security.alerts-default-000001";
pub const CHANNEL: &str = "C0SOCALERTS";
pub const HANDLER_ID: &str = "U0ALICE";
pub const HANDLER_NAME: &str = "Alice Analyst";
pub const OTHER_USER: &str = "U0MALLORY";
pub const BOT_TOKEN: &str = "xoxb-demo-bot-token";
pub const SIGNING_SECRET: &str = "demo-signing-secret-0123456789";
pub const WINRM_USER: &str = "CORP\\svc-triage";
pub const WINRM_PASSWORD: &str = "demo-winrm-password";

/// The commands the scripted assistant proposes, with what the host answers to each.
pub const COMMANDS: [(&str, &str); 8] = [
    (
        "Get-Process -Id 3312 | Select-Object Id,ProcessName,Path,StartTime",
        "Id ProcessName Path                                   StartTime\r\n-- ----------- ----                                   ---------\r\n3312 WmiPrvSE  C:\\Windows\\System32\\wbem\\WmiPrvSE.exe 3/4/2025 10:14:51 AM\r\n",
    ),
    (
        "Get-ItemProperty -Path 'HKLM:\\SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\Run'",
        "OneDriveUpdate : C:\\ProgramData\\odu\\odupd.exe /silent\r\nSecurityHealth : C:\\Windows\\system32\\SecurityHealthSystray.exe\r\n",
    ),
    (
        "Get-FileHash -Path 'C:\\ProgramData\\odu\\odupd.exe' -Algorithm SHA256",
        "Algorithm Hash                                                             Path\r\nSHA256    9F86D081884C7D659A2FEAA0C55AD015A3BF4F1B2B0B822CD15D6C15B0F00A08 C:\\ProgramData\\odu\\odupd.exe\r\n",
    ),
    (
        "Get-NetTCPConnection -State Established | Where-Object { $_.OwningProcess -eq 3312 }",
        "LocalAddress LocalPort RemoteAddress RemotePort State\r\n10.20.4.42   49712     185.220.101.7 443        Established\r\n",
    ),
    (
        "Get-WinEvent -LogName 'Microsoft-Windows-WMI-Activity/Operational' -MaxEvents 5",
        "TimeCreated          Id Message\r\n3/4/2025 10:14:58 AM 5861 Namespace = //./root/subscription; Eventfilter = odu_filter\r\n",
    ),
    (
        "Remove-ItemProperty -Path 'HKLM:\\SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\Run' -Name 'OneDriveUpdate'",
        "",
    ),
    ("Stop-Process -Id 3312 -Force", ""),
    (
        "Remove-Item -Path 'C:\\ProgramData\\odu\\odupd.exe' -Force",
        "",
    ),
];

/// A triage answer in the shape real models produce: bold headings, numbered lists, backticks.
pub fn triage_answer() -> String {
    let inv: Vec<String> = COMMANDS[..5]
        .iter()
        .enumerate()
        .map(|(i, (c, _))| format!("{}. `{c}`", i + 1))
        .collect();
    let rem: Vec<String> = COMMANDS[5..]
        .iter()
        .enumerate()
        .map(|(i, (c, _))| format!("{}. `{c}`", i + 1))
        .collect();
    format!(
        "**Summary:** The WMI provider host (WmiPrvSE.exe, PID 3312) on {HOST} ({HOST_IP}) wrote a Run key \
         `OneDriveUpdate` pointing at C:\\ProgramData\\odu\\odupd.exe, a classic WMI event-subscription persistence \
         technique (MITRE T1546.003 / T1547.001). The binary is unsigned and the host holds an outbound \
         connection to 185.220.101.7; treat this as an active compromise.\n\n\
         **Investigation Commands:**\n{}\n\n**Remediation Commands:**\n{}\n",
        inv.join("\n"),
        rem.join("\n")
    )
}

/// The critical alert document, as Elastic Security stores it.
pub fn alert_document(id: &str, timestamp: &str) -> Value {
    json!({
        "@timestamp": timestamp,
        "kibana.alert.uuid": id,
        "kibana.alert.status": "active",
        "kibana.alert.workflow_status": "open",
        "kibana.alert.severity": "critical",
        "kibana.alert.risk_score": 99,
        "kibana.alert.reason": format!("registry event with process WmiPrvSE.exe, by SYSTEM on {HOST} created critical alert Registry Run Key Set by WMI Provider Host."),
        "kibana.alert.rule.name": "Registry Run Key Set by WMI Provider Host",
        "kibana.alert.rule.uuid": "b7e2c1d0-5a4f-11ee-8c99-0242ac120002",
        "kibana.alert.rule.rule_id": "00000000-example-wmi-run-key",
        "kibana.alert.rule.tags": ["Domain: Endpoint", "OS: Windows", "Tactic: Persistence"],
        "kibana.alert.rule.threat": [{
            "framework": "MITRE ATT&CK",
            "tactic": { "id": "TA0003", "name": "Persistence", "reference": "https://attack.mitre.org/tactics/TA0003/" },
            "technique": [{ "id": "T1547", "name": "Boot or Logon Autostart Execution", "reference": "https://attack.mitre.org/techniques/T1547/" }]
        }],
        "kibana.space_ids": ["default"],
        "event.kind": "signal",
        "agent": { "id": "2b1eb7f7-bd61-436a-98af-c2b182043476", "type": "endpoint" },
        "host": { "name": HOST, "hostname": HOST, "ip": [HOST_IP, "fe80::4850:4f4f:4b53:8103"],
                  "os": { "family": "windows", "name": "Windows", "full": "Windows 10 Enterprise 22H2" } },
        "user": { "name": "SYSTEM", "domain": "NT AUTHORITY" },
        "process": { "name": "WmiPrvSE.exe", "pid": 3312, "executable": "C:\\Windows\\System32\\wbem\\WmiPrvSE.exe" },
        "registry": { "path": "HKLM\\SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\Run\\OneDriveUpdate",
                      "data": { "strings": ["C:\\ProgramData\\odu\\odupd.exe /silent"] } }
    })
}

/// The emulated outside world.
pub struct World {
    pub es: ElasticEmulator,
    pub kibana: KibanaEmulator,
    pub slack: SlackEmulator,
    pub winrm: WinRmEmulator,
    pub dir: PathBuf,
    _tmp: tempfile::TempDir,
}

impl World {
    /// Starts the emulators and seeds the scenario: one critical alert (timestamped now), a
    /// scripted assistant, the handler in Slack, and the host's answers to the commands.
    pub async fn start() -> anyhow::Result<Self> {
        // Quiet unless RUST_LOG asks: the demo prints its own timeline, tests capture logs.
        let filter = tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_test_writer()
            .try_init();
        let _ = crate::http::prometheus();
        let tmp = tempfile::tempdir()?;
        let es = ElasticEmulator::start().await?;
        let kibana = KibanaEmulator::start().await?;
        let slack = SlackEmulator::start(BOT_TOKEN).await?;
        let winrm = WinRmEmulator::start(WinRmEmulatorConfig {
            host_name: HOST.into(),
            username: WINRM_USER.into(),
            password: WINRM_PASSWORD.into(),
        })
        .await?;
        slack.add_user(HANDLER_ID, "alice", HANDLER_NAME, Some("alice@example.com"));
        slack.add_user(
            OTHER_USER,
            "mallory",
            "Mallory Intern",
            Some("mallory@example.com"),
        );
        let answer = triage_answer();
        kibana.set_responder(move |call| {
            if call.last_user_content.starts_with("Who handles") {
                format!("{HANDLER_NAME}.")
            } else {
                answer.clone()
            }
        });
        for (cmd, out) in COMMANDS {
            winrm.set_response(cmd, out, "", 0);
        }
        es.index_doc(
            ALERT_INDEX,
            ALERT_ID,
            alert_document(ALERT_ID, &chrono::Utc::now().to_rfc3339()),
        );
        Ok(Self {
            dir: tmp.path().to_path_buf(),
            es,
            kibana,
            slack,
            winrm,
            _tmp: tmp,
        })
    }

    pub fn database_url(&self) -> String {
        format!(
            "sqlite://{}?mode=rwc",
            self.dir.join("triage-bot.db").display()
        )
    }

    /// The environment a deployment would set, pointing at the emulators.
    pub fn env(&self) -> HashMap<String, String> {
        let pairs = [
            ("DATABASE_URL", self.database_url()),
            ("HTTP_BIND", "127.0.0.1:0".into()),
            ("ELASTICSEARCH_URL", self.es.url()),
            ("KIBANA_URL", self.kibana.url()),
            ("KIBANA_CONNECTOR_ID", "demo-gpt-4o".into()),
            ("SLACK_API_URL", self.slack.url()),
            ("SLACK_BOT_TOKEN", BOT_TOKEN.into()),
            ("SLACK_SIGNING_SECRET", SIGNING_SECRET.into()),
            ("SLACK_CHANNEL", CHANNEL.into()),
            ("WINRM_HOST_MAP", format!("{HOST}={}", self.winrm.url())),
            ("WINRM_USERNAME", WINRM_USER.into()),
            ("WINRM_PASSWORD", WINRM_PASSWORD.into()),
            ("WINRM_OPERATION_TIMEOUT_SECS", "2".into()),
            ("POLL_INTERVAL_SECS", "0.2".into()),
            ("WORKER_TICK_SECS", "0.2".into()),
            ("RETRY_BASE_SECS", "0.05".into()),
        ];
        pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
    }

    pub fn settings_with(&self, overrides: &[(&str, &str)]) -> anyhow::Result<Settings> {
        let mut env = self.env();
        for (k, v) in overrides {
            env.insert(k.to_string(), v.to_string());
        }
        Ok(Settings::from_lookup(&|k| env.get(k).cloned())?)
    }

    /// The app with some settings changed, as a deployment's environment would.
    pub async fn start_app_with(&self, overrides: &[(&str, &str)]) -> anyhow::Result<RunningApp> {
        App::start(self.settings_with(overrides)?, None).await
    }

    pub async fn start_app(&self) -> anyhow::Result<RunningApp> {
        App::start(self.settings_with(&[])?, None).await
    }

    /// Acts as Slack: a signed block_actions click on the approval message.
    pub async fn click(
        &self,
        app: &RunningApp,
        user: &str,
        action_id: &str,
    ) -> anyhow::Result<(u16, String)> {
        self.click_at(
            app,
            user,
            action_id,
            chrono::Utc::now().timestamp(),
            SIGNING_SECRET,
        )
        .await
    }

    pub async fn click_at(
        &self,
        app: &RunningApp,
        user: &str,
        action_id: &str,
        timestamp: i64,
        secret: &str,
    ) -> anyhow::Result<(u16, String)> {
        let msg = self
            .slack
            .messages()
            .into_iter()
            .find(|m| m.thread_ts.is_none())
            .ok_or_else(|| anyhow::anyhow!("no approval message posted"))?;
        let value = button_value(&msg.blocks, action_id)
            .ok_or_else(|| anyhow::anyhow!("the message has no {action_id} button"))?;
        let name = if user == HANDLER_ID {
            "alice"
        } else {
            "someone"
        };
        let payload = emulators::slack::block_actions_payload(
            user,
            name,
            &msg.channel,
            &msg.ts,
            action_id,
            &value,
        );
        emulators::slack::post_interaction(
            &format!("{}/slack/interactions", app.url()),
            secret,
            &payload,
            timestamp,
        )
        .await
    }
}

impl World {
    /// Acts as Slack: a signed click on the message `message_ts` carrying exactly `value` — as a
    /// stale client or a forger would send it.
    pub async fn click_value(
        &self,
        app: &RunningApp,
        user: &str,
        message_ts: &str,
        action_id: &str,
        value: &str,
    ) -> anyhow::Result<(u16, String)> {
        let payload = emulators::slack::block_actions_payload(
            user, "someone", CHANNEL, message_ts, action_id, value,
        );
        let url = format!("{}/slack/interactions", app.url());
        emulators::slack::post_interaction(
            &url,
            SIGNING_SECRET,
            &payload,
            chrono::Utc::now().timestamp(),
        )
        .await
    }
}

/// The `value` of the button with `action_id` in a message's blocks.
pub fn button_value(blocks: &Value, action_id: &str) -> Option<String> {
    blocks
        .as_array()?
        .iter()
        .filter_map(|b| b.get("elements")?.as_array())
        .flatten()
        .find(|e| e.get("action_id").and_then(Value::as_str) == Some(action_id))?
        .get("value")?
        .as_str()
        .map(String::from)
}

/// Polls the database every 20 ms until `check` answers `Ok(Some(_))`, or fails after `timeout`
/// with `what` and the last thing `check` saw. The database is the app's record, so this waits on
/// recorded state, never on time alone.
async fn poll_db<T, F, Fut>(timeout: Duration, what: &str, mut check: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<(Option<T>, String)>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let (found, seen) = check().await?;
        if let Some(v) = found {
            return Ok(v);
        }
        if tokio::time::Instant::now() > deadline {
            anyhow::bail!("timed out after {timeout:?} waiting for {what}; {seen}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until an incident reaches `state`.
pub async fn wait_for_state(
    app: &RunningApp,
    state: IncidentState,
    timeout: Duration,
) -> anyhow::Result<crate::store::IncidentRow> {
    poll_db(timeout, &format!("an incident in {state}"), || async {
        let incidents = app.ctx.store.incidents().await?;
        let states: Vec<String> = incidents.iter().map(|i| i.state.clone()).collect();
        Ok((
            incidents.into_iter().find(|i| i.state == state.as_str()),
            format!("states now: {states:?}"),
        ))
    })
    .await
}

/// Waits until no queued side effect is left to perform.
pub async fn wait_until_settled(app: &RunningApp, timeout: Duration) -> anyhow::Result<()> {
    poll_db(timeout, "the outbox to drain", || async {
        let busy: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM outbox WHERE status IN ('pending', 'running')",
        )
        .fetch_one(&app.ctx.store.pool)
        .await?;
        Ok((
            (busy == 0).then_some(()),
            format!("{busy} jobs still queued"),
        ))
    })
    .await
}

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
        .click(&app, HANDLER_ID, crate::slack_app::blocks::ACTION_APPROVE)
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
