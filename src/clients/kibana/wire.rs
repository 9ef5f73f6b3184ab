//! Kibana wire types: request and response bodies exactly as Kibana names them.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Takes the message out of either Kibana error shape:
/// core `{"statusCode","error","message"}` or assistant `{"message","status_code"}`.
pub fn error_message(body: &str) -> String {
    match serde_json::from_str::<Value>(body) {
        Ok(v) => v
            .get("message")
            .and_then(Value::as_str)
            .map(String::from)
            .or_else(|| v.get("error").and_then(Value::as_str).map(String::from))
            .unwrap_or_else(|| crate::text::truncate(body, 300, "")),
        Err(_) => crate::text::truncate(body, 300, ""),
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ChatCompleteRequest<'a> {
    pub connector_id: &'a str,
    pub persist: bool,
    pub is_stream: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conversation_id: Option<&'a str>,
    pub messages: Vec<ChatMessage<'a>>,
}

#[derive(Debug, Serialize)]
pub struct ChatMessage<'a> {
    pub role: &'a str,
    pub content: &'a str,
}

/// Non-streaming answer of chat/complete.
#[derive(Debug, Deserialize)]
pub struct ChatCompleteResponse {
    pub data: String,
    #[serde(default)]
    pub replacements: HashMap<String, String>,
    #[serde(rename = "conversationId", default)]
    pub conversation_id: Option<String>,
}

/// One NDJSON line of the streamed answer.
#[derive(Debug, Deserialize)]
pub struct StreamLine {
    #[serde(rename = "type", default)]
    pub kind: Option<String>,
    #[serde(default)]
    pub payload: Value,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateConversationRequest<'a> {
    pub title: &'a str,
    pub category: &'a str,
    pub api_config: ApiConfig<'a>,
    pub exclude_from_last_conversation_storage: bool,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiConfig<'a> {
    pub connector_id: &'a str,
    pub action_type_id: &'a str,
}

#[derive(Debug, Deserialize)]
pub struct ConversationResponse {
    pub id: String,
}

/// `POST /api/cases` body. Kibana rejects unknown keys, so this holds exactly the schema's fields.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateCaseRequest {
    pub title: String,
    pub description: String,
    pub tags: Vec<String>,
    pub connector: CaseConnector,
    pub settings: CaseSettings,
    pub owner: &'static str,
    pub severity: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub assignees: Vec<CaseAssignee>,
}

#[derive(Debug, Serialize)]
pub struct CaseAssignee {
    pub uid: String,
}

#[derive(Debug, Serialize)]
pub struct CaseConnector {
    pub id: &'static str,
    pub name: &'static str,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub fields: Option<Value>,
}

impl CaseConnector {
    /// No external incident system.
    pub fn none() -> Self {
        Self {
            id: "none",
            name: "none",
            kind: ".none",
            fields: None,
        }
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CaseSettings {
    pub sync_alerts: bool,
}

/// `POST /api/cases/{id}/comments` body: a user comment or an alert attachment.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum CommentRequest {
    User {
        comment: String,
        owner: &'static str,
    },
    Alert {
        #[serde(rename = "alertId")]
        alert_id: String,
        index: String,
        rule: AlertRule,
        owner: &'static str,
    },
    /// Several alerts in one attachment (`alertId` and `index` as parallel arrays, ≤ 1,000).
    #[serde(rename = "alert")]
    Alerts {
        #[serde(rename = "alertId")]
        alert_id: Vec<String>,
        index: Vec<String>,
        rule: AlertRule,
        owner: &'static str,
    },
}

#[derive(Debug, Serialize)]
pub struct AlertRule {
    // Absent rather than null: the schema's fields are strings, not nullable (an alert from a
    // rule action's hits may carry no rule id).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct PatchCasesRequest {
    pub cases: Vec<Value>,
}

/// The parts of a case object we use.
#[derive(Debug, Clone, Deserialize)]
pub struct CaseResponse {
    pub id: String,
    pub version: String,
    #[serde(default)]
    pub title: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub status: String,
    #[serde(rename = "totalAlerts", default)]
    pub total_alerts: u64,
}

#[derive(Debug, Deserialize)]
pub struct FindCasesResponse {
    pub cases: Vec<CaseResponse>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_error_shapes() {
        assert_eq!(
            error_message(
                r#"{"statusCode":400,"error":"Bad Request","message":"[request body]: bad"}"#
            ),
            "[request body]: bad"
        );
        assert_eq!(
            error_message(r#"{"message":"connector not found","status_code":404}"#),
            "connector not found"
        );
        assert_eq!(
            error_message("<html>gateway</html>"),
            "<html>gateway</html>"
        );
    }

    #[test]
    fn alert_comment_has_kibana_field_names() {
        let c = CommentRequest::Alert {
            alert_id: "a".into(),
            index: "i".into(),
            rule: AlertRule {
                id: Some("r".into()),
                name: None,
            },
            owner: "securitySolution",
        };
        let v = serde_json::to_value(c).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"type":"alert","alertId":"a","index":"i","rule":{"id":"r"},"owner":"securitySolution"})
        );
    }
}

/// One entry of `GET /api/actions/connectors` (the fields triage-bot reads).
#[derive(Debug, Clone, serde::Deserialize)]
pub struct Connector {
    pub id: String,
    pub connector_type_id: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub config: serde_json::Value,
}
