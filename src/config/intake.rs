//! Intake settings besides the alert-index polls: the Kibana webhook push
//! (`KIBANA_WEBHOOK_*`), the index-action worker (`INDEX_ACTION_*`), the time values
//! (`*_START_TIME`) both kinds of source accept, and the optional enrichment of an alert with
//! what else is known about its host and user (`ENRICHMENT_*`).

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::env::{ConfigError, Env, err};
use super::{AlertSource, SeverityFilter, SourceKind};
use crate::secret::Secret;

/// The header a Kibana Webhook connector sends the shared secret in, unless configured.
pub const DEFAULT_WEBHOOK_HEADER: &str = "X-Triage-Bot-Token";

/// The checkpoint name of the index-action source.
pub const INDEX_ACTION_SOURCE: &str = "index_action";

/// The source name alerts pushed by the webhook are recorded under.
pub const WEBHOOK_SOURCE: &str = "kibana_webhook";

#[derive(Debug, Clone, Default)]
pub struct IntakeSettings {
    /// `POST /api/webhook/kibana`; `None` (no secret configured): the endpoint answers 404.
    pub webhook: Option<WebhookSettings>,
    /// The index a Kibana Index connector writes rule actions to; `None`: not polled.
    pub index_action: Option<IndexActionSettings>,
    /// Before triage, look up other alerts on the host and for the user within this window, and
    /// open cases naming the host (`ENRICHMENT_ENABLED`, `ENRICHMENT_WINDOW_SECS`); `None`: off.
    pub enrichment: Option<Duration>,
}

#[derive(Debug, Clone)]
pub struct WebhookSettings {
    /// The shared secret the connector sends (`KIBANA_WEBHOOK_SECRET` or `_FILE`).
    pub secret: Secret,
    /// Where the secret came from, for messages that must not show it: the `_FILE` path, or
    /// the variable's name.
    pub secret_origin: String,
    /// The header carrying it (`KIBANA_WEBHOOK_HEADER`).
    pub header: String,
    /// Larger bodies are refused with 413 (`KIBANA_WEBHOOK_MAX_BYTES`).
    pub max_bytes: usize,
}

#[derive(Debug, Clone)]
pub struct IndexActionSettings {
    /// Polled like an alert index (checkpoint, cursor, late sweep); each hit is an action
    /// document that carries rule hits.
    pub source: AlertSource,
    pub interval: Duration,
}

/// The process environment as a lookup, for commands that lay their flags over it
/// (`index-action-worker`).
pub fn process_env(var: &str) -> Option<String> {
    std::env::var(var).ok()
}

/// An RFC 3339 time from `var`, if set.
pub fn time_opt(env: &Env, var: &str) -> Result<Option<DateTime<Utc>>, ConfigError> {
    match env.opt(var) {
        None => Ok(None),
        Some(v) => DateTime::parse_from_rfc3339(&v)
            .map(|t| Some(t.with_timezone(&Utc)))
            .map_err(|e| {
                err(
                    var,
                    format!("expected an RFC 3339 time such as 2026-12-01T00:00:00Z ({e})"),
                )
            }),
    }
}

impl IntakeSettings {
    pub fn from_env(
        env: &Env,
        batch_size: usize,
        poll_interval: Duration,
    ) -> Result<Self, ConfigError> {
        let secret = env.secret_opt("KIBANA_WEBHOOK_SECRET")?;
        let header = env.or("KIBANA_WEBHOOK_HEADER", DEFAULT_WEBHOOK_HEADER);
        if axum::http::HeaderName::from_bytes(header.as_bytes()).is_err() {
            return Err(err(
                "KIBANA_WEBHOOK_HEADER",
                format!("{header:?} is not a valid HTTP header name"),
            ));
        }
        let max_bytes = env.num(
            "KIBANA_WEBHOOK_MAX_BYTES",
            1_048_576usize,
            "a number of bytes",
        )?;
        let webhook = secret
            .filter(|s| !s.is_empty())
            .map(|secret| WebhookSettings {
                secret,
                secret_origin: env
                    .opt("KIBANA_WEBHOOK_SECRET_FILE")
                    .unwrap_or_else(|| "KIBANA_WEBHOOK_SECRET".into()),
                header,
                max_bytes,
            });
        let index = env.opt("INDEX_ACTION_INDEX");
        let source = AlertSource {
            name: INDEX_ACTION_SOURCE.into(),
            index: index.clone().unwrap_or_default(),
            timestamp_field: env.or("INDEX_ACTION_TIMESTAMP_FIELD", "@timestamp"),
            tiebreak_field: env.or("INDEX_ACTION_TIEBREAK_FIELD", "triage_bot.key.keyword"),
            filter: SeverityFilter::Any,
            conditions: Vec::new(),
            kind: SourceKind::IndexAction,
            start_time: time_opt(env, "INDEX_ACTION_START_TIME")?,
            batch_size: env.num(
                "INDEX_ACTION_BATCH_SIZE",
                batch_size,
                "a whole number of documents",
            )?,
        };
        let interval = env.secs("INDEX_ACTION_INTERVAL_SECS", poll_interval.as_secs_f64())?;
        let window = env.secs("ENRICHMENT_WINDOW_SECS", 86_400.0)?;
        Ok(Self {
            webhook,
            index_action: index.map(|_| IndexActionSettings { source, interval }),
            enrichment: env.bool("ENRICHMENT_ENABLED", false)?.then_some(window),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env_of(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn webhook_is_off_without_a_secret_and_values_are_checked() {
        let m = env_of(&[]);
        let env = Env {
            lookup: &|k| m.get(k).cloned(),
        };
        let s = IntakeSettings::from_env(&env, 100, Duration::from_secs(30)).unwrap();
        assert!(s.webhook.is_none() && s.index_action.is_none());

        let m = env_of(&[
            ("KIBANA_WEBHOOK_SECRET", "s"),
            ("INDEX_ACTION_INDEX", "acts"),
        ]);
        let env = Env {
            lookup: &|k| m.get(k).cloned(),
        };
        let s = IntakeSettings::from_env(&env, 7, Duration::from_secs(9)).unwrap();
        let w = s.webhook.unwrap();
        assert_eq!(
            (w.header.as_str(), w.max_bytes),
            (DEFAULT_WEBHOOK_HEADER, 1_048_576)
        );
        let a = s.index_action.unwrap();
        assert_eq!(
            (a.source.batch_size, a.interval),
            (7, Duration::from_secs(9))
        );

        for (var, value, says) in [
            ("INDEX_ACTION_START_TIME", "yesterday", "RFC 3339"),
            (
                "KIBANA_WEBHOOK_HEADER",
                "bad header",
                "not a valid HTTP header name",
            ),
            ("KIBANA_WEBHOOK_MAX_BYTES", "lots", "a number of bytes"),
        ] {
            let m = env_of(&[(var, value)]);
            let env = Env {
                lookup: &|k| m.get(k).cloned(),
            };
            let e = IntakeSettings::from_env(&env, 1, Duration::from_secs(1)).unwrap_err();
            assert_eq!(e.var, var);
            assert!(e.problem.contains(says), "{e}");
        }
    }

    #[test]
    fn a_severity_word_is_a_threshold() {
        let f = |v: &str| SeverityFilter::at_least_word("f".into(), v);
        assert_eq!(
            f("High"),
            SeverityFilter::Terms {
                field: "f".into(),
                values: vec!["high".into(), "critical".into()]
            }
        );
        assert_eq!(
            f("sev1"),
            SeverityFilter::Term {
                field: "f".into(),
                value: "sev1".into()
            }
        );
    }
}
