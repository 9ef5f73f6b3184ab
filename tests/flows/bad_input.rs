//! Bad input, from the corpus in `tests/data/bad/` (written by its `generate.py`): alert
//! documents with missing, mistyped, huge, deep or hostile fields; assistant answers with no
//! commands, hundreds of them, or garbage; forged, stale, malformed and oversized Slack
//! requests. None panics, none gets a 5xx, each is accounted for (rejected with a reason, or an
//! incident that settles with a card or a failure notice Slack accepts), and the service keeps
//! working for the next good alert and the next real click.

use std::path::PathBuf;

use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

use crate::common::*;

fn corpus(folder: &str) -> Vec<(String, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/bad")
        .join(folder);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let name = p.file_stem().unwrap().to_string_lossy().into_owned();
            (name, expand(&std::fs::read(&p).unwrap()))
        })
        .collect()
}

/// Expands `@@REPEAT <char> <count>@@` markers: the corpus keeps megabyte inputs small in git.
fn expand(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut rest = bytes;
    while let Some(at) = find(rest, b"@@REPEAT ") {
        out.extend_from_slice(&rest[..at]);
        let tail = &rest[at + 9..];
        let end = find(tail, b"@@").expect("a closed marker");
        let spec = std::str::from_utf8(&tail[..end]).unwrap();
        let (ch, n) = spec.split_once(' ').unwrap();
        out.extend(std::iter::repeat_n(ch.as_bytes()[0], n.parse().unwrap()));
        rest = &tail[end + 2..];
    }
    out.extend_from_slice(rest);
    out
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[tokio::test]
async fn bad_alerts_and_bad_answers_are_each_accounted_for_and_the_good_alert_still_goes_through() {
    let world = World::start().await.unwrap();
    let alerts = corpus("alerts");
    let answers = corpus("answers");
    assert!(alerts.len() >= 30 && answers.len() >= 25);

    // Each bad alert document is stored as Elasticsearch would return it (its source byte for
    // byte); what the poll matches on is a plain alert of the same id and time.
    let now = chrono::Utc::now().to_rfc3339();
    for (name, raw) in &alerts {
        let id = format!("doc-{name}");
        let raw = String::from_utf8(raw.clone()).expect("alerts are UTF-8 JSON text");
        world.es.index_raw(
            ALERT_INDEX,
            &id,
            triage_bot::samples::alert_document(&id, &now),
            &raw,
        );
    }
    // One alert per bad answer; the assistant gives each its answer.
    let mut by_alert = std::collections::HashMap::new();
    for (i, (name, answer)) in answers.iter().enumerate() {
        let id = format!("bad-answer-{i:02}");
        let mut doc = triage_bot::samples::alert_document(&id, &now);
        doc["kibana.alert.rule.name"] = json!(format!("Bad answer {name}"));
        doc["kibana.alert.rule.rule_id"] = json!(format!("bad-answer-rule-{i:02}"));
        world.es.index_doc(ALERT_INDEX, &id, doc);
        by_alert.insert(id, String::from_utf8_lossy(answer).into_owned());
    }
    let good = triage_bot::samples::triage_answer();
    world.kibana.set_responder(move |call| {
        if call.last_user_content.starts_with("Who handles") {
            return format!("{}.", triage_bot::samples::HANDLER_NAME);
        }
        by_alert
            .iter()
            .find(|(id, _)| call.last_user_content.contains(id.as_str()))
            .map(|(_, a)| a.clone())
            .unwrap_or_else(|| good.clone())
    });

    let app = world
        .start_app_with(&[("POLICY_GROUP_WINDOW_SECS", "0")])
        .await
        .unwrap();
    // Every document is either rejected with a reason or an incident; every incident settles.
    let expected = alerts.len() + answers.len() + 1;
    let deadline = tokio::time::Instant::now() + T * 3;
    loop {
        let rejected = app.ctx.store.rejections().await.unwrap().len();
        let incidents = app.ctx.store.incidents().await.unwrap();
        let settled = incidents
            .iter()
            .all(|i| !matches!(i.state, IncidentState::Received | IncidentState::Triaging));
        if rejected + incidents.len() >= expected
            && settled
            && app.ctx.store.unfinished_jobs().await.unwrap() == 0
        {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{rejected} rejected + {} incidents of {expected}; states {:?}",
            incidents.len(),
            incidents.iter().map(|i| i.state).collect::<Vec<_>>()
        );
        triage_bot::demo::wait_until_settled(&app, T * 6)
            .await
            .unwrap();
    }
    let rejections = app.ctx.store.rejections().await.unwrap();
    for (id, reason) in &rejections {
        assert!(
            !reason.trim().is_empty(),
            "{id} was rejected without a reason"
        );
    }
    let incidents = app.ctx.store.incidents().await.unwrap();
    assert_eq!(rejections.len() + incidents.len(), expected, "nothing lost");
    println!(
        "{} bad alerts: {} rejected with a reason, the rest triaged; {} bad answers",
        alerts.len(),
        rejections.len(),
        answers.len()
    );

    // Each incident has its card or its failure notice in Slack, and the good one its card.
    let tops = top_level(&world);
    for i in &incidents {
        let i = app.ctx.store.incident(&i.id).await.unwrap().unwrap();
        assert!(
            i.slack_ts.is_some(),
            "{} ({}) never reached Slack: {:?}",
            i.id,
            i.state,
            i.error
        );
        assert!(
            matches!(
                i.state,
                IncidentState::AwaitingApproval | IncidentState::TriageFailed
            ),
            "{} is {}",
            i.id,
            i.state
        );
    }
    assert_eq!(tops.len(), incidents.len());
    let good_incident = incidents
        .iter()
        .find(|i| i.alert_id == ALERT_ID)
        .expect("the good alert");
    assert_eq!(good_incident.state, IncidentState::AwaitingApproval);
    // What Slack and Kibana received passes their independent validators (block limits,
    // lengths, the Cases schema).
    finish(&world, app).await;
}

/// How a corpus request is signed.
fn signed(secret: &str, spec: &Value, body: &[u8]) -> Vec<(String, String)> {
    let now = chrono::Utc::now().timestamp();
    let sign = |ts: &str| {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(format!("v0:{ts}:").as_bytes());
        mac.update(body);
        format!("v0={}", hex::encode(mac.finalize().into_bytes()))
    };
    let pair = |ts: String, sig: String| {
        vec![
            ("x-slack-request-timestamp".to_string(), ts),
            ("x-slack-signature".to_string(), sig),
        ]
    };
    match spec["sign"].as_str().unwrap() {
        "valid" => pair(now.to_string(), sign(&now.to_string())),
        "none" => Vec::new(),
        "wrong" => pair(now.to_string(), format!("v0={}", "0".repeat(64))),
        "stale" => {
            let ts = (now - 600).to_string();
            pair(ts.clone(), sign(&ts))
        }
        "future" => {
            let ts = (now + 600).to_string();
            pair(ts.clone(), sign(&ts))
        }
        "garbage_ts" => pair("soon".into(), sign("soon")),
        "no_prefix" => {
            let s = sign(&now.to_string());
            pair(now.to_string(), s.trim_start_matches("v0=").to_string())
        }
        other => panic!("unknown signing {other}"),
    }
}

#[tokio::test]
async fn forged_stale_malformed_and_oversized_slack_requests_get_a_4xx_and_change_nothing() {
    let world = World::start().await.unwrap();
    let app = world.start_app().await.unwrap();
    wait_for_approval_request(&world).await;
    let http = reqwest::Client::new();
    let requests = corpus("slack");
    assert!(requests.len() >= 30);
    for (name, spec) in &requests {
        let spec: Value = serde_json::from_slice(spec).unwrap();
        let body: Vec<u8> = match (spec["body"].as_str(), spec["body_b64"].as_str()) {
            (Some(b), _) => b.as_bytes().to_vec(),
            (None, Some(b64)) => {
                use base64::Engine as _;
                base64::engine::general_purpose::STANDARD
                    .decode(b64)
                    .unwrap()
            }
            _ => panic!("{name}: no body"),
        };
        let mut req = http
            .post(format!("{}{}", app.url(), spec["path"].as_str().unwrap()))
            .header("content-type", spec["content_type"].as_str().unwrap());
        for (k, v) in signed(SIGNING_SECRET, &spec, &body) {
            req = req.header(k, v);
        }
        let resp = req.body(body).send().await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        assert!(status < 500, "{name}: {status} {text}");
        if let Some(expect) = spec["expect"].as_array() {
            assert!(
                expect.iter().any(|e| e.as_u64() == Some(status as u64)),
                "{name}: {status} (expected {expect:?}) {text}"
            );
        }
    }
    // Nothing was decided by any of them, and the real click still works.
    let incident = app.ctx.store.incidents().await.unwrap().remove(0);
    assert_eq!(incident.state, IncidentState::AwaitingApproval);
    assert!(incident.decision.is_none());
    let (status, _) = world.click(&app, HANDLER_ID, ACTION_APPROVE).await.unwrap();
    assert_eq!(status, 200);
    wait_for_state(&app, IncidentState::Executed, T)
        .await
        .unwrap();
    finish(&world, app).await;
}
