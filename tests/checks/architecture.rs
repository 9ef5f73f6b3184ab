//! The module layering, kept: a module may use the modules of a lower layer and its own
//! descendants, never a module of a higher layer or another module of its own layer
//! (`triage_bot::LAYERS` is the table). Reads every file under `src/` for `crate::…` and
//! `super::…` paths — `use` trees with braces included, comments skipped — and fails with the
//! file, the line and the offending path.
//!
//! `TRIAGE_BOT_ARCH_SRC` points it at another checkout's `src/` (to show what it finds there).

use std::path::{Path, PathBuf};

use triage_bot::LAYERS;

/// A module path (`["pipeline", "approval", "notify"]`) → its entry in the layer table: the
/// longest table key that is a prefix of it.
fn layer_of(path: &[String]) -> Option<(&'static str, u8)> {
    LAYERS
        .iter()
        .copied()
        .filter(|(key, _)| {
            let parts: Vec<&str> = key.split("::").collect();
            parts.len() <= path.len() && parts.iter().zip(path).all(|(a, b)| *a == b)
        })
        .max_by_key(|(key, _)| key.split("::").count())
}

/// The module a source file defines: `src/pipeline/approval/notify.rs` → pipeline::approval::
/// notify; `src/store/mod.rs` → store.
fn module_of(src: &Path, file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(src).expect("file under src");
    let mut parts: Vec<String> = rel
        .iter()
        .map(|p| p.to_string_lossy().trim_end_matches(".rs").to_string())
        .collect();
    if parts.last().is_some_and(|p| p == "mod") {
        parts.pop();
    }
    parts
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("readable src dir") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The source with comments blanked (line numbers kept), so prose that names a module is not
/// taken for a dependency.
fn strip_comments(text: &str) -> String {
    text.lines()
        .map(|line| match line.find("//") {
            Some(i) if !line[..i].contains('"') => &line[..i],
            _ => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every full path a `use` tree or inline path starting at `rest` names:
/// `a::{b, c::{d, e}}` → `a::b`, `a::c::d`, `a::c::e`.
fn expand(rest: &str) -> Vec<Vec<String>> {
    fn tree(s: &[u8], i: &mut usize, prefix: Vec<String>, out: &mut Vec<Vec<String>>) {
        let mut path = prefix;
        loop {
            while *i < s.len() && s[*i].is_ascii_whitespace() {
                *i += 1;
            }
            if *i < s.len() && s[*i] == b'{' {
                *i += 1;
                loop {
                    tree(s, i, path.clone(), out);
                    while *i < s.len() && s[*i].is_ascii_whitespace() {
                        *i += 1;
                    }
                    match s.get(*i) {
                        Some(b',') => *i += 1,
                        Some(b'}') => {
                            *i += 1;
                            break;
                        }
                        _ => return,
                    }
                    while *i < s.len() && s[*i].is_ascii_whitespace() {
                        *i += 1;
                    }
                    if s.get(*i) == Some(&b'}') {
                        *i += 1;
                        break;
                    }
                }
                return;
            }
            let start = *i;
            while *i < s.len() && (s[*i].is_ascii_alphanumeric() || s[*i] == b'_') {
                *i += 1;
            }
            let segment = std::str::from_utf8(&s[start..*i]).unwrap_or_default();
            if segment.is_empty() {
                break;
            }
            if segment != "self" {
                path.push(segment.to_string());
            }
            if s[*i..].starts_with(b"::") {
                *i += 2;
            } else {
                break;
            }
        }
        // `as` renames and the rest of the statement do not change the path.
        out.push(path);
    }
    let mut out = Vec::new();
    let mut i = 0;
    tree(rest.as_bytes(), &mut i, Vec::new(), &mut out);
    out
}

#[derive(Debug)]
struct Violation {
    file: String,
    line: usize,
    path: String,
    why: String,
}

fn check(src: &Path) -> Vec<Violation> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    files.sort();
    let mut violations = Vec::new();
    for file in files {
        let module = module_of(src, &file);
        if module == ["lib"] || module == ["main"] {
            continue; // lib.rs declares the modules; main.rs only calls `cli`.
        }
        let shown = file
            .strip_prefix(src.parent().unwrap_or(src))
            .unwrap_or(&file);
        let Some((own_key, own_rank)) = layer_of(&module) else {
            violations.push(Violation {
                file: shown.display().to_string(),
                line: 1,
                path: module.join("::"),
                why: "this module is not in the layer table (triage_bot::LAYERS)".into(),
            });
            continue;
        };
        let text = strip_comments(&std::fs::read_to_string(&file).expect("readable file"));
        for (at, _) in text
            .match_indices("crate::")
            .chain(text.match_indices("super::"))
        {
            let before = text[..at].chars().next_back();
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
                continue; // `$crate::`, `sqlx::…::crate::`, or the tail of a longer path.
            }
            let line = text[..at].matches('\n').count() + 1;
            let (base, rest) = if text[at..].starts_with("crate::") {
                (Vec::new(), &text[at + "crate::".len()..])
            } else {
                // `super::` counts from the file's module; chains of `super::` climb further.
                let mut base = module.clone();
                let mut rest = &text[at..];
                while let Some(r) = rest.strip_prefix("super::") {
                    base.pop();
                    rest = r;
                }
                (base, rest)
            };
            for tail in expand(rest) {
                let mut target = base.clone();
                target.extend(tail);
                let Some((key, rank)) = layer_of(&target) else {
                    continue; // an item of lib.rs itself, or a path we cannot place
                };
                let family = key == own_key
                    || key.starts_with(&format!("{own_key}::")) // a folder's own files
                    || own_key.starts_with(&format!("{key}::")); // a file's own folder
                let why = if family || rank < own_rank {
                    continue;
                } else if rank > own_rank {
                    format!(
                        "`{own_key}` (layer {own_rank}) uses `{key}` (layer {rank}), a higher layer"
                    )
                } else {
                    format!("`{own_key}` uses `{key}`, another module of its own layer ({rank})")
                };
                violations.push(Violation {
                    file: shown.display().to_string(),
                    line,
                    path: target.join("::"),
                    why,
                });
            }
        }
    }
    violations
}

#[test]
fn modules_depend_only_downwards() {
    let src = std::env::var_os("TRIAGE_BOT_ARCH_SRC")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("src"));
    let violations = check(&src);
    let report: Vec<String> = violations
        .iter()
        .map(|v| format!("{}:{}: {} — {}", v.file, v.line, v.path, v.why))
        .collect();
    assert!(
        violations.is_empty(),
        "{} import(s) against the layering:\n{}",
        violations.len(),
        report.join("\n")
    );
}

/// SQL lives in the store: no query is written anywhere else.
#[test]
fn sql_lives_only_in_the_store() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut outside = Vec::new();
    for file in files {
        if module_of(&src, &file).first().is_some_and(|m| m == "store") {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap();
        for (n, line) in text.lines().enumerate() {
            if ["sqlx::query", "query_as(", "query_scalar("]
                .iter()
                .any(|q| line.contains(q))
            {
                outside.push(format!("{}:{}: {}", file.display(), n + 1, line.trim()));
            }
        }
    }
    assert!(
        outside.is_empty(),
        "SQL outside src/store:\n{}",
        outside.join("\n")
    );
}

#[test]
fn use_trees_expand_to_full_paths() {
    let got = expand("pipeline::{Ctx, approval::{blocks, decide::ClickOutcome}, self};");
    let got: Vec<String> = got.iter().map(|p| p.join("::")).collect();
    assert_eq!(
        got,
        [
            "pipeline::Ctx",
            "pipeline::approval::blocks",
            "pipeline::approval::decide::ClickOutcome",
            "pipeline"
        ]
    );
    assert_eq!(
        layer_of(&["pipeline".into(), "record".into(), "show".into()]),
        Some(("pipeline::record", 56))
    );
}

#[test]
fn an_upward_import_is_reported_with_its_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    std::fs::create_dir_all(src.join("store")).unwrap();
    std::fs::create_dir_all(src.join("pipeline")).unwrap();
    std::fs::write(src.join("lib.rs"), "pub mod store;\n").unwrap();
    std::fs::write(
        src.join("store/mod.rs"),
        "//! crate::pipeline in a comment is fine.\nuse crate::domain::Alert;\nuse crate::pipeline::approval::blocks::escape;\n",
    )
    .unwrap();
    std::fs::write(
        src.join("pipeline/mod.rs"),
        "use crate::store::Store;\nuse crate::workers::JobError;\n",
    )
    .unwrap();
    let found: Vec<String> = check(&src)
        .iter()
        .map(|v| format!("{}:{}: {}", v.file, v.line, v.path))
        .collect();
    assert_eq!(
        found,
        [
            "src/pipeline/mod.rs:2: workers::JobError",
            "src/store/mod.rs:3: pipeline::approval::blocks::escape",
        ]
    );
}
