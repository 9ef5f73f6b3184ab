//! Who handles an incident: the person or user group tagged in Slack and authorised to decide.

use crate::text::escape;

/// Who is tagged: a Slack mention when the id is known, else the plain (escaped) name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandlerTag {
    pub slack_id: Option<String>,
    pub name: Option<String>,
}

impl HandlerTag {
    pub fn mention(&self) -> String {
        match (&self.slack_id, &self.name) {
            // A user-group id (S…, e.g. the fallback group) is mentioned as a subteam.
            (Some(id), _) if id.starts_with('S') => format!("<!subteam^{id}>"),
            (Some(id), _) => format!("<@{id}>"),
            (None, Some(name)) => escape(name),
            (None, None) => "unassigned".to_string(),
        }
    }
}
