//! Parses the assistant's free-text answer into a [`Triage`]: a summary paragraph, then the
//! numbered "Investigation Commands:" and "Remediation Commands:" lists.
//!
//! Models format the same answer many ways — `**Investigation Commands:**`, `### Remediation
//! Commands`, `1.` or `1)` or bullets, commands in backticks or fenced blocks, an explanation after
//! the command, CRLF line ends — so the parser is lenient about form and strict about meaning:
//! only text inside a recognised section becomes a command, and a section that follows (e.g.
//! "Notes") ends the list instead of being swallowed into it. It never panics.

use std::sync::LazyLock;

use regex::Regex;

use crate::domain::Triage;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Section {
    Summary,
    Investigation,
    Remediation,
    Other,
}

static LIST_ITEM: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^\s*(?:\d{1,3}\s*[.)]|[-*•+])\s+(.*)$").expect("valid regex"));
static NUMBERING: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^(?:\d{1,3}\s*[.)]|[-*•+])\s+").expect("valid regex"));
static VERB_NOUN: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[A-Za-z]+-[A-Za-z]+(?:\s|$)").expect("valid regex"));
static CODE_SPAN: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"`+([^`]+?)`+").expect("valid regex"));
static REFERENCE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\{reference\([0-9a-zA-Z_-]+\)\}").expect("valid regex"));

/// Parses an answer. Missing sections become warnings and empty lists, never errors.
pub fn parse_answer(answer: &str) -> Triage {
    let text = REFERENCE
        .replace_all(answer, "")
        .replace("\r\n", "\n")
        .replace('\r', "\n");
    let mut section = Section::Summary;
    let mut summary: Vec<String> = Vec::new();
    let mut investigation: Vec<String> = Vec::new();
    let mut remediation: Vec<String> = Vec::new();
    let mut seen_inv = false;
    let mut seen_rem = false;
    // A fenced block inside a section: its lines are commands.
    let mut in_fence = false;
    let mut fence_lines: Vec<String> = Vec::new();
    // A list item with no command of its own ("1. List the processes:"), waiting for a fence.
    let mut pending_item = false;

    for raw_line in text.lines() {
        let line = raw_line.trim_end();
        let trimmed = line.trim();
        if trimmed.starts_with("```") || trimmed.starts_with("~~~") {
            if in_fence {
                in_fence = false;
                let target = match section {
                    Section::Investigation => Some(&mut investigation),
                    Section::Remediation => Some(&mut remediation),
                    _ => None,
                };
                if let Some(list) = target {
                    list.extend(commands_from_block(&fence_lines));
                }
                fence_lines.clear();
                pending_item = false;
            } else {
                in_fence = true;
            }
            continue;
        }
        if in_fence {
            fence_lines.push(line.to_string());
            continue;
        }
        if trimmed.is_empty() {
            continue;
        }
        if let Some(next) = heading_section(trimmed) {
            section = next;
            seen_inv |= next == Section::Investigation;
            seen_rem |= next == Section::Remediation;
            pending_item = false;
            continue;
        }
        match section {
            Section::Summary => {
                let cleaned = strip_summary_label(trimmed);
                if !cleaned.is_empty() {
                    summary.push(cleaned);
                }
            }
            Section::Investigation | Section::Remediation => {
                let list = if section == Section::Investigation {
                    &mut investigation
                } else {
                    &mut remediation
                };
                if let Some(caps) = LIST_ITEM.captures(line) {
                    let item = caps.get(1).map_or("", |m| m.as_str());
                    match command_from_item(item) {
                        Some(cmd) => {
                            list.push(cmd);
                            pending_item = false;
                        }
                        None => pending_item = true,
                    }
                } else if pending_item {
                    // An indented continuation carrying the command in a code span.
                    if let Some(cmd) = CODE_SPAN.captures(trimmed).and_then(|c| c.get(1)) {
                        list.push(cmd.as_str().trim().to_string());
                        pending_item = false;
                    }
                }
                // Prose between items (e.g. "Run these on the host:") is not a command.
            }
            Section::Other => {}
        }
    }

    let mut warnings = Vec::new();
    if !seen_inv {
        warnings.push("the answer has no \"Investigation Commands\" section".to_string());
    } else if investigation.is_empty() {
        warnings.push("the \"Investigation Commands\" section lists no commands".to_string());
    }
    if !seen_rem {
        warnings.push("the answer has no \"Remediation Commands\" section".to_string());
    } else if remediation.is_empty() {
        warnings.push("the \"Remediation Commands\" section lists no commands".to_string());
    }
    let summary = summary.join(" ");
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

/// Recognises a heading line and says which section it opens. Headings may be markdown headings,
/// bold lines or plain "Label:" lines; anything that looks like a heading but names another
/// section closes the command lists.
fn heading_section(line: &str) -> Option<Section> {
    let is_md_heading = line.starts_with('#');
    let is_list = LIST_ITEM.is_match(line);
    let unmarked = line.trim_start_matches('#').trim();
    // "2. Investigation Commands:" / "- **Remediation Commands**": a numbered or bulleted
    // heading (our own prompt numbers the parts of the answer).
    let unmarked = match NUMBERING.find(unmarked) {
        Some(m) => unmarked[m.end()..].trim(),
        None => unmarked,
    };
    let is_bold = (unmarked.starts_with("**") && unmarked.ends_with("**") && unmarked.len() > 4)
        || (unmarked.starts_with("__") && unmarked.ends_with("__") && unmarked.len() > 4);
    let label = unmarked.trim_matches(|c| c == '*' || c == '_').trim();
    let ends_with_colon = label.ends_with(':');
    let label = label
        .trim_end_matches(':')
        .trim_matches(|c| c == '*' || c == '_')
        .trim();
    if label.is_empty() {
        return None;
    }
    let lower = label.to_lowercase();
    let words: Vec<&str> = lower.split_whitespace().collect();
    let names = |w: &str| words.first().is_some_and(|first| first.starts_with(w));
    let short = words.len() <= 5;
    if is_list {
        // A list item is a heading only when it plainly names a command section.
        let plain = lower.contains("command")
            && !label.contains('`')
            && (ends_with_colon || is_bold || words.len() <= 3);
        return match () {
            _ if plain && short && names("investigat") => Some(Section::Investigation),
            _ if plain
                && short
                && (names("remediat") || names("containment") || names("response")) =>
            {
                Some(Section::Remediation)
            }
            _ => None,
        };
    }
    if short
        && names("investigat")
        && (words.len() == 1 || lower.contains("command") || lower.contains("step"))
    {
        return Some(Section::Investigation);
    }
    if short
        && (names("remediat") || names("containment") || names("response"))
        && (words.len() == 1
            || lower.contains("command")
            || lower.contains("step")
            || lower.contains("action"))
    {
        return Some(Section::Remediation);
    }
    if short
        && (names("summary") || names("triage"))
        && (is_md_heading || is_bold || ends_with_colon)
    {
        return Some(Section::Summary);
    }
    if (is_md_heading || is_bold || (ends_with_colon && short && !label.contains('`')))
        && words.len() <= 6
    {
        return Some(Section::Other);
    }
    // A plain line naming a section that follows the commands ("Next steps", "Notes"): it
    // ends the command lists instead of its bullets being swallowed as commands.
    if words.len() <= 4
        && !label.contains([':', '`', '.', '$', '-', '\\'])
        && OTHER_SECTIONS.iter().any(|w| lower.starts_with(w))
    {
        return Some(Section::Other);
    }
    None
}

/// Sections models add after the command lists.
const OTHER_SECTIONS: &[&str] = &[
    "note",
    "next step",
    "additional",
    "recommendation",
    "conclusion",
    "reference",
    "caveat",
    "warning",
    "follow-up",
    "follow up",
    "indicators",
    "iocs",
    "mitre",
    "timeline",
    "impact",
    "verdict",
    "explanation",
    "disclaimer",
    "prevention",
    "lessons",
];

/// "Summary: text" → "text"; markdown emphasis removed.
fn strip_summary_label(line: &str) -> String {
    let no_bold = line.replace("**", "").replace("__", "");
    let t = no_bold.trim();
    let lower = t.to_lowercase();
    let t = if lower.starts_with("summary:") {
        &t["summary:".len()..]
    } else {
        t
    };
    t.trim().to_string()
}

/// The command inside one list item: the first code span if there is one, else the item text
/// without emphasis and without a trailing explanation. `None` when the item is only prose that
/// ends in a colon (the command follows in a block).
fn command_from_item(item: &str) -> Option<String> {
    if let Some(span) = CODE_SPAN.captures(item).and_then(|c| c.get(1)) {
        let cmd = span.as_str().trim();
        return (!cmd.is_empty()).then(|| cmd.to_string());
    }
    let mut text = strip_emphasis(item.trim()).to_string();
    // "List the processes:" introduces a command in a block; "Get-ChildItem C:" is one.
    if text.ends_with(':') && !VERB_NOUN.is_match(&text) {
        return None;
    }
    for sep in [" — ", " – ", " -- "] {
        if let Some(pos) = text.find(sep) {
            text.truncate(pos);
        }
    }
    let text = text.trim().to_string();
    (!text.is_empty()).then_some(text)
}

/// `**x**`, `__x__`, `*x*`, `_x_` → `x`; a lone `_` or `*` belongs to the command (`$_`, `*.log`).
fn strip_emphasis(mut s: &str) -> &str {
    loop {
        let before = s;
        for m in ["**", "__", "*", "_"] {
            if s.len() > 2 * m.len() && s.starts_with(m) && s.ends_with(m) {
                s = s[m.len()..s.len() - m.len()].trim();
                break;
            }
        }
        if s == before {
            return s;
        }
    }
}

/// Commands from a fenced block: one per line, comments and blank lines dropped, and a line that
/// continues (ends with a backtick, a pipe or an opening brace) joined with the next so a
/// multi-line command stays whole.
fn commands_from_block(lines: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut depth: i64 = 0;
    for line in lines {
        let t = line.trim();
        if current.is_empty() && (t.is_empty() || t.starts_with('#')) {
            continue;
        }
        if !current.is_empty() {
            current.push('\n');
        }
        current.push_str(line.trim_end());
        depth += t.matches('{').count() as i64 - t.matches('}').count() as i64;
        let continues = t.ends_with('`') || t.ends_with('|') || depth > 0;
        if !continues {
            out.push(dedent(&current));
            current.clear();
            depth = 0;
        }
    }
    if !current.trim().is_empty() {
        out.push(dedent(&current));
    }
    out
}

fn dedent(s: &str) -> String {
    let indent = s
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.len() - l.trim_start().len())
        .min()
        .unwrap_or(0);
    s.lines()
        .map(|l| l.get(indent..).unwrap_or(l.trim_start()))
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    const PLAIN: &str = "The host WS-FIN-042 (10.20.4.42) shows WMI persistence.\n\nInvestigation Commands:\n1. Get-Process\n2. Get-Service\n3. Get-ScheduledTask\n4. Get-NetTCPConnection\n5. Get-LocalUser\n\nRemediation Commands:\n1. Stop-Process -Id 4242 -Force\n2. Remove-ItemProperty -Path 'HKLM:\\Software\\Microsoft\\Windows\\CurrentVersion\\Run' -Name OneDriveUpdate\n3. Disable-LocalUser -Name tmpadmin\n";

    #[test]
    fn plain_answer() {
        let t = parse_answer(PLAIN);
        assert_eq!(
            t.summary,
            "The host WS-FIN-042 (10.20.4.42) shows WMI persistence."
        );
        assert_eq!(t.investigation.len(), 5);
        assert_eq!(t.remediation.len(), 3);
        assert_eq!(t.investigation[0], "Get-Process");
        assert!(t.remediation[1].starts_with("Remove-ItemProperty -Path 'HKLM:"));
        assert!(t.warnings.is_empty(), "{:?}", t.warnings);
    }

    #[test]
    fn bold_markers_and_code_spans() {
        let a = "**Summary:** Host 10.0.0.5 is compromised.\n\n**Investigation Commands:**\n1. `Get-Process -Id 4242` — shows the process\n2. **`Get-Service`**\n\n**Remediation Commands:**\n1) `Stop-Process -Id 4242`\n";
        let t = parse_answer(a);
        assert_eq!(t.summary, "Host 10.0.0.5 is compromised.");
        assert_eq!(t.investigation, vec!["Get-Process -Id 4242", "Get-Service"]);
        assert_eq!(t.remediation, vec!["Stop-Process -Id 4242"]);
    }

    #[test]
    fn hash_headings_bullets_and_crlf() {
        let a = "### Triage summary\r\nSuspicious run key on 10.1.1.1.\r\n\r\n### Investigation Commands\r\n- Get-ItemProperty HKLM:\\Software\\Microsoft\\Windows\\CurrentVersion\\Run\r\n* Get-Process\r\n\r\n### Remediation Commands\r\n• Remove-Item C:\\ProgramData\\odu\\odupd.exe\r\n\r\n### Notes\r\n- Reboot later\r\n";
        let t = parse_answer(a);
        assert_eq!(t.summary, "Suspicious run key on 10.1.1.1.");
        assert_eq!(t.investigation.len(), 2);
        assert_eq!(t.investigation[1], "Get-Process");
        assert_eq!(
            t.remediation,
            vec!["Remove-Item C:\\ProgramData\\odu\\odupd.exe"],
            "Notes must not be swallowed"
        );
    }

    #[test]
    fn explanation_after_dash_is_dropped() {
        let a = "x\nInvestigation Commands:\n1. Get-Process -Id 4242 — shows the process\nRemediation Commands:\n1. Stop-Process -Id 4242 – kills it\n";
        let t = parse_answer(a);
        assert_eq!(t.investigation, vec!["Get-Process -Id 4242"]);
        assert_eq!(t.remediation, vec!["Stop-Process -Id 4242"]);
    }

    #[test]
    fn fenced_blocks_one_command_per_line_and_multiline_kept_whole() {
        let a = "Summary here.\n\nInvestigation Commands:\n```powershell\n# comment\nGet-Process\nGet-WinEvent -LogName Security |\n  Select-Object -First 5\n```\nRemediation Commands:\n1. Remove the key:\n   ```\n   Remove-ItemProperty -Path X -Name Y\n   ```\n";
        let t = parse_answer(a);
        assert_eq!(
            t.investigation,
            vec![
                "Get-Process",
                "Get-WinEvent -LogName Security |\n  Select-Object -First 5"
            ]
        );
        assert_eq!(t.remediation, vec!["Remove-ItemProperty -Path X -Name Y"]);
    }

    #[test]
    fn missing_section_warns_and_leaves_empty_list() {
        let t = parse_answer("Just a summary, no commands at all.");
        assert!(t.is_empty());
        assert_eq!(t.warnings.len(), 2);
        let t = parse_answer("S.\nInvestigation Commands:\n1. Get-Process\n");
        assert_eq!(t.investigation, vec!["Get-Process"]);
        assert!(t.remediation.is_empty());
        assert!(t.warnings.iter().any(|w| w.contains("Remediation")));
    }

    #[test]
    fn reference_markers_are_stripped_and_unicode_survives() {
        let t = parse_answer(
            "Hôte ünïcode {reference(ab12c)} attaqué.\nInvestigation Commands:\n1. `Get-ChildItem 'C:\\Users\\Jörg'`\nRemediation Commands:\n1. `Stop-Process -Name évil`\n",
        );
        assert_eq!(t.summary, "Hôte ünïcode  attaqué.");
        assert_eq!(t.investigation, vec!["Get-ChildItem 'C:\\Users\\Jörg'"]);
    }

    #[test]
    fn numbered_headings_and_plain_following_sections() {
        let a = "1. The host WS1 ran a dropper.\n\n2. Investigation Commands:\n   1. Get-Process\n   2. `Get-Service`\n\n3. **Remediation Commands**\n   1. Stop-Process -Id 4242\n\nNext steps\n- Reboot the host\n- Reset the password\n\nNotes\n1. Keep the disk image\n";
        let t = parse_answer(a);
        assert_eq!(t.investigation, vec!["Get-Process", "Get-Service"]);
        assert_eq!(t.remediation, vec!["Stop-Process -Id 4242"], "{t:?}");
        assert!(t.summary.contains("dropper"));
    }

    #[test]
    fn lowercase_and_no_colon_headings() {
        let t = parse_answer("s\ninvestigation commands\n1. a\nREMEDIATION COMMANDS\n1. b\n");
        assert_eq!(t.investigation, vec!["a"]);
        assert_eq!(t.remediation, vec!["b"]);
    }
}
