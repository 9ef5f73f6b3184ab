//! The decision itself, pure: given the policies, one alert, what is recorded about its group,
//! the snoozes and maintenance windows in force, and the time, what happens to the alert and
//! why. No I/O and no clock of its own, so every rule is unit-tested here with chosen times;
//! `mod.rs` loads the facts, applies the verdict in one transaction, and `triage-bot explain`
//! prints it without applying anything.

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::file::{Frequency, Notify, Policies, Policy};
use super::kql::{self, Expr};
use crate::domain::Alert;

/// The dispatch outcome recorded for every alert evaluated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Someone is told now: a new incident, a thread note, or a place in the next digest.
    Dispatched,
    /// Held back by the policy's frequency (the alert still joins its group's incident).
    Throttled,
    /// Held back by a snooze, a maintenance window or its Kibana workflow status.
    Suppressed,
    /// No policy matched.
    Unmatched,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Dispatched => "dispatched",
            Outcome::Throttled => "throttled",
            Outcome::Suppressed => "suppressed",
            Outcome::Unmatched => "unmatched",
        }
    }
}

/// An alert's lifecycle as Kibana reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlertStatus {
    Active,
    /// `kibana.alert.status: recovered` (or `untracked`).
    Recovered,
    /// `kibana.alert.workflow_status: acknowledged`.
    Acknowledged,
    /// `kibana.alert.workflow_status: closed`.
    Closed,
}

impl AlertStatus {
    pub fn of(doc: &serde_json::Value) -> Self {
        let text = |path| kql::first_text(doc, path).map(|s| s.to_ascii_lowercase());
        match text("kibana.alert.workflow_status").as_deref() {
            Some("closed") => return Self::Closed,
            Some("acknowledged") => return Self::Acknowledged,
            _ => {}
        }
        match text("kibana.alert.status").as_deref() {
            Some("recovered" | "untracked") => Self::Recovered,
            _ => Self::Active,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Recovered => "recovered",
            Self::Acknowledged => "acknowledged",
            Self::Closed => "closed",
        }
    }

    /// Recovered or closed: the end of an episode.
    pub fn ended(self) -> bool {
        matches!(self, Self::Recovered | Self::Closed)
    }
}

/// What is recorded about a group (for an episode policy: about the one alert).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupState {
    pub incident: String,
    pub opened_at: DateTime<Utc>,
    pub last_notified_at: DateTime<Utc>,
    /// `active` or how it ended (`recovered`, `closed`).
    pub status: String,
}

/// A snooze in force (`triage-bot snooze`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snooze {
    /// `host` or `rule`.
    pub kind: String,
    pub value: String,
    pub until: DateTime<Utc>,
}

/// A Kibana maintenance window running now.
#[derive(Debug, Clone)]
pub struct KibanaWindow {
    pub id: String,
    pub title: String,
    /// `scope.alerting.query.kql` when the window is scoped (unparseable scopes count as
    /// "every alert", erring on the quiet side the operator asked for).
    pub scope: Option<Expr>,
}

/// Everything recorded that the decision depends on.
#[derive(Debug, Clone, Default)]
pub struct Facts {
    pub group: Option<GroupState>,
    pub snoozes: Vec<Snooze>,
    pub kibana_windows: Vec<KibanaWindow>,
    /// Whether this alert was evaluated before (a status update of an alert already seen).
    pub seen_before: bool,
}

/// What to do with the alert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Record the outcome only.
    Nothing,
    /// Open an incident and queue its triage (and open the group).
    Open,
    /// Add the alert to the group's incident (its case gets the alert) and, when `note` says,
    /// post a note in its thread.
    Join { incident: String, note: Note },
    /// A status change of an alert already recorded: a note in its incident's thread only.
    StatusNote {
        incident: String,
        status: AlertStatus,
    },
    /// Count the alert into the digest of this window.
    Digest {
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    },
}

/// The note a joining alert gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Note {
    None,
    /// "Another alert joined" (every evaluation, or the throttle allows one).
    Grouped,
    /// The group is still open after `repeat`.
    Reminder,
    /// An alert of the group recovered or was closed.
    Status(AlertStatus),
}

/// The verdict for one alert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub policy: Option<String>,
    pub outcome: Outcome,
    pub reason: String,
    pub action: Action,
    /// The group the alert belongs to (for group and episode policies).
    pub group_key: Option<String>,
}

/// The group an alert belongs to under a policy: episode — the alert itself; group — the
/// values of `group_by` (with the source, so two sources never share a group); digest — none.
pub fn group_key(policy: &Policy, alert: &Alert, source: &str) -> Option<String> {
    match &policy.notify {
        Notify::Episode => Some(format!("alert|{}", alert.id.0)),
        Notify::Group { by, .. } => {
            let mut key = source.to_string();
            for field in by {
                let v = match field.as_str() {
                    "rule" => alert
                        .rule_id
                        .clone()
                        .unwrap_or_else(|| alert.rule_name.clone()),
                    "host" => alert.host_name.clone(),
                    path => kql::first_text(&alert.raw, path).unwrap_or_else(|| "-".into()),
                };
                key.push('|');
                key.push_str(&v);
            }
            Some(key)
        }
        Notify::Digest { .. } => None,
    }
}

fn since(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

fn human(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        s if s % 86400 == 0 => format!("{}d", s / 86400),
        s if s % 3600 == 0 => format!("{}h", s / 3600),
        s if s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

fn stamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Decides what happens to `alert` now.
pub fn decide(
    policies: &Policies,
    alert: &Alert,
    source: &str,
    facts: &Facts,
    now: DateTime<Utc>,
) -> Verdict {
    let Some(policy) = policies.select(&alert.raw) else {
        return Verdict {
            policy: None,
            outcome: Outcome::Unmatched,
            reason: format!(
                "no policy's match holds (policies: {})",
                policies
                    .policies
                    .iter()
                    .map(|p| p.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            action: Action::Nothing,
            group_key: None,
        };
    };
    let key = group_key(policy, alert, source);
    let verdict = |outcome, reason: String, action| Verdict {
        policy: Some(policy.name.clone()),
        outcome,
        reason,
        action,
        group_key: key.clone(),
    };
    let suppressed = |reason: String| verdict(Outcome::Suppressed, reason, Action::Nothing);

    // Operator silences first: they say "not now" whatever the policy would do.
    if let Some(m) = policies
        .maintenance
        .iter()
        .find(|m| m.active(now) && m.matcher.matches(&alert.raw))
    {
        return suppressed(format!("local maintenance window {:?} is active", m.name));
    }
    let kibana_ids: Vec<String> =
        kql::lookup_all(&alert.raw, "kibana.alert.maintenance_window_ids")
            .into_iter()
            .filter_map(|v| v.as_str().map(String::from))
            .collect();
    if !kibana_ids.is_empty() {
        return suppressed(format!(
            "raised during Kibana maintenance window {}",
            kibana_ids.join(", ")
        ));
    }
    if let Some(w) = facts
        .kibana_windows
        .iter()
        .find(|w| w.scope.as_ref().is_none_or(|s| s.matches(&alert.raw)))
    {
        return suppressed(format!(
            "Kibana maintenance window {:?} ({}) is running",
            w.title, w.id
        ));
    }
    let rule_names = [Some(alert.rule_name.as_str()), alert.rule_id.as_deref()];
    if let Some(s) = facts.snoozes.iter().find(|s| {
        s.until > now
            && match s.kind.as_str() {
                "host" => s.value.eq_ignore_ascii_case(&alert.host_name),
                "rule" => rule_names.contains(&Some(s.value.as_str())),
                _ => false,
            }
    }) {
        return suppressed(format!(
            "{} {:?} is snoozed until {}",
            s.kind,
            s.value,
            stamp(s.until)
        ));
    }

    let status = AlertStatus::of(&alert.raw);
    let open = facts.group.as_ref().filter(|g| {
        g.status == "active"
            && match &policy.notify {
                Notify::Group { window, .. } => now < g.opened_at + since(*window),
                _ => true,
            }
    });
    let on_status_change = matches!(policy.frequency, Frequency::OnStatusChange { .. });

    // An update of an alert already recorded: only its end can matter.
    if facts.seen_before {
        return match open {
            Some(g) if status.ended() && on_status_change => verdict(
                Outcome::Dispatched,
                format!(
                    "status changed to {}: noted on incident {}",
                    status.as_str(),
                    g.incident
                ),
                Action::StatusNote {
                    incident: g.incident.clone(),
                    status,
                },
            ),
            _ => verdict(
                Outcome::Throttled,
                format!(
                    "evaluated before; status {} changes nothing",
                    status.as_str()
                ),
                Action::Nothing,
            ),
        };
    }

    // The end of an open group is news even when it is closed in Kibana.
    if let Some(g) = open
        && status.ended()
        && on_status_change
    {
        return verdict(
            Outcome::Dispatched,
            format!(
                "status changed to {}: noted on incident {}",
                status.as_str(),
                g.incident
            ),
            Action::Join {
                incident: g.incident.clone(),
                note: Note::Status(status),
            },
        );
    }
    if policy.suppress_acknowledged
        && matches!(status, AlertStatus::Acknowledged | AlertStatus::Closed)
    {
        return suppressed(format!("already {} in Kibana", status.as_str()));
    }

    match &policy.notify {
        Notify::Digest { window } => {
            let secs = window.as_secs().max(1) as i64;
            let start_ts = now.timestamp().div_euclid(secs) * secs;
            let start = DateTime::from_timestamp(start_ts, 0).unwrap_or(now);
            let end = start + chrono::Duration::seconds(secs);
            verdict(
                Outcome::Dispatched,
                format!("in the digest of {} – {}", stamp(start), stamp(end)),
                Action::Digest { start, end },
            )
        }
        Notify::Episode | Notify::Group { .. } => {
            let Some(g) = open else {
                let what = match &policy.notify {
                    Notify::Group { window, .. } => format!(
                        "first alert of group {} within {}: new incident",
                        key.as_deref().unwrap_or("?"),
                        human(*window)
                    ),
                    _ => "one incident per alert: new incident".into(),
                };
                return verdict(Outcome::Dispatched, what, Action::Open);
            };
            let join = |note| Action::Join {
                incident: g.incident.clone(),
                note,
            };
            let last = stamp(g.last_notified_at);
            match policy.frequency {
                Frequency::EveryEvaluation => verdict(
                    Outcome::Dispatched,
                    format!(
                        "joined incident {}; thread note (every evaluation)",
                        g.incident
                    ),
                    join(Note::Grouped),
                ),
                Frequency::Throttle(every) => {
                    if now >= g.last_notified_at + since(every) {
                        verdict(
                            Outcome::Dispatched,
                            format!(
                                "joined incident {}; thread note (at most once every {}, last {last})",
                                g.incident,
                                human(every)
                            ),
                            join(Note::Grouped),
                        )
                    } else {
                        verdict(
                            Outcome::Throttled,
                            format!(
                                "joined incident {}; at most one note every {}, last at {last}, next after {}",
                                g.incident,
                                human(every),
                                stamp(g.last_notified_at + since(every))
                            ),
                            join(Note::None),
                        )
                    }
                }
                Frequency::OnStatusChange { repeat } => match repeat {
                    Some(r) if now >= g.last_notified_at + since(r) => verdict(
                        Outcome::Dispatched,
                        format!(
                            "joined incident {}; still open: reminder every {} (last {last})",
                            g.incident,
                            human(r)
                        ),
                        join(Note::Reminder),
                    ),
                    _ => verdict(
                        Outcome::Throttled,
                        format!(
                            "joined incident {}; group already notified at {last}, next on a status change{}",
                            g.incident,
                            repeat
                                .map(|r| format!(" or at {}", stamp(g.last_notified_at + since(r))))
                                .unwrap_or_default()
                        ),
                        join(Note::None),
                    ),
                },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::policy::file::Policies;
    use serde_json::json;

    const FILE: &str = r#"
[[policy]]
name = "digest"
match = 'host.name: scan-*'
notify = "digest"
window = "15m"

[[policy]]
name = "grp"
match = 'host.name: web-*'
notify = "group"
group_by = ["host.name"]
window = "1h"
repeat = "20m"

[[policy]]
name = "thr"
match = 'host.name: db-*'
notify = "group"
group_by = ["rule", "host"]
window = "1h"
frequency = "throttle"
every = "10m"

[[policy]]
name = "ep"
match = 'host.name: dc-*'
notify = "episode"

[[maintenance]]
name = "mw"
match = 'host.name: web-09'
start = "2026-12-07T10:00:00Z"
end = "2026-12-07T11:00:00Z"
"#;

    fn policies() -> Policies {
        Policies::parse("t", FILE).unwrap()
    }

    fn at(min: i64) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-12-07T09:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
            + chrono::Duration::minutes(min)
    }

    fn alert(host: &str, extra: serde_json::Value) -> Alert {
        let mut doc = crate::samples::alert_document("a1", "2026-12-07T09:00:00Z");
        doc["host"] = json!({"name": host});
        if let (Some(d), Some(e)) = (doc.as_object_mut(), extra.as_object()) {
            for (k, v) in e {
                d.insert(k.clone(), v.clone());
            }
        }
        Alert::from_document("a1", "idx", &doc, "@timestamp").unwrap()
    }

    fn group(opened: i64, notified: i64) -> GroupState {
        GroupState {
            incident: "inc-1".into(),
            opened_at: at(opened),
            last_notified_at: at(notified),
            status: "active".into(),
        }
    }

    fn run(a: &Alert, facts: &Facts, now: i64) -> Verdict {
        decide(&policies(), a, "src", facts, at(now))
    }

    #[test]
    fn unmatched_is_recorded_with_the_policies_tried() {
        let v = run(&alert("mail-1", json!({})), &Facts::default(), 0);
        assert_eq!(v.outcome, Outcome::Unmatched);
        assert!(v.reason.contains("digest, grp, thr, ep"), "{}", v.reason);
        assert_eq!(v.policy, None);
    }

    #[test]
    fn group_opens_once_then_joins_quietly_until_repeat_or_window() {
        let a = alert("web-01", json!({}));
        let first = run(&a, &Facts::default(), 0);
        assert_eq!(
            (first.outcome, &first.action),
            (Outcome::Dispatched, &Action::Open)
        );
        assert_eq!(first.group_key.as_deref(), Some("src|web-01"));
        let facts = Facts {
            group: Some(group(0, 0)),
            ..Default::default()
        };
        let later = run(&a, &facts, 5);
        assert_eq!(later.outcome, Outcome::Throttled);
        assert_eq!(
            later.action,
            Action::Join {
                incident: "inc-1".into(),
                note: Note::None
            }
        );
        assert!(
            later
                .reason
                .contains("next on a status change or at 2026-12-07T09:20:00Z"),
            "{}",
            later.reason
        );
        let reminder = run(&a, &facts, 20);
        assert_eq!(reminder.outcome, Outcome::Dispatched);
        assert!(matches!(
            reminder.action,
            Action::Join {
                note: Note::Reminder,
                ..
            }
        ));
        // The window is over: a new incident.
        assert_eq!(run(&a, &facts, 60).action, Action::Open);
    }

    #[test]
    fn recovery_and_closing_of_an_open_group_are_notified() {
        let facts = Facts {
            group: Some(group(0, 0)),
            ..Default::default()
        };
        let rec = run(
            &alert("web-01", json!({"kibana.alert.status": "recovered"})),
            &facts,
            5,
        );
        assert_eq!(rec.outcome, Outcome::Dispatched);
        assert!(matches!(
            rec.action,
            Action::Join {
                note: Note::Status(AlertStatus::Recovered),
                ..
            }
        ));
        let closed = alert("web-01", json!({"kibana.alert.workflow_status": "closed"}));
        assert!(matches!(
            run(&closed, &facts, 5).action,
            Action::Join {
                note: Note::Status(AlertStatus::Closed),
                ..
            }
        ));
        // An update of an alert seen before: a note on its incident, no second join.
        let seen = Facts {
            seen_before: true,
            ..facts.clone()
        };
        assert!(matches!(
            run(&closed, &seen, 5).action,
            Action::StatusNote { .. }
        ));
        let still = run(&alert("web-01", json!({})), &seen, 5);
        assert_eq!(
            (still.outcome, still.action),
            (Outcome::Throttled, Action::Nothing)
        );
        // A recovered group is over: the next alert opens a new incident.
        let ended = Facts {
            group: Some(GroupState {
                status: "recovered".into(),
                ..group(0, 0)
            }),
            ..Default::default()
        };
        assert_eq!(
            run(&alert("web-01", json!({})), &ended, 6).action,
            Action::Open
        );
    }

    #[test]
    fn throttle_allows_one_note_per_period() {
        let a = alert("db-01", json!({}));
        let facts = Facts {
            group: Some(group(0, 0)),
            ..Default::default()
        };
        assert_eq!(run(&a, &facts, 9).outcome, Outcome::Throttled);
        let v = run(&a, &facts, 10);
        assert_eq!(v.outcome, Outcome::Dispatched);
        assert!(matches!(
            v.action,
            Action::Join {
                note: Note::Grouped,
                ..
            }
        ));
        // Rule and host make the key.
        assert!(v.group_key.unwrap().starts_with("src|"));
    }

    #[test]
    fn episode_opens_one_incident_per_alert() {
        let v = run(&alert("dc-01", json!({})), &Facts::default(), 0);
        assert_eq!(v.action, Action::Open);
        assert_eq!(v.group_key.as_deref(), Some("alert|a1"));
    }

    #[test]
    fn digest_windows_are_aligned() {
        let v = run(&alert("scan-1", json!({})), &Facts::default(), 17);
        assert_eq!(
            v.action,
            Action::Digest {
                start: at(15),
                end: at(30)
            }
        );
        assert_eq!(v.outcome, Outcome::Dispatched);
    }

    #[test]
    fn suppressions() {
        let a = alert("web-01", json!({}));
        let snoozed = Facts {
            snoozes: vec![Snooze {
                kind: "host".into(),
                value: "WEB-01".into(),
                until: at(30),
            }],
            ..Default::default()
        };
        let v = run(&a, &snoozed, 10);
        assert_eq!(v.outcome, Outcome::Suppressed);
        assert!(
            v.reason.contains("snoozed until 2026-12-07T09:30:00Z"),
            "{}",
            v.reason
        );
        assert_eq!(run(&a, &snoozed, 30).outcome, Outcome::Dispatched);

        let rule = Facts {
            snoozes: vec![Snooze {
                kind: "rule".into(),
                value: a.rule_name.clone(),
                until: at(30),
            }],
            ..Default::default()
        };
        assert_eq!(run(&a, &rule, 0).outcome, Outcome::Suppressed);

        let ack = alert(
            "web-01",
            json!({"kibana.alert.workflow_status": "acknowledged"}),
        );
        let v = run(&ack, &Facts::default(), 0);
        assert_eq!(
            (v.outcome, v.reason.as_str()),
            (Outcome::Suppressed, "already acknowledged in Kibana")
        );

        let in_kibana_mw = alert(
            "web-01",
            json!({"kibana.alert.maintenance_window_ids": ["mw-1"]}),
        );
        assert!(
            run(&in_kibana_mw, &Facts::default(), 0)
                .reason
                .contains("mw-1")
        );

        let running = Facts {
            kibana_windows: vec![KibanaWindow {
                id: "mw-2".into(),
                title: "upgrade".into(),
                scope: Some(kql::parse("host.name: db-*").unwrap()),
            }],
            ..Default::default()
        };
        assert_eq!(run(&a, &running, 0).outcome, Outcome::Dispatched);
        let v = run(&alert("db-01", json!({})), &running, 0);
        assert_eq!(v.outcome, Outcome::Suppressed);
        assert!(v.reason.contains("upgrade"));
    }

    #[test]
    fn local_maintenance_window_applies_only_while_active_and_matching() {
        let a = alert("web-09", json!({}));
        assert_eq!(run(&a, &Facts::default(), 59).outcome, Outcome::Dispatched);
        let v = run(&a, &Facts::default(), 60);
        assert_eq!(v.outcome, Outcome::Suppressed);
        assert!(v.reason.contains("\"mw\""));
        assert_eq!(run(&a, &Facts::default(), 120).outcome, Outcome::Dispatched);
        assert_eq!(
            run(&alert("web-08", json!({})), &Facts::default(), 60).outcome,
            Outcome::Dispatched
        );
    }

    #[test]
    fn default_policy_reproduces_todays_grouping() {
        let p = Policies::default_grouping(Some(Duration::from_secs(3600)));
        let a = alert("host-1", json!({}));
        let facts = Facts {
            group: Some(group(0, 0)),
            ..Default::default()
        };
        let v = decide(&p, &a, "src", &facts, at(30));
        assert!(matches!(
            v.action,
            Action::Join {
                note: Note::Grouped,
                ..
            }
        ));
        assert_eq!(decide(&p, &a, "src", &facts, at(60)).action, Action::Open);
        let off = Policies::default_grouping(None);
        assert_eq!(
            decide(&off, &a, "src", &Facts::default(), at(0)).action,
            Action::Open
        );
    }
}
