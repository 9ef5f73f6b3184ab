//! Bad input, from the corpus in `tests/data/bad/` (written by its `generate.py`): alert
//! documents with missing, mistyped, huge, deep or hostile fields; assistant answers with no
//! commands, hundreds of them, or garbage; forged, stale, malformed and oversized Slack
//! requests. None panics, none gets a 5xx, each is accounted for (rejected with a reason, or an
//! incident that settles with a card or a failure notice Slack accepts), and the service keeps
//! working for the next good alert and the next real click.

use std::path::PathBuf;

use hmac::{Hmac, Mac};
use serde_json::Value;
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
