//! The policies against a real database: what `admit` records and queues for group, digest,
//! throttle, snooze and maintenance-window policies as the clock moves. The database tests use
//! a manual clock (the pool's own timers would make a paused tokio clock jump); the tokio clock
//! itself is tested with paused time.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::json;

use super::*;
use crate::store::Store;

const FILE: &str = r#"
[[policy]]
name = "scan"
match = 'host.name: scan-*'
notify = "digest"
window = "15m"
route = { channel = "C0DIGEST" }

[[policy]]
name = "web"
match = 'host.name: web-*'
notify = "group"
group_by = ["host.name"]
window = "1h"

[[policy]]
name = "db"
match = 'host.name: db-*'
notify = "group"
group_by = ["host.name"]
window = "1h"
frequency = "throttle"
every = "10m"
[policy.route]
channel = "C0DBA"
offer = "summary"

[[maintenance]]
name = "patch"
match = 'host.name: web-09'
start = "2026-12-07T09:30:00Z"
end = "2026-12-07T10:00:00Z"
"#;

fn t0() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-12-07T09:00:00Z")
        .unwrap()
        .with_timezone(&Utc)
}

struct Bed {
    store: Store,
    engine: Engine,
    _dir: tempfile::TempDir,
}

async fn bed() -> Bed {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("t.db").display());
    let store = Store::connect(&url).await.unwrap();
    let engine = Engine::new(Policies::parse("t", FILE).unwrap()).with_clock(Clock::manual(t0()));
    Bed {
        store,
        engine,
        _dir: dir,
    }
}

fn alert(id: &str, host: &str, extra: serde_json::Value) -> Alert {
    let mut doc = crate::samples::alert_document(id, "2026-12-07T09:00:00Z");
    doc["host"] = json!({"name": host});
    for (k, v) in extra.as_object().unwrap() {
        doc[k] = v.clone();
    }
    Alert::from_document(id, "idx", &doc, "@timestamp").unwrap()
}

impl Bed {
    async fn admit(&self, a: &Alert) -> Admitted {
        admit(&self.store, &self.engine, "src", a).await.unwrap()
    }

    fn advance(&self, minutes: u64) {
        self.engine.clock.advance(Duration::from_secs(minutes * 60));
    }

    /// Every queued job's kind, in order (claimed, so each is seen once).
    async fn jobs(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        while let Some(row) = self.store.claim_next().await.unwrap() {
            self.store.complete(row.id).await.unwrap();
            out.push((row.incident_id, row.kind));
        }
        out
    }

    async fn outcome(&self, alert_id: &str) -> (String, String) {
        let rows = self.store.outcomes_for_alert(alert_id).await.unwrap();
        let last = rows.last().expect("an outcome is recorded");
        (last.outcome.clone(), last.reason.clone())
    }
}

fn kinds(jobs: &[(String, String)]) -> Vec<&str> {
    jobs.iter().map(|(_, k)| k.as_str()).collect()
}

#[tokio::test]
async fn a_group_policy_notifies_once_per_window_and_again_on_recovery() {
    let b = bed().await;
    let first = b.admit(&alert("w1", "web-01", json!({}))).await;
    let Admitted::New(inc) = first else {
        panic!("{first:?}")
    };
    assert_eq!(kinds(&b.jobs().await), ["triage"]);
    for i in 2..=50 {
        b.advance(1);
        let a = alert(&format!("w{i}"), "web-01", json!({}));
        assert_eq!(b.admit(&a).await, Admitted::Grouped(inc.clone()));
    }
    // 49 alerts joined, no Slack note: one waiting attach job takes them all to the case.
    let jobs = b.jobs().await;
    assert_eq!(kinds(&jobs), ["attach_alert"]);
    let waiting = b.store.unattached_grouped(&inc.0).await.unwrap();
    assert_eq!(waiting.len(), 49);
    assert_eq!(b.outcome("w50").await.0, "throttled");
    // Re-reading an alert records nothing more.
    assert_eq!(
        b.admit(&alert("w50", "web-01", json!({}))).await,
        Admitted::Duplicate
    );
    assert_eq!(b.store.outcomes_for_alert("w50").await.unwrap().len(), 1);
    // The same alert, now recovered: a status note in the thread.
    let recovered = alert("w50", "web-01", json!({"kibana.alert.status": "recovered"}));
    assert_eq!(
        b.admit(&recovered).await,
        Admitted::Held(Outcome::Dispatched)
    );
    assert_eq!(kinds(&b.jobs().await), ["thread_reply"]);
    // The group ended: the next alert opens a new incident.
    b.advance(1);
    assert!(matches!(
        b.admit(&alert("w51", "web-01", json!({}))).await,
        Admitted::New(_)
    ));
    // Another host is another group.
    assert!(matches!(
        b.admit(&alert("x1", "web-02", json!({}))).await,
        Admitted::New(_)
    ));
    let row = b.store.incident(&inc.0).await.unwrap().unwrap();
    assert_eq!(row.host_name, "web-01");
    assert_eq!(
        b.store.incident_route(&inc.0).await.unwrap().as_deref(),
        Some(r#"{"offer":"full"}"#)
    );
}

#[tokio::test]
async fn a_group_window_ends_and_a_new_incident_opens() {
    let b = bed().await;
    assert!(matches!(
        b.admit(&alert("a1", "web-01", json!({}))).await,
        Admitted::New(_)
    ));
    b.advance(59);
    assert!(matches!(
        b.admit(&alert("a2", "web-01", json!({}))).await,
        Admitted::Grouped(_)
    ));
    b.advance(1);
    assert!(matches!(
        b.admit(&alert("a3", "web-01", json!({}))).await,
        Admitted::New(_)
    ));
}

#[tokio::test]
async fn a_throttle_lets_one_note_through_per_period_and_routes_summary_only() {
    let b = bed().await;
    let Admitted::New(inc) = b.admit(&alert("d1", "db-01", json!({}))).await else {
        panic!()
    };
    let route = b.store.incident_route(&inc.0).await.unwrap().unwrap();
    assert_eq!(route, r#"{"channel":"C0DBA","offer":"summary"}"#);
    b.jobs().await;
    let mut notes = 0;
    for i in 2..=30 {
        b.advance(1);
        b.admit(&alert(&format!("d{i}"), "db-01", json!({}))).await;
        notes += kinds(&b.jobs().await)
            .iter()
            .filter(|k| **k == "alert_grouped_note")
            .count();
    }
    // 29 minutes after the first: notes at minutes 10 and 20 only.
    assert_eq!(notes, 2);
    let (outcome, reason) = b.outcome("d15").await;
    assert_eq!(outcome, "throttled");
    assert!(reason.contains("at most one note every 10m"), "{reason}");
    assert_eq!(b.outcome("d11").await.0, "dispatched");
}

#[tokio::test]
async fn a_digest_collects_a_window_into_one_message_job() {
    let b = bed().await;
    for i in 0..30 {
        let host = format!("scan-{}", i % 3);
        assert_eq!(
            b.admit(&alert(&format!("s{i}"), &host, json!({}))).await,
            Admitted::Held(Outcome::Dispatched)
        );
    }
    // No incident, no triage, nothing for Slack yet.
    assert!(b.store.incidents().await.unwrap().is_empty());
    assert!(b.jobs().await.is_empty());
    assert_eq!(queue_due_digests(&b.store, &b.engine).await.unwrap(), 0);
    b.advance(15);
    assert_eq!(queue_due_digests(&b.store, &b.engine).await.unwrap(), 1);
    // Once only.
    assert_eq!(queue_due_digests(&b.store, &b.engine).await.unwrap(), 0);
    let jobs = b.jobs().await;
    assert_eq!(kinds(&jobs), ["post_digest"]);
    assert!(jobs[0].0.starts_with("digest:scan:2026-12-07T09:00:00"));
    let counts = b
        .store
        .digest_counts("scan", "2026-12-07T09:00:00.000Z")
        .await
        .unwrap();
    assert_eq!(counts.len(), 3);
    assert!(counts.iter().all(|c| c.2 == 10));
    let msg = digest_message("C0DIGEST", "scan", ("a", "b"), &counts);
    let text = msg.to_string();
    assert!(text.contains("30 alerts"), "{text}");
    assert!(text.contains("scan-0 — 10"), "{text}");
    assert!(!text.contains("\"actions\""), "a digest offers no buttons");
}

#[tokio::test]
async fn snoozes_and_maintenance_windows_suppress_with_a_reason() {
    let b = bed().await;
    b.store
        .snooze(
            "host",
            "web-05",
            t0() + chrono::Duration::minutes(30),
            "ana",
        )
        .await
        .unwrap();
    assert_eq!(
        b.admit(&alert("z1", "web-05", json!({}))).await,
        Admitted::Held(Outcome::Suppressed)
    );
    let (outcome, reason) = b.outcome("z1").await;
    assert_eq!(outcome, "suppressed");
    assert!(
        reason.contains("snoozed until 2026-12-07T09:30:00Z"),
        "{reason}"
    );
    b.advance(30);
    assert!(matches!(
        b.admit(&alert("z2", "web-05", json!({}))).await,
        Admitted::New(_)
    ));

    // The local window runs 09:30–10:00 for web-09.
    assert_eq!(
        b.admit(&alert("m1", "web-09", json!({}))).await,
        Admitted::Held(Outcome::Suppressed)
    );
    assert!(
        b.outcome("m1")
            .await
            .1
            .contains("maintenance window \"patch\"")
    );
    b.advance(30);
    assert!(matches!(
        b.admit(&alert("m2", "web-09", json!({}))).await,
        Admitted::New(_)
    ));

    // Acknowledged in Kibana; and no policy at all.
    let ack = alert(
        "k1",
        "web-07",
        json!({"kibana.alert.workflow_status": "acknowledged"}),
    );
    assert_eq!(b.admit(&ack).await, Admitted::Held(Outcome::Suppressed));
    assert_eq!(
        b.admit(&alert("u1", "mail-01", json!({}))).await,
        Admitted::Held(Outcome::Unmatched)
    );
    let counts = b.store.outcome_counts().await.unwrap();
    assert!(counts.contains(&("unmatched".into(), 1)), "{counts:?}");
    assert!(counts.contains(&("suppressed".into(), 3)), "{counts:?}");
}

#[tokio::test]
async fn explain_tells_without_recording() {
    let b = bed().await;
    b.admit(&alert("e1", "web-01", json!({}))).await;
    let v = explain(
        &b.store,
        &b.engine,
        "src",
        &alert("e2", "web-01", json!({})),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(
        (v.policy.as_deref(), v.outcome),
        (Some("web"), Outcome::Throttled)
    );
    assert!(b.store.outcomes_for_alert("e2").await.unwrap().is_empty());
    // Already evaluated with this status: nothing to decide.
    let e1 = alert("e1", "web-01", json!({}));
    let again = explain(&b.store, &b.engine, "src", &e1).await.unwrap();
    assert!(again.is_none());
}

#[tokio::test(start_paused = true)]
async fn the_policy_clock_follows_paused_tokio_time() {
    let clock = Clock::Tokio {
        start_utc: t0(),
        start: tokio::time::Instant::now(),
    };
    assert_eq!(clock.now(), t0());
    tokio::time::advance(Duration::from_secs(15 * 60)).await;
    assert_eq!(clock.now(), t0() + chrono::Duration::minutes(15));
    // A digest window computed from it ends exactly then.
    let p = Policies::parse("t", FILE).unwrap();
    let a = alert("s1", "scan-1", json!({}));
    let v = decide::decide(&p, &a, "src", &Facts::default(), clock.now());
    assert_eq!(
        v.action,
        Action::Digest {
            start: t0() + chrono::Duration::minutes(15),
            end: t0() + chrono::Duration::minutes(30)
        }
    );
}
