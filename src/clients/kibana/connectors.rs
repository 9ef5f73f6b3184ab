//! Kibana connectors: `GET /api/actions/connectors`, to check that the GenAI connector the
//! assistant names exists in the space (`triage-bot check-config --connect`).

use reqwest::Method;

use super::wire::Connector;
use super::{KibanaError, KibanaHttp};

/// Every connector of the space.
pub async fn list(http: &KibanaHttp) -> Result<Vec<Connector>, KibanaError> {
    http.json(http.request(Method::GET, "/api/actions/connectors"))
        .await
}
