//! Command line: `serve`, `demo`, `check-config`, `parse`.

use std::io::Read;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::{LogFormat, Settings};

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
    /// WinRM tools: `winrm run` runs one command on a host (connectivity and credential check).
    Winrm {
        #[command(subcommand)]
        action: crate::execute::cli::WinRmCommand,
    },
    /// Load and validate the configuration, print it with secrets redacted, and exit.
    CheckConfig,
    /// Parse an assistant answer (a file, or - for stdin) and print the result as JSON.
    Parse {
        #[arg(default_value = "-")]
        file: String,
    },
    /// Triage one alert document (JSON) with the configured assistant and print the parsed
    /// result and the Slack message it would post. Posts nothing.
    Replay { alert: String },
    /// Measure parsing, message rendering, ingest and outbox throughput on this machine.
    Bench,
    /// The local audit record of incidents.
    Case {
        #[command(subcommand)]
        action: CaseCommand,
    },
}

#[derive(Subcommand)]
enum CaseCommand {
    /// Print what was proposed, decided and run for an incident, and its case id and URL.
    Show { incident: String },
}

const DEFAULT_LOG: &str = "info,sqlx=warn,tower_http=warn";

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
            Command::Serve => serve().await,
            Command::Demo => crate::demo::run().await,
            Command::CheckConfig => check_config(),
            Command::Parse { file } => parse(&file),
            Command::Winrm { action } => crate::execute::cli::run(action).await,
            Command::Replay { alert } => crate::triage::replay::run(&alert).await,
            Command::Bench => crate::bench::run().await,
            Command::Case {
                action: CaseCommand::Show { incident },
            } => case_show(&incident).await,
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

async fn serve() -> anyhow::Result<()> {
    let settings = Settings::from_env()?;
    crate::telemetry::init(settings.log_format, DEFAULT_LOG);
    let app = crate::app::App::start(settings, None).await?;
    tokio::signal::ctrl_c().await?;
    tracing::info!("shutting down");
    app.stop().await;
    Ok(())
}

fn check_config() -> anyhow::Result<()> {
    let settings = Settings::from_env()?;
    crate::telemetry::init(LogFormat::Pretty, DEFAULT_LOG);
    println!("{settings:#?}");
    Ok(())
}

/// Needs only DATABASE_URL (and KIBANA_PUBLIC_URL / KIBANA_URL / KIBANA_SPACE for the link).
async fn case_show(incident: &str) -> anyhow::Result<()> {
    let url = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| crate::config::DEFAULT_DATABASE_URL.into());
    let store = crate::store::Store::connect(&url).await?;
    let space = std::env::var("KIBANA_SPACE").ok();
    let base = std::env::var("KIBANA_PUBLIC_URL")
        .or_else(|_| std::env::var("KIBANA_URL"))
        .ok()
        .map(|b| crate::config::kibana_app_base(&b, space.as_deref()));
    print!(
        "{}",
        crate::record::show::render(&store, incident, base.as_deref()).await?
    );
    Ok(())
}

fn parse(file: &str) -> anyhow::Result<()> {
    let mut text = String::new();
    if file == "-" {
        std::io::stdin().read_to_string(&mut text)?;
    } else {
        text = std::fs::read_to_string(file)
            .map_err(|e| anyhow::anyhow!("cannot read {file}: {e}"))?;
    }
    let triage = crate::triage::parser::parse_answer(&text);
    println!("{}", serde_json::to_string_pretty(&triage)?);
    Ok(())
}
