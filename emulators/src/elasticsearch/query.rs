//! The query DSL subset of the Elasticsearch emulator: compiling a request's `query` (`bool` with
//! `filter`/`must`/`must_not`/`should`, `term`, `terms`, `range`, `exists`, `ids`, `match_all`,
//! `match_none`) into a [`Query`], with ES's `parsing_exception`s for malformed clauses, and
//! matching documents against it.

use std::cmp::Ordering;

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::error::EsError;
use super::values::{as_number, as_string, field_values, range_cmp, term_eq};

// ---------------------------------------------------------------------------------------------
// Query evaluation

/// A compiled query clause.
#[derive(Debug)]
pub(super) enum Query {
    MatchAll,
    MatchNone,
    Term(String, Value),
    Terms(String, Vec<Value>),
    Range {
        field: String,
        gt: Option<Value>,
        gte: Option<Value>,
        lt: Option<Value>,
        lte: Option<Value>,
    },
    Exists(String),
    Ids(Vec<String>),
    Bool {
        filter: Vec<Query>,
        must: Vec<Query>,
        must_not: Vec<Query>,
        should: Vec<Query>,
        min_should: usize,
    },
}

fn single_entry<'a>(kind: &str, v: &'a Value) -> Result<(&'a String, &'a Value), EsError> {
    let obj = v.as_object().ok_or_else(|| {
        EsError::parsing(format!(
            "[{kind}] query malformed, no start_object after query name"
        ))
    })?;
    let mut entries = obj
        .iter()
        .filter(|(k, _)| k.as_str() != "boost" && k.as_str() != "_name");
    let first = entries
        .next()
        .ok_or_else(|| EsError::parsing(format!("[{kind}] query doesn't support empty field")))?;
    if entries.next().is_some() {
        return Err(EsError::parsing(format!(
            "[{kind}] query doesn't support multiple fields, found [{}] and more",
            first.0
        )));
    }
    Ok(first)
}

fn clauses(v: Option<&Value>) -> Result<Vec<Query>, EsError> {
    match v {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items.iter().map(compile).collect(),
        Some(one) => Ok(vec![compile(one)?]),
    }
}

pub(super) fn compile(v: &Value) -> Result<Query, EsError> {
    let obj = v
        .as_object()
        .ok_or_else(|| EsError::parsing("query malformed, must start with start_object"))?;
    if obj.len() != 1 {
        return Err(EsError::parsing(
            "[_na] query malformed, no end_object after query name or multiple query names",
        ));
    }
    let Some((kind, body)) = obj.iter().next() else {
        return Err(EsError::parsing("query malformed, empty clause found"));
    };
    match kind.as_str() {
        "match_all" => Ok(Query::MatchAll),
        "match_none" => Ok(Query::MatchNone),
        "term" => {
            let (field, spec) = single_entry("term", body)?;
            let value = match spec {
                Value::Object(m) => m.get("value").cloned().ok_or_else(|| {
                    EsError::parsing("[term] query does not support [value] missing")
                })?,
                other => other.clone(),
            };
            Ok(Query::Term(field.clone(), value))
        }
        "terms" => {
            let (field, spec) = single_entry("terms", body)?;
            let values = spec.as_array().cloned().ok_or_else(|| {
                EsError::parsing(format!("[terms] query does not support [{field}]"))
            })?;
            Ok(Query::Terms(field.clone(), values))
        }
        "range" => {
            let (field, spec) = single_entry("range", body)?;
            let spec = spec.as_object().ok_or_else(|| {
                EsError::parsing(format!("[range] query does not support [{field}]"))
            })?;
            for key in spec.keys() {
                if ![
                    "gt",
                    "gte",
                    "lt",
                    "lte",
                    "format",
                    "time_zone",
                    "boost",
                    "relation",
                    "from",
                    "to",
                    "include_lower",
                    "include_upper",
                ]
                .contains(&key.as_str())
                {
                    return Err(EsError::parsing(format!(
                        "[range] query does not support [{key}]"
                    )));
                }
            }
            let get = |k: &str| spec.get(k).filter(|v| !v.is_null()).cloned();
            Ok(Query::Range {
                field: field.clone(),
                gt: get("gt"),
                gte: get("gte").or_else(|| get("from")),
                lt: get("lt"),
                lte: get("lte").or_else(|| get("to")),
            })
        }
        "exists" => {
            let field = body
                .get("field")
                .and_then(Value::as_str)
                .ok_or_else(|| EsError::parsing("[exists] must be provided with a [field]"))?;
            Ok(Query::Exists(field.to_string()))
        }
        "ids" => {
            let values = body
                .get("values")
                .and_then(Value::as_array)
                .ok_or_else(|| EsError::parsing("[ids] query malformed, no values"))?;
            Ok(Query::Ids(values.iter().map(as_string).collect()))
        }
        "bool" => {
            let b = body
                .as_object()
                .ok_or_else(|| EsError::parsing("[bool] query malformed, no start_object"))?;
            for key in b.keys() {
                if ![
                    "filter",
                    "must",
                    "must_not",
                    "should",
                    "minimum_should_match",
                    "boost",
                    "_name",
                ]
                .contains(&key.as_str())
                {
                    return Err(EsError::parsing(format!(
                        "[bool] query does not support [{key}]"
                    )));
                }
            }
            let filter = clauses(b.get("filter"))?;
            let must = clauses(b.get("must"))?;
            let must_not = clauses(b.get("must_not"))?;
            let should = clauses(b.get("should"))?;
            // ES: with no must/filter, at least one should clause must match.
            let default_min =
                usize::from(filter.is_empty() && must.is_empty() && !should.is_empty());
            let min_should = match b.get("minimum_should_match") {
                Some(v) => as_number(v)
                    .map(|n| n.max(0.0) as usize)
                    .unwrap_or(default_min),
                None => default_min,
            };
            Ok(Query::Bool {
                filter,
                must,
                must_not,
                should,
                min_should,
            })
        }
        other => Err(EsError::parsing(format!("unknown query [{other}]"))),
    }
}

pub(super) fn matches(q: &Query, id: &str, src: &Value, now: DateTime<Utc>) -> bool {
    match q {
        Query::MatchAll => true,
        Query::MatchNone => false,
        Query::Term(f, v) => field_values(src, f).into_iter().any(|d| term_eq(d, v)),
        Query::Terms(f, vs) => field_values(src, f)
            .into_iter()
            .any(|d| vs.iter().any(|v| term_eq(d, v))),
        Query::Range {
            field,
            gt,
            gte,
            lt,
            lte,
        } => field_values(src, field).into_iter().any(|d| {
            let ok = |b: &Option<Value>, pred: fn(Ordering) -> bool| {
                b.as_ref()
                    .is_none_or(|b| range_cmp(d, b, now).is_some_and(pred))
            };
            ok(gt, |o| o == Ordering::Greater)
                && ok(gte, |o| o != Ordering::Less)
                && ok(lt, |o| o == Ordering::Less)
                && ok(lte, |o| o != Ordering::Greater)
        }),
        Query::Exists(f) => !field_values(src, f).is_empty(),
        Query::Ids(ids) => ids.iter().any(|i| i == id),
        Query::Bool {
            filter,
            must,
            must_not,
            should,
            min_should,
        } => {
            filter.iter().all(|c| matches(c, id, src, now))
                && must.iter().all(|c| matches(c, id, src, now))
                && !must_not.iter().any(|c| matches(c, id, src, now))
                && should.iter().filter(|c| matches(c, id, src, now)).count() >= *min_should
        }
    }
}
