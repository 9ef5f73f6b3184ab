//! What each statement of a command does. [`Walk`] goes through the parsed script statement by
//! statement — into pipelines, script blocks, sub-expressions, strings' `$( … )`, nested shells
//! (`powershell -Command …`, `cmd /c …`, `Start-Process … -ArgumentList …`) — resolving aliases,
//! splats, simple variables and string concatenation, and gives every command an [`Effect`]:
//! reads, changes, strengthens protection, weakens protection, creates persistence, runs code,
//! reaches another host, or destroys evidence or the system — each with the rule, in words an
//! analyst reads in Slack and in the case.
//!
//! Anything it does not recognise changes state; a value it cannot resolve (a variable, a
//! computed name) is judged as the worst thing it could be where that matters (a firewall rule
//! without a literal `-Action Block` opens the firewall). Native programs are in
//! [`super::native`]; places (paths, registry keys) in [`super::places`].

use std::collections::HashMap;

use super::entities::AlertFacts;
use super::native;
use super::places::{
    self, cert_path_store, file_delete, file_write, in_evidence, is_registry, norm_path,
    registry_delete, registry_write, security_product, truth,
};
use super::tokenize::{self, Elem, Member, Quote, Script, Stage, Statement};
use crate::domain::Risk;

/// What a statement does, from harmless to never-run. The order is the severity order within a
/// risk; the verdict of a command is its worst statement's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Effect {
    Reads,
    Strengthens,
    Changes,
    Weakens,
    Persists,
    Executes,
    ReachesOut,
    Destroys,
}

impl Effect {
    pub fn risk(self) -> Risk {
        match self {
            Effect::Reads => Risk::ReadOnly,
            Effect::Strengthens | Effect::Changes => Risk::ChangesState,
            _ => Risk::Blocked,
        }
    }

    /// How the effect is named in a reason.
    pub fn label(self) -> &'static str {
        match self {
            Effect::Reads => "reads",
            Effect::Strengthens => "turns protection on",
            Effect::Changes => "changes state",
            Effect::Weakens => "weakens protection",
            Effect::Persists => "creates persistence",
            Effect::Executes => "runs code",
            Effect::ReachesOut => "reaches another host",
            Effect::Destroys => "destroys evidence or the system",
        }
    }
}

/// One rule that fired on a statement.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    pub effect: Effect,
    /// The rule in an analyst's words; empty for an ordinary read or change.
    pub what: String,
    /// What a statement that helps an attacker grants it to (an address, a user, a path, a
    /// value): the entity guard checks where the alert got each one.
    pub grants: Vec<String>,
}

pub fn finding(effect: Effect, what: impl Into<String>) -> Finding {
    Finding {
        effect,
        what: what.into(),
        grants: vec![],
    }
}

fn granting(effect: Effect, what: impl Into<String>, grants: Vec<String>) -> Finding {
    Finding {
        effect,
        what: what.into(),
        grants,
    }
}

/// The findings of one statement, with its text.
#[derive(Debug, Clone)]
pub struct Judged {
    pub text: String,
    pub findings: Vec<Finding>,
}

/// A value an argument carries: the literal text of each item (`a,b` has two), whether all
/// items were literal, and every word inside it (for conservative name matching).
#[derive(Debug, Clone, Default)]
pub struct Val {
    pub texts: Vec<String>,
    pub exact: bool,
    pub deep: Vec<String>,
}

impl Val {
    pub fn first(&self) -> Option<&str> {
        self.texts.first().map(String::as_str)
    }

    pub fn lower(&self) -> String {
        self.texts.join(",").to_lowercase()
    }

    pub fn words(&self) -> Vec<String> {
        let mut w = self.texts.clone();
        w.extend(self.deep.iter().cloned());
        w
    }
}

#[derive(Debug, Clone)]
pub enum Arg {
    Named(String, Option<Val>),
    Pos(Val),
}

/// A command's arguments, splats expanded, plus the flat tokens native programs see.
#[derive(Debug, Clone, Default)]
pub struct Args {
    pub items: Vec<Arg>,
    /// The arguments as a native program receives them, lowercased: `-name`, `/c`, `x=y`.
    pub flat: Vec<String>,
    /// A splat whose contents are unknown: any parameter may be set.
    pub unknown_splat: bool,
    /// Redirection targets (`> file`).
    pub redirects: Vec<String>,
}

/// PowerShell switch parameters that take no value: the next word is positional.
#[rustfmt::skip]
const SWITCHES: &[&str] = &[
    "force", "recurse", "whatif", "confirm", "verbose", "debug", "passthru", "asjob", "wait",
    "nonewwindow", "noprofile", "noninteractive", "noexit", "nologo", "append", "noclobber",
    "notypeinformation", "unique", "descending", "casesensitive", "simplematch", "allmatches",
    "notmatch", "quiet", "raw", "usebasicparsing", "hidden", "system", "readonly", "directory",
    "list", "all", "detailed", "includeequal", "usenewenvironment", "disablenamechecking",
    "global", "sta", "mta", "oldest", "ascii", "wide", "expandproperty", "asplaintext",
    "includeusername", "update", "dontshow", "reverse", "nonewline", "online", "enable", "disable",
];

impl Args {
    /// The first named argument whose (possibly abbreviated) name is one of `names`.
    pub fn named(&self, names: &[&str]) -> Option<&Arg> {
        self.items.iter().find(|a| match a {
            Arg::Named(n, _) => names
                .iter()
                .any(|c| !n.is_empty() && c.starts_with(n.as_str())),
            Arg::Pos(_) => false,
        })
    }

    pub fn get(&self, names: &[&str]) -> Option<&Val> {
        match self.named(names) {
            Some(Arg::Named(_, v)) => v.as_ref(),
            _ => None,
        }
    }

    pub fn has(&self, names: &[&str]) -> bool {
        self.named(names).is_some()
    }

    /// A switch or boolean parameter: absent `None`; given alone `Some(true)`; with a value, its
    /// truth (`None` inside when it cannot be read, e.g. a variable).
    pub fn flag(&self, names: &[&str]) -> Option<Option<bool>> {
        match self.named(names)? {
            Arg::Named(_, None) => Some(Some(true)),
            Arg::Named(_, Some(v)) => Some(v.first().and_then(truth)),
            Arg::Pos(_) => None,
        }
    }

    pub fn pos(&self, i: usize) -> Option<&Val> {
        self.items
            .iter()
            .filter_map(|a| match a {
                Arg::Pos(v) => Some(v),
                Arg::Named(..) => None,
            })
            .nth(i)
    }

    /// A named value, or else the `i`th positional one.
    pub fn get_or_pos(&self, names: &[&str], i: usize) -> Option<&Val> {
        self.get(names)
            .or_else(|| if self.has(names) { None } else { self.pos(i) })
    }

    /// Every word of every argument.
    pub fn words(&self) -> Vec<String> {
        let mut out = Vec::new();
        for a in &self.items {
            match a {
                Arg::Named(n, v) => {
                    out.push(n.clone());
                    if let Some(v) = v {
                        out.extend(v.words());
                    }
                }
                Arg::Pos(v) => out.extend(v.words()),
            }
        }
        out
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
}

/// What a variable holds, as far as the walk can tell.
#[derive(Debug, Clone)]
enum VarVal {
    Texts(Vec<String>),
    Hash(Vec<(String, Val)>),
    /// The output of a pipeline: the words of the commands that produced it.
    Output(Vec<String>),
}

/// What flows into a pipeline stage from the stages before it.
#[derive(Debug, Clone, Default)]
pub struct Upstream {
    pub words: Vec<String>,
    /// The first stage was a bare `Get-Service` / `Get-Process` with no filter: everything.
    pub everything: bool,
    /// The canonical name of the command that produced it.
    pub source: String,
}

/// How a command was invoked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    Plain,
    Call,
    Dot,
}

/// Walks a script and judges every statement.
pub struct Walk<'a> {
    pub facts: &'a AlertFacts,
    pub evidence: &'a [String],
    vars: HashMap<String, VarVal>,
    /// The current location after a literal `Set-Location`, for relative paths.
    cwd: Option<String>,
    shells: usize,
    pub judged: Vec<Judged>,
    /// Canonical names of every command run, for the deny and allow lists.
    pub names: Vec<String>,
    /// Some command or method was recognised (an empty expression is not).
    pub recognised: bool,
}

/// How many shells deep (`powershell -c "cmd /c …"`) the walk follows before it gives up.
const MAX_SHELLS: usize = 4;

#[rustfmt::skip]
const KEYWORDS: &[&str] = &[
    "if", "elseif", "else", "foreach", "for", "while", "do", "until", "switch", "try", "catch",
    "finally", "trap", "function", "filter", "param", "begin", "process", "end", "return", "break",
    "continue", "exit", "throw", "data", "dynamicparam", "workflow", "parallel", "sequence",
];

/// Cmdlets that only pass on, shape or show what flows through a pipeline.
#[rustfmt::skip]
pub const PIPELINE_HELPERS: &[&str] = &[
    "select-object", "where-object", "sort-object", "format-table", "format-list", "format-wide",
    "measure-object", "out-string", "out-host", "group-object", "foreach-object", "write-output",
    "write-host", "convertto-json", "convertto-csv", "select-string", "get-unique", "out-null",
];

#[rustfmt::skip]
const READ_VERBS: &[&str] = &[
    "get", "test", "find", "select", "measure", "compare", "resolve", "search", "show", "read",
    "where", "sort", "format", "group", "convertto", "convertfrom", "trace", "confirm", "wait",
    "debug", "receive", "join", "split", "write", "out",
];
#[rustfmt::skip]
const CHANGE_VERBS: &[&str] = &[
    "set", "remove", "stop", "start", "disable", "enable", "new", "add", "clear", "restart",
    "suspend", "resume", "uninstall", "install", "register", "unregister", "move", "rename",
    "copy", "export", "import", "block", "unblock", "reset", "update", "lock", "unlock", "mount",
    "dismount", "protect", "unprotect", "grant", "revoke", "save", "sync", "invoke", "initialize",
    "publish", "unpublish", "send", "connect", "disconnect", "enter", "exit", "close", "open",
    "push", "pop", "deny", "approve", "repair", "restore", "backup", "checkpoint", "edit", "limit",
    "optimize", "redo", "undo", "use", "tee", "compress", "expand", "complete", "request",
    "submit", "assert", "merge", "build", "deploy",
];

/// PowerShell's aliases and cmd's built-ins → the cmdlet they run.
pub fn alias(name: &str) -> Option<&'static str> {
    Some(match name {
        "gps" | "ps" => "get-process",
        "gci" | "ls" | "dir" => "get-childitem",
        "gc" | "cat" | "type" => "get-content",
        "gsv" => "get-service",
        "gwmi" => "get-wmiobject",
        "gcim" => "get-ciminstance",
        "gi" => "get-item",
        "gp" => "get-itemproperty",
        "gpv" => "get-itempropertyvalue",
        "gl" | "pwd" => "get-location",
        "sls" => "select-string",
        "select" => "select-object",
        "where" | "?" => "where-object",
        "%" | "foreach" => "foreach-object",
        "sort" => "sort-object",
        "ft" => "format-table",
        "fl" => "format-list",
        "fw" => "format-wide",
        "measure" => "measure-object",
        "group" => "group-object",
        "compare" | "diff" => "compare-object",
        "echo" | "write" => "write-output",
        "gm" => "get-member",
        "gcm" => "get-command",
        "ghy" | "h" | "history" => "get-history",
        "rm" | "del" | "erase" | "rd" | "rmdir" | "ri" => "remove-item",
        "kill" | "spps" => "stop-process",
        "spsv" => "stop-service",
        "sasv" => "start-service",
        "saps" | "start" => "start-process",
        "iex" => "invoke-expression",
        "iwr" | "curl" | "wget" => "invoke-webrequest",
        "irm" => "invoke-restmethod",
        "icm" => "invoke-command",
        "ii" => "invoke-item",
        "r" | "ihy" => "invoke-history",
        "ipmo" => "import-module",
        "sajb" => "start-job",
        "rcjb" => "receive-job",
        "iwmi" => "invoke-wmimethod",
        "swmi" => "set-wmiinstance",
        "rwmi" => "remove-wmiobject",
        "mv" | "move" | "mi" => "move-item",
        "cp" | "copy" | "cpi" => "copy-item",
        "ni" | "md" | "mkdir" => "new-item",
        "si" => "set-item",
        "sp" => "set-itemproperty",
        "rp" => "remove-itemproperty",
        "ren" | "rni" => "rename-item",
        "rnp" => "rename-itemproperty",
        "cpp" => "copy-itemproperty",
        "mp" => "move-itemproperty",
        "ac" => "add-content",
        "clc" => "clear-content",
        "cli" => "clear-item",
        "clp" => "clear-itemproperty",
        "cd" | "sl" | "chdir" => "set-location",
        "pushd" => "push-location",
        "popd" => "pop-location",
        "tee" => "tee-object",
        "oh" => "out-host",
        "ogv" => "out-gridview",
        "sal" => "set-alias",
        "nal" => "new-alias",
        "ipal" => "import-alias",
        "sv" | "set" => "set-variable",
        "nv" => "new-variable",
        "gv" => "get-variable",
        "rv" => "remove-variable",
        "clv" => "clear-variable",
        "ndr" => "new-psdrive",
        "etsn" => "enter-pssession",
        "nsn" => "new-pssession",
        "cls" | "clear" => "clear-host",
        "sleep" => "start-sleep",
        "tnc" => "test-netconnection",
        _ => return None,
    })
}

impl<'a> Walk<'a> {
    pub fn new(facts: &'a AlertFacts, evidence: &'a [String]) -> Self {
        Self {
            facts,
            evidence,
            vars: HashMap::new(),
            cwd: None,
            shells: 0,
            judged: Vec::new(),
            names: Vec::new(),
            recognised: false,
        }
    }

    pub fn script(&mut self, s: &Script) {
        for st in &s.statements {
            self.statement(st);
        }
    }

    /// Parses and judges the script a nested shell would run: its statements are judged (and
    /// named in reasons) on their own.
    pub fn nested_text(&mut self, text: &str, out: &mut Vec<Finding>) {
        self.nested(text, out, false);
    }

    /// Judges a program start (`Start-Process x -ArgumentList …`) as if `text` ran directly,
    /// with the findings counted for the statement that starts it.
    pub fn started_text(&mut self, text: &str, out: &mut Vec<Finding>) {
        self.nested(text, out, true);
    }

    fn nested(&mut self, text: &str, out: &mut Vec<Finding>, merge: bool) {
        if self.shells >= MAX_SHELLS {
            out.push(finding(
                Effect::Executes,
                "shells nested too deeply to review",
            ));
            return;
        }
        let script = tokenize::parse(text);
        if script.too_deep {
            out.push(finding(
                Effect::Executes,
                "a nested script too deeply nested to review",
            ));
        }
        self.shells += 1;
        let from = self.judged.len();
        self.script(&script);
        if merge {
            for j in self.judged.drain(from..) {
                out.extend(j.findings);
            }
        }
        self.shells -= 1;
    }

    fn statement(&mut self, st: &Statement) {
        let slot = self.judged.len();
        self.judged.push(Judged {
            text: st.text.clone(),
            findings: vec![],
        });
        let mut findings = Vec::new();
        let mut upstream: Option<Upstream> = None;
        for stage in &st.stages {
            upstream = Some(self.stage(stage, upstream.as_ref(), &mut findings));
        }
        // `$x = Get-Service | Where-Object …`: the variable holds what the whole pipeline output.
        if st.stages.len() > 1
            && let Some(var) = assigned_var(st.stages.first().map(|s| s.elems.as_slice()))
        {
            let words = upstream.map(|u| u.words).unwrap_or_default();
            self.vars.insert(var, VarVal::Output(words));
        }
        if let Some(j) = self.judged.get_mut(slot) {
            j.findings = findings;
        }
    }

    fn stage(&mut self, stage: &Stage, up: Option<&Upstream>, out: &mut Vec<Finding>) -> Upstream {
        let elems = stage.elems.as_slice();
        // `$x = …`, `$x.Prop = …`, `[int]$x = …`
        let mut assigned = None;
        let mut rest = elems;
        if let Some(eq) = elems
            .iter()
            .position(|e| matches!(e, Elem::Op(o) if o.ends_with('=')))
            && eq > 0
            && eq <= 2
            && elems[..eq]
                .iter()
                .all(|e| matches!(e, Elem::Var(_) | Elem::Chain(..) | Elem::Type(_)))
        {
            rest = &elems[eq + 1..];
            for lhs in &elems[..eq] {
                match lhs {
                    Elem::Var(v) => assigned = Some(v.clone()),
                    Elem::Chain(base, members) => {
                        let prop = members.iter().rev().find_map(|m| match m {
                            Member::Access {
                                name, args: None, ..
                            } => Some(name.clone()),
                            _ => None,
                        });
                        self.recognised = true;
                        self.visit_elem(lhs, false);
                        match prop.as_deref() {
                            Some(p) if is_timestamp(p) => out.push(finding(
                                Effect::Destroys,
                                "changes a file's timestamps (timestomping destroys evidence)",
                            )),
                            Some(_) if !matches!(**base, Elem::Var(ref v) if v.starts_with("env:")) => {
                                out.push(finding(Effect::Changes, ""))
                            }
                            _ => {}
                        }
                    }
                    _ => {}
                }
            }
        }
        let result = self.stage_body(rest, up, out);
        if let Some(var) = assigned {
            let val = value_of(rest, &self.vars);
            let v = if let [Elem::Hash(pairs)] = rest {
                VarVal::Hash(
                    pairs
                        .iter()
                        .map(|(k, s)| (k.clone(), script_val(s, &self.vars)))
                        .collect(),
                )
            } else if val.exact && !val.texts.is_empty() && !starts_command(rest) {
                VarVal::Texts(val.texts)
            } else {
                VarVal::Output(result.words.clone())
            };
            self.vars.insert(var, v);
        }
        result
    }

    fn stage_body(
        &mut self,
        elems: &[Elem],
        up: Option<&Upstream>,
        out: &mut Vec<Finding>,
    ) -> Upstream {
        let Some(first) = elems.first() else {
            return Upstream::default();
        };
        // Keywords: `if (…) {…}`, `foreach ($x in …) {…}`, `function f {…}`, `return …`.
        if let Elem::Word(w) = first
            && w.quote == Quote::None
            && KEYWORDS.contains(&w.text.to_lowercase().as_str())
        {
            let kw = w.text.to_lowercase();
            if matches!(kw.as_str(), "return" | "throw" | "exit") && elems.len() > 1 {
                return self.stage_body(&elems[1..], up, out);
            }
            // cmd's `for %i in (…) do command`: the command after `do` runs.
            if kw == "for"
                && let Some(at) = elems
                    .iter()
                    .position(|e| matches!(e, Elem::Word(w) if w.quote == Quote::None && w.text.eq_ignore_ascii_case("do")))
            {
                for e in &elems[1..at] {
                    self.visit_elem(e, false);
                }
                return self.stage_body(&elems[at + 1..], up, out);
            }
            for e in &elems[1..] {
                if kw == "foreach"
                    && let Elem::Group(g) = e
                {
                    self.foreach_header(g);
                    continue;
                }
                self.visit_elem(e, false);
            }
            return Upstream::default();
        }
        let (via, name_at) = match first {
            Elem::Op(o) if o == "&" => (Via::Call, 1),
            Elem::Op(o) if o == "." => (Via::Dot, 1),
            _ => (Via::Plain, 0),
        };
        let command_name = match elems.get(name_at) {
            Some(Elem::Word(w)) if via != Via::Plain => Some(w.text.clone()),
            Some(Elem::Word(w)) if w.quote == Quote::None && is_command_word(&w.text) => {
                Some(w.text.clone())
            }
            // `"C:\Program Files\x.exe" /q` (cmd style): invoking a quoted program.
            Some(Elem::Word(w))
                if w.quote != Quote::None
                    && elems.len() > 1
                    && elems[1..].iter().all(|e| !matches!(e, Elem::Op(_)))
                    && w.text.contains(['\\', '.']) =>
            {
                Some(w.text.clone())
            }
            Some(Elem::Group(g)) if via != Via::Plain => g.literal(),
            Some(Elem::Var(v)) if via != Via::Plain => match self.vars.get(v) {
                Some(VarVal::Texts(t)) if t.len() == 1 => Some(t[0].clone()),
                _ => None,
            },
            _ => None,
        };
        match command_name {
            Some(name) => {
                let args_elems = &elems[name_at + 1..];
                self.command(&name, via, args_elems, up, out)
            }
            // `& { … }` / `. { … }`: the block runs, and is judged like any other.
            None if via != Via::Plain && matches!(elems.get(name_at), Some(Elem::Block(_))) => {
                for e in &elems[name_at..] {
                    self.visit_elem(e, false);
                }
                Upstream::default()
            }
            None if via != Via::Plain => {
                self.recognised = true;
                out.push(finding(
                    Effect::Executes,
                    "runs a command whose name is computed at run time (dynamic invocation)",
                ));
                for e in &elems[1..] {
                    self.visit_elem(e, false);
                }
                Upstream::default()
            }
            None => {
                self.expression(elems, out);
                let mut words = Vec::new();
                elems.iter().for_each(|e| e.deep_words(&mut words));
                // `$x | Stop-Service`: what the variable holds flows on.
                for e in elems {
                    if let Elem::Var(v) = e {
                        match self.vars.get(v) {
                            Some(VarVal::Texts(t)) => words.extend(t.iter().cloned()),
                            Some(VarVal::Output(w)) => words.extend(w.iter().cloned()),
                            _ => {}
                        }
                    }
                }
                Upstream {
                    words,
                    everything: false,
                    source: String::new(),
                }
            }
        }
    }

    /// `foreach ($x in <pipeline>)`: the pipeline runs.
    fn foreach_header(&mut self, g: &Script) {
        for st in &g.statements {
            let elems: Vec<Elem> = st
                .stages
                .first()
                .map(|s| s.elems.clone())
                .unwrap_or_default();
            let at = elems
                .iter()
                .position(|e| matches!(e, Elem::Word(w) if w.text.eq_ignore_ascii_case("in")));
            match at {
                Some(i) => {
                    let mut rest = Statement {
                        text: st.text.clone(),
                        stages: st.stages.clone(),
                    };
                    if let Some(s0) = rest.stages.first_mut() {
                        s0.elems = elems[i + 1..].to_vec();
                    }
                    self.statement(&rest);
                }
                None => self.statement(st),
            }
        }
    }

    /// Judges the nested scripts of an element; `data` skips script blocks (a native program
    /// receives a block as text, it does not run it).
    fn visit_elem(&mut self, e: &Elem, data: bool) {
        if data && matches!(e, Elem::Block(_)) {
            return;
        }
        for s in e.nested() {
            self.script(s);
        }
    }

    fn expression(&mut self, elems: &[Elem], out: &mut Vec<Finding>) {
        for e in elems {
            if let Elem::Chain(base, members) = e {
                for (k, m) in members.iter().enumerate() {
                    if let Member::Access {
                        name,
                        is_static,
                        args: Some(args),
                    } = m
                    {
                        self.recognised = true;
                        let receiver = match (&**base, k) {
                            (Elem::Type(t), 0) => t.clone(),
                            _ => String::new(),
                        };
                        let mut words = Vec::new();
                        e.deep_words(&mut words);
                        // `$_.Delete()` inside `ForEach-Object`: what `$_` holds counts too.
                        if let Elem::Var(v) = &**base
                            && let Some(VarVal::Output(w)) = self.vars.get(v)
                        {
                            words.extend(w.iter().cloned());
                        }
                        out.extend(self.method(name, *is_static, &receiver, args, &words));
                    }
                }
            }
            self.visit_elem(e, false);
        }
    }

    /// A .NET method call: `[IO.File]::Delete(…)`, `$p.Kill()`, `(New-Object …).Run(…)`.
    fn method(
        &mut self,
        name: &str,
        is_static: bool,
        receiver: &str,
        args: &Script,
        words: &[String],
    ) -> Vec<Finding> {
        let all = words.join(" ").to_lowercase();
        let lit: Vec<String> = args
            .statements
            .iter()
            .flat_map(|s| s.stages.iter())
            .flat_map(|s| s.elems.iter())
            .filter_map(|e| e.word().map(String::from))
            .collect();
        let receiver = receiver.trim_start_matches("system.");
        let file_type = matches!(receiver, "io.file" | "io.directory" | "io.fileinfo");
        if all.contains("win32_shadowcopy") && matches!(name, "delete" | "invokemethod") {
            return vec![finding(
                Effect::Destroys,
                "deletes shadow copies through WMI (destroys backups)",
            )];
        }
        match name {
            "clearlog" => vec![finding(
                Effect::Destroys,
                "clears or tampers with event logs",
            )],
            "setcreationtime"
            | "setcreationtimeutc"
            | "setlastwritetime"
            | "setlastwritetimeutc"
            | "setlastaccesstime"
            | "setlastaccesstimeutc" => {
                vec![finding(
                    Effect::Destroys,
                    "changes a file's timestamps (timestomping destroys evidence)",
                )]
            }
            "setpassword" | "changepassword" => vec![granting(
                Effect::Weakens,
                "sets an account's password (whoever wrote the alert text would know it)",
                lit,
            )],
            "run" | "exec" | "shellexecute" | "executeshellcommand" | "createprocess" => {
                vec![finding(
                    Effect::Executes,
                    format!("starts a program through a COM object (.{name}())"),
                )]
            }
            "start"
                if receiver.ends_with("diagnostics.process")
                    || all.contains("processstartinfo") =>
            {
                vec![finding(
                    Effect::Executes,
                    "starts a program (Process.Start)",
                )]
            }
            "load" | "loadfile" | "loadfrom" | "loadwithpartialname" | "unsafeloadfrom" => {
                vec![finding(
                    Effect::Executes,
                    "loads code into PowerShell (Assembly.Load)",
                )]
            }
            "registertaskdefinition" => vec![finding(
                Effect::Persists,
                "registers a scheduled task through COM",
            )],
            "createshortcut" if all.contains("startup") => vec![finding(
                Effect::Persists,
                "puts a shortcut in a startup folder, which runs at logon",
            )],
            "regwrite"
            | "setvalue"
            | "createsubkey"
            | "setstringvalue"
            | "setdwordvalue"
            | "setexpandedstringvalue"
            | "setmultistringvalue"
            | "setbinaryvalue" => {
                let key = lit
                    .iter()
                    .find(|l| is_registry(l) || l.contains('\\'))
                    .cloned();
                let judged = key
                    .as_deref()
                    .and_then(|k| {
                        registry_write(
                            k,
                            lit.get(1).map(String::as_str),
                            lit.get(2).map(String::as_str),
                        )
                    })
                    .or_else(|| {
                        // The key may come from an earlier `OpenSubKey(…)` in the chain.
                        lit_registry_in(&all).and_then(|k| {
                            registry_write(
                                &k,
                                lit.first().map(String::as_str),
                                lit.get(1).map(String::as_str),
                            )
                        })
                    });
                match judged {
                    Some(r) => vec![reg_finding(r, &lit)],
                    None => vec![finding(Effect::Changes, "")],
                }
            }
            "deletevalue" | "deletesubkey" | "deletesubkeytree" | "regdelete" => {
                let key = lit_registry_in(&all);
                match key.and_then(|k| registry_delete(&k, lit.first().map(String::as_str))) {
                    Some(r) => vec![reg_finding(r, &lit)],
                    None => vec![finding(Effect::Changes, "")],
                }
            }
            "put" | "createinstance" | "spawninstance"
                if all.contains("__eventfilter")
                    || all.contains("eventconsumer")
                    || all.contains("filtertoconsumerbinding")
                    || all.contains("root\\subscription") =>
            {
                vec![finding(
                    Effect::Persists,
                    "creates a WMI event subscription, which runs code on an event",
                )]
            }
            "add" if all.contains("x509store") => {
                let store = places::TRUST_STORES.iter().find(|s| {
                    all.contains(&format!("'{s}'"))
                        || all.contains(&format!("\"{s}\""))
                        || all.contains(&format!("::{s}"))
                        || all.split_whitespace().any(|w| w == **s)
                });
                match store {
                    Some(s) => vec![granting(
                        Effect::Weakens,
                        format!("trusts a certificate in the {s} store"),
                        lit,
                    )],
                    None => vec![finding(Effect::Changes, "")],
                }
            }
            n if file_type
                && (n.starts_with("get")
                    || n.starts_with("read")
                    || n.starts_with("enumerate")
                    || n == "exists"
                    || n == "openread"
                    || n == "opentext") =>
            {
                vec![finding(Effect::Reads, "")]
            }
            n if file_type => {
                let target = lit.first().cloned().unwrap_or_default();
                let mut f = vec![finding(Effect::Changes, "")];
                if n.starts_with("delete") || n.starts_with("move") || n.starts_with("replace") {
                    let recursive = lit.iter().any(|l| l.eq_ignore_ascii_case("$true"));
                    if let Some((e, w)) = file_delete(&target, recursive) {
                        f.push(finding(e, w));
                    }
                }
                if n.starts_with("write")
                    || n.starts_with("append")
                    || n.starts_with("create")
                    || n.starts_with("copy")
                    || n.starts_with("move")
                {
                    let dest = if n.starts_with("copy") || n.starts_with("move") {
                        lit.get(1).cloned().unwrap_or_default()
                    } else {
                        target.clone()
                    };
                    if in_evidence(&dest, self.evidence) && !n.starts_with("move") {
                        return vec![finding(Effect::Reads, "")];
                    }
                    if let Some((e, w)) = file_write(&dest) {
                        f.push(finding(e, w));
                    }
                }
                f
            }
            n if READ_METHODS.contains(&n) => vec![finding(Effect::Reads, "")],
            n if n.starts_with("get") || n.starts_with("to") || n.starts_with("is") => {
                vec![finding(Effect::Reads, "")]
            }
            "delete" | "kill" | "terminate" | "stop" | "remove" | "removeat" | "clear"
            | "moveto" | "copyto" | "writealltext" | "writeallbytes" | "appendalltext"
            | "setaccesscontrol" | "setattributes" | "stopservice" | "startservice"
            | "changestartmode" | "setinfo" | "save" | "move" | "copy" | "rename" | "create"
            | "put" | "encrypt" | "decrypt" | "invokemethod" | "invokemember" | "setowner" => {
                let mut f = vec![finding(Effect::Changes, "")];
                if matches!(
                    name,
                    "stopservice" | "changestartmode" | "delete" | "kill" | "terminate" | "stop"
                ) && let Some(p) = security_product(words)
                {
                    f.push(finding(
                        Effect::Weakens,
                        format!("stops or disables security tooling ({p})"),
                    ));
                }
                if name == "create" && all.contains("win32_service") {
                    f.push(finding(Effect::Persists, "creates a service through WMI"));
                }
                f
            }
            _ if is_static && receiver.is_empty() => vec![finding(Effect::Changes, "")],
            _ => vec![finding(
                Effect::Changes,
                format!("calls the .NET method .{name}(); treated as changing state"),
            )],
        }
    }

    /// One command with its arguments.
    fn command(
        &mut self,
        written: &str,
        via: Via,
        elems: &[Elem],
        up: Option<&Upstream>,
        out: &mut Vec<Finding>,
    ) -> Upstream {
        let args = build_args(elems, &self.vars);
        let lower = written.trim().to_lowercase();
        let target = resolve(&lower);
        let canonical = match &target {
            Target::Cmdlet(c) | Target::Tool(c) => c.clone(),
            Target::Program(p) => p.clone(),
        };
        self.names.push(canonical.clone());
        let native_data = matches!(target, Target::Tool(_) | Target::Program(_));
        // Inside `ForEach-Object { … }` / `Where-Object { … }`, `$_` is what flows in.
        let binds = matches!(canonical.as_str(), "foreach-object" | "where-object");
        let saved = binds.then(|| {
            (
                self.vars.get("_").cloned(),
                self.vars.get("psitem").cloned(),
            )
        });
        let input = args
            .get(&["inputobject"])
            .map(|v| v.words())
            .or_else(|| up.map(|u| u.words.clone()));
        if binds && let Some(words) = input {
            self.vars.insert("_".into(), VarVal::Output(words.clone()));
            self.vars.insert("psitem".into(), VarVal::Output(words));
        }
        for e in elems {
            self.visit_elem(
                e,
                native_data && !matches!(canonical.as_str(), "powershell" | "pwsh"),
            );
        }
        if let Some((a, b)) = saved {
            for (k, v) in [("_", a), ("psitem", b)] {
                match v {
                    Some(v) => self.vars.insert(k.into(), v),
                    None => self.vars.remove(k),
                };
            }
        }
        // In Windows PowerShell `sc` is an alias of Set-Content, not sc.exe.
        if lower == "sc" && self.shells == 0 {
            out.push(finding(
                Effect::Changes,
                "in Windows PowerShell `sc` is Set-Content and writes a file; write `sc.exe`",
            ));
        }
        let neutral = matches!(
            canonical.as_str(),
            "foreach-object"
                | "where-object"
                | "invoke-command"
                | "new-object"
                | "start-job"
                | "start-threadjob"
                | "measure-command"
                | "trace-command"
        );
        if !neutral {
            self.recognised = true;
        }
        let before = out.len();
        match &target {
            Target::Cmdlet(c) => self.cmdlet(c, &args, up, out),
            Target::Tool(t) => native::judge(self, t, &args, up, out),
            Target::Program(p) => self.program(p, via, out),
        }
        if via == Via::Dot && !matches!(target, Target::Cmdlet(_)) {
            out.push(finding(
                Effect::Executes,
                "dot-sources a script into the session, which runs it",
            ));
        }
        // Redirections write files.
        for r in &args.redirects {
            let t = r.to_lowercase();
            if matches!(t.as_str(), "$null" | "null" | "nul" | "") {
                continue;
            }
            out.extend(self.write_to(r, "redirects output into a file"));
        }
        if out.len() == before && !neutral {
            out.push(finding(
                Effect::Changes,
                format!("unknown command `{canonical}`; treated as changing state"),
            ));
        }
        let mut words = args.words();
        if let Some(u) = up {
            words.extend(u.words.iter().cloned());
        }
        Upstream {
            everything: args.is_empty() && up.is_none(),
            words,
            source: canonical,
        }
    }

    /// Running a program that is not a known tool.
    fn program(&mut self, path: &str, via: Via, out: &mut Vec<Finding>) {
        const SCRIPTS: &[&str] = &[
            ".ps1", ".psm1", ".psd1", ".bat", ".cmd", ".vbs", ".vbe", ".js", ".jse", ".wsf",
            ".wsh", ".hta", ".lnk", ".scr", ".pif", ".msi", ".cpl", ".reg", ".py", ".jar",
        ];
        if SCRIPTS.iter().any(|e| path.ends_with(e)) {
            out.push(finding(
                Effect::Executes,
                format!("runs a script file whose contents are not reviewed ({path})"),
            ));
        } else if self.facts.names_program(path) {
            out.push(finding(
                Effect::Executes,
                format!("starts a program the alert names ({path}): the attacker's code"),
            ));
        } else if via == Via::Dot {
            // judged by the caller
        } else {
            out.push(finding(
                Effect::Changes,
                format!("unknown command `{path}`; treated as changing state"),
            ));
        }
    }

    /// Resolves a path against the current location (`Set-Location HKLM:\…; New-ItemProperty
    /// -Path .`).
    pub fn path(&self, p: &str) -> String {
        let t = p.trim();
        let absolute =
            t.contains(':') || t.starts_with('\\') || t.starts_with('$') || t.starts_with('%');
        match &self.cwd {
            Some(cwd) if !absolute => {
                let rel = t.trim_start_matches(".\\").trim_start_matches("./");
                if rel == "." || rel.is_empty() {
                    cwd.clone()
                } else {
                    format!("{cwd}\\{rel}")
                }
            }
            _ => t.to_string(),
        }
    }

    /// Writing a file at `dest`: a read when it is inside the evidence folders, else a change —
    /// or worse, by place.
    pub fn write_to(&self, dest: &str, what: &str) -> Vec<Finding> {
        let d = self.path(dest);
        if in_evidence(&d, self.evidence) {
            return vec![finding(Effect::Reads, "")];
        }
        if is_registry(&d) {
            return vec![finding(Effect::Changes, "")];
        }
        let mut f = vec![finding(Effect::Changes, what)];
        if let Some((e, w)) = file_write(&d) {
            f.push(finding(e, w));
        }
        f
    }

    /// Writing to the place a value names: a literal as [`Walk::write_to`]; a computed one
    /// (`[Environment]::GetFolderPath('Startup')`, `$PROFILE`) by the places its words name.
    pub fn write_value(&self, v: &Val, what: &str) -> Vec<Finding> {
        if v.exact {
            return v
                .texts
                .iter()
                .flat_map(|t| self.write_to(t, what))
                .collect();
        }
        let mut f = vec![finding(Effect::Changes, what)];
        let words = v.words();
        for w in &words {
            if let Some((e, why)) = file_write(w) {
                f.push(finding(e, why));
            }
        }
        if words.iter().any(|w| {
            let w = w.to_lowercase();
            w.contains("startup") || w.starts_with("$profile")
        }) {
            f.push(finding(
                Effect::Persists,
                "writes to a startup folder or PowerShell profile, which runs at logon",
            ));
        }
        f
    }

    pub fn delete(&self, target: &str, recursive: bool) -> Vec<Finding> {
        let t = self.path(target);
        if let Some(store) = cert_path_store(&t) {
            return if store == "disallowed" {
                vec![finding(Effect::Weakens, "removes a distrusted certificate")]
            } else {
                vec![finding(Effect::Changes, "")]
            };
        }
        if is_registry(&t) {
            return match registry_delete(&t, None) {
                Some(r) => vec![reg_finding(r, &[])],
                None => vec![finding(Effect::Changes, "")],
            };
        }
        let mut f = vec![finding(Effect::Changes, "")];
        if let Some((e, w)) = file_delete(&t, recursive) {
            f.push(finding(e, w));
        }
        f
    }

    fn cmdlet(&mut self, c: &str, a: &Args, up: Option<&Upstream>, out: &mut Vec<Finding>) {
        super::cmdlets::judge(self, c, a, up, out);
    }

    pub fn set_cwd(&mut self, p: Option<String>) {
        self.cwd = p;
    }

    pub fn enter_shell(&mut self) -> bool {
        if self.shells >= MAX_SHELLS {
            return false;
        }
        self.shells += 1;
        true
    }

    pub fn leave_shell(&mut self) {
        self.shells = self.shells.saturating_sub(1);
    }
}

/// The variable a stage assigns to (`$x = …`), if it is a plain variable.
fn assigned_var(elems: Option<&[Elem]>) -> Option<String> {
    match elems? {
        [Elem::Var(v), Elem::Op(o), ..] if o.ends_with('=') => Some(v.clone()),
        _ => None,
    }
}

/// .NET methods that only read or compute (collections' `.Add` is local, not a change).
#[rustfmt::skip]
const READ_METHODS: &[&str] = &[
    "tostring", "gettype", "getvalue", "getvaluenames", "getsubkeynames", "getvaluekind",
    "opensubkey", "openbasekey", "openremotebasekey", "equals", "gethashcode", "contains",
    "containskey", "startswith", "endswith", "indexof", "lastindexof", "substring", "split",
    "replace", "trim", "trimstart", "trimend", "tolower", "toupper", "tolowerinvariant",
    "toupperinvariant", "padleft", "padright", "format", "join", "compare", "exists",
    "readalltext", "readalllines", "readallbytes", "getfiles", "getdirectories", "enumeratefiles",
    "enumeratedirectories", "getfilename", "getextension", "getdirectoryname",
    "getfilenamewithoutextension", "combine", "getfullpath", "getlastwritetime", "getcreationtime",
    "getlastaccesstime", "getaccesscontrol", "getowner", "where", "foreach", "getenumerator",
    "getenvironmentvariable", "getenvironmentvariables", "isinrole", "getcurrent", "parse",
    "tryparse", "getprocessbyid", "getprocesses", "getprocessesbyname", "tochararray", "toarray",
    "add", "count", "hasexited", "waitforexit", "close", "dispose", "flush",
    "getnetworkinterfaces", "getipproperties", "getactivetcpconnections", "getactivetcplisteners",
    "getipglobalproperties", "gethostname", "getbytes", "getstring", "computehash",
    "tobase64string", "getlogicaldrives", "getfolderpath", "issubsetof", "normalize", "invokeget",
    "getrelatedclasses", "getrelated", "getmembers", "getproperty", "getmethod", "getfield",
    "isnullorempty", "isnullorwhitespace", "matches", "match", "ismatch", "now", "addday",
    "adddays", "addhours", "addminutes", "tofiletime", "fromfiletime", "toshortdatestring",
    "tolocaltime", "touniversaltime", "getfileversioninfo", "getsecuritydescriptorsddlform",
    "translate", "read", "readline", "readtoend", "peek", "getresponse", "gethostaddresses",
    "gethostentry", "getobject",
];

/// A registry judgement as a finding: helping writes carry their data as what they grant.
pub fn reg_finding(r: places::RegJudgement, data: &[String]) -> Finding {
    Finding {
        effect: r.effect,
        what: r.what,
        grants: if r.helps { data.to_vec() } else { vec![] },
    }
}

/// The registry key a .NET registry chain opens: `[Microsoft.Win32.Registry]::LocalMachine
/// .OpenSubKey('SOFTWARE\…\Run', $true).SetValue(…)` → `hklm\software\…\run`.
fn lit_registry_in(all: &str) -> Option<String> {
    let hive = if all.contains("localmachine")
        || all.contains("hkey_local_machine")
        || all.contains("hklm")
    {
        "hklm"
    } else if all.contains("currentuser")
        || all.contains("hkey_current_user")
        || all.contains("hkcu")
    {
        "hkcu"
    } else if all.contains("classesroot") {
        "hkcr"
    } else {
        return None;
    };
    let key = all
        .split_whitespace()
        .filter(|w| w.contains('\\'))
        .max_by_key(|w| w.len())?;
    let key = key
        .trim_start_matches("hkey_local_machine\\")
        .trim_start_matches("hkey_current_user\\")
        .trim_start_matches("hklm:\\")
        .trim_start_matches("hkcu:\\");
    Some(format!("{hive}\\{key}"))
}

fn is_timestamp(p: &str) -> bool {
    matches!(
        p,
        "lastwritetime"
            | "lastwritetimeutc"
            | "creationtime"
            | "creationtimeutc"
            | "lastaccesstime"
            | "lastaccesstimeutc"
    )
}

/// A bareword that can start a command (not a number, operator or member access).
fn is_command_word(w: &str) -> bool {
    let Some(c) = w.chars().next() else {
        return false;
    };
    if w == "%" || w == "?" {
        return true;
    }
    if c.is_ascii_digit() || matches!(c, '-' | '+' | '*' | '/' | '=' | '!' | ',' | '<' | '>' | '[')
    {
        return false;
    }
    // `.\x.exe`, `..\x`, `C:\x.exe`, `\\host\share\x.exe`
    w.chars().any(|c| c.is_alphabetic())
        && !(c == '.' && w[1..].starts_with(|c: char| c.is_alphanumeric()))
}

fn starts_command(elems: &[Elem]) -> bool {
    matches!(elems.first(), Some(Elem::Word(w)) if w.quote == Quote::None && is_command_word(&w.text))
        || matches!(elems.first(), Some(Elem::Op(o)) if o == "&" || o == ".")
}

/// What kind of thing a command name is.
pub enum Target {
    /// A cmdlet (aliases resolved).
    Cmdlet(String),
    /// A native program the gate knows (by bare name, or a path in a system folder).
    Tool(String),
    /// Any other program or script, by its normalised path or name.
    Program(String),
}

pub fn resolve(written: &str) -> Target {
    let w = norm_path(written.trim_start_matches(['&', '.']).trim());
    let w = if written.trim().starts_with(".\\") || written.trim().starts_with("./") {
        format!(".\\{}", w.trim_start_matches(".\\"))
    } else {
        w
    };
    let base = w.rsplit(['\\', '/']).next().unwrap_or(&w).to_string();
    let stem = base
        .strip_suffix(".exe")
        .or_else(|| base.strip_suffix(".com"))
        .unwrap_or(&base)
        .to_string();
    let has_dir = base.len() != w.len();
    if has_dir {
        // `Microsoft.PowerShell.Management\Stop-Service`: a module-qualified cmdlet.
        if !w.contains(':') && stem.contains('-') && !stem.contains('.') {
            return Target::Cmdlet(stem);
        }
        let system = w.starts_with("c:\\windows\\system32\\")
            || w.starts_with("c:\\windows\\syswow64\\")
            || w.starts_with("c:\\windows\\sysnative\\")
            || w.starts_with("c:\\program files\\")
            || w.starts_with("c:\\program files (x86)\\")
            || w.starts_with("c:\\programdata\\microsoft\\windows defender\\platform\\");
        if system && native::known(&stem) {
            return Target::Tool(stem);
        }
        return Target::Program(w);
    }
    if let Some(a) = alias(&stem) {
        return Target::Cmdlet(a.to_string());
    }
    if base.ends_with(".exe") || base.ends_with(".com") || !stem.contains('-') {
        if native::known(&stem) {
            return Target::Tool(stem);
        }
        return Target::Program(w);
    }
    if native::known(&stem) {
        return Target::Tool(stem);
    }
    Target::Cmdlet(stem)
}

/// The verb-noun default: `Get-*` reads, `Set-*` changes, anything else is unknown.
pub fn by_verb(c: &str) -> Finding {
    match c.split_once('-') {
        Some((verb, _)) if READ_VERBS.contains(&verb) => finding(Effect::Reads, ""),
        Some((verb, _)) if CHANGE_VERBS.contains(&verb) => finding(Effect::Changes, ""),
        _ => finding(
            Effect::Changes,
            format!("unknown command `{c}`; treated as changing state"),
        ),
    }
}

/// The value of a run of elements (`a,b,c`, `'x'+'y'`, `$v`, `(…)`).
fn value_of(elems: &[Elem], vars: &HashMap<String, VarVal>) -> Val {
    let mut val = Val {
        exact: true,
        ..Val::default()
    };
    if let Some(t) = tokenize::fold(elems)
        && elems.len() > 1
    {
        val.texts.push(t);
        return val;
    }
    for e in elems {
        match e {
            Elem::Op(o) if o == "," => {}
            Elem::Word(w) => {
                val.texts.push(w.text.clone());
                if !w.subs.is_empty() {
                    val.exact = false;
                    w.subs.iter().for_each(|s| s.deep_words(&mut val.deep));
                }
            }
            Elem::Var(v) => match vars.get(v) {
                Some(VarVal::Texts(t)) => val.texts.extend(t.iter().cloned()),
                Some(VarVal::Output(words)) => {
                    val.exact = false;
                    val.texts.push(format!("${v}"));
                    val.deep.extend(words.iter().cloned());
                }
                _ if matches!(v.as_str(), "true" | "false" | "null") => {
                    val.texts.push(format!("${v}"));
                }
                _ => {
                    val.exact = v.starts_with("env:");
                    val.texts.push(format!("${v}"));
                }
            },
            Elem::Group(g) => match g.literal() {
                Some(t) => val.texts.push(t),
                None => {
                    // `@('a','b')` or `(Get-Service x)`: the words inside.
                    let inner: Vec<String> = g
                        .statements
                        .iter()
                        .flat_map(|s| s.stages.iter())
                        .flat_map(|s| s.elems.iter())
                        .filter_map(|e| e.word().map(String::from))
                        .collect();
                    let all_words = g.statements.len() == 1
                        && g.statements[0].stages.len() == 1
                        && g.statements[0].stages[0].elems.iter().all(|e| {
                            matches!(e, Elem::Word(w) if w.quote != Quote::None)
                                || matches!(e, Elem::Op(o) if o == ",")
                        });
                    if all_words {
                        val.texts.extend(inner);
                    } else {
                        val.exact = false;
                        val.texts.push("(…)".into());
                        g.deep_words(&mut val.deep);
                    }
                }
            },
            other => {
                val.exact = false;
                let mut w = Vec::new();
                other.deep_words(&mut w);
                val.texts.push(w.first().cloned().unwrap_or_default());
                val.deep.extend(w);
            }
        }
    }
    val
}

fn script_val(s: &Script, vars: &HashMap<String, VarVal>) -> Val {
    let elems: Vec<Elem> = s
        .statements
        .first()
        .and_then(|st| st.stages.first())
        .map(|s| s.elems.clone())
        .unwrap_or_default();
    value_of(&elems, vars)
}

/// Binds a command's elements into arguments, expanding splats of known hashtables.
fn build_args(elems: &[Elem], vars: &HashMap<String, VarVal>) -> Args {
    let mut args = Args::default();
    let mut i = 0;
    // A value: one element plus `, element` continuations.
    let take_value = |i: &mut usize| -> Vec<Elem> {
        let mut v = Vec::new();
        if let Some(e) = elems.get(*i) {
            v.push(e.clone());
            *i += 1;
        }
        while matches!(elems.get(*i), Some(Elem::Op(o)) if o == ",") {
            v.push(elems[*i].clone());
            *i += 1;
            if let Some(e) = elems.get(*i) {
                v.push(e.clone());
                *i += 1;
            }
        }
        // `'a' + 'b'` as one value.
        while matches!(elems.get(*i), Some(Elem::Word(w)) if w.quote == Quote::None && w.text == "+")
        {
            v.push(elems[*i].clone());
            *i += 1;
            if let Some(e) = elems.get(*i) {
                v.push(e.clone());
                *i += 1;
            }
        }
        v
    };
    while i < elems.len() {
        match &elems[i] {
            Elem::Param { name, attached } => {
                i += 1;
                match attached {
                    Some(a) => {
                        let v = value_of(std::slice::from_ref(a), vars);
                        args.flat.push(format!("-{name}:{}", v.lower()));
                        args.items.push(Arg::Named(name.clone(), Some(v)));
                    }
                    None => {
                        args.flat.push(format!("-{name}"));
                        let takes = !SWITCHES.contains(&name.as_str())
                            && matches!(elems.get(i), Some(e) if !matches!(e, Elem::Param { .. } | Elem::Redirect(_) | Elem::Op(_)));
                        if takes {
                            let v = value_of(&take_value(&mut i), vars);
                            args.flat.extend(v.texts.iter().map(|t| t.to_lowercase()));
                            args.items.push(Arg::Named(name.clone(), Some(v)));
                        } else {
                            args.items.push(Arg::Named(name.clone(), None));
                        }
                    }
                }
            }
            Elem::Splat(s) => {
                i += 1;
                match vars.get(s) {
                    Some(VarVal::Hash(pairs)) => {
                        for (k, v) in pairs {
                            args.flat.push(format!("-{k}"));
                            args.flat.extend(v.texts.iter().map(|t| t.to_lowercase()));
                            args.items.push(Arg::Named(k.clone(), Some(v.clone())));
                        }
                    }
                    Some(VarVal::Texts(t)) => {
                        for x in t {
                            args.flat.push(x.to_lowercase());
                            args.items.push(Arg::Pos(Val {
                                texts: vec![x.clone()],
                                exact: true,
                                deep: vec![],
                            }));
                        }
                    }
                    _ => args.unknown_splat = true,
                }
            }
            Elem::Redirect(op) => {
                i += 1;
                if !op.contains('&') && !op.starts_with('<') {
                    let target = elems
                        .get(i)
                        .map(|e| value_of(std::slice::from_ref(e), vars).texts.join(""))
                        .unwrap_or_default();
                    if elems.get(i).is_some() {
                        i += 1;
                    }
                    args.redirects.push(target);
                } else if op.starts_with('<') && elems.get(i).is_some() {
                    i += 1;
                }
            }
            Elem::Op(o) if o != "," => {
                args.flat.push(o.clone());
                i += 1;
            }
            Elem::Op(_) => i += 1,
            _ => {
                let v = value_of(&take_value(&mut i), vars);
                args.flat.extend(v.texts.iter().map(|t| t.to_lowercase()));
                args.items.push(Arg::Pos(v));
            }
        }
    }
    args
}
