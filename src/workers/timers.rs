//! Timers: the approval clock and the action policies' clock (digests, outcome index, Kibana
//! maintenance windows), checked every `WORKER_TICK_SECS` until shutdown.

use std::sync::Arc;

use crate::pipeline::Ctx;
use crate::pipeline::approval::expiry::tick;
use crate::shutdown::Shutdown;

/// Escalates and expires undecided incidents until shutdown.
pub async fn approval_clock(ctx: Arc<Ctx>, mut shutdown: Shutdown) {
    loop {
        // One replica runs the clocks, the one that polls.
        if ctx.replica.leads(crate::store::Lead::Main).await
            && let Err(e) = tick(&ctx).await
        {
            tracing::error!(error = %e, "approval expiry check failed");
        }
        tokio::select! {
            _ = shutdown.wait() => return,
            _ = tokio::time::sleep(ctx.settings.worker_tick) => {}
        }
    }
}

/// Kibana's maintenance windows are re-read this often.
const KIBANA_WINDOWS_EVERY: std::time::Duration = std::time::Duration::from_secs(60);

/// The action policies' clock, every `WORKER_TICK_SECS` until shutdown: queues the digests
/// whose window ended, copies dispatch outcomes to their index, and re-reads Kibana's
/// maintenance windows every minute.
pub async fn policy_clock(ctx: Arc<Ctx>, mut shutdown: Shutdown) {
    use crate::pipeline::policy;
    // `App::start` read them just before this clock starts.
    let mut windows_read = tokio::time::Instant::now();
    loop {
        if windows_read.elapsed() >= KIBANA_WINDOWS_EVERY {
            windows_read = tokio::time::Instant::now();
            if let Err(e) = policy::refresh_kibana_windows(&ctx).await {
                tracing::warn!(error = %e, "Kibana maintenance windows not refreshed");
            }
        }
        // Every replica keeps its own copy of the windows (a pushed alert may reach any of
        // them); the digests and the outcome index are the leading replica's.
        if ctx.replica.leads(crate::store::Lead::Main).await {
            if let Err(e) = policy::digest_tick(&ctx).await {
                tracing::error!(error = %e, "digest check failed");
            }
            match policy::index_outcomes(&ctx).await {
                // A full batch: more are waiting, go on without waiting for the tick.
                Ok(n) if n >= 500 => continue,
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "dispatch outcomes not copied to their index; will retry")
                }
            }
        }
        tokio::select! {
            _ = shutdown.wait() => return,
            _ = tokio::time::sleep(ctx.settings.worker_tick) => {}
        }
    }
}
