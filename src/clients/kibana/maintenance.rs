//! Kibana maintenance windows (`GET /api/maintenance_window/_find`, public since 9.1): which
//! are running now, so the action policies suppress what they cover. Older Kibana answers 404
//! and a key without the privilege 403; both mean "not available", not an outage.

use reqwest::Method;
use serde::Deserialize;

use super::{KibanaError, KibanaHttp};

/// A running maintenance window, as far as the policies need it.
#[derive(Debug, Clone, PartialEq)]
pub struct RunningWindow {
    pub id: String,
    pub title: String,
    /// `scope.alerting.query.kql`: the window applies only to alerts matching it.
    pub scope_kql: Option<String>,
}

#[derive(Deserialize)]
struct FindResponse {
    #[serde(rename = "maintenanceWindows", default)]
    maintenance_windows: Vec<WindowWire>,
}

#[derive(Deserialize)]
struct WindowWire {
    id: String,
    #[serde(default)]
    title: String,
    #[serde(default)]
    status: String,
    #[serde(default = "yes")]
    enabled: bool,
    #[serde(default)]
    scope: Option<serde_json::Value>,
}

fn yes() -> bool {
    true
}

impl KibanaHttp {
    /// The windows running now; `None` when this Kibana has no such API or the key may not read it.
    pub async fn running_maintenance_windows(
        &self,
    ) -> Result<Option<Vec<RunningWindow>>, KibanaError> {
        let rb = self
            .request(Method::GET, "/api/maintenance_window/_find")
            .query(&[("status", "running"), ("page", "1"), ("per_page", "100")]);
        let found: FindResponse = match self.json(rb).await {
            Ok(f) => f,
            Err(KibanaError::Status {
                status: 404 | 403, ..
            }) => return Ok(None),
            Err(e) => return Err(e),
        };
        Ok(Some(
            found
                .maintenance_windows
                .into_iter()
                .filter(|w| w.enabled && w.status == "running")
                .map(|w| RunningWindow {
                    scope_kql: w
                        .scope
                        .as_ref()
                        .and_then(|s| s.pointer("/alerting/query/kql"))
                        .and_then(|k| k.as_str())
                        .filter(|k| !k.trim().is_empty())
                        .map(String::from),
                    id: w.id,
                    title: w.title,
                })
                .collect(),
        ))
    }
}
