//! The JSON form of an answer: `{"summary": "…", "investigation": ["…"], "remediation": ["…"]}`
//! — the whole answer when the server was asked for structured output, or a closing fenced
//! ```` ```json ```` block when the prompt asked for one. It is read when it is present and valid;
//! a block that cannot be read is reported and the markdown is read instead.

use serde::Deserialize;

use super::markdown::{Block, code_blocks};
use crate::domain::Triage;

#[derive(Deserialize)]
struct AnswerJson {
    summary: String,
    #[serde(alias = "investigation_commands")]
    investigation: Vec<JsonCommand>,
    #[serde(alias = "remediation_commands")]
    remediation: Vec<JsonCommand>,
}

/// A command as a string, or as `{"command": "…", …}` (some models add a purpose).
#[derive(Deserialize)]
#[serde(untagged)]
enum JsonCommand {
    Text(String),
    Object {
        #[serde(alias = "cmd")]
        command: String,
    },
}

impl JsonCommand {
    fn text(self) -> String {
        let s = match self {
            JsonCommand::Text(s) | JsonCommand::Object { command: s } => s,
        };
        let t = s.trim();
        // "`Get-Process`": a model that kept its markdown habits inside JSON.
        let t = match t.strip_prefix('`').and_then(|x| x.strip_suffix('`')) {
            Some(inner) if !inner.contains('`') => inner.trim(),
            _ => t,
        };
        t.to_string()
    }
}

fn to_triage(a: AnswerJson) -> Triage {
    let list = |v: Vec<JsonCommand>| -> Vec<String> {
        v.into_iter()
            .map(JsonCommand::text)
            .filter(|c| !c.is_empty())
            .collect()
    };
    let summary = a.summary.trim().to_string();
    let investigation = list(a.investigation);
    let remediation = list(a.remediation);
    let mut warnings = Vec::new();
    if investigation.is_empty() {
        warnings.push("the answer's JSON lists no investigation commands".to_string());
    }
    if remediation.is_empty() {
        warnings.push("the answer's JSON lists no remediation commands".to_string());
    }
    if summary.is_empty() {
        warnings.push("the answer has no summary".to_string());
    }
    Triage {
        summary,
        investigation,
        remediation,
        warnings,
    }
}

/// `Ok(Some)`: the answer's JSON form, valid. `Ok(None)`: there is none. `Err`: a JSON block
/// meant as the answer's JSON form that cannot be read, and why.
pub fn read(text: &str, blocks: &[Block]) -> Result<Option<Triage>, String> {
    let whole = text.trim();
    if whole.starts_with('{') && whole.ends_with('}') {
        match serde_json::from_str::<AnswerJson>(whole) {
            Ok(a) => return Ok(Some(to_triage(a))),
            Err(e) => {
                if serde_json::from_str::<serde_json::Value>(whole).is_ok() {
                    return Err(format!("the JSON answer has the wrong shape: {e}"));
                }
            }
        }
    }
    let candidate = code_blocks(blocks).into_iter().rev().find(|(info, body)| {
        let lang = info.split_whitespace().next().unwrap_or_default();
        lang.eq_ignore_ascii_case("json")
            || lang.is_empty()
                && body.trim_start().starts_with('{')
                && body.contains("\"investigation")
    });
    let Some((_, body)) = candidate else {
        return Ok(None);
    };
    let meant = ["\"summary\"", "\"investigation", "\"remediation"]
        .iter()
        .any(|k| body.contains(k));
    match serde_json::from_str::<AnswerJson>(body.trim()) {
        Ok(a) => {
            let t = to_triage(a);
            if t.is_empty() {
                // Nothing to offer: the markdown may hold more.
                Ok(None)
            } else {
                Ok(Some(t))
            }
        }
        Err(e) if meant => Err(format!("it is not valid: {e}")),
        Err(_) => Ok(None),
    }
}
