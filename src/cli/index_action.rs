//! `triage-bot index-action-worker`: polls the index a Kibana Index connector writes rule
//! actions to and hands each hit on as an alert — the same worker `serve` runs when
//! `INDEX_ACTION_INDEX` is set, on its own. It only ingests: run it beside `serve` on the same
//! `DATABASE_URL` (whose workers triage what it records), and leave `INDEX_ACTION_INDEX` unset
//! for `serve` then, so the index is not polled twice (harmless — the seen set drops repeats —
//! but wasted).

use std::sync::Arc;

use super::DEFAULT_LOG;
use crate::config::Settings;

/// The command-line flags; each overrides its `INDEX_ACTION_*` variable.
#[derive(Debug, Default, Clone, clap::Args)]
pub struct IndexActionArgs {
    /// The action index (`INDEX_ACTION_INDEX`).
    #[arg(long, value_name = "NAME")]
    pub index: Option<String>,
    /// Seconds between polls (`INDEX_ACTION_INTERVAL_SECS`).
    #[arg(long, value_name = "SECS")]
    pub interval: Option<f64>,
    /// Documents per page (`INDEX_ACTION_BATCH_SIZE`).
    #[arg(long, value_name = "N")]
    pub size: Option<usize>,
    /// Where the first poll starts, RFC 3339 (`INDEX_ACTION_START_TIME`); later polls go on
    /// from the checkpoint.
    #[arg(long, value_name = "RFC3339")]
    pub start_time: Option<String>,
}

impl IndexActionArgs {
    /// The variable each flag stands for, with its value.
    fn overrides(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        if let Some(v) = &self.index {
            out.push(("INDEX_ACTION_INDEX", v.clone()));
        }
        if let Some(v) = self.interval {
            out.push(("INDEX_ACTION_INTERVAL_SECS", v.to_string()));
        }
        if let Some(v) = self.size {
            out.push(("INDEX_ACTION_BATCH_SIZE", v.to_string()));
        }
        if let Some(v) = &self.start_time {
            out.push(("INDEX_ACTION_START_TIME", v.clone()));
        }
        out
    }
}

/// The settings with the flags laid over `lookup`, validated as the environment would be;
/// fails when no action index is named either way.
pub fn settings(
    args: &IndexActionArgs,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> anyhow::Result<Settings> {
    let overrides = args.overrides();
    let settings = Settings::from_lookup(&|k| {
        overrides
            .iter()
            .find(|(var, _)| *var == k)
            .map(|(_, v)| v.clone())
            .or_else(|| lookup(k))
    })?;
    if settings.intake.index_action.is_none() {
        anyhow::bail!("no action index: pass --index NAME or set INDEX_ACTION_INDEX");
    }
    Ok(settings)
}

pub async fn run(args: IndexActionArgs) -> anyhow::Result<()> {
    let settings = settings(&args, &crate::config::intake::process_env)?;
    crate::telemetry::init(settings.log_format, DEFAULT_LOG);
    let ctx = Arc::new(crate::app::build_ctx(settings, None).await?);
    let (trigger, shutdown) = crate::shutdown::channel();
    let worker = tokio::spawn(crate::workers::intake::run_index_action(
        ctx.clone(),
        shutdown,
    ));
    let signal = super::serve::stop_signal().await?;
    tracing::info!(signal, "shutting down");
    trigger.trigger();
    let _ = worker.await;
    ctx.store.pool.close().await;
    Ok(())
}
