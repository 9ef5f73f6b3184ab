//! [`Alert`]: one security alert, normalised from whichever index or push it came from.
//!
//! Alert documents mix dotted keys (`"kibana.alert.severity": "critical"`) and nested objects
//! (`host: { name: … }`), so every lookup goes through [`field`], which accepts both.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// `kibana.alert.uuid`, which equals the alert document's `_id`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct AlertId(pub String);

impl fmt::Display for AlertId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    pub fn parse(s: &str) -> Option<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "low" => Some(Self::Low),
            "medium" => Some(Self::Medium),
            "high" => Some(Self::High),
            "critical" => Some(Self::Critical),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Low => "low",
            Self::Medium => "medium",
            Self::High => "high",
            Self::Critical => "critical",
        }
    }

    /// "Critical", for titles.
    pub fn title(self) -> &'static str {
        match self {
            Self::Low => "Low",
            Self::Medium => "Medium",
            Self::High => "High",
            Self::Critical => "Critical",
        }
    }
}

/// A normalised alert. `raw` keeps the whole original document for the prompt and the audit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    pub id: AlertId,
    /// The concrete index the document lives in (cases attach alerts by concrete index).
    pub index: String,
    pub rule_id: Option<String>,
    pub rule_name: String,
    pub severity: Severity,
    pub risk_score: Option<f64>,
    pub host_name: String,
    pub host_ips: Vec<String>,
    pub os_family: Option<String>,
    pub user_name: Option<String>,
    pub timestamp: DateTime<Utc>,
    pub raw: Value,
}

/// Why a document could not become an [`Alert`].
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AlertError {
    #[error("alert document has no `{0}` field")]
    Missing(&'static str),
    #[error("alert field `{field}` is malformed: {reason}")]
    Malformed { field: &'static str, reason: String },
}

impl Alert {
    /// Normalises one alert document. `timestamp_field` is the source's own time field.
    pub fn from_document(
        doc_id: &str,
        index: &str,
        source: &Value,
        timestamp_field: &str,
    ) -> Result<Self, AlertError> {
        if !source.is_object() {
            return Err(AlertError::Malformed {
                field: "_source",
                reason: "not a JSON object".into(),
            });
        }
        let id = str_field(source, "kibana.alert.uuid")
            .or_else(|| (!doc_id.is_empty()).then(|| doc_id.to_string()))
            .ok_or(AlertError::Missing("kibana.alert.uuid"))?;
        let rule_name = str_field(source, "kibana.alert.rule.name")
            .or_else(|| str_field(source, "rule.name"))
            .or_else(|| str_field(source, "message"))
            .ok_or(AlertError::Missing("kibana.alert.rule.name"))?;
        let rule_id =
            str_field(source, "kibana.alert.rule.uuid").or_else(|| str_field(source, "rule.id"));
        let severity = match str_field(source, "kibana.alert.severity") {
            Some(s) => Severity::parse(&s).ok_or_else(|| AlertError::Malformed {
                field: "kibana.alert.severity",
                reason: format!("unknown severity {s:?}"),
            })?,
            None => severity_from_score(
                num_field(source, "event.severity")
                    .or_else(|| num_field(source, "event.risk_score")),
            ),
        };
        let risk_score = num_field(source, "kibana.alert.risk_score")
            .or_else(|| num_field(source, "event.risk_score"));
        let host_name = str_field(source, "host.name")
            .or_else(|| str_field(source, "host.hostname"))
            .ok_or(AlertError::Missing("host.name"))?;
        let host_ips = match field(source, "host.ip") {
            Some(Value::Array(items)) => items
                .iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect(),
            Some(Value::String(s)) => vec![s.clone()],
            _ => Vec::new(),
        };
        let os_family = str_field(source, "host.os.family")
            .or_else(|| str_field(source, "host.os.platform"))
            .map(|s| s.to_ascii_lowercase());
        let user_name = str_field(source, "user.name");
        let ts_text = str_field(source, timestamp_field)
            .or_else(|| str_field(source, "@timestamp"))
            .ok_or(AlertError::Missing("@timestamp"))?;
        let timestamp = DateTime::parse_from_rfc3339(&ts_text)
            .map_err(|e| AlertError::Malformed {
                field: "@timestamp",
                reason: e.to_string(),
            })?
            .with_timezone(&Utc);
        // The fields kept in columns, compared and grouped on: NUL-free where they enter.
        let clean = |s: String| crate::text::nul_free(&s).into_owned();
        Ok(Self {
            id: AlertId(clean(id)),
            index: index.to_string(),
            rule_id: rule_id.map(clean),
            rule_name: clean(rule_name),
            severity,
            risk_score,
            host_name: clean(host_name),
            host_ips,
            os_family,
            user_name: user_name.map(clean),
            timestamp,
            raw: source.clone(),
        })
    }

    /// The first IPv4 address of the host, else the first address, for summaries and titles.
    pub fn primary_ip(&self) -> Option<&str> {
        self.host_ips
            .iter()
            .find(|ip| ip.parse::<std::net::Ipv4Addr>().is_ok())
            .or(self.host_ips.first())
            .map(String::as_str)
    }
}

/// Elastic Defend raw alerts carry a numeric severity (0–100) instead of a word.
fn severity_from_score(score: Option<f64>) -> Severity {
    match score {
        Some(s) if s >= 90.0 => Severity::Critical,
        Some(s) if s >= 70.0 => Severity::High,
        Some(s) if s >= 40.0 => Severity::Medium,
        _ => Severity::Low,
    }
}

/// Looks up a dotted path in a document that may store it as a dotted key, as nested objects,
/// or as any mix of the two (`"kibana.alert": {"rule.name": …}`).
pub fn field<'a>(doc: &'a Value, path: &str) -> Option<&'a Value> {
    let parts: Vec<&str> = path.split('.').collect();
    lookup(doc, &parts)
}

fn lookup<'a>(doc: &'a Value, parts: &[&str]) -> Option<&'a Value> {
    if parts.is_empty() {
        return Some(doc);
    }
    let obj = doc.as_object()?;
    // Longest dotted prefix first: "kibana.alert.rule.name" as one key beats walking.
    for take in (1..=parts.len()).rev() {
        let key = parts[..take].join(".");
        if let Some(next) = obj.get(&key)
            && let Some(found) = lookup(next, &parts[take..])
        {
            return Some(found);
        }
    }
    None
}

/// A string field; a one-element array of strings counts too (the `fields` API returns arrays).
pub fn str_field(doc: &Value, path: &str) -> Option<String> {
    match field(doc, path)? {
        Value::String(s) if !s.trim().is_empty() => Some(s.clone()),
        Value::Array(items) => items.first().and_then(|v| v.as_str()).map(String::from),
        _ => None,
    }
}

fn num_field(doc: &Value, path: &str) -> Option<f64> {
    match field(doc, path)? {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sample() -> Value {
        json!({
            "@timestamp": "2025-03-04T10:15:32.118Z",
            "kibana.alert.uuid": "3f1c",
            "kibana.alert.severity": "critical",
            "kibana.alert.risk_score": 99,
            "kibana.alert.rule.name": "Registry Run Key Set by WMI Provider Host",
            "kibana.alert.rule.uuid": "b7e2",
            "host": {"name": "WS-FIN-042", "ip": ["fe80::1", "10.20.4.42"], "os": {"family": "Windows"}},
            "user": {"name": "SYSTEM"}
        })
    }

    #[test]
    fn normalises_a_security_alert_with_dotted_and_nested_fields() {
        let a = Alert::from_document(
            "3f1c",
            ".internal.alerts-security.alerts-default-000001",
            &sample(),
            "@timestamp",
        )
        .unwrap();
        assert_eq!(a.id.0, "3f1c");
        assert_eq!(a.severity, Severity::Critical);
        assert_eq!(a.host_name, "WS-FIN-042");
        assert_eq!(a.primary_ip(), Some("10.20.4.42"));
        assert_eq!(a.os_family.as_deref(), Some("windows"));
        assert_eq!(a.rule_id.as_deref(), Some("b7e2"));
        assert_eq!(a.risk_score, Some(99.0));
    }

    #[test]
    fn mixed_dotted_and_nested_lookup() {
        let doc = json!({"kibana.alert": {"rule": {"name": "x"}}, "a": {"b.c": 1}});
        assert_eq!(
            str_field(&doc, "kibana.alert.rule.name").as_deref(),
            Some("x")
        );
        assert_eq!(field(&doc, "a.b.c"), Some(&json!(1)));
    }

    #[test]
    fn missing_host_is_a_clear_error() {
        let mut doc = sample();
        doc.as_object_mut().unwrap().remove("host");
        let err = Alert::from_document("x", "i", &doc, "@timestamp").unwrap_err();
        assert_eq!(err.to_string(), "alert document has no `host.name` field");
    }

    #[test]
    fn bad_severity_and_non_object_are_rejected() {
        let mut doc = sample();
        doc["kibana.alert.severity"] = json!("urgent");
        assert!(matches!(
            Alert::from_document("x", "i", &doc, "@timestamp"),
            Err(AlertError::Malformed { .. })
        ));
        assert!(Alert::from_document("x", "i", &json!([1]), "@timestamp").is_err());
    }
}
