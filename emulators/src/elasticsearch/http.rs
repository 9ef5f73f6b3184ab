//! The HTTP layer of the Elasticsearch emulator: authentication, the compatibility media-type
//! checks, the response content type and `X-Elastic-Product` header, failure injection, the
//! search record, and the routes (`_search`, `/`, and a minimal `_doc` PUT for humans driving the
//! binary).

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::Response;
use chrono::Utc;
use serde_json::{Value, json};

use super::error::EsError;
use super::search::search;
use super::state::{EsState, RecordedSearch};
use crate::server::Recorder;

// ---------------------------------------------------------------------------------------------
// HTTP layer

/// Content type ES answers with when the client asked for the compatibility media type.
const COMPAT_CONTENT_TYPE: &str = "application/vnd.elasticsearch+json;compatible-with=9";

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

pub(super) async fn handle(
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
            Ok(v) => {
                let mut resp = respond(&headers, 200, &v);
                // Documents indexed as raw bytes go out exactly as stored.
                let mut text = v.to_string();
                let mut spliced = false;
                for d in s.indices.values().flatten() {
                    if let Some(raw) = &d.raw_source {
                        let placeholder = Value::String(super::state::raw_placeholder(d.seq));
                        let quoted = placeholder.to_string();
                        if text.contains(&quoted) {
                            text = text.replace(&quoted, raw);
                            spliced = true;
                        }
                    }
                }
                if spliced {
                    *resp.body_mut() = Body::from(text);
                }
                resp
            }
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
        (Method::PUT | Method::POST, [index, "_bulk"]) => {
            bulk(&state, &headers, &percent_decode(index), &body)
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
            let existed = state.update(|s| s.store_doc(&index, &id, source));
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

/// `POST /{index}/_bulk`: NDJSON action/source pairs. Only `index` and `create` actions (what
/// triage-bot sends); each item is answered on its own, as ES does.
fn bulk(
    state: &Recorder<EsState>,
    headers: &HeaderMap,
    default_index: &str,
    body: &Bytes,
) -> Response {
    let text = String::from_utf8_lossy(body);
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let mut items = Vec::new();
    let mut errors = false;
    while let Some(action_line) = lines.next() {
        let action: Value = match serde_json::from_str(action_line) {
            Ok(v) => v,
            Err(e) => {
                return respond_err(
                    headers,
                    &EsError::parsing(format!("Malformed action/metadata line: {e}")),
                );
            }
        };
        let Some((op, meta)) = action.as_object().and_then(|o| o.iter().next()) else {
            return respond_err(headers, &EsError::parsing("Malformed action/metadata line"));
        };
        if op != "index" && op != "create" {
            return respond_err(
                headers,
                &EsError::parsing(format!(
                    "emulator supports index and create only, got [{op}]"
                )),
            );
        }
        let Some(source_line) = lines.next() else {
            return respond_err(
                headers,
                &EsError::parsing("The bulk request must be terminated by a newline [\\n]"),
            );
        };
        let index = meta["_index"].as_str().unwrap_or(default_index).to_string();
        let id = meta["_id"]
            .as_str()
            .map(String::from)
            .unwrap_or_else(|| format!("auto-{}", items.len()));
        let item = match serde_json::from_str::<Value>(source_line) {
            Ok(source @ Value::Object(_)) => {
                let existed = state.update(|s| s.store_doc(&index, &id, source));
                json!({"_index": index, "_id": id, "status": if existed { 200 } else { 201 },
                       "result": if existed { "updated" } else { "created" }})
            }
            _ => {
                errors = true;
                json!({"_index": index, "_id": id, "status": 400,
                       "error": {"type": "document_parsing_exception", "reason": "failed to parse"}})
            }
        };
        items.push(json!({ op.clone(): item }));
    }
    respond(
        headers,
        200,
        &json!({"took": 1, "errors": errors, "items": items}),
    )
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
