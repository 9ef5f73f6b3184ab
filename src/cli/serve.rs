//! `triage-bot serve`: the service, against the endpoints configured in the environment / `.env`,
//! until SIGTERM (what `docker stop`, systemd and Kubernetes send) or Ctrl-C; then a graceful
//! stop within `SHUTDOWN_GRACE_SECS`, and exit status 0.

use super::DEFAULT_LOG;
use crate::config::Settings;

pub async fn run() -> anyhow::Result<()> {
    let settings = Settings::from_env()?;
    crate::telemetry::init(settings.log_format, DEFAULT_LOG);
    let app = crate::app::App::start(settings, None).await?;
    let signal = stop_signal().await?;
    tracing::info!(signal, "shutting down");
    app.stop().await;
    tracing::info!("stopped");
    Ok(())
}

/// Waits for SIGTERM or Ctrl-C (SIGINT) and names it.
pub(super) async fn stop_signal() -> anyhow::Result<&'static str> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate())?;
        tokio::select! {
            _ = term.recv() => Ok("SIGTERM"),
            r = tokio::signal::ctrl_c() => r.map(|()| "SIGINT").map_err(Into::into),
        }
    }
    #[cfg(not(unix))]
    {
        tokio::signal::ctrl_c().await?;
        Ok("Ctrl-C")
    }
}
