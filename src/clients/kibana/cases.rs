//! Kibana Cases: create (idempotently, by the incident tag), comment, attach alerts, update.

use reqwest::Method;
use serde_json::{Value, json};

use super::wire::{
    AlertRule, CaseConnector, CaseResponse, CaseSettings, CommentRequest, CreateCaseRequest,
    FindCasesResponse, PatchCasesRequest,
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
}

#[derive(Clone)]
pub struct CasesClient {
    http: KibanaHttp,
}

impl CasesClient {
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
        };
        self.http
            .json(self.http.request(Method::POST, "/api/cases").json(&body))
            .await
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
    if text.chars().count() <= max {
        return text.to_string();
    }
    const NOTE: &str = "\n… (truncated)";
    let keep = max.saturating_sub(NOTE.chars().count());
    let mut out: String = text.chars().take(keep).collect();
    out.push_str(NOTE);
    out
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
