//! Sorting for the Elasticsearch emulator: parsing `sort` (field names, `field:desc`, objects),
//! inferring each field's type from the stored values in place of a mapping, the per-hit sort keys
//! (epoch milliseconds for dates, `_doc`, `_score`, missing values last) and the `search_after`
//! values taken back.

use std::cmp::Ordering;

use serde_json::{Value, json};

use super::error::EsError;
use super::state::StoredDoc;
use super::values::{as_number, as_string, field_values, parse_date};

// ---------------------------------------------------------------------------------------------
// Sorting

#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum FieldKind {
    Date,
    Number,
    Keyword,
}

#[derive(Debug, Clone)]
pub(super) struct SortSpec {
    pub(super) field: String,
    pub(super) desc: bool,
    pub(super) kind: FieldKind,
}

/// One sort key of a hit.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Key {
    Int(i64),
    Float(f64),
    Str(String),
    /// Keyword field without a value: sorts last in either direction (`missing: _last`).
    Missing,
}

impl Key {
    pub(super) fn to_json(&self) -> Value {
        match self {
            Key::Int(i) => json!(i),
            Key::Float(f) => json!(f),
            Key::Str(s) => json!(s),
            Key::Missing => Value::Null,
        }
    }
}

pub(super) fn cmp_key(a: &Key, b: &Key, desc: bool) -> Ordering {
    let ord = match (a, b) {
        (Key::Missing, Key::Missing) => return Ordering::Equal,
        (Key::Missing, _) => return Ordering::Greater,
        (_, Key::Missing) => return Ordering::Less,
        (Key::Int(x), Key::Int(y)) => x.cmp(y),
        (Key::Str(x), Key::Str(y)) => x.cmp(y),
        (x, y) => {
            let f = |k: &Key| match k {
                Key::Int(i) => *i as f64,
                Key::Float(f) => *f,
                _ => f64::NAN,
            };
            f(x).partial_cmp(&f(y)).unwrap_or(Ordering::Equal)
        }
    };
    if desc { ord.reverse() } else { ord }
}

pub(super) fn parse_sort(v: Option<&Value>) -> Result<Vec<(String, bool)>, EsError> {
    let items: Vec<&Value> = match v {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(a)) => a.iter().collect(),
        Some(other) => vec![other],
    };
    let mut out = Vec::new();
    for item in items {
        match item {
            Value::String(s) => {
                // "field:desc" is the query-string form; "_score" defaults to desc.
                let (f, o) = s.split_once(':').unwrap_or((s, ""));
                out.push((
                    f.to_string(),
                    o == "desc" || (o.is_empty() && f == "_score"),
                ));
            }
            Value::Object(m) if m.len() == 1 => {
                let Some((field, spec)) = m.iter().next() else {
                    continue;
                };
                let order = match spec {
                    Value::String(o) => Some(o.as_str()),
                    Value::Object(o) => o.get("order").and_then(Value::as_str),
                    _ => return Err(EsError::parsing(format!("[sort] malformed for [{field}]"))),
                };
                let desc = match order {
                    Some("desc") => true,
                    Some("asc") => false,
                    None => field == "_score",
                    Some(other) => {
                        return Err(EsError::illegal(format!("Unknown SortOrder [{other}]")));
                    }
                };
                out.push((field.clone(), desc));
            }
            _ => {
                return Err(EsError::parsing(
                    "[sort] malformed, expected a field name or object",
                ));
            }
        }
    }
    Ok(out)
}

/// Infers a field's type from the values the candidate documents hold, standing in for the mapping.
pub(super) fn infer_kind(field: &str, docs: &[(&str, &StoredDoc)]) -> FieldKind {
    let mut seen = false;
    let (mut all_dates, mut all_numbers) = (true, true);
    for (_, d) in docs {
        for v in field_values(&d.source, field) {
            seen = true;
            match v {
                Value::String(s) => {
                    all_numbers = false;
                    if parse_date(s).is_none() {
                        all_dates = false;
                    }
                }
                Value::Number(_) => all_dates = false,
                _ => {
                    all_dates = false;
                    all_numbers = false;
                }
            }
        }
    }
    match (seen, all_dates, all_numbers) {
        (true, true, _) => FieldKind::Date,
        (true, _, true) => FieldKind::Number,
        _ => FieldKind::Keyword,
    }
}

pub(super) fn doc_key(spec: &SortSpec, doc: &StoredDoc) -> Key {
    match spec.field.as_str() {
        "_doc" | "_shard_doc" => return Key::Int(doc.seq as i64),
        "_score" => return Key::Float(1.0),
        _ => {}
    }
    let values = field_values(&doc.source, &spec.field);
    let keys: Vec<Key> = values
        .into_iter()
        .filter_map(|v| match spec.kind {
            FieldKind::Date => v.as_str().and_then(parse_date).map(Key::Int),
            FieldKind::Number => match v {
                Value::Number(n) if n.is_i64() => n.as_i64().map(Key::Int),
                other => as_number(other).map(Key::Float),
            },
            FieldKind::Keyword => Some(Key::Str(as_string(v))),
        })
        .collect();
    // Multi-valued fields sort by their min (asc) or max (desc), ES's default `mode`.
    let picked = keys.into_iter().reduce(|a, b| {
        let a_first = cmp_key(&a, &b, false) != Ordering::Greater;
        if a_first != spec.desc { a } else { b }
    });
    match (picked, spec.kind) {
        (Some(k), _) => k,
        // ES puts Long.MAX_VALUE / Long.MIN_VALUE in `sort` for missing numeric/date values.
        (None, FieldKind::Date | FieldKind::Number) => {
            Key::Int(if spec.desc { i64::MIN } else { i64::MAX })
        }
        (None, FieldKind::Keyword) => Key::Missing,
    }
}

pub(super) fn after_key(spec: &SortSpec, v: &Value) -> Result<Key, EsError> {
    let bad = || {
        EsError::illegal(format!(
            "Failed to parse search_after value for field [{}].",
            spec.field
        ))
    };
    Ok(match (spec.field.as_str(), spec.kind) {
        ("_doc" | "_shard_doc", _) => Key::Int(v.as_i64().ok_or_else(bad)?),
        ("_score", _) => Key::Float(as_number(v).ok_or_else(bad)?),
        (_, FieldKind::Date) => match v {
            Value::Number(n) => Key::Int(n.as_i64().ok_or_else(bad)?),
            Value::String(s) => Key::Int(
                s.parse::<i64>()
                    .ok()
                    .or_else(|| parse_date(s))
                    .ok_or_else(bad)?,
            ),
            _ => return Err(bad()),
        },
        (_, FieldKind::Number) => match v {
            Value::Number(n) if n.is_i64() => Key::Int(n.as_i64().ok_or_else(bad)?),
            other => Key::Float(as_number(other).ok_or_else(bad)?),
        },
        (_, FieldKind::Keyword) => match v {
            Value::Null => Key::Missing,
            other => Key::Str(as_string(other)),
        },
    })
}
