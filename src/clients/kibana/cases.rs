//! Kibana Cases: create (idempotently, by the incident tag), comment, attach alerts, update.

use reqwest::Method;
use serde_json::{Value, json};

use super::wire::{
    AlertRule, CaseAssignee, CaseConnector, CaseResponse, CaseSettings, CommentRequest,
    CreateCaseRequest, FindCasesResponse, PatchCasesRequest,
};
use super::{KibanaError, KibanaHttp};
use crate::domain::{Alert, Severity};

pub const OWNER: &str = "securitySolution";
pub const MAX_TITLE: usize = 160;
pub const MAX_TEXT: usize = 30_000;

/// What a new case says.
#[derive(Debug, Clone)]
pub struct NewCase {
    pub title: String,
    pub description: String,
    pub tags: Vec<String>,
    pub severity: Severity,
    /// At most 50 characters (Kibana's limit).
    pub category: Option<String>,
    /// A Kibana user profile uid.
    pub assignee: Option<String>,
}

#[derive(Clone)]
pub struct CasesClient {
    http: KibanaHttp,
}

impl CasesClient {
    /// The Kibana connection underneath (for the other Kibana APIs the policies read).
    pub fn http(&self) -> &KibanaHttp {
        &self.http
    }

    pub fn new(http: KibanaHttp) -> Self {
        Self { http }
    }

    /// The case carrying `tag`, if one exists (the idempotency key of case creation).
    pub async fn find_by_tag(&self, tag: &str) -> Result<Option<CaseResponse>, KibanaError> {
        let rb = self.http.request(Method::GET, "/api/cases/_find").query(&[
            ("owner", OWNER),
            ("tags", tag),
            ("perPage", "10"),
            ("sortField", "createdAt"),
            ("sortOrder", "asc"),
        ]);
        let found: FindCasesResponse = self.http.json(rb).await?;
        // Kibana ORs tags in _find; make sure the case really has ours.
        Ok(found
            .cases
            .into_iter()
            .find(|c| c.tags.iter().any(|t| t == tag)))
    }

    /// Open Security cases whose title or description mentions `text` (newest first, at most 5).
    pub async fn find_open_mentioning(&self, text: &str) -> Result<Vec<CaseResponse>, KibanaError> {
        let rb = self.http.request(Method::GET, "/api/cases/_find").query(&[
            ("owner", OWNER),
            ("status", "open"),
            ("search", text),
            ("perPage", "5"),
            ("sortField", "createdAt"),
            ("sortOrder", "desc"),
        ]);
        let found: FindCasesResponse = self.http.json(rb).await?;
        Ok(found.cases)
    }

    pub async fn create(&self, case: NewCase) -> Result<CaseResponse, KibanaError> {
        let body = CreateCaseRequest {
            title: clip(&case.title, MAX_TITLE),
            description: clip(&case.description, MAX_TEXT),
            tags: case
                .tags
                .into_iter()
                .map(|t| clip(&t, 256))
                .filter(|t| !t.is_empty())
                .collect(),
            connector: CaseConnector::none(),
            settings: CaseSettings { sync_alerts: true },
            owner: OWNER,
            severity: case.severity.as_str(),
            category: case.category.map(|c| crate::text::truncate(&c, 50, "")),
            assignees: case
                .assignee
                .map(|uid| vec![CaseAssignee { uid }])
                .unwrap_or_default(),
        };
        self.http
            .json(self.http.request(Method::POST, "/api/cases").json(&body))
            .await
    }

    /// `DELETE /api/cases?ids=…` (needs the Cases `delete` sub-privilege).
    pub async fn delete(&self, case_id: &str) -> Result<(), KibanaError> {
        let rb = self
            .http
            .request(Method::DELETE, "/api/cases")
            .query(&[("ids", case_id)]);
        self.http.send(rb).await.map(|_| ())
    }

    pub async fn comment(&self, case_id: &str, text: &str) -> Result<CaseResponse, KibanaError> {
        let body = CommentRequest::User {
            comment: clip(text, MAX_TEXT),
            owner: OWNER,
        };
        self.post_comment(case_id, &body).await
    }

    /// Attaches the alert document (by its concrete index) to the case.
    pub async fn attach_alert(
        &self,
        case_id: &str,
        alert: &Alert,
    ) -> Result<CaseResponse, KibanaError> {
        let body = CommentRequest::Alert {
            alert_id: alert.id.0.clone(),
            index: alert.index.clone(),
            rule: AlertRule {
                id: alert.rule_id.clone(),
                name: Some(alert.rule_name.clone()),
            },
            owner: OWNER,
        };
        self.post_comment(case_id, &body).await
    }

    /// Attaches several alerts in one comment (at most 1,000, Kibana's limit); the rule named
    /// is the first alert's.
    pub async fn attach_alerts(
        &self,
        case_id: &str,
        alerts: &[&Alert],
    ) -> Result<CaseResponse, KibanaError> {
        let first = alerts
            .first()
            .ok_or_else(|| KibanaError::Decode("no alerts to attach".into()))?;
        let body = CommentRequest::Alerts {
            alert_id: alerts.iter().map(|a| a.id.0.clone()).collect(),
            index: alerts.iter().map(|a| a.index.clone()).collect(),
            rule: AlertRule {
                id: first.rule_id.clone(),
                name: Some(first.rule_name.clone()),
            },
            owner: OWNER,
        };
        self.post_comment(case_id, &body).await
    }

    async fn post_comment(
        &self,
        case_id: &str,
        body: &CommentRequest,
    ) -> Result<CaseResponse, KibanaError> {
        let path = format!("/api/cases/{case_id}/comments");
        self.http
            .json(self.http.request(Method::POST, &path).json(body))
            .await
    }

    /// The texts of the case's user comments (for idempotent retries), all pages.
    pub async fn comment_texts(&self, case_id: &str) -> Result<Vec<String>, KibanaError> {
        let mut out = Vec::new();
        for page in 1..=50u32 {
            let rb = self
                .http
                .request(Method::GET, &format!("/api/cases/{case_id}/comments/_find"))
                .query(&[("perPage", "100".to_string()), ("page", page.to_string())]);
            let found: Value = self.http.json(rb).await?;
            let comments = found
                .get("comments")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            out.extend(
                comments
                    .iter()
                    .filter_map(|c| c.get("comment").and_then(Value::as_str))
                    .map(String::from),
            );
            let total = found.get("total").and_then(Value::as_u64).unwrap_or(0);
            if comments.is_empty() || (page as u64) * 100 >= total {
                break;
            }
        }
        Ok(out)
    }

    /// The whole case object as Kibana returns it (comments included).
    pub async fn get_raw(&self, case_id: &str) -> Result<Value, KibanaError> {
        self.http
            .json(
                self.http
                    .request(Method::GET, &format!("/api/cases/{case_id}")),
            )
            .await
    }

    pub async fn get(&self, case_id: &str) -> Result<CaseResponse, KibanaError> {
        self.http
            .json(
                self.http
                    .request(Method::GET, &format!("/api/cases/{case_id}")),
            )
            .await
    }

    /// Updates fields of a case at `version`. A stale version is re-read and retried, a few times.
    pub async fn update(
        &self,
        case_id: &str,
        version: &str,
        fields: Value,
    ) -> Result<CaseResponse, KibanaError> {
        let mut version = version.to_string();
        let mut attempt = 0;
        loop {
            let mut patch = json!({ "id": case_id, "version": version });
            if let (Some(p), Some(f)) = (patch.as_object_mut(), fields.as_object()) {
                for (k, v) in f {
                    p.insert(k.clone(), v.clone());
                }
            }
            let rb = self
                .http
                .request(Method::PATCH, "/api/cases")
                .json(&PatchCasesRequest { cases: vec![patch] });
            match self.http.json::<Vec<CaseResponse>>(rb).await {
                Ok(mut cases) if !cases.is_empty() => return Ok(cases.remove(0)),
                Ok(_) => {
                    return Err(KibanaError::Decode(
                        "PATCH /api/cases returned no case".into(),
                    ));
                }
                // Kibana refuses a patch that changes nothing (406 "All update fields are
                // identical to current version."): the case already says this — typically an
                // earlier attempt whose answer was lost wrote it. That is success.
                Err(KibanaError::Status {
                    status: 406,
                    message,
                }) if message.contains("identical to current version") => {
                    return self.get(case_id).await;
                }
                Err(KibanaError::Status { status: 409, .. }) if attempt < 3 => {
                    attempt += 1;
                    version = self.get(case_id).await?.version;
                }
                Err(e) => return Err(e),
            }
        }
    }
}

/// Cuts text to at most `max` characters, saying so at the end.
pub fn clip(text: &str, max: usize) -> String {
    crate::text::truncate(text, max, "\n… (truncated)")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clip_respects_limit_in_characters() {
        let s = "é".repeat(40_000);
        let c = clip(&s, MAX_TEXT);
        assert_eq!(c.chars().count(), MAX_TEXT);
        assert!(c.ends_with("(truncated)"));
        assert_eq!(clip("short", 10), "short");
    }
}
