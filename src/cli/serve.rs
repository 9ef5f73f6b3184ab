//! `triage-bot serve`: the service, against the endpoints configured in the environment / `.env`,
//! until Ctrl-C.

use super::DEFAULT_LOG;
use crate::config::Settings;

pub async fn run() -> anyhow::Result<()> {
    let settings = Settings::from_env()?;
    crate::telemetry::init(settings.log_format, DEFAULT_LOG);
    let app = crate::app::App::start(settings, None).await?;
    tokio::signal::ctrl_c().await?;
    tracing::info!("shutting down");
    app.stop().await;
    Ok(())
}
