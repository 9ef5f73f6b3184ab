//! The answer corpus (`tests/data/answers/`): answers written in the styles GPT-4o, Claude,
//! Gemini and Llama use, each `NN-model-what.md` with its expected reading in `NN-model-what.json`
//! (`summary`, `investigation`, `remediation`, `warnings`, and the `classes` of formatting it
//! exercises, numbered as in issue 11). Every answer must be read exactly; every mismatch is
//! listed at once, and the count of exact readings is printed
//! (`cargo test --test checks triage_parser_corpus -- --nocapture`).

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;
use triage_bot::pipeline::triage::parser::parse_answer;

#[derive(Debug, Deserialize)]
struct Expected {
    model: String,
    classes: Vec<u8>,
    summary: String,
    investigation: Vec<String>,
    remediation: Vec<String>,
    warnings: Vec<String>,
}

/// The formatting classes of issue 11 the corpus must cover.
const CLASSES: [(u8, &str); 8] = [
    (1, "summary under a heading / after a preamble"),
    (2, "label + code block items"),
    (3, "nested sub-bullets"),
    (4, "trailing explanations"),
    (5, "heading variety"),
    (6, "tables"),
    (7, "multi-line commands"),
    (8, "trailing sections"),
];

fn corpus() -> Vec<(String, String, Expected)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/answers");
    let mut out = Vec::new();
    for entry in std::fs::read_dir(&dir).expect("tests/data/answers exists") {
        let path = entry.expect("dir entry").path();
        if path.extension().is_none_or(|e| e != "md") {
            continue;
        }
        let name = path
            .file_stem()
            .expect("file name")
            .to_string_lossy()
            .to_string();
        let answer = std::fs::read_to_string(&path).expect("readable answer");
        let expected_path = path.with_extension("json");
        let expected: Expected = serde_json::from_str(
            &std::fs::read_to_string(&expected_path)
                .unwrap_or_else(|_| panic!("{name}.md has no {name}.json")),
        )
        .unwrap_or_else(|e| panic!("{name}.json: {e}"));
        out.push((name, answer, expected));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

#[test]
fn every_answer_in_the_corpus_is_read_exactly() {
    let corpus = corpus();
    let mut per_class: BTreeMap<u8, usize> = BTreeMap::new();
    let mut per_model: BTreeMap<String, usize> = BTreeMap::new();
    let mut failures = Vec::new();
    let mut exact = 0;
    for (name, answer, want) in &corpus {
        for c in &want.classes {
            *per_class.entry(*c).or_default() += 1;
        }
        *per_model.entry(want.model.clone()).or_default() += 1;
        let got = parse_answer(answer);
        let mut diffs = Vec::new();
        if got.summary != want.summary {
            diffs.push(format!(
                "  summary\n    want: {:?}\n    got:  {:?}",
                want.summary, got.summary
            ));
        }
        for (what, g, w) in [
            ("investigation", &got.investigation, &want.investigation),
            ("remediation", &got.remediation, &want.remediation),
            ("warnings", &got.warnings, &want.warnings),
        ] {
            if g != w {
                diffs.push(format!("  {what}\n    want: {w:#?}\n    got:  {g:#?}"));
            }
        }
        if diffs.is_empty() {
            exact += 1;
        } else {
            failures.push(format!("{name}:\n{}", diffs.join("\n")));
        }
    }
    println!(
        "answer corpus: {exact}/{} answers read exactly ({:.0} %); by model: {per_model:?}",
        corpus.len(),
        100.0 * exact as f64 / corpus.len() as f64
    );
    for failure in &failures {
        println!("{failure}");
    }
    assert!(
        corpus.len() >= 60,
        "the corpus keeps at least 60 answers, has {}",
        corpus.len()
    );
    for (class, what) in CLASSES {
        let n = per_class.get(&class).copied().unwrap_or(0);
        println!("  class {class} ({what}): {n} answers");
        assert!(n >= 4, "class {class} ({what}) has only {n} answers");
    }
    assert!(
        failures.is_empty(),
        "{} of {} answers are not read exactly (listed above)",
        failures.len(),
        corpus.len()
    );
}
