//! `triage-bot setup kibana-connector`: makes (or finds) the Kibana connector a rule action uses
//! to hand alerts to triage-bot, and prints the rule action to add to a rule.
//!
//! `--kind index` (the default; a basic licence allows it): an Index connector writing to the
//! action index the index-action worker polls (`--index`, else `INDEX_ACTION_INDEX`).
//! `--kind webhook --url URL` (a gold licence): a Webhook connector posting to this service's
//! `/api/webhook/kibana` with the shared secret in `KIBANA_WEBHOOK_HEADER` (sent as a secret
//! header, so it is stored encrypted and not shown with the connector's config). The secret is
//! never printed: the output names where it comes from.
//!
//! A connector of the same name and type is reused (Kibana allows duplicate names; this command
//! does not make them). Every failure says what to do: a name used by another type, a type the
//! licence or `xpack.actions.enabledActionTypes` leaves out, a configuration Kibana refuses (its
//! own message, e.g. a URL outside `xpack.actions.allowedHosts`).

use std::fmt::Write as _;

use anyhow::{Context, bail};
use serde_json::{Value, json};

use crate::clients::kibana::connectors::{self, CreateConnector};
use crate::clients::kibana::wire::Connector;
use crate::clients::kibana::{KibanaError, KibanaHttp};
use crate::config::Settings;

#[derive(clap::Subcommand)]
pub enum SetupCommand {
    /// Create or find the Kibana connector a rule action sends alerts through (an Index connector
    /// for the index-action worker, or a Webhook connector for /api/webhook/kibana), and print
    /// the rule action to add to a rule.
    KibanaConnector(KibanaConnectorArgs),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ConnectorKind {
    /// `.index`: rule actions write documents the index-action worker polls.
    Index,
    /// `.webhook`: rule actions post to this service's /api/webhook/kibana.
    Webhook,
}

#[derive(Debug, Clone, clap::Args)]
pub struct KibanaConnectorArgs {
    #[arg(long, value_enum, default_value = "index")]
    pub kind: ConnectorKind,
    /// The connector's name (default: "triage-bot index" / "triage-bot webhook").
    #[arg(long)]
    pub name: Option<String>,
    /// The action index (`--kind index`; default: INDEX_ACTION_INDEX).
    #[arg(long)]
    pub index: Option<String>,
    /// This service's address as Kibana reaches it (`--kind webhook`), e.g.
    /// https://triage-bot.example.internal:8080; /api/webhook/kibana is added unless given.
    #[arg(long)]
    pub url: Option<String>,
    /// The Kibana space (default: KIBANA_SPACE, else the default space).
    #[arg(long)]
    pub space: Option<String>,
    /// List the connector types this Kibana offers, and whether each is enabled; change nothing.
    #[arg(long)]
    pub list_types: bool,
    /// Delete the connector of this name (and kind) instead.
    #[arg(long)]
    pub delete: bool,
}

impl Default for KibanaConnectorArgs {
    fn default() -> Self {
        Self {
            kind: ConnectorKind::Index,
            name: None,
            index: None,
            url: None,
            space: None,
            list_types: false,
            delete: false,
        }
    }
}

impl ConnectorKind {
    fn type_id(self) -> &'static str {
        match self {
            ConnectorKind::Index => ".index",
            ConnectorKind::Webhook => ".webhook",
        }
    }

    fn default_name(self) -> &'static str {
        match self {
            ConnectorKind::Index => "triage-bot index",
            ConnectorKind::Webhook => "triage-bot webhook",
        }
    }
}

/// The path the webhook push is served on.
pub const WEBHOOK_PATH: &str = "/api/webhook/kibana";

pub async fn run(action: SetupCommand) -> anyhow::Result<()> {
    let SetupCommand::KibanaConnector(args) = action;
    let settings = Settings::from_env()?;
    let text = kibana_connector(&settings, &args).await?;
    print!("{text}");
    Ok(())
}

/// Does what the arguments say against the configured Kibana; returns what to print.
pub async fn kibana_connector(
    settings: &Settings,
    args: &KibanaConnectorArgs,
) -> anyhow::Result<String> {
    let mut kibana = settings.kibana.clone();
    if let Some(space) = &args.space {
        kibana.space = Some(space.clone()).filter(|s| !s.is_empty() && s != "default");
    }
    let space = kibana.space.clone().unwrap_or_else(|| "default".into());
    let http = KibanaHttp::new(&kibana)?;
    let mut out = String::new();
    if args.list_types {
        let types = connectors::types(&http)
            .await
            .map_err(|e| explain(e, "list the connector types"))?;
        writeln!(out, "Connector types in Kibana (space {space}):")?;
        for t in types {
            let state = if t.enabled {
                "enabled".to_string()
            } else if !t.enabled_in_license {
                format!("needs a {} licence", t.minimum_license_required)
            } else if !t.enabled_in_config {
                "not in xpack.actions.enabledActionTypes".to_string()
            } else {
                "disabled".to_string()
            };
            writeln!(out, "  {:<22} {:<28} {state}", t.id, t.name)?;
        }
        return Ok(out);
    }
    let kind = args.kind;
    let name = args
        .name
        .clone()
        .unwrap_or_else(|| kind.default_name().to_string());
    // What is missing here is said before Kibana is asked anything.
    let planned = if args.delete {
        None
    } else {
        Some(create_body(settings, args, kind, &name)?)
    };
    let existing = connectors::list(&http)
        .await
        .map_err(|e| explain(e, "list the connectors"))?;
    let named: Vec<&Connector> = existing.iter().filter(|c| c.name == name).collect();
    let same_type = named.iter().find(|c| c.connector_type_id == kind.type_id());

    if args.delete {
        let Some(c) = same_type else {
            bail!(
                "no {} connector named {name:?} in space {space}; nothing deleted",
                kind.type_id()
            );
        };
        connectors::delete(&http, &c.id)
            .await
            .map_err(|e| explain(e, "delete the connector"))?;
        writeln!(
            out,
            "Deleted connector {} ({name:?}) in space {space}.",
            c.id
        )?;
        return Ok(out);
    }

    let connector = match (same_type, named.first()) {
        (Some(c), _) => {
            writeln!(
                out,
                "Connector {name:?} ({}) already exists in space {space}: reusing it (id {}).",
                kind.type_id(),
                c.id
            )?;
            (*c).clone()
        }
        (None, Some(other)) => bail!(
            "the name {name:?} is already used by a {} connector (id {}) in space {space}; \
             pass --name to choose another name",
            other.connector_type_id,
            other.id
        ),
        (None, None) => {
            check_type(&http, kind).await?;
            let body = planned.context("a connector to create")?;
            let created = match connectors::create(&http, &body).await {
                // Kibana before secret headers: the header goes in the config instead.
                Err(KibanaError::Status { status: 400, message })
                    if kind == ConnectorKind::Webhook && message.contains("secretHeaders") =>
                {
                    writeln!(
                        out,
                        "Note: this Kibana has no secret headers for webhooks; the token header \
                         is kept in the connector's config, visible to people who can read connectors."
                    )?;
                    let mut body = body;
                    let headers = body
                        .secrets
                        .take()
                        .and_then(|mut s| s.get_mut("secretHeaders").map(Value::take))
                        .unwrap_or(json!({}));
                    let mut all = body.config["headers"].clone();
                    if let (Some(all), Some(h)) = (all.as_object_mut(), headers.as_object()) {
                        all.extend(h.clone());
                    }
                    body.config["headers"] = all;
                    body.secrets = Some(json!({}));
                    connectors::create(&http, &body).await
                }
                other => other,
            }
            .map_err(|e| explain(e, "create the connector"))?;
            writeln!(
                out,
                "Created connector {name:?} ({}) in space {space}: id {}.",
                kind.type_id(),
                created.id
            )?;
            created
        }
    };
    print_action(&mut out, settings, args, kind, &connector)?;
    Ok(out)
}

/// Fails early, saying why, when the type is not available; proceeds when the list itself cannot
/// be read (the create call will say).
async fn check_type(http: &KibanaHttp, kind: ConnectorKind) -> anyhow::Result<()> {
    let Ok(types) = connectors::types(http).await else {
        return Ok(());
    };
    let Some(t) = types.iter().find(|t| t.id == kind.type_id()) else {
        bail!(
            "this Kibana offers no {} connector type (see --list-types)",
            kind.type_id()
        );
    };
    if !t.enabled_in_license {
        let hint = match kind {
            ConnectorKind::Webhook => "; --kind index works with a basic licence",
            ConnectorKind::Index => "",
        };
        bail!(
            "the {} connector type needs a {} licence, which this Kibana does not have \
             (Stack Management → License management){hint}",
            t.id,
            t.minimum_license_required
        );
    }
    if !t.enabled_in_config {
        bail!(
            "the {} connector type is not enabled in this Kibana: add it to \
             xpack.actions.enabledActionTypes in kibana.yml",
            t.id
        );
    }
    Ok(())
}

fn action_index(settings: &Settings, args: &KibanaConnectorArgs) -> anyhow::Result<String> {
    args.index
        .clone()
        .or_else(|| {
            settings
                .intake
                .index_action
                .as_ref()
                .map(|a| a.source.index.clone())
        })
        .context("name the action index: --index NAME, or set INDEX_ACTION_INDEX")
}

fn webhook_url(args: &KibanaConnectorArgs) -> anyhow::Result<String> {
    let url = args
        .url
        .as_deref()
        .context("--kind webhook needs --url: this service's address as Kibana reaches it")?
        .trim_end_matches('/');
    Ok(if url.ends_with(WEBHOOK_PATH) {
        url.to_string()
    } else {
        format!("{url}{WEBHOOK_PATH}")
    })
}

fn create_body(
    settings: &Settings,
    args: &KibanaConnectorArgs,
    kind: ConnectorKind,
    name: &str,
) -> anyhow::Result<CreateConnector> {
    Ok(match kind {
        ConnectorKind::Index => CreateConnector {
            name: name.to_string(),
            connector_type_id: ".index".into(),
            config: json!({ "index": action_index(settings, args)?, "refresh": false }),
            secrets: None,
        },
        ConnectorKind::Webhook => {
            let webhook = settings.intake.webhook.as_ref().context(
                "--kind webhook needs the shared secret: set KIBANA_WEBHOOK_SECRET (or _FILE)",
            )?;
            let mut secret_headers = serde_json::Map::new();
            secret_headers.insert(webhook.header.clone(), Value::from(webhook.secret.expose()));
            CreateConnector {
                name: name.to_string(),
                connector_type_id: ".webhook".into(),
                config: json!({
                    "url": webhook_url(args)?,
                    "method": "post",
                    "headers": { "Content-Type": "application/json" },
                    "hasAuth": false,
                }),
                secrets: Some(json!({ "secretHeaders": secret_headers })),
            }
        }
    })
}

/// The rule action's `params`: what the connector is given on each run.
pub fn action_params(kind: ConnectorKind) -> Value {
    match kind {
        ConnectorKind::Index => json!({ "documents": [{
            "@timestamp": "{{date}}",
            "rule.name": "{{rule.name}}",
            "rule.id": "{{rule.id}}",
            "triage_bot.key": "{{rule.id}}:{{alert.id}}:{{date}}",
            "context.hits": "[{{context.hits}}]",
            "context.alerts": "[{{context.alerts}}]"
        }] }),
        ConnectorKind::Webhook => json!({
            "body": "{\"rule.name\": \"{{rule.name}}\", \"rule.id\": \"{{rule.id}}\", \"@timestamp\": \"{{date}}\", \"context.alerts\": [{{{context.alerts}}}], \"context.hits\": [{{{context.hits}}}]}"
        }),
    }
}

fn print_action(
    out: &mut String,
    settings: &Settings,
    args: &KibanaConnectorArgs,
    kind: ConnectorKind,
    connector: &Connector,
) -> anyhow::Result<()> {
    let action = json!({
        "id": connector.id,
        "group": "default",
        "params": action_params(kind),
        "frequency": { "summary": true, "notifyWhen": "onActiveAlert", "throttle": null }
    });
    writeln!(out)?;
    writeln!(
        out,
        "Add this action to each rule whose alerts triage-bot should triage (the rule's \
         \"actions\" in the API; in the UI pick the connector and paste the params):"
    )?;
    writeln!(out, "{}", serde_json::to_string_pretty(&action)?)?;
    writeln!(out)?;
    match kind {
        ConnectorKind::Index => {
            let index = connector
                .config
                .get("index")
                .and_then(Value::as_str)
                .map(String::from)
                .or_else(|| action_index(settings, args).ok())
                .unwrap_or_default();
            writeln!(
                out,
                "triage-bot reads it with INDEX_ACTION_INDEX={index} (serve, or \
                 `triage-bot index-action-worker --index {index}`)."
            )?;
        }
        ConnectorKind::Webhook => {
            let (header, origin) = match &settings.intake.webhook {
                Some(w) => (w.header.clone(), w.secret_origin.clone()),
                None => (
                    crate::config::intake::DEFAULT_WEBHOOK_HEADER.into(),
                    String::new(),
                ),
            };
            writeln!(
                out,
                "The connector posts to {} with the header {header}: <the secret from {origin}> \
                 (kept by Kibana as a secret header; not shown here).",
                connector
                    .config
                    .get("url")
                    .and_then(Value::as_str)
                    .map(String::from)
                    .or_else(|| webhook_url(args).ok())
                    .unwrap_or_default()
            )?;
        }
    }
    Ok(())
}

/// A Kibana error as a message that says what to do.
fn explain(e: KibanaError, what: &str) -> anyhow::Error {
    match e {
        KibanaError::Status {
            status: 400,
            message,
        } => {
            let hint = if message.contains("allowedHosts") {
                " — add this service's host to xpack.actions.allowedHosts in kibana.yml"
            } else {
                ""
            };
            anyhow::anyhow!(
                "Kibana refused to {what}: the configuration is not valid (400): {message}{hint}"
            )
        }
        KibanaError::Status {
            status: 403,
            message,
        } => anyhow::anyhow!(
            "Kibana refused to {what} (403): {message} — the licence may not include this \
             connector type, or the API key lacks the Actions and Connectors `all` privilege"
        ),
        KibanaError::Status {
            status: 401,
            message,
        } => anyhow::anyhow!(
            "Kibana refused the credentials (401): {message} — check KIBANA_API_KEY or \
             KIBANA_USERNAME/KIBANA_PASSWORD"
        ),
        KibanaError::Status {
            status: 404,
            message,
        } => anyhow::anyhow!(
            "cannot {what}: Kibana answered 404 ({message}) — is the space right (--space, \
             KIBANA_SPACE)?"
        ),
        other => anyhow::anyhow!("cannot {what}: {other}"),
    }
}
