//! Who handles an alert: the routing table (`HANDLER_ROUTES`: by host-name pattern, rule tag or
//! OS family → Slack user id, user group, e-mail or name), else the assistant's knowledge-base
//! answer to the handler question, resolved to a Slack user by e-mail (`users.lookupByEmail`) or
//! by name (`users.list`, cached), else "unassigned" with the fallback group
//! (`SLACK_FALLBACK_GROUP`) mentioned so the alert still reaches people.
//!
//! The handler question ("Who handles windows alerts?") has one answer per OS family, not per
//! alert, so the service keeps it ([`resolve_cached`]: in the database, for
//! `HANDLER_CACHE_SECS`) and asks it once at a time: the triage jobs of an alert storm that miss
//! the cache together wait for the first one's answer instead of each asking.

use std::time::Duration;

use crate::clients::Retryable as _;
use crate::clients::slack::SlackClient;
use crate::domain::Alert;
use crate::domain::HandlerTag;
use crate::domain::alert::field;
use crate::text::glob;

use super::prompt::Prompts;
use crate::clients::ai::{self, Assistant, AssistantError, Purpose};
use crate::config::{Route, RouteMatch, RouteTarget, RoutingSettings};
use crate::pipeline::Ctx;

/// Resolves the handler of `alert`, asking the assistant every time the table does not decide
/// (the replay command). Never fails: every problem degrades to the next source.
pub async fn resolve(
    routing: &RoutingSettings,
    slack: &SlackClient,
    assistant: &dyn Assistant,
    prompts: &Prompts,
    alert: &Alert,
) -> HandlerTag {
    if let Ok(Some(tag)) = routed(routing, slack, alert, false).await {
        return tag;
    }
    let answer = match prompts.handler_question(alert) {
        Ok(question) => ask_handler(assistant, &question).await.unwrap_or_else(|e| {
            tracing::warn!(error = %e, "cannot ask the assistant who handles the alert");
            None
        }),
        Err(e) => {
            tracing::warn!(error = %e, "handler prompt failed");
            None
        }
    };
    from_answer(routing, slack, answer, false)
        .await
        .unwrap_or_else(|_| unassigned(routing))
}

/// A lookup that failed in a way a retry can fix (Slack or the assistant briefly unavailable):
/// the triage job is tried again rather than tagging nobody — an untagged card would leave the
/// rightful handler unable to approve.
#[derive(Debug)]
pub struct TryAgain(pub String);

/// Resolves the handler of `alert` for the service: the routing table, else the assistant's
/// answer to the handler question, reused for `HANDLER_CACHE_SECS` (asked every time when that
/// is 0). With `may_retry`, a failure a retry can fix is returned ([`TryAgain`]); without it (the
/// job's last attempts), every problem degrades to the next source.
pub async fn resolve_cached(
    ctx: &Ctx,
    alert: &Alert,
    may_retry: bool,
) -> Result<HandlerTag, TryAgain> {
    let routing = &ctx.settings.triage.routing;
    if let Some(tag) = routed(routing, &ctx.slack, alert, may_retry).await? {
        return Ok(tag);
    }
    let question = match ctx.prompts.handler_question(alert) {
        Ok(q) => q,
        Err(e) => {
            tracing::warn!(error = %e, "handler prompt failed");
            return from_answer(routing, &ctx.slack, None, may_retry).await;
        }
    };
    let answer = match routing.handler_cache {
        Some(ttl) => cached_answer(ctx, &question, ttl, may_retry).await?,
        None => match ask_handler(ctx.assistant.as_ref(), &question).await {
            Ok(a) => a,
            Err(e) if may_retry && e.is_retryable() => return Err(TryAgain(e.to_string())),
            Err(e) => {
                tracing::warn!(error = %e, "cannot ask the assistant who handles the alert");
                None
            }
        },
    };
    from_answer(routing, &ctx.slack, answer, may_retry).await
}

/// The stored answer to `question` when it is younger than `ttl`, else the assistant's, stored.
/// Only one question is asked at a time, so concurrent misses share the first answer. A failed
/// question is not stored: the next alert asks again.
async fn cached_answer(
    ctx: &Ctx,
    question: &str,
    ttl: Duration,
    may_retry: bool,
) -> Result<Option<String>, TryAgain> {
    let lookup = || async {
        match ctx.store.cached_handler_answer(question, ttl).await {
            Ok(hit) => hit,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the handler-answer cache");
                None
            }
        }
    };
    if let Some(answer) = lookup().await {
        return Ok(answer);
    }
    let _one_at_a_time = ctx.handler_question.lock().await;
    if let Some(answer) = lookup().await {
        return Ok(answer);
    }
    match ask_handler(ctx.assistant.as_ref(), question).await {
        Ok(answer) => {
            if let Err(e) = ctx
                .store
                .cache_handler_answer(question, answer.as_deref())
                .await
            {
                tracing::warn!(error = %e, "cannot store the handler answer");
            }
            Ok(answer)
        }
        Err(e) if may_retry && e.is_retryable() => Err(TryAgain(e.to_string())),
        Err(e) => {
            tracing::warn!(error = %e, "cannot ask the assistant who handles the alert");
            Ok(None)
        }
    }
}

/// The handler the routing table names, when it names one that resolves.
async fn routed(
    routing: &RoutingSettings,
    slack: &SlackClient,
    alert: &Alert,
    may_retry: bool,
) -> Result<Option<HandlerTag>, TryAgain> {
    let Some(route) = best_route(&routing.routes, alert) else {
        return Ok(None);
    };
    tracing::debug!(route = ?route.matches, "handler from the routing table");
    resolve_target(slack, &route.target, may_retry).await
}

/// The handler the assistant's answer names (resolved in Slack when possible), else unassigned.
async fn from_answer(
    routing: &RoutingSettings,
    slack: &SlackClient,
    answer: Option<String>,
    may_retry: bool,
) -> Result<HandlerTag, TryAgain> {
    Ok(match answer {
        Some(answer) => {
            let target = if answer.contains('@') && answer.contains('.') {
                RouteTarget::Email(answer.clone())
            } else {
                RouteTarget::Name(answer.clone())
            };
            match resolve_target(slack, &target, may_retry).await? {
                Some(tag) => tag,
                // Named but not found in Slack: tag by name (and the group, if any).
                None => HandlerTag {
                    slack_id: routing.fallback_group.clone(),
                    name: Some(answer),
                },
            }
        }
        None => unassigned(routing),
    })
}

/// Nobody could be resolved: the fallback group is mentioned when there is one.
pub fn unassigned(routing: &RoutingSettings) -> HandlerTag {
    match &routing.fallback_group {
        Some(group) => HandlerTag {
            slack_id: Some(group.clone()),
            name: Some("unassigned".into()),
        },
        None => HandlerTag {
            slack_id: None,
            name: None,
        },
    }
}

/// The most specific matching route: host pattern, then rule tag, then OS family, then `*`.
pub fn best_route<'a>(routes: &'a [Route], alert: &Alert) -> Option<&'a Route> {
    let host = alert.host_name.to_lowercase();
    let os = alert.os_family.clone().unwrap_or_default();
    let tags = rule_tags(alert);
    let rank = |r: &Route| match &r.matches {
        RouteMatch::Host(p) if glob(p, &host) => Some(0),
        RouteMatch::Tag(t) if tags.iter().any(|x| x == t) => Some(1),
        RouteMatch::Os(o) if *o == os => Some(2),
        RouteMatch::Any => Some(3),
        _ => None,
    };
    routes
        .iter()
        .filter_map(|r| rank(r).map(|k| (k, r)))
        .min_by_key(|(k, _)| *k)
        .map(|(_, r)| r)
}

/// The rule's tags, lowercased (`kibana.alert.rule.tags`, or `tags` on other documents).
fn rule_tags(alert: &Alert) -> Vec<String> {
    ["kibana.alert.rule.tags", "tags"]
        .iter()
        .filter_map(|p| field(&alert.raw, p))
        .flat_map(|v| match v {
            serde_json::Value::Array(items) => items
                .iter()
                .filter_map(|i| i.as_str().map(str::to_lowercase))
                .collect(),
            serde_json::Value::String(s) => vec![s.to_lowercase()],
            _ => Vec::new(),
        })
        .collect()
}

async fn resolve_target(
    slack: &SlackClient,
    target: &RouteTarget,
    may_retry: bool,
) -> Result<Option<HandlerTag>, TryAgain> {
    Ok(match target {
        RouteTarget::User(id) | RouteTarget::Group(id) => Some(HandlerTag {
            slack_id: Some(id.clone()),
            name: None,
        }),
        RouteTarget::Email(email) => match slack.lookup_user_by_email(email).await {
            Ok(Some(id)) => Some(HandlerTag {
                slack_id: Some(id),
                name: None,
            }),
            Ok(None) => {
                tracing::warn!("no Slack user has the routed e-mail address");
                None
            }
            Err(e) if may_retry && e.is_retryable() => return Err(TryAgain(e.to_string())),
            Err(e) => {
                tracing::warn!(error = %e, "cannot look the handler up by e-mail");
                None
            }
        },
        RouteTarget::Name(name) => match slack.find_user_by_name(name).await {
            Ok(Some(id)) => Some(HandlerTag {
                slack_id: Some(id),
                name: Some(name.clone()),
            }),
            Ok(None) => None,
            Err(e) if may_retry && e.is_retryable() => return Err(TryAgain(e.to_string())),
            Err(e) => {
                tracing::warn!(error = %e, "cannot look the handler up in Slack");
                None
            }
        },
    })
}

/// Asks the handler question: `Ok(Some(name))`, or `Ok(None)` when the answer names nobody.
async fn ask_handler(
    assistant: &dyn Assistant,
    question: &str,
) -> Result<Option<String>, AssistantError> {
    ai::count_call(Purpose::Handler);
    let reply = assistant.ask(question, None).await?;
    Ok(clean_name(&reply.text))
}

/// "**Alice Analyst.**" → "Alice Analyst"; an answer that is not a short name is ignored.
pub fn clean_name(answer: &str) -> Option<String> {
    let first = answer.lines().map(str::trim).find(|l| !l.is_empty())?;
    let name = first.trim_matches(|c: char| {
        c == '*' || c == '_' || c == '`' || c == '.' || c == '"' || c == '@' || c.is_whitespace()
    });
    (!name.is_empty() && name.split_whitespace().count() <= 4 && name.len() <= 64)
        .then(|| name.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::triage::parse_route;
    use serde_json::json;

    #[test]
    fn names_are_cleaned() {
        assert_eq!(
            clean_name("**Alice Analyst.**\n").as_deref(),
            Some("Alice Analyst")
        );
        assert_eq!(clean_name("@bob").as_deref(), Some("bob"));
        assert_eq!(
            clean_name("I am not sure who handles these alerts in your organisation."),
            None
        );
        assert_eq!(clean_name("   "), None);
    }

    #[test]
    fn globs() {
        assert!(glob("ws-fin-*", "ws-fin-042"));
        assert!(glob("ws-???-042", "ws-fin-042"));
        assert!(glob("*", ""));
        assert!(!glob("srv-*", "ws-fin-042"));
        assert!(glob("*-042", "ws-fin-042"));
    }

    #[test]
    fn the_most_specific_route_wins() {
        let raw = json!({"@timestamp":"2025-01-01T00:00:00Z","kibana.alert.uuid":"a","kibana.alert.rule.name":"R",
            "kibana.alert.rule.tags":["OS: Windows","Tactic: Persistence"],
            "host":{"name":"WS-FIN-042","os":{"family":"windows"}}});
        let alert = Alert::from_document("a", "i", &raw, "@timestamp").unwrap();
        let routes: Vec<Route> = [
            "*=U0ANYONE01",
            "windows=U0WINDOWS1",
            "tag:Tactic: Persistence=S0IRTEAM1",
            "host:srv-*=U0SERVERS1",
        ]
        .iter()
        .map(|r| parse_route(r).unwrap())
        .collect();
        let best = best_route(&routes, &alert).unwrap();
        assert_eq!(best.target, RouteTarget::Group("S0IRTEAM1".into()));
        let mut with_host = routes.clone();
        with_host.push(parse_route("host:WS-FIN-*=bob@example.com").unwrap());
        assert_eq!(
            best_route(&with_host, &alert).unwrap().target,
            RouteTarget::Email("bob@example.com".into())
        );
        assert_eq!(
            best_route(&routes[..2], &alert).unwrap().target,
            RouteTarget::User("U0WINDOWS1".into())
        );
        assert!(best_route(&routes[3..], &alert).is_none());
    }

    #[test]
    fn unassigned_mentions_the_fallback_group() {
        let none = unassigned(&RoutingSettings::default());
        assert_eq!(none.mention(), "unassigned");
        let g = unassigned(&RoutingSettings {
            routes: vec![],
            fallback_group: Some("S0SOCTEAM".into()),
            handler_cache: None,
        });
        assert_eq!(g.mention(), "<!subteam^S0SOCTEAM>");
    }
}
