//! The `match` language of an action policy: a subset of Kibana Query Language (KQL), parsed
//! once at start-up and evaluated against the alert document as it came (`Alert::raw`).
//!
//! Supported: `field: value`, `field: "quoted value"`, wildcards in unquoted values
//! (`host.name: web-*`, `field: *` for "exists"), value lists (`host.name: (a OR b)`), ranges
//! (`kibana.alert.risk_score >= 90`, `<`, `<=`, `>`), `AND`, `OR`, `NOT` (any case), and
//! parentheses. A bare `*` matches every alert. A field is any dotted path; documents may hold
//! it as nested objects, literal dotted keys or any mix, and a list field (`rule.tags`) matches
//! when any of its items does — the same rules as Kibana's.
//!
//! Differences from KQL a policy author should know: matching is exact and case-sensitive (like
//! a `keyword` field), there is no free-text search without a field, and no nested-field `{}`
//! syntax. A bad expression is an error with its 1-based column, refused at start-up.

use std::fmt;

use serde_json::Value;

/// A parsed expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// `*`: every alert.
    All,
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Not(Box<Expr>),
    /// `field: v` or `field: (v1 OR v2)`: true when any value of the field matches any pattern.
    Match {
        field: String,
        values: Vec<Pattern>,
    },
    /// `field >= v` and the like.
    Range {
        field: String,
        op: RangeOp,
        value: String,
    },
}

/// One value to compare a field with.
#[derive(Debug, Clone, PartialEq)]
pub enum Pattern {
    /// A quoted value: compared as it is (a `*` in it is a literal star).
    Exact(String),
    /// An unquoted value, which may hold `*` wildcards (`*` alone: the field exists).
    Wild(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeOp {
    Lt,
    Le,
    Gt,
    Ge,
}

impl RangeOp {
    fn as_str(self) -> &'static str {
        match self {
            RangeOp::Lt => "<",
            RangeOp::Le => "<=",
            RangeOp::Gt => ">",
            RangeOp::Ge => ">=",
        }
    }
}

/// Why an expression did not parse, and where (`column` is 1-based, in characters).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("at column {column}: {message}")]
pub struct KqlError {
    pub column: usize,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    LParen,
    RParen,
    Colon,
    Op(RangeOp),
    And,
    Or,
    Not,
    /// An unquoted word (field name or value).
    Word(String),
    Quoted(String),
}

impl fmt::Display for Tok {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Tok::LParen => f.write_str("`(`"),
            Tok::RParen => f.write_str("`)`"),
            Tok::Colon => f.write_str("`:`"),
            Tok::Op(op) => write!(f, "`{}`", op.as_str()),
            Tok::And => f.write_str("`AND`"),
            Tok::Or => f.write_str("`OR`"),
            Tok::Not => f.write_str("`NOT`"),
            Tok::Word(w) => write!(f, "`{w}`"),
            Tok::Quoted(q) => write!(f, "{q:?}"),
        }
    }
}

/// Splits an expression into tokens, each with its 1-based column.
fn lex(input: &str) -> Result<Vec<(Tok, usize)>, KqlError> {
    let chars: Vec<char> = input.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let col = i + 1;
        match c {
            c if c.is_whitespace() => i += 1,
            '(' => {
                out.push((Tok::LParen, col));
                i += 1;
            }
            ')' => {
                out.push((Tok::RParen, col));
                i += 1;
            }
            ':' => {
                out.push((Tok::Colon, col));
                i += 1;
            }
            '<' | '>' => {
                let eq = chars.get(i + 1) == Some(&'=');
                let op = match (c, eq) {
                    ('<', false) => RangeOp::Lt,
                    ('<', true) => RangeOp::Le,
                    ('>', false) => RangeOp::Gt,
                    _ => RangeOp::Ge,
                };
                out.push((Tok::Op(op), col));
                i += if eq { 2 } else { 1 };
            }
            '"' => {
                let mut s = String::new();
                i += 1;
                loop {
                    match chars.get(i) {
                        None => {
                            return Err(KqlError {
                                column: col,
                                message: "unterminated quoted value".into(),
                            });
                        }
                        Some('"') => {
                            i += 1;
                            break;
                        }
                        Some('\\') => match chars.get(i + 1) {
                            Some(e) => {
                                s.push(*e);
                                i += 2;
                            }
                            None => {
                                return Err(KqlError {
                                    column: i + 1,
                                    message: "a backslash ends the expression".into(),
                                });
                            }
                        },
                        Some(ch) => {
                            s.push(*ch);
                            i += 1;
                        }
                    }
                }
                out.push((Tok::Quoted(s), col));
            }
            _ => {
                let mut s = String::new();
                let mut escaped = false;
                while let Some(&ch) = chars.get(i) {
                    if ch.is_whitespace() || "():<>\"".contains(ch) {
                        break;
                    }
                    // `\:` and friends: a special character taken literally.
                    if ch == '\\' {
                        match chars.get(i + 1) {
                            Some(e) => {
                                s.push(*e);
                                escaped = true;
                                i += 2;
                                continue;
                            }
                            None => {
                                return Err(KqlError {
                                    column: i + 1,
                                    message: "a backslash ends the expression".into(),
                                });
                            }
                        }
                    }
                    s.push(ch);
                    i += 1;
                }
                // `\and`: the word, not the operator.
                let tok = match s.to_ascii_lowercase().as_str() {
                    _ if escaped => Tok::Word(s),
                    "and" => Tok::And,
                    "or" => Tok::Or,
                    "not" => Tok::Not,
                    _ => Tok::Word(s),
                };
                out.push((tok, col));
            }
        }
    }
    Ok(out)
}

struct Parser {
    toks: Vec<(Tok, usize)>,
    pos: usize,
    /// Column just past the end, for "expected … at the end" errors.
    end: usize,
}

/// Nesting deeper than this is refused (a policy file is not a place for 10,000 parentheses,
/// and recursion must stay bounded).
const MAX_DEPTH: usize = 64;

/// Parses an expression.
pub fn parse(input: &str) -> Result<Expr, KqlError> {
    let toks = lex(input)?;
    if toks.is_empty() {
        return Err(KqlError {
            column: 1,
            message: "empty expression (use `*` to match every alert)".into(),
        });
    }
    let mut p = Parser {
        toks,
        pos: 0,
        end: input.chars().count() + 1,
    };
    let e = p.or(0)?;
    if let Some((t, col)) = p.toks.get(p.pos) {
        return Err(KqlError {
            column: *col,
            message: format!("unexpected {t}: expected AND, OR or the end"),
        });
    }
    Ok(e)
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos).map(|(t, _)| t)
    }

    fn col(&self) -> usize {
        self.toks.get(self.pos).map(|(_, c)| *c).unwrap_or(self.end)
    }

    fn err<T>(&self, message: impl Into<String>) -> Result<T, KqlError> {
        Err(KqlError {
            column: self.col(),
            message: message.into(),
        })
    }

    fn found(&self) -> String {
        match self.peek() {
            Some(t) => t.to_string(),
            None => "the end".into(),
        }
    }

    fn or(&mut self, depth: usize) -> Result<Expr, KqlError> {
        let mut left = self.and(depth)?;
        while self.peek() == Some(&Tok::Or) {
            self.pos += 1;
            let right = self.and(depth)?;
            left = Expr::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn and(&mut self, depth: usize) -> Result<Expr, KqlError> {
        let mut left = self.not(depth)?;
        while self.peek() == Some(&Tok::And) {
            self.pos += 1;
            let right = self.not(depth)?;
            left = Expr::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn not(&mut self, depth: usize) -> Result<Expr, KqlError> {
        if depth > MAX_DEPTH {
            return self.err(format!("nested deeper than {MAX_DEPTH} levels"));
        }
        if self.peek() == Some(&Tok::Not) {
            self.pos += 1;
            return Ok(Expr::Not(Box::new(self.not(depth + 1)?)));
        }
        self.primary(depth)
    }

    fn primary(&mut self, depth: usize) -> Result<Expr, KqlError> {
        match self.peek().cloned() {
            Some(Tok::LParen) => {
                self.pos += 1;
                let e = self.or(depth + 1)?;
                if self.peek() != Some(&Tok::RParen) {
                    return self.err(format!("expected `)`, found {}", self.found()));
                }
                self.pos += 1;
                Ok(e)
            }
            Some(Tok::Word(w))
                if w == "*"
                    && !matches!(
                        self.toks.get(self.pos + 1),
                        Some((Tok::Colon | Tok::Op(_), _))
                    ) =>
            {
                self.pos += 1;
                Ok(Expr::All)
            }
            Some(Tok::Word(field)) => {
                if field.starts_with('.') || field.ends_with('.') || field.contains("..") {
                    return self.err(format!("`{field}` is not a field name"));
                }
                self.pos += 1;
                match self.peek().cloned() {
                    Some(Tok::Colon) => {
                        self.pos += 1;
                        let values = self.values()?;
                        Ok(Expr::Match { field, values })
                    }
                    Some(Tok::Op(op)) => {
                        self.pos += 1;
                        let value = match self.peek().cloned() {
                            Some(Tok::Word(v) | Tok::Quoted(v)) => v,
                            _ => {
                                return self.err(format!(
                                    "expected a value after `{}`, found {}",
                                    op.as_str(),
                                    self.found()
                                ));
                            }
                        };
                        self.pos += 1;
                        Ok(Expr::Range { field, op, value })
                    }
                    _ => self.err(format!(
                        "expected `:` or a comparison after the field `{field}`, found {}",
                        self.found()
                    )),
                }
            }
            _ => self.err(format!(
                "expected a field, `NOT`, `(` or `*`, found {}",
                self.found()
            )),
        }
    }

    /// After `field:`: one value, or a parenthesised list joined by OR.
    fn values(&mut self) -> Result<Vec<Pattern>, KqlError> {
        if self.peek() == Some(&Tok::LParen) {
            self.pos += 1;
            let mut values = vec![self.value()?];
            while self.peek() == Some(&Tok::Or) {
                self.pos += 1;
                values.push(self.value()?);
            }
            if self.peek() != Some(&Tok::RParen) {
                return self.err(format!(
                    "expected OR or `)` in the value list, found {}",
                    self.found()
                ));
            }
            self.pos += 1;
            return Ok(values);
        }
        Ok(vec![self.value()?])
    }

    fn value(&mut self) -> Result<Pattern, KqlError> {
        let v = match self.peek().cloned() {
            Some(Tok::Word(w)) => Pattern::Wild(w),
            Some(Tok::Quoted(q)) => Pattern::Exact(q),
            _ => return self.err(format!("expected a value, found {}", self.found())),
        };
        self.pos += 1;
        Ok(v)
    }
}

impl Expr {
    /// Whether an alert document matches.
    pub fn matches(&self, doc: &Value) -> bool {
        match self {
            Expr::All => true,
            Expr::And(a, b) => a.matches(doc) && b.matches(doc),
            Expr::Or(a, b) => a.matches(doc) || b.matches(doc),
            Expr::Not(e) => !e.matches(doc),
            Expr::Match { field, values } => {
                let found = lookup_all(doc, field);
                values.iter().any(|p| match p {
                    Pattern::Wild(w) if w == "*" => found.iter().any(|v| !v.is_null()),
                    _ => found.iter().any(|v| p.matches(v)),
                })
            }
            Expr::Range { field, op, value } => lookup_all(doc, field)
                .iter()
                .any(|v| compare(v, value).is_some_and(|o| op.holds(o))),
        }
    }
}

impl fmt::Display for Expr {
    /// Prints the expression back as KQL, fully parenthesised (parses to the same tree).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expr::All => f.write_str("*"),
            Expr::And(a, b) => write!(f, "({a} AND {b})"),
            Expr::Or(a, b) => write!(f, "({a} OR {b})"),
            Expr::Not(e) => write!(f, "NOT {e}"),
            Expr::Match { field, values } => {
                write!(f, "{field}: ")?;
                let shown: Vec<String> = values.iter().map(|p| p.to_string()).collect();
                if shown.len() == 1 {
                    f.write_str(&shown[0])
                } else {
                    write!(f, "({})", shown.join(" OR "))
                }
            }
            Expr::Range { field, op, value } => {
                write!(f, "{field} {} {}", op.as_str(), quote(value))
            }
        }
    }
}

fn quote(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Pattern::Exact(s) => f.write_str(&quote(s)),
            Pattern::Wild(w) => {
                if ["and", "or", "not"].contains(&w.to_ascii_lowercase().as_str()) {
                    f.write_str("\\")?;
                }
                for ch in w.chars() {
                    if ch.is_whitespace() || "():<>\"\\".contains(ch) {
                        write!(f, "\\{ch}")?;
                    } else {
                        write!(f, "{ch}")?;
                    }
                }
                Ok(())
            }
        }
    }
}

impl Pattern {
    fn matches(&self, v: &Value) -> bool {
        let text = match v {
            Value::String(s) => s.clone(),
            Value::Number(n) => {
                // `risk_score: 99` matches 99 and 99.0 alike.
                let want = match self {
                    Pattern::Exact(s) | Pattern::Wild(s) => s,
                };
                if let (Ok(w), Some(n)) = (want.parse::<f64>(), n.as_f64()) {
                    return w == n;
                }
                n.to_string()
            }
            Value::Bool(b) => b.to_string(),
            _ => return false,
        };
        match self {
            Pattern::Exact(s) => *s == text,
            Pattern::Wild(w) => wildcard(w, &text),
        }
    }
}

impl RangeOp {
    fn holds(self, o: std::cmp::Ordering) -> bool {
        use std::cmp::Ordering::*;
        match self {
            RangeOp::Lt => o == Less,
            RangeOp::Le => o != Greater,
            RangeOp::Gt => o == Greater,
            RangeOp::Ge => o != Less,
        }
    }
}

/// Orders a field value against a range bound: as numbers when both are numbers, else as text
/// (which orders RFC 3339 times correctly).
fn compare(v: &Value, bound: &str) -> Option<std::cmp::Ordering> {
    let text = match v {
        Value::Number(n) => {
            let b: f64 = bound.parse().ok()?;
            return n.as_f64()?.partial_cmp(&b);
        }
        Value::String(s) => s,
        _ => return None,
    };
    match (text.parse::<f64>(), bound.parse::<f64>()) {
        (Ok(a), Ok(b)) => a.partial_cmp(&b),
        _ => Some(text.as_str().cmp(bound)),
    }
}

/// `*` matches any run of characters (none included); everything else is literal.
pub fn wildcard(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    // Greedy with backtracking to the last star: linear-ish, no recursion.
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if pi < p.len() && p[pi] == t[ti] {
            pi += 1;
            ti += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

/// Every value a dotted path reaches in a document: nested objects, literal dotted keys and any
/// mix of the two are all tried, and lists are looked into (a list field yields its items).
pub fn lookup_all<'a>(doc: &'a Value, path: &str) -> Vec<&'a Value> {
    let parts: Vec<&str> = path.split('.').collect();
    let mut out = Vec::new();
    walk(doc, &parts, &mut out);
    out
}

fn walk<'a>(doc: &'a Value, parts: &[&str], out: &mut Vec<&'a Value>) {
    match doc {
        Value::Array(items) => {
            for item in items {
                walk(item, parts, out);
            }
        }
        _ if parts.is_empty() => out.push(doc),
        Value::Object(obj) => {
            for take in 1..=parts.len() {
                if let Some(next) = obj.get(&parts[..take].join(".")) {
                    walk(next, &parts[take..], out);
                }
            }
        }
        _ => {}
    }
}

/// The first text value of a path (numbers and booleans as text), for grouping keys and
/// summaries.
pub fn first_text(doc: &Value, path: &str) -> Option<String> {
    lookup_all(doc, path).into_iter().find_map(|v| match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn doc() -> Value {
        json!({
            "kibana.alert.severity": "critical",
            "kibana.alert.risk_score": 95,
            "kibana.alert": { "rule.name": "Mimikatz", "workflow_status": "open" },
            "host": { "name": "web-01", "os": { "family": "windows" } },
            "rule": { "tags": ["credential-access", "T1003"] },
            "event.created": "2026-12-07T10:00:00.000Z",
            "flag": true,
        })
    }

    fn m(expr: &str) -> bool {
        parse(expr)
            .unwrap_or_else(|e| panic!("{expr}: {e}"))
            .matches(&doc())
    }

    #[test]
    fn matches_fields_by_dotted_key_nested_object_or_a_mix() {
        assert!(m(r#"kibana.alert.severity: "critical""#));
        assert!(m("host.name: web-01"));
        assert!(m("host.os.family: windows"));
        assert!(m("kibana.alert.rule.name: Mimikatz"));
        assert!(m("kibana.alert.workflow_status: open"));
        assert!(!m("host.name: web-02"));
        assert!(!m("no.such.field: x"));
    }

    #[test]
    fn boolean_operators_and_precedence() {
        assert!(m(
            r#"severity_missing: x OR kibana.alert.severity: "critical""#
        ));
        assert!(m(
            r#"kibana.alert.severity: "critical" AND host.name: web-*"#
        ));
        assert!(!m(
            r#"kibana.alert.severity: "critical" AND NOT host.name: web-*"#
        ));
        // AND binds tighter than OR.
        assert!(m("host.name: x AND flag: false OR host.name: web-01"));
        assert!(!m("host.name: x AND (flag: false OR host.name: web-01)"));
        assert!(m("not host.name: x and (flag: true)"));
        assert!(m("NOT NOT host.name: web-01"));
    }

    #[test]
    fn wildcards_quotes_lists_ranges_and_exists() {
        assert!(m("host.name: web-*"));
        assert!(m("host.name: *-01"));
        assert!(m("host.name: w*b*1"));
        assert!(!m(r#"host.name: "web-*""#));
        assert!(m("rule.tags: T1003"));
        assert!(m("rule.tags: credential-*"));
        assert!(m("host.name: (db-01 OR web-01)"));
        assert!(!m("host.name: (db-01 OR db-02)"));
        assert!(m("kibana.alert.risk_score >= 90"));
        assert!(m("kibana.alert.risk_score > 94.5"));
        assert!(!m("kibana.alert.risk_score < 95"));
        assert!(m("kibana.alert.risk_score <= 95"));
        assert!(m("kibana.alert.risk_score: 95"));
        assert!(m(r#"event.created >= "2026-12-07T00:00:00Z""#));
        assert!(!m(r#"event.created < "2026-12-07T00:00:00Z""#));
        assert!(m("host.name: *"));
        assert!(!m("host.ip: *"));
        assert!(m("flag: true"));
        assert!(m("*"));
        assert!(m(r"host.name: web\-01"));
    }

    #[test]
    fn errors_name_the_column() {
        let cases = [
            ("", 1, "empty"),
            ("host.name:", 11, "expected a value"),
            ("host.name: a AND", 17, "expected a field"),
            ("(host.name: a", 14, "expected `)`"),
            ("host.name a", 11, "expected `:`"),
            ("host.name: \"open", 12, "unterminated"),
            ("host.name: a b", 14, "unexpected `b`"),
            ("a: b )", 6, "unexpected `)`"),
            ("score >= ", 10, "expected a value after `>=`"),
            ("host..name: a", 1, "not a field name"),
            ("host.name: (a OR b", 19, "expected OR or `)`"),
        ];
        for (input, column, text) in cases {
            let e = parse(input).expect_err(input);
            assert_eq!(e.column, column, "{input}: {e}");
            assert!(e.message.contains(text), "{input}: {e}");
        }
    }

    #[test]
    fn deep_nesting_is_refused_not_overflowed() {
        let deep = format!("{}a: b{}", "(".repeat(10_000), ")".repeat(10_000));
        assert!(parse(&deep).unwrap_err().message.contains("nested deeper"));
        let nots = format!("{}a: b", "NOT ".repeat(10_000));
        assert!(parse(&nots).is_err());
    }

    #[test]
    fn wildcard_edge_cases() {
        assert!(wildcard("*", ""));
        assert!(wildcard("a*", "a"));
        assert!(wildcard("*a*b*", "xxaxxbxx"));
        assert!(!wildcard("a*b", "ab c"));
        assert!(wildcard("", ""));
        assert!(!wildcard("", "a"));
        assert!(wildcard("a**b", "ab"));
    }
}
