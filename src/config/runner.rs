//! Runner selection and batch settings (the `RUNNER_*` and `DEFEND_*` variables): which runner a
//! host group uses, the batch deadline, whether a batch goes on after a failure, how many hosts
//! run at once, and the Elastic Defend options. Loaded by `config::Settings::from_lookup` so one
//! place still validates all configuration; errors name the variable, as everywhere else.

use std::time::Duration;

use super::env::{ConfigError, Env, err};

/// How approved commands reach a host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunnerKind {
    /// WS-Management (NTLM with sealing, or Basic over HTTPS).
    WinRm,
    /// Elastic Defend response actions through Kibana.
    Defend,
    /// Records what would run and runs nothing (shadow mode, demos).
    DryRun,
}

impl RunnerKind {
    pub fn parse(s: &str) -> Option<Self> {
        match s.trim().to_ascii_lowercase().replace('-', "_").as_str() {
            "winrm" => Some(Self::WinRm),
            "defend" | "elastic_defend" => Some(Self::Defend),
            "dry_run" | "dryrun" => Some(Self::DryRun),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::WinRm => "winrm",
            Self::Defend => "defend",
            Self::DryRun => "dry_run",
        }
    }
}

/// A host-name pattern: case-insensitive, `*` matches any run of characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPattern(String);

impl HostPattern {
    pub fn new(p: &str) -> Self {
        Self(p.trim().to_ascii_lowercase())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn matches(&self, host: &str) -> bool {
        crate::text::glob(&self.0, &host.to_ascii_lowercase())
    }
}

/// Elastic Defend runner options.
#[derive(Debug, Clone)]
pub struct DefendSettings {
    /// The `execute` action's own timeout on the agent.
    pub execute_timeout: Duration,
    /// How often a pending action is polled.
    pub poll_interval: Duration,
    /// Whether the approval message may offer an "Isolate host" button.
    pub allow_isolate: bool,
}

#[derive(Debug, Clone)]
pub struct RunnerSettings {
    /// The runner for hosts no group matches.
    pub default: RunnerKind,
    /// `pattern=runner` in order; the first match wins.
    pub host_groups: Vec<(HostPattern, RunnerKind)>,
    /// Deadline for a whole batch; commands not started by then are skipped.
    pub batch_timeout: Duration,
    /// Whether the rest of a batch still runs after a command failed.
    pub continue_on_failure: bool,
    /// How many hosts run batches at the same time (commands on one host always run in order).
    pub max_parallel_hosts: usize,
    pub defend: DefendSettings,
}

impl Default for RunnerSettings {
    fn default() -> Self {
        Self {
            default: RunnerKind::WinRm,
            host_groups: Vec::new(),
            batch_timeout: Duration::from_secs(1800),
            continue_on_failure: true,
            max_parallel_hosts: 4,
            defend: DefendSettings {
                execute_timeout: Duration::from_secs(600),
                poll_interval: Duration::from_secs(5),
                allow_isolate: false,
            },
        }
    }
}

impl RunnerSettings {
    /// The runner for `host`.
    pub fn runner_for(&self, host: &str) -> RunnerKind {
        self.host_groups
            .iter()
            .find(|(p, _)| p.matches(host))
            .map(|(_, k)| *k)
            .unwrap_or(self.default)
    }

    /// Whether any host can end up on `kind`.
    pub fn uses(&self, kind: RunnerKind) -> bool {
        self.default == kind || self.host_groups.iter().any(|(_, k)| *k == kind)
    }

    pub fn from_lookup(lookup: &dyn Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        Self::from_env(&Env { lookup })
    }

    /// Reads `RUNNER_*` and `DEFEND_*`.
    pub fn from_env(env: &Env<'_>) -> Result<Self, ConfigError> {
        let get = |k: &str| env.opt(k);
        let kind = |var: &str, v: &str| {
            RunnerKind::parse(v)
                .ok_or_else(|| err(var, format!("expected winrm, defend or dry_run, got {v:?}")))
        };
        let d = Self::default();
        let default = match get("RUNNER_DEFAULT") {
            None => d.default,
            Some(v) => kind("RUNNER_DEFAULT", &v)?,
        };
        let mut host_groups = Vec::new();
        if let Some(v) = get("RUNNER_HOST_GROUPS") {
            for pair in v.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                let (p, k) = pair.split_once('=').ok_or_else(|| {
                    err(
                        "RUNNER_HOST_GROUPS",
                        format!("expected pattern=runner pairs separated by commas, got {pair:?}"),
                    )
                })?;
                if p.trim().is_empty() {
                    return Err(err(
                        "RUNNER_HOST_GROUPS",
                        format!("empty pattern in {pair:?}"),
                    ));
                }
                host_groups.push((HostPattern::new(p), kind("RUNNER_HOST_GROUPS", k)?));
            }
        }
        let max_parallel_hosts = match get("RUNNER_MAX_PARALLEL_HOSTS") {
            None => d.max_parallel_hosts,
            Some(v) => match v.parse::<usize>() {
                Ok(n) if n >= 1 => n,
                _ => {
                    return Err(err(
                        "RUNNER_MAX_PARALLEL_HOSTS",
                        format!("expected a whole number ≥ 1, got {v:?}"),
                    ));
                }
            },
        };
        Ok(Self {
            default,
            host_groups,
            batch_timeout: env.secs("RUNNER_BATCH_TIMEOUT_SECS", 1800.0)?,
            continue_on_failure: env.bool("RUNNER_CONTINUE_ON_FAILURE", true)?,
            max_parallel_hosts,
            defend: DefendSettings {
                execute_timeout: env.secs("DEFEND_EXECUTE_TIMEOUT_SECS", 600.0)?,
                poll_interval: env.secs("DEFEND_POLL_INTERVAL_SECS", 5.0)?,
                allow_isolate: env.bool("DEFEND_ALLOW_ISOLATE", false)?,
            },
        })
    }

    /// Whether the variables select WinRM for any host; WinRM credentials are required only
    /// then (a Defend-only or dry-run deployment has none).
    pub fn lookup_uses_winrm(lookup: &dyn Fn(&str) -> Option<String>) -> bool {
        match Self::from_lookup(lookup) {
            Ok(s) => s.uses(RunnerKind::WinRm),
            // The runner error is reported by from_lookup itself; ask for credentials meanwhile.
            Err(_) => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn load(pairs: &[(&str, &str)]) -> Result<RunnerSettings, ConfigError> {
        let m: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        RunnerSettings::from_lookup(&|k| m.get(k).cloned())
    }

    #[test]
    fn defaults_and_groups() {
        let s = load(&[]).unwrap();
        assert_eq!(s.runner_for("anything"), RunnerKind::WinRm);
        assert!(s.continue_on_failure);
        let s = load(&[
            ("RUNNER_DEFAULT", "dry_run"),
            (
                "RUNNER_HOST_GROUPS",
                "ws-fin-*=defend, *-dc??=winrm,srv*=winrm",
            ),
        ])
        .unwrap();
        assert_eq!(s.runner_for("WS-FIN-042"), RunnerKind::Defend);
        assert_eq!(s.runner_for("srv-db1"), RunnerKind::WinRm);
        assert_eq!(s.runner_for("laptop"), RunnerKind::DryRun);
        assert!(s.uses(RunnerKind::WinRm));
    }

    #[test]
    fn errors_name_the_variable() {
        let e = load(&[("RUNNER_DEFAULT", "ssh")]).unwrap_err();
        assert_eq!(e.var, "RUNNER_DEFAULT");
        let e = load(&[("RUNNER_HOST_GROUPS", "ws-*")]).unwrap_err();
        assert_eq!(e.var, "RUNNER_HOST_GROUPS");
        let e = load(&[("RUNNER_MAX_PARALLEL_HOSTS", "0")]).unwrap_err();
        assert_eq!(e.var, "RUNNER_MAX_PARALLEL_HOSTS");
        let e = load(&[("RUNNER_BATCH_TIMEOUT_SECS", "-1")]).unwrap_err();
        assert_eq!(e.var, "RUNNER_BATCH_TIMEOUT_SECS");
    }

    #[test]
    fn glob_patterns() {
        assert!(HostPattern::new("*").matches("x"));
        assert!(HostPattern::new("WS-*-042").matches("ws-fin-042"));
        assert!(!HostPattern::new("ws-*").matches("srv-1"));
        assert!(HostPattern::new("exact").matches("EXACT"));
        assert!(!HostPattern::new("exact").matches("exactly"));
    }
}
