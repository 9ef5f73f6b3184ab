//! Settings of the triage stage: which assistant answers (`ASSISTANT`), its endpoint and model,
//! the prompt size budget, the safety gate's deny / allow lists and evidence folders, and the
//! handler routing table.
//!
//! Read by [`TriageSettings::from_env`] with the same [`Env`] as the rest of
//! [`crate::config::Settings`]: a bad value names its variable.

use std::time::Duration;

use super::env::{ConfigError, Env, err};
use crate::secret::Secret;

/// Configurable parts of the safety gate (`SAFETY_DENY`, `SAFETY_INVESTIGATION_ALLOW`,
/// `SAFETY_EVIDENCE_DIRS`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SafetyPolicy {
    /// Cmdlet names, executables or text fragments that block a command (case-insensitive).
    pub deny: Vec<String>,
    /// When non-empty, investigation commands may only use these cmdlets (plus pure pipeline
    /// helpers such as `Select-Object`); anything else in an investigation command is blocked.
    pub investigation_allow: Vec<String>,
    /// Folders on the hosts where evidence may always be written (`C:\IR`): exporting a log,
    /// copying or zipping a file there only collects evidence, and quarantining the alert's
    /// file there is remediation, although the alert never names the folder.
    pub evidence_dirs: Vec<String>,
}

impl SafetyPolicy {
    /// Reads `SAFETY_DENY`, `SAFETY_INVESTIGATION_ALLOW` and `SAFETY_EVIDENCE_DIRS`.
    pub fn from_env(env: &Env<'_>) -> Result<Self, ConfigError> {
        let evidence_dirs = env.list("SAFETY_EVIDENCE_DIRS");
        for d in &evidence_dirs {
            // A drive root or a system folder as "evidence" would let anything be written.
            let n = d
                .trim_end_matches(['\\', '/'])
                .to_ascii_lowercase()
                .replace('/', "\\");
            let parts: Vec<&str> = n.split('\\').filter(|p| !p.is_empty()).collect();
            let drive = parts
                .first()
                .is_some_and(|p| p.len() == 2 && p.ends_with(':'));
            let system = parts.get(1) == Some(&"windows")
                || matches!(
                    parts.get(1).copied(),
                    Some("program files" | "program files (x86)" | "programdata" | "users")
                ) && parts.len() == 2;
            if !drive || parts.len() < 2 || system || n.contains("..") {
                return Err(err(
                    "SAFETY_EVIDENCE_DIRS",
                    format!(
                        "expected folders below a drive such as C:\\IR (not a drive root or a system folder), got {d:?}"
                    ),
                ));
            }
        }
        Ok(Self {
            deny: env.list("SAFETY_DENY"),
            investigation_allow: env.list("SAFETY_INVESTIGATION_ALLOW"),
            evidence_dirs,
        })
    }
}

/// Which assistant answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AssistantKind {
    /// Kibana Security AI Assistant `chat/complete`.
    Kibana,
    /// Kibana Agent Builder `converse`.
    AgentBuilder,
    /// Any OpenAI-compatible `/chat/completions` server.
    OpenAi,
}

#[derive(Debug, Clone)]
pub struct OpenAiSettings {
    /// API root including the version, e.g. `https://api.openai.com/v1`.
    pub base_url: String,
    pub api_key: Option<Secret>,
    pub model: String,
    pub timeout: Duration,
    /// Trust for the server's certificate (`OPENAI_CA_FILE`, `OPENAI_INSECURE`).
    pub tls: super::TlsOptions,
    /// Ask for the triage answer as JSON matching a schema (`response_format: json_schema`),
    /// falling back to markdown when the server refuses it (`OPENAI_STRUCTURED_OUTPUT`; default
    /// on for api.openai.com, off for other servers).
    pub structured_output: bool,
}

#[derive(Debug, Clone)]
pub struct AssistantSettings {
    pub kind: AssistantKind,
    /// Kibana chat/complete `promptId` (a system prompt stored in Kibana).
    pub kibana_prompt_id: Option<String>,
    pub agent_builder_agent_id: String,
    pub openai: Option<OpenAiSettings>,
    /// Extra attempts for a retryable failure (connection refused, 429, 5xx) inside one ask.
    pub retries: u32,
    /// How many AI jobs (triage, thread questions) run at once (`ASSISTANT_MAX_CONCURRENT`),
    /// apart from the Slack, case and execution jobs, which keep their own pool.
    pub max_concurrent: usize,
}

/// What a route matches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteMatch {
    /// `os:windows` (or a bare `windows`, the older form).
    Os(String),
    /// `tag:Tactic: Persistence` — a rule tag, case-insensitive.
    Tag(String),
    /// `host:WS-FIN-*` — a host-name pattern with `*` and `?`, case-insensitive.
    Host(String),
    /// `*` — everything.
    Any,
}

/// Who a route names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteTarget {
    /// A Slack user id (`U…` / `W…`).
    User(String),
    /// A Slack user-group id (`S…`), mentioned as `<!subteam^S…>`.
    Group(String),
    /// An e-mail address, resolved with `users.lookupByEmail`.
    Email(String),
    /// A display or real name, resolved from `users.list`.
    Name(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub matches: RouteMatch,
    pub target: RouteTarget,
}

#[derive(Debug, Clone, Default)]
pub struct RoutingSettings {
    /// In the order written; the most specific match wins (host, then tag, then OS, then `*`).
    pub routes: Vec<Route>,
    /// A Slack user group (`S…`) mentioned when nobody could be resolved.
    pub fallback_group: Option<String>,
    /// How long the assistant's answer to "who handles {os} alerts?" is reused, per question
    /// (`HANDLER_CACHE_SECS`; `None`: asked for every alert).
    pub handler_cache: Option<Duration>,
}

#[derive(Debug, Clone)]
pub struct TriageSettings {
    pub assistant: AssistantSettings,
    /// The alert JSON in the prompt is trimmed to this many bytes.
    pub prompt_alert_budget_bytes: usize,
    /// The triage prompt also asks for a closing fenced JSON block with the summary and the
    /// commands, which the parser prefers when it is valid (`PROMPT_JSON_BLOCK`).
    pub prompt_json_block: bool,
    pub safety: SafetyPolicy,
    pub routing: RoutingSettings,
}

impl TriageSettings {
    pub fn from_lookup(lookup: &dyn Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        Self::from_env(&Env { lookup })
    }

    /// Reads the assistant, prompt, safety and routing variables.
    pub fn from_env(env: &Env<'_>) -> Result<Self, ConfigError> {
        let opt = |k: &str| env.opt(k);
        let list = |k: &str| env.list(k);
        let num = |k: &str, default: u64| env.num(k, default, "a whole number");
        let kind = match opt("ASSISTANT").as_deref().map(str::to_ascii_lowercase) {
            None => AssistantKind::Kibana,
            Some(v) => match v.as_str() {
                "kibana" => AssistantKind::Kibana,
                "agent_builder" | "agent-builder" => AssistantKind::AgentBuilder,
                "openai" => AssistantKind::OpenAi,
                _ => {
                    return Err(err(
                        "ASSISTANT",
                        format!("expected kibana, agent_builder or openai, got {v:?}"),
                    ));
                }
            },
        };
        let openai = match kind {
            AssistantKind::OpenAi => {
                let base = opt("OPENAI_BASE_URL")
                    .unwrap_or_else(|| "https://api.openai.com/v1".to_string());
                let parsed = reqwest::Url::parse(&base).map_err(|e| {
                    err(
                        "OPENAI_BASE_URL",
                        format!("expected an http(s) URL, got {base:?} ({e})"),
                    )
                })?;
                if !matches!(parsed.scheme(), "http" | "https") {
                    return Err(err("OPENAI_BASE_URL", "expected an http(s) URL"));
                }
                let timeout = num("OPENAI_TIMEOUT_SECS", 300)?;
                if timeout == 0 {
                    return Err(err("OPENAI_TIMEOUT_SECS", "expected a positive number"));
                }
                // OpenAI itself supports json_schema response formats; for other servers it
                // depends on the server and its version, so they opt in.
                let structured_default = parsed.host_str() == Some("api.openai.com");
                Some(OpenAiSettings {
                    base_url: base.trim_end_matches('/').to_string(),
                    api_key: env.secret_opt("OPENAI_API_KEY")?,
                    model: opt("OPENAI_MODEL").ok_or_else(|| {
                        err(
                            "OPENAI_MODEL",
                            "is required when ASSISTANT=openai: the model name to ask",
                        )
                    })?,
                    timeout: Duration::from_secs(timeout),
                    tls: env.tls("OPENAI")?,
                    structured_output: env.bool("OPENAI_STRUCTURED_OUTPUT", structured_default)?,
                })
            }
            _ => None,
        };
        let budget = num("PROMPT_ALERT_BUDGET_BYTES", 12_000)?;
        if budget < 512 {
            return Err(err(
                "PROMPT_ALERT_BUDGET_BYTES",
                format!("expected at least 512 bytes, got {budget}"),
            ));
        }
        let mut routes = Vec::new();
        for entry in list("HANDLER_ROUTES") {
            routes.push(parse_route(&entry).map_err(|p| err("HANDLER_ROUTES", p))?);
        }
        let max_concurrent = num("ASSISTANT_MAX_CONCURRENT", 16)?;
        if !(1..=1024).contains(&max_concurrent) {
            return Err(err(
                "ASSISTANT_MAX_CONCURRENT",
                format!("expected a number from 1 to 1024, got {max_concurrent}"),
            ));
        }
        let handler_cache = match num("HANDLER_CACHE_SECS", 3600)? {
            0 => None,
            secs => Some(Duration::from_secs(secs)),
        };
        let fallback_group = opt("SLACK_FALLBACK_GROUP");
        if let Some(g) = &fallback_group
            && !g.starts_with('S')
        {
            return Err(err(
                "SLACK_FALLBACK_GROUP",
                format!("expected a Slack user-group id (S…), got {g:?}"),
            ));
        }
        Ok(Self {
            assistant: AssistantSettings {
                kind,
                kibana_prompt_id: opt("KIBANA_PROMPT_ID"),
                agent_builder_agent_id: opt("AGENT_BUILDER_AGENT_ID")
                    .unwrap_or_else(|| "elastic-ai-agent".to_string()),
                openai,
                retries: num("ASSISTANT_RETRIES", 2)? as u32,
                max_concurrent: max_concurrent as usize,
            },
            prompt_alert_budget_bytes: budget as usize,
            prompt_json_block: env.bool("PROMPT_JSON_BLOCK", false)?,
            safety: SafetyPolicy::from_env(env)?,
            routing: RoutingSettings {
                routes,
                fallback_group,
                handler_cache,
            },
        })
    }
}

/// `selector=target`: `os:windows=U0ALICE`, `tag:Tactic: Persistence=S0IR`,
/// `host:WS-FIN-*=alice@example.com`, `*=Alice Analyst`, or the older `windows=U0ALICE`.
pub fn parse_route(entry: &str) -> Result<Route, String> {
    let (sel, target) = entry
        .rsplit_once('=')
        .ok_or_else(|| format!("expected selector=target, got {entry:?}"))?;
    let (sel, target) = (sel.trim(), target.trim());
    if target.is_empty() || sel.is_empty() {
        return Err(format!("expected selector=target, got {entry:?}"));
    }
    let lower = sel.to_lowercase();
    let matches = if sel == "*" {
        RouteMatch::Any
    } else if let Some(v) = lower.strip_prefix("os:") {
        RouteMatch::Os(v.trim().to_string())
    } else if let Some(v) = lower.strip_prefix("tag:") {
        RouteMatch::Tag(v.trim().to_string())
    } else if let Some(v) = lower.strip_prefix("host:") {
        RouteMatch::Host(v.trim().to_string())
    } else if sel.contains(':') {
        return Err(format!(
            "unknown selector {sel:?}: expected os:, tag:, host: or *"
        ));
    } else {
        RouteMatch::Os(lower)
    };
    Ok(Route {
        matches,
        target: parse_target(target),
    })
}

fn parse_target(t: &str) -> RouteTarget {
    let is_id = |p: char| {
        t.starts_with(p)
            && t.len() >= 9
            && t.chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
    };
    if let Some(g) = t.strip_prefix("group:") {
        RouteTarget::Group(g.trim().to_string())
    } else if is_id('S') {
        RouteTarget::Group(t.to_string())
    } else if is_id('U') || is_id('W') {
        RouteTarget::User(t.to_string())
    } else if t.contains('@') && t.rsplit('@').next().is_some_and(|d| d.contains('.')) {
        RouteTarget::Email(t.to_string())
    } else {
        RouteTarget::Name(t.trim_start_matches('@').to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn load(pairs: &[(&str, &str)]) -> Result<TriageSettings, ConfigError> {
        let m: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        TriageSettings::from_lookup(&|k| m.get(k).cloned())
    }

    #[test]
    fn defaults_are_the_kibana_assistant() {
        let s = load(&[]).unwrap();
        assert_eq!(s.assistant.kind, AssistantKind::Kibana);
        assert_eq!(s.assistant.agent_builder_agent_id, "elastic-ai-agent");
        assert_eq!(s.prompt_alert_budget_bytes, 12_000);
        assert!(s.safety.deny.is_empty());
        assert!(s.safety.evidence_dirs.is_empty());
    }

    #[test]
    fn evidence_folders_are_read_and_a_root_is_refused() {
        let s = load(&[("SAFETY_EVIDENCE_DIRS", "C:\\IR, D:\\Evidence\\cases")]).unwrap();
        assert_eq!(s.safety.evidence_dirs, ["C:\\IR", "D:\\Evidence\\cases"]);
        for bad in [
            "C:\\",
            "C:",
            "C:\\Windows",
            "C:\\Windows\\Temp\\IR",
            "IR",
            "C:\\IR\\..\\Windows",
            "C:\\Users\\",
        ] {
            assert_eq!(
                load(&[("SAFETY_EVIDENCE_DIRS", bad)]).unwrap_err().var,
                "SAFETY_EVIDENCE_DIRS",
                "{bad}"
            );
        }
    }

    #[test]
    fn openai_needs_a_model_and_bad_values_are_named() {
        assert_eq!(
            load(&[("ASSISTANT", "openai")]).unwrap_err().var,
            "OPENAI_MODEL"
        );
        let s = load(&[
            ("ASSISTANT", "openai"),
            ("OPENAI_MODEL", "llama3"),
            ("OPENAI_BASE_URL", "http://127.0.0.1:11434/v1/"),
            ("OPENAI_API_KEY", "sk-secret"),
        ])
        .unwrap();
        let o = s.assistant.openai.clone().unwrap();
        assert_eq!(o.base_url, "http://127.0.0.1:11434/v1");
        assert!(!format!("{s:?}").contains("sk-secret"));
        assert_eq!(load(&[("ASSISTANT", "gpt")]).unwrap_err().var, "ASSISTANT");
        assert_eq!(
            load(&[("PROMPT_ALERT_BUDGET_BYTES", "10")])
                .unwrap_err()
                .var,
            "PROMPT_ALERT_BUDGET_BYTES"
        );
        assert_eq!(
            load(&[("HANDLER_ROUTES", "team:x=U0ALICE12")])
                .unwrap_err()
                .var,
            "HANDLER_ROUTES"
        );
    }

    #[test]
    fn concurrency_cache_and_structured_output_settings() {
        let s = load(&[]).unwrap();
        assert_eq!(s.assistant.max_concurrent, 16);
        assert_eq!(s.routing.handler_cache, Some(Duration::from_secs(3600)));
        assert!(!s.prompt_json_block);
        let s = load(&[
            ("ASSISTANT_MAX_CONCURRENT", "4"),
            ("HANDLER_CACHE_SECS", "0"),
            ("PROMPT_JSON_BLOCK", "true"),
        ])
        .unwrap();
        assert_eq!(s.assistant.max_concurrent, 4);
        assert_eq!(s.routing.handler_cache, None);
        assert!(s.prompt_json_block);
        for bad in ["0", "many", "5000"] {
            assert_eq!(
                load(&[("ASSISTANT_MAX_CONCURRENT", bad)]).unwrap_err().var,
                "ASSISTANT_MAX_CONCURRENT"
            );
        }
        assert_eq!(
            load(&[("HANDLER_CACHE_SECS", "an hour")]).unwrap_err().var,
            "HANDLER_CACHE_SECS"
        );
        let openai = |extra: &[(&str, &str)]| {
            let mut pairs = vec![("ASSISTANT", "openai"), ("OPENAI_MODEL", "m")];
            pairs.extend_from_slice(extra);
            load(&pairs).unwrap().assistant.openai.unwrap()
        };
        assert!(openai(&[]).structured_output, "on for api.openai.com");
        assert!(!openai(&[("OPENAI_BASE_URL", "http://127.0.0.1:11434/v1")]).structured_output);
        assert!(
            openai(&[
                ("OPENAI_BASE_URL", "http://127.0.0.1:8000/v1"),
                ("OPENAI_STRUCTURED_OUTPUT", "true")
            ])
            .structured_output
        );
        assert!(!openai(&[("OPENAI_STRUCTURED_OUTPUT", "false")]).structured_output);
        assert_eq!(
            load(&[
                ("ASSISTANT", "openai"),
                ("OPENAI_MODEL", "m"),
                ("OPENAI_STRUCTURED_OUTPUT", "maybe")
            ])
            .unwrap_err()
            .var,
            "OPENAI_STRUCTURED_OUTPUT"
        );
    }

    #[test]
    fn routes_parse_every_selector_and_target() {
        let s = load(&[(
            "HANDLER_ROUTES",
            "windows=U0ALICE123,tag:Tactic: Persistence=S0IRTEAM1,host:WS-FIN-*=bob@example.com,*=Alice Analyst,os:linux=group:S0LINUX01",
        )])
        .unwrap();
        let r = &s.routing.routes;
        assert_eq!(r[0].matches, RouteMatch::Os("windows".into()));
        assert_eq!(r[0].target, RouteTarget::User("U0ALICE123".into()));
        assert_eq!(r[1].matches, RouteMatch::Tag("tactic: persistence".into()));
        assert_eq!(r[1].target, RouteTarget::Group("S0IRTEAM1".into()));
        assert_eq!(r[2].matches, RouteMatch::Host("ws-fin-*".into()));
        assert_eq!(r[2].target, RouteTarget::Email("bob@example.com".into()));
        assert_eq!(r[3].matches, RouteMatch::Any);
        assert_eq!(r[3].target, RouteTarget::Name("Alice Analyst".into()));
        assert_eq!(r[4].target, RouteTarget::Group("S0LINUX01".into()));
    }
}
