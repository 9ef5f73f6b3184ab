//! `triage-bot check-config`: load and validate the configuration, print it with secrets
//! redacted, and exit.

use super::DEFAULT_LOG;
use crate::config::{LogFormat, Settings};

pub fn run() -> anyhow::Result<()> {
    let settings = Settings::from_env()?;
    crate::telemetry::init(LogFormat::Pretty, DEFAULT_LOG);
    println!("{settings:#?}");
    Ok(())
}
