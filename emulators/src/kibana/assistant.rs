//! The Security AI Assistant of the Kibana emulator: `POST …/security_ai_assistant/chat/complete`
//! (a JSON answer, or the NDJSON stream cut into chunks that split lines) and the current user's
//! conversations (`POST …/current_user/conversations`, `GET …/{id}`, `GET …/_find`).
//!
//! It owns the Zod-style body validation and the stream's chunking; the scripted answers, the
//! recorded calls and the stored conversations live in [`KibanaState`].

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{HeaderValue, header};
use axum::response::Response;
use serde_json::{Value, json};

use super::state::{
    ChatCompleteCall, KibanaState, Req, assistant_error, core_error, now, parse_json_body,
};
use crate::server::Recorder;
use crate::server::json_response;

// ---------------------------------------------------------------------------------------------
// Security AI Assistant

/// Zod-style type name, for "Expected string, received number".
fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Validates the chat/complete body like the route's Zod schema; returns the issue list.
fn validate_chat_body(body: &Value) -> Vec<String> {
    let mut issues = Vec::new();
    let Some(obj) = body.as_object() else {
        return vec![format!("Expected object, received {}", type_name(body))];
    };
    let expect =
        |issues: &mut Vec<String>, key: &str, want: &str, required: bool| match obj.get(key) {
            None if required => issues.push(format!("{key}: Required")),
            None => {}
            Some(v) if type_name(v) != want => {
                issues.push(format!("{key}: Expected {want}, received {}", type_name(v)))
            }
            Some(_) => {}
        };
    expect(&mut issues, "connectorId", "string", true);
    expect(&mut issues, "persist", "boolean", true);
    for key in [
        "promptId",
        "responseLanguage",
        "model",
        "langSmithProject",
        "langSmithApiKey",
    ] {
        expect(&mut issues, key, "string", false);
    }
    expect(&mut issues, "isStream", "boolean", false);
    match obj.get("conversationId") {
        Some(Value::String(s)) if s.trim().is_empty() => {
            issues.push("conversationId: No empty strings allowed".to_string())
        }
        Some(
            v @ Value::Number(_) | v @ Value::Bool(_) | v @ Value::Array(_) | v @ Value::Object(_),
        ) => issues.push(format!(
            "conversationId: Expected string, received {}",
            type_name(v)
        )),
        _ => {}
    }
    match obj.get("messages") {
        None => issues.push("messages: Required".to_string()),
        Some(Value::Array(items)) => {
            if items.is_empty() {
                issues.push("messages: Array must contain at least 1 element(s)".to_string());
            }
            for (i, m) in items.iter().enumerate() {
                let Some(m) = m.as_object() else {
                    issues.push(format!(
                        "messages.{i}: Expected object, received {}",
                        type_name(m)
                    ));
                    continue;
                };
                match m.get("role").and_then(Value::as_str) {
                    Some("system" | "user" | "assistant") => {}
                    Some(other) => issues.push(format!(
                        "messages.{i}.role: Invalid enum value. Expected 'system' | 'user' | 'assistant', received '{other}'"
                    )),
                    None => issues.push(format!("messages.{i}.role: Required")),
                }
                if let Some(c) = m.get("content").filter(|c| !c.is_string()) {
                    issues.push(format!(
                        "messages.{i}.content: Expected string, received {}",
                        type_name(c)
                    ));
                }
                if let Some(d) = m.get("data").filter(|d| !d.is_object()) {
                    issues.push(format!(
                        "messages.{i}.data: Expected object, received {}",
                        type_name(d)
                    ));
                }
                match m.get("fields_to_anonymize") {
                    None => {}
                    Some(Value::Array(a)) if a.iter().all(Value::is_string) => {}
                    Some(_) => issues.push(format!(
                        "messages.{i}.fields_to_anonymize: Expected array of strings"
                    )),
                }
                let extra: Vec<String> = m
                    .keys()
                    .filter(|k| {
                        !["role", "content", "data", "fields_to_anonymize"].contains(&k.as_str())
                    })
                    .map(|k| format!("'{k}'"))
                    .collect();
                if !extra.is_empty() {
                    issues.push(format!(
                        "messages.{i}: Unrecognized key(s) in object: {}",
                        extra.join(", ")
                    ));
                }
            }
        }
        Some(v) => issues.push(format!(
            "messages: Expected array, received {}",
            type_name(v)
        )),
    }
    const KNOWN: &[&str] = &[
        "connectorId",
        "persist",
        "messages",
        "conversationId",
        "promptId",
        "isStream",
        "responseLanguage",
        "model",
        "langSmithProject",
        "langSmithApiKey",
    ];
    let extra: Vec<String> = obj
        .keys()
        .filter(|k| !KNOWN.contains(&k.as_str()))
        .map(|k| format!("'{k}'"))
        .collect();
    if !extra.is_empty() {
        issues.push(format!(
            "Unrecognized key(s) in object: {}",
            extra.join(", ")
        ));
    }
    issues
}

fn new_conversation(space: &str, title: &str, username: &str, api_config: Value) -> Value {
    let ts = now();
    json!({
        "id": uuid::Uuid::new_v4().to_string(),
        "title": title,
        "category": "assistant",
        "createdAt": ts,
        "updatedAt": ts,
        "timestamp": ts,
        "users": [{"id": "u_emulator_0", "name": username}],
        "namespace": space,
        "messages": [],
        "apiConfig": api_config,
        "replacements": {},
        "excludeFromLastConversationStorage": false,
        "isDefault": false,
    })
}

fn stored_message(role: &str, content: &str) -> Value {
    json!({"role": role, "content": content, "timestamp": now()})
}

pub(super) async fn chat_complete(state: &Arc<Recorder<KibanaState>>, req: &Req) -> Response {
    let body = match parse_json_body(&req.body) {
        Ok(b) => b,
        Err(r) => return *r,
    };
    let issues = validate_chat_body(&body);
    if !issues.is_empty() {
        return core_error(400, format!("[request body]: {}", issues.join(", ")));
    }
    let connector_id = body["connectorId"].as_str().unwrap_or_default().to_string();
    let persist = body["persist"].as_bool().unwrap_or(false);
    let is_stream = body
        .get("isStream")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let messages = body["messages"].as_array().cloned().unwrap_or_default();
    let last_user_content = messages
        .iter()
        .rev()
        .find(|m| m["role"] == "user")
        .and_then(|m| m["content"].as_str())
        .unwrap_or("")
        .to_string();
    let given_id = body
        .get("conversationId")
        .and_then(Value::as_str)
        .map(str::to_string);

    // Kibana ignores conversationId unless persist is true; with persist it must exist.
    let conversation_id = if persist {
        match &given_id {
            Some(id) => {
                let exists = state
                    .read()
                    .conversations
                    .iter()
                    .any(|c| c["id"] == id.as_str() && c["namespace"] == req.space.as_str());
                if !exists {
                    return assistant_error(404, format!("conversation id: \"{id}\" not found"));
                }
                Some(id.clone())
            }
            None => {
                let conv = new_conversation(
                    &req.space,
                    "New chat",
                    &req.username,
                    json!({"connectorId": connector_id, "actionTypeId": ".gen-ai"}),
                );
                let id = conv["id"].as_str().unwrap_or_default().to_string();
                state.update(|s| s.conversations.push(conv));
                Some(id)
            }
        }
    } else {
        None
    };

    let call = ChatCompleteCall {
        space: req.space.clone(),
        body: body.clone(),
        last_user_content,
        conversation_id: conversation_id.clone(),
        is_stream,
    };
    let (queued, responder) = state.update(|s| {
        s.calls.push(call.clone());
        (s.answers.pop_front(), s.responder.clone())
    });
    // The responder runs outside the state lock so it may inspect the emulator itself.
    let Some(answer) = queued.or_else(|| responder.map(|f| f(&call))) else {
        return assistant_error(500, "no scripted answer");
    };
    think(state).await;

    if let Some(id) = &conversation_id {
        // New conversations hold all request messages; continued ones only the new input.
        let incoming: Vec<Value> = if given_id.is_some() {
            messages.last().into_iter().cloned().collect()
        } else {
            messages.clone()
        };
        state.update(|s| {
            if let Some(conv) = s.conversations.iter_mut().find(|c| c["id"] == id.as_str()) {
                if let Some(list) = conv["messages"].as_array_mut() {
                    for m in &incoming {
                        list.push(stored_message(
                            m["role"].as_str().unwrap_or("user"),
                            m["content"].as_str().unwrap_or(""),
                        ));
                    }
                    list.push(stored_message("assistant", &answer));
                }
                conv["updatedAt"] = json!(now());
            }
        });
    }

    if is_stream {
        let delay = state.read().chunk_delay;
        return stream_response(ndjson_chunks(&answer), delay);
    }
    let mut out = json!({
        "connector_id": connector_id,
        "data": answer,
        "trace_data": {
            "transactionId": uuid::Uuid::new_v4().simple().to_string()[..16].to_string(),
            "traceId": uuid::Uuid::new_v4().simple().to_string(),
        },
        "replacements": {},
        "status": "ok",
    });
    if let Some(id) = conversation_id {
        out["conversationId"] = json!(id);
    }
    json_response(200, &out)
}

/// The model's latency: the configured delay, then as long as answers are held. Counted in
/// `answering` / `max_answering` so tests and the benchmark see how many calls overlap.
async fn think(state: &Arc<Recorder<KibanaState>>) {
    let delay = state.update(|s| {
        s.answering += 1;
        s.max_answering = s.max_answering.max(s.answering);
        s.answer_delay
    });
    if let Some(d) = delay {
        tokio::time::sleep(d).await;
    }
    // Held for at most an hour: a test that forgets to release fails on its own deadline.
    let _ = state
        .wait_until("held answers released", Duration::from_secs(3600), |s| {
            !s.hold_answers
        })
        .await;
    state.update(|s| s.answering -= 1);
}

/// Splits an answer into NDJSON `content` lines plus one unknown-type line, then cuts the bytes
/// into chunks at the middle of every line, so no chunk boundary falls on a line boundary.
pub(crate) fn ndjson_chunks(answer: &str) -> Vec<Bytes> {
    let chars: Vec<char> = answer.chars().collect();
    let pieces = chars.len().clamp(1, 4);
    let per = chars.len().div_ceil(pieces).max(1);
    let deltas: Vec<String> = chars.chunks(per).map(|c| c.iter().collect()).collect();
    let mut lines: Vec<String> = Vec::new();
    for (i, d) in deltas.iter().enumerate() {
        lines.push(json!({"payload": d, "type": "content"}).to_string());
        if i == 0 {
            // Clients must skip line types they do not know.
            lines.push(json!({"type": "debug", "payload": "x"}).to_string());
        }
    }
    if deltas.is_empty() {
        lines.push(json!({"type": "debug", "payload": "x"}).to_string());
    }
    let mut bytes = Vec::new();
    let mut cuts = Vec::new();
    for line in &lines {
        let start = bytes.len();
        bytes.extend_from_slice(line.as_bytes());
        bytes.push(b'\n');
        // Byte midpoint: may even split a multi-byte character, as a real TCP read can.
        cuts.push(start + line.len() / 2);
    }
    let bytes = Bytes::from(bytes);
    let mut chunks = Vec::new();
    let mut prev = 0;
    for cut in cuts.into_iter().filter(|c| *c > 0) {
        chunks.push(bytes.slice(prev..cut));
        prev = cut;
    }
    chunks.push(bytes.slice(prev..));
    chunks
}

fn stream_response(chunks: Vec<Bytes>, delay: Option<Duration>) -> Response {
    let stream = futures_util::stream::unfold(
        (chunks.into_iter(), true),
        move |(mut it, first)| async move {
            let chunk = it.next()?;
            if !first {
                // Separate writes so the client really sees the chunks one by one.
                match delay {
                    Some(d) => tokio::time::sleep(d).await,
                    None => tokio::task::yield_now().await,
                }
            }
            Some((Ok::<Bytes, Infallible>(chunk), (it, false)))
        },
    );
    let mut resp = Response::new(Body::from_stream(stream));
    let h = resp.headers_mut();
    // Headers set by Kibana's streamFactory (kibana.md §1.4); deliberately no Content-Type.
    // Transfer-Encoding and Connection are framing headers hyper manages itself.
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    resp
}

pub(super) fn create_conversation(state: &Arc<Recorder<KibanaState>>, req: &Req) -> Response {
    let body = match parse_json_body(&req.body) {
        Ok(b) => b,
        Err(r) => return *r,
    };
    let Some(obj) = body.as_object() else {
        return core_error(
            400,
            format!(
                "[request body]: Expected object, received {}",
                type_name(&body)
            ),
        );
    };
    let mut issues = Vec::new();
    match obj.get("title") {
        None => issues.push("title: Required".to_string()),
        Some(Value::String(_)) => {}
        Some(v) => issues.push(format!("title: Expected string, received {}", type_name(v))),
    }
    if let Some(c) = obj.get("category")
        && !matches!(c.as_str(), Some("assistant" | "insights"))
    {
        issues.push("category: Invalid enum value. Expected 'assistant' | 'insights'".to_string());
    }
    match obj.get("apiConfig") {
        None => {}
        Some(Value::Object(ac)) => {
            for key in ["connectorId", "actionTypeId"] {
                match ac.get(key) {
                    Some(Value::String(_)) => {}
                    None => issues.push(format!("apiConfig.{key}: Required")),
                    Some(v) => issues.push(format!(
                        "apiConfig.{key}: Expected string, received {}",
                        type_name(v)
                    )),
                }
            }
        }
        Some(v) => issues.push(format!(
            "apiConfig: Expected object, received {}",
            type_name(v)
        )),
    }
    if let Some(m) = obj.get("messages").filter(|m| !m.is_array()) {
        issues.push(format!(
            "messages: Expected array, received {}",
            type_name(m)
        ));
    }
    if let Some(r) = obj.get("replacements").filter(|r| !r.is_object()) {
        issues.push(format!(
            "replacements: Expected object, received {}",
            type_name(r)
        ));
    }
    if let Some(e) = obj
        .get("excludeFromLastConversationStorage")
        .filter(|e| !e.is_boolean())
    {
        issues.push(format!(
            "excludeFromLastConversationStorage: Expected boolean, received {}",
            type_name(e)
        ));
    }
    if !issues.is_empty() {
        return core_error(400, format!("[request body]: {}", issues.join(", ")));
    }
    let title = obj["title"].as_str().unwrap_or_default();
    let mut conv = new_conversation(
        &req.space,
        title,
        &req.username,
        obj.get("apiConfig").cloned().unwrap_or(json!({})),
    );
    if obj.get("apiConfig").is_none()
        && let Some(map) = conv.as_object_mut()
    {
        map.remove("apiConfig");
    }
    for key in [
        "category",
        "messages",
        "replacements",
        "excludeFromLastConversationStorage",
    ] {
        if let Some(v) = obj.get(key) {
            conv[key] = v.clone();
        }
    }
    state.update(|s| s.conversations.push(conv.clone()));
    json_response(200, &conv)
}

pub(super) fn get_conversation(
    state: &Arc<Recorder<KibanaState>>,
    req: &Req,
    id: &str,
) -> Response {
    let found = state
        .read()
        .conversations
        .iter()
        .find(|c| c["id"] == id && c["namespace"] == req.space.as_str())
        .cloned();
    match found {
        Some(c) => json_response(200, &c),
        None => assistant_error(404, format!("conversation id: \"{id}\" not found")),
    }
}

pub(super) fn find_conversations(state: &Arc<Recorder<KibanaState>>, req: &Req) -> Response {
    let data: Vec<Value> = state
        .read()
        .conversations
        .iter()
        .filter(|c| c["namespace"] == req.space.as_str())
        .rev()
        .cloned()
        .collect();
    json_response(
        200,
        &json!({"page": 1, "perPage": data.len().max(20), "total": data.len(), "data": data}),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chat_body_validation_lists_zod_style_issues() {
        let issues = validate_chat_body(&json!({"messages": [], "foo": 1}));
        assert_eq!(
            issues,
            vec![
                "connectorId: Required",
                "persist: Required",
                "messages: Array must contain at least 1 element(s)",
                "Unrecognized key(s) in object: 'foo'",
            ]
        );
        let ok = json!({"connectorId": "c", "persist": false, "isStream": true,
                        "messages": [{"role": "user", "content": "hi", "data": {"host.name": "h"}, "fields_to_anonymize": ["user.name"]}]});
        assert!(validate_chat_body(&ok).is_empty());
        let bad_role = json!({"connectorId": "c", "persist": false, "messages": [{"role": "bot"}]});
        assert_eq!(validate_chat_body(&bad_role).len(), 1);
    }

    #[test]
    fn ndjson_chunks_split_lines_in_the_middle_of_json() {
        let answer =
            "### Triage summary\n\nThe process WmiPrvSE.exe wrote a Run key — likely malicious.";
        let chunks = ndjson_chunks(answer);
        assert!(chunks.len() >= 4, "several chunks: {}", chunks.len());
        for c in &chunks[..chunks.len() - 1] {
            assert!(!c.ends_with(b"\n"), "no chunk ends on a line boundary");
            assert!(!c.is_empty());
        }
        // Every boundary cuts a line: no chunk is a whole set of lines.
        for c in &chunks {
            assert!(serde_json::from_slice::<Value>(c).is_err());
        }
        let all: Vec<u8> = chunks.iter().flat_map(|c| c.iter().copied()).collect();
        let text = String::from_utf8(all).unwrap();
        assert!(text.ends_with('\n'));
        let mut content = String::new();
        let mut other = 0;
        for line in text.lines() {
            let v: Value = serde_json::from_str(line).unwrap();
            if v["type"] == "content" {
                content.push_str(v["payload"].as_str().unwrap());
            } else {
                other += 1;
            }
        }
        assert_eq!(content, answer);
        assert_eq!(other, 1);
        assert!(text.lines().filter(|l| l.contains("\"content\"")).count() >= 3);
    }
}
