//! The gate's reader of PowerShell and cmd command lines: text becomes statements (split on `;`,
//! newlines, `&&`, `||` and cmd's `&`), each a pipeline of stages (split on `|`), each stage a
//! list of elements — words with their quoting and escapes resolved, variables, splats,
//! parameters, script blocks, sub-expressions, hashtables, type literals, member calls and
//! redirections — with the nested scripts inside them parsed the same way.
//!
//! This is not PowerShell's grammar, only as much of it as the gate needs to see what would run.
//! It never fails: whatever it cannot place stays visible as words or nested scripts, so a
//! misread construct can only make the verdict more cautious. Nesting deeper than
//! [`MAX_DEPTH`] is not read at all and marks the script [`Script::too_deep`], which the gate
//! blocks.

/// How deep blocks, groups and strings with sub-expressions may nest before the reader gives up.
pub const MAX_DEPTH: usize = 40;

/// A sequence of statements: the whole command, or the inside of a block, group or string.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Script {
    pub statements: Vec<Statement>,
    /// Set on the outermost script when some part nested deeper than [`MAX_DEPTH`].
    pub too_deep: bool,
}

/// One statement: a pipeline of stages, with the source text it came from (for reasons).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Statement {
    pub text: String,
    pub stages: Vec<Stage>,
}

/// One pipeline stage: a command with its arguments, or an expression.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Stage {
    pub elems: Vec<Elem>,
}

/// How a word was written: quoted words are data to PowerShell, barewords may be commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quote {
    None,
    Single,
    Double,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Word {
    /// The text with quotes removed and escapes resolved.
    pub text: String,
    pub quote: Quote,
    /// `$( … )` sub-expressions inside a double-quoted string: they run when the string is built.
    pub subs: Vec<Script>,
}

/// A `.Name`, `::Name` or `[index]` after a value, with the arguments when it is a call.
#[derive(Debug, Clone, PartialEq)]
pub enum Member {
    Access {
        /// Lowercased.
        name: String,
        is_static: bool,
        args: Option<Script>,
    },
    Index(Script),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Elem {
    Word(Word),
    /// `$name`, `${name}`, `$env:NAME`: the name lowercased, without `$`.
    Var(String),
    /// `@name`: a hashtable or array spread into parameters.
    Splat(String),
    /// `-Name` (lowercased, without the dash), with the value of the `-Name:value` form.
    Param {
        name: String,
        attached: Option<Box<Elem>>,
    },
    /// `{ … }`
    Block(Script),
    /// `( … )`, `$( … )`, `@( … )`
    Group(Script),
    /// `@{ key = value; … }`: keys lowercased.
    Hash(Vec<(String, Script)>),
    /// `[Type]`, lowercased without the brackets.
    Type(String),
    /// A value followed by member accesses, calls or indexes.
    Chain(Box<Elem>, Vec<Member>),
    /// `=`, `,`, `!`, `&` (call), `.` (dot-source), `+=` …
    Op(String),
    /// `>`, `>>`, `2>`, `2>&1`, `<`: the target, if any, is the next element.
    Redirect(String),
}

impl Elem {
    /// The literal text of a word (unquoted or quoted), else `None`.
    pub fn word(&self) -> Option<&str> {
        match self {
            Elem::Word(w) => Some(&w.text),
            _ => None,
        }
    }

    /// Every script nested in this element that PowerShell would run as code.
    pub fn nested(&self) -> Vec<&Script> {
        let mut out = Vec::new();
        match self {
            Elem::Word(w) => out.extend(w.subs.iter()),
            Elem::Param {
                attached: Some(a), ..
            } => out.extend(a.nested()),
            Elem::Block(s) | Elem::Group(s) => out.push(s),
            Elem::Hash(pairs) => out.extend(pairs.iter().map(|(_, s)| s)),
            Elem::Chain(base, members) => {
                out.extend(base.nested());
                for m in members {
                    match m {
                        Member::Access { args: Some(a), .. } => out.push(a),
                        Member::Index(s) => out.push(s),
                        Member::Access { args: None, .. } => {}
                    }
                }
            }
            _ => {}
        }
        out
    }

    /// Every word inside this element, at any depth (for matching names conservatively).
    pub fn deep_words(&self, out: &mut Vec<String>) {
        match self {
            Elem::Word(w) => {
                out.push(w.text.clone());
                w.subs.iter().for_each(|s| s.deep_words(out));
            }
            Elem::Var(v) | Elem::Splat(v) => out.push(format!("${v}")),
            Elem::Param { name, attached } => {
                out.push(format!("-{name}"));
                if let Some(a) = attached {
                    a.deep_words(out);
                }
            }
            Elem::Block(s) | Elem::Group(s) => s.deep_words(out),
            Elem::Hash(pairs) => {
                for (k, s) in pairs {
                    out.push(k.clone());
                    s.deep_words(out);
                }
            }
            Elem::Type(t) => out.push(t.clone()),
            Elem::Chain(base, members) => {
                base.deep_words(out);
                for m in members {
                    match m {
                        Member::Access { name, args, .. } => {
                            out.push(name.clone());
                            if let Some(a) = args {
                                a.deep_words(out);
                            }
                        }
                        Member::Index(s) => s.deep_words(out),
                    }
                }
            }
            Elem::Op(_) | Elem::Redirect(_) => {}
        }
    }
}

impl Script {
    pub fn deep_words(&self, out: &mut Vec<String>) {
        for st in &self.statements {
            for stage in &st.stages {
                for e in &stage.elems {
                    e.deep_words(out);
                }
            }
        }
    }

    /// The text of a script that is a single literal (`('a'+'b')` folds to `ab`), if it is one.
    pub fn literal(&self) -> Option<String> {
        let [st] = self.statements.as_slice() else {
            return None;
        };
        let [stage] = st.stages.as_slice() else {
            return None;
        };
        fold(&stage.elems)
    }
}

/// Folds `'a' + 'b'` (words joined by `+`) into one string — the cheapest obfuscation of a name.
pub fn fold(elems: &[Elem]) -> Option<String> {
    let mut out = String::new();
    let mut want_word = true;
    for e in elems {
        match (want_word, e) {
            (true, Elem::Word(w)) if w.subs.is_empty() => out.push_str(&w.text),
            (true, Elem::Group(s)) => out.push_str(&s.literal()?),
            (false, Elem::Word(w)) if w.quote == Quote::None && w.text == "+" => {}
            _ => return None,
        }
        want_word = !want_word;
    }
    (!want_word).then_some(out)
}

/// Reads a command line. Never fails; see the module documentation.
pub fn parse(text: &str) -> Script {
    let chars: Vec<char> = text.chars().collect();
    let mut p = Parser {
        s: &chars,
        i: 0,
        depth: 0,
        too_deep: false,
    };
    let mut script = p.script(None, false);
    // Anything after an unmatched closer: keep reading, so nothing is skipped.
    while p.i < p.s.len() {
        p.i += 1;
        let more = p.script(None, false);
        script.statements.extend(more.statements);
    }
    script.too_deep = p.too_deep;
    script
}

struct Parser<'a> {
    s: &'a [char],
    i: usize,
    depth: usize,
    too_deep: bool,
}

/// `element(IN_HASH)`: reading a hashtable's keys and values, where `=` ends a word.
const IN_HASH: bool = true;

fn is_space(c: char) -> bool {
    c == ' ' || c == '\t' || c == '\u{a0}' || c == '\u{feff}'
}

/// Characters that end a bareword.
fn ends_word(c: char, in_hash: bool) -> bool {
    c.is_whitespace()
        || matches!(c, ';' | '|' | '&' | '(' | ')' | '{' | '}' | ',' | '<' | '>')
        || (in_hash && c == '=')
}

fn ident_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

impl Parser<'_> {
    fn peek(&self, k: usize) -> Option<char> {
        self.s.get(self.i + k).copied()
    }

    fn text(&self, from: usize, to: usize) -> String {
        self.s[from.min(self.s.len())..to.min(self.s.len())]
            .iter()
            .collect::<String>()
            .trim()
            .to_string()
    }

    /// Reads statements until `end` (`)`, `}` or `]`) or the end of input. `in_hash` reads
    /// `key = value` pairs' values: `=` ends words there.
    fn script(&mut self, end: Option<char>, in_hash: bool) -> Script {
        let mut script = Script::default();
        if self.depth >= MAX_DEPTH {
            self.too_deep = true;
            self.i = self.s.len();
            return script;
        }
        self.depth += 1;
        let mut stmt = Statement::default();
        let mut stage = Stage::default();
        let mut start = self.i;
        loop {
            self.skip_spaces();
            let Some(c) = self.peek(0) else { break };
            if Some(c) == end {
                break;
            }
            let mut finish_statement = false;
            match c {
                '\n' | '\r' => {
                    // A pipeline may continue on the next line after `|`.
                    let continues = stage.elems.is_empty() && !stmt.stages.is_empty();
                    self.i += 1;
                    if !continues {
                        finish_statement = true;
                    }
                }
                ';' => {
                    self.i += 1;
                    finish_statement = true;
                }
                '|' => {
                    if self.peek(1) == Some('|') {
                        self.i += 2;
                        finish_statement = true;
                    } else {
                        self.i += 1;
                        stmt.stages.push(std::mem::take(&mut stage));
                    }
                }
                '&' => {
                    if self.peek(1) == Some('&') {
                        self.i += 2;
                        finish_statement = true;
                    } else if stage.elems.is_empty() {
                        // The call operator: `& 'C:\x.exe'`, `&('i'+'ex')`.
                        self.i += 1;
                        stage.elems.push(Elem::Op("&".into()));
                    } else {
                        // cmd's separator (or PowerShell's background operator): a new statement.
                        self.i += 1;
                        finish_statement = true;
                    }
                }
                ')' | '}' | ']' => {
                    // A closer that is not ours: stop here; the caller skips it.
                    if end.is_some() {
                        break;
                    }
                    self.i += 1;
                    finish_statement = true;
                }
                '#' => self.skip_line_comment(),
                // Dot-sourcing (`. .\x.ps1`) at the start of a command; elsewhere `.` is a word.
                '.' if stage.elems.is_empty() && self.peek(1).is_some_and(is_space) => {
                    self.i += 1;
                    stage.elems.push(Elem::Op(".".into()));
                }
                _ => {
                    if c == '<' && self.peek(1) == Some('#') {
                        self.skip_block_comment();
                    } else {
                        let e = self.element(in_hash);
                        stage.elems.push(e);
                    }
                }
            }
            if finish_statement {
                self.close_statement(&mut script, &mut stmt, &mut stage, start);
                start = self.i;
            }
        }
        self.close_statement(&mut script, &mut stmt, &mut stage, start);
        self.depth -= 1;
        script
    }

    fn close_statement(
        &self,
        script: &mut Script,
        stmt: &mut Statement,
        stage: &mut Stage,
        start: usize,
    ) {
        if !stage.elems.is_empty() {
            stmt.stages.push(std::mem::take(stage));
        }
        if !stmt.stages.is_empty() {
            let mut s = std::mem::take(stmt);
            s.text = self
                .text(start, self.i)
                .trim_end_matches([';', '|', '&'])
                .trim()
                .to_string();
            script.statements.push(s);
        }
    }

    fn skip_spaces(&mut self) {
        while let Some(c) = self.peek(0) {
            if is_space(c) {
                self.i += 1;
            } else if c == '`' && matches!(self.peek(1), Some('\n' | '\r')) {
                // Line continuation.
                self.i += 2;
                if self.peek(0) == Some('\n') {
                    self.i += 1;
                }
            } else {
                break;
            }
        }
    }

    fn skip_line_comment(&mut self) {
        while let Some(c) = self.peek(0) {
            if c == '\n' || c == '\r' {
                break;
            }
            self.i += 1;
        }
    }

    fn skip_block_comment(&mut self) {
        self.i += 2;
        while self.i < self.s.len() {
            if self.peek(0) == Some('#') && self.peek(1) == Some('>') {
                self.i += 2;
                return;
            }
            self.i += 1;
        }
    }

    /// One element, with any member accesses that follow it without a space.
    fn element(&mut self, in_hash: bool) -> Elem {
        let c = self.peek(0).unwrap_or(' ');
        let next = self.peek(1);
        let primary = match c {
            '\'' => {
                self.i += 1;
                Elem::Word(self.single_quoted())
            }
            '"' => {
                self.i += 1;
                Elem::Word(self.double_quoted(false))
            }
            '@' if matches!(next, Some('\'' | '"')) && self.here_string_start() => {
                let double = next == Some('"');
                self.here_string(double)
            }
            '@' if next == Some('(') => {
                self.i += 2;
                Elem::Group(self.nested(')', false))
            }
            '@' if next == Some('{') => {
                self.i += 2;
                self.hash()
            }
            '@' if next.is_some_and(|n| ident_char(n) || n == '$') => {
                self.i += 1;
                let name = self.ident();
                Elem::Splat(name.to_lowercase())
            }
            '$' if next == Some('(') => {
                self.i += 2;
                Elem::Group(self.nested(')', false))
            }
            '$' => return self.variable(in_hash),
            '(' => {
                self.i += 1;
                Elem::Group(self.nested(')', false))
            }
            '{' => {
                self.i += 1;
                Elem::Block(self.nested('}', false))
            }
            '[' if self.type_literal_ahead() => {
                self.i += 1;
                let mut depth = 1;
                let mut name = String::new();
                while let Some(ch) = self.peek(0) {
                    self.i += 1;
                    match ch {
                        '[' => depth += 1,
                        ']' => {
                            depth -= 1;
                            if depth == 0 {
                                break;
                            }
                        }
                        _ => {}
                    }
                    name.push(ch);
                }
                Elem::Type(name.trim().to_lowercase())
            }
            ',' => {
                self.i += 1;
                return Elem::Op(",".into());
            }
            '!' => {
                self.i += 1;
                return Elem::Op("!".into());
            }
            // `'I'+'EX'`: an operator between values, not the start of a word.
            '+' if next.is_none_or(|n| !n.is_alphanumeric()) && next != Some('=') => {
                self.i += 1;
                return Elem::Word(Word {
                    text: "+".into(),
                    quote: Quote::None,
                    subs: vec![],
                });
            }
            '=' if next != Some('=') => {
                self.i += 1;
                return Elem::Op("=".into());
            }
            '+' | '-' | '*' | '/' | '%' if next == Some('=') => {
                self.i += 2;
                return Elem::Op(format!("{c}="));
            }
            '<' | '>' => return self.redirect(),
            '0'..='9' | '*' if next == Some('>') => return self.redirect(),
            _ => {
                let w = self.bareword(in_hash);
                // `--%` passes the rest of the line through verbatim.
                if w.text == "--%" {
                    let from = self.i;
                    self.skip_line_comment();
                    return Elem::Word(Word {
                        text: self.text(from, self.i),
                        quote: Quote::Single,
                        subs: vec![],
                    });
                }
                if w.quote == Quote::None
                    && w.text.len() > 1
                    && w.text.starts_with('-')
                    && w.text[1..].starts_with(|ch: char| ch.is_alphabetic() || ch == '_')
                {
                    return param(w);
                }
                return Elem::Word(w);
            }
        };
        self.postfix(primary)
    }

    /// `.Name`, `.Name(…)`, `::Name(…)` and `[…]` directly after a value.
    fn postfix(&mut self, base: Elem) -> Elem {
        let mut members = Vec::new();
        loop {
            match (self.peek(0), self.peek(1)) {
                (Some('.'), Some(n)) if ident_char(n) || n == '"' || n == '\'' => {
                    self.i += 1;
                    members.push(self.member(false));
                }
                (Some(':'), Some(':')) => {
                    self.i += 2;
                    members.push(self.member(true));
                }
                (Some('['), _) => {
                    self.i += 1;
                    members.push(Member::Index(self.nested(']', false)));
                }
                _ => break,
            }
        }
        if members.is_empty() {
            base
        } else {
            Elem::Chain(Box::new(base), members)
        }
    }

    fn member(&mut self, is_static: bool) -> Member {
        let name = match self.peek(0) {
            Some('\'') => {
                self.i += 1;
                self.single_quoted().text
            }
            Some('"') => {
                self.i += 1;
                self.double_quoted(false).text
            }
            _ => self.ident(),
        };
        let args = if self.peek(0) == Some('(') {
            self.i += 1;
            Some(self.nested(')', false))
        } else {
            None
        };
        Member::Access {
            name: name.to_lowercase(),
            is_static,
            args,
        }
    }

    /// A nested script up to its closer, which is consumed.
    fn nested(&mut self, close: char, in_hash: bool) -> Script {
        let s = self.script(Some(close), in_hash);
        if self.peek(0) == Some(close) {
            self.i += 1;
        }
        s
    }

    fn hash(&mut self) -> Elem {
        let mut pairs = Vec::new();
        if self.depth >= MAX_DEPTH {
            self.too_deep = true;
            self.i = self.s.len();
            return Elem::Hash(pairs);
        }
        self.depth += 1;
        loop {
            while self.peek(0).is_some_and(|c| c.is_whitespace() || c == ';') {
                self.i += 1;
            }
            match self.peek(0) {
                None => break,
                Some('}') => {
                    self.i += 1;
                    break;
                }
                Some('#') => {
                    self.skip_line_comment();
                    continue;
                }
                _ => {}
            }
            let key = match self.element(IN_HASH) {
                Elem::Word(w) => w.text,
                Elem::Param { name, .. } => format!("-{name}"),
                other => {
                    let mut words = Vec::new();
                    other.deep_words(&mut words);
                    words.join(" ")
                }
            };
            self.skip_spaces();
            if self.peek(0) == Some('=') {
                self.i += 1;
            }
            // The value: one statement up to `;`, a newline or the closing brace.
            let value = self.hash_value();
            pairs.push((key.to_lowercase(), value));
        }
        self.depth -= 1;
        Elem::Hash(pairs)
    }

    fn hash_value(&mut self) -> Script {
        let start = self.i;
        let mut stage = Stage::default();
        loop {
            self.skip_spaces();
            match self.peek(0) {
                None | Some('}' | ';' | '\n' | '\r') => break,
                Some(')' | ']') => {
                    self.i += 1;
                }
                Some('|') => {
                    self.i += 1;
                }
                Some('#') => self.skip_line_comment(),
                Some(_) => {
                    let e = self.element(IN_HASH);
                    stage.elems.push(e);
                }
            }
        }
        let mut script = Script::default();
        if !stage.elems.is_empty() {
            script.statements.push(Statement {
                text: self.text(start, self.i),
                stages: vec![stage],
            });
        }
        script
    }

    fn ident(&mut self) -> String {
        let mut out = String::new();
        while let Some(c) = self.peek(0) {
            if ident_char(c) {
                out.push(c);
                self.i += 1;
            } else if c == '`' && self.peek(1).is_some_and(ident_char) {
                self.i += 1;
            } else {
                break;
            }
        }
        out
    }

    fn variable(&mut self, in_hash: bool) -> Elem {
        let start = self.i;
        self.i += 1; // `$`
        let name = match self.peek(0) {
            Some('{') => {
                self.i += 1;
                let mut n = String::new();
                while let Some(c) = self.peek(0) {
                    self.i += 1;
                    if c == '}' {
                        break;
                    }
                    if c != '`' {
                        n.push(c);
                    }
                }
                n
            }
            Some(c) if c == '_' || c == '?' || c == '$' || c == '^' => {
                self.i += 1;
                if c == '_' {
                    format!("_{}", self.ident())
                } else {
                    c.to_string()
                }
            }
            _ => {
                let mut n = self.ident();
                // `$env:NAME`, `$script:x`: a drive or scope prefix.
                if self.peek(0) == Some(':')
                    && self.peek(1).is_some_and(ident_char)
                    && !n.is_empty()
                {
                    self.i += 1;
                    n.push(':');
                    n.push_str(&self.ident());
                }
                n
            }
        };
        if name.is_empty() {
            // A lone `$`: part of a word.
            self.i = start;
            return self.word_from(start, in_hash);
        }
        // `$env:windir\System32`: a variable expanded inside a bareword.
        if self.peek(0).is_some_and(|c| {
            !ends_word(c, in_hash) && !matches!(c, '.' | '[' | ':' | '=' | '"' | '\'')
        }) {
            return self.word_from(start, in_hash);
        }
        self.postfix(Elem::Var(name.to_lowercase()))
    }

    fn word_from(&mut self, start: usize, in_hash: bool) -> Elem {
        self.i = start;
        let w = self.bareword(in_hash);
        Elem::Word(w)
    }

    /// A generic token: everything up to a space or an operator, with quoted parts and
    /// backtick escapes folded in (`C:\Program' 'Files`, `I`E`X`), carets (cmd's escape) dropped.
    fn bareword(&mut self, in_hash: bool) -> Word {
        let mut text = String::new();
        let mut subs = Vec::new();
        let first = self.i;
        while let Some(c) = self.peek(0) {
            if self.i > first && ends_word(c, in_hash) {
                break;
            }
            if self.i == first && ends_word(c, in_hash) {
                // An operator character we do not otherwise handle: a one-character word.
                text.push(c);
                self.i += 1;
                break;
            }
            match c {
                '`' => {
                    self.i += 1;
                    match self.peek(0) {
                        Some('\n' | '\r') | None => break,
                        Some(n) => {
                            text.push(n);
                            self.i += 1;
                        }
                    }
                }
                '^' => self.i += 1,
                '\'' => {
                    self.i += 1;
                    text.push_str(&self.single_quoted().text);
                }
                '"' => {
                    self.i += 1;
                    let w = self.double_quoted(false);
                    text.push_str(&w.text);
                    subs.extend(w.subs);
                }
                '$' if self.peek(1) == Some('(') => {
                    self.i += 2;
                    subs.push(self.nested(')', false));
                    text.push_str("$(…)");
                }
                _ => {
                    text.push(c);
                    self.i += 1;
                }
            }
        }
        Word {
            text,
            quote: Quote::None,
            subs,
        }
    }

    fn single_quoted(&mut self) -> Word {
        let mut text = String::new();
        while let Some(c) = self.peek(0) {
            self.i += 1;
            if c == '\'' {
                if self.peek(0) == Some('\'') {
                    self.i += 1;
                    text.push('\'');
                } else {
                    break;
                }
            } else {
                text.push(c);
            }
        }
        Word {
            text,
            quote: Quote::Single,
            subs: vec![],
        }
    }

    /// A double-quoted string (or a here-string's body when `here`): `` ` `` escapes, `""`,
    /// and `$( … )` sub-expressions, which are parsed as code.
    fn double_quoted(&mut self, here: bool) -> Word {
        let mut text = String::new();
        let mut subs = Vec::new();
        while let Some(c) = self.peek(0) {
            if here {
                if matches!(c, '\n' | '\r') && self.here_end('"') {
                    break;
                }
            } else if c == '"' {
                self.i += 1;
                if self.peek(0) == Some('"') {
                    self.i += 1;
                    text.push('"');
                    continue;
                }
                break;
            }
            match c {
                '`' => {
                    self.i += 1;
                    if let Some(n) = self.peek(0) {
                        self.i += 1;
                        text.push(match n {
                            'n' => '\n',
                            'r' => '\r',
                            't' => '\t',
                            '0' | 'a' | 'b' | 'e' | 'f' | 'v' => ' ',
                            other => other,
                        });
                    }
                }
                '$' if self.peek(1) == Some('(') => {
                    self.i += 2;
                    subs.push(self.nested(')', false));
                    text.push_str("$(…)");
                }
                _ => {
                    text.push(c);
                    self.i += 1;
                }
            }
        }
        Word {
            text,
            quote: Quote::Double,
            subs,
        }
    }

    /// `@'` or `@"` followed by the end of the line starts a here-string.
    fn here_string_start(&self) -> bool {
        let mut k = 2;
        while self.peek(k).is_some_and(is_space) {
            k += 1;
        }
        matches!(self.peek(k), Some('\n' | '\r'))
    }

    /// At a newline: is it followed by the here-string's closing `'@` / `"@`? Consumes both.
    fn here_end(&mut self, q: char) -> bool {
        let mut k = 0;
        if self.peek(k) == Some('\r') {
            k += 1;
        }
        if self.peek(k) == Some('\n') {
            k += 1;
        }
        if self.peek(k) == Some(q) && self.peek(k + 1) == Some('@') {
            self.i += k + 2;
            true
        } else {
            false
        }
    }

    fn here_string(&mut self, double: bool) -> Elem {
        self.i += 2;
        while self.peek(0).is_some_and(is_space) {
            self.i += 1;
        }
        if self.peek(0) == Some('\r') {
            self.i += 1;
        }
        if self.peek(0) == Some('\n') {
            self.i += 1;
        }
        let w = if double {
            self.double_quoted(true)
        } else {
            let mut text = String::new();
            while let Some(c) = self.peek(0) {
                if matches!(c, '\n' | '\r') && self.here_end('\'') {
                    break;
                }
                text.push(c);
                self.i += 1;
            }
            Word {
                text,
                quote: Quote::Single,
                subs: vec![],
            }
        };
        Elem::Word(w)
    }

    /// Is the `[` here a type literal (`[IO.File]`, `[char[]]`) rather than a wildcard word?
    fn type_literal_ahead(&self) -> bool {
        let mut k = 1;
        let mut depth = 1;
        let mut saw_letter = false;
        while let Some(c) = self.peek(k) {
            match c {
                '[' => depth += 1,
                ']' => {
                    depth -= 1;
                    if depth == 0 {
                        break;
                    }
                }
                c if c.is_alphanumeric() => {
                    if k == 1 && !c.is_alphabetic() {
                        return false;
                    }
                    saw_letter = true;
                }
                '.' | '_' | ',' | ' ' | '`' => {}
                _ => return false,
            }
            k += 1;
        }
        if depth != 0 || !saw_letter {
            return false;
        }
        // After the `]`: a static member, a value it casts, or the end of the element.
        self.peek(k + 1).is_none_or(|c| {
            c.is_whitespace()
                || c.is_ascii_digit()
                || matches!(
                    c,
                    ':' | '$' | '(' | '[' | ')' | ';' | '|' | '\'' | '"' | '@' | '}'
                )
        })
    }

    fn redirect(&mut self) -> Elem {
        let mut op = String::new();
        while let Some(c) = self.peek(0) {
            if c.is_ascii_digit() || c == '*' || c == '>' || c == '<' {
                op.push(c);
                self.i += 1;
            } else if c == '&' && self.peek(1).is_some_and(|d| d.is_ascii_digit()) {
                // `2>&1`: a merge, not a file.
                op.push('&');
                op.push(self.peek(1).unwrap_or('1'));
                self.i += 2;
                break;
            } else {
                break;
            }
        }
        Elem::Redirect(op)
    }
}

/// `-Name` or `-Name:value` (PowerShell's form for switches given a value).
fn param(w: Word) -> Elem {
    let body = &w.text[1..];
    match body.split_once(':') {
        Some((name, value)) if !name.is_empty() => Elem::Param {
            name: name.to_lowercase(),
            attached: Some(Box::new(if let Some(var) = value.strip_prefix('$') {
                Elem::Var(var.to_lowercase())
            } else {
                Elem::Word(Word {
                    text: value.to_string(),
                    quote: Quote::None,
                    subs: w.subs,
                })
            })),
        },
        _ => Elem::Param {
            name: body.trim_end_matches(':').to_lowercase(),
            attached: None,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(stage: &Stage) -> Vec<String> {
        stage
            .elems
            .iter()
            .map(|e| match e {
                Elem::Word(w) => w.text.clone(),
                Elem::Param { name, attached } => match attached {
                    Some(a) => format!("-{name}:{}", a.word().unwrap_or("$")),
                    None => format!("-{name}"),
                },
                Elem::Var(v) => format!("${v}"),
                Elem::Splat(v) => format!("@{v}"),
                Elem::Op(o) => o.clone(),
                Elem::Redirect(r) => r.clone(),
                Elem::Block(_) => "{…}".into(),
                Elem::Group(_) => "(…)".into(),
                Elem::Hash(_) => "@{…}".into(),
                Elem::Type(t) => format!("[{t}]"),
                Elem::Chain(..) => "chain".into(),
            })
            .collect()
    }

    #[test]
    fn statements_pipelines_and_chains() {
        let s =
            parse("Get-Process | Select Id; whoami && netstat -ano || hostname\nipconfig & arp -a");
        let texts: Vec<&str> = s.statements.iter().map(|s| s.text.as_str()).collect();
        assert_eq!(
            texts,
            [
                "Get-Process | Select Id",
                "whoami",
                "netstat -ano",
                "hostname",
                "ipconfig",
                "arp -a"
            ]
        );
        assert_eq!(s.statements[0].stages.len(), 2);
        assert_eq!(words(&s.statements[2].stages[0]), ["netstat", "-ano"]);
    }

    #[test]
    fn quoting_and_escapes_are_resolved() {
        let s = parse(r#"I`E`X 'it''s' "a ""b"" `$c" C:\Program' 'Files\x n^e^t"#);
        assert_eq!(
            words(&s.statements[0].stages[0]),
            ["IEX", "it's", "a \"b\" $c", r"C:\Program Files\x", "net"]
        );
    }

    #[test]
    fn here_strings_keep_their_body_as_one_word() {
        let s = parse("Set-Content x.ps1 -Value @'\nStop-Service WinDefend; 'q'\n'@; whoami");
        assert_eq!(s.statements.len(), 2);
        let st = &s.statements[0].stages[0];
        assert_eq!(st.elems[3].word(), Some("Stop-Service WinDefend; 'q'"));
    }

    #[test]
    fn parameters_blocks_hashes_and_members() {
        let s = parse(
            "Get-WinEvent -FilterHashtable @{LogName='Security'; Id=4688} -MaxEvents:20 | ? { $_.Id -eq 1 }",
        );
        let st = &s.statements[0];
        assert_eq!(
            words(&st.stages[0]),
            ["Get-WinEvent", "-filterhashtable", "@{…}", "-maxevents:20"]
        );
        let Elem::Hash(pairs) = &st.stages[0].elems[2] else {
            panic!("hash")
        };
        assert_eq!(pairs[0].0, "logname");
        assert_eq!(pairs[0].1.literal().as_deref(), Some("Security"));
        assert_eq!(words(&st.stages[1]), ["?", "{…}"]);
        let s = parse("[IO.File]::Delete('C:\\x'); (Get-Item y).Delete(); $p.Kill()");
        for st in &s.statements {
            assert!(matches!(st.stages[0].elems[0], Elem::Chain(..)), "{st:?}");
        }
    }

    #[test]
    fn sub_expressions_inside_strings_are_code() {
        let s = parse(r#"Write-Output "pid $(Stop-Process -Id 4)""#);
        let Elem::Word(w) = &s.statements[0].stages[0].elems[1] else {
            panic!()
        };
        assert_eq!(w.subs.len(), 1);
        assert_eq!(w.subs[0].statements[0].text, "Stop-Process -Id 4");
    }

    #[test]
    fn string_concatenation_folds() {
        let s = parse("&('I'+'EX') 'x'");
        let Elem::Group(g) = &s.statements[0].stages[0].elems[1] else {
            panic!()
        };
        assert_eq!(g.literal().as_deref(), Some("IEX"));
    }

    #[test]
    fn redirections_and_comments() {
        let s = parse("netstat -ano > C:\\IR\\n.txt 2>&1 # note\n<# block #> whoami");
        assert_eq!(
            words(&s.statements[0].stages[0]),
            ["netstat", "-ano", ">", "C:\\IR\\n.txt", "2>&1"]
        );
        assert_eq!(s.statements[1].text, "<# block #> whoami");
        assert_eq!(words(&s.statements[1].stages[0]), ["whoami"]);
    }

    #[test]
    fn deep_nesting_is_flagged_not_overflowed() {
        let s = parse(&"(".repeat(10_000));
        assert!(s.too_deep);
        let s = parse(&"{".repeat(100));
        assert!(s.too_deep);
        assert!(!parse("((1))").too_deep);
    }

    #[test]
    fn anything_parses_without_panicking() {
        for t in [
            "", "'", "\"", "@'", "@\"\n", "$", "${", "[", "]", "}", ")", "`", "-", "--%", "@{",
            "@{a", "2>", "&", "|", "$(", "[a]::", "a.b(", "\"$(\"", "@{=}", "-:", "$x:",
        ] {
            let _ = parse(t);
        }
    }
}
