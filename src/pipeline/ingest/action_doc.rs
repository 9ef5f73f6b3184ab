//! What a Kibana rule action hands on — through an Index connector's document or a Webhook
//! connector's body — turned into alerts: the `rule.name` + `context.hits` shape (the hits an
//! array, or a string holding a JSON array, which the mustache template `"[{{context.hits}}]"`
//! produces), `context.alerts` / `alerts` arrays of alert documents, or a bare array of them.
//!
//! Each entry becomes an [`Alert`] on its own: a hit's `_source` when it has one (else the hit
//! itself), carrying the action's rule name and time when the hit lacks them. An entry that
//! cannot be an alert is an [`EntryRejection`] with the reason; it never stops the others.

use serde_json::Value;

use crate::domain::Alert;
use crate::domain::alert::{field, str_field};

/// An entry that could not be made an alert.
#[derive(Debug, Clone, PartialEq)]
pub struct EntryRejection {
    /// The entry's own id when it has one, else `{parent}#{position}`.
    pub doc_id: String,
    pub index: String,
    pub reason: String,
    pub doc: Value,
}

/// The entries of one action document, each an alert or the reason it is not.
#[derive(Debug, Default)]
pub struct Entries {
    pub alerts: Vec<Alert>,
    pub rejected: Vec<EntryRejection>,
}

/// The entries of an action document (`doc_id`/`index`: where it came from, for rejections and
/// for entries without their own). `Err`: the document carries no entries this code can read,
/// with the reason — the whole document is then one rejection.
pub fn entries(doc_id: &str, index: &str, doc: &Value) -> Result<Entries, String> {
    // `[{{{context.alerts}}}]` around a renderer that already writes brackets nests the array.
    let items: Vec<Value> = entry_values(doc)?
        .into_iter()
        .flat_map(|v| match v {
            Value::Array(inner) => inner,
            other => vec![other],
        })
        .collect();
    let rule_name = str_field(doc, "rule.name")
        .or_else(|| str_field(doc, "kibana.alert.rule.name"))
        .or_else(|| str_field(doc, "context.rule.name"));
    let rule_id = str_field(doc, "rule.id").or_else(|| str_field(doc, "context.rule.id"));
    let time = str_field(doc, "@timestamp")
        .or_else(|| str_field(doc, "date"))
        .or_else(|| str_field(doc, "context.date"));
    let mut out = Entries::default();
    for (n, item) in items.iter().enumerate() {
        let (id, entry_index, source) = unwrap_hit(item);
        let id = id.unwrap_or_else(|| format!("{doc_id}#{n}"));
        let entry_index = entry_index.unwrap_or_else(|| index.to_string());
        let rule = (rule_name.as_deref(), rule_id.as_deref());
        let source = with_action_fields(source, rule, time.as_deref());
        match Alert::from_document(&id, &entry_index, &source, "@timestamp") {
            Ok(alert) => out.alerts.push(alert),
            Err(e) => out.rejected.push(EntryRejection {
                doc_id: id,
                index: entry_index,
                reason: format!("entry {n} of the action document: {e}"),
                doc: item.clone(),
            }),
        }
    }
    Ok(out)
}

/// The list of entries a document holds, in the first shape that fits.
fn entry_values(doc: &Value) -> Result<Vec<Value>, String> {
    if let Value::Array(items) = doc {
        return Ok(items.clone());
    }
    if !doc.is_object() {
        return Err("expected a JSON object or an array of alerts".into());
    }
    let mut found = false;
    let mut items = Vec::new();
    for path in [
        "context.hits",
        "context.alerts",
        "alerts",
        "hits.hits",
        "hits",
    ] {
        if let Some(v) = field(doc, path) {
            found = true;
            items.extend(list_of(path, v)?);
            // `context.hits` and `context.alerts` may both be present and name the same alerts;
            // the seen set drops the repeat, so taking both loses nothing.
            if !path.starts_with("context.") {
                break;
            }
        }
    }
    if found {
        return Ok(items);
    }
    // One alert document on its own.
    if field(doc, "kibana.alert.uuid").is_some() || field(doc, "host.name").is_some() {
        return Ok(vec![doc.clone()]);
    }
    Err("no `context.hits`, `context.alerts` or `alerts` array, and not an alert document".into())
}

/// An array, or a string holding one (what `"[{{context.hits}}]"` renders to).
fn list_of(path: &str, v: &Value) -> Result<Vec<Value>, String> {
    match v {
        Value::Array(items) => Ok(items.clone()),
        Value::Null => Ok(Vec::new()),
        Value::String(text) => parse_list_text(text).map_err(|e| format!("`{path}`: {e}")),
        Value::Object(_) => Ok(vec![v.clone()]),
        other => Err(format!(
            "`{path}` is {}, not an array or a string holding one",
            kind(other)
        )),
    }
}

/// A JSON array as a string, read forgivingly: empty text or `[]` is no entries, a trailing
/// comma (`[{..},]`, left by a template joining entries) is dropped, a missing pair of brackets
/// is supplied (`{..},{..}`), and HTML-escaped quotes (`&quot;`, from `{{…}}` in an
/// HTML-escaping template) are read as quotes.
pub fn parse_list_text(text: &str) -> Result<Vec<Value>, String> {
    let trimmed = text.trim();
    if trimmed.is_empty() || trimmed == "[]" || trimmed == "[,]" {
        return Ok(Vec::new());
    }
    let first_error = match serde_json::from_str::<Value>(trimmed) {
        Ok(v) => return as_list(v),
        Err(e) => e,
    };
    let mut candidate = trimmed.to_string();
    // Rendered with JSON escaping: the quotes arrive as `\"`; read the text as a JSON string.
    if candidate.contains("\\\"")
        && let Ok(unescaped) = serde_json::from_str::<String>(&format!("\"{candidate}\""))
    {
        candidate = unescaped.trim().to_string();
    }
    if candidate.contains("&quot;") {
        candidate = candidate
            .replace("&quot;", "\"")
            .replace("&#39;", "'")
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&amp;", "&");
    }
    if !candidate.starts_with('[') {
        candidate = format!("[{candidate}]");
    }
    let candidate = drop_trailing_commas(&candidate);
    match serde_json::from_str::<Value>(&candidate) {
        Ok(v) => as_list(v),
        Err(_) => Err(format!("not a JSON array of hits: {first_error}")),
    }
}

fn as_list(v: Value) -> Result<Vec<Value>, String> {
    match v {
        Value::Array(items) => Ok(items.into_iter().filter(|i| !i.is_null()).collect()),
        Value::Object(_) => Ok(vec![v]),
        other => Err(format!(
            "holds {}, not an array of hits or alerts",
            kind(&other)
        )),
    }
}

/// Removes commas that stand right before a `]` or `}` (outside strings).
fn drop_trailing_commas(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let (mut in_string, mut escaped) = (false, false);
    let chars: Vec<char> = text.chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        if in_string {
            out.push(c);
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_string = false,
                _ => {}
            }
            continue;
        }
        if c == '"' {
            in_string = true;
        }
        if c == ',' {
            let next = chars[i + 1..].iter().find(|c| !c.is_whitespace());
            if matches!(next, Some(']') | Some('}') | Some(',')) {
                continue;
            }
            // A leading comma right after `[`.
            let prev = out.chars().rev().find(|c| !c.is_whitespace());
            if matches!(prev, Some('[') | Some(',')) {
                continue;
            }
        }
        out.push(c);
    }
    out
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A search hit's id, index and document (`_source`), or the entry itself when it is not a hit
/// envelope (an alert document from `context.alerts` carries `_id`/`_index` beside its fields).
fn unwrap_hit(item: &Value) -> (Option<String>, Option<String>, Value) {
    let text = |k: &str| {
        item.get(k)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(String::from)
    };
    let (id, index) = (text("_id"), text("_index"));
    match item.get("_source") {
        Some(source) if source.is_object() => (id, index, source.clone()),
        _ => {
            let mut doc = item.clone();
            if let Some(obj) = doc.as_object_mut() {
                for k in ["_id", "_index", "_score", "sort", "_version", "_seq_no"] {
                    obj.remove(k);
                }
            }
            (id, index, doc)
        }
    }
}

/// The hit's document with the action's rule (name, id) and time where it has none of its own.
fn with_action_fields(
    mut source: Value,
    (rule_name, rule_id): (Option<&str>, Option<&str>),
    time: Option<&str>,
) -> Value {
    // What the hit has of its own, read before it is changed (no copy of the document).
    let has = |path: &str| str_field(&source, path).is_some();
    let has_rule = has("kibana.alert.rule.name") || has("rule.name");
    let has_rule_id = has("kibana.alert.rule.uuid") || has("rule.id");
    let has_time = has("@timestamp");
    let Some(obj) = source.as_object_mut() else {
        return source;
    };
    if let Some(name) = rule_name
        && !has_rule
    {
        obj.insert("kibana.alert.rule.name".into(), Value::from(name));
        // The id only with the name: a hit with a rule of its own keeps that rule's id.
        if let Some(id) = rule_id
            && !has_rule_id
        {
            obj.insert("kibana.alert.rule.uuid".into(), Value::from(id));
        }
    }
    if let Some(time) = time
        && !has_time
    {
        obj.insert("@timestamp".into(), Value::from(time));
    }
    source
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn hit(id: &str) -> Value {
        json!({ "_id": id, "_index": "logs-x", "_source": {
            "@timestamp": "2026-12-07T10:00:00Z", "host": { "name": "WS-1" }, "event": { "id": id }
        }})
    }

    #[test]
    fn hits_as_an_array_or_as_a_string_become_alerts_named_after_the_rule() {
        let as_array = json!({ "rule.name": "Odd logon", "context.hits": [hit("a"), hit("b")] });
        let text = format!("[{},{},]", hit("c"), hit("d"));
        let as_text = json!({ "rule": { "name": "Odd logon" }, "context": { "hits": text } });
        for (doc, ids) in [(as_array, ["a", "b"]), (as_text, ["c", "d"])] {
            let e = entries("doc-1", "actions", &doc).unwrap();
            assert!(e.rejected.is_empty(), "{:?}", e.rejected);
            let got: Vec<&str> = e.alerts.iter().map(|a| a.id.0.as_str()).collect();
            assert_eq!(got, ids);
            assert!(e.alerts.iter().all(|a| a.rule_name == "Odd logon"));
            assert_eq!(e.alerts[0].index, "logs-x");
        }
    }

    #[test]
    fn forgiving_list_text() {
        assert_eq!(parse_list_text("").unwrap().len(), 0);
        assert_eq!(parse_list_text("[]").unwrap().len(), 0);
        assert_eq!(parse_list_text(" [ , ] ").unwrap().len(), 0);
        assert_eq!(parse_list_text(r#"[{"a":1},]"#).unwrap().len(), 1);
        assert_eq!(parse_list_text(r#"{"a":1},{"a":2}"#).unwrap().len(), 2);
        assert_eq!(
            parse_list_text(r#"[{&quot;a&quot;:&quot;x,]&quot;}]"#).unwrap(),
            [json!({"a": "x,]"})]
        );
        // A comma inside a string is kept.
        assert_eq!(
            parse_list_text(r#"[{"a":"1,]"},]"#).unwrap(),
            [json!({"a": "1,]"})]
        );
        assert_eq!(
            parse_list_text(r#"[{\"a\":\"x\"},]"#).unwrap(),
            [json!({"a": "x"})]
        );
        let e = parse_list_text("[{not json").unwrap_err();
        assert!(e.starts_with("not a JSON array of hits"), "{e}");
        assert!(parse_list_text("42").is_err());
    }

    #[test]
    fn a_bad_entry_is_rejected_alone_and_a_shapeless_document_is_refused() {
        let doc = json!({ "rule.name": "R", "context.hits": [hit("ok"), { "_id": "nohost", "_source": { "@timestamp": "2026-12-07T10:00:00Z" } }] });
        let e = entries("d", "actions", &doc).unwrap();
        assert_eq!(e.alerts.len(), 1);
        assert_eq!(e.rejected[0].doc_id, "nohost");
        assert!(
            e.rejected[0].reason.contains("host.name"),
            "{:?}",
            e.rejected
        );
        assert!(entries("d", "i", &json!({ "rule.name": "R" })).is_err());
        assert!(entries("d", "i", &json!({ "context.hits": 7 })).is_err());
        // A bare array of alert documents, and `{"alerts": [...]}`.
        let alert = crate::samples::alert_document("x1", "2026-12-07T10:00:00Z");
        assert_eq!(
            entries("d", "i", &json!([alert.clone()])).unwrap().alerts[0]
                .id
                .0,
            "x1"
        );
        assert_eq!(
            entries("d", "i", &json!({ "alerts": [alert] }))
                .unwrap()
                .alerts[0]
                .id
                .0,
            "x1"
        );
    }
}
