//! Modals in the Slack emulator: `views.open` (with a click's `trigger_id`: three seconds, once),
//! `views.update` (by `view_id`, refused with `hash_conflict` when the `hash` is stale), the
//! checks Slack makes on a modal view, and — acting as Slack — the `view_submission` payload a
//! person's submit produces, with `view.state.values` built from the inputs as Slack does.
//!
//! Trigger ids handed out by [`block_actions_payload`](super::block_actions_payload) carry the
//! time they were issued (`{unix_ms}.{n}.{hex}`), so `views.open` can tell `expired_trigger_id`.

use serde_json::{Map, Value, json};

use super::blocks::validate_blocks_max;
use super::params::{ApiError, ApiResult, required};
use super::state::{APP_ID, BOT_ID, SlackState, SlackView, TEAM_ID};
use crate::server::Recorder;

/// How long a `trigger_id` may be exchanged for a modal (Slack: three seconds).
pub const TRIGGER_LIFE_MS: i64 = 3000;

/// A fresh trigger id issued now.
pub fn new_trigger_id() -> String {
    format!(
        "{}.1234567890123.{}",
        chrono::Utc::now().timestamp_millis(),
        uuid::Uuid::new_v4().simple()
    )
}

fn plain_text(v: Option<&Value>, max: usize, field: &str, errs: &mut Vec<String>) {
    let ptr = format!("/view/{field}");
    match v {
        None => errs.push(format!(
            "[ERROR] missing required field: {field} [json-pointer:/view]"
        )),
        Some(t) if t["type"] != "plain_text" => errs.push(format!(
            "[ERROR] must be a valid enum value [json-pointer:{ptr}/type]"
        )),
        Some(t) => match t["text"].as_str() {
            Some(s) if !s.is_empty() && s.chars().count() <= max => {}
            Some("") | None => errs.push(format!(
                "[ERROR] must be more than 0 characters [json-pointer:{ptr}/text]"
            )),
            Some(_) => errs.push(format!(
                "[ERROR] must be less than {} characters [json-pointer:{ptr}/text]",
                max + 1
            )),
        },
    }
}

/// The checks Slack makes on a modal view (slack.md; Block Kit reference for modals and inputs).
pub(super) fn validate_view(view: &Value) -> Result<(), ApiError> {
    let Some(obj) = view.as_object() else {
        return Err(ApiError::with(
            "invalid_arguments",
            vec!["[ERROR] must provide an object [json-pointer:/view]".into()],
        ));
    };
    let mut errs = Vec::new();
    if obj.get("type").and_then(Value::as_str) != Some("modal") {
        errs.push("[ERROR] must be a valid enum value [json-pointer:/view/type]".into());
    }
    plain_text(obj.get("title"), 24, "title", &mut errs);
    for field in ["submit", "close"] {
        if obj.contains_key(field) {
            plain_text(obj.get(field), 24, field, &mut errs);
        }
    }
    for (field, max) in [("private_metadata", 3000), ("callback_id", 255)] {
        if obj
            .get(field)
            .and_then(Value::as_str)
            .is_some_and(|s| s.chars().count() > max)
        {
            errs.push(format!(
                "[ERROR] must be less than {} characters [json-pointer:/view/{field}]",
                max + 1
            ));
        }
    }
    let blocks = obj.get("blocks").cloned().unwrap_or(json!([]));
    if let Err(e) = validate_blocks_max(&blocks, 100) {
        errs.extend(
            e.messages
                .iter()
                .map(|m| m.replace("pointer:/blocks", "pointer:/view/blocks")),
        );
        if e.messages.is_empty() {
            errs.push(format!("[ERROR] {} [json-pointer:/view/blocks]", e.code));
        }
    }
    let inputs = blocks
        .as_array()
        .into_iter()
        .flatten()
        .filter(|b| b["type"] == "input")
        .count();
    if inputs > 0 && !obj.contains_key("submit") {
        errs.push(
            "[ERROR] submit is required when an input block is within the view [json-pointer:/view]"
                .into(),
        );
    }
    if errs.is_empty() {
        Ok(())
    } else {
        Err(ApiError::with("invalid_arguments", errs))
    }
}

/// The view as Slack renders it back: the app's view plus its id, hash, empty state and ids.
fn render(v: &SlackView) -> Value {
    let mut out = v.view.clone();
    out["id"] = json!(v.id);
    out["hash"] = json!(v.hash);
    out["team_id"] = json!(TEAM_ID);
    out["app_id"] = json!(APP_ID);
    out["bot_id"] = json!(BOT_ID);
    out["root_view_id"] = json!(v.id);
    out["previous_view_id"] = Value::Null;
    out["state"] = json!({ "values": {} });
    for k in ["private_metadata", "callback_id", "external_id"] {
        if out.get(k).is_none() {
            out[k] = json!("");
        }
    }
    out
}

fn new_hash() -> String {
    format!(
        "{}.{}",
        chrono::Utc::now().timestamp(),
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    )
}

pub(super) fn views_open(state: &Recorder<SlackState>, p: &Map<String, Value>) -> ApiResult {
    let trigger = required(p, "trigger_id", "invalid_trigger_id")?;
    let issued: i64 = trigger
        .split('.')
        .next()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| ApiError::new("invalid_trigger_id"))?;
    let view = p
        .get("view")
        .cloned()
        .ok_or_else(|| ApiError::new("invalid_arguments"))?;
    validate_view(&view)?;
    state.update(|s| {
        if s.used_triggers.contains(&trigger) {
            return Err(ApiError::new("exchanged_trigger_id"));
        }
        if chrono::Utc::now().timestamp_millis() - issued > TRIGGER_LIFE_MS {
            return Err(ApiError::new("expired_trigger_id"));
        }
        s.used_triggers.insert(trigger.clone());
        let v = SlackView {
            id: format!(
                "V{}",
                &uuid::Uuid::new_v4().simple().to_string()[..10].to_uppercase()
            ),
            hash: new_hash(),
            trigger_id: trigger,
            view,
            updates: 0,
            closed: false,
            errors: None,
        };
        let rendered = render(&v);
        s.views.push(v);
        Ok(json!({ "ok": true, "view": rendered }))
    })
}

pub(super) fn views_update(state: &Recorder<SlackState>, p: &Map<String, Value>) -> ApiResult {
    let id = required(p, "view_id", "not_found")?;
    let view = p
        .get("view")
        .cloned()
        .ok_or_else(|| ApiError::new("invalid_arguments"))?;
    validate_view(&view)?;
    let hash = p.get("hash").and_then(Value::as_str).map(str::to_string);
    state.update(|s| {
        let v = s
            .views
            .iter_mut()
            .find(|v| v.id == id)
            .ok_or_else(|| ApiError::new("not_found"))?;
        if hash.as_ref().is_some_and(|h| *h != v.hash) {
            return Err(ApiError::new("hash_conflict"));
        }
        v.view = view;
        v.hash = new_hash();
        v.updates += 1;
        v.errors = None;
        Ok(json!({ "ok": true, "view": render(v) }))
    })
}

/// `view.state.values` as Slack builds them from a view's input blocks: every input's current
/// value (its initial one unless `overrides` gives `block_id → state value`).
pub fn state_values(view: &Value, overrides: &Map<String, Value>) -> Value {
    let mut values = Map::new();
    for b in view["blocks"].as_array().into_iter().flatten() {
        if b["type"] != "input" {
            continue;
        }
        let (Some(block_id), Some(action_id)) =
            (b["block_id"].as_str(), b["element"]["action_id"].as_str())
        else {
            continue;
        };
        let el = &b["element"];
        let value = match overrides.get(block_id) {
            Some(v) => v.clone(),
            None => match el["type"].as_str() {
                Some("checkboxes") => json!({
                    "type": "checkboxes",
                    "selected_options": el.get("initial_options").cloned().unwrap_or(json!([]))
                }),
                Some(kind) => {
                    json!({ "type": kind, "value": el.get("initial_value").cloned().unwrap_or(Value::Null) })
                }
                None => continue,
            },
        };
        values.insert(block_id.to_string(), json!({ action_id: value }));
    }
    Value::Object(values)
}

/// A `view_submission` payload (slack.md; Slack's reference) for `user` submitting `view` (as
/// the emulator rendered it) with `values` in its state.
pub fn view_submission_payload(
    user_id: &str,
    user_name: &str,
    view: &Value,
    values: Value,
) -> Value {
    let mut view = view.clone();
    view["state"] = json!({ "values": values });
    json!({
        "type": "view_submission",
        "team": { "id": TEAM_ID, "domain": super::state::TEAM_DOMAIN },
        "user": { "id": user_id, "username": user_name, "name": user_name, "team_id": TEAM_ID },
        "api_app_id": APP_ID,
        "token": "verification-token-deprecated",
        "trigger_id": new_trigger_id(),
        "view": view,
        "response_urls": [],
        "is_enterprise_install": false,
        "enterprise": null
    })
}

/// What Slack does with the app's answer to a submission: an empty body closes the modal,
/// `errors` keeps it open with the errors shown, `update` replaces it, `clear` closes all.
pub(super) fn apply_answer(state: &Recorder<SlackState>, view_id: &str, answer: &Value) {
    state.update(|s| {
        let Some(v) = s.views.iter_mut().find(|v| v.id == view_id) else {
            return;
        };
        match answer["response_action"].as_str() {
            Some("errors") => v.errors = Some(answer["errors"].clone()),
            Some("update") => {
                v.view = answer["view"].clone();
                v.hash = new_hash();
                v.updates += 1;
                v.errors = None;
            }
            _ => v.closed = true,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_modal_with_inputs_needs_a_submit_and_a_short_title() {
        let view = json!({
            "type": "modal",
            "title": { "type": "plain_text", "text": "A title that is far too long for Slack" },
            "blocks": [{ "type": "input", "block_id": "b", "label": { "type": "plain_text", "text": "L" },
                         "element": { "type": "plain_text_input", "action_id": "a" } }]
        });
        let e = validate_view(&view).unwrap_err();
        assert_eq!(e.code, "invalid_arguments");
        assert!(
            e.messages.iter().any(|m| m.contains("/view/title/text")),
            "{:?}",
            e.messages
        );
        assert!(
            e.messages.iter().any(|m| m.contains("submit is required")),
            "{:?}",
            e.messages
        );
    }

    #[test]
    fn state_values_start_from_the_initial_values() {
        let view = json!({ "blocks": [
            { "type": "input", "block_id": "t", "label": { "type": "plain_text", "text": "L" },
              "element": { "type": "plain_text_input", "action_id": "text", "initial_value": "Get-Process" } },
            { "type": "input", "block_id": "c", "optional": true, "label": { "type": "plain_text", "text": "L" },
              "element": { "type": "checkboxes", "action_id": "include",
                           "options": [{ "text": { "type": "plain_text", "text": "x" }, "value": "include" }],
                           "initial_options": [{ "text": { "type": "plain_text", "text": "x" }, "value": "include" }] } }
        ]});
        let v = state_values(&view, &Map::new());
        assert_eq!(v["t"]["text"]["value"], "Get-Process");
        assert_eq!(v["c"]["include"]["selected_options"][0]["value"], "include");
    }
}
