//! `triage-bot explain ALERT.json`: which policy matches an alert document and what outcome it
//! would get now, from the same decision code and the real database state (groups, snoozes),
//! with the outcomes already recorded for it — "why was I not paged for this?". Changes
//! nothing. Kibana's own maintenance windows are not fetched (the alert's
//! `kibana.alert.maintenance_window_ids` is still honoured).

use crate::config::PolicyCliSettings;
use crate::domain::Alert;
use crate::pipeline::policy::{self, Engine, Policies};
use crate::store::Store;

pub async fn run(file: &str, source: &str) -> anyhow::Result<()> {
    let settings = PolicyCliSettings::from_env()?;
    let text = if file == "-" {
        std::io::read_to_string(std::io::stdin())?
    } else {
        std::fs::read_to_string(file).map_err(|e| anyhow::anyhow!("cannot read {file}: {e}"))?
    };
    let alert = super::replay::read_alert(&text, "explain")?;
    let policies = match &settings.policy.file {
        Some(path) => Policies::load(path)?,
        None => Policies::default_grouping(settings.group_window),
    };
    let store = Store::connect(settings.database_url.expose()).await?;
    let engine = Engine::new(policies);
    print!("{}", render(&store, &engine, source, &alert).await?);
    Ok(())
}

/// The explanation, as printed.
pub async fn render(
    store: &Store,
    engine: &Engine,
    source: &str,
    alert: &Alert,
) -> anyhow::Result<String> {
    use std::fmt::Write;
    let mut out = String::new();
    let status = policy::AlertStatus::of(&alert.raw);
    writeln!(
        out,
        "alert:    {} — {} on {} (status {})",
        alert.id,
        alert.rule_name,
        alert.host_name,
        status.as_str()
    )?;
    writeln!(
        out,
        "policies: {}",
        engine
            .policies
            .origin
            .as_deref()
            .unwrap_or("built-in default")
    )?;
    match policy::explain(store, engine, source, alert).await? {
        Some(v) => {
            let matched = v
                .policy
                .as_deref()
                .and_then(|n| engine.policies.policies.iter().find(|p| p.name == n));
            match matched {
                Some(p) => writeln!(out, "policy:   {} (match: {})", p.name, p.match_text)?,
                None => writeln!(out, "policy:   none")?,
            }
            writeln!(out, "outcome:  {} (if it arrived now)", v.outcome.as_str())?;
            writeln!(out, "reason:   {}", v.reason)?;
        }
        None => writeln!(
            out,
            "outcome:  none — already evaluated with this status; reading it again changes nothing"
        )?,
    }
    let recorded = store.outcomes_for_alert(&alert.id.0).await?;
    if recorded.is_empty() {
        writeln!(out, "recorded: nothing yet")?;
    } else {
        writeln!(out, "recorded:")?;
        for r in recorded {
            writeln!(
                out,
                "  {}  {:<10} policy={} incident={}  {}",
                r.at,
                r.outcome,
                r.policy.as_deref().unwrap_or("-"),
                r.incident_id.as_deref().unwrap_or("-"),
                r.reason
            )?;
        }
    }
    Ok(out)
}
