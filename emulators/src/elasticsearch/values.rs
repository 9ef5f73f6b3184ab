//! Field access and value comparison for the Elasticsearch emulator: finding a field's values in
//! `_source` whatever mix of dotted keys and nested objects holds them, flattening `_source` for
//! `fields`, parsing dates and date math, and the comparisons `term` and `range` use.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use serde_json::Value;

// ---------------------------------------------------------------------------------------------
// Field access

/// All values of `field` in `source`, accepting dotted keys, nested objects and any mix of the
/// two (`{"kibana.alert": {"severity": ..}}` too). Arrays are flattened: a field holding an array
/// yields each element, and objects inside arrays are searched element by element.
pub fn field_values<'a>(source: &'a Value, field: &str) -> Vec<&'a Value> {
    let segments: Vec<&str> = field.split('.').collect();
    let mut out = Vec::new();
    collect(source, &segments, &mut out);
    // Dynamic mapping gives every string field a `.keyword` multi-field: `x.keyword` is the
    // string values of `x` when the document has no field of that name itself.
    if out.is_empty()
        && let Some(base) = field.strip_suffix(".keyword")
    {
        let segments: Vec<&str> = base.split('.').collect();
        collect(source, &segments, &mut out);
        out.retain(|v| v.is_string());
    }
    out
}

fn collect<'a>(value: &'a Value, segments: &[&str], out: &mut Vec<&'a Value>) {
    match value {
        Value::Array(items) => {
            for item in items {
                collect(item, segments, out);
            }
        }
        Value::Object(map) => {
            // Try every split of the remaining path into "<key with dots>.<rest>".
            for i in 1..=segments.len() {
                let key = segments[..i].join(".");
                if let Some(child) = map.get(&key) {
                    if i == segments.len() {
                        push_leaf(child, out);
                    } else {
                        collect(child, &segments[i..], out);
                    }
                }
            }
        }
        _ => {}
    }
}

fn push_leaf<'a>(value: &'a Value, out: &mut Vec<&'a Value>) {
    match value {
        Value::Array(items) => items.iter().for_each(|v| push_leaf(v, out)),
        Value::Null => {}
        v => out.push(v),
    }
}

/// Flattens `_source` into dotted leaf paths with array values, the shape of ES's `fields`.
pub(super) fn flatten_fields(prefix: &str, value: &Value, out: &mut BTreeMap<String, Vec<Value>>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten_fields(&key, v, out);
            }
        }
        Value::Array(items) => items.iter().for_each(|v| flatten_fields(prefix, v, out)),
        Value::Null => {}
        v => out.entry(prefix.to_string()).or_default().push(v.clone()),
    }
}

// ---------------------------------------------------------------------------------------------
// Value comparison

/// Parses an ES date: RFC 3339 / `strict_date_optional_time` forms, or a bare date.
pub(super) fn parse_date(s: &str) -> Option<i64> {
    if let Ok(d) = DateTime::parse_from_rfc3339(s) {
        return Some(d.timestamp_millis());
    }
    // Without an offset ES assumes UTC.
    for fmt in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%dT%H:%M",
    ] {
        if let Ok(d) = chrono::NaiveDateTime::parse_from_str(s, fmt) {
            return Some(d.and_utc().timestamp_millis());
        }
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|d| d.and_utc().timestamp_millis())
}

/// Evaluates ES date math (`now`, `now-15m`, `now+1h/d`, `2025-03-04T10:00:00Z||-1h`).
fn parse_date_math(s: &str, now: DateTime<Utc>) -> Option<i64> {
    let (anchor, mut rest) = if let Some(r) = s.strip_prefix("now") {
        (now.timestamp_millis(), r)
    } else if let Some((base, r)) = s.split_once("||") {
        (parse_date(base)?, r)
    } else {
        return parse_date(s);
    };
    let mut t = anchor;
    while !rest.is_empty() {
        let op = rest.chars().next()?;
        rest = &rest[1..];
        let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
        rest = &rest[digits.len()..];
        let unit = rest.chars().next()?;
        rest = &rest[unit.len_utf8()..];
        let unit_ms: i64 = match unit {
            's' => 1_000,
            'm' => 60_000,
            'h' | 'H' => 3_600_000,
            'd' => 86_400_000,
            'w' => 7 * 86_400_000,
            'M' => 30 * 86_400_000,
            'y' => 365 * 86_400_000,
            _ => return None,
        };
        match op {
            '+' | '-' => {
                let n: i64 = digits.parse().ok()?;
                t += if op == '+' { n * unit_ms } else { -n * unit_ms };
            }
            // Rounding down to the unit; months/years approximated, which is enough for tests.
            '/' => t -= t.rem_euclid(unit_ms),
            _ => return None,
        }
    }
    Some(t)
}

pub(super) fn as_number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

pub(super) fn as_string(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// `term` equality: exact JSON equality, with the coercions ES applies when querying a keyword
/// with a number or a number/boolean field with a string.
pub(super) fn term_eq(doc: &Value, q: &Value) -> bool {
    if doc == q {
        return true;
    }
    match (doc, q) {
        (Value::Number(a), Value::Number(b)) => a.as_f64() == b.as_f64(),
        (Value::String(s), Value::Number(n)) | (Value::Number(n), Value::String(s)) => {
            s.trim().parse::<f64>().ok() == n.as_f64()
        }
        (Value::String(s), Value::Bool(b)) | (Value::Bool(b), Value::String(s)) => {
            s == if *b { "true" } else { "false" }
        }
        _ => false,
    }
}

/// Compares a document value with a range bound: as instants when both are dates (or the doc is
/// a date and the bound epoch millis), else as numbers, else as strings.
pub(super) fn range_cmp(doc: &Value, bound: &Value, now: DateTime<Utc>) -> Option<Ordering> {
    if let Value::String(ds) = doc
        && let Some(dm) = parse_date(ds)
    {
        let bm = match bound {
            Value::String(bs) => parse_date_math(bs, now),
            Value::Number(n) => n.as_i64(),
            _ => None,
        };
        if let Some(bm) = bm {
            return Some(dm.cmp(&bm));
        }
    }
    if let (Some(a), Some(b)) = (as_number(doc), as_number(bound)) {
        return a.partial_cmp(&b);
    }
    Some(as_string(doc).cmp(&as_string(bound)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn field_lookup_accepts_dotted_nested_and_mixed_keys() {
        let src = json!({
            "kibana.alert.severity": "critical",
            "host": {"name": "WS-1", "ip": ["10.0.0.1", "10.0.0.2"]},
            "kibana.alert": {"rule": {"name": "R"}},
            "process": {"parent.name": "svchost.exe"},
            "kibana.alert.ancestors": [{"id": "x"}, {"id": "y"}]
        });
        assert_eq!(
            field_values(&src, "kibana.alert.severity"),
            vec![&json!("critical")]
        );
        assert_eq!(field_values(&src, "host.name"), vec![&json!("WS-1")]);
        assert_eq!(field_values(&src, "host.ip").len(), 2);
        assert_eq!(
            field_values(&src, "kibana.alert.rule.name"),
            vec![&json!("R")]
        );
        assert_eq!(
            field_values(&src, "process.parent.name"),
            vec![&json!("svchost.exe")]
        );
        assert_eq!(field_values(&src, "kibana.alert.ancestors.id").len(), 2);
        assert!(field_values(&src, "host.nope").is_empty());
    }
}
