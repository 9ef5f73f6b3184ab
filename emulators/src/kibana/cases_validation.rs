//! Strict decoding of the Kibana emulator's Cases request bodies, in the style of io-ts +
//! `formatErrors` + `exactCheck`: type and limit errors first (`Invalid value "…" supplied to
//! "…"`, `The length of the title is too long…`), then `invalid keys "…"` for keys the codec
//! does not know.
//!
//! It owns the codecs' rules (owners, severities, statuses, connector types, field limits, the
//! patchable fields); it knows nothing of the emulator's state.

use serde_json::{Map, Value};

// ---------------------------------------------------------------------------------------------
// Cases: validation in the style of io-ts + formatErrors + exactCheck

const OWNERS: &[&str] = &["cases", "observability", "securitySolution"];
const SEVERITIES: &[&str] = &["low", "medium", "high", "critical"];
const STATUSES: &[&str] = &["open", "in-progress", "closed"];
const CONNECTOR_TYPES: &[&str] = &[
    ".none",
    ".jira",
    ".resilient",
    ".servicenow",
    ".servicenow-sir",
    ".swimlane",
    ".cases-webhook",
];

/// Renders a value the way io-ts `formatErrors` does.
fn render(v: Option<&Value>) -> String {
    match v {
        None => "undefined".to_string(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

#[derive(Default)]
struct Check {
    errors: Vec<String>,
    excess: Vec<String>,
}

impl Check {
    fn invalid(&mut self, v: Option<&Value>, path: &str) {
        self.errors.push(format!(
            "Invalid value \"{}\" supplied to \"{path}\"",
            render(v)
        ));
    }

    fn keys(&mut self, obj: &Map<String, Value>, allowed: &[&str]) {
        self.excess.extend(
            obj.keys()
                .filter(|k| !allowed.contains(&k.as_str()))
                .cloned(),
        );
    }

    fn string<'a>(
        &mut self,
        obj: &'a Map<String, Value>,
        key: &str,
        required: bool,
    ) -> Option<&'a str> {
        match obj.get(key) {
            Some(Value::String(s)) => Some(s),
            None if !required => None,
            v => {
                self.invalid(v, key);
                None
            }
        }
    }

    /// `limitedStringSchema`: trimmed non-empty, at most `max` characters.
    fn limited(&mut self, s: &str, field: &str, max: usize) {
        if s.trim().is_empty() {
            self.errors
                .push(format!("The {field} field cannot be an empty string."));
        } else if s.chars().count() > max {
            self.errors.push(format!(
                "The length of the {field} is too long. The maximum length is {max}."
            ));
        }
    }

    fn one_of(&mut self, obj: &Map<String, Value>, key: &str, allowed: &[&str], required: bool) {
        match obj.get(key) {
            None if !required => {}
            Some(Value::String(s)) if allowed.contains(&s.as_str()) => {}
            v => self.invalid(v, key),
        }
    }

    /// Finishes: type errors first, then excess keys (exactCheck only runs on a decoded value).
    fn finish(self) -> Result<(), String> {
        if !self.errors.is_empty() {
            return Err(self.errors.join(","));
        }
        if !self.excess.is_empty() {
            return Err(format!("invalid keys \"{}\"", self.excess.join(",")));
        }
        Ok(())
    }
}

/// Validates the fields shared by create and patch; `required` marks the create-only requirement.
fn check_case_fields(c: &mut Check, obj: &Map<String, Value>, required: bool) {
    if let Some(t) = c.string(obj, "title", required) {
        c.limited(t, "title", 160);
    }
    if let Some(d) = c.string(obj, "description", required) {
        c.limited(d, "description", 30_000);
    }
    match obj.get("tags") {
        None if !required => {}
        Some(Value::Array(tags)) => {
            if tags.len() > 200 {
                c.errors.push(
                    "The length of the field tags is too long. Array must be of length <= 200."
                        .to_string(),
                );
            }
            for t in tags {
                match t.as_str() {
                    Some(s) => c.limited(s, "tag", 256),
                    None => c.invalid(Some(t), "tags"),
                }
            }
        }
        v => c.invalid(v, "tags"),
    }
    match obj.get("connector") {
        None if !required => {}
        Some(Value::Object(conn)) => {
            c.keys(conn, &["id", "name", "type", "fields"]);
            c.string(conn, "id", true);
            c.string(conn, "name", true);
            c.one_of(conn, "type", CONNECTOR_TYPES, true);
            match (conn.get("type").and_then(Value::as_str), conn.get("fields")) {
                (Some(".none"), Some(Value::Null)) => {}
                (Some(".none"), v) => c.invalid(v, "connector,fields"),
                (_, Some(Value::Object(_)) | Some(Value::Null)) => {}
                (_, v) => c.invalid(v, "connector,fields"),
            }
        }
        v => c.invalid(v, "connector"),
    }
    match obj.get("settings") {
        None if !required => {}
        Some(Value::Object(set)) => {
            c.keys(set, &["syncAlerts", "extractObservables"]);
            if !set.get("syncAlerts").is_some_and(Value::is_boolean) {
                c.invalid(set.get("syncAlerts"), "settings,syncAlerts");
            }
        }
        v => c.invalid(v, "settings"),
    }
    c.one_of(obj, "severity", SEVERITIES, false);
    match obj.get("assignees") {
        None => {}
        Some(Value::Array(list)) => {
            if list.len() > 10 {
                c.errors.push(
                    "The length of the field assignees is too long. Array must be of length <= 10."
                        .to_string(),
                );
            }
            for a in list {
                match a.as_object() {
                    Some(m) if m.get("uid").is_some_and(Value::is_string) => c.keys(m, &["uid"]),
                    _ => c.invalid(Some(a), "assignees"),
                }
            }
        }
        v => c.invalid(v, "assignees"),
    }
    match obj.get("category") {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) => c.limited(s, "category", 50),
        v => c.invalid(v, "category"),
    }
    match obj.get("customFields") {
        None => {}
        Some(Value::Array(list)) => {
            if list.len() > 10 {
                c.errors.push(
                    "The length of the field customFields is too long. Array must be of length <= 10."
                        .to_string(),
                );
            }
            for f in list {
                match f.as_object() {
                    Some(m) => {
                        c.keys(m, &["key", "type", "value"]);
                        c.string(m, "key", true);
                        c.one_of(m, "type", &["text", "toggle", "number"], true);
                        if !m.contains_key("value") {
                            c.invalid(None, "customFields,value");
                        }
                    }
                    None => c.invalid(Some(f), "customFields"),
                }
            }
        }
        v => c.invalid(v, "customFields"),
    }
}

pub(super) fn validate_create_case(body: &Value) -> Result<(), String> {
    let Some(obj) = body.as_object() else {
        return Err(format!(
            "Invalid value \"{}\" supplied to \"\"",
            render(Some(body))
        ));
    };
    let mut c = Check::default();
    c.keys(
        obj,
        &[
            "title",
            "description",
            "tags",
            "connector",
            "settings",
            "owner",
            "severity",
            "assignees",
            "category",
            "customFields",
        ],
    );
    check_case_fields(&mut c, obj, true);
    c.one_of(obj, "owner", OWNERS, true);
    c.finish()
}

pub(super) fn validate_comment(body: &Value) -> Result<(), String> {
    let Some(obj) = body.as_object() else {
        return Err(format!(
            "Invalid value \"{}\" supplied to \"\"",
            render(Some(body))
        ));
    };
    let mut c = Check::default();
    match obj.get("type").and_then(Value::as_str) {
        Some("user") => {
            c.keys(obj, &["type", "comment", "owner"]);
            if let Some(text) = c.string(obj, "comment", true) {
                c.limited(text, "comment", 30_000);
            }
        }
        Some("alert") => {
            c.keys(obj, &["type", "alertId", "index", "rule", "owner"]);
            let ids = match obj.get("alertId") {
                Some(Value::String(_)) => Some(1),
                Some(Value::Array(a)) if a.iter().all(Value::is_string) && !a.is_empty() => {
                    Some(a.len())
                }
                v => {
                    c.invalid(v, "alertId");
                    None
                }
            };
            let idx = match obj.get("index") {
                Some(Value::String(_)) => Some(1),
                Some(Value::Array(a)) if a.iter().all(Value::is_string) && !a.is_empty() => {
                    Some(a.len())
                }
                v => {
                    c.invalid(v, "index");
                    None
                }
            };
            if ids.is_some_and(|n| n > 1000) || idx.is_some_and(|n| n > 1000) {
                c.errors.push(
                    "The length of the field alertId is too long. Array must be of length <= 1000."
                        .to_string(),
                );
            }
            match obj.get("rule") {
                Some(Value::Object(r)) => {
                    c.keys(r, &["id", "name"]);
                    for k in ["id", "name"] {
                        if !matches!(r.get(k), Some(Value::String(_) | Value::Null)) {
                            c.invalid(r.get(k), &format!("rule,{k}"));
                        }
                    }
                }
                v => c.invalid(v, "rule"),
            }
        }
        _ => c.invalid(obj.get("type"), "type"),
    }
    c.one_of(obj, "owner", OWNERS, true);
    c.finish()
}

pub(super) const PATCHABLE: &[&str] = &[
    "title",
    "description",
    "tags",
    "severity",
    "status",
    "assignees",
    "category",
    "settings",
    "connector",
    "customFields",
];

pub(super) fn validate_patch(body: &Value) -> Result<Vec<Map<String, Value>>, String> {
    let Some(obj) = body.as_object() else {
        return Err(format!(
            "Invalid value \"{}\" supplied to \"\"",
            render(Some(body))
        ));
    };
    let mut c = Check::default();
    c.keys(obj, &["cases"]);
    let mut out = Vec::new();
    match obj.get("cases") {
        Some(Value::Array(list)) if !list.is_empty() && list.len() <= 100 => {
            for item in list {
                let Some(m) = item.as_object() else {
                    c.invalid(Some(item), "cases");
                    continue;
                };
                let mut allowed = vec!["id", "version"];
                allowed.extend_from_slice(PATCHABLE);
                c.keys(m, &allowed);
                c.string(m, "id", true);
                c.string(m, "version", true);
                check_case_fields(&mut c, m, false);
                c.one_of(m, "status", STATUSES, false);
                out.push(m.clone());
            }
        }
        v => c.invalid(v, "cases"),
    }
    c.finish().map(|()| out)
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use serde_json::json;

    pub(in crate::kibana) fn valid_case() -> Value {
        json!({
            "title": "[High] Run key on WS-1",
            "description": "desc",
            "tags": ["triage-bot", "triage-bot:incident:1"],
            "connector": {"id": "none", "name": "none", "type": ".none", "fields": null},
            "settings": {"syncAlerts": true},
            "owner": "securitySolution",
            "severity": "high"
        })
    }

    #[test]
    fn create_case_accepts_the_documented_body() {
        assert_eq!(validate_create_case(&valid_case()), Ok(()));
    }

    #[test]
    fn create_case_rejects_excess_keys_like_decode_with_excess_or_throw() {
        let mut body = valid_case();
        body["status"] = json!("open");
        body["settings"]["bogus"] = json!(1);
        assert_eq!(
            validate_create_case(&body),
            Err("invalid keys \"status,bogus\"".to_string())
        );
    }

    #[test]
    fn create_case_reports_type_and_limit_errors_before_excess_keys() {
        let mut body = valid_case();
        body["title"] = json!("x".repeat(161));
        body.as_object_mut().unwrap().remove("owner");
        body["extra"] = json!(true);
        let err = validate_create_case(&body).unwrap_err();
        assert_eq!(
            err,
            "The length of the title is too long. The maximum length is 160.,Invalid value \"undefined\" supplied to \"owner\""
        );
        let mut body = valid_case();
        body["description"] = json!("   ");
        assert_eq!(
            validate_create_case(&body).unwrap_err(),
            "The description field cannot be an empty string."
        );
    }

    #[test]
    fn comments_are_strict_per_type() {
        let ok = json!({"type": "alert", "alertId": "a", "index": ".internal.alerts-security.alerts-default-000001",
                        "rule": {"id": null, "name": "R"}, "owner": "securitySolution"});
        assert_eq!(validate_comment(&ok), Ok(()));
        let bad =
            json!({"type": "user", "comment": "hi", "owner": "securitySolution", "alertId": "a"});
        assert_eq!(
            validate_comment(&bad),
            Err("invalid keys \"alertId\"".to_string())
        );
        let empty = json!({"type": "user", "comment": " ", "owner": "securitySolution"});
        assert_eq!(
            validate_comment(&empty),
            Err("The comment field cannot be an empty string.".to_string())
        );
    }

    #[test]
    fn patch_rejects_owner_and_bad_status() {
        let body =
            json!({"cases": [{"id": "x", "version": "v", "owner": "cases", "status": "done"}]});
        assert_eq!(
            validate_patch(&body).unwrap_err(),
            "Invalid value \"done\" supplied to \"status\""
        );
        let body = json!({"cases": [{"id": "x", "version": "v", "owner": "cases"}]});
        assert_eq!(validate_patch(&body).unwrap_err(), "invalid keys \"owner\"");
    }
}
