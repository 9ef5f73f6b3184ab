//! Property tests of the action policies' `match` language: the parser never panics and always
//! names a column inside the input on error; any expression printed back parses to the same
//! tree; and the evaluator obeys boolean logic and finds a field however the document nests it.

use proptest::prelude::*;
use serde_json::{Value, json};
use triage_bot::pipeline::policy::kql::{Expr, Pattern, RangeOp, parse, wildcard};

fn field() -> impl Strategy<Value = String> {
    prop::collection::vec("[a-z_][a-z0-9_]{0,6}", 1..4)
        .prop_map(|parts| parts.join("."))
        .prop_filter("not an operator word", |f| {
            !["and", "or", "not"].contains(&f.as_str())
        })
}

fn pattern() -> impl Strategy<Value = Pattern> {
    prop_oneof![
        "[ -~]{0,10}".prop_map(Pattern::Exact),
        "[A-Za-z0-9*_.\\-:()\" ]{1,10}".prop_map(Pattern::Wild),
    ]
}

fn leaf() -> impl Strategy<Value = Expr> {
    prop_oneof![
        Just(Expr::All),
        (field(), prop::collection::vec(pattern(), 1..3))
            .prop_map(|(field, values)| Expr::Match { field, values }),
        (
            field(),
            prop::sample::select(vec![RangeOp::Lt, RangeOp::Le, RangeOp::Gt, RangeOp::Ge]),
            "[ -~]{0,8}"
        )
            .prop_map(|(field, op, value)| Expr::Range { field, op, value }),
    ]
}

fn expr() -> impl Strategy<Value = Expr> {
    leaf().prop_recursive(5, 40, 2, |inner| {
        prop_oneof![
            (inner.clone(), inner.clone()).prop_map(|(a, b)| Expr::And(Box::new(a), Box::new(b))),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| Expr::Or(Box::new(a), Box::new(b))),
            inner.prop_map(|e| Expr::Not(Box::new(e))),
        ]
    })
}

/// A small alert-like document over the same field alphabet.
fn doc() -> impl Strategy<Value = Value> {
    prop::collection::btree_map(
        field(),
        prop_oneof![
            "[a-z0-9*]{0,6}".prop_map(Value::from),
            (0i64..200).prop_map(Value::from),
            prop::collection::vec("[a-z0-9]{0,4}", 0..3).prop_map(Value::from),
        ],
        0..6,
    )
    .prop_map(|m| Value::Object(m.into_iter().collect()))
}

/// The same document with every dotted key expanded into nested objects.
fn nest(doc: &Value) -> Value {
    let mut out = json!({});
    for (k, v) in doc.as_object().unwrap() {
        let mut at = &mut out;
        let parts: Vec<&str> = k.split('.').collect();
        for p in &parts[..parts.len() - 1] {
            if !at[*p].is_object() {
                at[*p] = json!({});
            }
            at = &mut at[*p];
        }
        at[parts[parts.len() - 1]] = v.clone();
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn never_panics_and_errors_point_inside_the_input(input in "[ -~]{0,60}") {
        if let Err(e) = parse(&input) {
            prop_assert!(e.column >= 1 && e.column <= input.chars().count() + 1, "{e} for {input:?}");
        }
    }

    #[test]
    fn printed_expressions_parse_back_to_the_same_tree(e in expr()) {
        let text = e.to_string();
        let back = parse(&text).map_err(|err| TestCaseError::fail(format!("{text:?}: {err}")))?;
        prop_assert_eq!(back, e, "{}", text);
    }

    #[test]
    fn evaluation_obeys_boolean_logic(a in expr(), b in expr(), d in doc()) {
        let (x, y) = (a.matches(&d), b.matches(&d));
        prop_assert_eq!(Expr::Not(Box::new(a.clone())).matches(&d), !x);
        prop_assert_eq!(Expr::And(Box::new(a.clone()), Box::new(b.clone())).matches(&d), x && y);
        prop_assert_eq!(Expr::Or(Box::new(a), Box::new(b)).matches(&d), x || y);
    }

    #[test]
    fn dotted_keys_and_nested_objects_match_alike(e in expr(), d in doc()) {
        // Only documents whose keys do not shadow one another nest unambiguously.
        let keys: Vec<&String> = d.as_object().unwrap().keys().collect();
        let clash = keys.iter().any(|k| keys.iter().any(|o| o != k && o.starts_with(&format!("{k}."))));
        prop_assume!(!clash);
        prop_assert_eq!(e.matches(&d), e.matches(&nest(&d)));
    }

    #[test]
    fn a_star_pattern_matches_what_it_was_cut_from(s in "[a-z]{0,12}", i in 0usize..12, j in 0usize..12) {
        let (i, j) = (i.min(s.len()), j.min(s.len()));
        let (i, j) = (i.min(j), i.max(j));
        let pattern = format!("{}*{}", &s[..i], &s[j..]);
        prop_assert!(wildcard(&pattern, &s));
        prop_assert!(wildcard(&s, &s));
    }
}
