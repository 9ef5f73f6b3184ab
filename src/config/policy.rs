//! Settings of the action policies (`pipeline::policy`): the policy file, the outcome index,
//! Kibana's maintenance windows — and the few a policy CLI command (`snooze`, `explain`) needs
//! without the whole service configuration.

use std::path::PathBuf;
use std::time::Duration;

use super::{ConfigError, DEFAULT_DATABASE_URL, Env};

/// Where the action policies come from and where their outcomes go.
#[derive(Debug, Clone, Default)]
pub struct PolicySettings {
    /// `POLICY_FILE` (TOML); unset: the built-in grouping (`POLICY_GROUP_WINDOW_SECS`).
    pub file: Option<PathBuf>,
    /// `DISPATCH_OUTCOME_INDEX`: an Elasticsearch index the dispatch outcomes are copied to.
    pub outcome_index: Option<String>,
    /// `POLICY_KIBANA_MAINTENANCE_WINDOWS`: follow Kibana's maintenance windows (default on).
    pub kibana_maintenance_windows: bool,
}

impl PolicySettings {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        Ok(Self {
            file: env.opt("POLICY_FILE").map(PathBuf::from),
            outcome_index: env.opt("DISPATCH_OUTCOME_INDEX"),
            kibana_maintenance_windows: env.bool("POLICY_KIBANA_MAINTENANCE_WINDOWS", true)?,
        })
    }
}

/// `POLICY_GROUP_WINDOW_SECS`: the built-in policy's grouping window (`None`: off).
pub fn group_window(env: &Env) -> Result<Option<Duration>, ConfigError> {
    Ok(
        match env.num::<f64>(
            "POLICY_GROUP_WINDOW_SECS",
            3600.0,
            "a number of seconds (0 turns grouping off)",
        )? {
            w if w > 0.0 && w.is_finite() => Some(Duration::from_secs_f64(w)),
            _ => None,
        },
    )
}

/// What `triage-bot snooze` and `triage-bot explain` need: the database and the policies.
#[derive(Debug, Clone)]
pub struct PolicyCliSettings {
    pub database_url: super::DatabaseUrl,
    pub policy: PolicySettings,
    pub group_window: Option<Duration>,
}

impl PolicyCliSettings {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(&|k| std::env::var(k).ok())
    }

    pub fn from_lookup(lookup: &dyn Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let env = Env { lookup };
        Ok(Self {
            database_url: super::DatabaseUrl::new(env.or("DATABASE_URL", DEFAULT_DATABASE_URL)),
            policy: PolicySettings::from_env(&env)?,
            group_window: group_window(&env)?,
        })
    }
}
