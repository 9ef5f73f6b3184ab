//! Logging setup. Field names are fixed across the code base so logs can be queried:
//! `incident.id`, `alert.id`, `host.name`, `case.id`, `slack.user`, `slack.ts`, `job.kind`.
//! Events are named as facts (`AlertReceived`, `TriageCompleted`, `ApprovalDecided`, …).

use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// `default_filter` applies when `RUST_LOG` is not set.
pub fn init(format: LogFormat, default_filter: &str) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Pretty => builder.compact().try_init(),
    };
    // Make sure the metrics recorder exists before the first counter.
    let _ = crate::http::prometheus();
}
