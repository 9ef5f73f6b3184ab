//! Parses the assistant's answer into a [`Triage`]: a summary, the investigation commands and
//! the remediation commands.
//!
//! Models write the same answer in many shapes, so the answer is read as the markdown document it
//! is (`pulldown-cmark`, [`markdown`]) and walked block by block — headings, paragraphs, list
//! items and their children, code blocks, tables — while the text of each block is read as
//! written ([`inline`]), because markdown would eat the `*` of `*.exe` or the `_` of `$_`:
//!
//! - sections are found by their heading in any form ([`sections`]): `### Investigation
//!   Commands`, `**🧯 Remediation Commands**`, `INVESTIGATION COMMANDS:`, `2. Triage Commands`,
//!   `Containment/Eradication Commands (after approval):`; a part that is neither (notes,
//!   considerations, disclaimers, tips) ends the command lists;
//! - the summary is the text under a summary heading (`### Alert Summary`, `**Assessment**`,
//!   `ALERT SUMMARY:`), else what comes before the first command heading, without a chatty
//!   preamble ("Here's my assessment:");
//! - a list item holds one command: its leading code span, its label's command (`**Check:**
//!   `cmd``, `Command: `cmd``), the code block under it (indented or not: a fence after an item
//!   that had no command belongs to it), or its bare text without the explanation after it
//!   (` — why`, `: why`, ` (why)`); purposes, rationales and labels are not commands, and an item
//!   with no command is reported ("item 3 had no command");
//! - a table gives the cell under its *Command* column for every row;
//! - a code block gives one command per line, except where a line continues (backtick, pipe,
//!   open brace or hashtable, here-string); relative indentation is kept.
//!
//! When the answer is (or closes with) the JSON form `{"summary", "investigation", "remediation"}`
//! — structured output, or the fenced block the prompt may ask for — that is read instead
//! ([`structured`]); a JSON block that cannot be read is reported and ignored. The parser never
//! panics.

mod inline;
mod markdown;
mod sections;
mod structured;

use std::ops::Range;
use std::sync::LazyLock;

use regex::Regex;

use self::inline::{
    code_spans, command_label, commands_from_block, explanatory_label, is_prose, label_prefix,
    leading_span, looks_like_command, strip_decoration, strip_explanation, take_command,
    unwrap_bold, without_bold,
};
use self::markdown::Block;
use self::sections::Section;
use crate::domain::Triage;

static REFERENCE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\{reference\([0-9a-zA-Z_-]+\)\}").expect("valid regex"));
/// `**1.** rest`, `**2)** rest`, `**Step 3:** rest`.
static BOLD_NUMBER: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^\*\*(?i:step\s*)?\d{1,3}\s*[.):]?\s*\*\*\s*[.):]?\s*(.*)$").expect("valid regex")
});
/// `**1. Check the process:** rest` → the label in bold, then the rest.
static BOLD_NUMBERED_LABEL: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^\*\*(?i:step\s*)?\d{1,3}\s*[.):\-–—]\s*(.+?)\*\*(.*)$").expect("valid regex")
});
/// `Step 3: rest`.
static STEP: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^(?i:step)\s*\d{1,3}\s*[.):\-–—]\s*(.*)$").expect("valid regex"));
/// Bullets that are not markdown list markers.
static BULLET: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[•◦▪‣●○■►▶➤]\s*(.*)$").expect("valid regex"));
/// `6. rest` inside a paragraph: markdown lets only a list that starts at 1 interrupt a
/// paragraph, so "**Remediation Commands:**" followed by "6. …", "7. …" (numbering carried on
/// from the investigation list) is one paragraph of such lines.
static NUMBERED: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^\d{1,3}[.)]\s+(.*)$").expect("valid regex"));

/// The heading level given to headings written as lines (bold, ALL CAPS, `Label:`) and to
/// numbered list items that name a section: deeper than any `#` heading.
const LINE: u8 = 7;

/// Parses an answer. Missing sections become warnings and empty lists, never errors.
pub fn parse_answer(answer: &str) -> Triage {
    // NUL-free first: the commands are hashed for approval and stored, and must read the same.
    let answer = crate::text::nul_free(answer);
    let text = REFERENCE
        .replace_all(&answer, "")
        .replace("\r\n", "\n")
        .replace('\r', "\n");
    let blocks = markdown::parse(&text);
    let unreadable_json = match structured::read(&text, &blocks) {
        Ok(Some(triage)) => return triage,
        Ok(None) => None,
        Err(why) => Some(why),
    };
    let mut walk = Walk::new(&text);
    walk.blocks(&blocks);
    let mut triage = walk.finish();
    if let Some(why) = unreadable_json {
        triage.warnings.push(format!(
            "the answer's closing JSON block was not used ({why}); its markdown was read instead"
        ));
    }
    triage
}

fn section_name(section: Section) -> &'static str {
    match section {
        Section::Investigation => "Investigation Commands",
        Section::Remediation => "Remediation Commands",
        Section::Summary => "Summary",
        Section::Other => "other",
    }
}

/// What a list item's own text offers.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Own {
    /// The command.
    Command(String),
    /// A command named inside a label ("Inspect `Get-CimInstance` output:"): used only when no
    /// code block follows the item.
    Tentative(String),
    /// A label or a sentence: the command must come from under or after it.
    Label,
    /// An explanation ("Purpose: …"): not an item at all.
    Skip,
}

/// An item whose command may still follow (a code block after the list).
struct Pending {
    no: usize,
    tentative: Option<String>,
}

/// Paragraph text waits here until the paragraph ends, then joins the summary (or, under an
/// unknown heading before any command, the text the summary falls back to).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Target {
    Summary,
    Untitled,
}

struct Walk<'a> {
    src: &'a str,
    section: Section,
    /// Under a heading that names nothing known, before any command section: its paragraphs
    /// become the summary if nothing else does (a title heading over the summary).
    untitled: bool,
    /// The level of the heading that opened the section ([`LINE`] for a line or an item).
    level: u8,
    explicit_summary: bool,
    seen_investigation: bool,
    seen_remediation: bool,
    summary: Vec<String>,
    summary_items: Vec<String>,
    untitled_text: Vec<String>,
    para: Vec<String>,
    para_target: Target,
    investigation: Vec<String>,
    remediation: Vec<String>,
    item_no: usize,
    pending: Option<Pending>,
    item_warnings: Vec<String>,
}

impl<'a> Walk<'a> {
    fn new(src: &'a str) -> Self {
        Self {
            src,
            section: Section::Summary,
            untitled: false,
            level: 0,
            explicit_summary: false,
            seen_investigation: false,
            seen_remediation: false,
            summary: Vec::new(),
            summary_items: Vec::new(),
            untitled_text: Vec::new(),
            para: Vec::new(),
            para_target: Target::Summary,
            investigation: Vec::new(),
            remediation: Vec::new(),
            item_no: 0,
            pending: None,
            item_warnings: Vec::new(),
        }
    }

    fn in_commands(&self) -> bool {
        matches!(self.section, Section::Investigation | Section::Remediation)
    }

    fn in_explicit_summary(&self) -> bool {
        self.section == Section::Summary && self.explicit_summary
    }

    /// Whether an inline label ("**Summary:**", "Note:") opens a part of the answer.
    fn names_a_part(&self, label: &str) -> bool {
        match sections::classify(label) {
            Some(Section::Summary) => !self.in_explicit_summary(),
            Some(Section::Investigation | Section::Remediation) => true,
            Some(Section::Other) => sections::trailing_label(label),
            None => false,
        }
    }

    fn seen_commands(&self) -> bool {
        self.seen_investigation || self.seen_remediation
    }

    /// The lines of a block's source, continuation lines without the indentation of the
    /// container the block sits in (a list item's), so a multi-line command keeps only its own.
    fn lines(&self, r: &Range<usize>) -> Vec<String> {
        let text = self.src.get(r.clone()).unwrap_or_default();
        let line_start = self
            .src
            .get(..r.start)
            .and_then(|before| before.rfind('\n'))
            .map_or(0, |i| i + 1);
        let col = r.start.saturating_sub(line_start);
        text.split('\n')
            .enumerate()
            .map(|(i, l)| {
                if i == 0 {
                    return l.to_string();
                }
                let indent = l.len() - l.trim_start_matches([' ', '\t']).len();
                l[indent.min(col)..].to_string()
            })
            .collect()
    }

    // -----------------------------------------------------------------------------------------
    // Sections

    fn open(&mut self, section: Section, level: u8) {
        self.end_paragraph();
        self.flush_pending();
        match section {
            Section::Summary => {
                // The first summary heading before the commands: what came before it was a
                // preamble ("I've reviewed the alert.").
                if !self.explicit_summary && !self.seen_commands() {
                    self.summary.clear();
                    self.summary_items.clear();
                }
                self.explicit_summary = true;
            }
            Section::Investigation => self.seen_investigation = true,
            Section::Remediation => self.seen_remediation = true,
            Section::Other => {}
        }
        self.section = section;
        self.untitled = false;
        self.level = level;
        self.item_no = 0;
    }

    /// A heading that names no known part: a sub-heading inside a section (a numbered one
    /// labels an item), else the start of an unknown part.
    fn unknown_heading(&mut self, level: u8, numbered: bool, tentative: Option<String>) {
        let deeper = level == LINE || level > self.level;
        match self.section {
            Section::Investigation | Section::Remediation if deeper => {
                if numbered {
                    self.begin_item();
                    self.pending = Some(Pending {
                        no: self.item_no,
                        tentative,
                    });
                }
            }
            Section::Summary if self.explicit_summary && deeper => {}
            Section::Other if self.untitled || level == LINE => {}
            _ => {
                self.end_paragraph();
                self.flush_pending();
                self.section = Section::Other;
                self.level = level;
                self.item_no = 0;
                self.untitled = !self.seen_commands();
            }
        }
    }

    // -----------------------------------------------------------------------------------------
    // Items and commands

    fn begin_item(&mut self) {
        self.flush_pending();
        self.item_no += 1;
    }

    fn flush_pending(&mut self) {
        if let Some(p) = self.pending.take() {
            match p.tentative {
                Some(cmd) => self.push(vec![cmd]),
                None => self.item_warnings.push(format!(
                    "the \"{}\" section: item {} had no command",
                    section_name(self.section),
                    p.no
                )),
            }
        }
    }

    /// Adds commands to the current section; they settle a pending item.
    fn push(&mut self, cmds: Vec<String>) {
        self.pending = None;
        let list = match self.section {
            Section::Investigation => &mut self.investigation,
            Section::Remediation => &mut self.remediation,
            _ => return,
        };
        list.extend(
            cmds.into_iter()
                .map(|c| c.trim().to_string())
                .filter(|c| !c.is_empty()),
        );
    }

    // -----------------------------------------------------------------------------------------
    // Blocks

    fn blocks(&mut self, blocks: &[Block]) {
        for b in blocks {
            self.block(b);
        }
    }

    fn block(&mut self, b: &Block) {
        match b {
            Block::Heading {
                level,
                text,
                setext,
                range,
            } => match sections::classify(text) {
                Some(section) => self.open(section, *level),
                None if *setext => {
                    // "text\n---": CommonMark makes a heading of it; models mean a paragraph
                    // followed by a rule.
                    let mut lines = self.lines(range);
                    while lines.last().is_some_and(|l| l.trim().is_empty()) {
                        lines.pop();
                    }
                    lines.pop(); // the underline
                    self.paragraph(&lines);
                }
                None => {
                    let raw = self.src.get(range.clone()).unwrap_or_default();
                    let tentative = code_spans(raw)
                        .into_iter()
                        .map(|s| s.content.trim().to_string())
                        .find(|c| looks_like_command(c));
                    self.unknown_heading(*level, sections::numbered(text), tentative);
                }
            },
            Block::Para(r) => {
                let lines = self.lines(r);
                self.paragraph(&lines);
            }
            Block::List(items) => {
                for item in items {
                    self.item(item);
                }
            }
            Block::Code { info, text } => {
                if self.in_commands() && shell_code(info) {
                    let cmds = commands_from_block(text);
                    if !cmds.is_empty() {
                        self.push(cmds);
                    }
                }
            }
            Block::Table { head, rows } => self.table(head, rows),
            Block::Quote | Block::Rule | Block::Other => {}
        }
    }

    fn end_paragraph(&mut self) {
        if self.para.is_empty() {
            return;
        }
        let text = self.para.join(" ");
        self.para.clear();
        match self.para_target {
            Target::Summary => self.summary.push(text),
            Target::Untitled => self.untitled_text.push(text),
        }
    }

    fn text_line(&mut self, target: Target, line: &str) {
        let clean = without_bold(line).trim().to_string();
        if clean.is_empty() {
            return;
        }
        if self.para_target != target {
            self.end_paragraph();
            self.para_target = target;
        }
        self.para.push(clean);
    }

    fn paragraph(&mut self, lines: &[String]) {
        let mut i = 0;
        while i < lines.len() {
            let t = lines[i].trim();
            if t.is_empty() {
                i += 1;
                continue;
            }
            if let Some((label, numbered)) = heading_line(t) {
                match sections::classify(&label) {
                    Some(section) => {
                        self.open(section, LINE);
                        i += 1;
                        continue;
                    }
                    None if !self.in_commands() => {
                        self.unknown_heading(LINE, numbered, None);
                        i += 1;
                        continue;
                    }
                    // A label inside a command section: an item when numbered, else a group.
                    None if !numbered => {
                        i += 1;
                        continue;
                    }
                    None => {}
                }
            }
            if let Some((label, rest)) = label_prefix(&strip_wrapper_number(t)) {
                let in_summary = self.in_explicit_summary();
                match sections::classify(&label) {
                    // "**What happened:** …" inside a summary stays as written.
                    Some(Section::Summary) if in_summary => {}
                    Some(Section::Summary) => {
                        self.open(Section::Summary, LINE);
                        self.text_line(Target::Summary, &rest);
                        i += 1;
                        continue;
                    }
                    Some(section @ (Section::Investigation | Section::Remediation)) => {
                        self.open(section, LINE);
                        if let Some(cmd) = leading_span(&rest) {
                            self.push(vec![cmd]);
                        }
                        i += 1;
                        continue;
                    }
                    Some(Section::Other) if sections::trailing_label(&label) => {
                        self.open(Section::Other, LINE);
                        i += 1;
                        continue;
                    }
                    _ => {}
                }
            }
            i = match self.section {
                Section::Summary => {
                    self.text_line(Target::Summary, t);
                    i + 1
                }
                Section::Other if self.untitled => {
                    self.text_line(Target::Untitled, t);
                    i + 1
                }
                Section::Other => i + 1,
                Section::Investigation | Section::Remediation => self.command_lines(lines, i),
            };
        }
        self.end_paragraph();
    }

    /// Lines of a paragraph inside a command section, from `lines[i]`: a pseudo item (`**1.**`,
    /// `•`, `Step 2:`), a line that starts with a code span or a command label, a bare command
    /// (with the lines it continues onto), or prose. Returns the next line to read.
    fn command_lines(&mut self, lines: &[String], i: usize) -> usize {
        let t = lines[i].trim();
        if let Some(first) = pseudo_item(t) {
            let mut own = vec![first];
            let mut j = i + 1;
            while j < lines.len()
                && pseudo_item(lines[j].trim()).is_none()
                && !known_heading_line(&lines[j])
            {
                own.push(lines[j].clone());
                j += 1;
            }
            self.command_item(&own, &[]);
            return j;
        }
        let t = strip_decoration(t);
        if let Some(cmd) = leading_span(t) {
            self.push(vec![cmd]);
            return i + 1;
        }
        if let Some((label, rest)) = label_prefix(t) {
            if explanatory_label(&label) {
                return i + 1;
            }
            if let Some(cmd) = leading_span(&rest) {
                self.push(vec![cmd]);
            } else if command_label(&label) && !rest.trim().is_empty() {
                self.push(vec![strip_explanation(&rest)]);
            }
            return i + 1;
        }
        if looks_like_command(t) {
            let (cmd, next) = bare_command(lines, i);
            self.push(vec![cmd]);
            return next;
        }
        i + 1
    }

    fn item(&mut self, blocks: &[Block]) {
        let (own, children) = match blocks.first() {
            Some(Block::Para(r)) => (self.lines(r), &blocks[1..]),
            _ => (Vec::new(), blocks),
        };
        // A line continuing the item's paragraph lazily can be the next heading:
        // "1. Get-Process\nREMEDIATION COMMANDS\n1. Stop-Process".
        if let Some(k) = own.iter().skip(1).position(|l| known_heading_line(l)) {
            let k = k + 1;
            self.item_text(&own[..k], &[]);
            self.paragraph(&own[k..]);
            self.blocks(children);
            return;
        }
        self.item_text(&own, children);
    }

    fn item_text(&mut self, own: &[String], children: &[Block]) {
        // "2. Investigation Commands:" — a numbered part of the answer, its list nested in it.
        if let Some(first) = own.first()
            && let Some((label, _)) = heading_line(first.trim())
            && let Some(section) = sections::classify(&label)
        {
            self.open(section, LINE);
            self.paragraph(&own[1..]);
            self.blocks(children);
            return;
        }
        // "1. **Summary:** The host …": a labelled part of the answer, read as a paragraph.
        if let Some(first) = own.first()
            && let Some((label, _)) = label_prefix(&strip_wrapper_number(first.trim()))
            && self.names_a_part(&label)
        {
            self.paragraph(own);
            self.blocks(children);
            return;
        }
        match self.section {
            Section::Summary => {
                let text = without_bold(&own.join(" ")).trim().to_string();
                if !text.is_empty() {
                    self.summary_items.push(text);
                }
            }
            Section::Investigation | Section::Remediation => self.command_item(own, children),
            Section::Other => {}
        }
    }

    /// One item of a command list: its command from its text, the code block under it, or
    /// the sub-items that name it; else it waits for a code block after the list.
    fn command_item(&mut self, own: &[String], children: &[Block]) {
        let own_says = analyse_own(own);
        if own_says == Own::Skip {
            return;
        }
        self.begin_item();
        let fenced: Vec<String> = children
            .iter()
            .filter_map(|b| match b {
                Block::Code { info, text } if shell_code(info) => Some(commands_from_block(text)),
                _ => None,
            })
            .flatten()
            .collect();
        match own_says {
            Own::Command(cmd) => self.push(vec![cmd]),
            _ if !fenced.is_empty() => self.push(fenced),
            other => {
                let nested = self.nested_commands(children);
                if !nested.is_empty() {
                    self.push(nested);
                } else {
                    self.pending = Some(Pending {
                        no: self.item_no,
                        tentative: match other {
                            Own::Tentative(c) => Some(c),
                            _ => None,
                        },
                    });
                }
            }
        }
    }

    /// Commands under an item that named none itself: sub-items (`* Command: `…``, `- `cmd``;
    /// never `* Purpose: …`), continuation paragraphs, tables and code blocks further down.
    fn nested_commands(&self, children: &[Block]) -> Vec<String> {
        let mut out = Vec::new();
        for b in children {
            match b {
                Block::List(items) => {
                    for item in items {
                        let (own, grand) = match item.first() {
                            Some(Block::Para(r)) => (self.lines(r), &item[1..]),
                            _ => (Vec::new(), &item[..]),
                        };
                        match analyse_own(&own) {
                            Own::Command(c) | Own::Tentative(c) => out.push(c),
                            Own::Skip => {}
                            Own::Label => {
                                for g in grand {
                                    if let Block::Code { info, text } = g
                                        && shell_code(info)
                                    {
                                        out.extend(commands_from_block(text));
                                    }
                                }
                                out.extend(self.nested_commands(grand));
                            }
                        }
                    }
                }
                Block::Para(r) => {
                    let lines = self.lines(r);
                    let mut i = 0;
                    while i < lines.len() {
                        let t = strip_decoration(lines[i].trim());
                        if let Some(c) = leading_span(t) {
                            out.push(c);
                        } else if let Some((label, rest)) = label_prefix(t) {
                            if !explanatory_label(&label) {
                                if let Some(c) = leading_span(&rest) {
                                    out.push(c);
                                } else if command_label(&label) && !rest.trim().is_empty() {
                                    out.push(strip_explanation(&rest));
                                }
                            }
                        } else if looks_like_command(t) {
                            let (cmd, next) = bare_command(&lines, i);
                            out.push(cmd);
                            i = next;
                            continue;
                        }
                        i += 1;
                    }
                }
                Block::Table { head, rows } => {
                    out.extend(self.table_commands(head, rows).into_iter().flatten());
                }
                _ => {}
            }
        }
        out
    }

    /// A table in a command section: one item per row, its command the cell under the
    /// *Command* column (else the column whose cells are code).
    fn table(&mut self, head: &[Range<usize>], rows: &[Vec<Range<usize>>]) {
        if !self.in_commands() {
            return;
        }
        let cmds = self.table_commands(head, rows);
        if cmds.is_empty() {
            return;
        }
        for cmd in cmds {
            self.begin_item();
            match cmd {
                Some(c) => self.push(vec![c]),
                None => self.item_warnings.push(format!(
                    "the \"{}\" section: item {} had no command",
                    section_name(self.section),
                    self.item_no
                )),
            }
        }
    }

    fn table_commands(
        &self,
        head: &[Range<usize>],
        rows: &[Vec<Range<usize>>],
    ) -> Vec<Option<String>> {
        let cell = |r: &Range<usize>| {
            self.src
                .get(r.clone())
                .unwrap_or_default()
                .trim()
                .trim_matches('|')
                .trim()
                .replace("\\|", "|")
        };
        let heads: Vec<String> = head.iter().map(|r| cell(r).to_lowercase()).collect();
        let by_name = heads.iter().position(|h| {
            ["command", "powershell", "cmd", "query", "script", "syntax"]
                .iter()
                .any(|k| h.contains(k))
        });
        let width = rows.iter().map(Vec::len).max().unwrap_or(0);
        let by_code = || {
            (0..width).find(|&c| {
                rows.iter().any(|r| {
                    r.get(c)
                        .is_some_and(|x| leading_span(&unwrap_bold(&cell(x)).0).is_some())
                })
            })
        };
        let Some(col) = by_name.or_else(by_code) else {
            return Vec::new();
        };
        rows.iter()
            .map(|r| r.get(col).and_then(|x| command_in_cell(&cell(x))))
            .collect()
    }

    fn finish(mut self) -> Triage {
        self.end_paragraph();
        self.flush_pending();
        let mut warnings = Vec::new();
        if !self.seen_investigation {
            warnings.push("the answer has no \"Investigation Commands\" section".to_string());
        } else if self.investigation.is_empty() {
            warnings.push("the \"Investigation Commands\" section lists no commands".to_string());
        }
        if !self.seen_remediation {
            warnings.push("the answer has no \"Remediation Commands\" section".to_string());
        } else if self.remediation.is_empty() {
            warnings.push("the \"Remediation Commands\" section lists no commands".to_string());
        }
        warnings.append(&mut self.item_warnings);
        let mut paragraphs = std::mem::take(&mut self.summary);
        if !self.explicit_summary {
            drop_preamble(&mut paragraphs);
        }
        let mut summary = paragraphs.join(" ");
        if summary.is_empty() {
            summary = self.summary_items.join(" ");
        }
        if summary.is_empty() {
            drop_preamble(&mut self.untitled_text);
            summary = self.untitled_text.join(" ");
        }
        if summary.is_empty() {
            warnings.push("the answer has no summary".to_string());
        }
        Triage {
            summary,
            investigation: self.investigation,
            remediation: self.remediation,
            warnings,
        }
    }
}

/// Whether a code block holds commands (not output, JSON or other data).
fn shell_code(info: &str) -> bool {
    let lang = info
        .split(|c: char| c.is_whitespace() || c == ',' || c == '{')
        .next()
        .unwrap_or_default()
        .to_lowercase();
    ![
        "json",
        "jsonc",
        "text",
        "txt",
        "output",
        "plaintext",
        "plain",
        "log",
        "yaml",
        "yml",
        "xml",
        "csv",
        "markdown",
        "md",
        "diff",
        "html",
        "ini",
        "toml",
    ]
    .contains(&lang.as_str())
}

/// A line that is a heading by its form: bold all over, ALL CAPS, a short label ending in a
/// colon, or the bare name of a section ("Next steps"). Returns the label and whether it is
/// numbered.
fn heading_line(line: &str) -> Option<(String, bool)> {
    let t = strip_decoration(line.trim());
    if t.is_empty() || t.starts_with('`') {
        return None;
    }
    let (inner, bold) = unwrap_bold(t);
    let label = inner.trim();
    let numbered = sections::numbered(label);
    if bold {
        return Some((label.to_string(), numbered));
    }
    if !code_spans(t).is_empty() || looks_like_command(label) {
        return None;
    }
    let words = label.split_whitespace().count();
    let letters: Vec<char> = label.chars().filter(|c| c.is_alphabetic()).collect();
    if letters.len() >= 3 && letters.iter().all(|c| !c.is_lowercase()) && words <= 8 {
        return Some((label.to_string(), numbered));
    }
    if label.ends_with(':') && words <= 8 && !label.contains(['$', '|', '{', '=', '\\']) {
        return Some((label.to_string(), numbered));
    }
    let named = match sections::classify(label) {
        Some(Section::Other) => words <= 3,
        Some(_) => words <= 5,
        None => false,
    };
    named.then(|| (label.to_string(), numbered))
}

/// A heading line that names a known part of the answer.
fn known_heading_line(line: &str) -> bool {
    heading_line(line.trim()).is_some_and(|(label, _)| sections::classify(&label).is_some())
}

/// `**1. Check the process:** rest` → `**Check the process:** rest` (for label reading).
fn strip_wrapper_number(line: &str) -> String {
    match BOLD_NUMBERED_LABEL.captures(line) {
        Some(c) => format!(
            "**{}**{}",
            c.get(1).map_or("", |m| m.as_str()),
            c.get(2).map_or("", |m| m.as_str())
        ),
        None => line.to_string(),
    }
}

/// A line that stands for a list item without being one in markdown: `**1.** rest`,
/// `**1. Label**`, `Step 2: rest`, `• rest`. Returns the item's text.
fn pseudo_item(line: &str) -> Option<String> {
    let t = line.trim();
    if let Some(c) = BOLD_NUMBER.captures(t) {
        return Some(c.get(1).map_or("", |m| m.as_str()).to_string());
    }
    if BOLD_NUMBERED_LABEL.is_match(t) {
        return Some(strip_wrapper_number(t));
    }
    for re in [&*STEP, &*BULLET, &*NUMBERED] {
        if let Some(c) = re.captures(t) {
            return Some(c.get(1).map_or("", |m| m.as_str()).to_string());
        }
    }
    None
}

/// A bare command starting at `lines[i]` with the lines it continues onto, without a trailing
/// explanation when it is one line.
fn bare_command(lines: &[String], i: usize) -> (String, usize) {
    let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
    let (cmd, next) = take_command(&refs, i);
    let cmd = if cmd.contains('\n') {
        cmd
    } else {
        strip_explanation(&cmd)
    };
    (cmd, next)
}

/// What an item's own text offers (see [`Own`]).
fn analyse_own(own: &[String]) -> Own {
    let Some(first) = own.iter().map(|l| l.trim()).find(|l| !l.is_empty()) else {
        return Own::Label;
    };
    let first = strip_decoration(first);
    let (text, bold) = unwrap_bold(first);
    // The command on a later line: "List the processes:\n`Get-Process`".
    let following = || -> Option<String> {
        let rest = &own[1..];
        for (i, line) in rest.iter().enumerate() {
            let t = strip_decoration(line.trim());
            if let Some(c) = leading_span(t) {
                return Some(c);
            }
            if let Some((label, value)) = label_prefix(t) {
                if explanatory_label(&label) {
                    continue;
                }
                if let Some(c) = leading_span(&value) {
                    return Some(c);
                }
                if command_label(&label) && !value.trim().is_empty() {
                    return Some(strip_explanation(&value));
                }
                continue;
            }
            if looks_like_command(t) {
                return Some(bare_command(rest, i).0);
            }
        }
        None
    };
    if let Some(cmd) = leading_span(&text) {
        return Own::Command(cmd);
    }
    if let Some((label, rest)) = label_prefix(&text) {
        if explanatory_label(&label) {
            return Own::Skip;
        }
        if let Some(cmd) = leading_span(&rest) {
            return Own::Command(cmd);
        }
        if command_label(&label) && !rest.trim().is_empty() {
            return Own::Command(strip_explanation(&rest));
        }
        if !rest.trim().is_empty() && looks_like_command(&rest) {
            return Own::Command(strip_explanation(&rest));
        }
    }
    let spans = code_spans(&text);
    if let Some(span) = spans.iter().find(|s| looks_like_command(&s.content)) {
        return match following() {
            Some(cmd) => Own::Command(cmd),
            None => Own::Tentative(span.content.trim().to_string()),
        };
    }
    let label_like = bold || text.trim_end().ends_with(':');
    if !spans.is_empty() || label_like && !looks_like_command(&text) {
        return following().map_or(Own::Label, Own::Command);
    }
    let bare = strip_explanation(&text);
    if bare.is_empty() || is_prose(&bare) {
        return following().map_or(Own::Label, Own::Command);
    }
    if bold {
        return Own::Command(bare);
    }
    // A bare command, possibly continued on the item's next lines.
    let mut lines = own.to_vec();
    lines[0] = text;
    Own::Command(bare_command(&lines, 0).0)
}

/// The command in a table cell: its leading code span, or its bare text unless that is prose
/// or a placeholder.
fn command_in_cell(cell: &str) -> Option<String> {
    let (text, _) = unwrap_bold(cell);
    if let Some(c) = leading_span(&text) {
        return Some(c);
    }
    let bare = strip_explanation(&text);
    let placeholder = ["", "-", "—", "–", "n/a", "none"].contains(&bare.to_lowercase().as_str());
    (!placeholder && !is_prose(&bare)).then_some(bare)
}

/// A chatty first paragraph ("Sure! Here's my assessment of the alert:") is not the summary,
/// when something follows it.
fn drop_preamble(paragraphs: &mut Vec<String>) {
    const CHATTY: &[&str] = &[
        "sure",
        "certainly",
        "okay",
        "ok,",
        "ok.",
        "of course",
        "absolutely",
        "here's",
        "here is",
        "here are",
        "below is",
        "below are",
        "i've ",
        "i have ",
        "i'll ",
        "i will ",
        "let me",
        "thanks",
        "thank you",
        "great",
        "alright",
        "understood",
        "happy to",
        "as requested",
    ];
    while paragraphs.len() > 1 {
        let p = paragraphs[0].to_lowercase();
        let short = p.split_whitespace().count() <= 30;
        let chatty = p.trim_end().ends_with(':')
            || CHATTY.iter().any(|c| {
                p.trim_start_matches(|c: char| !c.is_alphanumeric())
                    .starts_with(c)
            });
        if !(short && chatty) {
            break;
        }
        paragraphs.remove(0);
    }
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

    #[test]
    fn precise_warnings() {
        let t = parse_answer(
            "I've reviewed the alert.\n\n### Investigation Commands\n1. `Get-Process`\n2. Check with the user whether they ran it\n3. **Look at the Run key:**\n```powershell\nGet-ItemProperty HKLM:\\Software\\Microsoft\\Windows\\CurrentVersion\\Run\n```\n",
        );
        assert_eq!(
            t.investigation,
            vec![
                "Get-Process",
                "Get-ItemProperty HKLM:\\Software\\Microsoft\\Windows\\CurrentVersion\\Run"
            ]
        );
        assert_eq!(
            t.warnings,
            vec![
                "the answer has no \"Remediation Commands\" section",
                "the \"Investigation Commands\" section: item 2 had no command",
            ]
        );
        assert_eq!(t.summary, "I've reviewed the alert.");
        let t = parse_answer("## Investigation Commands\n- `Get-Process`\n");
        assert!(
            t.warnings
                .contains(&"the answer has no summary".to_string())
        );
    }

    #[test]
    fn a_closing_json_block_is_preferred_and_a_broken_one_ignored() {
        let md = "Summary text.\n\n**Investigation Commands:**\n1. `Get-Process`\n\n**Remediation Commands:**\n1. `Stop-Process -Id 1`\n";
        let good = format!(
            "{md}\n```json\n{{\"summary\": \"From JSON.\", \"investigation\": [\"Get-Service\"], \"remediation\": [\"Stop-Process -Id 2\"]}}\n```\n"
        );
        let t = parse_answer(&good);
        assert_eq!(t.summary, "From JSON.");
        assert_eq!(t.investigation, vec!["Get-Service"]);
        assert_eq!(t.remediation, vec!["Stop-Process -Id 2"]);
        let broken = format!("{md}\n```json\n{{\"summary\": \"x\", \"investigation\": [\n```\n");
        let t = parse_answer(&broken);
        assert_eq!(t.summary, "Summary text.");
        assert_eq!(t.investigation, vec!["Get-Process"]);
        assert_eq!(t.remediation, vec!["Stop-Process -Id 1"]);
        assert_eq!(t.warnings.len(), 1, "{:?}", t.warnings);
        // Structured output: the whole answer is the JSON object.
        let t = parse_answer(
            r#"{"summary":"S","investigation":["Get-Process"],"remediation":["Stop-Process -Id 3"]}"#,
        );
        assert_eq!(t.remediation, vec!["Stop-Process -Id 3"]);
        assert!(t.warnings.is_empty());
    }
}
