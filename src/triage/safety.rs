//! The safety gate: every proposed command is untrusted input (the alert that the assistant read
//! is attacker-controlled), so each is classified before anyone sees a button — read-only,
//! changes state, or blocked (never runs) — with the reasons.

use crate::domain::{Alert, ProposedCommand};

/// Classifies the commands of a triage in place.
pub fn classify_all(alert: &Alert, commands: &mut [ProposedCommand]) {
    for c in commands.iter_mut() {
        let (risk, reasons) = classify(alert, c);
        c.risk = risk;
        c.reasons = reasons;
    }
}

/// The verdict on one command. For now the risk follows the command's section; the full gate
/// (deny list, download cradles, encoded payloads, alert-consistency checks) refines it.
pub fn classify(_alert: &Alert, command: &ProposedCommand) -> (crate::domain::Risk, Vec<String>) {
    (command.kind.default_risk(), Vec::new())
}
