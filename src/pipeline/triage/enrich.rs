//! Optional enrichment (`ENRICHMENT_ENABLED`): before the AI call, what else is known around the
//! alert — other alerts on the same host and for the same user within `ENRICHMENT_WINDOW_SECS`
//! (counts and rule names, from the alert index) and open Kibana cases naming the host. It goes
//! into the prompt fenced as untrusted data (`prompt::Prompts::triage_with`) and onto the Slack
//! card as one context line. Recorded per incident, so a retried triage asks with the same
//! context; a lookup that fails is logged and left out — enrichment never holds up a triage.

use std::time::Duration;

use chrono::Utc;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::clients::elastic::SearchHit;
use crate::config::SourceKind;
use crate::domain::Alert;
use crate::domain::alert::str_field;
use crate::pipeline::Ctx;
use crate::text::escape;

/// Hits read per lookup; more are reported as "at least".
const MAX_HITS: usize = 200;
/// Rule names listed per lookup.
const MAX_RULES: usize = 5;

/// Other alerts for one host or user.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Related {
    pub name: String,
    /// Other alerts in the window (this one excluded).
    pub alerts: usize,
    /// True when there were more than were read.
    pub more: bool,
    /// Their distinct rule names, most frequent first, at most five.
    pub rules: Vec<String>,
}

/// What was known around an alert when it was triaged.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Enrichment {
    pub window_hours: f64,
    pub host: Option<Related>,
    pub user: Option<Related>,
    /// Open cases naming the host: (id, title).
    pub open_cases: Vec<(String, String)>,
}

impl Enrichment {
    /// The data the prompt carries.
    pub fn as_data(&self) -> Value {
        json!(self)
    }

    /// One line for the Slack card (escaped), or `None` when there is nothing to say.
    pub fn context_line(&self, case_url: impl Fn(&str) -> String) -> Option<String> {
        let mut parts = Vec::new();
        let related = |r: &Related, what: &str| {
            let n = if r.more {
                format!("{}+", r.alerts)
            } else {
                r.alerts.to_string()
            };
            let rules = if r.rules.is_empty() {
                String::new()
            } else {
                format!(" ({})", escape(&r.rules.join(", ")))
            };
            format!("{n} other alert(s) {what} {}{rules}", escape(&r.name))
        };
        if let Some(h) = self.host.as_ref().filter(|h| h.alerts > 0) {
            parts.push(related(h, "on"));
        }
        if let Some(u) = self.user.as_ref().filter(|u| u.alerts > 0) {
            parts.push(related(u, "for user"));
        }
        if !self.open_cases.is_empty() {
            let cases: Vec<String> = self
                .open_cases
                .iter()
                .map(|(id, title)| format!("<{}|{}>", case_url(id), escape(title)))
                .collect();
            parts.push(format!("open cases naming the host: {}", cases.join(", ")));
        }
        if parts.is_empty() {
            return None;
        }
        Some(format!(
            ":mag: Last {}h: {}",
            self.window_hours,
            parts.join(" · ")
        ))
    }
}

/// The incident's enrichment: the one recorded before, else gathered now and recorded. `None`
/// when enrichment is off.
pub async fn for_incident(ctx: &Ctx, incident: &str, alert: &Alert) -> Option<Enrichment> {
    let window = ctx.settings.intake.enrichment?;
    if let Ok(Some(data)) = ctx.store.enrichment(incident).await
        && let Ok(e) = serde_json::from_value(data)
    {
        return Some(e);
    }
    let e = gather(ctx, alert, window).await;
    if let Err(err) = ctx.store.save_enrichment(incident, &e.as_data()).await {
        tracing::warn!(incident.id = %incident, error = %err, "cannot record the enrichment");
    }
    Some(e)
}

/// Looks up what is known around the alert; each lookup that fails is left out.
pub async fn gather(ctx: &Ctx, alert: &Alert, window: Duration) -> Enrichment {
    let mut e = Enrichment {
        window_hours: (window.as_secs_f64() / 3600.0 * 10.0).round() / 10.0,
        ..Default::default()
    };
    let since = Utc::now() - chrono::Duration::from_std(window).unwrap_or_default();
    e.host = related(ctx, alert, "host.name", &alert.host_name, since).await;
    if let Some(user) = &alert.user_name {
        e.user = related(ctx, alert, "user.name", user, since).await;
    }
    match ctx.cases.find_open_mentioning(&alert.host_name).await {
        Ok(cases) => {
            e.open_cases = cases.into_iter().map(|c| (c.id, c.title)).collect();
        }
        Err(err) => {
            tracing::warn!(host.name = %alert.host_name, error = %err, "enrichment: cannot look up open cases")
        }
    }
    e
}

/// Other alerts with `field` = `value` since `since`, in the first alert-index source.
async fn related(
    ctx: &Ctx,
    alert: &Alert,
    field: &str,
    value: &str,
    since: chrono::DateTime<Utc>,
) -> Option<Related> {
    let source = ctx
        .settings
        .elastic
        .sources
        .iter()
        .find(|s| s.kind == SourceKind::Alerts)?;
    let body = json!({
        "size": MAX_HITS,
        "query": { "bool": {
            "filter": [
                { "term": { field: value } },
                { "range": { source.timestamp_field.as_str(): { "gte": since.to_rfc3339_opts(chrono::SecondsFormat::Millis, true) } } }
            ],
            "must_not": [ { "ids": { "values": [alert.id.0] } } ]
        } }
    });
    let hits = match ctx.elastic.search(&source.index, body).await {
        Ok(h) => h,
        Err(err) => {
            tracing::warn!(field, error = %err, "enrichment: cannot look up related alerts");
            return None;
        }
    };
    let mut counts: Vec<(String, usize)> = Vec::new();
    let mut alerts = 0;
    for hit in &hits {
        let SearchHit::Decoded(hit) = hit else {
            alerts += 1;
            continue;
        };
        // The same alert under another id (a copy) is not "another" alert.
        if str_field(&hit.source, "kibana.alert.uuid").as_deref() == Some(alert.id.0.as_str()) {
            continue;
        }
        alerts += 1;
        let rule = str_field(&hit.source, "kibana.alert.rule.name")
            .or_else(|| str_field(&hit.source, "rule.name"));
        if let Some(rule) = rule {
            match counts.iter_mut().find(|(r, _)| *r == rule) {
                Some((_, n)) => *n += 1,
                None => counts.push((rule, 1)),
            }
        }
    }
    counts.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    Some(Related {
        name: value.to_string(),
        alerts,
        more: hits.len() >= MAX_HITS,
        rules: counts.into_iter().take(MAX_RULES).map(|(r, _)| r).collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_context_line_says_only_what_there_is_and_escapes_it() {
        let mut e = Enrichment {
            window_hours: 24.0,
            ..Default::default()
        };
        assert_eq!(e.context_line(|id| id.to_string()), None);
        e.host = Some(Related {
            name: "WS-1".into(),
            alerts: 200,
            more: true,
            rules: vec!["A <b>".into(), "B".into()],
        });
        e.open_cases = vec![("c1".into(), "Case & co".into())];
        let line = e
            .context_line(|id| format!("https://k/cases/{id}"))
            .unwrap();
        assert_eq!(
            line,
            ":mag: Last 24h: 200+ other alert(s) on WS-1 (A &lt;b&gt;, B) · open cases naming the host: <https://k/cases/c1|Case &amp; co>"
        );
    }
}
