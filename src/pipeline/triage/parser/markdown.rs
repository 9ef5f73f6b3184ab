//! The answer's document structure, from `pulldown-cmark`: headings, paragraphs, lists and their
//! items, code blocks, tables — each kept as a range of the source text (or, for code, its text),
//! because the text of a command must be read as written: markdown would eat the `*` of `*.exe`,
//! the `_` of `$_` and the `\` before punctuation in a path.
//!
//! Block quotes, HTML and footnotes are kept only as markers: nothing inside them is ever a
//! command or a summary.

use std::ops::Range;

use pulldown_cmark::{CodeBlockKind, Event, HeadingLevel, Options, Parser, Tag, TagEnd};

#[derive(Debug, Clone)]
pub enum Block {
    Heading {
        level: u8,
        /// The heading's text without markup (code spans included).
        text: String,
        /// Underlined with `---` / `===` rather than opened with `#`.
        setext: bool,
        range: Range<usize>,
    },
    /// A paragraph, or the text of a tight list item.
    Para(Range<usize>),
    /// The items of a list; each item is the blocks it holds.
    List(Vec<Vec<Block>>),
    Code {
        info: String,
        text: String,
    },
    Table {
        head: Vec<Range<usize>>,
        rows: Vec<Vec<Range<usize>>>,
    },
    Quote,
    Rule,
    Other,
}

/// The top-level blocks of `src`.
pub fn parse(src: &str) -> Vec<Block> {
    let mut events = Parser::new_ext(src, Options::ENABLE_TABLES).into_offset_iter();
    blocks(&mut events, src)
}

/// Every code block of the document, nested ones included, in order.
pub fn code_blocks(blocks: &[Block]) -> Vec<(&str, &str)> {
    let mut out = Vec::new();
    for b in blocks {
        match b {
            Block::Code { info, text } => out.push((info.as_str(), text.as_str())),
            Block::List(items) => {
                for item in items {
                    out.extend(code_blocks(item));
                }
            }
            _ => {}
        }
    }
    out
}

fn level_number(level: HeadingLevel) -> u8 {
    match level {
        HeadingLevel::H1 => 1,
        HeadingLevel::H2 => 2,
        HeadingLevel::H3 => 3,
        HeadingLevel::H4 => 4,
        HeadingLevel::H5 => 5,
        HeadingLevel::H6 => 6,
    }
}

fn widen(span: &mut Option<Range<usize>>, r: &Range<usize>) {
    *span = Some(match span.take() {
        Some(s) => s.start.min(r.start)..s.end.max(r.end),
        None => r.clone(),
    });
}

/// Reads blocks until the end of the container the iterator is in (or of the document).
fn blocks<'a, I>(it: &mut I, src: &str) -> Vec<Block>
where
    I: Iterator<Item = (Event<'a>, Range<usize>)>,
{
    let mut out = Vec::new();
    // Inline content directly in a tight list item: one implicit paragraph.
    let mut inline: Option<Range<usize>> = None;
    fn flush(out: &mut Vec<Block>, inline: &mut Option<Range<usize>>) {
        if let Some(r) = inline.take() {
            out.push(Block::Para(r));
        }
    }
    while let Some((event, range)) = it.next() {
        match event {
            Event::End(_) => break,
            Event::Rule => {
                flush(&mut out, &mut inline);
                out.push(Block::Rule);
            }
            Event::Start(tag) => match tag {
                Tag::Emphasis
                | Tag::Strong
                | Tag::Strikethrough
                | Tag::Superscript
                | Tag::Subscript
                | Tag::Link { .. }
                | Tag::Image { .. } => {
                    widen(&mut inline, &range);
                    skip(it);
                }
                Tag::Paragraph => {
                    flush(&mut out, &mut inline);
                    skip(it);
                    out.push(Block::Para(range));
                }
                Tag::Heading { level, .. } => {
                    flush(&mut out, &mut inline);
                    let text = text_of(it);
                    let setext = !src
                        .get(range.clone())
                        .unwrap_or_default()
                        .trim_start()
                        .starts_with('#');
                    out.push(Block::Heading {
                        level: level_number(level),
                        text,
                        setext,
                        range,
                    });
                }
                Tag::CodeBlock(kind) => {
                    flush(&mut out, &mut inline);
                    let info = match kind {
                        CodeBlockKind::Fenced(info) => info.trim().to_string(),
                        CodeBlockKind::Indented => String::new(),
                    };
                    let text = text_of(it);
                    out.push(Block::Code { info, text });
                }
                Tag::List(_) => {
                    flush(&mut out, &mut inline);
                    out.push(Block::List(items(it, src)));
                }
                Tag::Item => {
                    flush(&mut out, &mut inline);
                    out.push(Block::List(vec![blocks(it, src)]));
                }
                Tag::Table(_) => {
                    flush(&mut out, &mut inline);
                    out.push(table(it));
                }
                Tag::BlockQuote(_) => {
                    flush(&mut out, &mut inline);
                    skip(it);
                    out.push(Block::Quote);
                }
                _ => {
                    flush(&mut out, &mut inline);
                    skip(it);
                    out.push(Block::Other);
                }
            },
            _ => widen(&mut inline, &range),
        }
    }
    flush(&mut out, &mut inline);
    out
}

fn items<'a, I>(it: &mut I, src: &str) -> Vec<Vec<Block>>
where
    I: Iterator<Item = (Event<'a>, Range<usize>)>,
{
    let mut items = Vec::new();
    while let Some((event, _)) = it.next() {
        match event {
            Event::Start(Tag::Item) => items.push(blocks(it, src)),
            Event::Start(_) => skip(it),
            Event::End(_) => break,
            _ => {}
        }
    }
    items
}

fn table<'a, I>(it: &mut I) -> Block
where
    I: Iterator<Item = (Event<'a>, Range<usize>)>,
{
    let mut head = Vec::new();
    let mut rows = Vec::new();
    let mut row: Vec<Range<usize>> = Vec::new();
    while let Some((event, range)) = it.next() {
        match event {
            Event::Start(Tag::TableCell) => {
                row.push(range);
                skip(it);
            }
            Event::Start(Tag::TableHead | Tag::TableRow) => row.clear(),
            Event::End(TagEnd::TableHead) => head = std::mem::take(&mut row),
            Event::End(TagEnd::TableRow) => rows.push(std::mem::take(&mut row)),
            Event::Start(_) => skip(it),
            Event::End(_) => break,
            _ => {}
        }
    }
    Block::Table { head, rows }
}

/// Consumes events up to the end of the element just started.
fn skip<'a, I>(it: &mut I)
where
    I: Iterator<Item = (Event<'a>, Range<usize>)>,
{
    let mut depth = 1usize;
    for (event, _) in it.by_ref() {
        match event {
            Event::Start(_) => depth += 1,
            Event::End(_) => {
                depth -= 1;
                if depth == 0 {
                    return;
                }
            }
            _ => {}
        }
    }
}

/// Consumes the element just started and returns its text (code included, markup dropped).
fn text_of<'a, I>(it: &mut I) -> String
where
    I: Iterator<Item = (Event<'a>, Range<usize>)>,
{
    let mut depth = 1usize;
    let mut text = String::new();
    for (event, _) in it.by_ref() {
        match event {
            Event::Start(_) => depth += 1,
            Event::End(_) => {
                depth -= 1;
                if depth == 0 {
                    break;
                }
            }
            Event::Text(t) | Event::Code(t) => text.push_str(&t),
            Event::SoftBreak | Event::HardBreak => text.push(' '),
            _ => {}
        }
    }
    text
}
