//! The policy file (`POLICY_FILE`, TOML): the action policies and local maintenance windows,
//! read and validated once at start-up — a bad file stops the service with the line and column
//! of the fault, never half-applies. Without a file, [`Policies::default_grouping`] reproduces
//! the built-in rule (same rule + same host within `POLICY_GROUP_WINDOW_SECS`).
//!
//! `policies.example.toml` at the repository root documents every key; a test parses it.

use std::path::Path;
use std::time::Duration;

use chrono::{DateTime, Datelike, NaiveTime, Utc, Weekday};
use serde::Deserialize;
use toml::Spanned;

use super::kql::{self, Expr};

/// Every policy, in file order (the first whose `match` holds decides), and the local
/// maintenance windows.
#[derive(Debug, Clone)]
pub struct Policies {
    pub policies: Vec<Policy>,
    pub maintenance: Vec<Maintenance>,
    /// Where they came from (`None`: the built-in default).
    pub origin: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Policy {
    pub name: String,
    /// The `match` expression as written, for explanations.
    pub match_text: String,
    pub matcher: Expr,
    pub notify: Notify,
    pub frequency: Frequency,
    /// Alerts acknowledged or closed in Kibana (`kibana.alert.workflow_status`) are suppressed.
    pub suppress_acknowledged: bool,
    pub route: Route,
}

/// How alerts become notifications.
#[derive(Debug, Clone, PartialEq)]
pub enum Notify {
    /// One incident per alert.
    Episode,
    /// One incident per value of the `by` fields within `window` of its first alert; later
    /// alerts join it. `rule` and `host` name the alert's rule (id, else name) and host.
    Group { by: Vec<String>, window: Duration },
    /// Everything matching within each `window` as one summary message; no triage, no commands.
    Digest { window: Duration },
}

/// When a group already notified speaks again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frequency {
    /// When the group opens and when its alerts recover or are closed; `repeat`: also remind
    /// this often while it stays open.
    OnStatusChange { repeat: Option<Duration> },
    /// At most once every this long.
    Throttle(Duration),
    /// Every alert (a thread note for each alert joining a group).
    EveryEvaluation,
}

/// Where a policy's incidents go and what may be offered there.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Route {
    /// Slack channel id (C…); unset: `SLACK_CHANNEL`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    /// Handler to tag: a Slack user (U…) or user group (S…); unset: the handler routing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handler: Option<String>,
    #[serde(default)]
    pub offer: Offer,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Offer {
    /// Triage with proposed commands and decision buttons.
    #[default]
    Full,
    /// The triage summary only: no commands offered, no buttons.
    Summary,
}

/// A local maintenance window: alerts it covers are suppressed while it is active.
#[derive(Debug, Clone)]
pub struct Maintenance {
    pub name: String,
    pub matcher: Expr,
    pub schedule: Schedule,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Schedule {
    Once {
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    },
    /// Every listed weekday (all days when empty) from `from` to `to`, UTC; `to` before `from`
    /// runs past midnight.
    Weekly {
        days: Vec<Weekday>,
        from: NaiveTime,
        to: NaiveTime,
    },
}

impl Maintenance {
    /// Whether the window is active at `now`.
    pub fn active(&self, now: DateTime<Utc>) -> bool {
        match &self.schedule {
            Schedule::Once { start, end } => *start <= now && now < *end,
            Schedule::Weekly { days, from, to } => {
                let t = now.time();
                let on = |d: Weekday| days.is_empty() || days.contains(&d);
                if from <= to {
                    on(now.weekday()) && *from <= t && t < *to
                } else {
                    // Past midnight: today's evening part, or yesterday's window's morning part.
                    (on(now.weekday()) && t >= *from) || (on(now.weekday().pred()) && t < *to)
                }
            }
        }
    }
}

/// A fault in the policy file, with where it is.
#[derive(Debug, thiserror::Error)]
#[error("{origin}:{line}:{column}: {message}")]
pub struct PolicyFileError {
    pub origin: String,
    pub line: usize,
    pub column: usize,
    pub message: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileModel {
    #[serde(default)]
    policy: Vec<PolicyModel>,
    #[serde(default)]
    maintenance: Vec<MaintenanceModel>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyModel {
    name: Spanned<String>,
    #[serde(rename = "match")]
    matcher: Spanned<String>,
    notify: Spanned<String>,
    #[serde(default)]
    group_by: Option<Vec<String>>,
    window: Option<Spanned<String>>,
    frequency: Option<Spanned<String>>,
    repeat: Option<Spanned<String>>,
    every: Option<Spanned<String>>,
    #[serde(default = "yes")]
    suppress_acknowledged: bool,
    #[serde(default)]
    route: Route,
}

fn yes() -> bool {
    true
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MaintenanceModel {
    name: Spanned<String>,
    #[serde(rename = "match")]
    matcher: Option<Spanned<String>>,
    start: Option<Spanned<String>>,
    end: Option<Spanned<String>>,
    #[serde(default)]
    days: Vec<String>,
    from: Option<Spanned<String>>,
    to: Option<Spanned<String>>,
}

/// `30s`, `5m`, `2h`, `1d`, or a plain number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let (num, unit) = match t.find(|c: char| c.is_ascii_alphabetic()) {
        Some(i) => (&t[..i], &t[i..]),
        None => (t, "s"),
    };
    let n: f64 = num
        .trim()
        .parse()
        .map_err(|_| format!("`{text}` is not a duration (e.g. 30s, 5m, 2h, 1d)"))?;
    let secs = match unit {
        "s" => 1.0,
        "m" => 60.0,
        "h" => 3600.0,
        "d" => 86400.0,
        _ => {
            return Err(format!(
                "`{text}`: unknown unit `{unit}` (use s, m, h or d)"
            ));
        }
    };
    if !n.is_finite() || n <= 0.0 || n * secs > 3.2e9 {
        return Err(format!(
            "`{text}`: a duration must be positive (and under a century)"
        ));
    }
    Ok(Duration::from_secs_f64(n * secs))
}

/// 1-based line and column of a byte offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
    (line, column)
}

struct Ctx<'a> {
    origin: &'a str,
    text: &'a str,
}

impl Ctx<'_> {
    fn at(&self, span: std::ops::Range<usize>, message: impl Into<String>) -> PolicyFileError {
        let (line, column) = line_col(self.text, span.start);
        PolicyFileError {
            origin: self.origin.to_string(),
            line,
            column,
            message: message.into(),
        }
    }

    fn duration(&self, v: &Spanned<String>, what: &str) -> Result<Duration, PolicyFileError> {
        parse_duration(v.get_ref()).map_err(|e| self.at(v.span(), format!("{what}: {e}")))
    }

    /// A KQL expression inside a TOML string: the error points into the expression.
    fn expr(&self, v: &Spanned<String>) -> Result<Expr, PolicyFileError> {
        kql::parse(v.get_ref()).map_err(|e| {
            // The span starts at the opening quote; the expression starts one past it (exact
            // for one-line strings without escapes, which is what `match` values are).
            let (line, column) = line_col(self.text, v.span().start);
            PolicyFileError {
                origin: self.origin.to_string(),
                line,
                column: column + e.column,
                message: format!(
                    "bad match expression (column {} of the expression): {}",
                    e.column, e.message
                ),
            }
        })
    }
}

impl Policies {
    /// The built-in policy: today's grouping. `window`: `None` — each alert its own incident.
    pub fn default_grouping(window: Option<Duration>) -> Self {
        let notify = match window {
            Some(window) => Notify::Group {
                by: vec!["rule".into(), "host".into()],
                window,
            },
            None => Notify::Episode,
        };
        Self {
            policies: vec![Policy {
                name: "default".into(),
                match_text: "*".into(),
                matcher: Expr::All,
                notify,
                frequency: Frequency::EveryEvaluation,
                suppress_acknowledged: true,
                route: Route::default(),
            }],
            maintenance: Vec::new(),
            origin: None,
        }
    }

    /// Reads and validates a policy file.
    pub fn load(path: &Path) -> Result<Self, PolicyFileError> {
        let origin = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| PolicyFileError {
            origin: origin.clone(),
            line: 0,
            column: 0,
            message: format!("cannot read the policy file: {e}"),
        })?;
        Self::parse(&origin, &text)
    }

    /// Parses and validates policy-file text; `origin` names it in errors.
    pub fn parse(origin: &str, text: &str) -> Result<Self, PolicyFileError> {
        let cx = Ctx { origin, text };
        let model: FileModel = toml::from_str(text).map_err(|e| {
            let (line, column) = e.span().map(|s| line_col(text, s.start)).unwrap_or((0, 0));
            PolicyFileError {
                origin: origin.to_string(),
                line,
                column,
                message: e.message().to_string(),
            }
        })?;
        if model.policy.is_empty() {
            return Err(PolicyFileError {
                origin: origin.to_string(),
                line: 1,
                column: 1,
                message: "no [[policy]]: a policy file needs at least one (an alert no policy \
                          matches is recorded as `unmatched` and nobody is told)"
                    .into(),
            });
        }
        let mut policies = Vec::new();
        for p in model.policy {
            let name = p.name.get_ref().trim().to_string();
            if name.is_empty() || policies.iter().any(|q: &Policy| q.name == name) {
                return Err(cx.at(p.name.span(), "policy names must be non-empty and unique"));
            }
            let matcher = cx.expr(&p.matcher)?;
            let window = p
                .window
                .as_ref()
                .map(|w| cx.duration(w, "window"))
                .transpose()?;
            let notify = match p.notify.get_ref().as_str() {
                "episode" => Notify::Episode,
                "group" => Notify::Group {
                    by: match p.group_by {
                        Some(by) if !by.is_empty() => by,
                        _ => {
                            return Err(cx.at(
                                p.notify.span(),
                                "notify = \"group\" needs group_by (e.g. [\"host.name\"])",
                            ));
                        }
                    },
                    window: window.ok_or_else(|| {
                        cx.at(
                            p.notify.span(),
                            "notify = \"group\" needs a window (e.g. \"1h\")",
                        )
                    })?,
                },
                "digest" => Notify::Digest {
                    window: window.ok_or_else(|| {
                        cx.at(
                            p.notify.span(),
                            "notify = \"digest\" needs a window (e.g. \"15m\")",
                        )
                    })?,
                },
                other => {
                    return Err(cx.at(
                        p.notify.span(),
                        format!("notify = {other:?}: expected episode, group or digest"),
                    ));
                }
            };
            let repeat = p
                .repeat
                .as_ref()
                .map(|r| cx.duration(r, "repeat"))
                .transpose()?;
            let frequency = match p
                .frequency
                .as_ref()
                .map(|f| (f.get_ref().as_str(), f.span()))
            {
                None | Some(("on_status_change", _)) => Frequency::OnStatusChange { repeat },
                Some(("throttle", span)) => Frequency::Throttle(match &p.every {
                    Some(e) => cx.duration(e, "every")?,
                    None => {
                        return Err(
                            cx.at(span, "frequency = \"throttle\" needs every (e.g. \"1h\")")
                        );
                    }
                }),
                Some(("every_evaluation", _)) => Frequency::EveryEvaluation,
                Some((other, span)) => {
                    return Err(cx.at(
                        span,
                        format!(
                            "frequency = {other:?}: expected on_status_change, throttle or every_evaluation"
                        ),
                    ));
                }
            };
            if repeat.is_some() && !matches!(frequency, Frequency::OnStatusChange { .. }) {
                let span = p.repeat.as_ref().map(|r| r.span()).unwrap_or_default();
                return Err(cx.at(span, "repeat goes with frequency = \"on_status_change\""));
            }
            if let Some(ch) = &p.route.channel
                && !ch.starts_with(['C', 'G'])
            {
                return Err(cx.at(
                    p.name.span(),
                    format!("route.channel {ch:?}: expected a channel id (C…)"),
                ));
            }
            if let Some(h) = &p.route.handler
                && !h.starts_with(['U', 'W', 'S'])
            {
                return Err(cx.at(
                    p.name.span(),
                    format!("route.handler {h:?}: expected a user (U…) or user group (S…) id"),
                ));
            }
            if matches!(notify, Notify::Digest { .. }) && p.route.handler.is_some() {
                return Err(cx.at(
                    p.name.span(),
                    "a digest tags nobody: route.handler does not apply",
                ));
            }
            policies.push(Policy {
                name,
                match_text: p.matcher.get_ref().clone(),
                matcher,
                notify,
                frequency,
                suppress_acknowledged: p.suppress_acknowledged,
                route: p.route,
            });
        }
        let mut maintenance = Vec::new();
        for m in model.maintenance {
            let matcher = match &m.matcher {
                Some(e) => cx.expr(e)?,
                None => Expr::All,
            };
            let time = |v: &Option<Spanned<String>>,
                        what: &str|
             -> Result<Option<NaiveTime>, PolicyFileError> {
                v.as_ref()
                    .map(|s| {
                        NaiveTime::parse_from_str(s.get_ref(), "%H:%M")
                            .map_err(|_| cx.at(s.span(), format!("{what}: expected HH:MM (UTC)")))
                    })
                    .transpose()
            };
            let stamp = |v: &Option<Spanned<String>>,
                         what: &str|
             -> Result<Option<DateTime<Utc>>, PolicyFileError> {
                v.as_ref()
                    .map(|s| {
                        DateTime::parse_from_rfc3339(s.get_ref())
                            .map(|t| t.with_timezone(&Utc))
                            .map_err(|_| cx.at(s.span(), format!("{what}: expected an RFC 3339 time, e.g. 2026-12-08T22:00:00Z")))
                    })
                    .transpose()
            };
            let schedule = match (stamp(&m.start, "start")?, stamp(&m.end, "end")?) {
                (Some(start), Some(end)) if start < end => Schedule::Once { start, end },
                (Some(_), Some(_)) => {
                    return Err(cx.at(m.name.span(), "maintenance end must be after start"));
                }
                (None, None) => {
                    let (Some(from), Some(to)) = (time(&m.from, "from")?, time(&m.to, "to")?)
                    else {
                        return Err(cx.at(
                            m.name.span(),
                            "a maintenance window needs start and end, or from and to (with optional days)",
                        ));
                    };
                    let mut days = Vec::new();
                    for d in &m.days {
                        days.push(d.parse::<Weekday>().map_err(|_| {
                            cx.at(
                                m.name.span(),
                                format!("days: {d:?} is not a weekday (mon … sun)"),
                            )
                        })?);
                    }
                    Schedule::Weekly { days, from, to }
                }
                _ => {
                    return Err(cx.at(
                        m.name.span(),
                        "a one-off maintenance window needs both start and end",
                    ));
                }
            };
            maintenance.push(Maintenance {
                name: m.name.get_ref().clone(),
                matcher,
                schedule,
            });
        }
        Ok(Self {
            policies,
            maintenance,
            origin: Some(origin.to_string()),
        })
    }

    /// The first policy whose `match` holds for the alert document.
    pub fn select(&self, doc: &serde_json::Value) -> Option<&Policy> {
        self.policies.iter().find(|p| p.matcher.matches(doc))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_example_parses() {
        let text = include_str!("../../../policies.example.toml");
        let p = Policies::parse("policies.example.toml", text).unwrap_or_else(|e| panic!("{e}"));
        assert!(p.policies.len() >= 3);
        assert!(
            p.policies
                .iter()
                .any(|p| matches!(p.notify, Notify::Digest { .. }))
        );
        assert!(
            p.policies
                .iter()
                .any(|p| matches!(p.notify, Notify::Group { .. }))
        );
        assert!(!p.maintenance.is_empty());
    }

    #[test]
    fn a_bad_expression_is_refused_with_line_and_column() {
        let text =
            "[[policy]]\nname = \"a\"\nmatch = 'host.name: web-* AND'\nnotify = \"episode\"\n";
        let e = Policies::parse("p.toml", text).unwrap_err();
        assert_eq!((e.line, e.column), (3, 9 + 21), "{e}");
        assert!(
            e.to_string()
                .starts_with("p.toml:3:30: bad match expression"),
            "{e}"
        );
    }

    #[test]
    fn validation_errors_point_at_the_key() {
        let cases = [
            (
                "[[policy]]\nname = \"a\"\nmatch = '*'\nnotify = \"group\"\nwindow = \"1h\"\n",
                4,
                "group_by",
            ),
            (
                "[[policy]]\nname = \"a\"\nmatch = '*'\nnotify = \"digest\"\n",
                4,
                "needs a window",
            ),
            (
                "[[policy]]\nname = \"a\"\nmatch = '*'\nnotify = \"page\"\n",
                4,
                "expected episode",
            ),
            (
                "[[policy]]\nname = \"a\"\nmatch = '*'\nnotify = \"episode\"\nfrequency = \"throttle\"\n",
                5,
                "needs every",
            ),
            (
                "[[policy]]\nname = \"a\"\nmatch = '*'\nnotify = \"group\"\ngroup_by = [\"host.name\"]\nwindow = \"1 fortnight\"\n",
                6,
                "unknown unit",
            ),
            (
                "[[policy]]\nname = \"a\"\nmatch = '*'\nnotify = \"episode\"\ncolour = 1\n",
                5,
                "unknown field",
            ),
            (
                "[[policy]]\nname = \"a\"\nmatch = '*'\nnotify = \"episode\"\n[[maintenance]]\nname = \"m\"\nfrom = \"25:00\"\nto = \"01:00\"\n",
                7,
                "HH:MM",
            ),
        ];
        for (text, line, msg) in cases {
            let e = Policies::parse("p.toml", text).unwrap_err();
            assert_eq!(e.line, line, "{e}");
            assert!(e.message.contains(msg), "{e}");
        }
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("2h").unwrap(), Duration::from_secs(7200));
        assert_eq!(parse_duration("30m").unwrap(), Duration::from_secs(1800));
        assert_eq!(parse_duration("1d").unwrap(), Duration::from_secs(86400));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("-1h").is_err());
        assert!(parse_duration("h").is_err());
        assert!(parse_duration("2w").is_err());
    }

    #[test]
    fn weekly_windows_cross_midnight() {
        let m = Maintenance {
            name: "patch".into(),
            matcher: Expr::All,
            schedule: Schedule::Weekly {
                days: vec![Weekday::Tue],
                from: NaiveTime::from_hms_opt(22, 0, 0).unwrap(),
                to: NaiveTime::from_hms_opt(2, 0, 0).unwrap(),
            },
        };
        let at = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
        // 2026-12-08 is a Tuesday.
        assert!(m.active(at("2026-12-08T23:00:00Z")));
        assert!(m.active(at("2026-12-09T01:59:00Z")));
        assert!(!m.active(at("2026-12-09T02:00:00Z")));
        assert!(!m.active(at("2026-12-08T21:59:00Z")));
        assert!(!m.active(at("2026-12-09T23:00:00Z")));
    }
}
