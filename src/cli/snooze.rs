//! `triage-bot snooze host:NAME 2h` / `rule:NAME 30m` / `--list` / `--clear [host:NAME]`: quiet
//! a host or a rule for a while. Snoozed alerts are still read and recorded, with the outcome
//! `suppressed` and the snooze as the reason. Needs only DATABASE_URL.

use crate::config::PolicyCliSettings;
use crate::pipeline::policy::file::parse_duration;
use crate::store::Store;

/// `host:NAME` or `rule:NAME` (a rule by name or id).
pub fn parse_target(target: &str) -> anyhow::Result<(&str, &str)> {
    match target.split_once(':') {
        Some((kind @ ("host" | "rule"), value)) if !value.trim().is_empty() => {
            Ok((kind, value.trim()))
        }
        _ => anyhow::bail!("expected host:NAME or rule:NAME, got {target:?}"),
    }
}

pub async fn run(
    target: Option<String>,
    duration: Option<String>,
    list: bool,
    clear: bool,
    by: Option<String>,
) -> anyhow::Result<()> {
    let settings = PolicyCliSettings::from_env()?;
    let store = Store::connect(settings.database_url.expose()).await?;
    if clear {
        let which = target.as_deref().map(parse_target).transpose()?;
        let n = store.clear_snoozes(which).await?;
        println!("cleared {n} snooze(s)");
        return Ok(());
    }
    if list || target.is_none() {
        let mut conn = store.pool.acquire().await?;
        let rows = Store::active_snoozes(&mut conn, chrono::Utc::now()).await?;
        if rows.is_empty() {
            println!("no snoozes in force");
        }
        for s in rows {
            println!(
                "{}:{}  until {}  (by {} at {})",
                s.kind, s.value, s.until, s.created_by, s.created_at
            );
        }
        return Ok(());
    }
    let target = target.unwrap_or_default();
    let (kind, value) = parse_target(&target)?;
    let duration = duration
        .ok_or_else(|| anyhow::anyhow!("how long? e.g. `triage-bot snooze {target} 2h`"))?;
    let d = parse_duration(&duration).map_err(|e| anyhow::anyhow!(e))?;
    let until = chrono::Utc::now() + chrono::Duration::from_std(d)?;
    let by = by
        .or_else(|| std::env::var("USER").ok())
        .unwrap_or_else(|| "cli".into());
    store.snooze(kind, value, until, &by).await?;
    println!(
        "{kind}:{value} snoozed until {}",
        until.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    );
    Ok(())
}
