//! Running approved commands on the alert's host.
//!
//! [`CommandRunner`] is the seam between "what was approved" and "how it reaches the host":
//! [`winrm::WinRmRunner`] (WS-Management, NTLM with sealing or Basic over HTTPS),
//! [`defend::DefendRunner`] (Elastic Defend response actions through Kibana) and
//! [`dry_run::DryRunRunner`] (records, runs nothing). [`select::SelectingRunner`] picks one per
//! host group ([`settings::RunnerSettings`]) and keeps commands on one host in order while
//! different hosts run in parallel, bounded. [`run_batch`] runs exactly the commands stored at
//! triage time — re-checking them against the approval hash — one after another, recording each
//! as started before sending it and as finished after, so a crash can never re-run one; a batch
//! deadline and the continue-on-failure setting decide when the rest is skipped. [`cli`] is
//! `triage-bot winrm run`.

pub mod cli;
pub mod defend;
pub mod dry_run;
pub mod select;
pub mod settings;
pub mod winrm;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use serde_json::json;

use crate::app::Ctx;
use crate::domain::{IncidentState, incident::approval_hash};
use crate::store::commands::CommandResult;
use crate::store::{IncidentRow, Job, Store, outbox};
use crate::workers::JobError;

pub use defend::{DefendRunner, isolate, isolate_offer};
pub use dry_run::{DryRunRecord, DryRunRunner};
pub use select::{HostPermit, SelectingRunner};
pub use settings::{RunnerKind, RunnerSettings};
pub use winrm::WinRmRunner;

/// What one command produced on the host.
#[derive(Debug, Clone)]
pub struct RunOutput {
    pub stdout: String,
    pub stderr: String,
    pub exit_code: i64,
}

pub type RunFuture<'a> = Pin<Box<dyn Future<Output = Result<RunOutput, String>> + Send + 'a>>;
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Where a command runs: the alert's host plus what some runners need besides its name (the
/// Elastic Defend agent id, the alert and case to log the action in).
#[derive(Debug, Clone, Default)]
pub struct Target {
    pub host: String,
    pub agent_id: Option<String>,
    pub alert_id: Option<String>,
    pub case_id: Option<String>,
}

impl Target {
    pub fn host(host: impl Into<String>) -> Self {
        Self {
            host: host.into(),
            ..Self::default()
        }
    }

    /// The target of an incident: its host, and the agent id and alert id read from the alert.
    pub fn of_incident(incident: &IncidentRow) -> Self {
        let alert: serde_json::Value =
            serde_json::from_str(&incident.alert_json).unwrap_or_default();
        // The stored alert is the normalised Alert with the original document under `raw`;
        // ECS fields may be nested objects or dotted keys.
        let raw = alert.get("raw").unwrap_or(&alert);
        let field = |path: &str| -> Option<String> {
            raw.get(path)
                .or_else(|| path.split('.').try_fold(raw, |v, k| v.get(k)))
                .and_then(|v| v.as_str())
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
        };
        Self {
            host: incident.host_name.clone(),
            agent_id: field("agent.id").or_else(|| field("elastic.agent.id")),
            alert_id: Some(incident.alert_id.clone()),
            case_id: incident.case_id.clone(),
        }
    }
}

/// Runs one PowerShell command on a host. Errors are human-readable reasons (no secrets).
pub trait CommandRunner: Send + Sync {
    /// Runs `command` on `host`.
    fn run<'a>(&'a self, host: &'a str, command: &'a str) -> RunFuture<'a>;

    /// Runs `command` on `target`; runners that need more than the host name (Elastic Defend
    /// needs the agent id) override this.
    fn run_on<'a>(&'a self, target: &'a Target, command: &'a str) -> RunFuture<'a> {
        self.run(&target.host, command)
    }

    /// Which runner handles `host` (for messages and the audit trail).
    fn runner_name(&self, _host: &str) -> &'static str {
        "custom"
    }

    /// Held for a whole batch: commands on one host run in order, different hosts in parallel
    /// up to a bound. The default does not limit anything.
    fn lock_host<'a>(&'a self, _host: &'a str) -> BoxFuture<'a, HostPermit> {
        Box::pin(async { HostPermit::unlimited() })
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
    let target = Target::of_incident(incident);
    let runner_settings = &ctx.settings.runner;
    // Commands on one host run in order, also across incidents; hosts run in parallel, bounded.
    let _permit = ctx.runner.lock_host(&host).await;
    let started = Instant::now();
    let batch_deadline = tokio::time::Instant::now() + runner_settings.batch_timeout;
    let runner_name = ctx.runner.runner_name(&host);
    let (mut ok, mut failed) = (0usize, 0usize);
    let mut stop_reason: Option<String> = None;
    let mut skipped = 0usize;
    for cmd in &commands {
        if !cmd.proposed().may_run() {
            ctx.store
                .block_command(&incident.id, cmd.seq)
                .await
                .map_err(JobError::retry)?;
            continue;
        }
        if stop_reason.is_none() && tokio::time::Instant::now() >= batch_deadline {
            stop_reason = Some(format!(
                "the batch deadline ({:.0}s) passed",
                runner_settings.batch_timeout.as_secs_f64()
            ));
        }
        if stop_reason.is_some() {
            // Left `proposed`; skipped together below, never started.
            if cmd.status == "proposed" {
                skipped += 1;
            }
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
        tracing::info!(incident.id = %incident.id, host.name = %host, command.seq = cmd.seq, runner = runner_name, "CommandStarted");
        let run = ctx.runner.run_on(&target, &cmd.text);
        let outcome = match tokio::time::timeout_at(batch_deadline, run).await {
            Ok(r) => r,
            // Dropping the run cancels it; the WinRM client still signals and deletes its shell.
            Err(_) => Err(format!(
                "stopped: the batch deadline ({:.0}s) passed while it ran",
                runner_settings.batch_timeout.as_secs_f64()
            )),
        };
        let result = match outcome {
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
        metrics::counter!("triage_bot_commands_total", "outcome" => if result.succeeded { "succeeded" } else { "failed" }, "runner" => runner_name).increment(1);
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
        if !result.succeeded && !runner_settings.continue_on_failure {
            stop_reason = Some(format!(
                "command {} failed and RUNNER_CONTINUE_ON_FAILURE is off",
                cmd.seq
            ));
        }
        if tokio::time::Instant::now() >= batch_deadline && stop_reason.is_none() {
            stop_reason = Some(format!(
                "the batch deadline ({:.0}s) passed",
                runner_settings.batch_timeout.as_secs_f64()
            ));
        }
    }
    if let Some(reason) = &stop_reason {
        let mut tx = ctx.store.write_tx().await.map_err(JobError::retry)?;
        // Nothing is running now, so this only moves the not-started rest to `skipped`.
        Store::interrupt_commands(&mut tx, &incident.id)
            .await
            .map_err(JobError::retry)?;
        tx.commit().await.map_err(JobError::retry)?;
        if skipped > 0 {
            let note = format!("{skipped} command(s) were not run: {reason}.");
            ctx.store
                .enqueue(
                    &incident.id,
                    &Job::ThreadReply {
                        text: format!(":double_vertical_bar: {note}"),
                    },
                )
                .await
                .map_err(JobError::retry)?;
            ctx.store
                .enqueue(&incident.id, &Job::CaseComment { text: note })
                .await
                .map_err(JobError::retry)?;
        }
    }
    let next = if failed == 0 && skipped == 0 {
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
        json!({"succeeded": ok, "failed": failed, "skipped": skipped, "runner": runner_name,
               "stopped": stop_reason, "seconds": started.elapsed().as_secs_f64()}),
    )
    .await
    .map_err(JobError::retry)?;
    let summary = format!(
        "{} Finished on {}: {ok} succeeded, {failed} failed{}, in {:.1}s.",
        if failed == 0 && skipped == 0 {
            ":white_check_mark:"
        } else {
            ":warning:"
        },
        crate::slack_app::blocks::escape(&host),
        if skipped > 0 {
            format!(", {skipped} skipped")
        } else {
            String::new()
        },
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

/// The runner the service uses: the one each host group is configured for
/// (`RUNNER_DEFAULT`, `RUNNER_HOST_GROUPS`), with per-host ordering and the parallel-host bound.
pub fn build_runner(settings: &crate::config::Settings) -> anyhow::Result<Arc<dyn CommandRunner>> {
    Ok(Arc::new(SelectingRunner::from_settings(settings)?))
}
