//! Logging and metrics setup. Field names are fixed across the code base so logs can be queried:
//! `incident.id`, `alert.id`, `host.name`, `case.id`, `slack.user`, `slack.ts`, `job.kind`.
//! Events are named as facts (`AlertReceived`, `TriageCompleted`, `ApprovalDecided`, …).

use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
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
        // Histograms as buckets (not summaries), so they aggregate across replicas: from 50 ms
        // (a command, an AI call) to an hour (an approval waiting for a person).
        let buckets = [
            0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0,
            3600.0,
        ];
        // The SOC's response times run from seconds to a day.
        let response = [
            30.0, 60.0, 120.0, 300.0, 600.0, 900.0, 1800.0, 3600.0, 7200.0, 14400.0, 28800.0,
            86400.0,
        ];
        let recorder = PrometheusBuilder::new()
            .set_buckets(&buckets)
            .and_then(|b| {
                b.set_buckets_for_metric(
                    Matcher::Full("triage_bot_time_to_acknowledge_seconds".into()),
                    &response,
                )
            })
            .and_then(|b| {
                b.set_buckets_for_metric(
                    Matcher::Full("triage_bot_time_to_respond_seconds".into()),
                    &response,
                )
            })
            .map(|b| b.build_recorder())
            .unwrap_or_else(|_| PrometheusBuilder::new().build_recorder());
        let handle = recorder.handle();
        let _ = metrics::set_global_recorder(recorder);
        metrics::gauge!("triage_bot_build_info", "version" => env!("CARGO_PKG_VERSION")).set(1.0);
        handle
    })
}
