//! Fuzzes the safety gate: the first line is put into an alert field (attacker-controlled), the
//! rest is the proposed command; classification must never panic and a blocked verdict must
//! always carry a reason.
#![no_main]

use libfuzzer_sys::fuzz_target;
use triage_bot::domain::{Alert, CommandKind, ProposedCommand, Risk};
use triage_bot::pipeline::triage::safety::{SafetyPolicy, classify_all};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (field, command) = text.split_once('\n').unwrap_or(("", &text));
    let raw = serde_json::json!({
        "@timestamp": "2025-01-01T00:00:00Z", "kibana.alert.uuid": "a",
        "kibana.alert.rule.name": "R", "host": {"name": "WS1", "ip": ["10.0.0.1"]},
        "process": {"command_line": field},
    });
    let Ok(alert) = Alert::from_document("a", "i", &raw, "@timestamp") else {
        return;
    };
    for kind in [CommandKind::Investigation, CommandKind::Remediation] {
        let mut cmds = [ProposedCommand {
            seq: 1,
            kind,
            text: command.to_string(),
            risk: kind.default_risk(),
            reasons: vec![],
        }];
        classify_all(&SafetyPolicy::default(), &alert, &mut cmds);
        assert!(cmds[0].risk != Risk::Blocked || !cmds[0].reasons.is_empty());
    }
});
