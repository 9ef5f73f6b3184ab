//! Reading one line of an answer as written: code spans, bold wrappers, labels ("**Purpose:**",
//! "Command:"), trailing explanations (` — why`, `: why`, ` (why)`), whether text is a
//! PowerShell command or prose, and how a code block splits into commands (one per line, except
//! where a line continues: a trailing backtick or pipe, an open brace or bracket, a here-string).

use std::sync::LazyLock;

use regex::Regex;

/// A code span: its content (CommonMark rules: one surrounding space stripped, line ends as
/// spaces) and where the whole span, ticks included, lies in the line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Span {
    pub content: String,
    pub start: usize,
    pub end: usize,
}

/// The code spans of `s`, in order. An unmatched run of backticks is literal text; a run after a
/// backslash opens nothing (it may close). Linear in the runs, however many stay unmatched.
pub fn code_spans(s: &str) -> Vec<Span> {
    let b = s.as_bytes();
    // Every run of backticks: (start, length, escaped).
    let mut runs: Vec<(usize, usize, bool)> = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'`' {
            let start = i;
            while i < b.len() && b[i] == b'`' {
                i += 1;
            }
            runs.push((start, i - start, start > 0 && b[start - 1] == b'\\'));
        } else {
            i += 1;
        }
    }
    // The runs of each length, by position, to find a closer without rescanning the text.
    let mut by_len: std::collections::HashMap<usize, Vec<usize>> = std::collections::HashMap::new();
    for (k, (_, len, _)) in runs.iter().enumerate() {
        by_len.entry(*len).or_default().push(k);
    }
    let mut out = Vec::new();
    let mut k = 0;
    while k < runs.len() {
        let (start, len, escaped) = runs[k];
        let closer = if escaped {
            None
        } else {
            by_len.get(&len).and_then(|same| {
                let at = same.partition_point(|&x| x <= k);
                same.get(at).copied()
            })
        };
        let Some(m) = closer else {
            k += 1;
            continue;
        };
        let (close, _, _) = runs[m];
        let raw = s
            .get(start + len..close)
            .unwrap_or_default()
            .replace('\n', " ");
        let content = match raw.strip_prefix(' ').and_then(|r| r.strip_suffix(' ')) {
            Some(inner) if !raw.trim().is_empty() => inner.to_string(),
            _ => raw,
        };
        out.push(Span {
            content,
            start,
            end: close + len,
        });
        k = m + 1;
    }
    out
}

/// The text a span starts, when the (trimmed) line begins with one: `` `cmd` — why `` → `cmd`.
pub fn leading_span(s: &str) -> Option<String> {
    let t = s.trim_start();
    if !t.starts_with('`') {
        return None;
    }
    code_spans(t)
        .into_iter()
        .next()
        .filter(|sp| sp.start == 0)
        .map(|sp| sp.content.trim().to_string())
        .filter(|c| !c.is_empty())
}

/// Emoji, arrows and bullets in front of a line ("🔍 **Investigation**", "✅ Step 1").
pub fn strip_decoration(s: &str) -> &str {
    s.trim_start_matches(|c: char| {
        c.is_whitespace() || (!c.is_ascii() && !c.is_alphanumeric() && !"’'\"“”«".contains(c))
    })
    .trim_end()
}

/// `**x**`, `**x:**`, `**x**:`, `__x__` → (`x` / `x:`, true); anything else unchanged.
pub fn unwrap_bold(s: &str) -> (String, bool) {
    let t = s.trim();
    for m in ["**", "__"] {
        let Some(rest) = t.strip_prefix(m) else {
            continue;
        };
        if let Some(inner) = rest.strip_suffix(m)
            && !inner.trim().is_empty()
            && !inner.contains(m)
        {
            return (inner.trim().to_string(), true);
        }
        if let Some(inner) = rest.strip_suffix(&format!("{m}:"))
            && !inner.trim().is_empty()
            && !inner.contains(m)
        {
            return (format!("{}:", inner.trim().trim_end_matches(':')), true);
        }
    }
    (t.to_string(), false)
}

/// `**`, `__` removed (for summary text).
pub fn without_bold(s: &str) -> String {
    s.replace("**", "").replace("__", "")
}

/// Where the first position satisfying `pred` outside quotes, braces, brackets and code spans
/// is, in `s`. A lone backtick (PowerShell's escape) opens nothing.
fn find_top_level(s: &str, pred: impl Fn(&str, usize) -> bool) -> Option<usize> {
    let spans = code_spans(s);
    let mut next_span = 0;
    let mut quote: Option<char> = None;
    let mut depth = 0i32;
    for (i, c) in s.char_indices() {
        while next_span < spans.len() && spans[next_span].end <= i {
            next_span += 1;
        }
        if spans.get(next_span).is_some_and(|sp| sp.start <= i) {
            continue;
        }
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '\'' | '"') => {
                // An apostrophe inside a word ("don't") opens nothing.
                let prev = s[..i].chars().next_back();
                if c == '"' || !prev.is_some_and(char::is_alphanumeric) {
                    quote = Some(c);
                }
            }
            (None, '{' | '(' | '[') => depth += 1,
            (None, '}' | ')' | ']') => depth -= 1,
            _ if depth == 0 && pred(s, i) => return Some(i),
            _ => {}
        }
    }
    None
}

/// A leading label: `**Label:** rest`, `**Label**: rest`, `Label: rest` → (`Label`, `rest`).
/// A plain label is short prose (no command, no code), so `Get-ChildItem C: …` and
/// `HKLM:\…` are never split.
pub fn label_prefix(s: &str) -> Option<(String, String)> {
    let t = s.trim();
    for m in ["**", "__"] {
        if let Some(rest) = t.strip_prefix(m)
            && let Some(close) = rest.find(m)
        {
            let inner = rest[..close].trim();
            let after = rest[close + m.len()..].trim_start();
            if let Some(label) = inner.strip_suffix(':') {
                return Some((label.trim().to_string(), after.to_string()));
            }
            if let Some(after) = after.strip_prefix(':') {
                return Some((inner.to_string(), after.trim().to_string()));
            }
        }
    }
    let colon = find_top_level(t, |s, i| {
        s[i..].starts_with(':') && s[i + 1..].chars().next().is_none_or(char::is_whitespace)
    })?;
    let label = t[..colon].trim();
    let words = label.split_whitespace().count();
    if label.is_empty()
        || words > 8
        || label.contains(['`', '$', '|', '{', '}', '=', '\\', '/', '"'])
        || looks_like_command(label)
    {
        return None;
    }
    Some((label.to_string(), t[colon + 1..].trim().to_string()))
}

/// Labels whose text explains a command rather than being one: "Purpose:", "Why:", "What to
/// look for:", "Expected output:".
pub fn explanatory_label(label: &str) -> bool {
    let l = label.trim().trim_end_matches(':').to_lowercase();
    let words: Vec<&str> = l.split_whitespace().collect();
    let first = words.first().copied().unwrap_or_default();
    words.len() <= 4
        && ([
            "purpose",
            "rationale",
            "why",
            "reason",
            "explanation",
            "description",
            "note",
            "notes",
            "expected",
            "output",
            "goal",
            "result",
            "results",
            "impact",
            "risk",
            "caution",
            "warning",
            "tip",
            "context",
            "effect",
            "interpretation",
            "details",
            "justification",
        ]
        .contains(&first)
            || [
                "what it",
                "what to look",
                "what this",
                "look for",
                "what you",
            ]
            .iter()
            .any(|p| l.starts_with(p)))
}

/// Labels that introduce the command itself: "Command:", "PowerShell:", "Run:".
pub fn command_label(label: &str) -> bool {
    let l = label.trim().trim_end_matches(':').to_lowercase();
    [
        "command",
        "cmd",
        "powershell",
        "run",
        "execute",
        "query",
        "syntax",
        "code",
        "script",
        "ps",
        "cmdlet",
    ]
    .contains(&l.as_str())
}

static APPROVED_VERBS: &[&str] = &[
    "add",
    "approve",
    "assert",
    "backup",
    "block",
    "build",
    "checkpoint",
    "clear",
    "close",
    "compare",
    "complete",
    "compress",
    "confirm",
    "connect",
    "convert",
    "convertfrom",
    "convertto",
    "copy",
    "debug",
    "deny",
    "deploy",
    "disable",
    "disconnect",
    "dismount",
    "edit",
    "enable",
    "enter",
    "exit",
    "expand",
    "export",
    "find",
    "foreach",
    "format",
    "get",
    "grant",
    "group",
    "hide",
    "import",
    "initialize",
    "install",
    "invoke",
    "join",
    "limit",
    "lock",
    "measure",
    "merge",
    "mount",
    "move",
    "new",
    "open",
    "optimize",
    "out",
    "ping",
    "pop",
    "protect",
    "publish",
    "push",
    "read",
    "receive",
    "redo",
    "register",
    "remove",
    "rename",
    "repair",
    "request",
    "reset",
    "resize",
    "resolve",
    "restart",
    "restore",
    "resume",
    "revoke",
    "save",
    "search",
    "select",
    "send",
    "set",
    "show",
    "skip",
    "sort",
    "split",
    "start",
    "step",
    "stop",
    "submit",
    "suspend",
    "switch",
    "sync",
    "tee",
    "test",
    "trace",
    "unblock",
    "undo",
    "uninstall",
    "unlock",
    "unprotect",
    "unpublish",
    "unregister",
    "update",
    "use",
    "wait",
    "watch",
    "where",
    "write",
];

/// Programs and aliases a proposed Windows command commonly starts with.
static PROGRAMS: &[&str] = &[
    "arp",
    "attrib",
    "auditpol",
    "autorunsc",
    "bcdedit",
    "cat",
    "cd",
    "certutil",
    "cmd",
    "del",
    "dir",
    "dism",
    "echo",
    "findstr",
    "fsutil",
    "gci",
    "gps",
    "gpresult",
    "handle",
    "hostname",
    "icacls",
    "ipconfig",
    "kill",
    "klist",
    "logman",
    "ls",
    "nbtstat",
    "net",
    "netsh",
    "netstat",
    "nltest",
    "nslookup",
    "ping",
    "powershell",
    "ps",
    "pwsh",
    "quser",
    "qwinsta",
    "reg",
    "rm",
    "robocopy",
    "route",
    "sc",
    "schtasks",
    "sigcheck",
    "systeminfo",
    "takeown",
    "taskkill",
    "tasklist",
    "tracert",
    "type",
    "vssadmin",
    "wevtutil",
    "whoami",
    "wmic",
    "wpr",
    "fltmc",
    "manage-bde",
    "shutdown",
    "logoff",
    "rundll32",
    "regsvr32",
    "mpcmdrun",
];

static CMDLET: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^([A-Za-z]+)-[A-Za-z][A-Za-z0-9]*(?:$|[\s|;(])").expect("valid regex")
});

/// True when `s` starts the way a PowerShell / Windows command does: an approved verb's cmdlet
/// (`Get-Process`), a known program (`netstat`, `reg.exe`), a variable, a call operator, a
/// script path, a type literal or a sub-expression.
pub fn looks_like_command(s: &str) -> bool {
    let t = s.trim_start();
    if let Some(c) = CMDLET.captures(t) {
        return c
            .get(1)
            .is_some_and(|v| APPROVED_VERBS.contains(&v.as_str().to_lowercase().as_str()));
    }
    if t.starts_with('$') && t[1..].starts_with(|c: char| c.is_alphabetic() || c == '_' || c == '{')
    {
        return true;
    }
    if t.starts_with("& ")
        || t.starts_with("&'")
        || t.starts_with("&\"")
        || t.starts_with(".\\")
        || t.starts_with("@(")
        || t.starts_with("(Get-")
        || t.starts_with("[System.")
        || t.starts_with("[Net.")
        || t.starts_with("[IO.")
    {
        return true;
    }
    let token = t
        .split(|c: char| c.is_whitespace() || c == '|')
        .next()
        .unwrap_or_default();
    let lower = token.to_lowercase();
    let program = lower.strip_suffix(".exe").unwrap_or(&lower);
    if !PROGRAMS.contains(&program) {
        return false;
    }
    // "netstat -ano", "sc.exe delete X", "whoami": a command. "Kill the PowerShell child",
    // "PowerShell script-block log": a sentence that starts with a program's name.
    let rest = t[token.len()..].trim();
    let written_as_command = token.chars().all(|c| !c.is_uppercase()) || lower.ends_with(".exe");
    let arguments = rest.split_whitespace().any(|w| {
        w.starts_with(['-', '/', '$', '\'', '"'])
            || w.contains(['\\', '=', '|', '*'])
            || w.trim_end_matches(':').contains(':')
            || w.chars().any(|c| c.is_ascii_digit())
    });
    rest.is_empty() || written_as_command || arguments
}

/// True for a sentence rather than a command: three or more plain words, the first not a
/// command, and none of the characters or flags commands are made of.
pub fn is_prose(s: &str) -> bool {
    let t = s.trim();
    let words: Vec<&str> = t.split_whitespace().collect();
    if words.len() < 3 || looks_like_command(t) {
        return false;
    }
    let first_plain = words[0]
        .trim_end_matches([',', ':', '.'])
        .chars()
        .all(|c| c.is_alphabetic() || c == '\'' || c == '’');
    let flags = words
        .iter()
        .any(|w| (w.starts_with('-') || w.starts_with('/')) && w.len() > 1 && !w.starts_with("--"));
    first_plain && !flags && !t.contains(['$', '|', '{', '}', '=', '\\', '@', ';', '<', '>'])
}

/// A bare command without what follows it: ` — why`, ` – why`, ` -- why`, `: why` (a colon
/// and a space outside quotes, before prose; `HKLM:\` and `-Confirm:$false` are part of the
/// command) and a trailing ` (lowercase explanation)`.
pub fn strip_explanation(s: &str) -> String {
    let mut t = s.trim().to_string();
    // Dashes are cut wherever they stand: an unbalanced quote in the command must not hide them.
    for sep in [" — ", " – ", " -- "] {
        if let Some(pos) = t.find(sep) {
            t.truncate(pos);
        }
    }
    for sep in [" —", " –"] {
        if t.ends_with(sep) {
            t.truncate(t.len() - sep.len());
        }
    }
    if let Some(pos) = find_top_level(&t, |s, i| {
        s[i..].starts_with(": ") && s[i + 2..].trim_start().starts_with(char::is_alphabetic)
    }) {
        let rest = t[pos + 1..].trim();
        if is_prose(rest) || rest.split_whitespace().count() >= 2 && !looks_like_command(rest) {
            t.truncate(pos);
        }
    }
    let trimmed = t.trim_end();
    if trimmed.ends_with(')')
        && let Some(open) = trimmed.rfind(" (")
    {
        let inner = &trimmed[open + 2..trimmed.len() - 1];
        let explanatory = inner.starts_with(|c: char| c.is_lowercase())
            && inner.contains(' ')
            && !inner.contains(['$', '(', ')', '\'', '"', '|', '=', '{'])
            && !inner.split_whitespace().any(|w| w.starts_with('-'));
        if explanatory {
            t.truncate(open);
        }
    }
    t.trim().to_string()
}

/// Depth of `{ ( [` (and whether a here-string is open) after `text`, outside quotes and
/// comments.
fn open_depth(text: &str) -> (i32, bool) {
    let mut depth = 0;
    let mut here = false;
    for line in text.lines() {
        let t = line.trim();
        if here {
            if t.starts_with("'@") || t.starts_with("\"@") {
                here = false;
            }
            continue;
        }
        if t.ends_with("@'") || t.ends_with("@\"") {
            here = true;
            continue;
        }
        let mut quote: Option<char> = None;
        let mut prev = ' ';
        for c in t.chars() {
            match (quote, c) {
                (Some(q), c) if c == q && prev != '`' => quote = None,
                (Some(_), _) => {}
                (None, '#') if prev.is_whitespace() => break,
                (None, '\'' | '"') => quote = Some(c),
                (None, '{' | '(' | '[') => depth += 1,
                (None, '}' | ')' | ']') => depth -= 1,
                _ => {}
            }
            prev = c;
        }
    }
    (depth, here)
}

/// Whether the command in `lines` goes on to the next line.
fn continues(lines: &[&str], next: Option<&str>) -> bool {
    let last = lines.last().map_or("", |l| l.trim_end());
    if last.ends_with('`')
        || last.ends_with('|')
        || last.ends_with(',')
        || last.ends_with(" -and")
        || last.ends_with(" -or")
    {
        return true;
    }
    let (depth, here) = open_depth(&lines.join("\n"));
    depth > 0 || here || next.is_some_and(|n| n.trim_start().starts_with('|'))
}

/// `PS C:\> Get-Process` → `Get-Process`.
fn strip_prompt(line: &str) -> &str {
    static PROMPT: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"^\s*PS(?: [A-Za-z]:[^>]*)?> ?").expect("valid regex"));
    match PROMPT.find(line) {
        Some(m) => &line[m.end()..],
        None => line,
    }
}

/// One command starting at `lines[at]`, with the lines it continues onto; and where the next
/// line after it is. The command keeps its relative indentation.
pub fn take_command(lines: &[&str], at: usize) -> (String, usize) {
    let mut j = at + 1;
    let mut cur: Vec<&str> = vec![strip_prompt(lines[at])];
    while j < lines.len() && continues(&cur, lines.get(j).copied()) {
        cur.push(lines[j]);
        j += 1;
    }
    (dedent(&cur.join("\n")), j)
}

/// Commands from a code block: one per line, comment and blank lines dropped, a multi-line
/// command (continued line, open brace, here-string) kept whole.
pub fn commands_from_block(text: &str) -> Vec<String> {
    let lines: Vec<&str> = text.lines().map(|l| l.trim_end_matches('\r')).collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let t = lines[i].trim();
        if t.is_empty()
            || t.starts_with('#')
            || t.starts_with("```")
            || t.starts_with("~~~")
            || t.starts_with("//")
            || t.to_lowercase().starts_with("rem ")
        {
            i += 1;
            continue;
        }
        let (cmd, next) = take_command(&lines, i);
        let cmd = cmd.trim_end().to_string();
        if !cmd.trim().is_empty() {
            out.push(cmd);
        }
        i = next;
    }
    out
}

/// Removes the indentation the lines share.
pub fn dedent(s: &str) -> String {
    let indent = s
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.len() - l.trim_start().len())
        .min()
        .unwrap_or(0);
    s.lines()
        .map(|l| l.get(indent..).unwrap_or(l.trim_start()).trim_end())
        .collect::<Vec<_>>()
        .join("\n")
        .trim()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans() {
        let s = code_spans("a `x` b ``y ` z`` `unclosed");
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].content, "x");
        assert_eq!(s[1].content, "y ` z");
        assert_eq!(
            code_spans("`C:\\`")[0].content,
            "C:\\",
            "a backslash does not stop a closer"
        );
        assert!(
            code_spans("\\`x`").is_empty(),
            "an escaped backtick opens nothing"
        );
        // Many unmatched runs of different lengths: no quadratic rescans.
        let hostile: String = (1..2000).map(|n| "`".repeat(n % 50 + 1) + "a").collect();
        let started = std::time::Instant::now();
        let _ = code_spans(&hostile);
        let _ = strip_explanation(&hostile);
        assert!(started.elapsed() < std::time::Duration::from_secs(2));
        assert_eq!(
            leading_span("`Get-Process` — why").as_deref(),
            Some("Get-Process")
        );
        assert_eq!(leading_span("see `x`"), None);
    }

    #[test]
    fn explanations_are_cut_and_commands_kept() {
        for (input, want) in [
            ("Get-Process -Id 4242 — shows it", "Get-Process -Id 4242"),
            ("Get-Process -Id 4242 – shows it", "Get-Process -Id 4242"),
            (
                "Get-Process -Id 4242: shows the process",
                "Get-Process -Id 4242",
            ),
            (
                "Get-ItemProperty HKLM:\\Software\\Run: lists the run keys",
                "Get-ItemProperty HKLM:\\Software\\Run",
            ),
            (
                "Remove-Item C:\\x.exe -Confirm:$false",
                "Remove-Item C:\\x.exe -Confirm:$false",
            ),
            (
                "Get-Process -Id 3312 (confirms the parent)",
                "Get-Process -Id 3312",
            ),
            ("(Get-Item C:\\x).Length", "(Get-Item C:\\x).Length"),
            (
                "Write-Host \"Status: ok now\"",
                "Write-Host \"Status: ok now\"",
            ),
        ] {
            assert_eq!(strip_explanation(input), want, "{input}");
        }
    }

    #[test]
    fn labels() {
        assert_eq!(
            label_prefix("**Purpose:** shows it"),
            Some(("Purpose".into(), "shows it".into()))
        );
        assert_eq!(
            label_prefix("Command: `Get-Process`"),
            Some(("Command".into(), "`Get-Process`".into()))
        );
        assert_eq!(label_prefix("Get-ChildItem C: -Recurse"), None);
        assert_eq!(label_prefix("HKLM:\\Software"), None);
    }

    #[test]
    fn blocks_split_into_commands() {
        let block = "# comment\nGet-Process\nGet-WinEvent -LogName Security |\n    Select-Object -First 5\nGet-ChildItem `\n  -Path C:\\\n$h = @{\n    LogName = 'Security'\n    Id = 4688\n}\nPS C:\\> Get-Service\n";
        assert_eq!(
            commands_from_block(block),
            vec![
                "Get-Process",
                "Get-WinEvent -LogName Security |\n    Select-Object -First 5",
                "Get-ChildItem `\n  -Path C:\\",
                "$h = @{\n    LogName = 'Security'\n    Id = 4688\n}",
                "Get-Service",
            ]
        );
    }

    #[test]
    fn commands_and_prose() {
        assert!(looks_like_command("Get-Process -Id 1"));
        assert!(looks_like_command("netstat -ano"));
        assert!(looks_like_command("reg.exe query HKLM"));
        assert!(!looks_like_command("Follow-up with the user"));
        assert!(is_prose("Isolate the host from the network"));
        assert!(!is_prose("a"));
        assert!(!is_prose("Stop-Process -Id 4242"));
    }
}
