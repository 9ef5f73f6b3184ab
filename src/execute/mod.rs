//! Running approved commands on the alert's host.
//!
//! [`CommandRunner`] is the seam between "what was approved" and "how it reaches the host";
//! [`WinRmRunner`] is the WinRM implementation. [`run_batch`] runs exactly the commands stored
//! at triage time — re-checking them against the approval hash — one after another, recording
//! each as started before sending it and as finished after, so a crash can never re-run one.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use serde_json::json;

use crate::app::Ctx;
use crate::clients::winrm::{WinRmClient, WinRmConfig, WinRmError};
use crate::config::WinRmSettings;
use crate::domain::{IncidentState, incident::approval_hash};
use crate::store::commands::CommandResult;
use crate::store::{IncidentRow, Job, Store, outbox};
use crate::workers::JobError;

/// What one command produced on the host.
#[derive(Debug, Clone)]
pub struct RunOutput {
    pub stdout: String,
    pub stderr: String,
    pub exit_code: i64,
}

pub type RunFuture<'a> = Pin<Box<dyn Future<Output = Result<RunOutput, String>> + Send + 'a>>;

/// Runs one PowerShell command on a host. Errors are human-readable reasons (no secrets).
pub trait CommandRunner: Send + Sync {
    fn run<'a>(&'a self, host: &'a str, command: &'a str) -> RunFuture<'a>;
}

/// Runs commands over WinRM, passing each to PowerShell with `-EncodedCommand`.
pub struct WinRmRunner {
    settings: WinRmSettings,
}

impl WinRmRunner {
    pub fn new(settings: WinRmSettings) -> Self {
        Self { settings }
    }

    fn client(&self, host: &str) -> Result<WinRmClient, WinRmError> {
        let mut cfg = WinRmConfig::new(
            self.settings.endpoint_for(host),
            self.settings.username.clone(),
            self.settings.password.clone(),
        );
        cfg.operation_timeout = self.settings.operation_timeout;
        cfg.read_timeout = self.settings.operation_timeout + std::time::Duration::from_secs(10);
        cfg.command_timeout = self.settings.command_timeout;
        cfg.max_output_bytes = self.settings.max_output_bytes;
        WinRmClient::new(cfg)
    }
}

impl CommandRunner for WinRmRunner {
    fn run<'a>(&'a self, host: &'a str, command: &'a str) -> RunFuture<'a> {
        Box::pin(async move {
            let client = self.client(host).map_err(|e| e.to_string())?;
            let out = client
                .run_powershell(command)
                .await
                .map_err(|e| e.to_string())?;
            let mut stdout = out.stdout;
            if out.truncated {
                stdout.push_str("\n… (output truncated by triage-bot)");
            }
            Ok(RunOutput {
                stdout,
                stderr: out.stderr,
                exit_code: out.exit_code,
            })
        })
    }
}

/// The approved batch of one incident.
pub async fn run_batch(ctx: &Ctx, incident: &IncidentRow) -> Result<(), JobError> {
    if incident.state() != Some(IncidentState::Approved) {
        return Err(JobError::permanent(format!(
            "incident is {}, not approved; nothing runs",
            incident.state
        )));
    }
    let commands = ctx
        .store
        .commands(&incident.id)
        .await
        .map_err(JobError::retry)?;
    let proposed: Vec<_> = commands.iter().map(|c| c.proposed()).collect();
    let expected = approval_hash(&incident.incident_id(), &incident.host_name, &proposed);
    if incident.approval_hash.as_deref() != Some(expected.as_str()) {
        // The stored commands are not the ones that were approved: run nothing.
        return Err(JobError::permanent(
            "the stored commands do not match the approval; nothing was run",
        ));
    }
    {
        let mut tx = ctx.store.write_tx().await.map_err(JobError::retry)?;
        Store::transition(&mut tx, &incident.id, IncidentState::Executing)
            .await
            .map_err(JobError::permanent)?;
        tx.commit().await.map_err(JobError::retry)?;
    }
    let host = incident.host_name.clone();
    let started = Instant::now();
    let (mut ok, mut failed) = (0usize, 0usize);
    for cmd in &commands {
        if !cmd.proposed().may_run() {
            ctx.store
                .block_command(&incident.id, cmd.seq)
                .await
                .map_err(JobError::retry)?;
            continue;
        }
        if !ctx
            .store
            .start_command(&incident.id, cmd.seq)
            .await
            .map_err(JobError::retry)?
        {
            continue;
        }
        let t0 = Instant::now();
        tracing::info!(incident.id = %incident.id, host.name = %host, command.seq = cmd.seq, "CommandStarted");
        let result = match ctx.runner.run(&host, &cmd.text).await {
            Ok(out) => CommandResult {
                succeeded: out.exit_code == 0,
                exit_code: Some(out.exit_code),
                stdout: out.stdout,
                stderr: out.stderr,
                error: None,
            },
            Err(reason) => CommandResult {
                succeeded: false,
                exit_code: None,
                stdout: String::new(),
                stderr: String::new(),
                error: Some(reason),
            },
        };
        let took = t0.elapsed();
        ctx.store
            .finish_command(&incident.id, cmd.seq, &result)
            .await
            .map_err(JobError::retry)?;
        if result.succeeded {
            ok += 1
        } else {
            failed += 1
        }
        metrics::counter!("triage_bot_commands_total", "outcome" => if result.succeeded { "succeeded" } else { "failed" }).increment(1);
        tracing::info!(incident.id = %incident.id, host.name = %host, command.seq = cmd.seq, exit_code = ?result.exit_code, succeeded = result.succeeded, "CommandFinished");
        let text = result_text(cmd.seq, &cmd.text, &host, &result, took);
        ctx.store
            .enqueue(&incident.id, &Job::ThreadReply { text: text.slack })
            .await
            .map_err(JobError::retry)?;
        ctx.store
            .enqueue(&incident.id, &Job::CaseComment { text: text.case })
            .await
            .map_err(JobError::retry)?;
    }
    let next = if failed == 0 {
        IncidentState::Executed
    } else {
        IncidentState::ExecutionFailed
    };
    let mut tx = ctx.store.write_tx().await.map_err(JobError::retry)?;
    Store::transition(&mut tx, &incident.id, next)
        .await
        .map_err(JobError::permanent)?;
    Store::audit(
        &mut tx,
        &incident.id,
        "triage-bot",
        "ExecutionFinished",
        json!({"succeeded": ok, "failed": failed, "seconds": started.elapsed().as_secs_f64()}),
    )
    .await
    .map_err(JobError::retry)?;
    let summary = format!(
        "{} Finished on {}: {ok} succeeded, {failed} failed, in {:.1}s.",
        if failed == 0 {
            ":white_check_mark:"
        } else {
            ":warning:"
        },
        crate::slack_app::blocks::escape(&host),
        started.elapsed().as_secs_f64()
    );
    outbox::enqueue(&mut tx, &incident.id, &Job::ThreadReply { text: summary })
        .await
        .map_err(JobError::retry)?;
    outbox::enqueue(&mut tx, &incident.id, &Job::FinalizeCase)
        .await
        .map_err(JobError::retry)?;
    tx.commit().await.map_err(JobError::retry)?;
    Ok(())
}

struct ResultText {
    slack: String,
    case: String,
}

fn result_text(
    seq: i64,
    command: &str,
    host: &str,
    r: &CommandResult,
    took: std::time::Duration,
) -> ResultText {
    use crate::slack_app::blocks::escape;
    let status = match (&r.error, r.exit_code) {
        (Some(e), _) => format!("failed: {e}"),
        (None, Some(code)) => format!("exit code {code}"),
        (None, None) => "no exit code".into(),
    };
    let icon = if r.succeeded {
        ":white_check_mark:"
    } else {
        ":x:"
    };
    let mut output = r.stdout.trim_end().to_string();
    if !r.stderr.trim().is_empty() {
        output.push_str("\n[stderr]\n");
        output.push_str(r.stderr.trim_end());
    }
    let shown: String = if output.chars().count() > 2500 {
        format!(
            "{}\n… (truncated; full output in the case)",
            output.chars().take(2500).collect::<String>()
        )
    } else {
        output.clone()
    };
    let code_block = |s: &str| {
        if s.trim().is_empty() {
            "(no output)".to_string()
        } else {
            format!("```\n{}\n```", escape(&s.replace("```", "ˋˋˋ")))
        }
    };
    ResultText {
        slack: format!(
            "{icon} {seq}. `{}` on {} — {status} ({:.1}s)\n{}",
            escape(&command.replace('`', "'")),
            escape(host),
            took.as_secs_f64(),
            code_block(&shown)
        ),
        case: format!(
            "**Command {seq}** on {host}: `{}`\n\nResult: {status}, took {:.1}s.\n\n````\n{}\n````",
            command.replace('`', "'"),
            took.as_secs_f64(),
            crate::clients::kibana::cases::clip(&output, 25_000)
        ),
    }
}

/// The runner used by default: WinRM.
pub fn default_runner(settings: &WinRmSettings) -> Arc<dyn CommandRunner> {
    Arc::new(WinRmRunner::new(settings.clone()))
}
