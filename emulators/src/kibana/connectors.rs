//! The Kibana emulator's connectors API (the actions plugin): `GET /api/actions/connectors`,
//! `GET /api/actions/connector_types`, `POST /api/actions/connector[/{id}]` and
//! `DELETE /api/actions/connector/{id}`, per space, with Kibana's answers to what clients get
//! wrong: 400 `{statusCode,error,message}` for a body the type's config-schema refuses
//! (`[request body.name]: expected value of type [string] but got [undefined]`,
//! `error validating action type config: …`, `error validating action type secrets: …`), an
//! unknown type (`Action type "…" is not registered.`), a webhook URL outside
//! `xpack.actions.allowedHosts`; 403 for a type the licence or `xpack.actions.enabledActionTypes`
//! leaves out; 409 for an id in use; 404 `Saved object [action/…] not found`.
//!
//! Connector names need not be unique in Kibana, and are not here. It validates only the
//! `.index` and `.webhook` types' config and secrets (the other known types are accepted as sent).

use std::sync::Arc;

use axum::http::Method;
use axum::response::Response;
use serde_json::{Map, Value, json};

use super::state::{KibanaState, Req, core_error, parse_json_body};
use crate::server::{Recorder, json_response};

/// A connector made through the API, in its space.
#[derive(Debug, Clone)]
pub struct StoredConnector {
    pub space: String,
    /// The connector as `GET` answers it (without secrets).
    pub connector: Value,
    /// The secrets as sent (never returned by the API; kept for tests).
    pub secrets: Value,
}

/// (id, name, minimum licence) of the types this emulator knows.
const TYPES: &[(&str, &str, &str)] = &[
    (".index", "Index", "basic"),
    (".server-log", "Server log", "basic"),
    (".webhook", "Webhook", "gold"),
    (".gen-ai", "OpenAI", "enterprise"),
    (".cases-webhook", "Webhook - Case Management", "gold"),
    (".email", "Email", "gold"),
    (".slack", "Slack", "gold"),
];

fn licence_rank(l: &str) -> u8 {
    match l {
        "basic" => 0,
        "standard" => 1,
        "gold" => 2,
        "platinum" => 3,
        "enterprise" | "trial" => 4,
        _ => 0,
    }
}

/// Whether the licence includes a type, and whether kibana.yml enables it.
fn availability(s: &KibanaState, id: &str, min: &str) -> (bool, bool) {
    let licence = s.licence.as_deref().unwrap_or("trial");
    let in_licence = licence_rank(licence) >= licence_rank(min);
    let in_config = !s.disabled_connector_types.iter().any(|t| t == id);
    (in_licence, in_config)
}

pub(super) fn route(state: &Arc<Recorder<KibanaState>>, req: &Req, rest: &[&str]) -> Response {
    let body = match parse_json_body(&req.body) {
        Ok(b) => b,
        Err(r) => return *r,
    };
    state.update(|s| {
        s.connector_requests
            .push((req.method.to_string(), req.full_path.clone(), body.clone()))
    });
    match (&req.method, rest) {
        (&Method::GET, ["connectors"]) => list(state, req),
        (&Method::GET, ["connector_types"]) => types(state),
        (&Method::POST, ["connector"]) => create(state, req, &body, None),
        (&Method::POST, ["connector", id]) => create(state, req, &body, Some(id)),
        (&Method::GET, ["connector", id]) => {
            let s = state.read();
            match find(&s, &req.space, id) {
                Some(c) => json_response(200, &c.connector),
                None => not_found(id),
            }
        }
        (&Method::DELETE, ["connector", id]) => delete(state, req, id),
        _ => core_error(404, "Not Found"),
    }
}

fn not_found(id: &str) -> Response {
    core_error(404, format!("Saved object [action/{id}] not found"))
}

fn find<'a>(s: &'a KibanaState, space: &str, id: &str) -> Option<&'a StoredConnector> {
    s.stored_connectors
        .iter()
        .find(|c| c.space == space && c.connector["id"] == id)
}

fn list(state: &Arc<Recorder<KibanaState>>, req: &Req) -> Response {
    let s = state.read();
    // Connectors added by `add_connector` are preconfigured-like: in every space.
    let mut out: Vec<Value> = s
        .connectors
        .iter()
        .map(|(id, kind, name)| {
            json!({"id": id, "connector_type_id": kind, "name": name,
                   "is_preconfigured": false, "is_deprecated": false,
                   "is_missing_secrets": false, "is_system": false,
                   "referenced_by_count": 0, "config": {}})
        })
        .collect();
    out.extend(
        s.stored_connectors
            .iter()
            .filter(|c| c.space == req.space)
            .map(|c| {
                let mut v = c.connector.clone();
                v["referenced_by_count"] = json!(0);
                v
            }),
    );
    json_response(200, &Value::Array(out))
}

fn types(state: &Arc<Recorder<KibanaState>>) -> Response {
    let s = state.read();
    let out: Vec<Value> = TYPES
        .iter()
        .map(|(id, name, min)| {
            let (in_licence, in_config) = availability(&s, id, min);
            json!({"id": id, "name": name, "enabled": in_licence && in_config,
                   "enabled_in_config": in_config, "enabled_in_license": in_licence,
                   "minimum_license_required": min, "is_system": false,
                   "supported_feature_ids": ["alerting", "uptime", "siem"]})
        })
        .collect();
    json_response(200, &Value::Array(out))
}

fn create(
    state: &Arc<Recorder<KibanaState>>,
    req: &Req,
    body: &Value,
    id: Option<&str>,
) -> Response {
    let Some(obj) = body.as_object() else {
        return core_error(
            400,
            "[request body]: expected a plain object value, but found [null] instead.",
        );
    };
    for key in obj.keys() {
        if !["name", "connector_type_id", "config", "secrets"].contains(&key.as_str()) {
            return core_error(
                400,
                format!("[request body.{key}]: definition for this key is missing"),
            );
        }
    }
    let name = match obj.get("name") {
        Some(Value::String(n)) if !n.is_empty() => n.clone(),
        Some(Value::String(_)) => {
            return core_error(
                400,
                "[request body.name]: value has length [0] but it must have a minimum length of [1].",
            );
        }
        other => {
            return core_error(
                400,
                format!(
                    "[request body.name]: expected value of type [string] but got [{}]",
                    type_name(other)
                ),
            );
        }
    };
    let kind = match obj.get("connector_type_id") {
        Some(Value::String(k)) => k.clone(),
        other => {
            return core_error(
                400,
                format!(
                    "[request body.connector_type_id]: expected value of type [string] but got [{}]",
                    type_name(other)
                ),
            );
        }
    };
    let Some((_, _, min)) = TYPES.iter().find(|(t, _, _)| *t == kind) else {
        return core_error(400, format!("Action type \"{kind}\" is not registered."));
    };
    {
        let s = state.read();
        let (in_licence, in_config) = availability(&s, &kind, min);
        if !in_config {
            return core_error(
                403,
                format!(
                    "action type \"{kind}\" is not enabled in the Kibana config xpack.actions.enabledActionTypes"
                ),
            );
        }
        if !in_licence {
            let licence = s.licence.clone().unwrap_or_default();
            return core_error(
                403,
                format!(
                    "Action type {kind} is disabled because your {licence} license does not support it. Please upgrade your license."
                ),
            );
        }
    }
    let config = obj.get("config").cloned().unwrap_or(json!({}));
    let secrets = obj.get("secrets").cloned().unwrap_or(json!({}));
    let config = match validate(state, &kind, &config, &secrets) {
        Ok(c) => c,
        Err(message) => return core_error(400, message),
    };
    let id = id
        .map(String::from)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let connector = json!({"id": id, "name": name, "connector_type_id": kind, "config": config,
        "is_preconfigured": false, "is_deprecated": false, "is_missing_secrets": false,
        "is_system": false});
    let created = state.update(|s| {
        if find(s, &req.space, &id).is_some() {
            return false;
        }
        s.stored_connectors.push(StoredConnector {
            space: req.space.clone(),
            connector: connector.clone(),
            secrets,
        });
        true
    });
    if !created {
        return core_error(409, format!("Saved object [action/{id}] conflict"));
    }
    json_response(200, &connector)
}

fn type_name(v: Option<&Value>) -> &'static str {
    match v {
        None => "undefined",
        Some(Value::Null) => "null",
        Some(Value::Bool(_)) => "boolean",
        Some(Value::Number(_)) => "number",
        Some(Value::String(_)) => "string",
        Some(Value::Array(_)) => "Array",
        Some(Value::Object(_)) => "Object",
    }
}

/// The type's config-schema: the config as Kibana stores it (defaults filled in), or the
/// message of its 400.
fn validate(
    state: &Arc<Recorder<KibanaState>>,
    kind: &str,
    config: &Value,
    secrets: &Value,
) -> Result<Value, String> {
    let cfg_err = |m: String| format!("error validating action type config: {m}");
    let sec_err = |m: String| format!("error validating action type secrets: {m}");
    let obj = |v: &Value, what: &str| -> Result<Map<String, Value>, String> {
        v.as_object()
            .cloned()
            .ok_or_else(|| {
                format!(
                    "expected a plain object value, but found [{}] instead.",
                    type_name(Some(v))
                )
                .to_string()
            })
            .map_err(|m| format!("error validating action type {what}: {m}"))
    };
    match kind {
        ".index" => {
            let mut c = obj(config, "config")?;
            for key in c.keys() {
                if !["index", "refresh", "executionTimeField"].contains(&key.as_str()) {
                    return Err(cfg_err(format!(
                        "[{key}]: definition for this key is missing"
                    )));
                }
            }
            match c.get("index") {
                Some(Value::String(i)) if !i.is_empty() => {}
                other => {
                    return Err(cfg_err(format!(
                        "[index]: expected value of type [string] but got [{}]",
                        type_name(other)
                    )));
                }
            }
            c.entry("refresh").or_insert(json!(false));
            c.entry("executionTimeField").or_insert(Value::Null);
            if !obj(secrets, "secrets")?.is_empty() {
                return Err(sec_err("[key]: definition for this key is missing".into()));
            }
            Ok(Value::Object(c))
        }
        ".webhook" => {
            let mut c = obj(config, "config")?;
            const KEYS: &[&str] = &[
                "url",
                "method",
                "headers",
                "hasAuth",
                "authType",
                "certType",
                "ca",
                "verificationMode",
            ];
            for key in c.keys() {
                if !KEYS.contains(&key.as_str()) {
                    return Err(cfg_err(format!(
                        "[{key}]: definition for this key is missing"
                    )));
                }
            }
            let url = match c.get("url") {
                Some(Value::String(u)) => u.clone(),
                other => {
                    return Err(cfg_err(format!(
                        "[url]: expected value of type [string] but got [{}]",
                        type_name(other)
                    )));
                }
            };
            let parsed = reqwest::Url::parse(&url).map_err(|e| {
                cfg_err(format!(
                    "error configuring webhook action: unable to parse url: {e}"
                ))
            })?;
            let allowed = state.read().allowed_hosts.clone();
            if let Some(hosts) = allowed {
                let host = parsed.host_str().unwrap_or_default();
                if !hosts.iter().any(|h| h == "*" || h == host) {
                    return Err(cfg_err(format!(
                        "error configuring webhook action: target url \"{url}\" is not added to the Kibana config xpack.actions.allowedHosts"
                    )));
                }
            }
            match c.get("method") {
                None => {
                    c.insert("method".into(), json!("post"));
                }
                Some(Value::String(m)) if m == "post" || m == "put" => {}
                Some(other) => {
                    return Err(cfg_err(format!(
                        "[method]: types that failed validation:\n- [method.0]: expected value to equal [post]\n- [method.1]: expected value to equal [put] (got {other})"
                    )));
                }
            }
            if let Some(h) = c.get("headers")
                && !h.is_null()
                && !h
                    .as_object()
                    .is_some_and(|m| m.values().all(Value::is_string))
            {
                return Err(cfg_err(
                    "[headers]: types that failed validation:\n- [headers.0]: could not parse record value from json input\n- [headers.1]: expected value to equal [null]".into(),
                ));
            }
            c.entry("hasAuth").or_insert(json!(true));
            let s = obj(secrets, "secrets")?;
            for key in s.keys() {
                if !["user", "password", "crt", "key", "pfx", "secretHeaders"]
                    .contains(&key.as_str())
                {
                    return Err(sec_err(format!(
                        "[{key}]: definition for this key is missing"
                    )));
                }
            }
            if let Some(h) = s.get("secretHeaders")
                && !h.is_null()
                && !h
                    .as_object()
                    .is_some_and(|m| m.values().all(Value::is_string))
            {
                return Err(sec_err(
                    "[secretHeaders]: could not parse record value from json input".into(),
                ));
            }
            Ok(Value::Object(c))
        }
        _ => Ok(config.clone()),
    }
}

fn delete(state: &Arc<Recorder<KibanaState>>, req: &Req, id: &str) -> Response {
    let removed = state.update(|s| {
        let before = s.stored_connectors.len() + s.connectors.len();
        s.stored_connectors
            .retain(|c| !(c.space == req.space && c.connector["id"] == id));
        s.connectors.retain(|(cid, _, _)| cid != id);
        before != s.stored_connectors.len() + s.connectors.len()
    });
    if removed {
        axum::response::IntoResponse::into_response(axum::http::StatusCode::NO_CONTENT)
    } else {
        not_found(id)
    }
}
