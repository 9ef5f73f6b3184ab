//! `triage-bot incidents`: the operator's view of the local record — `list` (by state, or
//! `failed` for incidents with jobs that gave up after their retries: the dead letters), `show`
//! (one incident's record and its jobs), and `retry` (queue an incident's dead jobs again for
//! the running service). Needs only `DATABASE_URL`.

use std::collections::HashMap;
use std::fmt::Write as _;

use clap::Subcommand;
use serde_json::json;

use crate::store::{OutboxRow, Store};

#[derive(Subcommand)]
pub enum IncidentsCommand {
    /// List incidents, newest first: all, one state (`awaiting_approval`, `executed`, …), or
    /// `failed`: those with jobs that gave up after their retries.
    List {
        #[arg(long)]
        state: Option<String>,
        /// Print JSON lines instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Print an incident's record (proposed, decided, run) and its jobs that gave up.
    Show { incident: String },
    /// Queue an incident's jobs that gave up again, their attempts from zero. A command batch is
    /// never among them: only a fresh approval starts one.
    Retry { incident: String },
}

pub async fn run(action: IncidentsCommand) -> anyhow::Result<()> {
    let url = crate::config::database_url_from_env();
    let store = Store::connect(&url).await?;
    let out = match action {
        IncidentsCommand::List { state, json } => list(&store, state.as_deref(), json).await?,
        IncidentsCommand::Show { incident } => show(&store, &incident).await?,
        IncidentsCommand::Retry { incident } => retry(&store, &incident).await?,
    };
    print!("{out}");
    Ok(())
}

/// The `list` output.
pub async fn list(store: &Store, state: Option<&str>, as_json: bool) -> anyhow::Result<String> {
    let mut dead: HashMap<String, Vec<OutboxRow>> = HashMap::new();
    for row in store.dead_jobs(None).await? {
        dead.entry(row.incident_id.clone()).or_default().push(row);
    }
    if let Some(s) = state
        && s != "failed"
        && crate::domain::IncidentState::parse(s).is_none()
    {
        let known: Vec<_> = crate::domain::IncidentState::ALL
            .iter()
            .map(|k| k.as_str())
            .collect();
        anyhow::bail!(
            "unknown state {s:?}: use failed or one of {}",
            known.join(", ")
        );
    }
    let mut incidents = store.incidents().await?;
    incidents.sort_by(|a, b| b.created_at.cmp(&a.created_at));
    let mut out = String::new();
    for i in incidents {
        let jobs = dead.get(&i.id).map(Vec::as_slice).unwrap_or_default();
        let keep = match state {
            None => true,
            Some("failed") => !jobs.is_empty(),
            Some(s) => i.state.as_str() == s,
        };
        if !keep {
            continue;
        }
        let rule = i.alert().map(|a| a.rule_name).unwrap_or_default();
        // The oldest is the root cause (later jobs often wait on it).
        let last_error = jobs.first().and_then(|j| j.last_error.clone());
        if as_json {
            let line = json!({
                "id": i.id, "state": i.state.as_str(), "created_at": i.created_at,
                "host": i.host_name, "rule": rule, "failed_jobs": jobs.len(),
                "last_error": last_error,
            });
            let _ = writeln!(out, "{line}");
        } else {
            let _ = write!(
                out,
                "{}  {:<18} {}  {} on {}",
                i.id,
                i.state.as_str(),
                i.created_at,
                rule,
                i.host_name
            );
            if !jobs.is_empty() {
                let kinds: Vec<&str> = jobs.iter().map(|j| j.kind.as_str()).collect();
                let _ = write!(out, "  — gave up: {}", kinds.join(", "));
                if let Some(e) = &last_error {
                    let _ = write!(out, " ({})", crate::text::truncate(e, 160, "…"));
                }
            }
            out.push('\n');
        }
    }
    Ok(out)
}

/// The `show` output: the local record, then the jobs that gave up.
pub async fn show(store: &Store, incident: &str) -> anyhow::Result<String> {
    let base = super::case::case_base();
    let mut out = crate::pipeline::record::show::render(store, incident, base.as_deref()).await?;
    let dead = store.dead_jobs(Some(incident)).await?;
    if !dead.is_empty() {
        let _ = writeln!(
            out,
            "\nJobs that gave up (`triage-bot incidents retry {incident}` queues them again):"
        );
        for j in dead {
            let _ = writeln!(
                out,
                "  #{} {} after {} attempt(s): {}",
                j.id,
                j.kind,
                j.attempts,
                j.last_error.as_deref().unwrap_or("no error recorded")
            );
        }
    }
    Ok(out)
}

/// The `retry` output; the jobs are queued for the running service, and the retry audited.
pub async fn retry(store: &Store, incident: &str) -> anyhow::Result<String> {
    if store.incident(incident).await?.is_none() {
        anyhow::bail!("no incident {incident} in this database");
    }
    let queued = store.retry_dead_jobs(incident).await?;
    let operator = std::env::var("USER").unwrap_or_else(|_| "operator".into());
    let mut tx = store.write_tx().await?;
    Store::audit(
        &mut tx,
        incident,
        &format!("cli:{operator}"),
        "JobsRetried",
        json!({ "jobs": queued.iter().map(|j| json!({"id": j.id, "kind": j.kind})).collect::<Vec<_>>() }),
    )
    .await?;
    tx.commit().await?;
    let held_back = store
        .dead_jobs(Some(incident))
        .await?
        .into_iter()
        .filter(|j| j.kind == "execute")
        .count();
    let mut out = if queued.is_empty() {
        format!("Incident {incident} has no jobs to retry.\n")
    } else {
        let kinds: Vec<&str> = queued.iter().map(|j| j.kind.as_str()).collect();
        format!(
            "Queued {} job(s) of incident {incident} again: {}. The running service picks them up.\n",
            queued.len(),
            kinds.join(", ")
        )
    };
    if held_back > 0 {
        out.push_str("A command batch that was cut short is not retried: it needs a fresh approval in Slack.\n");
    }
    Ok(out)
}
