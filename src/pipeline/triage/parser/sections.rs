//! Which part of the answer a heading opens, from its words: "🔍 Investigation Commands (run
//! first):", "Containment/Eradication Commands", "ALERT SUMMARY:", "**Assessment**", "Next
//! steps" … A heading names a command section only when every word is a section word, a command
//! word ("commands", "steps", "actions") or a qualifier ("recommended", "immediate") — so an item
//! label such as "Investigate the parent process:" is not taken for a heading.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    Summary,
    Investigation,
    Remediation,
    /// A part that is neither (notes, considerations, disclaimers, …): nothing in it is a
    /// command, nothing in it is the summary.
    Other,
}

/// Section words that name a command section on their own.
const INVESTIGATION: &[&str] = &["investigat", "forensic"];
const REMEDIATION: &[&str] = &["remediat", "containment", "eradicat", "mitigat", "recover"];
/// Words that name a command section only with a command word: "Triage Commands",
/// "Response Actions", "Evidence Collection Steps".
const INVESTIGATION_WEAK: &[&str] = &[
    "triage",
    "diagnos",
    "evidence",
    "collect",
    "hunt",
    "discovery",
    "enumerat",
    "scoping",
    "gathering",
    "information",
    "data",
];
const REMEDIATION_WEAK: &[&str] = &[
    "response",
    "cleanup",
    "clean",
    "isolation",
    "contain",
    "removal",
    "repair",
    "fix",
];
const COMMAND_WORDS: &[&str] = &[
    "command",
    "cmd",
    "step",
    "action",
    "quer",
    "check",
    "plan",
    "phase",
    "procedure",
    "task",
    "script",
    "cmdlet",
    "measure",
];
/// Words that may stand around a section name without changing it.
const QUALIFIERS: &[&str] = &[
    "recommended",
    "suggested",
    "proposed",
    "immediate",
    "initial",
    "read",
    "only",
    "readonly",
    "safe",
    "additional",
    "further",
    "optional",
    "priority",
    "first",
    "then",
    "and",
    "or",
    "the",
    "a",
    "quick",
    "basic",
    "powershell",
    "windows",
    "host",
    "urgent",
    "run",
    "these",
    "your",
    "my",
    "suggested",
    "short",
    "term",
];
const SUMMARY: &[&str] = &[
    "summary",
    "assessment",
    "overview",
    "analysis",
    "verdict",
    "executive",
    "tldr",
    "tl",
    "synopsis",
    "findings",
    "triage",
    "happened",
];
const SUMMARY_ALLOWED: &[&str] = &[
    "alert",
    "incident",
    "threat",
    "severity",
    "initial",
    "quick",
    "brief",
    "short",
    "risk",
    "and",
    "the",
    "of",
    "this",
    "security",
    "event",
    "my",
    "overall",
    "dr",
    "what",
    "happened",
    "situation",
    "case",
    "ai",
    "detection",
    "impact",
];
/// First words of the parts models add around the commands.
const OTHER: &[&str] = &[
    "note",
    "important",
    "consideration",
    "additional",
    "recommend",
    "next",
    "disclaimer",
    "caveat",
    "warning",
    "tip",
    "conclusion",
    "reference",
    "follow",
    "ioc",
    "indicator",
    "mitre",
    "timeline",
    "impact",
    "prevent",
    "lesson",
    "key",
    "detail",
    "context",
    "observation",
    "explanation",
    "hardening",
    "long",
    "monitor",
    "escalat",
    "caution",
    "limitation",
    "assumption",
    "question",
    "contact",
    "resource",
    "source",
    "why",
    "rationale",
    "risk",
    "background",
    "false",
    "expected",
    "output",
    "scope",
    "final",
    "post",
    "after",
    "verification",
    "verify",
    "validation",
];

/// The words of a heading, lowercased, without emoji, markup, parentheticals and numbering.
pub fn words(label: &str) -> Vec<String> {
    let mut plain = String::new();
    let mut depth = 0usize;
    for c in label.chars() {
        match c {
            '(' | '[' => depth += 1,
            ')' | ']' => depth = depth.saturating_sub(1),
            _ if depth > 0 => {}
            c if c.is_alphanumeric() => plain.extend(c.to_lowercase()),
            '\'' | '’' => {}
            _ => plain.push(' '),
        }
    }
    let mut words: Vec<String> = plain.split_whitespace().map(String::from).collect();
    // "1", "2)", "iv", "Step 3", "Part 2": numbering, not meaning ("I" and "V" are words too).
    while let Some(first) = words.first() {
        let numbering = first.chars().all(|c| c.is_ascii_digit())
            || ["ii", "iii", "iv", "vi", "vii", "viii", "ix"].contains(&first.as_str());
        let step = ["step", "part", "phase", "section"].contains(&first.as_str())
            && words
                .get(1)
                .is_some_and(|w| w.chars().all(|c| c.is_ascii_digit()));
        if step {
            words.drain(..2);
        } else if numbering {
            words.remove(0);
        } else {
            break;
        }
    }
    words
}

fn starts(word: &str, stems: &[&str]) -> bool {
    stems.iter().any(|s| word.starts_with(s))
}

/// The section a heading names, or `None` for a heading that names none of them.
pub fn classify(label: &str) -> Option<Section> {
    let all = words(label);
    if all.is_empty() {
        return None;
    }
    if all.len() > 10 {
        return introduction(label, &all);
    }
    let mut words = all.clone();
    // "Remediation Commands for WS-FIN-042", "… to run on the host": the part before counts.
    if let Some(cut) = words
        .iter()
        .skip(1)
        .position(|w| ["for", "on", "to", "against", "in", "with"].contains(&w.as_str()))
    {
        words.truncate(cut + 1);
    }
    let mut first_kind = None;
    let (mut command_word, mut stray) = (false, false);
    let mut weak = None;
    for w in &words {
        if starts(w, INVESTIGATION) {
            first_kind.get_or_insert(Section::Investigation);
        } else if starts(w, REMEDIATION) {
            first_kind.get_or_insert(Section::Remediation);
        } else if starts(w, INVESTIGATION_WEAK) {
            weak.get_or_insert(Section::Investigation);
        } else if starts(w, REMEDIATION_WEAK) {
            weak.get_or_insert(Section::Remediation);
        } else if starts(w, COMMAND_WORDS) {
            command_word = true;
        } else if !QUALIFIERS.contains(&w.as_str()) {
            stray = true;
        }
    }
    if !stray {
        if let Some(kind) = first_kind {
            return Some(kind);
        }
        if command_word && let Some(kind) = weak {
            return Some(kind);
        }
    }
    let summary_word = words.iter().any(|w| SUMMARY.contains(&w.as_str()));
    let other_word = words
        .iter()
        .any(|w| !SUMMARY.contains(&w.as_str()) && !SUMMARY_ALLOWED.contains(&w.as_str()));
    if summary_word && !other_word {
        return Some(Section::Summary);
    }
    if words.len() <= 8 && starts(&words[0], OTHER) {
        return Some(Section::Other);
    }
    introduction(label, &all)
}

/// A sentence that introduces a list and ends in a colon: "Here are the remediation
/// commands:", "I recommend the following investigation steps:", "Here's my summary:". It names
/// a command section when it has a section word and a command word.
fn introduction(label: &str, words: &[String]) -> Option<Section> {
    if !label.trim_end().ends_with(':') || words.len() > 12 {
        return None;
    }
    let has = |stems: &[&str]| words.iter().any(|w| starts(w, stems));
    if has(COMMAND_WORDS) {
        for w in words {
            if starts(w, INVESTIGATION) || starts(w, INVESTIGATION_WEAK) {
                return Some(Section::Investigation);
            }
            if starts(w, REMEDIATION) || starts(w, REMEDIATION_WEAK) {
                return Some(Section::Remediation);
            }
        }
        return None;
    }
    words
        .iter()
        .any(|w| ["summary", "assessment", "analysis"].contains(&w.as_str()))
        .then_some(Section::Summary)
}

/// First words of an inline label ("**Note:** …", "Tip: …") that close the command lists.
const TRAILING: &[&str] = &[
    "note",
    "important",
    "tip",
    "warning",
    "disclaimer",
    "caution",
    "caveat",
    "next",
    "recommend",
    "additional",
    "follow",
    "consideration",
];

/// Whether an inline label ("**Note:** keep the image") opens a part that is not commands.
pub fn trailing_label(label: &str) -> bool {
    words(label).first().is_some_and(|w| starts(w, TRAILING))
}

/// Whether a heading is numbered ("1.", "2)", "Step 3:"): a numbered heading inside a command
/// section labels one item.
pub fn numbered(label: &str) -> bool {
    let t = label
        .trim_start_matches(|c: char| !c.is_alphanumeric())
        .to_lowercase();
    let t = t
        .strip_prefix("step")
        .map(str::trim_start)
        .unwrap_or(t.as_str());
    let digits = t.chars().take_while(char::is_ascii_digit).count();
    digits > 0
        && digits <= 3
        && t[digits..]
            .trim_start()
            .starts_with(['.', ')', ':', '-', '–', '—'])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headings_in_their_many_forms() {
        for (label, want) in [
            ("Investigation Commands", Some(Section::Investigation)),
            (
                "🔍 Investigation Commands (run first):",
                Some(Section::Investigation),
            ),
            ("INVESTIGATION COMMANDS:", Some(Section::Investigation)),
            ("2) Triage Commands", Some(Section::Investigation)),
            ("Step 2: Investigation", Some(Section::Investigation)),
            (
                "Containment/Eradication Commands",
                Some(Section::Remediation),
            ),
            ("🧯 Remediation Commands", Some(Section::Remediation)),
            ("Immediate Response Actions", Some(Section::Remediation)),
            (
                "Remediation Commands for WS-FIN-042",
                Some(Section::Remediation),
            ),
            ("ALERT SUMMARY:", Some(Section::Summary)),
            ("Assessment", Some(Section::Summary)),
            ("Triage summary", Some(Section::Summary)),
            ("Next steps", Some(Section::Other)),
            ("Important Considerations", Some(Section::Other)),
            ("Key details:", Some(Section::Other)),
            ("Investigate the parent process:", None),
            ("Check the Run key", None),
            ("Response", None),
            (
                "Here are the remediation commands:",
                Some(Section::Remediation),
            ),
            (
                "I recommend the following investigation steps:",
                Some(Section::Investigation),
            ),
            ("Investigate the following processes:", None),
        ] {
            assert_eq!(classify(label), want, "{label}");
        }
    }

    #[test]
    fn numbering() {
        assert!(numbered("1. Check the process"));
        assert!(numbered("Step 2: Registry"));
        assert!(numbered("3) x"));
        assert!(!numbered("Check 1 thing"));
        assert!(!numbered("2024 review"));
    }
}
