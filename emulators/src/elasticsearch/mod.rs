//! Elasticsearch emulator: stored documents per index, aliases, and the `_search` API subset the
//! alert poller relies on (`bool` with `filter`/`must`/`must_not`/`should`, `term`, `terms`,
//! `range` with date math, `exists`, `ids`, `match_all`; `sort`, `size`, `from`, `search_after`,
//! `track_total_hits`, `_source: false`, `fields`).
//!
//! It owns the index store and the record of every search request; it does not emulate scoring,
//! mappings, analysis or write APIs beyond a minimal `_doc` PUT for humans driving the binary.
//!
//! Wire facts it reproduces, because clients trip over them:
//! - every response carries `X-Elastic-Product: Elasticsearch` (the python client refuses to talk
//!   to a server without it);
//! - the response content type mirrors the request's `Accept`: the compatibility media type
//!   `application/vnd.elasticsearch+json;compatible-with=9` when asked for (python client),
//!   plain `application/json` otherwise (Rust `elasticsearch` crate);
//! - alert documents mix dotted keys (`"kibana.alert.severity": ..`) and nested objects
//!   (`host: {name: ..}`), and field lookup accepts both;
//! - sorting on a date field returns epoch milliseconds in each hit's `sort` array, and
//!   `search_after` takes those numbers back (date strings are accepted too);
//! - wildcard patterns do not match dot-prefixed (hidden/system) indices unless the pattern itself
//!   starts with a dot, as with ES's default `expand_wildcards`;
//! - a missing concrete index is a 404 `index_not_found_exception`, a pattern matching nothing is an
//!   empty result.
//!
//! Layout, one way only: this file holds [`ElasticEmulator`] and the sample data; `http.rs` the
//! wire layer, which calls `search.rs`, which uses `query.rs`, `sort.rs` and `values.rs`;
//! `error.rs` renders ES errors and `state.rs` holds the state, and neither imports the others.

mod error;
mod http;
mod query;
mod search;
mod sort;
mod state;
mod values;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderMap, Method, Uri};
use serde_json::{Value, json};

use self::http::handle;
pub use self::state::{EsState, RecordedSearch, StoredDoc};
pub use self::values::field_values;
use crate::server::{self, Recorder};

/// In-process Elasticsearch. Cheap to clone; all clones share one state.
#[derive(Clone)]
pub struct ElasticEmulator {
    /// Failures injected into its answers (off by default).
    pub faults: crate::faults::Faults,
    state: Arc<Recorder<EsState>>,
    url: String,
}

impl ElasticEmulator {
    /// Binds on `127.0.0.1:0` and starts serving.
    ///
    /// # Errors
    /// When the listener cannot be bound.
    pub async fn start() -> anyhow::Result<Self> {
        let state = Recorder::new(EsState::default());
        let router = Router::new().fallback({
            let state = state.clone();
            move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
                let state = state.clone();
                async move { handle(state, method, uri, headers, body).await }
            }
        });
        let faults = crate::faults::Faults::default();
        let addr = server::spawn(router, &faults).await?;
        Ok(Self {
            faults,
            state,
            url: format!("http://{addr}"),
        })
    }

    /// Base URL without a trailing slash, e.g. `http://127.0.0.1:41234`.
    pub fn url(&self) -> String {
        self.url.clone()
    }

    /// The shared state, for `wait_until` and ad-hoc inspection.
    pub fn recorder(&self) -> Arc<Recorder<EsState>> {
        self.state.clone()
    }

    /// Waits until `pred` holds on the state (see [`Recorder::wait_until`]).
    ///
    /// # Errors
    /// On timeout.
    pub async fn wait_until(
        &self,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&EsState) -> bool,
    ) -> anyhow::Result<()> {
        self.state.wait_until(what, timeout, pred).await
    }

    /// Stores (or replaces) a document in a concrete index, creating the index if needed.
    pub fn index_doc(&self, index: &str, id: &str, source: Value) {
        self.state.update(|s| s.store_doc(index, id, source));
    }

    /// Stores a document whose `_source` is returned as exactly these bytes (`raw`, which need
    /// not be valid JSON for every parser), while queries match on `matchable`.
    pub fn index_raw(&self, index: &str, id: &str, matchable: Value, raw: &str) {
        self.index_doc(index, id, matchable);
        self.state.update(|s| {
            if let Some(d) = s
                .indices
                .get_mut(index)
                .and_then(|docs| docs.iter_mut().find(|d| d.id == id))
            {
                d.raw_source = Some(raw.to_string());
            }
        });
    }

    /// Creates an empty concrete index (so searches naming it do not 404).
    pub fn create_index(&self, index: &str) {
        self.state.update(|s| {
            s.indices.entry(index.to_string()).or_default();
        });
    }

    /// Points `alias` at the concrete `index` (adds to the alias's list), like
    /// `.alerts-security.alerts-default` → `.internal.alerts-security.alerts-default-000001`.
    pub fn add_alias(&self, alias: &str, index: &str) {
        self.state.update(|s| {
            s.indices.entry(index.to_string()).or_default();
            let targets = s.aliases.entry(alias.to_string()).or_default();
            if !targets.iter().any(|t| t == index) {
                targets.push(index.to_string());
            }
        });
    }

    /// Removes a document; returns whether it existed.
    pub fn delete_doc(&self, index: &str, id: &str) -> bool {
        self.state.update(|s| {
            let Some(docs) = s.indices.get_mut(index) else {
                return false;
            };
            let before = docs.len();
            docs.retain(|d| d.id != id);
            before != docs.len()
        })
    }

    /// Every `_search` request so far, oldest first. Each element is
    /// `{"method": "POST", "path": "/idx/_search", "target": "idx", "query": "<raw query string>",
    /// "body": <request body as sent, or null>}`.
    pub fn searches(&self) -> Vec<Value> {
        self.state
            .read()
            .searches
            .iter()
            .map(|s| {
                json!({
                    "method": s.method,
                    "path": s.path,
                    "target": s.target,
                    "query": s.query,
                    "body": s.body,
                })
            })
            .collect()
    }

    /// Just the bodies of [`Self::searches`].
    pub fn search_bodies(&self) -> Vec<Value> {
        self.state
            .read()
            .searches
            .iter()
            .map(|s| s.body.clone())
            .collect()
    }

    /// The next `n` requests (of any kind) fail with `status` and an ES error body
    /// (`429` → `es_rejected_execution_exception`, `503` → `search_phase_execution_exception`,
    /// `401`/`403` → `security_exception`, anything else → `exception`). Failed searches are
    /// still recorded.
    pub fn fail_next(&self, n: usize, status: u16) {
        self.state
            .update(|s| s.fail_queue.extend(std::iter::repeat_n(status, n)));
    }

    /// From now on, requests whose `Authorization` header is not exactly `header_value` get
    /// 401 `security_exception`.
    pub fn require_auth(&self, header_value: &str) {
        self.state
            .update(|s| s.required_auth = Some(header_value.to_string()));
    }

    /// Adds latency before every response (`None` to stop), to exercise client timeouts.
    pub fn set_delay(&self, delay: Option<Duration>) {
        self.state.update(|s| s.delay = delay);
    }

    /// Seeds the fixed dataset `emulators/checks/es_check.py` asserts on: six Security alerts
    /// in `.internal.alerts-security.alerts-default-000001` behind the alias
    /// `.alerts-security.alerts-default`, plus one raw Defend alert in
    /// `.ds-logs-endpoint.alerts-default-2025.03.04-000001`.
    ///
    /// | id | severity | @timestamp | host |
    /// |---|---|---|---|
    /// | a-1 | critical | 2025-03-04T10:00:00.000Z | WS-FIN-001 |
    /// | a-2 | high     | 2025-03-04T10:01:00.000Z | WS-FIN-002 |
    /// | a-3 | critical | 2025-03-04T10:02:00.000Z | WS-FIN-003 |
    /// | a-4 | critical | 2025-03-04T10:02:00.000Z | WS-FIN-004 |  (same instant as a-3: tie-breaker)
    /// | a-5 | critical | 2025-03-04T10:05:00.000Z | WS-FIN-005 |
    /// | a-6 | critical | 2025-03-04T09:00:00.000Z | WS-FIN-006 |  (before the check's range)
    pub fn seed_sample_alerts(&self) {
        const INDEX: &str = ".internal.alerts-security.alerts-default-000001";
        self.add_alias(".alerts-security.alerts-default", INDEX);
        let rows = [
            ("a-1", "critical", "2025-03-04T10:00:00.000Z", "WS-FIN-001"),
            ("a-2", "high", "2025-03-04T10:01:00.000Z", "WS-FIN-002"),
            ("a-3", "critical", "2025-03-04T10:02:00.000Z", "WS-FIN-003"),
            ("a-4", "critical", "2025-03-04T10:02:00.000Z", "WS-FIN-004"),
            ("a-5", "critical", "2025-03-04T10:05:00.000Z", "WS-FIN-005"),
            ("a-6", "critical", "2025-03-04T09:00:00.000Z", "WS-FIN-006"),
        ];
        for (id, severity, ts, host) in rows {
            self.index_doc(INDEX, id, sample_alert(id, severity, ts, host));
        }
        self.index_doc(
            ".ds-logs-endpoint.alerts-default-2025.03.04-000001",
            "d-1",
            json!({
                "@timestamp": "2025-03-04T10:03:00.000Z",
                "event": {"kind": "alert", "module": "endpoint", "dataset": "endpoint.alerts",
                          "code": "malicious_file", "severity": 73},
                "message": "Malware Prevention Alert",
                "agent": {"id": "2b1eb7f7-bd61-436a-98af-c2b182043476", "type": "endpoint"},
                "host": {"name": "WS-FIN-003", "hostname": "WS-FIN-003", "os": {"family": "windows"}},
            }),
        );
    }
}

/// A realistic Security alert document (shape of kibana.md §4.4): `kibana.alert.*` as dotted keys
/// at the top of `_source`, source-event fields (`host`, `user`, `process`, `agent`) nested.
pub fn sample_alert(uuid: &str, severity: &str, timestamp: &str, host: &str) -> Value {
    json!({
        "@timestamp": timestamp,
        "kibana.alert.uuid": uuid,
        "kibana.alert.original_time": timestamp,
        "kibana.alert.status": "active",
        "kibana.alert.workflow_status": "open",
        "kibana.alert.severity": severity,
        "kibana.alert.risk_score": match severity { "critical" => 99, "high" => 73, "medium" => 47, _ => 21 },
        "kibana.alert.reason": format!(
            "registry event with process WmiPrvSE.exe, by SYSTEM on {host} created {severity} alert Registry Run Key Set by WMI Provider Host."
        ),
        "kibana.alert.rule.name": "Registry Run Key Set by WMI Provider Host",
        "kibana.alert.rule.uuid": "b7e2c1d0-5a4f-11ee-8c99-0242ac120002",
        "kibana.alert.rule.rule_id": "00000000-example-wmi-run-key",
        "kibana.alert.rule.type": "eql",
        "kibana.alert.rule.tags": ["Domain: Endpoint", "OS: Windows", "Tactic: Persistence"],
        "kibana.alert.original_event.category": ["registry"],
        "kibana.space_ids": ["default"],
        "event.kind": "signal",
        "agent": {"id": "2b1eb7f7-bd61-436a-98af-c2b182043476", "type": "endpoint"},
        "host": {
            "name": host, "hostname": host,
            "ip": ["10.20.4.42", "fe80::4850:4f4f:4b53:8103"],
            "os": {"family": "windows", "name": "Windows", "platform": "windows"}
        },
        "user": {"name": "SYSTEM", "domain": "NT AUTHORITY"},
        "process": {
            "name": "WmiPrvSE.exe", "pid": 3312,
            "executable": "C:\\Windows\\System32\\wbem\\WmiPrvSE.exe",
            "command_line": "C:\\Windows\\system32\\wbem\\wmiprvse.exe -Embedding",
            "parent": {"name": "svchost.exe", "pid": 812}
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn http_headers_failures_and_recording() {
        let es = ElasticEmulator::start().await.unwrap();
        es.seed_sample_alerts();
        let client = reqwest::Client::new();
        // The Rust `elasticsearch` crate sends plain `application/json`.
        let resp = client
            .post(format!(
                "{}/.alerts-security.alerts-default/_search",
                es.url()
            ))
            .header("accept", "application/json")
            .header("content-type", "application/json")
            .body(r#"{"size":1}"#)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.headers()["x-elastic-product"], "Elasticsearch");
        assert_eq!(resp.headers()["content-type"], "application/json");
        es.fail_next(1, 503);
        let resp = client
            .get(format!("{}/_search", es.url()))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 503);
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["error"]["type"], "search_phase_execution_exception");
        let resp = client
            .get(format!("{}/_search", es.url()))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let searches = es.searches();
        assert_eq!(searches.len(), 3);
        assert_eq!(searches[0]["body"], json!({"size": 1}));
        assert_eq!(searches[1]["target"], "");
        let info: Value = client
            .get(es.url())
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(info["version"]["number"], "9.1.0");
    }
}
