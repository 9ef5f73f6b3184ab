//! The command line: one file per subcommand — [`serve`], [`index_action`], [`demo`],
//! [`check_config`], [`parse`], [`replay`], [`bench`], [`case`], [`incidents`], [`report`],
//! [`winrm`], [`safety`], [`setup`], [`snooze`], [`explain`]. This module only parses
//! arguments, loads `.env`, starts the runtime and maps the outcome to an exit status.

pub mod bench;
#[cfg(feature = "demo")]
pub mod bench_pipeline;
#[cfg(feature = "demo")]
pub mod bench_service;
#[cfg(feature = "demo")]
pub mod bench_storm;
pub mod case;
pub mod check_config;
#[cfg(feature = "demo")]
pub mod demo;
pub mod explain;
pub mod incidents;
pub mod index_action;
pub mod parse;
pub mod replay;
pub mod report;
pub mod safety;
pub mod serve;
pub mod setup;
pub mod snooze;
pub mod winrm;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "triage-bot",
    version,
    about = "AI triage of critical Elastic Security alerts, approved in Slack, run over WinRM, audited in Kibana cases"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the service against the endpoints configured in the environment / .env.
    Serve,
    /// Run the whole loop once against in-process emulators and print the timeline.
    Demo,
    /// Poll the index a Kibana Index connector writes rule actions to, and record each hit as an
    /// alert (run beside `serve` on the same database; `serve` does this itself when
    /// INDEX_ACTION_INDEX is set).
    IndexActionWorker(index_action::IndexActionArgs),
    /// WinRM tools: `winrm run` runs one command on a host (connectivity and credential check).
    Winrm {
        #[command(subcommand)]
        action: winrm::WinRmCommand,
    },
    /// Load and validate the configuration, print it with secrets redacted, and exit; with
    /// --connect, try every configured dependency and say what is wrong and how to fix it.
    CheckConfig {
        /// Connect to Elasticsearch, Kibana and Slack (and --winrm HOST) and check each.
        #[arg(long)]
        connect: bool,
        /// Print the checks as JSON.
        #[arg(long, requires = "connect")]
        json: bool,
        /// Also check that this Windows host is reachable and accepts the WinRM credentials.
        #[arg(long, value_name = "HOST", requires = "connect")]
        winrm: Option<String>,
    },
    /// Parse an assistant answer (a file, or - for stdin) and print the result as JSON.
    Parse {
        #[arg(default_value = "-")]
        file: String,
    },
    /// Triage one alert document (JSON) with the configured assistant and print the parsed
    /// result and the Slack message it would post. Posts nothing.
    Replay { alert: String },
    /// Measure parsing, message rendering, ingest and outbox throughput on this machine; with
    /// --pipeline, alerts through the whole service against the emulators with a slow assistant,
    /// compared with a serial loop.
    Bench {
        /// Run the pipeline scenario instead of the micro-benchmarks.
        #[arg(long)]
        pipeline: bool,
        /// Run the service scenarios instead: push → approval message overhead (p50/p99, over
        /// --alerts, default 200 here), idle memory of `serve`, and WinRM fan-out.
        #[arg(long, conflicts_with_all = ["pipeline", "storm"])]
        service: bool,
        /// Critical alerts: each on its own host in the pipeline scenario (default 1000); pushed
        /// one at a time in the service scenario's overhead figure (default 200); the storm's
        /// burst (default 10000).
        #[arg(long)]
        alerts: Option<usize>,
        /// How long the emulated assistant takes to answer, in milliseconds.
        #[arg(long, default_value_t = 2000)]
        latency_ms: u64,
        /// Alerts the serial loop runs (its time per alert is extrapolated to --alerts).
        #[arg(long, default_value_t = 10)]
        serial_sample: usize,
        /// Run the alert-storm scenario under a group policy (use with --alerts, --hosts,
        /// --latency-ms; e.g. --alerts 10000 --hosts 50).
        #[arg(long, conflicts_with = "pipeline")]
        storm: bool,
        /// Hosts the storm's alerts are spread over.
        #[arg(long, default_value_t = 50)]
        hosts: usize,
        /// Also measure ingest and outbox throughput on PostgreSQL, in a fresh database made on
        /// the server of this admin URL (e.g. postgres://user@127.0.0.1:5432/postgres), beside
        /// SQLite in the same run; with --service or --storm, run those scenarios on it instead.
        #[arg(long, value_name = "ADMIN_URL")]
        postgres: Option<String>,
    },
    /// The safety gate: `safety check` judges commands as the triage would and says why.
    Safety {
        #[command(subcommand)]
        action: safety::SafetyCommand,
    },
    /// One-time set-up: `setup kibana-connector` creates the Kibana connector rule actions use
    /// to hand alerts over, and prints the rule action.
    Setup {
        #[command(subcommand)]
        action: setup::SetupCommand,
    },
    /// The SOC's response figures over a period: incidents by outcome, time to acknowledge and
    /// to respond (p50/p90), decisions per rule and handler, and how the AI's proposals fared.
    Report {
        /// How far back: 7d, 24h, 90m, 2w, or an RFC 3339 time.
        #[arg(long, default_value = "7d")]
        since: String,
        #[arg(long, value_enum, default_value = "markdown")]
        format: report::Format,
    },
    /// Quiet a host or rule for a while: `snooze host:NAME 2h`, `snooze rule:NAME 30m`,
    /// `snooze --list`, `snooze --clear [host:NAME]`. Its alerts are recorded as suppressed.
    Snooze {
        /// host:NAME or rule:NAME.
        target: Option<String>,
        /// How long: 30s, 5m, 2h, 1d.
        duration: Option<String>,
        #[arg(long)]
        list: bool,
        #[arg(long)]
        clear: bool,
        /// Who snoozes (default: $USER).
        #[arg(long)]
        by: Option<String>,
    },
    /// Which action policy matches an alert document (JSON file, or -) and what outcome it
    /// would get now, with the outcomes recorded for it. Changes nothing.
    Explain {
        alert: String,
        /// The source name the alert would come from (its group key includes it).
        #[arg(long, default_value = "security_alerts")]
        source: String,
    },
    /// The local audit record of incidents.
    Case {
        #[command(subcommand)]
        action: CaseCommand,
    },
    /// Incidents in the local database: list them (`--state failed` for those whose jobs gave
    /// up), show one, or queue its failed jobs again.
    Incidents {
        #[command(subcommand)]
        action: incidents::IncidentsCommand,
    },
}

#[derive(Subcommand)]
enum CaseCommand {
    /// Print what was proposed, decided and run for an incident, and its case id and URL.
    Show { incident: String },
}

/// The log filter when `RUST_LOG` is not set.
pub const DEFAULT_LOG: &str = "info,sqlx=warn,tower_http=warn";

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    // A missing .env is normal; a malformed one is worth saying.
    if let Err(e) = dotenvy::dotenv()
        && !e.not_found()
    {
        eprintln!("error: cannot read .env: {e}");
        return ExitCode::from(2);
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Serve => serve::run().await,
            Command::IndexActionWorker(args) => index_action::run(args).await,
            #[cfg(feature = "demo")]
            Command::Demo => demo::run().await,
            #[cfg(not(feature = "demo"))]
            Command::Demo => Err(anyhow::anyhow!(
                "this build has no demo: it was built with --no-default-features"
            )),
            Command::CheckConfig {
                connect,
                json,
                winrm,
            } => check_config::run(connect, json, winrm).await,
            Command::Parse { file } => parse::run(&file),
            Command::Winrm { action } => winrm::run(action).await,
            Command::Replay { alert } => replay::run(&alert).await,
            #[cfg(feature = "demo")]
            Command::Bench {
                service: true,
                alerts,
                postgres,
                ..
            } => bench_service::run(alerts.unwrap_or(200), postgres.as_deref()).await,
            #[cfg(not(feature = "demo"))]
            Command::Bench { service: true, .. } => Err(anyhow::anyhow!(
                "the service benchmark runs against the emulators, which this build (--no-default-features) leaves out"
            )),
            #[cfg(feature = "demo")]
            Command::Bench {
                storm: true,
                alerts,
                hosts,
                latency_ms,
                postgres,
                ..
            } => {
                bench_storm::run(&bench_storm::StormBench {
                    alerts: alerts.unwrap_or(10_000),
                    hosts,
                    latency: std::time::Duration::from_millis(latency_ms),
                    postgres,
                })
                .await
            }
            #[cfg(not(feature = "demo"))]
            Command::Bench { storm: true, .. } => Err(anyhow::anyhow!(
                "the storm benchmark runs against the emulators, which this build (--no-default-features) leaves out"
            )),
            Command::Bench {
                pipeline: false,
                postgres,
                ..
            } => bench::run(postgres.as_deref()).await,
            #[cfg(feature = "demo")]
            Command::Bench {
                pipeline: true,
                alerts,
                latency_ms,
                serial_sample,
                ..
            } => {
                bench_pipeline::run(&bench_pipeline::PipelineBench {
                    alerts: alerts.unwrap_or(1000),
                    latency: std::time::Duration::from_millis(latency_ms),
                    serial_sample,
                })
                .await
            }
            #[cfg(not(feature = "demo"))]
            Command::Bench { pipeline: true, .. } => Err(anyhow::anyhow!(
                "the pipeline benchmark runs against the emulators, which this build (--no-default-features) leaves out"
            )),
            Command::Safety { action } => safety::run(action),
            Command::Setup { action } => setup::run(action).await,
            Command::Report { since, format } => report::run(&since, format).await,
            Command::Snooze {
                target,
                duration,
                list,
                clear,
                by,
            } => snooze::run(target, duration, list, clear, by).await,
            Command::Explain { alert, source } => explain::run(&alert, &source).await,
            Command::Case {
                action: CaseCommand::Show { incident },
            } => case::show(&incident).await,
            Command::Incidents { action } => incidents::run(action).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
