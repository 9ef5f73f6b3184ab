//! Logging and metrics setup. Field names are fixed across the code base so logs can be queried:
//! `incident.id`, `alert.id`, `host.name`, `case.id`, `slack.user`, `slack.ts`, `job.kind`.
//! Events are named as facts (`AlertReceived`, `TriageCompleted`, `ApprovalDecided`, …).

use std::sync::OnceLock;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
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
    let _ = prometheus();
}

/// The process-wide Prometheus recorder (installed once, even when tests start several apps).
pub fn prometheus() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        let _ = metrics::set_global_recorder(recorder);
        handle
    })
}
