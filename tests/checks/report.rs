//! `triage-bot report` over a seeded history: five incidents with known times and fates, so
//! every figure — outcomes, MTTA/MTTR p50/p90, decisions per rule and handler, how the proposals
//! fared, the commands analysts change most — can be checked by hand, through the library and
//! through the command line.

use chrono::{Duration, Timelike, Utc};
use serde_json::{Value, json};
use triage_bot::domain::incident::approval_hash;
use triage_bot::domain::{Alert, CommandKind, Decision, IncidentId, IncidentState, Triage};
use triage_bot::store::Store;
use triage_bot::store::edits::EditSubmission;
use triage_bot::store::incidents::TriageRecord;

struct Seed {
    rule: &'static str,
    handler: &'static str,
    /// Seconds after the alert: first decision, end of the response.
    ack: Option<i64>,
    respond: i64,
    fate: Fate,
}

enum Fate {
    Approved,
    /// Command 1 edited, command 2 dropped.
    EditedAndDropped,
    /// Command 2 dropped.
    Dropped,
    Declined,
    Expired,
}

const CMD1: &str = "Get-Process -Id 3312";
const CMD2: &str = "Stop-Process -Id 3312 -Force";

async fn seed(store: &Store, n: usize, s: &Seed) {
    let alert_at = (Utc::now() - Duration::hours(2) + Duration::minutes(n as i64))
        .with_nanosecond(0)
        .unwrap();
    let t = |secs: i64| triage_bot::store::time_text(alert_at + Duration::seconds(secs));
    let id = IncidentId::new();
    let alert_id = format!("alert-{n}");
    let mut doc = triage_bot::samples::alert_document(&alert_id, &alert_at.to_rfc3339());
    doc["kibana.alert.rule.name"] = json!(s.rule);
    let alert = Alert::from_document(
        &alert_id,
        ".alerts-security.alerts-default",
        &doc,
        "@timestamp",
    )
    .unwrap();
    let triage = Triage {
        summary: "seeded".into(),
        investigation: vec![CMD1.into()],
        remediation: vec![CMD2.into()],
        warnings: vec![],
    };
    let commands = triage.commands();
    let hash = approval_hash(&id, &alert.host_name, &commands);
    let mut tx = store.write_tx().await.unwrap();
    Store::open_incident(&mut tx, &id, "security_alerts", &alert)
        .await
        .unwrap();
    for next in [IncidentState::Triaging, IncidentState::AwaitingApproval] {
        Store::transition(&mut tx, &id.0, next).await.unwrap();
    }
    let record = TriageRecord {
        triage: &triage,
        raw: "",
        handler_name: Some(s.handler),
        handler_slack_id: None,
        approval_hash: &hash,
    };
    Store::record_triage(&mut tx, &id.0, &record).await.unwrap();
    Store::insert_commands(&mut tx, &id.0, &commands)
        .await
        .unwrap();
    let edit = match s.fate {
        Fate::EditedAndDropped => Some((Some("Get-Process -Id 3312 | Format-List *"), None)),
        Fate::Dropped => Some((Some(CMD1), None)),
        _ => None,
    };
    if let Some((after1, after2)) = edit {
        let kept: Vec<_> = commands
            .iter()
            .take(1)
            .map(|c| triage_bot::domain::ProposedCommand {
                text: after1.unwrap().to_string(),
                ..c.clone()
            })
            .collect();
        let new_hash = approval_hash(&id, &alert.host_name, &kept);
        let changes = vec![
            (
                1,
                CommandKind::Investigation,
                CMD1.to_string(),
                after1.map(String::from),
            ),
            (2, CommandKind::Remediation, CMD2.to_string(), after2),
        ];
        let at = t(s.ack.unwrap());
        let applied = Store::apply_edit(
            &mut tx,
            &EditSubmission {
                incident: &id.0,
                old_hash: &hash,
                new_hash: &new_hash,
                commands: &kept,
                changes: &changes,
                user: "U0ALICE",
                at: &at,
            },
        )
        .await
        .unwrap();
        assert!(applied);
    }
    if let Some(a) = s.ack {
        Store::mark_acknowledged(&mut tx, &id.0, "U0ALICE", &t(a))
            .await
            .unwrap();
    }
    match s.fate {
        Fate::Declined => {
            Store::transition(&mut tx, &id.0, IncidentState::Declined)
                .await
                .unwrap();
            Store::record_decision(
                &mut tx,
                &id.0,
                Decision::Decline,
                "U0ALICE",
                &t(s.ack.unwrap()),
            )
            .await
            .unwrap();
        }
        Fate::Expired => {
            Store::transition(&mut tx, &id.0, IncidentState::Expired)
                .await
                .unwrap();
        }
        _ => {
            for next in [
                IncidentState::Approved,
                IncidentState::Executing,
                IncidentState::Executed,
            ] {
                Store::transition(&mut tx, &id.0, next).await.unwrap();
            }
            Store::record_decision(
                &mut tx,
                &id.0,
                Decision::Approve,
                "U0ALICE",
                &t(s.ack.unwrap()),
            )
            .await
            .unwrap();
        }
    }
    Store::mark_responded(&mut tx, &id.0, &t(s.respond))
        .await
        .unwrap();
    tx.commit().await.unwrap();
}

const HISTORY: [Seed; 5] = [
    Seed {
        rule: "Rule A",
        handler: "Alice",
        ack: Some(60),
        respond: 300,
        fate: Fate::Approved,
    },
    Seed {
        rule: "Rule A",
        handler: "Alice",
        ack: Some(120),
        respond: 600,
        fate: Fate::EditedAndDropped,
    },
    Seed {
        rule: "Rule B",
        handler: "Bob",
        ack: Some(180),
        respond: 180,
        fate: Fate::Declined,
    },
    Seed {
        rule: "Rule B",
        handler: "Bob",
        ack: None,
        respond: 900,
        fate: Fate::Expired,
    },
    Seed {
        rule: "Rule A",
        handler: "Alice",
        ack: Some(240),
        respond: 1200,
        fate: Fate::Dropped,
    },
];

fn expected() -> Value {
    json!({
        "incidents": 5,
        "by_outcome": { "declined": 1, "executed": 3, "expired": 1 },
        "time_to_acknowledge": { "count": 4, "p50_seconds": 120.0, "p90_seconds": 240.0 },
        "time_to_respond": { "count": 5, "p50_seconds": 600.0, "p90_seconds": 1200.0 },
        "by_rule": {
            "Rule A": { "approved": 3, "declined": 0, "expired": 0, "superseded": 0, "pending": 0 },
            "Rule B": { "approved": 0, "declined": 1, "expired": 1, "superseded": 0, "pending": 0 }
        },
        "by_handler": {
            "Alice": { "approved": 3, "declined": 0, "expired": 0, "superseded": 0, "pending": 0 },
            "Bob": { "approved": 0, "declined": 1, "expired": 1, "superseded": 0, "pending": 0 }
        },
        "proposals": { "proposals": 5, "approved_unchanged": 1, "edited": 1, "partly_picked": 1,
                       "declined": 1, "expired": 1, "superseded": 0, "pending": 0 },
        "most_changed_commands": [
            { "command": CMD2, "edited": 0, "dropped": 2 },
            { "command": CMD1, "edited": 1, "dropped": 0 }
        ]
    })
}

fn without_window(mut v: Value) -> Value {
    let o = v.as_object_mut().unwrap();
    o.remove("since");
    o.remove("until");
    v
}

#[tokio::test]
async fn the_report_over_a_seeded_history_gives_the_expected_figures() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("report.db").display());
    let store = Store::connect(&url).await.unwrap();
    for (n, s) in HISTORY.iter().enumerate() {
        seed(&store, n, s).await;
    }

    let report =
        triage_bot::pipeline::record::report::build(&store, Utc::now() - Duration::days(7))
            .await
            .unwrap();
    assert_eq!(
        without_window(serde_json::to_value(&report).unwrap()),
        expected()
    );
    let md = triage_bot::pipeline::record::report::markdown(&report);
    assert!(
        md.contains("| Time to acknowledge (MTTA) | 4 | 2m 00s | 4m 00s |"),
        "{md}"
    );
    assert!(
        md.contains("| Time to respond (MTTR) | 5 | 10m 00s | 20m 00s |"),
        "{md}"
    );
    assert!(md.contains("| Edited, then approved | 1 | 20% |"), "{md}");
    assert!(md.contains(&format!("| `{CMD2}` | 0 | 2 |")), "{md}");

    // A window with no incident opened in it: empty figures, no division by zero.
    let empty =
        triage_bot::pipeline::record::report::build(&store, Utc::now() + Duration::minutes(1))
            .await
            .unwrap();
    assert_eq!(empty.incidents, 0);
    assert_eq!(empty.time_to_respond.p50_seconds, None);
    store.pool.close().await;

    // The same through the command line.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_triage-bot"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DATABASE_URL", &url)
        .current_dir(dir.path())
        .args(["report", "--since", "7d", "--format", "json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(without_window(json), expected());
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_triage-bot"))
        .env_clear()
        .env("DATABASE_URL", &url)
        .args(["report", "--since", "soon"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--since: expected a period"));
}
