//! The safety-gate corpus (`tests/data/safety_corpus.json`): prompt-injection attempts planted in
//! alert fields, dangerous commands and harmless look-alikes, each classified against the demo
//! alert through the same `classify_all` the triage stage uses. Every mismatch is listed at once.

use serde_json::{Value, json};
use triage_bot::demo::{ALERT_ID, ALERT_INDEX, alert_document};
use triage_bot::domain::{Alert, CommandKind, ProposedCommand, Risk};
use triage_bot::pipeline::triage::safety::{SafetyPolicy, classify_all};

fn strings(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn every_corpus_case_gets_its_verdict() {
    let corpus: Value =
        serde_json::from_str(include_str!("../data/safety_corpus.json")).expect("corpus is JSON");
    let cases = corpus["cases"].as_array().expect("cases");
    assert!(cases.len() >= 40, "the corpus keeps at least 40 cases");
    let mut failures = Vec::new();
    let mut by_risk = std::collections::BTreeMap::new();
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let mut doc = alert_document(ALERT_ID, "2025-03-04T10:15:32.118Z");
        if let Some(patch) = case.get("alert_patch").and_then(Value::as_object) {
            for (k, v) in patch {
                doc[k] = v.clone();
            }
        }
        let alert = Alert::from_document(ALERT_ID, ALERT_INDEX, &doc, "@timestamp").unwrap();
        let kind = match case["kind"].as_str().unwrap() {
            "investigation" => CommandKind::Investigation,
            _ => CommandKind::Remediation,
        };
        let policy = SafetyPolicy {
            deny: strings(case.get("deny")),
            investigation_allow: strings(case.get("allow")),
        };
        let mut cmds = [ProposedCommand {
            seq: 1,
            kind,
            text: case["command"].as_str().unwrap().to_string(),
            risk: kind.default_risk(),
            reasons: vec![],
        }];
        classify_all(&policy, &alert, &mut cmds);
        let want = Risk::parse(case["expect"].as_str().unwrap()).expect("expect is a risk");
        *by_risk.entry(want.as_str()).or_insert(0) += 1;
        let got = &cmds[0];
        let reason_ok = case["reason"].as_str().is_none_or(|r| {
            got.reasons
                .iter()
                .any(|x| x.to_lowercase().contains(&r.to_lowercase()))
        });
        if got.risk != want || !reason_ok {
            failures.push(json!({
                "case": name, "command": got.text, "want": want.as_str(),
                "want_reason": case["reason"], "got": got.risk.as_str(), "reasons": got.reasons,
            }));
        }
        // A blocked verdict always says why.
        if got.risk == Risk::Blocked && got.reasons.is_empty() {
            failures.push(json!({"case": name, "problem": "blocked without a reason"}));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} corpus cases failed:\n{}",
        failures.len(),
        cases.len(),
        serde_json::to_string_pretty(&failures).unwrap()
    );
    // The corpus exercises every verdict.
    assert_eq!(by_risk.len(), 3, "{by_risk:?}");
}
