//! The incident: the unit of work, and its persisted state machine.
//!
//! ```text
//! received → triaging → awaiting_approval → approved → executing → executed → closed
//!               │               │                          │
//!               ▼               ├──► declined              ▼
//!         triage_failed         ├──► expired        execution_failed / interrupted
//!                               └──► superseded (by a revision the analyst asked for)
//! ```
//! [`IncidentState::can_move_to`] is the single definition of which moves are legal; the store
//! refuses any other move, so a stale worker or a double click cannot rewind an incident.

use std::fmt;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct IncidentId(pub String);

impl IncidentId {
    pub fn new() -> Self {
        Self(uuid::Uuid::new_v4().to_string())
    }
}

impl Default for IncidentId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for IncidentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IncidentState {
    Received,
    Triaging,
    TriageFailed,
    AwaitingApproval,
    Approved,
    Declined,
    Expired,
    Executing,
    Executed,
    ExecutionFailed,
    Interrupted,
    /// Replaced by a revised proposal an analyst asked for; it can no longer be approved.
    Superseded,
    Closed,
}

impl IncidentState {
    pub const ALL: [IncidentState; 13] = [
        Self::Received,
        Self::Triaging,
        Self::TriageFailed,
        Self::AwaitingApproval,
        Self::Approved,
        Self::Declined,
        Self::Expired,
        Self::Executing,
        Self::Executed,
        Self::ExecutionFailed,
        Self::Interrupted,
        Self::Superseded,
        Self::Closed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Received => "received",
            Self::Triaging => "triaging",
            Self::TriageFailed => "triage_failed",
            Self::AwaitingApproval => "awaiting_approval",
            Self::Approved => "approved",
            Self::Declined => "declined",
            Self::Expired => "expired",
            Self::Executing => "executing",
            Self::Executed => "executed",
            Self::ExecutionFailed => "execution_failed",
            Self::Interrupted => "interrupted",
            Self::Superseded => "superseded",
            Self::Closed => "closed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// The legal moves of the state machine.
    pub fn can_move_to(self, next: IncidentState) -> bool {
        use IncidentState::*;
        matches!(
            (self, next),
            (Received, Triaging)
                | (Triaging, AwaitingApproval)
                | (Triaging, TriageFailed)
                | (AwaitingApproval, Approved)
                | (AwaitingApproval, Declined)
                | (AwaitingApproval, Expired)
                | (AwaitingApproval, Superseded)
                | (Approved, Executing)
                | (Executing, Executed)
                | (Executing, ExecutionFailed)
                | (Executing, Interrupted)
                | (Interrupted, AwaitingApproval)
                | (Executed, Closed)
                | (Declined, Closed)
                | (Expired, Closed)
                | (Superseded, Closed)
                | (TriageFailed, Closed)
                | (ExecutionFailed, Closed)
        )
    }
}

impl fmt::Display for IncidentState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CommandKind {
    Investigation,
    Remediation,
}

impl CommandKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Investigation => "investigation",
            Self::Remediation => "remediation",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "investigation" => Some(Self::Investigation),
            "remediation" => Some(Self::Remediation),
            _ => None,
        }
    }

    /// The risk a command of this kind has before the safety gate looks at its text.
    pub fn default_risk(self) -> Risk {
        match self {
            Self::Investigation => Risk::ReadOnly,
            Self::Remediation => Risk::ChangesState,
        }
    }
}

/// What running a command may do, as judged by the safety gate (`triage::safety`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Risk {
    /// Reads state only.
    ReadOnly,
    /// Changes state on the host.
    ChangesState,
    /// Must never run, whatever anyone clicks.
    Blocked,
}

impl Risk {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ReadOnly => "read_only",
            Self::ChangesState => "changes_state",
            Self::Blocked => "blocked",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "read_only" => Some(Self::ReadOnly),
            "changes_state" => Some(Self::ChangesState),
            "blocked" => Some(Self::Blocked),
            _ => None,
        }
    }

    /// The label shown next to a command in Slack and in the case.
    pub fn label(self) -> &'static str {
        match self {
            Self::ReadOnly => "read-only",
            Self::ChangesState => "changes state",
            Self::Blocked => "BLOCKED",
        }
    }
}

/// Where one command is in its run: `proposed → running → succeeded | failed`, or `running →
/// interrupted` when the process died mid-run (never re-run without a fresh approval), or
/// `proposed → skipped | blocked` when it was not approved, the batch stopped early, or the
/// safety gate blocked it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CommandStatus {
    Proposed,
    Running,
    Succeeded,
    Failed,
    Blocked,
    Interrupted,
    Skipped,
}

impl CommandStatus {
    pub const ALL: [CommandStatus; 7] = [
        Self::Proposed,
        Self::Running,
        Self::Succeeded,
        Self::Failed,
        Self::Blocked,
        Self::Interrupted,
        Self::Skipped,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Proposed => "proposed",
            Self::Running => "running",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Blocked => "blocked",
            Self::Interrupted => "interrupted",
            Self::Skipped => "skipped",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|st| st.as_str() == s)
    }
}

impl fmt::Display for CommandStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A stored name that is none of an enum's (a database written by hand or by a newer version).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} {name:?}")]
pub struct UnknownName {
    pub what: &'static str,
    pub name: String,
}

/// Stored rows carry these enums by name; decoding goes through `TryFrom<String>` so a row is
/// typed once, at the store's edge, and never compared as a string.
macro_rules! decode_by_name {
    ($($ty:ty => $what:literal),* $(,)?) => {$(
        impl TryFrom<String> for $ty {
            type Error = UnknownName;

            fn try_from(name: String) -> Result<Self, Self::Error> {
                Self::parse(&name).ok_or(UnknownName { what: $what, name })
            }
        }
    )*};
}

impl fmt::Display for CommandKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for Risk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

decode_by_name! {
    IncidentState => "incident state",
    CommandKind => "command kind",
    CommandStatus => "command status",
    Risk => "risk",
}

/// One command the assistant proposed, in the order it will run, with the safety verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProposedCommand {
    pub seq: i64,
    pub kind: CommandKind,
    pub text: String,
    pub risk: Risk,
    /// Why the safety gate judged it so (empty for an ordinary command).
    pub reasons: Vec<String>,
}

impl ProposedCommand {
    pub fn may_run(&self) -> bool {
        self.risk != Risk::Blocked
    }
}

/// What an authorised approver chose.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    /// Run every allowed command.
    Approve,
    /// Run only the allowed investigation (read-only) commands.
    ApproveInvestigation,
    Decline,
}

impl Decision {
    /// The recorded decision (`approved` for both approvals; the scope is kept apart).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Approve | Self::ApproveInvestigation => "approved",
            Self::Decline => "declined",
        }
    }

    pub fn scope(self) -> Option<&'static str> {
        match self {
            Self::Approve => Some("all"),
            Self::ApproveInvestigation => Some("investigation"),
            Self::Decline => None,
        }
    }
}

/// The binding between an approval and what it approves: the incident, the target host and the
/// exact command list. Carried in the button value; a click whose hash differs approves nothing.
pub fn approval_hash(incident: &IncidentId, host: &str, commands: &[ProposedCommand]) -> String {
    let mut h = Sha256::new();
    h.update(incident.0.as_bytes());
    h.update([0]);
    h.update(host.as_bytes());
    for c in commands {
        h.update([0]);
        h.update(c.kind.as_str().as_bytes());
        h.update([1]);
        h.update(c.text.as_bytes());
    }
    hex::encode(&h.finalize()[..16])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_names_round_trip() {
        for s in IncidentState::ALL {
            assert_eq!(IncidentState::parse(s.as_str()), Some(s));
        }
        assert_eq!(IncidentState::parse("bogus"), None);
    }

    #[test]
    fn decisions_only_from_awaiting_approval() {
        use IncidentState::*;
        assert!(AwaitingApproval.can_move_to(Approved));
        assert!(!Approved.can_move_to(Approved));
        assert!(!Declined.can_move_to(Approved));
        assert!(!Executed.can_move_to(Executing));
        assert!(!Closed.can_move_to(Received));
    }

    #[test]
    fn approval_hash_binds_host_and_commands() {
        let id = IncidentId("i1".into());
        let cmds = vec![ProposedCommand {
            seq: 1,
            kind: CommandKind::Investigation,
            text: "Get-Process".into(),
            risk: Risk::ReadOnly,
            reasons: vec![],
        }];
        let h = approval_hash(&id, "WS1", &cmds);
        assert_eq!(h, approval_hash(&id, "WS1", &cmds));
        assert_ne!(h, approval_hash(&id, "WS2", &cmds));
        let mut other = cmds.clone();
        other[0].text = "Get-Process; Stop-Computer".into();
        assert_ne!(h, approval_hash(&id, "WS1", &other));
    }
}
