//! "Isolate host": an approver's click, carried out through Elastic Defend once the approval
//! stage has admitted it, and reported in the thread and the case.

use serde_json::json;

use crate::clients::kibana::KibanaHttp;
use crate::clients::kibana::endpoint::EndpointClient;
use crate::pipeline::{Ctx, JobError};
use crate::runners::{DefendRunner, Target};
use crate::store::{IncidentRow, Job, Store, outbox};

/// Isolates the incident's host through Elastic Defend and waits for the agent to confirm;
/// records the outcome in the audit trail, the Slack thread and the case. For the Slack side's
/// "Isolate host" button (after its own authorisation check, like Yes/No). Retryable failures
/// (Kibana unreachable) come back as [`JobError::retry`]; isolation is idempotent on the agent.
pub async fn isolate(ctx: &Ctx, incident: &IncidentRow) -> Result<(), JobError> {
    let target = Target::of_incident(incident);
    let Some(agent) = target.agent_id.clone() else {
        return Err(JobError::permanent(
            "the alert carries no Elastic Defend agent id; the host cannot be isolated",
        ));
    };
    let http = KibanaHttp::new(&ctx.settings.kibana).map_err(JobError::permanent)?;
    let client = EndpointClient::new(http);
    let req = DefendRunner::request(
        &target,
        &agent,
        &format!("Isolated by triage-bot for incident {}", incident.id),
    );
    let created = client.isolate(req).await.map_err(|e| {
        if crate::clients::Retryable::is_retryable(&e) {
            JobError::retry(format!("isolate: {e}"))
        } else {
            JobError::permanent(format!("isolate: {e}"))
        }
    })?;
    let defend = &ctx.settings.runner.defend;
    let done = client
        .wait(
            &created.id,
            defend.poll_interval,
            defend.execute_timeout + crate::runners::defend::WAIT_MARGIN,
        )
        .await;
    let (ok, detail) = match &done {
        Ok(d) if d.was_successful => (true, format!("action {} completed", d.id)),
        Ok(d) => (
            false,
            format!(
                "action {} did not succeed: {}",
                d.id,
                d.errors.clone().unwrap_or_default().join("; ")
            ),
        ),
        Err(e) => (false, e.to_string()),
    };
    let host = crate::text::escape(&incident.host_name);
    let mut tx = ctx.store.write_tx().await.map_err(JobError::retry)?;
    Store::audit(
        &mut tx,
        &incident.id,
        "triage-bot",
        "HostIsolation",
        json!({"host": incident.host_name, "agent_id": agent, "action_id": created.id, "succeeded": ok, "detail": detail}),
    )
    .await
    .map_err(JobError::retry)?;
    let text = if ok {
        format!(":no_entry: {host} is isolated from the network (Elastic Defend {detail}).")
    } else {
        format!(":warning: Isolating {host} failed: {detail}.")
    };
    outbox::enqueue(
        &mut tx,
        &incident.id,
        &Job::ThreadReply { text: text.clone() },
    )
    .await
    .map_err(JobError::retry)?;
    outbox::enqueue(&mut tx, &incident.id, &Job::CaseComment { text })
        .await
        .map_err(JobError::retry)?;
    tx.commit().await.map_err(JobError::retry)?;
    ctx.wake.notify_waiters();
    if ok {
        Ok(())
    } else {
        Err(JobError::permanent(format!("isolation failed: {detail}")))
    }
}
