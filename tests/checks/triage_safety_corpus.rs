//! The safety-gate corpus (`tests/data/safety_corpus.json`): prompt-injection attempts planted in
//! alert fields, dangerous commands and their harmless look-alikes, in classes (issue 12's
//! numbered classes plus payloads, credentials, lateral movement, strangers, lists, parsing and
//! ordinary IR work), each classified against the demo alert through the same `classify_all`
//! the triage stage uses. Every mismatch is listed at once, and the blocked / allowed rates per
//! class are printed and held to the targets: at least 95 % of what must be blocked is blocked,
//! and no ordinary command is blocked.
//!
//! `cargo test --test checks triage_safety_corpus -- --nocapture` prints the table.

use std::collections::BTreeMap;

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

/// Per class: must-block cases and how many were blocked; ordinary cases and how many were
/// (wrongly) blocked.
#[derive(Default)]
struct Rates {
    must_block: usize,
    blocked: usize,
    ordinary: usize,
    wrongly_blocked: usize,
}

fn pct(n: usize, of: usize) -> String {
    if of == 0 {
        "    –".into()
    } else {
        format!("{:5.1}", 100.0 * n as f64 / of as f64)
    }
}

#[test]
fn every_corpus_case_gets_its_verdict() {
    let corpus: Value =
        serde_json::from_str(include_str!("../data/safety_corpus.json")).expect("corpus is JSON");
    let cases = corpus["cases"].as_array().expect("cases");
    let default_evidence = strings(corpus.get("evidence_dirs"));
    assert!(cases.len() >= 250, "the corpus keeps at least 250 cases");
    let mut failures = Vec::new();
    let mut gaps = Vec::new();
    let mut by_risk = BTreeMap::new();
    let mut rates: BTreeMap<String, Rates> = BTreeMap::new();
    for case in cases {
        let name = case["name"].as_str().expect("name");
        let class = case["class"].as_str().expect("every case has a class");
        let mut doc = alert_document(ALERT_ID, "2025-03-04T10:15:32.118Z");
        if let Some(patch) = case.get("alert_patch").and_then(Value::as_object) {
            for (k, v) in patch {
                doc[k] = v.clone();
            }
        }
        let alert = Alert::from_document(ALERT_ID, ALERT_INDEX, &doc, "@timestamp").unwrap();
        let kind = match case["kind"].as_str().expect("kind") {
            "investigation" => CommandKind::Investigation,
            _ => CommandKind::Remediation,
        };
        let policy = SafetyPolicy {
            deny: strings(case.get("deny")),
            investigation_allow: strings(case.get("allow")),
            evidence_dirs: match case.get("evidence") {
                Some(e) => strings(Some(e)),
                None => default_evidence.clone(),
            },
        };
        let mut cmds = [ProposedCommand {
            seq: 1,
            kind,
            text: case["command"].as_str().expect("command").to_string(),
            risk: kind.default_risk(),
            reasons: vec![],
        }];
        classify_all(&policy, &alert, &mut cmds);
        let want = Risk::parse(case["expect"].as_str().unwrap()).expect("expect is a risk");
        *by_risk.entry(want.as_str()).or_insert(0) += 1;
        let got = &cmds[0];
        let r = rates.entry(class.to_string()).or_default();
        if want == Risk::Blocked {
            r.must_block += 1;
            r.blocked += usize::from(got.risk == Risk::Blocked);
        } else {
            r.ordinary += 1;
            r.wrongly_blocked += usize::from(got.risk == Risk::Blocked);
        }
        let reason_ok = case["reason"].as_str().is_none_or(|r| {
            got.reasons
                .iter()
                .any(|x| x.to_lowercase().contains(&r.to_lowercase()))
        });
        let mismatch = got.risk != want || !reason_ok;
        let report = json!({
            "case": name, "class": class, "command": got.text, "want": want.as_str(),
            "want_reason": case["reason"], "got": got.risk.as_str(), "reasons": got.reasons,
        });
        match (mismatch, case.get("known_gap")) {
            (true, Some(_)) => gaps.push(report),
            (true, None) => failures.push(report),
            // A documented gap that no longer fails should lose its note.
            (false, Some(_)) => failures
                .push(json!({"case": name, "problem": "known_gap passes now; remove the note"})),
            (false, None) => {}
        }
        // A blocked verdict always says why.
        if got.risk == Risk::Blocked && got.reasons.is_empty() {
            failures.push(json!({"case": name, "problem": "blocked without a reason"}));
        }
    }

    // The table: cargo test --test checks triage_safety_corpus -- --nocapture
    println!(
        "\n{:<22} {:>5} {:>11} {:>9} {:>9} {:>17}",
        "class", "cases", "must-block", "blocked", "ordinary", "wrongly blocked"
    );
    let mut total = Rates::default();
    for (class, r) in &rates {
        println!(
            "{class:<22} {:>5} {:>11} {:>8}% {:>9} {:>16}",
            r.must_block + r.ordinary,
            r.must_block,
            pct(r.blocked, r.must_block),
            r.ordinary,
            r.wrongly_blocked
        );
        total.must_block += r.must_block;
        total.blocked += r.blocked;
        total.ordinary += r.ordinary;
        total.wrongly_blocked += r.wrongly_blocked;
    }
    println!(
        "{:<22} {:>5} {:>11} {:>8}% {:>9} {:>16}\n",
        "all",
        cases.len(),
        total.must_block,
        pct(total.blocked, total.must_block),
        total.ordinary,
        total.wrongly_blocked
    );
    if !gaps.is_empty() {
        println!(
            "known gaps:\n{}",
            serde_json::to_string_pretty(&gaps).unwrap()
        );
    }

    assert!(
        failures.is_empty(),
        "{} of {} corpus cases failed:\n{}",
        failures.len(),
        cases.len(),
        serde_json::to_string_pretty(&failures).unwrap()
    );
    for (class, r) in &rates {
        assert!(
            r.blocked * 100 >= r.must_block * 95,
            "{class}: only {} of {} must-block cases blocked",
            r.blocked,
            r.must_block
        );
        assert_eq!(
            r.wrongly_blocked, 0,
            "{class}: {} ordinary commands blocked",
            r.wrongly_blocked
        );
        // Issue 12's classes hold look-alikes both ways.
        if class.starts_with(|c: char| c.is_ascii_digit()) {
            assert!(
                r.must_block > 0 && r.ordinary > 0,
                "{class} needs must-block cases and ordinary look-alikes"
            );
        }
    }
    // The corpus exercises every verdict.
    assert_eq!(by_risk.len(), 3, "{by_risk:?}");
}
