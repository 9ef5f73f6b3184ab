//! Elasticsearch errors as the emulator renders them: `{"error":{"type","reason","root_cause":[…]},
//! "status"}` with ES's exception types (`parsing_exception`, `illegal_argument_exception`,
//! `index_not_found_exception`, and what injected failures answer).

use serde_json::{Value, json};

/// An ES error ready to be rendered.
#[derive(Debug)]
pub(super) struct EsError {
    pub(super) status: u16,
    pub(super) kind: String,
    reason: String,
    extra: serde_json::Map<String, Value>,
}

impl EsError {
    pub(super) fn new(status: u16, kind: &str, reason: impl Into<String>) -> Self {
        Self {
            status,
            kind: kind.to_string(),
            reason: reason.into(),
            extra: Default::default(),
        }
    }

    pub(super) fn parsing(reason: impl Into<String>) -> Self {
        Self::new(400, "parsing_exception", reason)
    }

    pub(super) fn illegal(reason: impl Into<String>) -> Self {
        Self::new(400, "illegal_argument_exception", reason)
    }

    pub(super) fn index_not_found(index: &str) -> Self {
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

    pub(super) fn injected(status: u16) -> Self {
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

    pub(super) fn body(&self) -> Value {
        let mut cause = serde_json::Map::new();
        cause.insert("type".into(), json!(self.kind));
        cause.insert("reason".into(), json!(self.reason));
        cause.extend(self.extra.clone());
        let mut error = cause.clone();
        error.insert("root_cause".into(), json!([Value::Object(cause)]));
        json!({ "error": Value::Object(error), "status": self.status })
    }
}
