//! The execute stage: the approved batch of one incident, run on its host.
//!
//! [`run_batch`] runs exactly the commands stored at triage time — re-checking them against the
//! approval hash — one after another through the configured runner (`crate::runners`),
//! recording each as started before sending it and as finished after, so a crash can never
//! re-run one; a batch deadline and the continue-on-failure setting decide when the rest is
//! skipped. [`isolate`] is the "Isolate host" action through Elastic Defend.

mod isolate;
mod resume;

use std::time::Instant;

use serde_json::json;

use crate::domain::{CommandStatus, IncidentState, incident::approval_hash};
use crate::pipeline::Ctx;
use crate::pipeline::JobError;
use crate::runners::{HostPermit, RemoteCommand, ShellJournal, Target};
use crate::store::commands::CommandResult;
use crate::store::{IncidentRow, Job, Store, outbox};

pub use isolate::isolate;
pub use resume::resume_interrupted;

/// The approved batch of one incident.
pub async fn run_batch(ctx: &Ctx, incident: &IncidentRow) -> Result<(), JobError> {
    if incident.state != IncidentState::Approved {
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
    let host = incident.host_name.clone();
    let target = Target::of_incident(incident);
    let runner_settings = &ctx.settings.runner;
    // Commands on one host run in order, also across incidents; hosts run in parallel, bounded.
    // A batch waiting here has not begun: it stays `approved`, so a restart simply starts it.
    let _held = hold_host(ctx, &host).await?;
    {
        let mut tx = ctx.store.write_tx().await.map_err(JobError::retry)?;
        Store::transition(&mut tx, &incident.id, IncidentState::Executing)
            .await
            .map_err(JobError::permanent)?;
        tx.commit().await.map_err(JobError::retry)?;
    }
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
            if cmd.status == CommandStatus::Proposed {
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
        let journal = RemoteJournal {
            store: &ctx.store,
            incident: &incident.id,
            seq: cmd.seq,
        };
        let run = run_with_retries(ctx, &target, &cmd.text, &journal);
        let outcome = match tokio::time::timeout_at(batch_deadline, run).await {
            Ok(r) => r,
            // Dropping the run cancels it; the WinRM client still signals and deletes its shell.
            Err(_) => Err(crate::runners::RunError::permanent(format!(
                "stopped: the batch deadline ({:.0}s) passed while it ran",
                runner_settings.batch_timeout.as_secs_f64()
            ))),
        };
        let result = match outcome {
            Ok(out) => ran(out),
            Err(reason) => CommandResult {
                succeeded: false,
                exit_code: None,
                stdout: String::new(),
                stderr: String::new(),
                error: Some(reason.message),
            },
        };
        let took = t0.elapsed();
        metrics::histogram!("triage_bot_command_seconds", "runner" => runner_name)
            .record(took.as_secs_f64());
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
               "target": ctx.runner.describe(&target),
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
        crate::text::escape(&host),
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
    // The last approved command has finished: the response ends here.
    let times = crate::pipeline::approval::times::responded(
        &mut tx,
        incident,
        &crate::store::now_text(),
        next.as_str(),
    )
    .await
    .map_err(JobError::retry)?;
    outbox::enqueue(&mut tx, &incident.id, &Job::FinalizeCase)
        .await
        .map_err(JobError::retry)?;
    tx.commit().await.map_err(JobError::retry)?;
    times.observe();
    Ok(())
}

/// Runs one command, trying again (up to three times, with backoff) only when the runner says
/// the command certainly never reached the host — WinRM refused or unreachable before the
/// Command request was delivered. Anything that may have run is never retried.
async fn run_with_retries(
    ctx: &Ctx,
    target: &Target,
    command: &str,
    journal: &RemoteJournal<'_>,
) -> Result<crate::runners::RunOutput, crate::runners::RunError> {
    let mut wait = ctx.settings.retry_base;
    let mut tries = 0;
    loop {
        match ctx.runner.run_tracked(target, command, journal).await {
            Err(e) if e.retryable && tries < 3 => {
                tries += 1;
                tracing::warn!(host.name = %target.host, command.seq = journal.seq, error = %e.message, "command not delivered; trying again");
                tokio::time::sleep(wait).await;
                wait *= 2;
            }
            other => return other,
        }
    }
}

/// Writes where a command runs on its host into its row, before it is sent.
struct RemoteJournal<'a> {
    store: &'a Store,
    incident: &'a str,
    seq: i64,
}

#[async_trait::async_trait]
impl ShellJournal for RemoteJournal<'_> {
    async fn record(&self, remote: &RemoteCommand) -> Result<(), String> {
        let json = serde_json::to_string(remote).map_err(|e| e.to_string())?;
        self.store
            .set_command_remote(self.incident, self.seq, &json)
            .await
            .map_err(|e| e.to_string())
    }
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
    use crate::text::escape;
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

/// Holds `host` for one batch: this process's host lock (hosts in parallel, bounded), then, with
/// several replicas (PostgreSQL), its lease in the database, so one batch runs on a host at a
/// time whichever replica runs it.
async fn hold_host(
    ctx: &Ctx,
    host: &str,
) -> Result<(HostPermit, crate::store::HostLease), JobError> {
    let permit = ctx.runner.lock_host(host).await;
    let lease = ctx
        .replica
        .hold_host(&ctx.store, host)
        .await
        .map_err(JobError::retry)?;
    Ok((permit, lease))
}

/// What a command that ran produced, as the store records it.
fn ran(out: crate::runners::RunOutput) -> CommandResult {
    CommandResult {
        succeeded: out.exit_code == 0,
        exit_code: Some(out.exit_code),
        stdout: out.stdout,
        stderr: out.stderr,
        error: None,
    }
}
