//! Timers: the approval clock, checked every `WORKER_TICK_SECS` until shutdown.

use std::sync::Arc;

use crate::pipeline::Ctx;
use crate::pipeline::approval::expiry::tick;
use crate::shutdown::Shutdown;

/// Escalates and expires undecided incidents until shutdown.
pub async fn approval_clock(ctx: Arc<Ctx>, mut shutdown: Shutdown) {
    loop {
        if let Err(e) = tick(&ctx).await {
            tracing::error!(error = %e, "approval expiry check failed");
        }
        tokio::select! {
            _ = shutdown.wait() => return,
            _ = tokio::time::sleep(ctx.settings.worker_tick) => {}
        }
    }
}
