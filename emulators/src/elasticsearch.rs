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

use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::Response;
use chrono::{DateTime, NaiveDate, Utc};
use serde_json::{Value, json};

use crate::server::{self, Recorder};

/// Content type ES answers with when the client asked for the compatibility media type.
const COMPAT_CONTENT_TYPE: &str = "application/vnd.elasticsearch+json;compatible-with=9";
/// Default `track_total_hits` threshold in Elasticsearch.
const DEFAULT_TRACK_TOTAL_HITS: usize = 10_000;

/// One stored document.
#[derive(Debug, Clone)]
pub struct StoredDoc {
    pub id: String,
    pub source: Value,
    /// Global insertion sequence; used for `_doc` sorting and stable tie-breaking.
    pub seq: u64,
}

/// One recorded `_search` request.
#[derive(Debug, Clone)]
pub struct RecordedSearch {
    /// `GET` or `POST`.
    pub method: String,
    /// Request path, e.g. `/.alerts-security.alerts-default/_search`.
    pub path: String,
    /// The raw query string (without `?`), empty when none.
    pub query: String,
    /// The target expression from the path (`""` for `/_search`).
    pub target: String,
    /// The parsed JSON body (`null` when the request had no body).
    pub body: Value,
}

/// Everything the emulator holds. Public so tests can `wait_until` on it.
#[derive(Debug, Default)]
pub struct EsState {
    /// Concrete index name → documents in insertion order.
    pub indices: BTreeMap<String, Vec<StoredDoc>>,
    /// Alias name → concrete index names.
    pub aliases: BTreeMap<String, Vec<String>>,
    /// Every `_search` request, in arrival order (including ones that failed).
    pub searches: Vec<RecordedSearch>,
    /// Status codes the next requests fail with (front first).
    pub fail_queue: Vec<u16>,
    /// When set, requests whose `Authorization` header differs get a 401.
    pub required_auth: Option<String>,
    /// Artificial latency added before every response.
    pub delay: Option<Duration>,
    next_seq: u64,
}

/// In-process Elasticsearch. Cheap to clone; all clones share one state.
#[derive(Clone)]
pub struct ElasticEmulator {
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
        let addr = server::spawn(router).await?;
        Ok(Self {
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
        self.state.update(|s| {
            s.next_seq += 1;
            let seq = s.next_seq;
            let docs = s.indices.entry(index.to_string()).or_default();
            match docs.iter_mut().find(|d| d.id == id) {
                Some(existing) => {
                    existing.source = source;
                    existing.seq = seq;
                }
                None => docs.push(StoredDoc {
                    id: id.to_string(),
                    source,
                    seq,
                }),
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

// ---------------------------------------------------------------------------------------------
// HTTP layer

/// An ES error ready to be rendered.
#[derive(Debug)]
struct EsError {
    status: u16,
    kind: String,
    reason: String,
    extra: serde_json::Map<String, Value>,
}

impl EsError {
    fn new(status: u16, kind: &str, reason: impl Into<String>) -> Self {
        Self {
            status,
            kind: kind.to_string(),
            reason: reason.into(),
            extra: Default::default(),
        }
    }

    fn parsing(reason: impl Into<String>) -> Self {
        Self::new(400, "parsing_exception", reason)
    }

    fn illegal(reason: impl Into<String>) -> Self {
        Self::new(400, "illegal_argument_exception", reason)
    }

    fn index_not_found(index: &str) -> Self {
        let mut e = Self::new(
            404,
            "index_not_found_exception",
            format!("no such index [{index}]"),
        );
        e.extra
            .insert("resource.type".into(), json!("index_or_alias"));
        e.extra.insert("resource.id".into(), json!(index));
        e.extra.insert("index_uuid".into(), json!("_na_"));
        e.extra.insert("index".into(), json!(index));
        e
    }

    fn injected(status: u16) -> Self {
        match status {
            429 => Self::new(
                429,
                "es_rejected_execution_exception",
                "rejected execution of coordinating operation [emulated]",
            ),
            503 => Self::new(503, "search_phase_execution_exception", "all shards failed"),
            401 => Self::new(401, "security_exception", "unable to authenticate user"),
            403 => Self::new(
                403,
                "security_exception",
                "action [indices:data/read/search] is unauthorized",
            ),
            s => Self::new(s, "exception", "emulated failure"),
        }
    }

    fn body(&self) -> Value {
        let mut cause = serde_json::Map::new();
        cause.insert("type".into(), json!(self.kind));
        cause.insert("reason".into(), json!(self.reason));
        cause.extend(self.extra.clone());
        let mut error = cause.clone();
        error.insert("root_cause".into(), json!([Value::Object(cause)]));
        json!({ "error": Value::Object(error), "status": self.status })
    }
}

/// Chooses the response content type from the request's `Accept`, as ES does.
fn content_type_for(headers: &HeaderMap) -> &'static str {
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if accept.contains("application/vnd.elasticsearch+") {
        COMPAT_CONTENT_TYPE
    } else {
        "application/json"
    }
}

fn respond(headers: &HeaderMap, status: u16, body: &Value) -> Response {
    let mut resp = Response::new(Body::from(body.to_string()));
    *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let h = resp.headers_mut();
    h.insert(
        "x-elastic-product",
        HeaderValue::from_static("Elasticsearch"),
    );
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(content_type_for(headers)),
    );
    if status == 401 {
        h.insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"security\", charset=\"UTF-8\", ApiKey"),
        );
    }
    resp
}

fn respond_err(headers: &HeaderMap, e: &EsError) -> Response {
    respond(headers, e.status, &e.body())
}

/// ES 9 accepts compatibility versions 8 and 9 on `Accept` / `Content-Type`; anything else is a
/// `media_type_header_exception`.
fn check_compat_headers(headers: &HeaderMap) -> Result<(), EsError> {
    for name in [header::ACCEPT, header::CONTENT_TYPE] {
        let Some(v) = headers.get(&name).and_then(|v| v.to_str().ok()) else {
            continue;
        };
        if let Some(pos) = v.find("compatible-with=") {
            let ver: String = v[pos + "compatible-with=".len()..]
                .chars()
                .take_while(|c| c.is_ascii_digit())
                .collect();
            if ver != "8" && ver != "9" {
                return Err(EsError::new(
                    400,
                    "media_type_header_exception",
                    format!("Invalid media-type value on headers [{name}]"),
                ));
            }
        }
    }
    Ok(())
}

async fn handle(
    state: Arc<Recorder<EsState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let delay = state.read().delay;
    if let Some(d) = delay {
        tokio::time::sleep(d).await;
    }
    let path = uri.path().to_string();
    let query = uri.query().unwrap_or("").to_string();
    let params: HashMap<String, String> = serde_urlencoded::from_str(&query).unwrap_or_default();

    // Authentication comes first in ES: an unauthenticated request learns nothing else.
    let auth_ok = {
        let s = state.read();
        match &s.required_auth {
            None => true,
            Some(want) => {
                headers
                    .get(header::AUTHORIZATION)
                    .and_then(|v| v.to_str().ok())
                    == Some(want.as_str())
            }
        }
    };
    if !auth_ok {
        return respond_err(
            &headers,
            &EsError::new(
                401,
                "security_exception",
                format!("unable to authenticate user for REST request [{path}]"),
            ),
        );
    }
    if let Err(e) = check_compat_headers(&headers) {
        return respond_err(&headers, &e);
    }

    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let is_search = segments.last() == Some(&"_search")
        && segments.len() <= 2
        && (method == Method::GET || method == Method::POST);

    // Parse the body up front so even a failed search is recorded with what was sent.
    let parsed_body: Result<Value, EsError> = if body.iter().all(u8::is_ascii_whitespace) {
        Ok(Value::Null)
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| EsError::parsing(format!("Failed to parse request body: {e}")))
    };

    if is_search {
        let target = if segments.len() == 2 {
            segments[0].to_string()
        } else {
            String::new()
        };
        let target = percent_decode(&target);
        state.update(|s| {
            s.searches.push(RecordedSearch {
                method: method.to_string(),
                path: path.clone(),
                query: query.clone(),
                target: target.clone(),
                body: parsed_body.as_ref().cloned().unwrap_or(Value::Null),
            })
        });
        if let Some(status) = take_failure(&state) {
            return respond_err(&headers, &EsError::injected(status));
        }
        let body = match parsed_body {
            Ok(b) => b,
            Err(e) => return respond_err(&headers, &e),
        };
        let s = state.read();
        return match search(&s, &target, &body, &params, Utc::now()) {
            Ok(v) => respond(&headers, 200, &v),
            Err(e) => respond_err(&headers, &e),
        };
    }

    if let Some(status) = take_failure(&state) {
        return respond_err(&headers, &EsError::injected(status));
    }

    match (method.clone(), segments.as_slice()) {
        (Method::GET, [""]) => respond(&headers, 200, &info_body()),
        (Method::HEAD, [""]) => {
            let mut r = respond(&headers, 200, &Value::Null);
            *r.body_mut() = Body::empty();
            r
        }
        (Method::PUT | Method::POST, [index, "_doc", id]) => {
            let source = match parsed_body {
                Ok(v @ Value::Object(_)) => v,
                Ok(_) => {
                    return respond_err(&headers, &EsError::parsing("request body is required"));
                }
                Err(e) => return respond_err(&headers, &e),
            };
            let index = percent_decode(index);
            let id = percent_decode(id);
            let existed = state.update(|s| {
                s.next_seq += 1;
                let seq = s.next_seq;
                let docs = s.indices.entry(index.clone()).or_default();
                match docs.iter_mut().find(|d| d.id == id) {
                    Some(d) => {
                        d.source = source;
                        d.seq = seq;
                        true
                    }
                    None => {
                        docs.push(StoredDoc {
                            id: id.clone(),
                            source,
                            seq,
                        });
                        false
                    }
                }
            });
            let status = if existed { 200 } else { 201 };
            respond(
                &headers,
                status,
                &json!({
                    "_index": index, "_id": id, "_version": 1,
                    "result": if existed { "updated" } else { "created" },
                    "_shards": {"total": 1, "successful": 1, "failed": 0},
                    "_seq_no": 0, "_primary_term": 1
                }),
            )
        }
        _ => respond(
            &headers,
            400,
            &json!({
                "error": format!("no handler found for uri [{path}] and method [{method}]"),
                "status": 400
            }),
        ),
    }
}

fn take_failure(state: &Recorder<EsState>) -> Option<u16> {
    state.update(|s| {
        if s.fail_queue.is_empty() {
            None
        } else {
            Some(s.fail_queue.remove(0))
        }
    })
}

fn info_body() -> Value {
    json!({
        "name": "triage-emulator-node",
        "cluster_name": "triage-emulator",
        "cluster_uuid": "emulated-cluster-uuid-0000000000",
        "version": {
            "number": "9.1.0",
            "build_flavor": "default",
            "build_type": "docker",
            "build_hash": "0000000000000000000000000000000000000000",
            "build_date": "2025-07-24T00:00:00.000000000Z",
            "build_snapshot": false,
            "lucene_version": "10.2.2",
            "minimum_wire_compatibility_version": "8.19.0",
            "minimum_index_compatibility_version": "8.0.0"
        },
        "tagline": "You Know, for Search"
    })
}

fn percent_decode(s: &str) -> String {
    // serde_urlencoded decodes `a=b` pairs; reuse it for a single path segment.
    serde_urlencoded::from_str::<Vec<(String, String)>>(&format!("x={}", s.replace('+', "%2B")))
        .ok()
        .and_then(|v| v.into_iter().next().map(|(_, v)| v))
        .unwrap_or_else(|| s.to_string())
}

// ---------------------------------------------------------------------------------------------
// Index resolution

/// Glob match with `*` only (the ES index-pattern syntax).
fn glob(pattern: &str, name: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == name;
    }
    let mut rest = name;
    for (i, part) in parts.iter().enumerate() {
        if i == 0 {
            match rest.strip_prefix(part) {
                Some(r) => rest = r,
                None => return false,
            }
        } else if i == parts.len() - 1 {
            return rest.ends_with(part);
        } else {
            match rest.find(part) {
                Some(pos) => rest = &rest[pos + part.len()..],
                None => return false,
            }
        }
    }
    true
}

/// Resolves a comma-separated target into concrete index names (sorted, deduplicated).
fn resolve_target(
    s: &EsState,
    target: &str,
    ignore_unavailable: bool,
) -> Result<Vec<String>, EsError> {
    let mut out: Vec<String> = Vec::new();
    let all_names = || s.indices.keys().chain(s.aliases.keys());
    let expand = |name: &str| -> Vec<String> {
        if let Some(targets) = s.aliases.get(name) {
            targets.clone()
        } else if s.indices.contains_key(name) {
            vec![name.to_string()]
        } else {
            Vec::new()
        }
    };
    let parts: Vec<&str> = if target.is_empty() {
        vec!["_all"]
    } else {
        target.split(',').collect()
    };
    for raw in parts {
        let part = raw.trim();
        if part.is_empty() {
            continue;
        }
        if let Some(excluded) = part.strip_prefix('-') {
            let removed: Vec<String> = all_names()
                .filter(|n| glob(excluded, n))
                .flat_map(|n| expand(n))
                .collect();
            out.retain(|n| !removed.contains(n));
            continue;
        }
        if part == "_all" || part.contains('*') {
            let pattern = if part == "_all" { "*" } else { part };
            // Hidden/system indices (dot-prefixed) only match patterns that start with a dot.
            let allow_dot = pattern.starts_with('.');
            for name in all_names() {
                if (allow_dot || !name.starts_with('.')) && glob(pattern, name) {
                    out.extend(expand(name));
                }
            }
        } else {
            let names = expand(part);
            if names.is_empty() && !s.indices.contains_key(part) {
                if ignore_unavailable {
                    continue;
                }
                return Err(EsError::index_not_found(part));
            }
            out.extend(names);
        }
    }
    out.sort();
    out.dedup();
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// Field access

/// All values of `field` in `source`, accepting dotted keys, nested objects and any mix of the
/// two (`{"kibana.alert": {"severity": ..}}` too). Arrays are flattened: a field holding an array
/// yields each element, and objects inside arrays are searched element by element.
pub fn field_values<'a>(source: &'a Value, field: &str) -> Vec<&'a Value> {
    let segments: Vec<&str> = field.split('.').collect();
    let mut out = Vec::new();
    collect(source, &segments, &mut out);
    out
}

fn collect<'a>(value: &'a Value, segments: &[&str], out: &mut Vec<&'a Value>) {
    match value {
        Value::Array(items) => {
            for item in items {
                collect(item, segments, out);
            }
        }
        Value::Object(map) => {
            // Try every split of the remaining path into "<key with dots>.<rest>".
            for i in 1..=segments.len() {
                let key = segments[..i].join(".");
                if let Some(child) = map.get(&key) {
                    if i == segments.len() {
                        push_leaf(child, out);
                    } else {
                        collect(child, &segments[i..], out);
                    }
                }
            }
        }
        _ => {}
    }
}

fn push_leaf<'a>(value: &'a Value, out: &mut Vec<&'a Value>) {
    match value {
        Value::Array(items) => items.iter().for_each(|v| push_leaf(v, out)),
        Value::Null => {}
        v => out.push(v),
    }
}

/// Flattens `_source` into dotted leaf paths with array values, the shape of ES's `fields`.
fn flatten_fields(prefix: &str, value: &Value, out: &mut BTreeMap<String, Vec<Value>>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten_fields(&key, v, out);
            }
        }
        Value::Array(items) => items.iter().for_each(|v| flatten_fields(prefix, v, out)),
        Value::Null => {}
        v => out.entry(prefix.to_string()).or_default().push(v.clone()),
    }
}

// ---------------------------------------------------------------------------------------------
// Value comparison

/// Parses an ES date: RFC 3339 / `strict_date_optional_time` forms, or a bare date.
fn parse_date(s: &str) -> Option<i64> {
    if let Ok(d) = DateTime::parse_from_rfc3339(s) {
        return Some(d.timestamp_millis());
    }
    // Without an offset ES assumes UTC.
    for fmt in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%dT%H:%M",
    ] {
        if let Ok(d) = chrono::NaiveDateTime::parse_from_str(s, fmt) {
            return Some(d.and_utc().timestamp_millis());
        }
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|d| d.and_utc().timestamp_millis())
}

/// Evaluates ES date math (`now`, `now-15m`, `now+1h/d`, `2025-03-04T10:00:00Z||-1h`).
fn parse_date_math(s: &str, now: DateTime<Utc>) -> Option<i64> {
    let (anchor, mut rest) = if let Some(r) = s.strip_prefix("now") {
        (now.timestamp_millis(), r)
    } else if let Some((base, r)) = s.split_once("||") {
        (parse_date(base)?, r)
    } else {
        return parse_date(s);
    };
    let mut t = anchor;
    while !rest.is_empty() {
        let op = rest.chars().next()?;
        rest = &rest[1..];
        let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
        rest = &rest[digits.len()..];
        let unit = rest.chars().next()?;
        rest = &rest[unit.len_utf8()..];
        let unit_ms: i64 = match unit {
            's' => 1_000,
            'm' => 60_000,
            'h' | 'H' => 3_600_000,
            'd' => 86_400_000,
            'w' => 7 * 86_400_000,
            'M' => 30 * 86_400_000,
            'y' => 365 * 86_400_000,
            _ => return None,
        };
        match op {
            '+' | '-' => {
                let n: i64 = digits.parse().ok()?;
                t += if op == '+' { n * unit_ms } else { -n * unit_ms };
            }
            // Rounding down to the unit; months/years approximated, which is enough for tests.
            '/' => t -= t.rem_euclid(unit_ms),
            _ => return None,
        }
    }
    Some(t)
}

fn as_number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn as_string(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// `term` equality: exact JSON equality, with the coercions ES applies when querying a keyword
/// with a number or a number/boolean field with a string.
fn term_eq(doc: &Value, q: &Value) -> bool {
    if doc == q {
        return true;
    }
    match (doc, q) {
        (Value::Number(a), Value::Number(b)) => a.as_f64() == b.as_f64(),
        (Value::String(s), Value::Number(n)) | (Value::Number(n), Value::String(s)) => {
            s.trim().parse::<f64>().ok() == n.as_f64()
        }
        (Value::String(s), Value::Bool(b)) | (Value::Bool(b), Value::String(s)) => {
            s == if *b { "true" } else { "false" }
        }
        _ => false,
    }
}

/// Compares a document value with a range bound: as instants when both are dates (or the doc is
/// a date and the bound epoch millis), else as numbers, else as strings.
fn range_cmp(doc: &Value, bound: &Value, now: DateTime<Utc>) -> Option<Ordering> {
    if let Value::String(ds) = doc
        && let Some(dm) = parse_date(ds)
    {
        let bm = match bound {
            Value::String(bs) => parse_date_math(bs, now),
            Value::Number(n) => n.as_i64(),
            _ => None,
        };
        if let Some(bm) = bm {
            return Some(dm.cmp(&bm));
        }
    }
    if let (Some(a), Some(b)) = (as_number(doc), as_number(bound)) {
        return a.partial_cmp(&b);
    }
    Some(as_string(doc).cmp(&as_string(bound)))
}

// ---------------------------------------------------------------------------------------------
// Query evaluation

/// A compiled query clause.
#[derive(Debug)]
enum Query {
    MatchAll,
    MatchNone,
    Term(String, Value),
    Terms(String, Vec<Value>),
    Range {
        field: String,
        gt: Option<Value>,
        gte: Option<Value>,
        lt: Option<Value>,
        lte: Option<Value>,
    },
    Exists(String),
    Ids(Vec<String>),
    Bool {
        filter: Vec<Query>,
        must: Vec<Query>,
        must_not: Vec<Query>,
        should: Vec<Query>,
        min_should: usize,
    },
}

fn single_entry<'a>(kind: &str, v: &'a Value) -> Result<(&'a String, &'a Value), EsError> {
    let obj = v.as_object().ok_or_else(|| {
        EsError::parsing(format!(
            "[{kind}] query malformed, no start_object after query name"
        ))
    })?;
    let mut entries = obj
        .iter()
        .filter(|(k, _)| k.as_str() != "boost" && k.as_str() != "_name");
    let first = entries
        .next()
        .ok_or_else(|| EsError::parsing(format!("[{kind}] query doesn't support empty field")))?;
    if entries.next().is_some() {
        return Err(EsError::parsing(format!(
            "[{kind}] query doesn't support multiple fields, found [{}] and more",
            first.0
        )));
    }
    Ok(first)
}

fn clauses(v: Option<&Value>) -> Result<Vec<Query>, EsError> {
    match v {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items.iter().map(compile).collect(),
        Some(one) => Ok(vec![compile(one)?]),
    }
}

fn compile(v: &Value) -> Result<Query, EsError> {
    let obj = v
        .as_object()
        .ok_or_else(|| EsError::parsing("query malformed, must start with start_object"))?;
    if obj.len() != 1 {
        return Err(EsError::parsing(
            "[_na] query malformed, no end_object after query name or multiple query names",
        ));
    }
    let Some((kind, body)) = obj.iter().next() else {
        return Err(EsError::parsing("query malformed, empty clause found"));
    };
    match kind.as_str() {
        "match_all" => Ok(Query::MatchAll),
        "match_none" => Ok(Query::MatchNone),
        "term" => {
            let (field, spec) = single_entry("term", body)?;
            let value = match spec {
                Value::Object(m) => m.get("value").cloned().ok_or_else(|| {
                    EsError::parsing("[term] query does not support [value] missing")
                })?,
                other => other.clone(),
            };
            Ok(Query::Term(field.clone(), value))
        }
        "terms" => {
            let (field, spec) = single_entry("terms", body)?;
            let values = spec.as_array().cloned().ok_or_else(|| {
                EsError::parsing(format!("[terms] query does not support [{field}]"))
            })?;
            Ok(Query::Terms(field.clone(), values))
        }
        "range" => {
            let (field, spec) = single_entry("range", body)?;
            let spec = spec.as_object().ok_or_else(|| {
                EsError::parsing(format!("[range] query does not support [{field}]"))
            })?;
            for key in spec.keys() {
                if ![
                    "gt",
                    "gte",
                    "lt",
                    "lte",
                    "format",
                    "time_zone",
                    "boost",
                    "relation",
                    "from",
                    "to",
                    "include_lower",
                    "include_upper",
                ]
                .contains(&key.as_str())
                {
                    return Err(EsError::parsing(format!(
                        "[range] query does not support [{key}]"
                    )));
                }
            }
            let get = |k: &str| spec.get(k).filter(|v| !v.is_null()).cloned();
            Ok(Query::Range {
                field: field.clone(),
                gt: get("gt"),
                gte: get("gte").or_else(|| get("from")),
                lt: get("lt"),
                lte: get("lte").or_else(|| get("to")),
            })
        }
        "exists" => {
            let field = body
                .get("field")
                .and_then(Value::as_str)
                .ok_or_else(|| EsError::parsing("[exists] must be provided with a [field]"))?;
            Ok(Query::Exists(field.to_string()))
        }
        "ids" => {
            let values = body
                .get("values")
                .and_then(Value::as_array)
                .ok_or_else(|| EsError::parsing("[ids] query malformed, no values"))?;
            Ok(Query::Ids(values.iter().map(as_string).collect()))
        }
        "bool" => {
            let b = body
                .as_object()
                .ok_or_else(|| EsError::parsing("[bool] query malformed, no start_object"))?;
            for key in b.keys() {
                if ![
                    "filter",
                    "must",
                    "must_not",
                    "should",
                    "minimum_should_match",
                    "boost",
                    "_name",
                ]
                .contains(&key.as_str())
                {
                    return Err(EsError::parsing(format!(
                        "[bool] query does not support [{key}]"
                    )));
                }
            }
            let filter = clauses(b.get("filter"))?;
            let must = clauses(b.get("must"))?;
            let must_not = clauses(b.get("must_not"))?;
            let should = clauses(b.get("should"))?;
            // ES: with no must/filter, at least one should clause must match.
            let default_min =
                usize::from(filter.is_empty() && must.is_empty() && !should.is_empty());
            let min_should = match b.get("minimum_should_match") {
                Some(v) => as_number(v)
                    .map(|n| n.max(0.0) as usize)
                    .unwrap_or(default_min),
                None => default_min,
            };
            Ok(Query::Bool {
                filter,
                must,
                must_not,
                should,
                min_should,
            })
        }
        other => Err(EsError::parsing(format!("unknown query [{other}]"))),
    }
}

fn matches(q: &Query, id: &str, src: &Value, now: DateTime<Utc>) -> bool {
    match q {
        Query::MatchAll => true,
        Query::MatchNone => false,
        Query::Term(f, v) => field_values(src, f).into_iter().any(|d| term_eq(d, v)),
        Query::Terms(f, vs) => field_values(src, f)
            .into_iter()
            .any(|d| vs.iter().any(|v| term_eq(d, v))),
        Query::Range {
            field,
            gt,
            gte,
            lt,
            lte,
        } => field_values(src, field).into_iter().any(|d| {
            let ok = |b: &Option<Value>, pred: fn(Ordering) -> bool| {
                b.as_ref()
                    .is_none_or(|b| range_cmp(d, b, now).is_some_and(pred))
            };
            ok(gt, |o| o == Ordering::Greater)
                && ok(gte, |o| o != Ordering::Less)
                && ok(lt, |o| o == Ordering::Less)
                && ok(lte, |o| o != Ordering::Greater)
        }),
        Query::Exists(f) => !field_values(src, f).is_empty(),
        Query::Ids(ids) => ids.iter().any(|i| i == id),
        Query::Bool {
            filter,
            must,
            must_not,
            should,
            min_should,
        } => {
            filter.iter().all(|c| matches(c, id, src, now))
                && must.iter().all(|c| matches(c, id, src, now))
                && !must_not.iter().any(|c| matches(c, id, src, now))
                && should.iter().filter(|c| matches(c, id, src, now)).count() >= *min_should
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Sorting

#[derive(Debug, Clone, Copy, PartialEq)]
enum FieldKind {
    Date,
    Number,
    Keyword,
}

#[derive(Debug, Clone)]
struct SortSpec {
    field: String,
    desc: bool,
    kind: FieldKind,
}

/// One sort key of a hit.
#[derive(Debug, Clone, PartialEq)]
enum Key {
    Int(i64),
    Float(f64),
    Str(String),
    /// Keyword field without a value: sorts last in either direction (`missing: _last`).
    Missing,
}

impl Key {
    fn to_json(&self) -> Value {
        match self {
            Key::Int(i) => json!(i),
            Key::Float(f) => json!(f),
            Key::Str(s) => json!(s),
            Key::Missing => Value::Null,
        }
    }
}

fn cmp_key(a: &Key, b: &Key, desc: bool) -> Ordering {
    let ord = match (a, b) {
        (Key::Missing, Key::Missing) => return Ordering::Equal,
        (Key::Missing, _) => return Ordering::Greater,
        (_, Key::Missing) => return Ordering::Less,
        (Key::Int(x), Key::Int(y)) => x.cmp(y),
        (Key::Str(x), Key::Str(y)) => x.cmp(y),
        (x, y) => {
            let f = |k: &Key| match k {
                Key::Int(i) => *i as f64,
                Key::Float(f) => *f,
                _ => f64::NAN,
            };
            f(x).partial_cmp(&f(y)).unwrap_or(Ordering::Equal)
        }
    };
    if desc { ord.reverse() } else { ord }
}

fn parse_sort(v: Option<&Value>) -> Result<Vec<(String, bool)>, EsError> {
    let items: Vec<&Value> = match v {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(a)) => a.iter().collect(),
        Some(other) => vec![other],
    };
    let mut out = Vec::new();
    for item in items {
        match item {
            Value::String(s) => {
                // "field:desc" is the query-string form; "_score" defaults to desc.
                let (f, o) = s.split_once(':').unwrap_or((s, ""));
                out.push((
                    f.to_string(),
                    o == "desc" || (o.is_empty() && f == "_score"),
                ));
            }
            Value::Object(m) if m.len() == 1 => {
                let Some((field, spec)) = m.iter().next() else {
                    continue;
                };
                let order = match spec {
                    Value::String(o) => Some(o.as_str()),
                    Value::Object(o) => o.get("order").and_then(Value::as_str),
                    _ => return Err(EsError::parsing(format!("[sort] malformed for [{field}]"))),
                };
                let desc = match order {
                    Some("desc") => true,
                    Some("asc") => false,
                    None => field == "_score",
                    Some(other) => {
                        return Err(EsError::illegal(format!("Unknown SortOrder [{other}]")));
                    }
                };
                out.push((field.clone(), desc));
            }
            _ => {
                return Err(EsError::parsing(
                    "[sort] malformed, expected a field name or object",
                ));
            }
        }
    }
    Ok(out)
}

/// Infers a field's type from the values the candidate documents hold, standing in for the mapping.
fn infer_kind(field: &str, docs: &[(&str, &StoredDoc)]) -> FieldKind {
    let mut seen = false;
    let (mut all_dates, mut all_numbers) = (true, true);
    for (_, d) in docs {
        for v in field_values(&d.source, field) {
            seen = true;
            match v {
                Value::String(s) => {
                    all_numbers = false;
                    if parse_date(s).is_none() {
                        all_dates = false;
                    }
                }
                Value::Number(_) => all_dates = false,
                _ => {
                    all_dates = false;
                    all_numbers = false;
                }
            }
        }
    }
    match (seen, all_dates, all_numbers) {
        (true, true, _) => FieldKind::Date,
        (true, _, true) => FieldKind::Number,
        _ => FieldKind::Keyword,
    }
}

fn doc_key(spec: &SortSpec, doc: &StoredDoc) -> Key {
    match spec.field.as_str() {
        "_doc" | "_shard_doc" => return Key::Int(doc.seq as i64),
        "_score" => return Key::Float(1.0),
        _ => {}
    }
    let values = field_values(&doc.source, &spec.field);
    let keys: Vec<Key> = values
        .into_iter()
        .filter_map(|v| match spec.kind {
            FieldKind::Date => v.as_str().and_then(parse_date).map(Key::Int),
            FieldKind::Number => match v {
                Value::Number(n) if n.is_i64() => n.as_i64().map(Key::Int),
                other => as_number(other).map(Key::Float),
            },
            FieldKind::Keyword => Some(Key::Str(as_string(v))),
        })
        .collect();
    // Multi-valued fields sort by their min (asc) or max (desc), ES's default `mode`.
    let picked = keys.into_iter().reduce(|a, b| {
        let a_first = cmp_key(&a, &b, false) != Ordering::Greater;
        if a_first != spec.desc { a } else { b }
    });
    match (picked, spec.kind) {
        (Some(k), _) => k,
        // ES puts Long.MAX_VALUE / Long.MIN_VALUE in `sort` for missing numeric/date values.
        (None, FieldKind::Date | FieldKind::Number) => {
            Key::Int(if spec.desc { i64::MIN } else { i64::MAX })
        }
        (None, FieldKind::Keyword) => Key::Missing,
    }
}

fn after_key(spec: &SortSpec, v: &Value) -> Result<Key, EsError> {
    let bad = || {
        EsError::illegal(format!(
            "Failed to parse search_after value for field [{}].",
            spec.field
        ))
    };
    Ok(match (spec.field.as_str(), spec.kind) {
        ("_doc" | "_shard_doc", _) => Key::Int(v.as_i64().ok_or_else(bad)?),
        ("_score", _) => Key::Float(as_number(v).ok_or_else(bad)?),
        (_, FieldKind::Date) => match v {
            Value::Number(n) => Key::Int(n.as_i64().ok_or_else(bad)?),
            Value::String(s) => Key::Int(
                s.parse::<i64>()
                    .ok()
                    .or_else(|| parse_date(s))
                    .ok_or_else(bad)?,
            ),
            _ => return Err(bad()),
        },
        (_, FieldKind::Number) => match v {
            Value::Number(n) if n.is_i64() => Key::Int(n.as_i64().ok_or_else(bad)?),
            other => Key::Float(as_number(other).ok_or_else(bad)?),
        },
        (_, FieldKind::Keyword) => match v {
            Value::Null => Key::Missing,
            other => Key::Str(as_string(other)),
        },
    })
}

// ---------------------------------------------------------------------------------------------
// Search

fn usize_param(
    body: &Value,
    params: &HashMap<String, String>,
    name: &str,
    default: usize,
) -> Result<usize, EsError> {
    if let Some(v) = body.get(name).filter(|v| !v.is_null()) {
        return v
            .as_u64()
            .map(|n| n as usize)
            .ok_or_else(|| EsError::parsing(format!("[{name}] must be a non-negative integer")));
    }
    match params.get(name) {
        Some(s) => s.parse().map_err(|_| {
            EsError::illegal(format!(
                "Failed to parse int parameter [{name}] with value [{s}]"
            ))
        }),
        None => Ok(default),
    }
}

/// Runs a search against the state (pure, so unit tests call it without HTTP).
fn search(
    s: &EsState,
    target: &str,
    body: &Value,
    params: &HashMap<String, String>,
    now: DateTime<Utc>,
) -> Result<Value, EsError> {
    if !(body.is_null() || body.is_object()) {
        return Err(EsError::parsing("request body must be an object"));
    }
    const KNOWN: &[&str] = &[
        "query",
        "sort",
        "size",
        "from",
        "search_after",
        "track_total_hits",
        "_source",
        "fields",
        "timeout",
        "version",
        "seq_no_primary_term",
        "track_scores",
        "stored_fields",
        "pit",
        "runtime_mappings",
        "aggs",
        "aggregations",
    ];
    if let Some(obj) = body.as_object() {
        for key in obj.keys() {
            if !KNOWN.contains(&key.as_str()) {
                return Err(EsError::parsing(format!(
                    "Unknown key for a START_OBJECT in [{key}]."
                )));
            }
        }
    }
    let ignore_unavailable = params
        .get("ignore_unavailable")
        .is_some_and(|v| v == "true");
    let indices = resolve_target(s, target, ignore_unavailable)?;

    let query = match body.get("query") {
        None | Some(Value::Null) => Query::MatchAll,
        Some(q) => compile(q)?,
    };
    let size = usize_param(body, params, "size", 10)?;
    let from = usize_param(body, params, "from", 0)?;

    let mut sort_fields = parse_sort(body.get("sort"))?;
    if sort_fields.is_empty()
        && let Some(qs) = params.get("sort")
    {
        sort_fields = parse_sort(Some(&Value::Array(
            qs.split(',')
                .map(|s| Value::String(s.to_string()))
                .collect(),
        )))?;
    }

    let candidates: Vec<(&str, &StoredDoc)> = indices
        .iter()
        .filter_map(|i| s.indices.get_key_value(i))
        .flat_map(|(name, docs)| docs.iter().map(move |d| (name.as_str(), d)))
        .collect();
    let specs: Vec<SortSpec> = sort_fields
        .into_iter()
        .map(|(field, desc)| {
            let kind = infer_kind(&field, &candidates);
            SortSpec { field, desc, kind }
        })
        .collect();

    let after: Option<Vec<Key>> = match body.get("search_after") {
        None | Some(Value::Null) => None,
        Some(Value::Array(values)) => {
            if specs.is_empty() {
                return Err(EsError::illegal("Sort must contain at least one field."));
            }
            if values.len() != specs.len() {
                return Err(EsError::illegal(format!(
                    "search_after has {} value(s) but sort has {}.",
                    values.len(),
                    specs.len()
                )));
            }
            if from > 0 {
                return Err(EsError::illegal(
                    "[from] parameter must be set to 0 when [search_after] is used",
                ));
            }
            Some(
                specs
                    .iter()
                    .zip(values)
                    .map(|(sp, v)| after_key(sp, v))
                    .collect::<Result<_, _>>()?,
            )
        }
        Some(_) => return Err(EsError::parsing("[search_after] must be an array")),
    };

    let mut hits: Vec<(&str, &StoredDoc, Vec<Key>)> = candidates
        .into_iter()
        .filter(|(_, d)| matches(&query, &d.id, &d.source, now))
        .map(|(i, d)| {
            let keys = specs.iter().map(|sp| doc_key(sp, d)).collect();
            (i, d, keys)
        })
        .collect();
    let total = hits.len();

    let cmp_keys = |a: &[Key], b: &[Key]| -> Ordering {
        specs
            .iter()
            .zip(a.iter().zip(b))
            .map(|(sp, (x, y))| cmp_key(x, y, sp.desc))
            .find(|o| *o != Ordering::Equal)
            .unwrap_or(Ordering::Equal)
    };
    hits.sort_by(|a, b| {
        cmp_keys(&a.2, &b.2)
            .then(a.0.cmp(b.0))
            .then(a.1.seq.cmp(&b.1.seq))
    });
    if let Some(after) = &after {
        hits.retain(|h| cmp_keys(&h.2, after) == Ordering::Greater);
    }

    let include_source = !matches!(body.get("_source"), Some(Value::Bool(false)));
    let field_patterns: Vec<String> = body
        .get("fields")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|f| match f {
                    Value::String(s) => Some(s.clone()),
                    Value::Object(o) => o.get("field").and_then(Value::as_str).map(str::to_string),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();

    let sorted = !specs.is_empty();
    let page: Vec<Value> = hits
        .into_iter()
        .skip(from)
        .take(size)
        .map(|(index, d, keys)| {
            let mut hit = serde_json::Map::new();
            hit.insert("_index".into(), json!(index));
            hit.insert("_id".into(), json!(d.id));
            hit.insert(
                "_score".into(),
                if sorted { Value::Null } else { json!(1.0) },
            );
            if include_source {
                hit.insert("_source".into(), d.source.clone());
            }
            if !field_patterns.is_empty() {
                let mut flat = BTreeMap::new();
                flatten_fields("", &d.source, &mut flat);
                let selected: serde_json::Map<String, Value> = flat
                    .into_iter()
                    .filter(|(k, _)| field_patterns.iter().any(|p| glob(p, k)))
                    .map(|(k, v)| (k, Value::Array(v)))
                    .collect();
                if !selected.is_empty() {
                    hit.insert("fields".into(), Value::Object(selected));
                }
            }
            if sorted {
                hit.insert(
                    "sort".into(),
                    Value::Array(keys.iter().map(Key::to_json).collect()),
                );
            }
            Value::Object(hit)
        })
        .collect();

    let mut hits_obj = serde_json::Map::new();
    let track = body.get("track_total_hits");
    match track {
        Some(Value::Bool(false)) => {}
        Some(Value::Bool(true)) => {
            hits_obj.insert("total".into(), json!({"value": total, "relation": "eq"}));
        }
        other => {
            let cap = other
                .and_then(Value::as_u64)
                .map(|n| n as usize)
                .unwrap_or(DEFAULT_TRACK_TOTAL_HITS);
            let (value, relation) = if total > cap {
                (cap, "gte")
            } else {
                (total, "eq")
            };
            hits_obj.insert(
                "total".into(),
                json!({"value": value, "relation": relation}),
            );
        }
    }
    let max_score = if sorted || page.is_empty() {
        Value::Null
    } else {
        json!(1.0)
    };
    hits_obj.insert("max_score".into(), max_score);
    hits_obj.insert("hits".into(), Value::Array(page));

    Ok(json!({
        "took": 1,
        "timed_out": false,
        "_shards": {"total": indices.len().max(1), "successful": indices.len().max(1), "skipped": 0, "failed": 0},
        "hits": Value::Object(hits_obj),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state_with(docs: &[(&str, &str, Value)]) -> EsState {
        let mut s = EsState::default();
        for (index, id, src) in docs {
            s.next_seq += 1;
            let seq = s.next_seq;
            s.indices
                .entry(index.to_string())
                .or_default()
                .push(StoredDoc {
                    id: id.to_string(),
                    source: src.clone(),
                    seq,
                });
        }
        s
    }

    fn ids(resp: &Value) -> Vec<String> {
        resp["hits"]["hits"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|h| h["_id"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    }

    fn run(s: &EsState, target: &str, body: Value) -> Result<Value, EsError> {
        search(s, target, &body, &HashMap::new(), Utc::now())
    }

    #[test]
    fn field_lookup_accepts_dotted_nested_and_mixed_keys() {
        let src = json!({
            "kibana.alert.severity": "critical",
            "host": {"name": "WS-1", "ip": ["10.0.0.1", "10.0.0.2"]},
            "kibana.alert": {"rule": {"name": "R"}},
            "process": {"parent.name": "svchost.exe"},
            "kibana.alert.ancestors": [{"id": "x"}, {"id": "y"}]
        });
        assert_eq!(
            field_values(&src, "kibana.alert.severity"),
            vec![&json!("critical")]
        );
        assert_eq!(field_values(&src, "host.name"), vec![&json!("WS-1")]);
        assert_eq!(field_values(&src, "host.ip").len(), 2);
        assert_eq!(
            field_values(&src, "kibana.alert.rule.name"),
            vec![&json!("R")]
        );
        assert_eq!(
            field_values(&src, "process.parent.name"),
            vec![&json!("svchost.exe")]
        );
        assert_eq!(field_values(&src, "kibana.alert.ancestors.id").len(), 2);
        assert!(field_values(&src, "host.nope").is_empty());
    }

    #[test]
    fn bool_filter_with_term_on_dotted_key_and_nested_array() {
        let s = state_with(&[
            (
                "i",
                "1",
                json!({"kibana.alert.severity": "critical", "host": {"ip": ["10.0.0.1", "10.0.0.2"]}}),
            ),
            (
                "i",
                "2",
                json!({"kibana.alert.severity": "high", "host": {"ip": "10.0.0.2"}}),
            ),
        ]);
        let r = run(
            &s,
            "i",
            json!({"query": {"bool": {"filter": [
                {"term": {"kibana.alert.severity": {"value": "critical"}}},
                {"term": {"host.ip": "10.0.0.2"}}
            ]}}}),
        )
        .unwrap();
        assert_eq!(ids(&r), ["1"]);
        let r = run(&s, "i", json!({"query": {"bool": {"must_not": [{"terms": {"kibana.alert.severity": ["critical"]}}]}}})).unwrap();
        assert_eq!(ids(&r), ["2"]);
        assert_eq!(r["hits"]["total"], json!({"value": 1, "relation": "eq"}));
    }

    #[test]
    fn date_sort_returns_epoch_millis_and_search_after_pages_with_tie_breaker() {
        let s = state_with(&[
            (
                "i",
                "a",
                json!({"@timestamp": "2025-03-04T10:00:00.000Z", "kibana.alert.uuid": "a"}),
            ),
            (
                "i",
                "c",
                json!({"@timestamp": "2025-03-04T10:02:00.000Z", "kibana.alert.uuid": "c"}),
            ),
            (
                "i",
                "b",
                json!({"@timestamp": "2025-03-04T10:02:00.000Z", "kibana.alert.uuid": "b"}),
            ),
            (
                "i",
                "d",
                json!({"@timestamp": "2025-03-04T11:00:00+01:00", "kibana.alert.uuid": "d"}),
            ),
        ]);
        let sort = json!([{"@timestamp": {"order": "asc"}}, {"kibana.alert.uuid": "asc"}]);
        let r = run(&s, "i", json!({"sort": sort, "size": 2})).unwrap();
        // d is 10:00Z expressed with an offset: compared as an instant, it ties with a.
        assert_eq!(ids(&r), ["a", "d"]);
        let last = r["hits"]["hits"][1]["sort"].clone();
        assert_eq!(last, json!([1741082400000_i64, "d"]));
        assert!(r["hits"]["hits"][0]["_score"].is_null());
        let r2 = run(
            &s,
            "i",
            json!({"sort": sort, "size": 2, "search_after": last}),
        )
        .unwrap();
        assert_eq!(ids(&r2), ["b", "c"]);
        let r3 = run(
            &s,
            "i",
            json!({"sort": sort, "size": 2, "search_after": r2["hits"]["hits"][1]["sort"]}),
        )
        .unwrap();
        assert!(ids(&r3).is_empty());
        // A date string is accepted in search_after too.
        let r4 = run(
            &s,
            "i",
            json!({"sort": sort, "search_after": ["2025-03-04T10:02:00Z", "b"]}),
        )
        .unwrap();
        assert_eq!(ids(&r4), ["c"]);
    }

    #[test]
    fn range_compares_instants_numbers_and_date_math() {
        let s = state_with(&[
            (
                "i",
                "old",
                json!({"@timestamp": "2025-03-04T09:00:00Z", "risk": 10}),
            ),
            (
                "i",
                "new",
                json!({"@timestamp": "2025-03-04T10:30:00.5+00:00", "risk": 90}),
            ),
        ]);
        let r = run(
            &s,
            "i",
            json!({"query": {"range": {"@timestamp": {"gt": "2025-03-04T10:00:00.000Z"}}}}),
        )
        .unwrap();
        assert_eq!(ids(&r), ["new"]);
        let r = run(&s, "i", json!({"query": {"range": {"risk": {"gte": 50}}}})).unwrap();
        assert_eq!(ids(&r), ["new"]);
        let now = DateTime::parse_from_rfc3339("2025-03-04T10:31:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let r = search(
            &s,
            "i",
            &json!({"query": {"range": {"@timestamp": {"gte": "now-5m"}}}}),
            &HashMap::new(),
            now,
        )
        .unwrap();
        assert_eq!(ids(&r), ["new"]);
    }

    #[test]
    fn missing_concrete_index_is_404_but_patterns_are_empty() {
        let s = state_with(&[(".internal.alerts-x-000001", "1", json!({}))]);
        let e = run(&s, "nope", json!({})).unwrap_err();
        assert_eq!(e.status, 404);
        assert_eq!(e.body()["error"]["type"], "index_not_found_exception");
        assert_eq!(
            e.body()["error"]["root_cause"][0]["type"],
            "index_not_found_exception"
        );
        let r = run(&s, "nope-*", json!({})).unwrap();
        assert_eq!(r["hits"]["total"]["value"], 0);
        // Dot-prefixed indices only match dot-prefixed patterns.
        assert!(ids(&run(&s, "*", json!({})).unwrap()).is_empty());
        assert_eq!(
            ids(&run(&s, ".internal.alerts-*", json!({})).unwrap()),
            ["1"]
        );
    }

    #[test]
    fn malformed_queries_are_parsing_exceptions() {
        let s = state_with(&[("i", "1", json!({}))]);
        let e = run(&s, "i", json!({"query": {"frobnicate": {}}})).unwrap_err();
        assert_eq!((e.status, e.kind.as_str()), (400, "parsing_exception"));
        let e = run(&s, "i", json!({"sort": ["x"], "search_after": [1, 2]})).unwrap_err();
        assert_eq!(e.kind, "illegal_argument_exception");
    }

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

    #[test]
    fn fields_option_returns_flat_arrays() {
        let s = state_with(&[(
            "i",
            "1",
            json!({"kibana.alert.uuid": "u", "host": {"name": "h"}}),
        )]);
        let r = run(&s, "i", json!({"fields": ["*"], "_source": false})).unwrap();
        let hit = &r["hits"]["hits"][0];
        assert!(hit.get("_source").is_none());
        assert_eq!(hit["fields"]["host.name"], json!(["h"]));
        assert_eq!(hit["fields"]["kibana.alert.uuid"], json!(["u"]));
    }
}
