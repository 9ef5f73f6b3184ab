//! The Cases API of the Kibana emulator: `POST /api/cases`, `PATCH /api/cases`,
//! `GET /api/cases/_find`, `GET /api/cases/{id}`, `POST /api/cases/{id}/comments` and
//! `GET /api/cases/{id}/comments/_find`, in any space.
//!
//! It owns what the handlers do with a decoded body: new cases and comments, the opaque versions
//! (409 on a stale one, 406 on a PATCH that changes nothing), the totals, the closing fields and
//! the `_find` filters. Bodies are decoded by `cases_validation.rs`; the cases themselves live in
//! [`KibanaState`].

use std::collections::HashMap;
use std::sync::Arc;

use axum::response::Response;
use base64::Engine as _;
use chrono::Utc;
use serde_json::{Map, Value, json};

use super::cases_validation::{PATCHABLE, validate_comment, validate_create_case, validate_patch};
use super::state::{KibanaState, Req, StoredCase, core_error, now};
use crate::server::Recorder;
use crate::server::json_response;

// ---------------------------------------------------------------------------------------------
// Cases: handlers

fn user_object(username: &str) -> Value {
    json!({"username": username, "full_name": null, "email": null, "profile_uid": "u_emulator_0"})
}

/// Opaque saved-object version, shaped like Kibana's base64 of `[seq_no,primary_term]`.
fn next_version(s: &mut KibanaState) -> String {
    s.version_counter += 1;
    base64::engine::general_purpose::STANDARD.encode(format!("[{},1]", s.version_counter))
}

/// Recomputes the totals after the comment list changed.
fn recount(case: &mut Value) {
    let comments = case["comments"].as_array().cloned().unwrap_or_default();
    let user = comments.iter().filter(|c| c["type"] == "user").count();
    let alerts: usize = comments
        .iter()
        .filter(|c| c["type"] == "alert")
        .map(|c| match &c["alertId"] {
            Value::Array(a) => a.len(),
            _ => 1,
        })
        .sum();
    case["totalComment"] = json!(user);
    case["totalAlerts"] = json!(alerts);
}

fn without_comments(case: &Value) -> Value {
    let mut c = case.clone();
    c["comments"] = json!([]);
    c
}

pub(super) fn create_case(state: &Arc<Recorder<KibanaState>>, req: &Req, body: &Value) -> Response {
    if let Err(msg) = validate_create_case(body) {
        return core_error(400, format!("Failed to create case: Error: {msg}"));
    }
    let ts = now();
    let case = state.update(|s| {
        let version = next_version(s);
        let mut case = json!({
            "id": uuid::Uuid::new_v4().to_string(),
            "version": version,
            "title": body["title"].as_str().unwrap_or_default().trim(),
            "description": body["description"],
            "tags": body["tags"].as_array().map(|t| t.iter().map(|x| json!(x.as_str().unwrap_or_default().trim())).collect::<Vec<_>>()).unwrap_or_default(),
            "owner": body["owner"],
            "status": "open",
            "severity": body.get("severity").cloned().unwrap_or(json!("low")),
            "assignees": body.get("assignees").cloned().unwrap_or(json!([])),
            "category": body.get("category").cloned().unwrap_or(Value::Null),
            "settings": body["settings"],
            "customFields": body.get("customFields").cloned().unwrap_or(json!([])),
            "connector": body["connector"],
            "external_service": null,
            "totalComment": 0,
            "totalAlerts": 0,
            "comments": [],
            "created_at": ts,
            "created_by": user_object(&req.username),
            "updated_at": null,
            "updated_by": null,
            "closed_at": null,
            "closed_by": null,
            "duration": null,
        });
        recount(&mut case);
        s.cases.push(StoredCase { space: req.space.clone(), case: case.clone() });
        case
    });
    json_response(200, &case)
}

fn find_case_index(s: &KibanaState, space: &str, id: &str) -> Option<usize> {
    s.cases
        .iter()
        .position(|c| c.space == space && c.case["id"] == id)
}

pub(super) fn get_case(state: &Arc<Recorder<KibanaState>>, req: &Req, id: &str) -> Response {
    let s = state.read();
    match find_case_index(&s, &req.space, id) {
        Some(i) => json_response(200, &s.cases[i].case),
        None => core_error(
            404,
            format!("Failed to retrieve case id: {id}: Error: Saved object [cases/{id}] not found"),
        ),
    }
}

/// `GET /api/cases/{id}/comments/_find`: the case's user comments, paged (`page`, `perPage`),
/// oldest first, as `{comments, page, per_page, total}`.
pub(super) fn find_comments(state: &Arc<Recorder<KibanaState>>, req: &Req, id: &str) -> Response {
    let s = state.read();
    let Some(i) = find_case_index(&s, &req.space, id) else {
        return core_error(404, format!("Saved object [cases/{id}] not found"));
    };
    let query: Vec<(String, String)> =
        serde_urlencoded::from_str(req.full_path.split_once('?').map_or("", |(_, q)| q))
            .unwrap_or_default();
    let get = |k: &str| {
        query
            .iter()
            .find(|(n, _)| n == k)
            .and_then(|(_, v)| v.parse::<usize>().ok())
    };
    let per_page = get("perPage").unwrap_or(20).clamp(1, 100);
    let page = get("page").unwrap_or(1).max(1);
    let user: Vec<Value> = s.cases[i].case["comments"]
        .as_array()
        .map(|cs| cs.iter().filter(|c| c["type"] == "user").cloned().collect())
        .unwrap_or_default();
    let total = user.len();
    let items: Vec<Value> = user
        .into_iter()
        .skip((page - 1) * per_page)
        .take(per_page)
        .collect();
    json_response(
        200,
        &json!({ "comments": items, "page": page, "per_page": per_page, "total": total }),
    )
}

pub(super) fn add_comment(
    state: &Arc<Recorder<KibanaState>>,
    req: &Req,
    id: &str,
    body: &Value,
) -> Response {
    let prefix = format!("Failed while adding a comment to case id: {id} error: Error: ");
    if let Err(msg) = validate_comment(body) {
        return core_error(400, format!("{prefix}{msg}"));
    }
    let ts = now();
    let result = state.update(|s| {
        let i = find_case_index(s, &req.space, id)?;
        let comment_version = next_version(s);
        let case_version = next_version(s);
        let mut comment = body.clone();
        if let Some(c) = comment.as_object_mut() {
            c.insert("id".into(), json!(uuid::Uuid::new_v4().to_string()));
            c.insert("version".into(), json!(comment_version));
            c.insert("created_at".into(), json!(ts));
            c.insert("created_by".into(), user_object(&req.username));
            c.insert("pushed_at".into(), Value::Null);
            c.insert("pushed_by".into(), Value::Null);
            c.insert("updated_at".into(), Value::Null);
            c.insert("updated_by".into(), Value::Null);
        }
        let case = &mut s.cases[i].case;
        if let Some(list) = case["comments"].as_array_mut() {
            list.push(comment);
        }
        recount(case);
        case["version"] = json!(case_version);
        case["updated_at"] = json!(ts);
        case["updated_by"] = user_object(&req.username);
        Some(case.clone())
    });
    match result {
        Some(case) => json_response(200, &case),
        None => core_error(404, format!("{prefix}Saved object [cases/{id}] not found")),
    }
}

pub(super) fn patch_cases(state: &Arc<Recorder<KibanaState>>, req: &Req, body: &Value) -> Response {
    let id_versions: Vec<Value> = body
        .get("cases")
        .and_then(Value::as_array)
        .map(|l| {
            l.iter()
                .map(|c| json!({"id": c.get("id"), "version": c.get("version")}))
                .collect()
        })
        .unwrap_or_default();
    let prefix = format!(
        "Failed to update case, ids: {}: Error: ",
        serde_json::to_string(&id_versions).unwrap_or_default()
    );
    let items = match validate_patch(body) {
        Ok(items) => items,
        Err(msg) => return core_error(400, format!("{prefix}{msg}")),
    };
    let ts = now();
    let outcome: Result<Vec<Value>, (u16, String)> = state.update(|s| {
        let missing: Vec<&str> = items
            .iter()
            .filter_map(|m| m["id"].as_str())
            .filter(|id| find_case_index(s, &req.space, id).is_none())
            .collect();
        if !missing.is_empty() {
            return Err((
                404,
                format!(
                    "{prefix}These cases {} do not exist. Please check you have the correct ids.",
                    missing.join(", ")
                ),
            ));
        }
        let conflicted: Vec<&str> = items
            .iter()
            .filter(|m| {
                let i = find_case_index(s, &req.space, m["id"].as_str().unwrap_or_default());
                i.is_some_and(|i| s.cases[i].case["version"] != m["version"])
            })
            .filter_map(|m| m["id"].as_str())
            .collect();
        if !conflicted.is_empty() {
            return Err((
                409,
                format!(
                    "{prefix}These cases {} has been updated. Please refresh before saving additional updates.",
                    conflicted.join(", ")
                ),
            ));
        }
        // Only fields that differ from the stored case count as updates.
        let changes: Vec<(usize, Map<String, Value>)> = items
            .iter()
            .filter_map(|m| {
                let i = find_case_index(s, &req.space, m["id"].as_str().unwrap_or_default())?;
                let current = &s.cases[i].case;
                let diff: Map<String, Value> = m
                    .iter()
                    .filter(|(k, v)| PATCHABLE.contains(&k.as_str()) && current.get(k.as_str()) != Some(v))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                (!diff.is_empty()).then_some((i, diff))
            })
            .collect();
        if changes.is_empty() {
            return Err((
                406,
                format!("{prefix}All update fields are identical to current version."),
            ));
        }
        let mut updated = Vec::new();
        for (i, diff) in changes {
            let version = next_version(s);
            let case = &mut s.cases[i].case;
            let was_closed = case["status"] == "closed";
            for (k, v) in diff {
                let v = match (k.as_str(), v) {
                    ("title", Value::String(t)) => json!(t.trim()),
                    (_, v) => v,
                };
                case[k.as_str()] = v;
            }
            match (was_closed, case["status"] == "closed") {
                (false, true) => {
                    case["closed_at"] = json!(ts);
                    case["closed_by"] = user_object(&req.username);
                    let created = case["created_at"]
                        .as_str()
                        .and_then(|c| chrono::DateTime::parse_from_rfc3339(c).ok());
                    case["duration"] = created
                        .map(|c| json!((Utc::now() - c.with_timezone(&Utc)).num_seconds()))
                        .unwrap_or(Value::Null);
                }
                (true, false) => {
                    case["closed_at"] = Value::Null;
                    case["closed_by"] = Value::Null;
                    case["duration"] = Value::Null;
                }
                _ => {}
            }
            case["version"] = json!(version);
            case["updated_at"] = json!(ts);
            case["updated_by"] = user_object(&req.username);
            updated.push(without_comments(case));
        }
        Ok(updated)
    });
    match outcome {
        Ok(list) => json_response(200, &Value::Array(list)),
        Err((status, message)) => core_error(status, message),
    }
}

/// Query parameters of `GET /api/cases/_find` that this emulator understands.
const FIND_PARAMS: &[&str] = &[
    "tags",
    "owner",
    "status",
    "severity",
    "search",
    "searchFields",
    "defaultSearchOperator",
    "sortField",
    "sortOrder",
    "page",
    "perPage",
    "assignees",
    "reporters",
    "category",
    "from",
    "to",
];

pub(super) fn find_cases(state: &Arc<Recorder<KibanaState>>, req: &Req) -> Response {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(&req.query).unwrap_or_default();
    let excess: Vec<&str> = pairs
        .iter()
        .map(|(k, _)| k.as_str())
        .filter(|k| !FIND_PARAMS.contains(k))
        .collect();
    if !excess.is_empty() {
        return core_error(
            400,
            format!(
                "Failed to find cases: Error: invalid keys \"{}\"",
                excess.join(",")
            ),
        );
    }
    let mut multi: HashMap<&str, Vec<&str>> = HashMap::new();
    for (k, v) in &pairs {
        multi.entry(k.as_str()).or_default().push(v.as_str());
    }
    let all = |k: &str| multi.get(k).cloned().unwrap_or_default();
    let first = |k: &str| multi.get(k).and_then(|v| v.first().copied());
    let per_page: usize = match first("perPage").map(str::parse) {
        None => 20,
        Some(Ok(n)) => n,
        Some(Err(_)) => {
            return core_error(
                400,
                "Failed to find cases: Error: Invalid value supplied to \"perPage\"",
            );
        }
    };
    if per_page > 100 {
        return core_error(
            400,
            "Failed to find cases: Error: The provided perPage value is too high. The maximum allowed perPage value is 100.",
        );
    }
    let page: usize = first("page")
        .and_then(|p| p.parse().ok())
        .unwrap_or(1)
        .max(1);
    let tags = all("tags");
    let owners = all("owner");
    let statuses = all("status");
    let severities = all("severity");
    let search = first("search").map(str::to_lowercase);

    let s = state.read();
    let base: Vec<&Value> = s
        .cases
        .iter()
        .filter(|c| c.space == req.space)
        .map(|c| &c.case)
        .filter(|c| {
            // Tags are ORed, like Kibana's KQL filter `tags: a OR tags: b`.
            tags.is_empty()
                || c["tags"]
                    .as_array()
                    .is_some_and(|t| t.iter().any(|x| tags.iter().any(|w| x == *w)))
        })
        .filter(|c| owners.is_empty() || owners.iter().any(|o| c["owner"] == *o))
        .filter(|c| severities.is_empty() || severities.iter().any(|o| c["severity"] == *o))
        .filter(|c| {
            search.as_ref().is_none_or(|q| {
                ["title", "description"].iter().any(|f| {
                    c[*f]
                        .as_str()
                        .is_some_and(|t| t.to_lowercase().contains(q.as_str()))
                })
            })
        })
        .collect();
    let count = |st: &str| base.iter().filter(|c| c["status"] == st).count();
    let (open, in_progress, closed) = (count("open"), count("in-progress"), count("closed"));
    let mut matched: Vec<&Value> = base
        .into_iter()
        .filter(|c| statuses.is_empty() || statuses.iter().any(|st| c["status"] == *st))
        .collect();
    let sort_field = match first("sortField") {
        Some("updatedAt") => "updated_at",
        Some("closedAt") => "closed_at",
        Some("title") => "title",
        Some("severity") => "severity",
        Some("status") => "status",
        _ => "created_at",
    };
    matched.sort_by(|a, b| {
        let key = |c: &Value| c[sort_field].as_str().unwrap_or("").to_string();
        key(a).cmp(&key(b))
    });
    if first("sortOrder") != Some("asc") {
        matched.reverse();
    }
    let total = matched.len();
    let cases: Vec<Value> = matched
        .into_iter()
        .skip((page - 1) * per_page)
        .take(per_page)
        .map(without_comments)
        .collect();
    json_response(
        200,
        &json!({
            "cases": cases, "page": page, "per_page": per_page, "total": total,
            "count_open_cases": open, "count_in_progress_cases": in_progress,
            "count_closed_cases": closed,
        }),
    )
}

/// `DELETE /api/cases?ids=…`: the ids as repeated parameters or as one JSON array; 204.
pub(super) fn delete_cases(state: &Arc<Recorder<KibanaState>>, req: &Req) -> Response {
    let mut ids: Vec<String> = Vec::new();
    for (k, v) in form_urlencoded_pairs(&req.query) {
        if k == "ids" {
            match serde_json::from_str::<Vec<String>>(&v) {
                Ok(list) => ids.extend(list),
                Err(_) => ids.push(v),
            }
        }
    }
    if ids.is_empty() {
        return core_error(400, "[request query.ids]: expected value of type [array]");
    }
    let space = req.space.clone();
    let missing: Vec<String> = state.update(|s| {
        let missing = ids
            .iter()
            .filter(|id| {
                !s.cases
                    .iter()
                    .any(|c| c.space == space && c.case["id"] == id.as_str())
            })
            .cloned()
            .collect();
        s.cases
            .retain(|c| !(c.space == space && ids.iter().any(|id| c.case["id"] == id.as_str())));
        missing
    });
    if !missing.is_empty() {
        return core_error(
            404,
            format!("Saved object [cases/{}] not found", missing[0]),
        );
    }
    let mut r = Response::new(axum::body::Body::empty());
    *r.status_mut() = axum::http::StatusCode::NO_CONTENT;
    r
}

fn form_urlencoded_pairs(query: &str) -> Vec<(String, String)> {
    serde_urlencoded::from_str(query).unwrap_or_default()
}
