//! Block Kit validation in the Slack emulator (slack.md §5.3): block types, the text and element
//! limits (50 blocks, section text 3000, header 150, button text 75, …), duplicate `block_id`s
//! and `action_id`s, reported as `invalid_blocks` with JSON pointers; plus the `text`/`blocks`
//! and `metadata` checks of the posting methods.

use serde_json::{Map, Value, json};

use super::params::{ApiError, param};

// ---------------------------------------------------------------------------------------------
// Block Kit validation

const BLOCK_TYPES: &[&str] = &[
    "section",
    "header",
    "actions",
    "context",
    "divider",
    "image",
    "input",
    "rich_text",
    "markdown",
    "file",
    "video",
    "table",
    "context_actions",
];

fn too_long(max: usize, pointer: &str) -> String {
    format!(
        "[ERROR] must be less than {} characters [json-pointer:{pointer}]",
        max + 1
    )
}

/// Checks a text object: `plain_text`/`mrkdwn` (or `plain_text` only), 1..=max characters.
fn check_text(v: &Value, max: usize, plain_only: bool, pointer: &str, errs: &mut Vec<String>) {
    let Some(obj) = v.as_object() else {
        errs.push(format!(
            "[ERROR] must provide an object [json-pointer:{pointer}]"
        ));
        return;
    };
    match obj.get("type").and_then(Value::as_str) {
        Some("plain_text") => {}
        Some("mrkdwn") if !plain_only => {}
        _ => errs.push(format!(
            "[ERROR] must be a valid enum value [json-pointer:{pointer}/type]"
        )),
    }
    match obj.get("text").and_then(Value::as_str) {
        None => errs.push(format!(
            "[ERROR] missing required field: text [json-pointer:{pointer}]"
        )),
        Some("") => errs.push(format!(
            "[ERROR] must be more than 0 characters [json-pointer:{pointer}/text]"
        )),
        Some(t) if t.chars().count() > max => errs.push(too_long(max, &format!("{pointer}/text"))),
        Some(_) => {}
    }
}

fn check_len(
    obj: &Map<String, Value>,
    key: &str,
    max: usize,
    pointer: &str,
    errs: &mut Vec<String>,
) {
    if let Some(s) = obj.get(key).and_then(Value::as_str)
        && s.chars().count() > max
    {
        errs.push(too_long(max, &format!("{pointer}/{key}")));
    }
}

fn check_element(el: &Value, pointer: &str, errs: &mut Vec<String>) {
    let Some(obj) = el.as_object() else {
        errs.push(format!(
            "[ERROR] must provide an object [json-pointer:{pointer}]"
        ));
        return;
    };
    check_len(obj, "action_id", 255, pointer, errs);
    if obj.get("type").and_then(Value::as_str) == Some("button") {
        match obj.get("text") {
            Some(t) => check_text(t, 75, true, &format!("{pointer}/text"), errs),
            None => errs.push(format!(
                "[ERROR] missing required field: text [json-pointer:{pointer}]"
            )),
        }
        check_len(obj, "value", 2000, pointer, errs);
        check_len(obj, "url", 3000, pointer, errs);
        if let Some(style) = obj.get("style")
            && !matches!(style.as_str(), Some("primary" | "danger"))
        {
            errs.push(format!(
                "[ERROR] must be a valid enum value [json-pointer:{pointer}/style]"
            ));
        }
    }
}

/// An `input` block: a plain-text label (2000), and one element — a `plain_text_input` (initial
/// value within `max_length` ≤ 3000) or `checkboxes` (1–10 options, initial options among them).
fn check_input(b: &Map<String, Value>, ptr: &str, errs: &mut Vec<String>) {
    match b.get("label") {
        Some(l) => check_text(l, 2000, true, &format!("{ptr}/label"), errs),
        None => errs.push(format!(
            "[ERROR] missing required field: label [json-pointer:{ptr}]"
        )),
    }
    let Some(el) = b.get("element").and_then(Value::as_object) else {
        errs.push(format!(
            "[ERROR] missing required field: element [json-pointer:{ptr}]"
        ));
        return;
    };
    let eptr = format!("{ptr}/element");
    check_len(el, "action_id", 255, &eptr, errs);
    match el.get("type").and_then(Value::as_str) {
        Some("plain_text_input") => {
            let max = el.get("max_length").and_then(Value::as_u64).unwrap_or(3000);
            if max > 3000 {
                errs.push(format!(
                    "[ERROR] must be less than 3001 [json-pointer:{eptr}/max_length]"
                ));
            }
            check_len(el, "initial_value", max as usize, &eptr, errs);
        }
        Some("checkboxes") => {
            let options = el.get("options").and_then(Value::as_array);
            match options {
                Some(o) if !o.is_empty() && o.len() <= 10 => {
                    for (j, opt) in o.iter().enumerate() {
                        let optr = format!("{eptr}/options/{j}");
                        match opt.get("text") {
                            Some(t) => check_text(t, 75, false, &format!("{optr}/text"), errs),
                            None => errs.push(format!(
                                "[ERROR] missing required field: text [json-pointer:{optr}]"
                            )),
                        }
                        if let Some(o) = opt.as_object() {
                            check_len(o, "value", 150, &optr, errs);
                        }
                    }
                    for (j, init) in el
                        .get("initial_options")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                        .enumerate()
                    {
                        if !o.contains(init) {
                            errs.push(format!("[ERROR] initial option must match an option [json-pointer:{eptr}/initial_options/{j}]"));
                        }
                    }
                }
                _ => errs.push(format!(
                    "[ERROR] must provide 1 to 10 items [json-pointer:{eptr}/options]"
                )),
            }
        }
        Some(_) => {}
        None => errs.push(format!(
            "[ERROR] missing required field: type [json-pointer:{eptr}]"
        )),
    }
}

/// Validates a `blocks` array against the Block Kit limits slack.md §5.3 lists.
pub(super) fn validate_blocks(blocks: &Value) -> Result<(), ApiError> {
    validate_blocks_max(blocks, 50)
}

/// The same, with `max` blocks (a message: 50; a modal: 100).
pub(super) fn validate_blocks_max(blocks: &Value, max: usize) -> Result<(), ApiError> {
    let Some(list) = blocks.as_array() else {
        return Err(ApiError::new("invalid_blocks_format"));
    };
    let mut errs = Vec::new();
    if list.len() > max {
        errs.push(format!(
            "[ERROR] no more than {max} items allowed [json-pointer:/blocks]"
        ));
    }
    let mut block_ids = Vec::new();
    for (i, block) in list.iter().enumerate() {
        let ptr = format!("/blocks/{i}");
        let Some(b) = block.as_object() else {
            return Err(ApiError::new("invalid_blocks_format"));
        };
        let kind = b.get("type").and_then(Value::as_str).unwrap_or("");
        if !BLOCK_TYPES.contains(&kind) {
            errs.push(format!(
                "[ERROR] unsupported type: {kind} [json-pointer:{ptr}/type]"
            ));
            continue;
        }
        if let Some(id) = b.get("block_id").and_then(Value::as_str) {
            if id.chars().count() > 255 {
                errs.push(too_long(255, &format!("{ptr}/block_id")));
            }
            if block_ids.contains(&id) {
                errs.push(format!(
                    "[ERROR] duplicate block_id [json-pointer:{ptr}/block_id]"
                ));
            }
            block_ids.push(id);
        }
        match kind {
            "section" => {
                if let Some(t) = b.get("text") {
                    check_text(t, 3000, false, &format!("{ptr}/text"), &mut errs);
                }
                match b.get("fields").and_then(Value::as_array) {
                    Some(fields) => {
                        if fields.len() > 10 {
                            errs.push(format!(
                                "[ERROR] no more than 10 items allowed [json-pointer:{ptr}/fields]"
                            ));
                        }
                        for (j, f) in fields.iter().enumerate() {
                            check_text(f, 2000, false, &format!("{ptr}/fields/{j}"), &mut errs);
                        }
                    }
                    None if b.get("text").is_none() => errs.push(format!(
                        "[ERROR] must provide at least one of [text, fields] [json-pointer:{ptr}]"
                    )),
                    None => {}
                }
                if let Some(acc) = b.get("accessory") {
                    check_element(acc, &format!("{ptr}/accessory"), &mut errs);
                }
            }
            "input" => check_input(b, &ptr, &mut errs),
            "header" => match b.get("text") {
                Some(t) => check_text(t, 150, true, &format!("{ptr}/text"), &mut errs),
                None => errs.push(format!(
                    "[ERROR] missing required field: text [json-pointer:{ptr}]"
                )),
            },
            "actions" | "context" => {
                let max = if kind == "actions" { 25 } else { 10 };
                let elements = b.get("elements").and_then(Value::as_array);
                match elements {
                    None => errs.push(format!(
                        "[ERROR] missing required field: elements [json-pointer:{ptr}]"
                    )),
                    Some(els) if els.is_empty() => errs.push(format!(
                        "[ERROR] must provide at least 1 items [json-pointer:{ptr}/elements]"
                    )),
                    Some(els) => {
                        if els.len() > max {
                            errs.push(format!("[ERROR] no more than {max} items allowed [json-pointer:{ptr}/elements]"));
                        }
                        let mut action_ids = Vec::new();
                        for (j, el) in els.iter().enumerate() {
                            let eptr = format!("{ptr}/elements/{j}");
                            if kind == "actions" {
                                check_element(el, &eptr, &mut errs);
                                if let Some(a) = el.get("action_id").and_then(Value::as_str) {
                                    if action_ids.contains(&a) {
                                        errs.push(format!("[ERROR] duplicate action_id [json-pointer:{eptr}/action_id]"));
                                    }
                                    action_ids.push(a);
                                }
                            } else if el.get("type").and_then(Value::as_str) != Some("image") {
                                check_text(el, 3000, false, &eptr, &mut errs);
                            }
                        }
                    }
                }
            }
            _ => {}
        }
    }
    if errs.is_empty() {
        Ok(())
    } else {
        Err(ApiError::with("invalid_blocks", errs))
    }
}

/// Validates `text`/`blocks` of a posting call; returns (text, blocks).
pub(super) fn message_content(
    p: &Map<String, Value>,
    blocks_required_for_text: bool,
) -> Result<(String, Option<Value>), ApiError> {
    let text = param(p, "text")
        .or_else(|| param(p, "markdown_text"))
        .unwrap_or_default();
    let blocks = p.get("blocks").filter(|b| !b.is_null()).cloned();
    if let Some(b) = &blocks {
        validate_blocks(b)?;
    }
    let has_blocks = blocks
        .as_ref()
        .and_then(Value::as_array)
        .is_some_and(|a| !a.is_empty());
    let has_attachments = p
        .get("attachments")
        .and_then(Value::as_array)
        .is_some_and(|a| !a.is_empty());
    if blocks_required_for_text && text.is_empty() && !has_blocks && !has_attachments {
        return Err(ApiError::new("no_text"));
    }
    Ok((text, blocks))
}

pub(super) fn check_metadata(p: &Map<String, Value>) -> Result<Option<Value>, ApiError> {
    match p.get("metadata") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(m)) if m.get("event_type").is_some_and(Value::is_string) => Ok(Some(
            json!({"event_type": m["event_type"], "event_payload": m.get("event_payload").cloned().unwrap_or(json!({}))}),
        )),
        Some(_) => Err(ApiError::with(
            "invalid_metadata_format",
            vec!["[ERROR] missing required field: event_type [json-pointer:/metadata]".into()],
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_limits_produce_invalid_blocks_with_json_pointers() {
        let long = "x".repeat(3001);
        let blocks = json!([
            {"type": "header", "text": {"type": "plain_text", "text": "h".repeat(151)}},
            {"type": "section", "text": {"type": "mrkdwn", "text": long}},
            {"type": "actions", "block_id": "approval:1", "elements": [
                {"type": "button", "action_id": "approve", "text": {"type": "plain_text", "text": "y".repeat(76)}, "style": "primary"},
                {"type": "button", "action_id": "approve", "text": {"type": "plain_text", "text": "No"}}
            ]}
        ]);
        let e = validate_blocks(&blocks).unwrap_err();
        assert_eq!(e.code, "invalid_blocks");
        assert_eq!(
            e.messages,
            vec![
                "[ERROR] must be less than 151 characters [json-pointer:/blocks/0/text/text]",
                "[ERROR] must be less than 3001 characters [json-pointer:/blocks/1/text/text]",
                "[ERROR] must be less than 76 characters [json-pointer:/blocks/2/elements/0/text/text]",
                "[ERROR] duplicate action_id [json-pointer:/blocks/2/elements/1/action_id]",
            ]
        );
        let many: Vec<Value> = (0..51).map(|_| json!({"type": "divider"})).collect();
        assert_eq!(
            validate_blocks(&Value::Array(many)).unwrap_err().code,
            "invalid_blocks"
        );
        assert_eq!(
            validate_blocks(&json!({"type": "divider"}))
                .unwrap_err()
                .code,
            "invalid_blocks_format"
        );
        assert!(validate_blocks(&json!([{"type": "divider"}])).is_ok());
    }
}
