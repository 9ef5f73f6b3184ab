//! Web API plumbing of the Slack emulator shared by the methods and the Block Kit checks: the
//! method-level error ([`ApiError`], HTTP 200 `{"ok":false,"error":..}`), collecting parameters
//! from the query string, a form or a JSON body (JSON-valued form fields parsed), the parameter
//! accessors, and the opaque pagination cursors.

use axum::body::Bytes;
use axum::http::{HeaderMap, Uri, header};
use base64::Engine as _;
use serde_json::{Map, Value, json};

// ---------------------------------------------------------------------------------------------
// HTTP layer

/// A method-level failure (HTTP 200, `ok: false`).
#[derive(Debug)]
pub(super) struct ApiError {
    pub(super) code: String,
    pub(super) messages: Vec<String>,
}

impl ApiError {
    pub(super) fn new(code: &str) -> Self {
        Self {
            code: code.to_string(),
            messages: Vec::new(),
        }
    }

    pub(super) fn with(code: &str, messages: Vec<String>) -> Self {
        Self {
            code: code.to_string(),
            messages,
        }
    }

    pub(super) fn body(&self) -> Value {
        let mut b = json!({"ok": false, "error": self.code});
        if !self.messages.is_empty() {
            b["response_metadata"] = json!({"messages": self.messages});
        }
        b
    }
}

pub(super) type ApiResult = Result<Value, ApiError>;

/// Parses a JSON-valued parameter given as a string (form-encoded `blocks`, `metadata`, …).
pub(super) fn parse_json_strings(params: &mut Map<String, Value>) -> Result<(), ApiError> {
    for key in ["blocks", "attachments", "metadata", "view"] {
        if let Some(Value::String(s)) = params.get(key) {
            match serde_json::from_str::<Value>(s) {
                Ok(v) => {
                    params.insert(key.to_string(), v);
                }
                Err(_) if key == "blocks" => return Err(ApiError::new("invalid_blocks_format")),
                Err(_) => return Err(ApiError::new("invalid_arguments")),
            }
        }
    }
    Ok(())
}

/// Collects query, form and JSON parameters into one object.
pub(super) fn collect_params(
    uri: &Uri,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<Map<String, Value>, ApiError> {
    let mut params = Map::new();
    let pairs =
        |raw: &str| serde_urlencoded::from_str::<Vec<(String, String)>>(raw).unwrap_or_default();
    for (k, v) in pairs(uri.query().unwrap_or("")) {
        params.insert(k, Value::String(v));
    }
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !body.is_empty() {
        if ct.starts_with("application/json") {
            match serde_json::from_slice::<Value>(body) {
                Ok(Value::Object(m)) => params.extend(m),
                _ => return Err(ApiError::new("invalid_json")),
            }
        } else if ct.starts_with("multipart/") {
            return Err(ApiError::new("invalid_form_data"));
        } else {
            let raw = std::str::from_utf8(body).map_err(|_| ApiError::new("invalid_form_data"))?;
            for (k, v) in pairs(raw) {
                params.insert(k, Value::String(v));
            }
        }
    }
    Ok(params)
}

// ---------------------------------------------------------------------------------------------
// Parameter helpers

/// A string parameter (numbers are accepted and stringified, as Slack does for `ts`).
pub(super) fn param(p: &Map<String, Value>, key: &str) -> Option<String> {
    match p.get(key)? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

pub(super) fn required(p: &Map<String, Value>, key: &str, error: &str) -> Result<String, ApiError> {
    param(p, key).ok_or_else(|| ApiError::new(error))
}

pub(super) fn param_usize(p: &Map<String, Value>, key: &str) -> Option<usize> {
    match p.get(key)? {
        Value::Number(n) => n.as_u64().map(|n| n as usize),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

pub(super) fn encode_cursor(prefix: &str, offset: usize) -> String {
    base64::engine::general_purpose::STANDARD.encode(format!("{prefix}:{offset}"))
}

pub(super) fn decode_cursor(prefix: &str, cursor: &str) -> Result<usize, ApiError> {
    base64::engine::general_purpose::STANDARD
        .decode(cursor)
        .ok()
        .and_then(|raw| String::from_utf8(raw).ok())
        .and_then(|s| {
            s.strip_prefix(&format!("{prefix}:"))
                .and_then(|n| n.parse().ok())
        })
        .ok_or_else(|| ApiError::new("invalid_cursor"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_reject_garbage() {
        assert_eq!(decode_cursor("user", &encode_cursor("user", 7)).unwrap(), 7);
        assert_eq!(
            decode_cursor("user", "bm9wZQ==").unwrap_err().code,
            "invalid_cursor"
        );
    }
}
