//! [`Triage`]: what the assistant's answer means once parsed — a summary and the two command lists.

use serde::{Deserialize, Serialize};

use super::incident::{CommandKind, ProposedCommand};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Triage {
    pub summary: String,
    pub investigation: Vec<String>,
    pub remediation: Vec<String>,
    /// Things the parser noticed (a missing section, an empty list) that a human should know.
    pub warnings: Vec<String>,
}

impl Triage {
    /// True when there is nothing to offer for approval.
    pub fn is_empty(&self) -> bool {
        self.investigation.is_empty() && self.remediation.is_empty()
    }

    /// The commands in the order they run: investigation first, then remediation.
    pub fn commands(&self) -> Vec<ProposedCommand> {
        let inv = self
            .investigation
            .iter()
            .map(|c| (CommandKind::Investigation, c));
        let rem = self
            .remediation
            .iter()
            .map(|c| (CommandKind::Remediation, c));
        inv.chain(rem)
            .enumerate()
            .map(|(i, (kind, text))| ProposedCommand {
                seq: i as i64 + 1,
                kind,
                text: text.clone(),
                risk: kind.default_risk(),
                reasons: Vec::new(),
            })
            .collect()
    }
}
