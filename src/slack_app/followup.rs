//! Follow-up questions from the Slack thread, answered in the incident's AI conversation, with
//! the question and answer posted to the thread and recorded in the case.

use crate::app::Ctx;
use crate::store::{IncidentRow, Job};
use crate::workers::JobError;

pub async fn answer(
    ctx: &Ctx,
    incident: &IncidentRow,
    question: &str,
    user: &str,
) -> Result<(), JobError> {
    let alert = incident.alert().map_err(JobError::permanent)?;
    let prompt = ctx
        .prompts
        .followup(&alert, question)
        .map_err(JobError::permanent)?;
    let reply = ctx
        .assistant
        .ask(&prompt, incident.conversation_id.as_deref())
        .await
        .map_err(JobError::from_client)?;
    let text = reply.text.trim().to_string();
    ctx.store
        .enqueue(
            &incident.id,
            &Job::ThreadReply {
                text: format!(
                    "<@{user}> asked: {}\n\n{}",
                    super::blocks::escape(question),
                    super::blocks::escape(&text)
                ),
            },
        )
        .await
        .map_err(JobError::retry)?;
    ctx.store
        .enqueue(
            &incident.id,
            &Job::CaseComment {
                text: format!(
                    "**Question from Slack user {user}:** {question}\n\n**AI assistant:** {text}"
                ),
            },
        )
        .await
        .map_err(JobError::retry)?;
    Ok(())
}
