//! `triage-bot check-config`: load and validate the configuration and print it with secrets
//! redacted; with `--connect`, also try every configured dependency and say exactly what is
//! wrong and how to fix it — the database (never migrated here), Elasticsearch and each alert source, Kibana and the assistant's
//! connector and Cases, the Slack token, its scopes and the alert channel, the Socket Mode token,
//! and (with `--winrm HOST`) one Windows host. Exits non-zero when a required check fails;
//! `--json` prints the checks for machines.

use serde::Serialize;
use serde_json::json;

use super::DEFAULT_LOG;
use crate::clients::elastic::ElasticClient;
use crate::clients::kibana::cases::{CasesClient, NewCase};
use crate::clients::kibana::{KibanaHttp, connectors};
use crate::clients::slack::{REQUIRED_BOT_SCOPES, SlackClient, SlackError};
use crate::clients::winrm::WinRmClient;
use crate::config::{AssistantKind, LogFormat, Settings, SlackTransport};
use crate::domain::Severity;
use crate::runners::WinRmRunner;

/// One check of one dependency.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// What was checked, e.g. `elasticsearch: source security_alerts`.
    pub name: String,
    pub ok: bool,
    /// A failed required check makes the command fail.
    pub required: bool,
    /// What was found.
    pub detail: String,
    /// What to change, when it failed.
    pub fix: Option<String>,
}

impl Check {
    fn pass(name: impl Into<String>, detail: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            ok: true,
            required: true,
            detail: detail.into(),
            fix: None,
        }
    }

    fn fail(name: impl Into<String>, detail: impl Into<String>, fix: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            ok: false,
            required: true,
            detail: detail.into(),
            fix: Some(fix.into()),
        }
    }
}

/// `triage-bot check-config [--connect [--json] [--winrm HOST]]`.
pub async fn run(connect: bool, as_json: bool, winrm_host: Option<String>) -> anyhow::Result<()> {
    let settings = Settings::from_env()?;
    crate::telemetry::init(LogFormat::Pretty, DEFAULT_LOG);
    if !connect {
        println!("{settings:#?}");
        return Ok(());
    }
    let checks = connect_all(&settings, winrm_host.as_deref()).await;
    if as_json {
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({ "checks": checks }))?
        );
    } else {
        for c in &checks {
            let mark = if c.ok { "ok  " } else { "FAIL" };
            println!("{mark} {} — {}", c.name, c.detail);
            if let Some(fix) = &c.fix {
                println!("     fix: {fix}");
            }
        }
    }
    let failed = checks.iter().filter(|c| c.required && !c.ok).count();
    if failed > 0 {
        anyhow::bail!("{failed} required check(s) failed");
    }
    Ok(())
}

/// Tries every configured dependency.
pub async fn connect_all(settings: &Settings, winrm_host: Option<&str>) -> Vec<Check> {
    let mut checks = vec![database(settings).await];
    checks.extend(elasticsearch(settings).await);
    checks.extend(kibana(settings).await);
    checks.extend(slack(settings).await);
    if let Some(host) = winrm_host {
        checks.push(winrm(settings, host).await);
    }
    checks
}

/// The database: reachable, which backend, encrypted or not, and how far its schema is behind
/// this build. Nothing is migrated here.
async fn database(settings: &Settings) -> Check {
    let url = &settings.database_url;
    let fix = "check DATABASE_URL (sqlite:// or postgres://), the server, and PGPASSWORD";
    // The pool would keep trying for 30 s; a person at a prompt is told sooner.
    let opened = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        crate::store::Store::open(url.expose()),
    )
    .await;
    let store = match opened {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return Check::fail("database", format!("{url:?}: {e:#}"), fix),
        Err(_) => {
            return Check::fail("database", format!("{url:?}: no answer within 5 s"), fix);
        }
    };
    let backend = store.backend();
    let tls = match store.encrypted().await {
        Ok(Some(true)) => ", TLS",
        Ok(Some(false)) => ", not encrypted (add ?sslmode=verify-full across networks)",
        _ => "",
    };
    let schema = match store.pending_migrations().await {
        0 => "schema up to date".to_string(),
        n => format!("{n} migrations to run at the next start"),
    };
    let replicas = match backend {
        crate::store::Backend::Sqlite => "one replica",
        crate::store::Backend::Postgres => "several replicas may share it",
    };
    Check::pass(
        "database",
        format!("{backend} {url:?}{tls}; {schema}; {replicas}"),
    )
}

async fn elasticsearch(settings: &Settings) -> Vec<Check> {
    let es = &settings.elastic;
    let client = match ElasticClient::new(es) {
        Ok(c) => c,
        Err(e) => {
            return vec![Check::fail(
                "elasticsearch",
                format!("{e:#}"),
                "check ELASTICSEARCH_URL and ELASTICSEARCH_CA_FILE",
            )];
        }
    };
    let mut checks = Vec::new();
    let action_source = settings.intake.index_action.as_ref().map(|a| &a.source);
    for source in es.sources.iter().chain(action_source) {
        let name = format!("elasticsearch: source {} ({})", source.name, source.index);
        let body = json!({ "size": 0, "query": { "match_all": {} } });
        checks.push(match client.search(&source.index, body).await {
            Ok(_) => Check::pass(name, format!("{} answered; the index is readable", es.url)),
            Err(e) => {
                let text = e.to_string();
                let fix = if text.contains(" 401") {
                    "the credentials were refused: check ELASTICSEARCH_API_KEY (the encoded form) or ELASTICSEARCH_USERNAME/ELASTICSEARCH_PASSWORD".to_string()
                } else if text.contains(" 403") {
                    format!(
                        "the user may not read {}: grant the role `read` and `view_index_metadata` on it",
                        source.index
                    )
                } else if text.contains("_CA_FILE") {
                    "set ELASTICSEARCH_CA_FILE to the cluster's CA certificate".to_string()
                } else {
                    "check ELASTICSEARCH_URL (or ELASTICSEARCH_CLOUD_ID) and that the cluster is reachable from here".to_string()
                };
                Check::fail(name, text, fix)
            }
        });
    }
    checks
}

async fn kibana(settings: &Settings) -> Vec<Check> {
    let http = match KibanaHttp::new(&settings.kibana) {
        Ok(h) => h,
        Err(e) => {
            return vec![Check::fail(
                "kibana",
                format!("{e:#}"),
                "check KIBANA_URL and KIBANA_CA_FILE",
            )];
        }
    };
    let auth_fix = |text: &str| {
        if text.contains(" 401") {
            "the credentials were refused: check KIBANA_API_KEY or KIBANA_USERNAME/KIBANA_PASSWORD"
                .to_string()
        } else if text.contains(" 403") {
            "the user lacks the Kibana privilege for this feature in the space".to_string()
        } else if text.contains(" 404") {
            "check KIBANA_SPACE: the space may not exist".to_string()
        } else {
            "check KIBANA_URL and that Kibana is reachable from here".to_string()
        }
    };
    let mut checks = Vec::new();
    let space = settings.kibana.space.as_deref().unwrap_or("default");
    checks.push(cases_writable(&http, space, &auth_fix).await);
    if settings.triage.assistant.kind == AssistantKind::Kibana {
        let wanted = &settings.kibana.connector_id;
        let name = format!("kibana: assistant connector {wanted}");
        checks.push(match connectors::list(&http).await {
            Ok(list) if list.iter().any(|c| &c.id == wanted) => {
                Check::pass(name, "present in the space")
            }
            Ok(list) => {
                let ai: Vec<String> = list
                    .iter()
                    .filter(|c| c.connector_type_id.starts_with(".gen-ai") || c.connector_type_id.starts_with(".bedrock") || c.connector_type_id.starts_with(".gemini") || c.connector_type_id.starts_with(".inference"))
                    .map(|c| format!("{} ({})", c.id, c.name))
                    .collect();
                Check::fail(
                    name,
                    format!("no connector with this id in space {space}"),
                    if ai.is_empty() {
                        "create a GenAI connector in Stack Management → Connectors and set KIBANA_CONNECTOR_ID to its id".to_string()
                    } else {
                        format!("set KIBANA_CONNECTOR_ID to one of: {}", ai.join(", "))
                    },
                )
            }
            Err(e) => {
                let text = e.to_string();
                Check::fail(name, &text, auth_fix(&text))
            }
        });
    }
    checks
}

/// Cases in the space: writable, shown by creating a case marked as a check and deleting it at
/// once (there is no side-effect-free way to ask Kibana for the privilege). A case that cannot be
/// deleted is reported, with its id, for deleting by hand.
async fn cases_writable(
    http: &KibanaHttp,
    space: &str,
    auth_fix: &dyn Fn(&str) -> String,
) -> Check {
    let name = format!("kibana: cases in space {space}");
    let cases = CasesClient::new(http.clone());
    let probe = NewCase {
        title: "triage-bot check-config: write test (deleted at once)".into(),
        description: "Created and deleted by `triage-bot check-config --connect` to check that triage-bot may write cases in this space.".into(),
        tags: vec!["triage-bot-check".into()],
        severity: Severity::Low,
        category: None,
        assignee: None,
    };
    let created = match cases.create(probe).await {
        Ok(c) => c,
        Err(e) => {
            let text = e.to_string();
            let fix = if text.contains(" 403") {
                "the user may read but not write cases: give its role `All` for Security → Cases in this space".to_string()
            } else {
                auth_fix(&text)
            };
            return Check::fail(name, text, fix);
        }
    };
    match cases.delete(&created.id).await {
        Ok(()) => Check::pass(name, "writable (a test case was created and deleted)"),
        Err(e) => Check {
            required: false,
            ..Check::fail(
                name,
                format!(
                    "writable, but the test case {} could not be deleted: {e}",
                    created.id
                ),
                "delete that case by hand; to let the check clean up, grant the Cases `Delete` sub-privilege",
            )
        },
    }
}

async fn slack(settings: &Settings) -> Vec<Check> {
    let slack = &settings.slack;
    let client = match SlackClient::new(&slack.api_url, slack.bot_token.clone()) {
        Ok(c) => c,
        Err(e) => {
            return vec![Check::fail(
                "slack",
                format!("{e:#}"),
                "check SLACK_API_URL",
            )];
        }
    };
    let mut checks = Vec::new();
    let token_fix = |e: &SlackError| {
        match e {
        SlackError::Api { code, .. } if code == "invalid_auth" || code == "not_authed" => {
            "SLACK_BOT_TOKEN was refused: use the app's Bot User OAuth Token (xoxb-…) from OAuth & Permissions"
                .to_string()
        }
        SlackError::Api { code, .. } if code == "token_revoked" || code == "account_inactive" => {
            "the token was revoked: reinstall the app and use its new bot token".to_string()
        }
        _ => "check SLACK_API_URL and that slack.com is reachable from here".to_string(),
    }
    };
    match client.auth_test().await {
        Ok(info) => {
            checks.push(Check::pass(
                "slack: bot token",
                format!("valid: {} ({}) in {}", info.user, info.user_id, info.team),
            ));
            checks.push(match &info.scopes {
                Some(have) => {
                    let missing: Vec<&str> = REQUIRED_BOT_SCOPES
                        .iter()
                        .copied()
                        .filter(|s| !have.iter().any(|h| h == s))
                        .collect();
                    if missing.is_empty() {
                        Check::pass("slack: bot scopes", "every scope triage-bot uses is granted")
                    } else {
                        Check::fail(
                            "slack: bot scopes",
                            format!("missing: {}", missing.join(", ")),
                            "add them under OAuth & Permissions → Bot Token Scopes (or from slack-app-manifest.yml), then reinstall the app",
                        )
                    }
                }
                None => Check {
                    required: false,
                    ..Check::fail(
                        "slack: bot scopes",
                        "Slack sent no x-oauth-scopes header; not verified",
                        "compare the app's scopes with slack-app-manifest.yml",
                    )
                },
            });
            let channel = &slack.channel;
            checks.push(match client.can_read_channel(channel).await {
                Ok(true) => Check::pass(format!("slack: channel {channel}"), "the bot is a member"),
                Ok(false) => Check::fail(
                    format!("slack: channel {channel}"),
                    "the bot is not a member of the alert channel",
                    format!(
                        "invite it: /invite @{} in the channel (SLACK_CHANNEL={channel})",
                        info.user
                    ),
                ),
                Err(e) => Check::fail(
                    format!("slack: channel {channel}"),
                    e.to_string(),
                    "check SLACK_CHANNEL: it must be a channel id (C…), not a name",
                ),
            });
        }
        Err(e) => checks.push(Check::fail(
            "slack: bot token",
            e.to_string(),
            token_fix(&e),
        )),
    }
    if settings.approval.transport == SlackTransport::Socket {
        let name = "slack: Socket Mode app token";
        checks.push(match &settings.approval.app_token {
            None => Check::fail(name, "not set", "set SLACK_APP_TOKEN (xapp-…) with connections:write"),
            Some(token) => match SlackClient::new(&slack.api_url, token.clone()) {
                Ok(app) => match app.call_form("apps.connections.open", &[]).await {
                    Ok(_) => Check::pass(name, "valid: Slack handed out a Socket Mode URL"),
                    Err(e) => Check::fail(
                        name,
                        e.to_string(),
                        "SLACK_APP_TOKEN must be an app-level token (xapp-…) with the connections:write scope, and Socket Mode must be on in the app's settings",
                    ),
                },
                Err(e) => Check::fail(name, format!("{e:#}"), "check SLACK_API_URL"),
            },
        });
    }
    checks
}

async fn winrm(settings: &Settings, host: &str) -> Check {
    let name = format!("winrm: {host}");
    let endpoint = match settings.winrm.endpoint_for(host, &[]) {
        Ok(e) => e,
        Err(e) => {
            return Check::fail(
                name,
                e,
                "use WINRM_HOST_MAP for this host, or a template without {ip}",
            );
        }
    };
    let config = WinRmRunner::config_for(&settings.winrm, endpoint.clone());
    let client = match WinRmClient::new(config) {
        Ok(c) => c,
        Err(e) => return Check::fail(name, e.to_string(), "check the WINRM_* settings"),
    };
    match client.run_powershell("$env:COMPUTERNAME").await {
        Ok(out) if out.exit_code == 0 => Check::pass(
            name,
            format!(
                "{endpoint}: authenticated as {}, the host answered {}",
                settings.winrm.username,
                out.stdout.trim()
            ),
        ),
        Ok(out) => Check::fail(
            name,
            format!("{endpoint}: the test command exited {}", out.exit_code),
            "check that the account may run PowerShell remotely on the host",
        ),
        Err(e) => {
            let text = e.to_string();
            let fix = if text.contains("401") || text.to_lowercase().contains("auth") {
                "the host refused the credentials: check WINRM_USERNAME (DOMAIN\\user) and WINRM_PASSWORD, and WINRM_TRANSPORT (ntlm for HTTP 5985, basic only over HTTPS 5986)"
            } else {
                "check that WinRM listens there (winrm quickconfig), the firewall allows 5985/5986, and WINRM_ENDPOINT_TEMPLATE"
            };
            Check::fail(name, format!("{endpoint}: {text}"), fix)
        }
    }
}
