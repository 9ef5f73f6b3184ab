//! The Slack app manifest (`slack-app-manifest.yml`) grants exactly what the code uses:
//!
//! - every Slack Web API method the code calls is covered by the manifest's bot scopes, through
//!   the method → scope table below (from Slack's method reference); a method missing from the
//!   table fails too, so a new call cannot slip in without its scope being looked up;
//! - every event type the events handler acts on is subscribed, and every subscription's scope is
//!   granted;
//! - no bot scope is granted that nothing needs (least privilege);
//! - the two request URLs are routes the HTTP server serves, and the README names every scope.
//!
//! Which methods are called is read from the source: every Slack method name written as a string
//! in `src/clients/slack/` (the Web API client, where the calls are made), and the first argument
//! of any `.call("…")` / `.call_form("…")` elsewhere in `src/` (Socket Mode opens its connection
//! that way).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// What a Slack Web API method needs.
#[derive(Debug, Clone, Copy)]
enum Needs {
    /// Any token will do.
    NoScope,
    /// All of these bot scopes.
    Bot(&'static [&'static str]),
    /// An app-level token (`xapp-…`) with this scope; app-level token scopes are not part of a
    /// manifest, so the manifest must at least tell the installer to create one.
    AppToken(&'static str),
}

/// Method → scopes, from Slack's method reference (docs.slack.dev/reference/methods/…, as
/// mirrored in slack-ruby/slack-api-ref `docs.slack.dev/methods/*.json`). The history methods
/// accept one scope per conversation type; the alert channel may be public (`channels:`) or
/// private (`groups:`), and direct messages are never read, so both channel scopes are needed.
const METHOD_SCOPES: &[(&str, Needs)] = &[
    ("chat.postMessage", Needs::Bot(&["chat:write"])),
    ("chat.update", Needs::Bot(&["chat:write"])),
    ("chat.postEphemeral", Needs::Bot(&["chat:write"])),
    ("chat.delete", Needs::Bot(&["chat:write"])),
    ("chat.getPermalink", Needs::NoScope),
    ("auth.test", Needs::NoScope),
    // Modals need interactivity turned on, not a scope.
    ("views.open", Needs::NoScope),
    ("views.update", Needs::NoScope),
    (
        "conversations.history",
        Needs::Bot(&["channels:history", "groups:history"]),
    ),
    (
        "conversations.replies",
        Needs::Bot(&["channels:history", "groups:history"]),
    ),
    (
        "conversations.info",
        Needs::Bot(&["channels:read", "groups:read"]),
    ),
    (
        "conversations.members",
        Needs::Bot(&["channels:read", "groups:read"]),
    ),
    ("users.list", Needs::Bot(&["users:read"])),
    ("users.info", Needs::Bot(&["users:read"])),
    ("users.lookupByEmail", Needs::Bot(&["users:read.email"])),
    ("usergroups.list", Needs::Bot(&["usergroups:read"])),
    ("usergroups.users.list", Needs::Bot(&["usergroups:read"])),
    (
        "apps.connections.open",
        Needs::AppToken("connections:write"),
    ),
];

/// Event type the handler acts on → the subscriptions that deliver it, each with its scope. All
/// listed subscriptions are required: the alert channel may be public or private.
const EVENT_SUBSCRIPTIONS: &[(&str, &[(&str, &str)])] = &[
    ("app_mention", &[("app_mention", "app_mentions:read")]),
    (
        "message",
        &[
            ("message.channels", "channels:history"),
            ("message.groups", "groups:history"),
        ],
    ),
];

/// The first dotted segment of every Slack Web API method family; a string literal is taken for a
/// method name only when it starts with one of these.
const SLACK_FAMILIES: &str = "admin|api|apps|assistant|auth|blocks|bookmarks|bots|calls|canvases|\
chat|conversations|dialog|dnd|emoji|files|functions|migration|oauth|openid|pins|reactions|\
reminders|rtm|search|stars|team|tooling|usergroups|users|views|workflows";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("readable dir") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The Slack methods named in the sources: `client` files (the Web API client) contribute every
/// Slack method literal; `other` files the literal first argument of `.call(` / `.call_form(`.
fn called_methods(client: &[(String, String)], other: &[(String, String)]) -> BTreeSet<String> {
    let literal =
        regex::Regex::new(&format!(r#""((?:{SLACK_FAMILIES})(?:\.[A-Za-z]+)+)""#)).unwrap();
    let call = regex::Regex::new(&format!(
        r#"\.call(?:_form)?\(\s*"((?:{SLACK_FAMILIES})(?:\.[A-Za-z]+)+)""#
    ))
    .unwrap();
    let mut found = BTreeSet::new();
    for (_, text) in client {
        found.extend(literal.captures_iter(text).map(|c| c[1].to_string()));
    }
    for (_, text) in other {
        found.extend(call.captures_iter(text).map(|c| c[1].to_string()));
    }
    found
}

/// The event types `src/slack_app/events.rs` acts on: the strings its `kind` is compared with.
fn handled_event_types(events_rs: &str) -> BTreeSet<String> {
    let cmp = regex::Regex::new(r#"kind\s*[!=]=\s*"([a-z_.]+)""#).unwrap();
    cmp.captures_iter(events_rs)
        .map(|c| c[1].to_string())
        .collect()
}

/// A value in the manifest: a scalar or a block list of scalars.
#[derive(Debug, Clone, PartialEq)]
enum Node {
    Scalar(String),
    List(Vec<String>),
}

/// Reads the subset of YAML the manifest is written in — nested `key:` mappings, `key: scalar`,
/// block lists of scalars (`- item`, indented under their key), comments — into dotted paths
/// (`settings.event_subscriptions.bot_events`). Anything else is refused, so the manifest cannot
/// drift into syntax this reader would misread.
fn read_yaml(text: &str) -> BTreeMap<String, Node> {
    let mut out: BTreeMap<String, Node> = BTreeMap::new();
    let mut stack: Vec<(usize, String)> = Vec::new();
    for (n, raw) in text.lines().enumerate() {
        let line = strip_comment(raw);
        if line.trim().is_empty() {
            continue;
        }
        assert!(!line.contains('\t'), "line {}: tabs are not YAML", n + 1);
        let indent = line.len() - line.trim_start().len();
        let content = line.trim();
        if let Some(item) = content.strip_prefix("- ") {
            while stack.last().is_some_and(|(i, _)| *i >= indent) {
                stack.pop();
            }
            let path = dotted(&stack);
            assert!(!path.is_empty(), "line {}: list item outside a key", n + 1);
            match out.entry(path).or_insert_with(|| Node::List(Vec::new())) {
                Node::List(items) => items.push(unquote(item, n)),
                Node::Scalar(_) => panic!("line {}: list item under a scalar", n + 1),
            }
            continue;
        }
        let (key, value) = content
            .split_once(':')
            .unwrap_or_else(|| panic!("line {}: not `key: value`: {content}", n + 1));
        assert!(
            !key.is_empty() && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
            "line {}: unsupported key {key:?}",
            n + 1
        );
        while stack.last().is_some_and(|(i, _)| *i >= indent) {
            stack.pop();
        }
        stack.push((indent, key.to_string()));
        let value = value.trim();
        if !value.is_empty() {
            let path = dotted(&stack);
            stack.pop();
            let previous = out.insert(path.clone(), Node::Scalar(unquote(value, n)));
            assert!(previous.is_none(), "line {}: {path} given twice", n + 1);
        }
    }
    out
}

fn dotted(stack: &[(usize, String)]) -> String {
    stack
        .iter()
        .map(|(_, k)| k.as_str())
        .collect::<Vec<_>>()
        .join(".")
}

/// The line without a trailing `# comment` (a `#` inside double quotes is kept).
fn strip_comment(line: &str) -> &str {
    let mut quoted = false;
    let mut prev_space = true;
    for (i, c) in line.char_indices() {
        match c {
            '"' => quoted = !quoted,
            '#' if !quoted && prev_space => return &line[..i],
            _ => {}
        }
        prev_space = c == ' ';
    }
    line
}

fn unquote(value: &str, n: usize) -> String {
    let v = value.trim();
    assert!(
        !v.starts_with(['[', '{', '\'', '&', '*', '!', '|', '>']),
        "line {}: unsupported YAML value {v:?}",
        n + 1
    );
    match v.strip_prefix('"').and_then(|v| v.strip_suffix('"')) {
        Some(inner) => inner.to_string(),
        None => v.to_string(),
    }
}

fn list<'a>(yaml: &'a BTreeMap<String, Node>, path: &str) -> &'a [String] {
    match yaml.get(path) {
        Some(Node::List(items)) => items,
        other => panic!("the manifest has no list at {path}: {other:?}"),
    }
}

fn scalar<'a>(yaml: &'a BTreeMap<String, Node>, path: &str) -> Option<&'a str> {
    match yaml.get(path) {
        Some(Node::Scalar(s)) => Some(s),
        None => None,
        other => panic!("{path} should be a scalar: {other:?}"),
    }
}

/// Everything wrong between the code (methods called, event types handled) and the manifest.
fn problems(
    methods: &BTreeSet<String>,
    handled: &BTreeSet<String>,
    manifest_text: &str,
) -> Vec<String> {
    let yaml = read_yaml(manifest_text);
    let granted: BTreeSet<&str> = list(&yaml, "oauth_config.scopes.bot")
        .iter()
        .map(String::as_str)
        .collect();
    let subscribed: BTreeSet<&str> = list(&yaml, "settings.event_subscriptions.bot_events")
        .iter()
        .map(String::as_str)
        .collect();
    let table: BTreeMap<&str, Needs> = METHOD_SCOPES.iter().copied().collect();
    let mut needed: BTreeSet<&str> = BTreeSet::new();
    let mut out = Vec::new();

    for method in methods {
        match table.get(method.as_str()) {
            None => out.push(format!(
                "{method} is called but has no entry in METHOD_SCOPES \
                 (tests/checks/slack_manifest.rs): look up its scope and add it"
            )),
            Some(Needs::NoScope) => {}
            Some(Needs::Bot(scopes)) => {
                for s in *scopes {
                    needed.insert(s);
                    if !granted.contains(s) {
                        out.push(format!(
                            "{method} needs the bot scope {s}, which slack-app-manifest.yml does not grant"
                        ));
                    }
                }
            }
            Some(Needs::AppToken(scope)) => {
                if !manifest_text.contains(scope) {
                    out.push(format!(
                        "{method} needs an app-level token with {scope}; the manifest's comments \
                         must tell the installer to create one"
                    ));
                }
            }
        }
    }

    let events: BTreeMap<&str, &[(&str, &str)]> = EVENT_SUBSCRIPTIONS.iter().copied().collect();
    for kind in handled {
        match events.get(kind.as_str()) {
            None => out.push(format!(
                "the events handler acts on {kind:?}, which has no entry in EVENT_SUBSCRIPTIONS"
            )),
            Some(subs) => {
                for (sub, _) in *subs {
                    if !subscribed.contains(sub) {
                        out.push(format!(
                            "the events handler acts on {kind:?} but the manifest does not subscribe to {sub}"
                        ));
                    }
                }
            }
        }
    }
    for sub in &subscribed {
        let entry = EVENT_SUBSCRIPTIONS
            .iter()
            .find_map(|(kind, subs)| subs.iter().find(|(s, _)| s == sub).map(|e| (*kind, e.1)));
        match entry {
            None => out.push(format!(
                "the manifest subscribes to {sub}, which nothing handles"
            )),
            Some((kind, _)) if !handled.contains(kind) => out.push(format!(
                "the manifest subscribes to {sub}, but the events handler ignores {kind:?} events"
            )),
            Some((_, scope)) => {
                needed.insert(scope);
                if !granted.contains(scope) {
                    out.push(format!(
                        "the subscription {sub} needs the bot scope {scope}, which the manifest does not grant"
                    ));
                }
            }
        }
    }

    for scope in &granted {
        if !needed.contains(scope) {
            out.push(format!(
                "the manifest grants {scope}, which no called method or handled event needs"
            ));
        }
    }
    out
}

fn sources(dir: &Path) -> Vec<(String, String)> {
    let mut files = Vec::new();
    rust_files(dir, &mut files);
    files.sort();
    files
        .into_iter()
        .map(|f| {
            let text = std::fs::read_to_string(&f).expect("readable source");
            (f.display().to_string(), text)
        })
        .collect()
}

#[test]
fn the_manifest_grants_every_scope_the_code_needs_and_no_other() {
    let src = root().join("src");
    let client_dir = src.join("clients").join("slack");
    let all = sources(&src);
    let (client, other): (Vec<_>, Vec<_>) = all
        .into_iter()
        .partition(|(path, _)| Path::new(path).starts_with(&client_dir));
    let methods = called_methods(&client, &other);
    // The scan must still see the calls; if the client changes how it names methods, this says
    // so instead of passing on an empty set.
    for known in ["chat.postMessage", "apps.connections.open"] {
        assert!(
            methods.contains(known),
            "the scan no longer finds {known}; found {methods:?}"
        );
    }
    let events_rs = std::fs::read_to_string(src.join("slack_app").join("events.rs")).unwrap();
    let handled = handled_event_types(&events_rs);
    assert!(
        handled.contains("message"),
        "the scan no longer finds the event types src/slack_app/events.rs handles; found {handled:?}"
    );

    let manifest = std::fs::read_to_string(root().join("slack-app-manifest.yml")).unwrap();
    let found = problems(&methods, &handled, &manifest);
    assert!(found.is_empty(), "{}", found.join("\n"));
}

#[test]
fn a_new_method_without_its_scope_fails() {
    let manifest = std::fs::read_to_string(root().join("slack-app-manifest.yml")).unwrap();
    let handled: BTreeSet<String> = ["message", "app_mention"].map(String::from).into();

    // A client that now also reads channel info (needs channels:read, not granted)…
    let client = vec![(
        "mod.rs".to_string(),
        r#"self.call_form("conversations.info", &[("channel", c)]).await"#.to_string(),
    )];
    // …and a caller elsewhere that adds a reaction (not in the table at all).
    let other = vec![(
        "x.rs".to_string(),
        r#"ctx.slack.call("reactions.add", &json!({}))"#.to_string(),
    )];
    let methods = called_methods(&client, &other);
    assert_eq!(
        methods,
        ["conversations.info", "reactions.add"]
            .map(String::from)
            .into()
    );
    let found = problems(&methods, &handled, &manifest).join("\n");
    assert!(
        found.contains("conversations.info needs the bot scope channels:read"),
        "{found}"
    );
    assert!(
        found.contains("reactions.add is called but has no entry in METHOD_SCOPES"),
        "{found}"
    );
}

#[test]
fn an_unsubscribed_event_or_an_unneeded_scope_fails() {
    let manifest = std::fs::read_to_string(root().join("slack-app-manifest.yml")).unwrap();
    let methods: BTreeSet<String> = ["chat.postMessage"].map(String::from).into();
    let handled: BTreeSet<String> = ["message", "app_mention"].map(String::from).into();

    let without_groups = manifest.replace("      - message.groups\n", "");
    assert_ne!(without_groups, manifest);
    let found = problems(&methods, &handled, &without_groups).join("\n");
    assert!(
        found.contains("does not subscribe to message.groups"),
        "{found}"
    );

    let extra_scope = manifest.replace(
        "      - chat:write\n",
        "      - chat:write\n      - files:write\n",
    );
    let found = problems(&methods, &handled, &extra_scope).join("\n");
    assert!(
        found.contains("the manifest grants files:write, which no called method"),
        "{found}"
    );
}

#[test]
fn the_request_urls_are_served_and_the_readme_names_every_scope() {
    let yaml = read_yaml(&std::fs::read_to_string(root().join("slack-app-manifest.yml")).unwrap());
    let router = std::fs::read_to_string(root().join("src").join("http").join("mod.rs")).unwrap();
    for key in [
        "settings.event_subscriptions.request_url",
        "settings.interactivity.request_url",
    ] {
        let url = scalar(&yaml, key).unwrap_or_else(|| panic!("{key} is missing"));
        let path = url
            .strip_prefix("https://")
            .and_then(|rest| rest.find('/').map(|i| &rest[i..]))
            .unwrap_or_else(|| panic!("{key} is not an https URL: {url}"));
        assert!(
            router.contains(&format!(".route(\"{path}\"")),
            "{key} is {path}, which src/http/mod.rs does not route"
        );
    }
    assert_eq!(
        scalar(&yaml, "settings.interactivity.is_enabled"),
        Some("true")
    );
    assert!(
        matches!(
            scalar(&yaml, "settings.socket_mode_enabled"),
            Some("true" | "false")
        ),
        "settings.socket_mode_enabled must be set"
    );

    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    for scope in list(&yaml, "oauth_config.scopes.bot") {
        assert!(
            readme.contains(&format!("`{scope}`")),
            "README.md does not name the bot scope `{scope}`"
        );
    }
}

#[test]
fn the_yaml_reader_refuses_what_it_does_not_understand() {
    let ok = read_yaml("a:\n  b:\n    - x # note\n    - \"#y\"\n  c: \"d\"\n");
    assert_eq!(
        ok.get("a.b"),
        Some(&Node::List(vec!["x".into(), "#y".into()]))
    );
    assert_eq!(ok.get("a.c"), Some(&Node::Scalar("d".into())));
    for bad in [
        "a: [x, y]\n",
        "a:\n\t- x\n",
        "just text\n",
        "a: &anchor x\n",
    ] {
        assert!(
            std::panic::catch_unwind(|| read_yaml(bad)).is_err(),
            "accepted {bad:?}"
        );
    }
}
