//! Pure domain types: alerts, incidents and their state machine, triage results, commands and
//! decisions. No I/O here; wire formats are converted into these types at the client edges.

pub mod alert;
pub mod handler;
pub mod incident;
pub mod triage;

pub use alert::{Alert, AlertId, Severity};
pub use handler::HandlerTag;
pub use incident::{
    CommandKind, CommandStatus, Decision, IncidentId, IncidentState, ProposedCommand, Risk,
    UnknownName,
};
pub use triage::Triage;
