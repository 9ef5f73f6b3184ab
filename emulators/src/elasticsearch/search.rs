//! `_search` in the Elasticsearch emulator: resolving the target (indices, aliases, `*` patterns,
//! exclusions, hidden indices) and running the search against the state — the query, sorting,
//! `size`/`from`, `search_after`, `track_total_hits`, `_source: false` and `fields` — as a pure
//! function the HTTP layer calls and unit tests call without HTTP.

use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::error::EsError;
use super::query::{Query, compile, matches};
use super::sort::{Key, SortSpec, after_key, cmp_key, doc_key, infer_kind, parse_sort};
use super::state::{EsState, StoredDoc};
use super::values::flatten_fields;

/// Default `track_total_hits` threshold in Elasticsearch.
const DEFAULT_TRACK_TOTAL_HITS: usize = 10_000;

// ---------------------------------------------------------------------------------------------
// Index resolution

/// Glob match with `*` only (the ES index-pattern syntax).
fn glob(pattern: &str, name: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == name;
    }
    let mut rest = name;
    for (i, part) in parts.iter().enumerate() {
        if i == 0 {
            match rest.strip_prefix(part) {
                Some(r) => rest = r,
                None => return false,
            }
        } else if i == parts.len() - 1 {
            return rest.ends_with(part);
        } else {
            match rest.find(part) {
                Some(pos) => rest = &rest[pos + part.len()..],
                None => return false,
            }
        }
    }
    true
}

/// Resolves a comma-separated target into concrete index names (sorted, deduplicated).
fn resolve_target(
    s: &EsState,
    target: &str,
    ignore_unavailable: bool,
) -> Result<Vec<String>, EsError> {
    let mut out: Vec<String> = Vec::new();
    let all_names = || s.indices.keys().chain(s.aliases.keys());
    let expand = |name: &str| -> Vec<String> {
        if let Some(targets) = s.aliases.get(name) {
            targets.clone()
        } else if s.indices.contains_key(name) {
            vec![name.to_string()]
        } else {
            Vec::new()
        }
    };
    let parts: Vec<&str> = if target.is_empty() {
        vec!["_all"]
    } else {
        target.split(',').collect()
    };
    for raw in parts {
        let part = raw.trim();
        if part.is_empty() {
            continue;
        }
        if let Some(excluded) = part.strip_prefix('-') {
            let removed: Vec<String> = all_names()
                .filter(|n| glob(excluded, n))
                .flat_map(|n| expand(n))
                .collect();
            out.retain(|n| !removed.contains(n));
            continue;
        }
        if part == "_all" || part.contains('*') {
            let pattern = if part == "_all" { "*" } else { part };
            // Hidden/system indices (dot-prefixed) only match patterns that start with a dot.
            let allow_dot = pattern.starts_with('.');
            for name in all_names() {
                if (allow_dot || !name.starts_with('.')) && glob(pattern, name) {
                    out.extend(expand(name));
                }
            }
        } else {
            let names = expand(part);
            if names.is_empty() && !s.indices.contains_key(part) {
                if ignore_unavailable {
                    continue;
                }
                return Err(EsError::index_not_found(part));
            }
            out.extend(names);
        }
    }
    out.sort();
    out.dedup();
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// Search

fn usize_param(
    body: &Value,
    params: &HashMap<String, String>,
    name: &str,
    default: usize,
) -> Result<usize, EsError> {
    if let Some(v) = body.get(name).filter(|v| !v.is_null()) {
        return v
            .as_u64()
            .map(|n| n as usize)
            .ok_or_else(|| EsError::parsing(format!("[{name}] must be a non-negative integer")));
    }
    match params.get(name) {
        Some(s) => s.parse().map_err(|_| {
            EsError::illegal(format!(
                "Failed to parse int parameter [{name}] with value [{s}]"
            ))
        }),
        None => Ok(default),
    }
}

/// Runs a search against the state (pure, so unit tests call it without HTTP).
pub(super) fn search(
    s: &EsState,
    target: &str,
    body: &Value,
    params: &HashMap<String, String>,
    now: DateTime<Utc>,
) -> Result<Value, EsError> {
    if !(body.is_null() || body.is_object()) {
        return Err(EsError::parsing("request body must be an object"));
    }
    const KNOWN: &[&str] = &[
        "query",
        "sort",
        "size",
        "from",
        "search_after",
        "track_total_hits",
        "_source",
        "fields",
        "timeout",
        "version",
        "seq_no_primary_term",
        "track_scores",
        "stored_fields",
        "pit",
        "runtime_mappings",
        "aggs",
        "aggregations",
    ];
    if let Some(obj) = body.as_object() {
        for key in obj.keys() {
            if !KNOWN.contains(&key.as_str()) {
                return Err(EsError::parsing(format!(
                    "Unknown key for a START_OBJECT in [{key}]."
                )));
            }
        }
    }
    let ignore_unavailable = params
        .get("ignore_unavailable")
        .is_some_and(|v| v == "true");
    let indices = resolve_target(s, target, ignore_unavailable)?;

    let query = match body.get("query") {
        None | Some(Value::Null) => Query::MatchAll,
        Some(q) => compile(q)?,
    };
    let size = usize_param(body, params, "size", 10)?;
    let from = usize_param(body, params, "from", 0)?;

    let mut sort_fields = parse_sort(body.get("sort"))?;
    if sort_fields.is_empty()
        && let Some(qs) = params.get("sort")
    {
        sort_fields = parse_sort(Some(&Value::Array(
            qs.split(',')
                .map(|s| Value::String(s.to_string()))
                .collect(),
        )))?;
    }

    let candidates: Vec<(&str, &StoredDoc)> = indices
        .iter()
        .filter_map(|i| s.indices.get_key_value(i))
        .flat_map(|(name, docs)| docs.iter().map(move |d| (name.as_str(), d)))
        .collect();
    let specs: Vec<SortSpec> = sort_fields
        .into_iter()
        .map(|(field, desc)| {
            let kind = infer_kind(&field, &candidates);
            SortSpec { field, desc, kind }
        })
        .collect();

    let after: Option<Vec<Key>> = match body.get("search_after") {
        None | Some(Value::Null) => None,
        Some(Value::Array(values)) => {
            if specs.is_empty() {
                return Err(EsError::illegal("Sort must contain at least one field."));
            }
            if values.len() != specs.len() {
                return Err(EsError::illegal(format!(
                    "search_after has {} value(s) but sort has {}.",
                    values.len(),
                    specs.len()
                )));
            }
            if from > 0 {
                return Err(EsError::illegal(
                    "[from] parameter must be set to 0 when [search_after] is used",
                ));
            }
            Some(
                specs
                    .iter()
                    .zip(values)
                    .map(|(sp, v)| after_key(sp, v))
                    .collect::<Result<_, _>>()?,
            )
        }
        Some(_) => return Err(EsError::parsing("[search_after] must be an array")),
    };

    let mut hits: Vec<(&str, &StoredDoc, Vec<Key>)> = candidates
        .into_iter()
        .filter(|(_, d)| matches(&query, &d.id, &d.source, now))
        .map(|(i, d)| {
            let keys = specs.iter().map(|sp| doc_key(sp, d)).collect();
            (i, d, keys)
        })
        .collect();
    let total = hits.len();

    let cmp_keys = |a: &[Key], b: &[Key]| -> Ordering {
        specs
            .iter()
            .zip(a.iter().zip(b))
            .map(|(sp, (x, y))| cmp_key(x, y, sp.desc))
            .find(|o| *o != Ordering::Equal)
            .unwrap_or(Ordering::Equal)
    };
    hits.sort_by(|a, b| {
        cmp_keys(&a.2, &b.2)
            .then(a.0.cmp(b.0))
            .then(a.1.seq.cmp(&b.1.seq))
    });
    if let Some(after) = &after {
        hits.retain(|h| cmp_keys(&h.2, after) == Ordering::Greater);
    }

    let include_source = !matches!(body.get("_source"), Some(Value::Bool(false)));
    let field_patterns: Vec<String> = body
        .get("fields")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|f| match f {
                    Value::String(s) => Some(s.clone()),
                    Value::Object(o) => o.get("field").and_then(Value::as_str).map(str::to_string),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();

    let sorted = !specs.is_empty();
    let page: Vec<Value> = hits
        .into_iter()
        .skip(from)
        .take(size)
        .map(|(index, d, keys)| {
            let mut hit = serde_json::Map::new();
            hit.insert("_index".into(), json!(index));
            hit.insert("_id".into(), json!(d.id));
            hit.insert(
                "_score".into(),
                if sorted { Value::Null } else { json!(1.0) },
            );
            if include_source {
                let source = match &d.raw_source {
                    Some(_) => json!(super::state::raw_placeholder(d.seq)),
                    None => d.source.clone(),
                };
                hit.insert("_source".into(), source);
            }
            if !field_patterns.is_empty() {
                let mut flat = BTreeMap::new();
                flatten_fields("", &d.source, &mut flat);
                let selected: serde_json::Map<String, Value> = flat
                    .into_iter()
                    .filter(|(k, _)| field_patterns.iter().any(|p| glob(p, k)))
                    .map(|(k, v)| (k, Value::Array(v)))
                    .collect();
                if !selected.is_empty() {
                    hit.insert("fields".into(), Value::Object(selected));
                }
            }
            if sorted {
                hit.insert(
                    "sort".into(),
                    Value::Array(keys.iter().map(Key::to_json).collect()),
                );
            }
            Value::Object(hit)
        })
        .collect();

    let mut hits_obj = serde_json::Map::new();
    let track = body.get("track_total_hits");
    match track {
        Some(Value::Bool(false)) => {}
        Some(Value::Bool(true)) => {
            hits_obj.insert("total".into(), json!({"value": total, "relation": "eq"}));
        }
        other => {
            let cap = other
                .and_then(Value::as_u64)
                .map(|n| n as usize)
                .unwrap_or(DEFAULT_TRACK_TOTAL_HITS);
            let (value, relation) = if total > cap {
                (cap, "gte")
            } else {
                (total, "eq")
            };
            hits_obj.insert(
                "total".into(),
                json!({"value": value, "relation": relation}),
            );
        }
    }
    let max_score = if sorted || page.is_empty() {
        Value::Null
    } else {
        json!(1.0)
    };
    hits_obj.insert("max_score".into(), max_score);
    hits_obj.insert("hits".into(), Value::Array(page));

    Ok(json!({
        "took": 1,
        "timed_out": false,
        "_shards": {"total": indices.len().max(1), "successful": indices.len().max(1), "skipped": 0, "failed": 0},
        "hits": Value::Object(hits_obj),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state_with(docs: &[(&str, &str, Value)]) -> EsState {
        let mut s = EsState::default();
        for (index, id, src) in docs {
            s.next_seq += 1;
            let seq = s.next_seq;
            s.indices
                .entry(index.to_string())
                .or_default()
                .push(StoredDoc {
                    id: id.to_string(),
                    source: src.clone(),
                    seq,
                    raw_source: None,
                });
        }
        s
    }

    fn ids(resp: &Value) -> Vec<String> {
        resp["hits"]["hits"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|h| h["_id"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    }

    fn run(s: &EsState, target: &str, body: Value) -> Result<Value, EsError> {
        search(s, target, &body, &HashMap::new(), Utc::now())
    }

    #[test]
    fn bool_filter_with_term_on_dotted_key_and_nested_array() {
        let s = state_with(&[
            (
                "i",
                "1",
                json!({"kibana.alert.severity": "critical", "host": {"ip": ["10.0.0.1", "10.0.0.2"]}}),
            ),
            (
                "i",
                "2",
                json!({"kibana.alert.severity": "high", "host": {"ip": "10.0.0.2"}}),
            ),
        ]);
        let r = run(
            &s,
            "i",
            json!({"query": {"bool": {"filter": [
                {"term": {"kibana.alert.severity": {"value": "critical"}}},
                {"term": {"host.ip": "10.0.0.2"}}
            ]}}}),
        )
        .unwrap();
        assert_eq!(ids(&r), ["1"]);
        let r = run(&s, "i", json!({"query": {"bool": {"must_not": [{"terms": {"kibana.alert.severity": ["critical"]}}]}}})).unwrap();
        assert_eq!(ids(&r), ["2"]);
        assert_eq!(r["hits"]["total"], json!({"value": 1, "relation": "eq"}));
    }

    #[test]
    fn date_sort_returns_epoch_millis_and_search_after_pages_with_tie_breaker() {
        let s = state_with(&[
            (
                "i",
                "a",
                json!({"@timestamp": "2025-03-04T10:00:00.000Z", "kibana.alert.uuid": "a"}),
            ),
            (
                "i",
                "c",
                json!({"@timestamp": "2025-03-04T10:02:00.000Z", "kibana.alert.uuid": "c"}),
            ),
            (
                "i",
                "b",
                json!({"@timestamp": "2025-03-04T10:02:00.000Z", "kibana.alert.uuid": "b"}),
            ),
            (
                "i",
                "d",
                json!({"@timestamp": "2025-03-04T11:00:00+01:00", "kibana.alert.uuid": "d"}),
            ),
        ]);
        let sort = json!([{"@timestamp": {"order": "asc"}}, {"kibana.alert.uuid": "asc"}]);
        let r = run(&s, "i", json!({"sort": sort, "size": 2})).unwrap();
        // d is 10:00Z expressed with an offset: compared as an instant, it ties with a.
        assert_eq!(ids(&r), ["a", "d"]);
        let last = r["hits"]["hits"][1]["sort"].clone();
        assert_eq!(last, json!([1741082400000_i64, "d"]));
        assert!(r["hits"]["hits"][0]["_score"].is_null());
        let r2 = run(
            &s,
            "i",
            json!({"sort": sort, "size": 2, "search_after": last}),
        )
        .unwrap();
        assert_eq!(ids(&r2), ["b", "c"]);
        let r3 = run(
            &s,
            "i",
            json!({"sort": sort, "size": 2, "search_after": r2["hits"]["hits"][1]["sort"]}),
        )
        .unwrap();
        assert!(ids(&r3).is_empty());
        // A date string is accepted in search_after too.
        let r4 = run(
            &s,
            "i",
            json!({"sort": sort, "search_after": ["2025-03-04T10:02:00Z", "b"]}),
        )
        .unwrap();
        assert_eq!(ids(&r4), ["c"]);
    }

    #[test]
    fn range_compares_instants_numbers_and_date_math() {
        let s = state_with(&[
            (
                "i",
                "old",
                json!({"@timestamp": "2025-03-04T09:00:00Z", "risk": 10}),
            ),
            (
                "i",
                "new",
                json!({"@timestamp": "2025-03-04T10:30:00.5+00:00", "risk": 90}),
            ),
        ]);
        let r = run(
            &s,
            "i",
            json!({"query": {"range": {"@timestamp": {"gt": "2025-03-04T10:00:00.000Z"}}}}),
        )
        .unwrap();
        assert_eq!(ids(&r), ["new"]);
        let r = run(&s, "i", json!({"query": {"range": {"risk": {"gte": 50}}}})).unwrap();
        assert_eq!(ids(&r), ["new"]);
        let now = DateTime::parse_from_rfc3339("2025-03-04T10:31:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let r = search(
            &s,
            "i",
            &json!({"query": {"range": {"@timestamp": {"gte": "now-5m"}}}}),
            &HashMap::new(),
            now,
        )
        .unwrap();
        assert_eq!(ids(&r), ["new"]);
    }

    #[test]
    fn missing_concrete_index_is_404_but_patterns_are_empty() {
        let s = state_with(&[(".internal.alerts-x-000001", "1", json!({}))]);
        let e = run(&s, "nope", json!({})).unwrap_err();
        assert_eq!(e.status, 404);
        assert_eq!(e.body()["error"]["type"], "index_not_found_exception");
        assert_eq!(
            e.body()["error"]["root_cause"][0]["type"],
            "index_not_found_exception"
        );
        let r = run(&s, "nope-*", json!({})).unwrap();
        assert_eq!(r["hits"]["total"]["value"], 0);
        // Dot-prefixed indices only match dot-prefixed patterns.
        assert!(ids(&run(&s, "*", json!({})).unwrap()).is_empty());
        assert_eq!(
            ids(&run(&s, ".internal.alerts-*", json!({})).unwrap()),
            ["1"]
        );
    }

    #[test]
    fn malformed_queries_are_parsing_exceptions() {
        let s = state_with(&[("i", "1", json!({}))]);
        let e = run(&s, "i", json!({"query": {"frobnicate": {}}})).unwrap_err();
        assert_eq!((e.status, e.kind.as_str()), (400, "parsing_exception"));
        let e = run(&s, "i", json!({"sort": ["x"], "search_after": [1, 2]})).unwrap_err();
        assert_eq!(e.kind, "illegal_argument_exception");
    }

    #[test]
    fn fields_option_returns_flat_arrays() {
        let s = state_with(&[(
            "i",
            "1",
            json!({"kibana.alert.uuid": "u", "host": {"name": "h"}}),
        )]);
        let r = run(&s, "i", json!({"fields": ["*"], "_source": false})).unwrap();
        let hit = &r["hits"]["hits"][0];
        assert!(hit.get("_source").is_none());
        assert_eq!(hit["fields"]["host.name"], json!(["h"]));
        assert_eq!(hit["fields"]["kibana.alert.uuid"], json!(["u"]));
    }
}
