//! Kibana connectors (the actions API): `GET /api/actions/connectors`, to check that the GenAI
//! connector the assistant names exists in the space (`triage-bot check-config --connect`) and to
//! find a connector by name; `GET /api/actions/connector_types` (is a type enabled, and by which
//! licence); `POST /api/actions/connector` and `DELETE /api/actions/connector/{id}`
//! (`triage-bot setup kibana-connector`). The space is the [`KibanaHttp`]'s.

use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::wire::Connector;
use super::{KibanaError, KibanaHttp};

/// Every connector of the space.
pub async fn list(http: &KibanaHttp) -> Result<Vec<Connector>, KibanaError> {
    http.json(http.request(Method::GET, "/api/actions/connectors"))
        .await
}

/// One entry of `GET /api/actions/connector_types`.
#[derive(Debug, Clone, Deserialize)]
pub struct ConnectorType {
    pub id: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub enabled: bool,
    #[serde(default = "yes")]
    pub enabled_in_config: bool,
    #[serde(default = "yes")]
    pub enabled_in_license: bool,
    #[serde(default)]
    pub minimum_license_required: String,
}

fn yes() -> bool {
    true
}

/// The connector types this Kibana knows, with whether each is enabled (and if not, why).
pub async fn types(http: &KibanaHttp) -> Result<Vec<ConnectorType>, KibanaError> {
    http.json(http.request(Method::GET, "/api/actions/connector_types"))
        .await
}

/// The body of `POST /api/actions/connector`.
#[derive(Debug, Clone, Serialize)]
pub struct CreateConnector {
    pub name: String,
    pub connector_type_id: String,
    pub config: Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secrets: Option<Value>,
}

/// Creates a connector (Kibana picks the id).
pub async fn create(http: &KibanaHttp, body: &CreateConnector) -> Result<Connector, KibanaError> {
    http.json(
        http.request(Method::POST, "/api/actions/connector")
            .json(body),
    )
    .await
}

/// Deletes a connector (204).
pub async fn delete(http: &KibanaHttp, id: &str) -> Result<(), KibanaError> {
    let path = format!("/api/actions/connector/{id}");
    http.send(http.request(Method::DELETE, &path)).await?;
    Ok(())
}
