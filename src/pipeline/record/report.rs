//! `triage-bot report`: how the SOC responded over a period, from the local record alone —
//! incidents by outcome, time to acknowledge and to respond (p50/p90), approvals vs declines vs
//! expiries per rule and per handler, and how the AI's proposals fared with the analysts (approved
//! unchanged, edited, partly picked, declined, …) with the commands edited or dropped most.
//!
//! Definitions (so the figures can be checked by hand):
//! - an **incident** is a top-level alert incident; its **outcome** is the state of the last
//!   proposal in its chain of revisions (a superseded proposal hands on to its revision);
//! - **time to acknowledge**: alert time → the first human decision on it (approval, first
//!   approval, edit, decline, revision request); **time to respond**: alert time → the last
//!   approved command finished, or the decline, or the expiry. Percentiles are nearest-rank;
//! - a **proposal** is any incident that asked for approval (follow-ups and revisions
//!   included). Approved proposals are *unchanged* (approved as proposed), *edited* (a command's
//!   text changed in Edit…), or *partly picked* (commands left out in Edit…, or investigation
//!   only, without a text change).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::domain::IncidentState;
use crate::pipeline::approval::times::{human, seconds_since_alert};
use crate::store::edits::EditRow;
use crate::store::{IncidentRow, Store};

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Percentiles {
    pub count: usize,
    pub p50_seconds: Option<f64>,
    pub p90_seconds: Option<f64>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DecisionCounts {
    pub approved: usize,
    pub declined: usize,
    pub expired: usize,
    pub superseded: usize,
    pub pending: usize,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ProposalFate {
    pub proposals: usize,
    pub approved_unchanged: usize,
    pub edited: usize,
    pub partly_picked: usize,
    pub declined: usize,
    pub expired: usize,
    pub superseded: usize,
    pub pending: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CommandChanges {
    pub command: String,
    pub edited: usize,
    pub dropped: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub since: String,
    pub until: String,
    pub incidents: usize,
    pub by_outcome: BTreeMap<String, usize>,
    pub time_to_acknowledge: Percentiles,
    pub time_to_respond: Percentiles,
    pub by_rule: BTreeMap<String, DecisionCounts>,
    pub by_handler: BTreeMap<String, DecisionCounts>,
    pub proposals: ProposalFate,
    /// Most edited or dropped first (at most ten).
    pub most_changed_commands: Vec<CommandChanges>,
}

/// Nearest-rank percentile of sorted values (also the benchmarks').
pub fn percentile<T: Copy>(sorted: &[T], p: f64) -> Option<T> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

fn percentiles(mut v: Vec<f64>) -> Percentiles {
    v.sort_by(|a, b| a.total_cmp(b));
    Percentiles {
        count: v.len(),
        p50_seconds: percentile(&v, 50.0),
        p90_seconds: percentile(&v, 90.0),
    }
}

/// The report over the incidents created since `since`, as the store holds them.
pub async fn build(store: &Store, since: DateTime<Utc>) -> anyhow::Result<Report> {
    let since_text = crate::store::time_text(since);
    let incidents = store.incidents_since(&since_text).await?;
    let edits = store.proposal_edits_since(&since_text).await?;
    Ok(compute(&incidents, &edits, since, Utc::now()))
}

/// The figures, from the rows (pure, so a seeded history can be checked exactly).
pub fn compute(
    incidents: &[IncidentRow],
    edits: &[EditRow],
    since: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Report {
    let by_id: BTreeMap<&str, &IncidentRow> =
        incidents.iter().map(|i| (i.id.as_str(), i)).collect();
    let mut edits_of: BTreeMap<&str, Vec<&EditRow>> = BTreeMap::new();
    for e in edits {
        edits_of.entry(e.incident_id.as_str()).or_default().push(e);
    }
    let roots: Vec<&IncidentRow> = incidents
        .iter()
        .filter(|i| i.parent_incident.is_none())
        .collect();

    let mut by_outcome = BTreeMap::new();
    let (mut ack, mut respond) = (Vec::new(), Vec::new());
    for root in &roots {
        // The last revision in the chain decides the outcome.
        let mut last = *root;
        for _ in 0..32 {
            match last.superseded_by.as_deref().and_then(|id| by_id.get(id)) {
                Some(next) => last = next,
                None => break,
            }
        }
        *by_outcome
            .entry(last.state.as_str().to_string())
            .or_insert(0) += 1;
        if let Some(s) = root
            .acknowledged_at
            .as_deref()
            .and_then(|a| seconds_since_alert(root, a))
        {
            ack.push(s);
        }
        if let Some(s) = root
            .responded_at
            .as_deref()
            .and_then(|a| seconds_since_alert(root, a))
        {
            respond.push(s);
        }
    }

    let mut by_rule: BTreeMap<String, DecisionCounts> = BTreeMap::new();
    let mut by_handler: BTreeMap<String, DecisionCounts> = BTreeMap::new();
    let mut fate = ProposalFate::default();
    for p in incidents.iter().filter(|i| i.triage_json.is_some()) {
        let rule = p
            .alert()
            .map(|a| a.rule_name)
            .unwrap_or_else(|_| "unknown rule".into());
        let handler = p
            .handler_name
            .clone()
            .or_else(|| p.handler_slack_id.clone())
            .unwrap_or_else(|| "no handler".into());
        let rows = edits_of
            .get(p.id.as_str())
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        let edited = rows.iter().any(|e| e.change == "edited");
        let dropped = rows.iter().any(|e| e.change == "dropped");
        fate.proposals += 1;
        let bump = |c: &mut DecisionCounts| match (p.decision.as_deref(), p.state) {
            (Some("approved"), _) => c.approved += 1,
            (Some("declined"), _) => c.declined += 1,
            (_, IncidentState::Expired) => c.expired += 1,
            (_, IncidentState::Superseded) => c.superseded += 1,
            _ => c.pending += 1,
        };
        bump(by_rule.entry(rule).or_default());
        bump(by_handler.entry(handler).or_default());
        match (p.decision.as_deref(), p.state) {
            (Some("approved"), _) if edited => fate.edited += 1,
            (Some("approved"), _)
                if dropped || p.approval_scope.as_deref() == Some("investigation") =>
            {
                fate.partly_picked += 1
            }
            (Some("approved"), _) => fate.approved_unchanged += 1,
            (Some("declined"), _) => fate.declined += 1,
            (_, IncidentState::Expired) => fate.expired += 1,
            (_, IncidentState::Superseded) => fate.superseded += 1,
            _ => fate.pending += 1,
        }
    }

    let mut changes: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    for e in edits {
        let slot = changes.entry(e.before_text.as_str()).or_default();
        match e.change.as_str() {
            "edited" => slot.0 += 1,
            "dropped" => slot.1 += 1,
            _ => {}
        }
    }
    let mut most: Vec<CommandChanges> = changes
        .into_iter()
        .filter(|(_, (e, d))| e + d > 0)
        .map(|(c, (edited, dropped))| CommandChanges {
            command: c.to_string(),
            edited,
            dropped,
        })
        .collect();
    most.sort_by(|a, b| {
        (b.edited + b.dropped)
            .cmp(&(a.edited + a.dropped))
            .then_with(|| a.command.cmp(&b.command))
    });
    most.truncate(10);

    Report {
        since: crate::store::time_text(since),
        until: crate::store::time_text(until),
        incidents: roots.len(),
        by_outcome,
        time_to_acknowledge: percentiles(ack),
        time_to_respond: percentiles(respond),
        by_rule,
        by_handler,
        proposals: fate,
        most_changed_commands: most,
    }
}

fn share(n: usize, of: usize) -> String {
    if of == 0 {
        "–".into()
    } else {
        format!("{:.0}%", n as f64 * 100.0 / of as f64)
    }
}

fn secs(v: Option<f64>) -> String {
    v.map(human).unwrap_or_else(|| "–".into())
}

fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

/// The report as a markdown document (for a shift hand-over or a case).
pub fn markdown(r: &Report) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# SOC response report\n\n{} → {}\n", r.since, r.until);
    let _ = writeln!(out, "## Incidents by outcome ({})\n", r.incidents);
    let _ = writeln!(out, "| Outcome | Incidents |\n|---|---|");
    for (k, v) in &r.by_outcome {
        let _ = writeln!(out, "| {k} | {v} |");
    }
    let _ = writeln!(out, "\n## Response times\n");
    let _ = writeln!(out, "| | Incidents | p50 | p90 |\n|---|---|---|---|");
    for (name, p) in [
        ("Time to acknowledge (MTTA)", &r.time_to_acknowledge),
        ("Time to respond (MTTR)", &r.time_to_respond),
    ] {
        let _ = writeln!(
            out,
            "| {name} | {} | {} | {} |",
            p.count,
            secs(p.p50_seconds),
            secs(p.p90_seconds)
        );
    }
    for (title, table) in [("rule", &r.by_rule), ("handler", &r.by_handler)] {
        let _ = writeln!(out, "\n## Decisions per {title}\n");
        let _ = writeln!(
            out,
            "| {} | Approved | Declined | Expired | Superseded | Pending |\n|---|---|---|---|---|---|",
            if title == "rule" { "Rule" } else { "Handler" }
        );
        for (k, c) in table {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} |",
                cell(k),
                c.approved,
                c.declined,
                c.expired,
                c.superseded,
                c.pending
            );
        }
    }
    let f = &r.proposals;
    let _ = writeln!(out, "\n## How the AI's proposals fared ({})\n", f.proposals);
    let _ = writeln!(out, "| Fate | Proposals | Share |\n|---|---|---|");
    for (name, n) in [
        ("Approved unchanged", f.approved_unchanged),
        ("Edited, then approved", f.edited),
        ("Partly picked", f.partly_picked),
        ("Declined", f.declined),
        ("Expired", f.expired),
        ("Superseded by a revision", f.superseded),
        ("Pending", f.pending),
    ] {
        let _ = writeln!(out, "| {name} | {n} | {} |", share(n, f.proposals));
    }
    if !r.most_changed_commands.is_empty() {
        let _ = writeln!(
            out,
            "\n## Commands analysts edit or drop most\n\n| Command | Edited | Dropped |\n|---|---|---|"
        );
        for c in &r.most_changed_commands {
            let _ = writeln!(
                out,
                "| `{}` | {} | {} |",
                cell(&c.command.replace('`', "'")),
                c.edited,
                c.dropped
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let p = percentiles(vec![
            30.0, 10.0, 20.0, 40.0, 50.0, 60.0, 70.0, 80.0, 90.0, 100.0,
        ]);
        assert_eq!((p.p50_seconds, p.p90_seconds), (Some(50.0), Some(90.0)));
        assert_eq!(percentiles(vec![7.0]).p90_seconds, Some(7.0));
        assert_eq!(percentiles(vec![]).p50_seconds, None);
    }
}
