//! The one place configuration is read and validated.
//!
//! Settings come from environment variables (and `.env`, loaded by `main`); `.env.example`
//! documents every variable with its default. [`Settings::from_lookup`] takes the lookup as a
//! function so tests and the demo can build settings without touching the process environment.
//! A missing or malformed value fails with a message that names the variable and what was
//! expected; secret values are held as [`Secret`] and never printed.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

pub mod env;
pub mod intake;
pub mod policy;
pub mod runner;
pub mod triage;
pub mod winrm;

pub use env::{ConfigError, Env, err};
pub use intake::{IndexActionSettings, IntakeSettings, WebhookSettings};
pub use policy::{PolicyCliSettings, PolicySettings};
pub use runner::{DefendSettings, HostPattern, RunnerKind, RunnerSettings};
pub use triage::{
    AssistantKind, AssistantSettings, OpenAiSettings, Route, RouteMatch, RouteTarget,
    RoutingSettings, SafetyPolicy, TriageSettings,
};
pub use winrm::{TlsOptions, WinRmAuth, WinRmSettings};

use crate::secret::Secret;

/// How to authenticate to Elasticsearch or Kibana.
#[derive(Debug, Clone)]
pub enum HttpAuth {
    None,
    ApiKey(Secret),
    Basic { username: String, password: Secret },
}

impl HttpAuth {
    /// The `Authorization` header value, if any.
    pub fn header(&self) -> Option<String> {
        use base64::Engine;
        match self {
            HttpAuth::None => None,
            HttpAuth::ApiKey(k) => Some(format!("ApiKey {}", k.expose())),
            HttpAuth::Basic { username, password } => Some(format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD
                    .encode(format!("{username}:{}", password.expose()))
            )),
        }
    }
}

/// One alert index to poll.
#[derive(Debug, Clone)]
pub struct AlertSource {
    /// Stable name, used as the checkpoint key.
    pub name: String,
    pub index: String,
    pub timestamp_field: String,
    /// Keyword field that breaks ties between alerts with the same timestamp, for search_after.
    pub tiebreak_field: String,
    /// Which documents of the index are triaged.
    pub filter: SeverityFilter,
    /// Further conditions, each a field that must hold one of the values (rule names, rule
    /// tags, workflow status), applied in the query.
    pub conditions: Vec<TermsCondition>,
    /// What a document of the index is.
    pub kind: SourceKind,
    /// Where the very first poll starts (backfill); unset: `POLL_INITIAL_LOOKBACK_SECS` back.
    pub start_time: Option<chrono::DateTime<chrono::Utc>>,
    /// Documents per page.
    pub batch_size: usize,
}

/// A document of a source: an alert, or an index-action document that carries a rule's hits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceKind {
    Alerts,
    IndexAction,
}

/// `field` must hold one of `values`.
#[derive(Debug, Clone, PartialEq)]
pub struct TermsCondition {
    pub field: String,
    pub values: Vec<String>,
}

/// The severity condition of a source: Security alerts carry a word
/// (`kibana.alert.severity: critical`), Elastic Defend raw alerts a number (`event.severity`,
/// where the Endpoint Security rule maps 99 and above to critical).
#[derive(Debug, Clone, PartialEq)]
pub enum SeverityFilter {
    Term {
        field: String,
        value: String,
    },
    /// One of the words: a threshold such as `high` means high or critical.
    Terms {
        field: String,
        values: Vec<String>,
    },
    AtLeast {
        field: String,
        value: f64,
    },
    /// No severity condition (the index-action source: the rule chose what to write).
    Any,
}

impl SeverityFilter {
    /// `ALERT_SEVERITY`: one of low, medium, high, critical is a threshold (that severity and
    /// above); any other word is matched exactly.
    pub fn at_least_word(field: String, value: &str) -> Self {
        const ORDER: [&str; 4] = ["low", "medium", "high", "critical"];
        let word = value.trim().to_ascii_lowercase();
        match ORDER.iter().position(|w| *w == word) {
            Some(i) => SeverityFilter::Terms {
                field,
                values: ORDER[i..].iter().map(|w| w.to_string()).collect(),
            },
            None => SeverityFilter::Term {
                field,
                value: value.to_string(),
            },
        }
    }
}

#[derive(Debug, Clone)]
pub struct ElasticSettings {
    pub url: String,
    pub auth: HttpAuth,
    /// Trust for the cluster's certificate (`ELASTICSEARCH_CA_FILE`, `ELASTICSEARCH_INSECURE`).
    pub tls: TlsOptions,
    pub sources: Vec<AlertSource>,
    pub poll_interval: Duration,
    pub batch_size: usize,
    /// How far back the very first poll of a source looks.
    pub initial_lookback: Duration,
    /// Alert policy: an alert of the same rule on the same host within this window joins the
    /// existing incident instead of opening a new one (`None`: every alert is its own incident).
    pub group_window: Option<Duration>,
}

#[derive(Debug, Clone)]
pub struct KibanaSettings {
    pub url: String,
    /// Base URL for links shown to people (defaults to `url`).
    pub public_url: String,
    pub auth: HttpAuth,
    /// Trust for Kibana's certificate (`KIBANA_CA_FILE`, `KIBANA_INSECURE`).
    pub tls: TlsOptions,
    pub space: Option<String>,
    pub connector_id: String,
    pub stream: bool,
    pub timeout: Duration,
}

#[derive(Debug, Clone)]
pub struct SlackSettings {
    pub api_url: String,
    pub bot_token: Secret,
    pub signing_secret: Secret,
    pub channel: String,
    /// Slack user ids allowed to decide besides the tagged handler.
    pub approvers: Vec<String>,
    /// OS family (lowercase) → Slack user id; overrides the assistant's answer.
    pub routes: HashMap<String, String>,
}

/// The endpoints an Elastic Cloud id names: `name:base64(host[:port]$es-id$kibana-id)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloudId {
    pub elasticsearch: String,
    pub kibana: Option<String>,
}

impl CloudId {
    pub fn parse(id: &str) -> Result<Self, String> {
        use base64::Engine;
        let (_, encoded) = id
            .split_once(':')
            .ok_or("expected name:base64 as shown in the Elastic Cloud console")?;
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(encoded.trim())
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or("the part after the colon is not base64 text")?;
        let mut parts = decoded.split('$');
        let host = parts.next().unwrap_or_default();
        let es = parts.next().unwrap_or_default();
        if host.is_empty() || es.is_empty() {
            return Err("the decoded id has no host or no Elasticsearch id".into());
        }
        // A port in the host part applies to both endpoints; 443 otherwise.
        let (host, port) = match host.rsplit_once(':') {
            Some((h, p)) if p.chars().all(|c| c.is_ascii_digit()) => (h, format!(":{p}")),
            _ => (host, String::new()),
        };
        let url = |uuid: &str| format!("https://{uuid}.{host}{port}");
        Ok(Self {
            elasticsearch: url(es),
            kibana: parts.next().filter(|k| !k.is_empty()).map(url),
        })
    }
}

impl KibanaSettings {
    /// Where people open Kibana apps: the public URL with the space prefix.
    pub fn app_base(&self) -> String {
        kibana_app_base(&self.public_url, self.space.as_deref())
    }

    /// Where people open a case.
    pub fn case_url(&self, case_id: &str) -> String {
        format!("{}/app/security/cases/{case_id}", self.app_base())
    }
}

/// `DATABASE_URL`: a `postgres://` URL may carry a password, so it shows itself (in
/// `check-config`, in logs) with the password masked.
#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseUrl(String);

impl DatabaseUrl {
    pub fn new(url: impl Into<String>) -> Self {
        Self(url.into())
    }

    /// The URL itself, for the one place that connects with it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let url = &self.0;
        // scheme://user:password@host/...: the user info ends at the last '@' before the path.
        let masked = url.split_once("://").and_then(|(scheme, rest)| {
            let authority = rest.split(['/', '?']).next().unwrap_or(rest);
            let (userinfo, host) = authority.rsplit_once('@')?;
            let (user, _password) = userinfo.split_once(':')?;
            let tail = &rest[authority.len()..];
            Some(format!("{scheme}://{user}:***@{host}{tail}"))
        });
        write!(f, "{:?}", masked.as_deref().unwrap_or(url))
    }
}

/// Used when `DATABASE_URL` is not set.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://triage-bot.db?mode=rwc";

/// `DATABASE_URL` alone, for the commands that only read or mend the local record
/// (`case show`, `incidents`, `report`) and need nothing else configured.
pub fn database_url_from_env() -> String {
    Env {
        lookup: &|k| std::env::var(k).ok(),
    }
    .or("DATABASE_URL", DEFAULT_DATABASE_URL)
}

/// The PostgreSQL server the tests make scratch databases on (`TRIAGE_BOT_TEST_POSTGRES`, an
/// admin URL; `scripts/test` starts a throwaway server and sets it). Tests only.
pub fn test_postgres() -> Option<String> {
    std::env::var("TRIAGE_BOT_TEST_POSTGRES")
        .ok()
        .filter(|u| !u.is_empty())
}

/// Whether the emulated world of the flow tests keeps its record on PostgreSQL
/// (`TRIAGE_BOT_TEST_DATABASE=postgres`, the second run of `scripts/test`) instead of SQLite.
pub fn test_on_postgres() -> bool {
    std::env::var("TRIAGE_BOT_TEST_DATABASE").is_ok_and(|v| v == "postgres")
}

/// A Kibana base URL with the `/s/{space}` prefix, unless the space is the default one.
pub fn kibana_app_base(base: &str, space: Option<&str>) -> String {
    let base = base.trim_end_matches('/');
    match space.filter(|s| !s.is_empty() && *s != "default") {
        Some(space) => format!("{base}/s/{space}"),
        None => base.to_string(),
    }
}

#[derive(Debug, Clone)]
pub struct Settings {
    pub database_url: DatabaseUrl,
    /// `REPLICA_NAME` (e.g. the pod or host name): the prefix of this process's replica id in
    /// logs and in `outbox.claimed_by`; a random suffix keeps each start's id its own.
    pub replica_name: Option<String>,
    pub http_bind: SocketAddr,
    /// A separate address for `/metrics` (`METRICS_BIND`); unset: served on `http_bind`.
    pub metrics_bind: Option<SocketAddr>,
    pub log_format: LogFormat,
    pub prompts_dir: Option<PathBuf>,
    pub elastic: ElasticSettings,
    /// The webhook push and the index-action worker (`config::intake`).
    pub intake: IntakeSettings,
    pub kibana: KibanaSettings,
    pub slack: SlackSettings,
    pub winrm: WinRmSettings,
    /// Which runner each host group uses, batch deadline and failure policy (`crate::execute`).
    pub runner: RunnerSettings,
    /// The assistant, prompt budget, safety gate and handler routing (`crate::pipeline::triage::settings`).
    pub triage: crate::config::TriageSettings,
    /// How often workers look for due outbox work when nothing woke them.
    pub worker_tick: Duration,
    /// On SIGTERM or Ctrl-C, how long work in flight (a running command batch included) may take
    /// to finish before the process exits anyway (`SHUTDOWN_GRACE_SECS`).
    pub shutdown_grace: Duration,
    pub approval: ApprovalSettings,
    pub cases: CaseSettings,
    /// First retry delay of a failed job; doubles on each attempt, capped at five minutes.
    pub retry_base: Duration,
    /// How long a Slack or case job keeps retrying through an outage before it gives up and
    /// waits in the dead letters for `triage-bot incidents retry` (`JOB_GIVE_UP_SECS`).
    pub give_up_after: Duration,
    /// The action policies: file, outcome index, Kibana maintenance windows.
    pub policy: PolicySettings,
}

/// Who may decide, for how long, and what happens when nobody does.
#[derive(Debug, Clone)]
pub struct ApprovalSettings {
    /// Slack user group ids (S…) whose members may decide.
    pub approver_groups: Vec<String>,
    /// Remediation needs a second, different approver.
    pub two_person_remediation: bool,
    /// No decision within this time → `expired`.
    pub timeout: Duration,
    /// Mention `escalate_to` once when this much of the wait has passed.
    pub escalate_after: Option<Duration>,
    /// A Slack user (U…) or user group (S…) id to mention on escalation.
    pub escalate_to: Option<String>,
    /// `http` (Events API + interactivity endpoints) or `socket` (Socket Mode).
    pub transport: SlackTransport,
    /// App-level token (xapp-…) for Socket Mode.
    pub app_token: Option<Secret>,
    /// Socket Mode liveness: a ping this often; two intervals without a frame is a dead socket.
    pub socket_ping: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlackTransport {
    Http,
    Socket,
}

/// How incidents are recorded in Kibana cases.
#[derive(Debug, Clone)]
pub struct CaseSettings {
    /// Close the case when every approved command succeeded.
    pub close_on_success: bool,
    /// OS family (lowercase, or `*`) → Kibana user profile uid to assign.
    pub assignees: HashMap<String, String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Pretty,
    Json,
}

impl Settings {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(&|k| std::env::var(k).ok())
    }

    pub fn from_lookup(lookup: &dyn Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let env = Env { lookup };
        let http_bind = env
            .or("HTTP_BIND", "0.0.0.0:8080")
            .parse()
            .map_err(|_| err("HTTP_BIND", "expected host:port, e.g. 0.0.0.0:8080"))?;
        let log_format = match env.or("LOG_FORMAT", "pretty").as_str() {
            "pretty" => LogFormat::Pretty,
            "json" => LogFormat::Json,
            other => {
                return Err(err(
                    "LOG_FORMAT",
                    format!("expected pretty or json, got {other:?}"),
                ));
            }
        };
        let batch_size = env.num("POLL_BATCH_SIZE", 100usize, "a whole number of alerts")?;
        let start_time = intake::time_opt(&env, "POLL_START_TIME")?;
        // A condition per list variable that is set (comma-separated values).
        let conditions = |pairs: &[(&str, &str, &str)]| -> Vec<TermsCondition> {
            pairs
                .iter()
                .filter_map(|(var, field_var, field)| {
                    let values = env.list(var);
                    (!values.is_empty()).then(|| TermsCondition {
                        field: env.or(field_var, field),
                        values,
                    })
                })
                .collect()
        };
        let sources = vec![
            AlertSource {
                name: "security_alerts".into(),
                index: env.or("ALERTS_INDEX", ".internal.alerts-security.alerts-default-*"),
                timestamp_field: env.or("ALERTS_TIMESTAMP_FIELD", "@timestamp"),
                tiebreak_field: env.or("ALERTS_TIEBREAK_FIELD", "kibana.alert.uuid"),
                filter: SeverityFilter::at_least_word(
                    env.or("ALERT_SEVERITY_FIELD", "kibana.alert.severity"),
                    &env.or("ALERT_SEVERITY", "critical"),
                ),
                conditions: conditions(&[
                    (
                        "ALERT_RULE_NAMES",
                        "ALERT_RULE_NAME_FIELD",
                        "kibana.alert.rule.name",
                    ),
                    (
                        "ALERT_RULE_TAGS",
                        "ALERT_RULE_TAGS_FIELD",
                        "kibana.alert.rule.tags",
                    ),
                    (
                        "ALERT_WORKFLOW_STATUS",
                        "ALERT_WORKFLOW_STATUS_FIELD",
                        "kibana.alert.workflow_status",
                    ),
                ]),
                kind: SourceKind::Alerts,
                start_time,
                batch_size,
            },
            AlertSource {
                name: "endpoint_alerts".into(),
                index: env.or("ENDPOINT_ALERTS_INDEX", ".ds-logs-endpoint.alerts*"),
                timestamp_field: env.or("ENDPOINT_ALERTS_TIMESTAMP_FIELD", "event.created"),
                tiebreak_field: env.or("ENDPOINT_ALERTS_TIEBREAK_FIELD", "event.id"),
                filter: SeverityFilter::AtLeast {
                    field: env.or("ENDPOINT_ALERTS_SEVERITY_FIELD", "event.severity"),
                    value: env.num("ENDPOINT_ALERTS_MIN_SEVERITY", 99.0, "a number (0–100)")?,
                },
                conditions: conditions(&[(
                    "ENDPOINT_ALERTS_RULE_NAMES",
                    "ENDPOINT_ALERTS_RULE_NAME_FIELD",
                    "rule.name",
                )]),
                kind: SourceKind::Alerts,
                start_time,
                batch_size,
            },
        ];
        let sources = sources.into_iter().filter(|s| s.index != "-").collect();
        // Elastic Cloud: the deployment's cloud id names both endpoints.
        let cloud = match env.opt("ELASTICSEARCH_CLOUD_ID") {
            Some(id) => Some(CloudId::parse(&id).map_err(|p| err("ELASTICSEARCH_CLOUD_ID", p))?),
            None => None,
        };
        let poll_interval = env.secs("POLL_INTERVAL_SECS", 30.0)?;
        let intake = IntakeSettings::from_env(&env, batch_size, poll_interval)?;
        let elastic = ElasticSettings {
            url: match &cloud {
                Some(c) => env.url("ELASTICSEARCH_URL", Some(&c.elasticsearch))?,
                None => env.url("ELASTICSEARCH_URL", None)?,
            },
            auth: env.auth("ELASTICSEARCH")?,
            tls: env.tls("ELASTICSEARCH")?,
            sources,
            poll_interval,
            batch_size,
            initial_lookback: env.secs("POLL_INITIAL_LOOKBACK_SECS", 3600.0)?,
            group_window: policy::group_window(&env)?,
        };
        let kibana_url = match cloud.as_ref().and_then(|c| c.kibana.as_deref()) {
            Some(k) => env.url("KIBANA_URL", Some(k))?,
            None => env.url("KIBANA_URL", None)?,
        };
        let kibana = KibanaSettings {
            public_url: env.url("KIBANA_PUBLIC_URL", Some(&kibana_url))?,
            url: kibana_url,
            auth: env.auth("KIBANA")?,
            tls: env.tls("KIBANA")?,
            space: env.opt("KIBANA_SPACE").filter(|s| s != "default"),
            // Only the chat/complete assistant names a connector; Agent Builder and an
            // OpenAI-compatible server do not need one.
            connector_id: match env.or("ASSISTANT", "kibana").to_ascii_lowercase().as_str() {
                "kibana" => env.required(
                    "KIBANA_CONNECTOR_ID",
                    "the id of the Kibana GenAI connector the assistant uses",
                )?,
                _ => env.or("KIBANA_CONNECTOR_ID", ""),
            },
            stream: env.bool("KIBANA_AI_STREAM", true)?,
            timeout: env.secs("KIBANA_TIMEOUT_SECS", 300.0)?,
        };
        let slack = SlackSettings {
            api_url: format!(
                "{}/",
                env.url("SLACK_API_URL", Some("https://slack.com/api"))?
            ),
            bot_token: env.secret("SLACK_BOT_TOKEN", "the bot token (xoxb-…)")?,
            // Socket Mode receives nothing over HTTP, so it needs no signing secret; without one
            // every HTTP callback is refused.
            signing_secret: if env.or("SLACK_TRANSPORT", "http") == "socket" {
                env.secret_opt("SLACK_SIGNING_SECRET")?.unwrap_or_default()
            } else {
                env.secret("SLACK_SIGNING_SECRET", "the app's signing secret")?
            },
            channel: env.required("SLACK_CHANNEL", "the channel id alerts are posted to (C…)")?,
            approvers: env.list("SLACK_APPROVERS"),
            routes: env.map("HANDLER_ROUTES")?,
        };
        let winrm = WinRmSettings::from_env(&env)?;
        let app_token = env.secret_opt("SLACK_APP_TOKEN")?;
        if env.or("SLACK_TRANSPORT", "http") == "socket" && app_token.is_none() {
            return Err(err(
                "SLACK_APP_TOKEN",
                "is required when SLACK_TRANSPORT=socket: the app-level token (xapp-…)",
            ));
        }
        let replica_name = env.opt("REPLICA_NAME");
        if let Some(name) = &replica_name
            && (name.len() > 63
                || !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
        {
            return Err(err(
                "REPLICA_NAME",
                "expected up to 63 letters, digits, '-', '_' or '.' (a pod or host name)",
            ));
        }
        Ok(Settings {
            database_url: DatabaseUrl::new(env.or("DATABASE_URL", DEFAULT_DATABASE_URL)),
            replica_name,
            http_bind,
            metrics_bind: match env.opt("METRICS_BIND") {
                Some(v) => {
                    Some(v.parse().map_err(|_| {
                        err("METRICS_BIND", "expected host:port, e.g. 127.0.0.1:9090")
                    })?)
                }
                None => None,
            },
            log_format,
            prompts_dir: env.opt("PROMPTS_DIR").map(PathBuf::from),
            elastic,
            intake,
            kibana,
            slack,
            winrm,
            runner: RunnerSettings::from_env(&env)?,
            triage: TriageSettings::from_env(&env)?,
            worker_tick: env.secs("WORKER_TICK_SECS", 1.0)?,
            shutdown_grace: env.secs("SHUTDOWN_GRACE_SECS", 60.0)?,
            approval: ApprovalSettings {
                approver_groups: env.list("SLACK_APPROVER_GROUPS"),
                two_person_remediation: env.bool("APPROVAL_TWO_PERSON_REMEDIATION", false)?,
                timeout: env.secs("APPROVAL_TIMEOUT_SECS", 3600.0)?,
                escalate_after: match env.opt("APPROVAL_ESCALATE_AFTER_SECS") {
                    Some(_) => Some(env.secs("APPROVAL_ESCALATE_AFTER_SECS", 1.0)?),
                    None => None,
                },
                escalate_to: env.opt("APPROVAL_ESCALATE_TO"),
                transport: match env.or("SLACK_TRANSPORT", "http").as_str() {
                    "http" => SlackTransport::Http,
                    "socket" => SlackTransport::Socket,
                    other => {
                        return Err(err(
                            "SLACK_TRANSPORT",
                            format!("expected http or socket, got {other:?}"),
                        ));
                    }
                },
                app_token,
                socket_ping: env.secs("SLACK_SOCKET_PING_SECS", 30.0)?,
            },
            retry_base: env.secs("RETRY_BASE_SECS", 1.0)?,
            give_up_after: env.secs("JOB_GIVE_UP_SECS", 86_400.0)?,
            policy: PolicySettings::from_env(&env)?,
            cases: CaseSettings {
                close_on_success: env.bool("CASE_CLOSE_ON_SUCCESS", true)?,
                assignees: env.map("CASE_ASSIGNEES")?,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_database_url_shows_itself_without_its_password() {
        let shown = |u: &str| format!("{:?}", DatabaseUrl::new(u));
        let pg = shown("postgres://triage:s3cr%40t@db.internal:5432/triage?sslmode=require");
        assert!(!pg.contains("s3cr"), "{pg}");
        assert!(
            pg.contains("postgres://triage:***@db.internal:5432/triage?sslmode=require"),
            "{pg}"
        );
        assert_eq!(
            shown("postgres://triage@db/triage"),
            "\"postgres://triage@db/triage\""
        );
        assert_eq!(
            shown(DEFAULT_DATABASE_URL),
            format!("{DEFAULT_DATABASE_URL:?}")
        );
        // An '@' in the password itself (unencoded) is still hidden.
        assert!(!shown("postgres://u:p@ss@h/d").contains("p@ss"));
    }

    /// Every variable the configuration reads — with the assistant and Slack transport variants
    /// that read more — is documented in `.env.example` (as `VAR=` or a commented `# VAR=`).
    #[test]
    fn env_example_documents_every_variable_read() {
        let example = include_str!("../../.env.example");
        let documented = |var: &str| {
            example.lines().any(|l| {
                let l = l.trim_start_matches("# ");
                l.starts_with(&format!("{var}="))
            })
        };
        let read = std::cell::RefCell::new(std::collections::BTreeSet::new());
        for variant in [
            &[][..],
            &[("ASSISTANT", "openai"), ("OPENAI_MODEL", "m")][..],
            &[("SLACK_TRANSPORT", "socket"), ("SLACK_APP_TOKEN", "xapp-1")][..],
        ] {
            let mut m = base();
            m.extend(variant.iter().copied());
            let _ = Settings::from_lookup(&|k| {
                read.borrow_mut().insert(k.to_string());
                m.get(k).map(|v| v.to_string())
            });
        }
        // `X_FILE` (a secret read from a file) is documented once, for every secret.
        let documented = |var: &str| match var.strip_suffix("_FILE") {
            Some(base) if example.contains("_FILE") && documented(base) => true,
            _ => documented(var),
        };
        let missing: Vec<String> = read
            .into_inner()
            .into_iter()
            .filter(|v| !documented(v))
            .collect();
        assert!(missing.is_empty(), "not in .env.example: {missing:?}");
    }

    #[test]
    fn every_secret_can_come_from_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = |name: &str, value: &str| -> &'static str {
            let path = dir.path().join(name);
            std::fs::write(&path, format!("{value}\n")).unwrap();
            Box::leak(path.display().to_string().into_boxed_str())
        };
        let mut m = base();
        for var in ["SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET", "WINRM_PASSWORD"] {
            m.remove(var);
        }
        m.insert("SLACK_BOT_TOKEN_FILE", file("bot", "xoxb-from-file"));
        m.insert("SLACK_SIGNING_SECRET_FILE", file("sign", "sign-from-file"));
        m.insert("WINRM_PASSWORD_FILE", file("pw", "pw-from-file"));
        m.insert("ELASTICSEARCH_API_KEY_FILE", file("es", "es-key-from-file"));
        m.insert("KIBANA_USERNAME", "kb");
        m.insert("KIBANA_PASSWORD_FILE", file("kb", "kb-pw-from-file"));
        let s = load(&m).unwrap();
        assert_eq!(s.slack.bot_token.expose(), "xoxb-from-file");
        assert_eq!(s.slack.signing_secret.expose(), "sign-from-file");
        assert_eq!(s.winrm.password.expose(), "pw-from-file");
        assert!(matches!(&s.elastic.auth, HttpAuth::ApiKey(k) if k.expose() == "es-key-from-file"));
        assert!(
            matches!(&s.kibana.auth, HttpAuth::Basic { password, .. } if password.expose() == "kb-pw-from-file")
        );
        // A missing file is named by its variable, and the secret is never echoed.
        m.insert("SLACK_BOT_TOKEN_FILE", "/nonexistent/token");
        let e = load(&m).unwrap_err();
        assert_eq!(e.var, "SLACK_BOT_TOKEN_FILE");
    }

    #[test]
    fn socket_mode_needs_no_signing_secret() {
        let mut m = base();
        m.remove("SLACK_SIGNING_SECRET");
        assert_eq!(load(&m).unwrap_err().var, "SLACK_SIGNING_SECRET");
        m.insert("SLACK_TRANSPORT", "socket");
        m.insert("SLACK_APP_TOKEN", "xapp-1-A");
        assert!(load(&m).unwrap().slack.signing_secret.is_empty());
    }

    #[test]
    fn an_elastic_cloud_id_names_both_endpoints() {
        use base64::Engine;
        let encoded = base64::engine::general_purpose::STANDARD
            .encode("eu-west-1.aws.found.io:9243$abc123$def456");
        let id = CloudId::parse(&format!("prod:{encoded}")).unwrap();
        assert_eq!(
            id.elasticsearch,
            "https://abc123.eu-west-1.aws.found.io:9243"
        );
        assert_eq!(
            id.kibana.as_deref(),
            Some("https://def456.eu-west-1.aws.found.io:9243")
        );
        assert!(CloudId::parse("no-colon").is_err());
        assert!(CloudId::parse("x:not base64!").is_err());
        // The cloud id stands in for both URLs.
        let mut m = base();
        m.remove("ELASTICSEARCH_URL");
        m.remove("KIBANA_URL");
        let id: &'static str = Box::leak(format!("prod:{encoded}").into_boxed_str());
        m.insert("ELASTICSEARCH_CLOUD_ID", id);
        let s = load(&m).unwrap();
        assert_eq!(s.elastic.url, "https://abc123.eu-west-1.aws.found.io:9243");
        assert_eq!(s.kibana.url, "https://def456.eu-west-1.aws.found.io:9243");
        m.insert("ELASTICSEARCH_CLOUD_ID", "garbage");
        assert_eq!(load(&m).unwrap_err().var, "ELASTICSEARCH_CLOUD_ID");
    }

    fn base() -> HashMap<&'static str, &'static str> {
        HashMap::from([
            ("ELASTICSEARCH_URL", "http://es:9200"),
            ("KIBANA_URL", "http://kb:5601"),
            ("KIBANA_CONNECTOR_ID", "gpt"),
            ("SLACK_BOT_TOKEN", "xoxb-top-secret"),
            ("SLACK_SIGNING_SECRET", "sign-secret"),
            ("SLACK_CHANNEL", "C1"),
            ("WINRM_USERNAME", "CORP\\svc"),
            ("WINRM_PASSWORD", "hunter2"),
        ])
    }

    fn load(m: &HashMap<&'static str, &'static str>) -> Result<Settings, ConfigError> {
        Settings::from_lookup(&|k| m.get(k).map(|v| v.to_string()))
    }

    #[test]
    fn a_replica_name_is_a_pod_or_host_name() {
        assert_eq!(load(&base()).unwrap().replica_name, None);
        let mut m = base();
        m.insert("REPLICA_NAME", "triage-bot-7f9c4-x2k8p");
        assert_eq!(
            load(&m).unwrap().replica_name.as_deref(),
            Some("triage-bot-7f9c4-x2k8p")
        );
        m.insert("REPLICA_NAME", "a b; rm -rf");
        let e = load(&m).unwrap_err().to_string();
        assert!(e.contains("REPLICA_NAME"), "{e}");
    }

    #[test]
    fn defaults_apply() {
        let s = load(&base()).unwrap();
        assert_eq!(s.elastic.sources.len(), 2);
        assert_eq!(
            s.elastic.sources[0].index,
            ".internal.alerts-security.alerts-default-*"
        );
        assert_eq!(
            s.elastic.sources[0].filter,
            SeverityFilter::Terms {
                field: "kibana.alert.severity".into(),
                values: vec!["critical".into()]
            }
        );
        assert_eq!(s.slack.api_url, "https://slack.com/api/");
        assert_eq!(
            s.winrm.endpoint_for("WS1", &[]).unwrap(),
            "http://WS1:5985/wsman"
        );
    }

    #[test]
    fn missing_variable_is_named() {
        let mut m = base();
        m.remove("SLACK_CHANNEL");
        let e = load(&m).unwrap_err();
        assert_eq!(e.var, "SLACK_CHANNEL");
        assert!(e.to_string().contains("is required"));
    }

    #[test]
    fn malformed_values_are_named_with_what_was_expected() {
        let mut m = base();
        m.insert("POLL_INTERVAL_SECS", "soon");
        let e = load(&m).unwrap_err();
        assert_eq!(e.var, "POLL_INTERVAL_SECS");
        assert!(e.to_string().contains("expected a number of seconds"));
        let mut m = base();
        m.insert("KIBANA_URL", "ftp://x");
        assert_eq!(load(&m).unwrap_err().var, "KIBANA_URL");
        let mut m = base();
        m.insert("HANDLER_ROUTES", "windows");
        assert_eq!(load(&m).unwrap_err().var, "HANDLER_ROUTES");
    }

    #[test]
    fn secrets_never_print() {
        let s = load(&base()).unwrap();
        let dump = format!("{s:?}");
        assert!(!dump.contains("xoxb-top-secret"));
        assert!(!dump.contains("hunter2"));
        assert!(!dump.contains("sign-secret"));
    }

    #[test]
    fn credentials_in_a_url_are_refused_without_echoing_them() {
        let mut m = base();
        m.insert("ELASTICSEARCH_URL", "https://elastic:changeme@es:9200");
        let e = load(&m).unwrap_err();
        assert_eq!(e.var, "ELASTICSEARCH_URL");
        assert!(!e.to_string().contains("changeme"));
    }

    #[test]
    fn host_map_overrides_template() {
        let mut m = base();
        m.insert("WINRM_HOST_MAP", "WS-FIN-042=http://127.0.0.1:1/wsman");
        let s = load(&m).unwrap();
        assert_eq!(
            s.winrm.endpoint_for("ws-fin-042", &[]).unwrap(),
            "http://127.0.0.1:1/wsman"
        );
    }

    #[test]
    fn the_endpoint_can_use_the_alerts_ip() {
        let ips = [
            "fe80::1".to_string(),
            "192.168.7.9".into(),
            "10.20.4.42".into(),
        ];
        let mut m = base();
        m.insert("WINRM_ENDPOINT_TEMPLATE", "https://{ip}:5986/wsman");
        let s = load(&m).unwrap();
        // The first IPv4 address by default.
        assert_eq!(
            s.winrm.endpoint_for("WS1", &ips).unwrap(),
            "https://192.168.7.9:5986/wsman"
        );
        // Or the first inside the configured networks; IPv6 in brackets.
        m.insert("WINRM_IP_NETWORKS", "10.0.0.0/8");
        let s = load(&m).unwrap();
        assert_eq!(
            s.winrm.endpoint_for("WS1", &ips).unwrap(),
            "https://10.20.4.42:5986/wsman"
        );
        m.insert("WINRM_IP_NETWORKS", "fe80::/10");
        let s = load(&m).unwrap();
        assert_eq!(
            s.winrm.endpoint_for("WS1", &ips).unwrap(),
            "https://[fe80::1]:5986/wsman"
        );
        // No usable address is a clear error naming the settings.
        m.insert("WINRM_IP_NETWORKS", "172.16.0.0/12");
        let s = load(&m).unwrap();
        let e = s.winrm.endpoint_for("WS1", &ips).unwrap_err();
        assert!(e.contains("{ip}") && e.contains("WINRM_IP_NETWORKS"), "{e}");
        m.insert("WINRM_IP_NETWORKS", "10.0.0.0/33");
        assert_eq!(load(&m).unwrap_err().var, "WINRM_IP_NETWORKS");
    }
}
