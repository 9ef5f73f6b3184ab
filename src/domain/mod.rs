//! Pure domain types: alerts, incidents and their state machine, triage results, commands and
//! decisions. No I/O here; wire formats are converted into these types at the client edges.

pub mod alert;
pub mod incident;
pub mod triage;

pub use alert::{Alert, AlertId, Severity};
pub use incident::{CommandKind, Decision, IncidentId, IncidentState, ProposedCommand, Risk};
pub use triage::Triage;
