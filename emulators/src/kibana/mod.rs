//! Kibana emulator: the Security AI Assistant (`chat/complete`, conversations), the Cases API and
//! the connectors API (`connectors.rs`),
//! with Kibana's request rules (`kbn-xsrf`, optional auth, `/s/{space}` prefixes) and its two error
//! shapes (core `{statusCode,error,message}` and assistant `{message,status_code}`).
//!
//! It owns the scripted assistant answers (with an optional latency, or held until a test
//! releases them, and a count of how many are being answered at once), stored conversations and
//! cases, and the record of every call. It does not run a model, anonymize fields, enforce licences or privileges, or emulate
//! case configuration (custom field keys are stored as given).
//!
//! Wire facts (kibana.md §0–3) it reproduces because clients trip over them:
//! - non-GET requests need `kbn-xsrf` (or `kbn-version`), else 400 — checked after authentication,
//!   as Kibana's post-auth handler does;
//! - `chat/complete` with `isStream: true` answers NDJSON `{"payload":..,"type":"content"}` lines with
//!   no terminator and no Content-Type; this emulator writes them in chunks whose boundaries fall in
//!   the middle of JSON lines (and possibly inside a multi-byte UTF-8 character), and adds one line of
//!   an unknown type that clients must skip;
//! - the non-stream body carries `conversationId` only when `persist` is true;
//! - Cases bodies are decoded strictly: unknown keys give 400 `invalid keys "..."`; every mutation
//!   returns a new opaque `version`; a stale version on `PATCH /api/cases` gives 409; a PATCH that
//!   changes nothing gives 406;
//! - `GET /api/cases/_find` ORs the given `tags` (a case matching any tag is returned), like
//!   Kibana's saved-objects filter, and returns cases without comments.
//!
//! Layout, one way only: this file holds [`KibanaEmulator`] and the router assembly (the auth and
//! `kbn-xsrf` checks, the `/s/{space}` prefix, the request record and dispatch); `cases.rs` (with
//! `cases_validation.rs`) the Cases API, `assistant.rs` the Security AI Assistant,
//! [`agent_builder`] and [`endpoint`] the routes merged next to them; `state.rs` holds what they
//! all share and imports none of them.

pub mod agent_builder;
mod assistant;
mod cases;
mod cases_validation;
pub mod connectors;
pub mod endpoint;
mod state;

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderMap, Method, Uri, header};
use axum::response::Response;
use base64::Engine as _;
use serde_json::{Value, json};

use self::assistant::{chat_complete, create_conversation, find_conversations, get_conversation};
use self::cases::{
    add_comment, create_case, delete_cases, find_cases, find_comments, get_case, patch_cases,
};
use self::endpoint::EndpointEmulator;
pub use self::state::{ChatCompleteCall, KibanaRequest, KibanaState, Responder, StoredCase};
use self::state::{Req, assistant_error, core_error, parse_json_body};
use crate::server::json_response;
use crate::server::{self, Recorder};

/// In-process Kibana. Cheap to clone; all clones share one state.
#[derive(Clone)]
pub struct KibanaEmulator {
    /// Failures injected into its answers (off by default).
    pub faults: crate::faults::Faults,
    state: Arc<Recorder<KibanaState>>,
    url: String,
}

impl KibanaEmulator {
    /// Binds on `127.0.0.1:0` and starts serving.
    ///
    /// # Errors
    /// When the listener cannot be bound.
    pub async fn start() -> anyhow::Result<Self> {
        let state = Recorder::new(KibanaState::default());
        let router = Router::new()
            .merge(agent_builder::router(state.clone()))
            .fallback({
                let state = state.clone();
                move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
                    let state = state.clone();
                    async move { handle(state, method, uri, headers, body).await }
                }
            });
        let router = endpoint::merge(router, &state);
        let faults = crate::faults::Faults::default();
        let addr = server::spawn(router, &faults).await?;
        Ok(Self {
            faults,
            state,
            url: format!("http://{addr}"),
        })
    }

    /// Base URL without a trailing slash.
    pub fn url(&self) -> String {
        self.url.clone()
    }

    /// The shared state, for `wait_until` and ad-hoc inspection.
    pub fn recorder(&self) -> Arc<Recorder<KibanaState>> {
        self.state.clone()
    }

    /// Waits until `pred` holds on the state.
    ///
    /// # Errors
    /// On timeout.
    pub async fn wait_until(
        &self,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&KibanaState) -> bool,
    ) -> anyhow::Result<()> {
        self.state.wait_until(what, timeout, pred).await
    }

    /// Requests whose `Authorization` header is not exactly `header_value` get 401.
    pub fn require_auth(&self, header_value: &str) {
        self.state
            .update(|s| s.required_auth = Some(header_value.to_string()));
    }

    /// Adds a connector to the list `GET /api/actions/connectors` returns.
    pub fn add_connector(&self, id: &str, connector_type_id: &str, name: &str) {
        let c = (
            id.to_string(),
            connector_type_id.to_string(),
            name.to_string(),
        );
        self.state.update(|s| s.connectors.push(c));
    }

    /// The licence Kibana runs under (`basic`, `gold`, `platinum`, `enterprise`); connector types
    /// it does not include are listed as not enabled in the licence, and refused with 403.
    pub fn set_licence(&self, licence: &str) {
        self.state.update(|s| s.licence = Some(licence.to_string()));
    }

    /// Leaves a connector type out of `xpack.actions.enabledActionTypes`.
    pub fn disable_connector_type(&self, id: &str) {
        self.state
            .update(|s| s.disabled_connector_types.push(id.to_string()));
    }

    /// Sets `xpack.actions.allowedHosts`: webhook URLs to other hosts are refused with 400.
    pub fn set_allowed_hosts(&self, hosts: &[&str]) {
        self.state
            .update(|s| s.allowed_hosts = Some(hosts.iter().map(|h| h.to_string()).collect()));
    }

    /// Connectors made through the API: (space, connector as Kibana answers it, secrets as sent).
    pub fn stored_connectors(&self) -> Vec<connectors::StoredConnector> {
        self.state.read().stored_connectors.clone()
    }

    /// `(method, path-with-query, body)` of every connectors API request.
    pub fn connector_requests(&self) -> Vec<(String, String, Value)> {
        self.state.read().connector_requests.clone()
    }

    /// Adds a maintenance window with `status` (`running`, `upcoming`, `finished`, …) and an
    /// optional alert scope (KQL), in the shape Kibana's maintenance-window API returns.
    pub fn add_maintenance_window(
        &self,
        id: &str,
        title: &str,
        status: &str,
        scope_kql: Option<&str>,
    ) {
        let mut w = json!({
            "id": id, "title": title, "enabled": true, "status": status,
            "schedule": {"custom": {"start": "2026-12-07T00:00:00.000Z", "duration": "2h"}},
            "created_by": "elastic", "created_at": "2026-12-07T00:00:00.000Z",
            "updated_by": "elastic", "updated_at": "2026-12-07T00:00:00.000Z",
        });
        if let Some(kql) = scope_kql {
            w["scope"] = json!({"alerting": {"query": {"kql": kql}}});
        }
        self.state.update(|s| s.maintenance_windows.push(w));
    }

    /// Answers the maintenance-window API with `status` (404 as an older Kibana, 403 as a key
    /// without the privilege).
    pub fn maintenance_api_answers(&self, status: u16) {
        self.state
            .update(|s| s.maintenance_api_status = Some(status));
    }

    /// From now on every Cases write (create, update, delete) is refused with 403, as for a user
    /// with read-only Cases privileges.
    pub fn forbid_case_writes(&self) {
        self.state.update(|s| s.case_writes_forbidden = true);
    }

    /// Queues an assistant answer (FIFO); each `chat/complete` call consumes one.
    pub fn push_answer(&self, text: impl Into<String>) {
        let text = text.into();
        self.state.update(|s| s.answers.push_back(text));
    }

    /// Decides answers once the queue is empty.
    pub fn set_responder(&self, f: impl Fn(&ChatCompleteCall) -> String + Send + Sync + 'static) {
        let f: Responder = Arc::new(f);
        self.state.update(|s| s.responder = Some(f));
    }

    /// Every `chat/complete` call that passed validation, oldest first (including ones answered
    /// 500 for lack of a scripted answer). Calls failed by [`Self::fail_next`] are answered before
    /// validation and appear only in [`Self::requests`].
    pub fn calls(&self) -> Vec<ChatCompleteCall> {
        self.state.read().calls.clone()
    }

    /// The next `n` assistant requests (chat/complete and conversations) fail with `status` and
    /// the assistant error shape `{"message":..,"status_code":N}`. Cases are unaffected; see
    /// [`Self::fail_cases_next`].
    pub fn fail_next(&self, n: usize, status: u16) {
        self.state
            .update(|s| s.fail_assistant.extend(std::iter::repeat_n(status, n)));
    }

    /// The next `n` Cases requests fail with `status` and the core error shape.
    /// The next `n` Cases writes are applied but answered with 502 (the response is "lost").
    pub fn lose_case_responses_next(&self, n: usize) {
        self.state
            .update(|s| s.lose_case_responses.extend(std::iter::repeat_n(502, n)));
    }

    pub fn fail_cases_next(&self, n: usize, status: u16) {
        self.state
            .update(|s| s.fail_cases.extend(std::iter::repeat_n(status, n)));
    }

    /// Pause between the chunks of a streamed answer (`None`: only yield to the runtime).
    pub fn set_chunk_delay(&self, delay: Option<Duration>) {
        self.state.update(|s| s.chunk_delay = delay);
    }

    /// Every `chat/complete` answer starts after `delay` (`None`: at once), like a model's
    /// latency.
    pub fn set_answer_delay(&self, delay: Option<Duration>) {
        self.state.update(|s| s.answer_delay = delay);
    }

    /// Holds every `chat/complete` answer (its call is recorded first) until
    /// [`Self::release_answers`]: a model that is slow for exactly as long as a test needs.
    pub fn hold_answers(&self) {
        self.state.update(|s| s.hold_answers = true);
    }

    pub fn release_answers(&self) {
        self.state.update(|s| s.hold_answers = false);
    }

    /// `chat/complete` calls being answered right now (held or delayed).
    pub fn answering(&self) -> usize {
        self.state.read().answering
    }

    /// The most `chat/complete` calls that were ever being answered at the same time.
    pub fn max_answering(&self) -> usize {
        self.state.read().max_answering
    }

    /// All stored conversations (ConversationResponse objects), in creation order.
    pub fn conversations(&self) -> Vec<Value> {
        self.state.read().conversations.clone()
    }

    /// All cases (full objects including comments), in creation order, across spaces.
    pub fn cases(&self) -> Vec<Value> {
        self.state
            .read()
            .cases
            .iter()
            .map(|c| c.case.clone())
            .collect()
    }

    /// `(method, path-with-query, body)` of every Cases request (body `null` for GETs).
    pub fn case_requests(&self) -> Vec<(String, String, Value)> {
        self.state.read().case_requests.clone()
    }

    /// Every request answered so far.
    pub fn requests(&self) -> Vec<KibanaRequest> {
        self.state.read().requests.clone()
    }

    /// The Elastic Defend response actions of this Kibana.
    pub fn endpoint(&self) -> EndpointEmulator {
        EndpointEmulator::of(&self.state)
    }
}

// ---------------------------------------------------------------------------------------------
// Dispatch

async fn handle(
    state: Arc<Recorder<KibanaState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_string();
    let full_path = uri
        .path_and_query()
        .map(|p| p.to_string())
        .unwrap_or_else(|| path.clone());
    let (space, route) = split_space(&path);
    let auth = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);

    // Authentication first, then the post-auth XSRF check, as in Kibana's lifecycle.
    let required = state.read().required_auth.clone();
    let safe = method == Method::GET || method == Method::HEAD;
    let rejected = if required.is_some_and(|want| auth.as_deref() != Some(want.as_str())) {
        Some(core_error(
            401,
            "[security_exception]: unable to authenticate user",
        ))
    } else if !safe && !headers.contains_key("kbn-xsrf") && !headers.contains_key("kbn-version") {
        Some(core_error(400, "Request must contain a kbn-xsrf header."))
    } else {
        None
    };

    let resp = match rejected {
        Some(r) => r,
        None => {
            let req = Req {
                method: method.clone(),
                route: route.clone(),
                full_path: full_path.clone(),
                query: uri.query().unwrap_or("").to_string(),
                space: space.clone(),
                body,
                username: username_from(auth.as_deref()),
            };
            route_request(&state, req).await
        }
    };
    let status = resp.status().as_u16();
    state.update(|s| {
        s.requests.push(KibanaRequest {
            method: method.to_string(),
            path: full_path,
            space,
            status,
        })
    });
    resp
}

/// Splits `/s/{space}/rest` into (`space`, `/rest`); no prefix means the default space.
fn split_space(path: &str) -> (String, String) {
    if let Some(rest) = path.strip_prefix("/s/") {
        let (space, tail) = rest.split_once('/').unwrap_or((rest, ""));
        return (space.to_string(), format!("/{tail}"));
    }
    ("default".to_string(), path.to_string())
}

/// The user name Kibana would record: the Basic-auth user, else `elastic`.
fn username_from(auth: Option<&str>) -> String {
    auth.and_then(|a| a.strip_prefix("Basic "))
        .and_then(|b| {
            base64::engine::general_purpose::STANDARD
                .decode(b.trim())
                .ok()
        })
        .and_then(|raw| String::from_utf8(raw).ok())
        .and_then(|s| s.split_once(':').map(|(u, _)| u.to_string()))
        .unwrap_or_else(|| "elastic".to_string())
}

async fn route_request(state: &Arc<Recorder<KibanaState>>, req: Req) -> Response {
    let segments: Vec<&str> = req.route.trim_matches('/').split('/').collect();
    const CONV: [&str; 4] = [
        "api",
        "security_ai_assistant",
        "current_user",
        "conversations",
    ];
    match (&req.method, segments.as_slice()) {
        (_, ["api", "actions", rest @ ..]) => connectors::route(state, &req, rest),
        (&Method::GET, ["api", "maintenance_window", "_find"]) => {
            let s = state.read();
            if let Some(status) = s.maintenance_api_status {
                return core_error(status, "Not Found");
            }
            let wanted = req
                .query
                .split('&')
                .find_map(|kv| kv.strip_prefix("status="))
                .map(str::to_string);
            let found: Vec<Value> = s
                .maintenance_windows
                .iter()
                .filter(|w| wanted.as_deref().is_none_or(|st| w["status"] == st))
                .cloned()
                .collect();
            json_response(
                200,
                &json!({"page": 1, "per_page": 100, "total": found.len(), "maintenanceWindows": found}),
            )
        }
        (&Method::GET, ["api", "status"]) => json_response(
            200,
            &json!({"name": "kibana-emulator", "version": {"number": "9.1.0"},
                    "status": {"overall": {"level": "available"}}}),
        ),
        (&Method::POST, ["api", "security_ai_assistant", "chat", "complete"]) => {
            if let Some(status) = take(state, |s| &mut s.fail_assistant) {
                return assistant_error(status, "emulated failure");
            }
            chat_complete(state, &req).await
        }
        (m, [a, b, c, d, rest @ ..]) if [*a, *b, *c, *d] == CONV => {
            if let Some(status) = take(state, |s| &mut s.fail_assistant) {
                return assistant_error(status, "emulated failure");
            }
            match (m, rest) {
                (&Method::POST, []) => create_conversation(state, &req),
                (&Method::GET, ["_find"]) => find_conversations(state, &req),
                (&Method::GET, [id]) => get_conversation(state, &req, id),
                _ => core_error(404, "Not Found"),
            }
        }
        (m, ["api", "cases", rest @ ..]) => {
            let body = match parse_json_body(&req.body) {
                Ok(b) => b,
                Err(r) => return *r,
            };
            state.update(|s| {
                s.case_requests
                    .push((m.to_string(), req.full_path.clone(), body.clone()))
            });
            if let Some(status) = take(state, |s| &mut s.fail_cases) {
                return core_error(status, "emulated failure");
            }
            if m != Method::GET && state.read().case_writes_forbidden {
                return core_error(
                    403,
                    "Unauthorized to create, update or delete case with owners: \"securitySolution\"",
                );
            }
            // A write whose response is lost: it is applied, then the client sees a 502.
            let lose = m != Method::GET && take(state, |s| &mut s.lose_case_responses).is_some();
            let response = match (m, rest) {
                (&Method::POST, []) => create_case(state, &req, &body),
                (&Method::PATCH, []) => patch_cases(state, &req, &body),
                (&Method::DELETE, []) => delete_cases(state, &req),
                (&Method::GET, ["_find"]) => find_cases(state, &req),
                (&Method::GET, [id]) => get_case(state, &req, id),
                (&Method::GET, [id, "comments", "_find"]) => find_comments(state, &req, id),
                (&Method::POST, [id, "comments"]) => add_comment(state, &req, id, &body),
                _ => core_error(404, "Not Found"),
            };
            if lose {
                return core_error(502, "emulated lost response (the write was applied)");
            }
            response
        }
        _ => core_error(404, "Not Found"),
    }
}

fn take(
    state: &Recorder<KibanaState>,
    queue: impl FnOnce(&mut KibanaState) -> &mut VecDeque<u16>,
) -> Option<u16> {
    state.update(|s| queue(s).pop_front())
}

#[cfg(test)]
mod tests {
    use super::*;

    use super::cases_validation::tests::valid_case;

    async fn send(
        k: &KibanaEmulator,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = reqwest::Client::new()
            .request(method, format!("{}{path}", k.url()))
            .header("kbn-xsrf", "true");
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    #[tokio::test]
    async fn xsrf_then_auth_rules_and_error_shapes() {
        let k = KibanaEmulator::start().await.unwrap();
        let resp = reqwest::Client::new()
            .post(format!("{}/api/cases", k.url()))
            .json(&json!({}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 400);
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["message"], "Request must contain a kbn-xsrf header.");
        k.require_auth("ApiKey abc");
        let (status, body) = send(&k, reqwest::Method::GET, "/api/cases/_find", None).await;
        assert_eq!(status, 401);
        assert_eq!(
            body["message"],
            "[security_exception]: unable to authenticate user"
        );
    }

    #[tokio::test]
    async fn held_answers_wait_for_release_and_overlap_is_counted() {
        let k = KibanaEmulator::start().await.unwrap();
        k.set_responder(|c| format!("answer to {}", c.last_user_content));
        k.hold_answers();
        let ask = |q: &'static str| {
            let url = format!("{}/api/security_ai_assistant/chat/complete", k.url());
            tokio::spawn(async move {
                reqwest::Client::new()
                    .post(url)
                    .header("kbn-xsrf", "true")
                    .json(&json!({"connectorId": "c", "persist": false,
                                  "messages": [{"role": "user", "content": q}]}))
                    .send()
                    .await
                    .unwrap()
                    .json::<Value>()
                    .await
                    .unwrap()
            })
        };
        let (a, b) = (ask("one"), ask("two"));
        k.wait_until("two held answers", Duration::from_secs(10), |s| {
            s.answering == 2
        })
        .await
        .unwrap();
        assert!(!a.is_finished() && !b.is_finished(), "held until released");
        k.release_answers();
        assert_eq!(a.await.unwrap()["data"], "answer to one");
        assert_eq!(b.await.unwrap()["data"], "answer to two");
        assert_eq!((k.answering(), k.max_answering()), (0, 2));
    }

    #[tokio::test]
    async fn the_answer_delay_is_the_models_latency() {
        let k = KibanaEmulator::start().await.unwrap();
        k.set_answer_delay(Some(Duration::from_millis(300)));
        k.push_answer("late");
        let url = format!("{}/api/security_ai_assistant/chat/complete", k.url());
        let started = std::time::Instant::now();
        let v: Value = reqwest::Client::new()
            .post(url)
            .header("kbn-xsrf", "true")
            .json(&json!({"connectorId": "c", "persist": false,
                          "messages": [{"role": "user", "content": "q"}]}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(v["data"], "late");
        assert!(started.elapsed() >= Duration::from_millis(300));
    }

    #[tokio::test]
    async fn streamed_answer_arrives_in_chunks_that_split_lines() {
        let k = KibanaEmulator::start().await.unwrap();
        k.set_chunk_delay(Some(Duration::from_millis(5)));
        let answer = "Verdict: malicious. Run Get-Process on WS-FIN-042 and isolate the host.";
        k.push_answer(answer);
        let resp = reqwest::Client::new()
            .post(format!(
                "{}/s/soc/api/security_ai_assistant/chat/complete",
                k.url()
            ))
            .header("kbn-xsrf", "true")
            .json(
                &json!({"connectorId": "c", "persist": false, "isStream": true,
                          "messages": [{"role": "user", "content": "triage"}]}),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        assert!(resp.headers().get("content-type").is_none());
        let mut resp = resp;
        let mut chunks = Vec::new();
        while let Some(c) = resp.chunk().await.unwrap() {
            chunks.push(c);
        }
        assert!(chunks.len() > 2, "several chunks: {}", chunks.len());
        assert!(
            chunks[..chunks.len() - 1]
                .iter()
                .all(|c| !c.ends_with(b"\n"))
        );
        let text: Vec<u8> = chunks.concat();
        let content: String = String::from_utf8(text)
            .unwrap()
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|v| v["type"] == "content")
            .filter_map(|v| v["payload"].as_str().map(str::to_string))
            .collect();
        assert_eq!(content, answer);
        let calls = k.calls();
        assert_eq!(calls[0].space, "soc");
        assert!(calls[0].is_stream && calls[0].conversation_id.is_none());
        assert_eq!(calls[0].last_user_content, "triage");
    }

    #[tokio::test]
    async fn persisted_chat_continues_a_precreated_conversation() {
        let k = KibanaEmulator::start().await.unwrap();
        let (status, conv) = send(
            &k,
            reqwest::Method::POST,
            "/api/security_ai_assistant/current_user/conversations",
            Some(json!({"title": "Triage a-1", "apiConfig": {"connectorId": "c", "actionTypeId": ".gen-ai"}})),
        )
        .await;
        assert_eq!(status, 200);
        let id = conv["id"].as_str().unwrap().to_string();
        k.set_responder(|call| format!("echo: {}", call.last_user_content));
        let (status, body) = send(
            &k,
            reqwest::Method::POST,
            "/api/security_ai_assistant/chat/complete",
            Some(
                json!({"connectorId": "c", "persist": true, "conversationId": id,
                        "messages": [{"role": "user", "content": "why?"}]}),
            ),
        )
        .await;
        assert_eq!(status, 200);
        assert_eq!(body["data"], "echo: why?");
        assert_eq!(body["conversationId"], id.as_str());
        let (_, stored) = send(
            &k,
            reqwest::Method::GET,
            &format!("/api/security_ai_assistant/current_user/conversations/{id}"),
            None,
        )
        .await;
        let roles: Vec<&str> = stored["messages"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|m| m["role"].as_str())
            .collect();
        assert_eq!(roles, ["user", "assistant"]);
        // Without persist, no conversationId comes back.
        let (_, body) = send(
            &k,
            reqwest::Method::POST,
            "/api/security_ai_assistant/chat/complete",
            Some(json!({"connectorId": "c", "persist": false, "messages": [{"role": "user", "content": "x"}]})),
        )
        .await;
        assert!(body.get("conversationId").is_none());
        // Scripted failure uses the assistant error shape.
        k.fail_next(1, 503);
        let (status, body) = send(
            &k,
            reqwest::Method::POST,
            "/api/security_ai_assistant/chat/complete",
            Some(json!({"connectorId": "c", "persist": false, "messages": [{"role": "user", "content": "x"}]})),
        )
        .await;
        assert_eq!((status, body["status_code"].clone()), (503, json!(503)));
    }

    #[tokio::test]
    async fn case_lifecycle_with_versions_conflicts_and_find() {
        let k = KibanaEmulator::start().await.unwrap();
        let (status, case) =
            send(&k, reqwest::Method::POST, "/api/cases", Some(valid_case())).await;
        assert_eq!(status, 200, "{case}");
        let id = case["id"].as_str().unwrap().to_string();
        let v1 = case["version"].clone();
        let (status, case) = send(
            &k,
            reqwest::Method::POST,
            &format!("/api/cases/{id}/comments"),
            Some(json!({"type": "alert", "alertId": "a-1", "index": "idx", "rule": {"id": "r", "name": "R"},
                        "owner": "securitySolution"})),
        )
        .await;
        assert_eq!(status, 200);
        assert_eq!(case["totalAlerts"], 1);
        assert_ne!(case["version"], v1);
        let (status, err) = send(
            &k,
            reqwest::Method::PATCH,
            "/api/cases",
            Some(json!({"cases": [{"id": id, "version": v1, "status": "closed"}]})),
        )
        .await;
        assert_eq!(status, 409, "{err}");
        let v2 = case["version"].clone();
        let (status, updated) = send(
            &k,
            reqwest::Method::PATCH,
            "/api/cases",
            Some(json!({"cases": [{"id": id, "version": v2, "status": "closed"}]})),
        )
        .await;
        assert_eq!(status, 200);
        assert_eq!(updated[0]["status"], "closed");
        assert!(updated[0]["closed_at"].is_string());
        let v3 = updated[0]["version"].clone();
        let (status, _) = send(
            &k,
            reqwest::Method::PATCH,
            "/api/cases",
            Some(json!({"cases": [{"id": id, "version": v3, "status": "closed"}]})),
        )
        .await;
        assert_eq!(status, 406);
        let (status, _) = send(&k, reqwest::Method::GET, "/api/cases/nope", None).await;
        assert_eq!(status, 404);
        let (_, found) = send(
            &k,
            reqwest::Method::GET,
            "/api/cases/_find?tags=other&tags=triage-bot:incident:1&owner=securitySolution",
            None,
        )
        .await;
        assert_eq!(found["total"], 1);
        assert_eq!(found["count_closed_cases"], 1);
        assert_eq!(found["cases"][0]["comments"], json!([]));
        let (_, other_space) = send(&k, reqwest::Method::GET, "/s/soc/api/cases/_find", None).await;
        assert_eq!(other_space["total"], 0);
        assert_eq!(k.cases()[0]["comments"].as_array().map(Vec::len), Some(1));
        assert_eq!(k.case_requests().len(), 8);
    }

    #[test]
    fn space_prefix_is_split_off() {
        assert_eq!(
            split_space("/s/soc/api/cases"),
            ("soc".into(), "/api/cases".into())
        );
        assert_eq!(
            split_space("/api/cases"),
            ("default".into(), "/api/cases".into())
        );
    }
}

/// The converse route's test (it came with `kibana_agent_builder.rs`): it drives the route
/// through the assembled emulator, so it lives here, where the emulator is.
#[cfg(test)]
mod agent_builder_tests {
    use crate::kibana::KibanaEmulator;
    use serde_json::{Value, json};

    async fn post(url: &str, body: Value, xsrf: bool) -> (u16, Value) {
        let mut rb = reqwest::Client::new().post(url).json(&body);
        if xsrf {
            rb = rb.header("kbn-xsrf", "true");
        }
        let r = rb.send().await.unwrap();
        (r.status().as_u16(), r.json().await.unwrap())
    }

    #[tokio::test]
    async fn converse_rules_and_conversation_continuity() {
        let kb = KibanaEmulator::start().await.unwrap();
        let url = format!("{}/s/soc/api/agent_builder/converse", kb.url());
        let (s, b) = post(&url, json!({"input": "hi"}), false).await;
        assert_eq!(
            (s, b["message"].as_str()),
            (400, Some("Request must contain a kbn-xsrf header."))
        );
        let (s, b) = post(&url, json!({"input": "hi", "bogus": 1}), true).await;
        assert_eq!(s, 400);
        assert!(b["message"].as_str().unwrap().contains("bogus"));
        let (s, b) = post(&url, json!({"input": "hi", "agent_id": "nope"}), true).await;
        assert_eq!(
            (s, b["message"].as_str()),
            (404, Some("Agent nope not found"))
        );
        kb.push_answer("one");
        kb.push_answer("two");
        let (s, first) = post(&url, json!({"input": "hi"}), true).await;
        assert_eq!(s, 200);
        assert_eq!(first["response"]["message"], "one");
        let id = first["conversation_id"].as_str().unwrap().to_string();
        let (s, second) = post(&url, json!({"input": "again", "conversation_id": id}), true).await;
        assert_eq!(s, 200);
        assert_eq!(second["conversation_id"], first["conversation_id"]);
        // Conversations belong to their space.
        let default = format!("{}/api/agent_builder/converse", kb.url());
        let (s, b) = post(&default, json!({"input": "x", "conversation_id": id}), true).await;
        assert_eq!(s, 404, "{b}");
        let calls = kb.calls();
        assert_eq!(calls.len(), 2);
        assert_eq!(calls[1].last_user_content, "again");
        assert_eq!(calls[1].space, "soc");
    }
}
