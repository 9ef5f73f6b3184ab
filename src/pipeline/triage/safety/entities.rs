//! What the alert says, and who said it: [`AlertFacts`] keeps every value of the alert document
//! with the field it came from, split by provenance —
//! - **observed**: values the sensor recorded in typed ECS fields (`host.ip`, `destination.ip`,
//!   `user.name`, `file.path`, `registry.path`, hashes, process ids, rule metadata);
//! - **attacker text**: everything else — command lines, script-block text, URLs, messages,
//!   registry data, e-mail subjects, the alert reason — free text the attacker wrote.
//!
//! The prompt-injection guard ([`strangers`]) uses it twice: a host, address, user, path or
//! process id that the alert does not contain at all is a stranger (the assistant was steered
//! towards it); and a command that *grants* something (an allow rule, a proxy, a trust, an
//! exclusion, an account) may not take its subject from attacker text alone
//! ([`AlertFacts::provenance`]). Reading or blocking something the attacker wrote stays fine.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::LazyLock;

use regex::Regex;
use serde_json::Value;

use super::places::{in_evidence, norm_path};
use crate::domain::Alert;

/// What the alert mentions, prepared once per triage.
pub struct AlertFacts {
    /// Every string and number value of the document, lowercased, joined by newlines.
    haystack: String,
    /// Normalised paths found anywhere in the document.
    paths: BTreeSet<String>,
    hosts: BTreeSet<String>,
    /// Whole numbers and IPv4 addresses in the document, so `4` does not match inside `3312`.
    numbers: BTreeSet<String>,
    ips: BTreeSet<String>,
    /// File names of the programs and files the alert names (`odupd.exe`).
    programs: BTreeSet<String>,
    /// Observed values (lowercased; paths normalised) → the field that recorded them.
    observed: BTreeMap<String, String>,
    /// Attacker-written fields: (dotted field name, lowercased value).
    text: Vec<(String, String)>,
}

/// Where the alert got a value from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Provenance {
    /// A typed field recorded it (the field's name).
    Observed(String),
    /// Only attacker-written free text contains it (those fields' names).
    AttackerText(Vec<String>),
    /// The alert does not contain it.
    Absent,
}

/// Typed ECS fields whose values the sensor recorded (a trailing `.` covers a whole object).
/// Anything not listed is treated as text the attacker may have written.
#[rustfmt::skip]
const OBSERVED_FIELDS: &[&str] = &[
    "@timestamp", "host.", "agent.", "source.ip", "source.address", "source.domain", "source.port",
    "destination.ip", "destination.address", "destination.domain", "destination.port", "client.ip",
    "client.address", "client.domain", "server.ip", "server.address", "server.domain",
    "related.ip", "related.user", "related.hosts", "related.hash", "user.name", "user.id",
    "user.domain", "user.target.name", "user.target.domain", "user.effective.name", "process.pid",
    "process.ppid", "process.name", "process.executable", "process.entity_id", "process.hash.",
    "process.pe.original_file_name", "process.parent.pid", "process.parent.name",
    "process.parent.executable", "process.parent.entity_id", "process.user.name", "file.path",
    "file.name", "file.directory", "file.extension", "file.hash.", "dll.path", "dll.name",
    "dll.hash.", "registry.path", "registry.key", "registry.value", "registry.hive",
    "dns.question.name", "dns.resolved_ip", "url.domain", "network.", "service.name", "event.",
    "kibana.alert.rule.", "kibana.alert.uuid", "kibana.alert.severity", "kibana.alert.risk_score",
    "kibana.alert.status", "kibana.alert.workflow_status", "kibana.space_ids",
    "winlog.event_data.targetusername", "winlog.event_data.subjectusername",
    "winlog.event_data.ipaddress", "winlog.computer_name",
];

fn is_observed_field(field: &str) -> bool {
    let f = field.to_lowercase();
    OBSERVED_FIELDS.iter().any(|o| {
        if let Some(prefix) = o.strip_suffix('.') {
            f == prefix || f.starts_with(o)
        } else {
            f == *o
        }
    })
}

/// Every scalar of the document with its dotted field name (`"a.b": {"c": 1}` → `a.b.c`).
fn collect_fields(v: &Value, path: &str, out: &mut Vec<(String, String)>) {
    match v {
        Value::String(s) => out.push((path.to_string(), s.clone())),
        Value::Number(n) => out.push((path.to_string(), n.to_string())),
        Value::Array(items) => items.iter().for_each(|i| collect_fields(i, path, out)),
        Value::Object(map) => {
            for (k, i) in map {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                collect_fields(i, &p, out);
            }
        }
        _ => {}
    }
}

impl AlertFacts {
    pub fn new(alert: &Alert) -> Self {
        let mut fields = Vec::new();
        collect_fields(&alert.raw, "", &mut fields);
        fields.push(("host.name".into(), alert.host_name.clone()));
        fields.extend(
            alert
                .host_ips
                .iter()
                .map(|ip| ("host.ip".into(), ip.clone())),
        );
        let values: Vec<String> = fields.iter().map(|(_, v)| super::normalise(v)).collect();
        let haystack = values.join("\n").to_lowercase();
        let mut paths = BTreeSet::new();
        for v in &values {
            for m in PATH.find_iter(v) {
                paths.insert(norm_path(m.as_str()));
            }
            // A whole value that is a path keeps its spaces (`C:\Program Files\…`).
            if PATH.find(v).is_some_and(|m| m.start() == 0) {
                paths.insert(norm_path(v));
            }
        }
        let mut programs: BTreeSet<String> = paths
            .iter()
            .filter_map(|p| p.rsplit('\\').next())
            .filter(|f| f.contains('.'))
            .map(String::from)
            .collect();
        let mut observed = BTreeMap::new();
        let mut text = Vec::new();
        for ((field, _), v) in fields.iter().zip(&values) {
            let lv = v.trim().to_lowercase();
            if lv.is_empty() {
                continue;
            }
            if is_observed_field(field) {
                if field.ends_with(".name")
                    && (field.starts_with("process")
                        || field.starts_with("file")
                        || field.starts_with("dll"))
                {
                    programs.insert(lv.clone());
                }
                if PATH.find(v).is_some_and(|m| m.start() == 0) {
                    observed
                        .entry(norm_path(v))
                        .or_insert_with(|| field.clone());
                }
                if let Some((_, bare)) = lv.rsplit_once('\\')
                    && field.contains("user")
                {
                    observed
                        .entry(bare.to_string())
                        .or_insert_with(|| field.clone());
                }
                observed.entry(lv).or_insert_with(|| field.clone());
            } else {
                text.push((field.clone(), lv));
            }
        }
        let mut hosts: BTreeSet<String> = ["localhost", ".", "127.0.0.1", "::1"]
            .into_iter()
            .map(String::from)
            .collect();
        for h in [
            Some(alert.host_name.clone()),
            crate::domain::alert::str_field(&alert.raw, "host.hostname"),
        ]
        .into_iter()
        .flatten()
        {
            let h = h.to_lowercase();
            if let Some((short, _)) = h.split_once('.') {
                hosts.insert(short.to_string());
            }
            hosts.insert(h);
        }
        hosts.extend(alert.host_ips.iter().map(|ip| ip.to_lowercase()));
        // Whole words that are all digits: not the digits inside IPs, hex ids or hashes.
        let numbers = IPV4
            .replace_all(&haystack, " ")
            .split(|c: char| !c.is_ascii_alphanumeric())
            .filter(|t| !t.is_empty() && t.chars().all(|c| c.is_ascii_digit()))
            .map(String::from)
            .collect();
        let ips = IPV4
            .find_iter(&haystack)
            .map(|m| m.as_str().to_string())
            .collect();
        Self {
            haystack,
            paths,
            hosts,
            numbers,
            ips,
            programs,
            observed,
            text,
        }
    }

    pub fn mentions(&self, needle: &str) -> bool {
        let n = needle.trim().to_lowercase();
        !n.is_empty() && self.haystack.contains(&n)
    }

    /// The alert's own text, value by value (for "repeats the attacker's command").
    pub fn values(&self) -> impl Iterator<Item = &str> {
        self.haystack.split('\n')
    }

    fn knows_host(&self, host: &str) -> bool {
        let h = host.trim_matches(|c| c == '\'' || c == '"').to_lowercase();
        h.starts_with("$env:computername") || self.hosts.contains(&h)
    }

    /// A path is known when the alert names it, names something inside it (a directory with at
    /// least three components, so `C:\` never counts), or names a directory it is inside.
    pub fn knows_path(&self, path: &str) -> bool {
        let p = norm_path(path);
        self.paths
            .iter()
            .any(|a| path_related(a, &p) || registry_item(a).is_some_and(|i| i == p))
    }

    /// Is `program` (a path or a file name) one the alert names — the attacker's own program?
    pub fn names_program(&self, program: &str) -> bool {
        let p = norm_path(program);
        let file = p.rsplit('\\').next().unwrap_or(&p);
        if p.contains('\\') {
            self.paths.contains(&p)
                || self.paths.contains(&format!("{p}.exe"))
                || ((self.programs.contains(file)
                    || self.programs.contains(&format!("{file}.exe")))
                    && !p.starts_with("c:\\windows\\"))
        } else {
            self.programs.contains(file)
                || self.programs.contains(&format!("{file}.exe"))
                || self
                    .programs
                    .iter()
                    .any(|x| x.rsplit('\\').next() == Some(file))
        }
    }

    /// Who put `value` in the alert: a typed field, only attacker-written text, or nobody.
    pub fn provenance(&self, value: &str) -> Provenance {
        let v = value
            .trim()
            .trim_matches(|c| c == '\'' || c == '"')
            .to_lowercase();
        if v.is_empty() {
            return Provenance::Absent;
        }
        let as_path = norm_path(&v);
        let bare = v.rsplit('\\').next().unwrap_or(&v);
        if let Some(f) = self
            .observed
            .get(&v)
            .or_else(|| self.observed.get(&as_path))
            .or_else(|| self.observed.get(bare))
        {
            return Provenance::Observed(f.clone());
        }
        // A path below an observed file's folder counts as observed too.
        if as_path.contains('\\')
            && let Some((_, f)) = self
                .observed
                .iter()
                .find(|(k, _)| k.contains('\\') && path_related(k, &as_path))
        {
            return Provenance::Observed(f.clone());
        }
        let fields: BTreeSet<String> = self
            .text
            .iter()
            .filter(|(_, t)| t.contains(&v) || (as_path != v && t.contains(&as_path)))
            .map(|(f, _)| f.clone())
            .collect();
        if fields.is_empty() {
            Provenance::Absent
        } else {
            Provenance::AttackerText(fields.into_iter().collect())
        }
    }
}

/// The key an attacker registers as a whole, when the alert names something inside it: a class
/// (`…\Classes\ms-settings` for `…\ms-settings\Shell\Open\command`), a CLSID, an IFEO or
/// SilentProcessExit entry, a service. Removing that key is the remediation.
fn registry_item(a: &str) -> Option<String> {
    const CONTAINERS: &[&str] = &[
        "\\software\\classes\\clsid\\",
        "\\software\\classes\\",
        "\\image file execution options\\",
        "\\silentprocessexit\\",
        "\\currentcontrolset\\services\\",
    ];
    if !a.starts_with("hk") {
        return None;
    }
    CONTAINERS.iter().find_map(|c| {
        let at = a.find(c)? + c.len();
        let item = a[at..].split('\\').next().filter(|s| !s.is_empty())?;
        Some(format!("{}{item}", &a[..at]))
    })
}

fn path_related(a: &str, p: &str) -> bool {
    let depth = |s: &str| s.split('\\').filter(|x| !x.is_empty()).count();
    let parent = |s: &str| s.rsplit_once('\\').map(|(d, _)| d.to_string());
    let a_dir = parent(a).filter(|d| depth(d) >= 3);
    a == p
        // The directory (or registry key) holding something the alert names.
        || a_dir.as_deref() == Some(p)
        // Something next to it, or below a directory the alert names.
        || a_dir.is_some_and(|d| p.starts_with(&format!("{d}\\")))
        || (depth(a) >= 3 && p.starts_with(&format!("{a}\\")))
}

fn re(s: &str) -> Regex {
    Regex::new(s).expect("valid regex")
}

pub(super) static PATH: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r#"(?i)(?:\b[a-z]:[\\/]|\b(?:hklm|hkcu|hku):?\\|\bhkey_[a-z_]+\\|\\\\[a-z0-9$._-]+\\)[^\s'"|;,()<>{}]*"#,
    )
});
pub(super) static IPV4: LazyLock<Regex> =
    LazyLock::new(|| re(r"\b(?:25[0-5]|2[0-4]\d|1?\d?\d)(?:\.(?:25[0-5]|2[0-4]\d|1?\d?\d)){3}\b"));
static URL: LazyLock<Regex> =
    LazyLock::new(|| re(r#"(?i)\b(?:https?|ftp)://([a-z0-9.\-_\[\]:]+)[^\s'"|;)]*"#));
static DOMAIN: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"(?i)\b((?:[a-z0-9-]+\.)+(?:com|net|org|io|ru|cn|info|biz|xyz|top|co|uk|de|tk|onion|site|online|club|me|cc|su|pw|ws|local|corp|lan|internal|example))\b",
    )
});
static HOST_PARAM: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r#"(?i)(?:(?:^|[\s(;|])-(?:computername|computer|cn|cimsession|hostname|targetname|server|remotecomputer)\s*[:\s]\s*|/node:)['"]?([^\s'",;|)-][^\s'",;|)]*)"#,
    )
});
static UNC_HOST: LazyLock<Regex> =
    LazyLock::new(|| re(r#"(?i)(?:^|[\s'"(=,])\\\\([a-z0-9._$-]+)\\"#));
static SESSION_HOST: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r#"(?i)\b(?:enter-pssession|new-pssession|test-netconnection|test-connection|ping|tnc|psexec(?:\.exe)?|mstsc|resolve-dnsname|nslookup|tracert|pathping|winrs)\s+(?:-[a-z]+\s+)?['"]?([a-z0-9][a-z0-9._-]*)"#,
    )
});
static USER_PARAM: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r#"(?i)-(?:username|user|identity|member|members|samaccountname|owner)\s*[:\s]\s*['"]?([^\s'",;|)]+)"#,
    )
});
static LOCALUSER_NAME: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r#"(?i)\b(?:get|set|disable|enable|remove|rename|new|unlock)-(?:localuser|aduser|adaccount)\b[^|;]*?-name\s+['"]?([^\s'",;|)]+)"#,
    )
});
static NET_USER: LazyLock<Regex> =
    LazyLock::new(|| re(r#"(?i)\bnet1?(?:\.exe)?\s+user\s+['"]?([^\s/'"]+)"#));
static PROCESS_ID: LazyLock<Regex> = LazyLock::new(|| {
    re(r"(?i)(?:-(?:id|processid|pid)\s*[:\s]\s*|taskkill\b[^|;]*?/pid\s+)(\d{1,7})\b")
});
static STRING_LITERAL: LazyLock<Regex> = LazyLock::new(|| re(r#"'[^']*'|"[^"]*""#));

/// Masks the contents of string literals (keeping the quotes), so rules about code do not fire
/// on data such as a `Select-String -Pattern 'Invoke-Expression'`.
pub fn mask_strings(text: &str) -> String {
    STRING_LITERAL
        .replace_all(text, |c: &regex::Captures<'_>| {
            let s = &c[0];
            let q = &s[..1];
            format!("{q}{}{q}", "_".repeat(s.chars().count().saturating_sub(2)))
        })
        .into_owned()
}

/// System files every host has, which a command may name without the alert naming them.
const WELL_KNOWN: &[&str] = &["c:\\windows\\system32\\drivers\\etc\\hosts"];

/// What a command names that the alert does not contain.
#[derive(Debug, Default)]
pub struct Strangers {
    /// `host DC01`, `IP 203.0.113.9`, `path C:\x`, … as shown to the analyst.
    pub names: Vec<String>,
    /// A stranger that blocks even a command that only reads (a host, URL or domain it would
    /// contact, an address it would connect to).
    pub hard: bool,
}

/// Hosts, URLs, domains, IPs, users, paths and process ids in `text` (normalised) that the alert
/// does not contain. Paths inside the evidence folders are never strangers.
pub fn strangers(
    facts: &AlertFacts,
    text: &str,
    reaches_out: bool,
    evidence: &[String],
) -> Strangers {
    let mut s = Strangers::default();
    for c in URL.captures_iter(text) {
        let url = c.get(0).map_or("", |m| m.as_str());
        if !facts.mentions(url) {
            s.names.push(format!("URL {url}"));
            s.hard = true;
        }
    }
    let hosts: BTreeSet<String> = HOST_PARAM
        .captures_iter(text)
        .chain(UNC_HOST.captures_iter(text))
        .chain(SESSION_HOST.captures_iter(text))
        .filter_map(|c| c.get(1).map(|m| m.as_str().to_string()))
        .filter(|h| !h.starts_with('$') || h.to_lowercase().starts_with("$env:computername"))
        .collect();
    for h in &hosts {
        if !facts.knows_host(h) && !facts.mentions(h) {
            s.names.push(format!("host {h}"));
            s.hard = true;
        } else if !facts.knows_host(h) {
            // Mentioned somewhere in the alert (e.g. a remote address), but not the alert's host:
            // reaching out to it from the affected host is not triage of this host.
            s.names
                .push(format!("remote host {h} (not the alert's host)"));
            s.hard = true;
        }
    }
    for m in IPV4.find_iter(text) {
        let ip = m.as_str();
        if ip.starts_with("127.") || ip == "0.0.0.0" || ip == "255.255.255.255" {
            continue;
        }
        if !facts.ips.contains(ip) && !hosts.contains(ip) {
            s.names.push(format!("IP {ip}"));
            s.hard |= reaches_out;
        }
    }
    let no_urls = URL.replace_all(text, " ");
    for c in DOMAIN.captures_iter(&no_urls) {
        let d = c.get(1).map_or("", |m| m.as_str());
        let dl = d.to_lowercase();
        if dl.starts_with("system.") || dl.starts_with("microsoft.") || hosts.contains(d) {
            continue;
        }
        if !facts.mentions(d) && !facts.knows_host(d) {
            s.names.push(format!("domain {d}"));
            s.hard = true;
        }
    }
    let users: BTreeSet<String> = USER_PARAM
        .captures_iter(text)
        .chain(LOCALUSER_NAME.captures_iter(text))
        .chain(NET_USER.captures_iter(text))
        .filter_map(|c| c.get(1).map(|m| m.as_str().to_string()))
        .filter(|u| !u.starts_with('$') && !u.starts_with('-') && !u.starts_with('/'))
        .collect();
    for u in &users {
        let bare = u.rsplit('\\').next().unwrap_or(u);
        if !facts.mentions(u) && !facts.mentions(bare) {
            s.names.push(format!("user {u}"));
        }
    }
    // Quoted paths are taken whole (they may hold spaces); unquoted ones up to a separator.
    let quoted = STRING_LITERAL
        .find_iter(text)
        .map(|m| m.as_str()[1..m.as_str().len() - 1].to_string())
        .filter(|inner| PATH.find(inner).is_some_and(|m| m.start() == 0));
    let masked = mask_strings(text);
    let bare = PATH.find_iter(&masked).map(|m| m.as_str().to_string());
    let mut seen = BTreeSet::new();
    for p in quoted.chain(bare).collect::<Vec<_>>() {
        let p = p.as_str();
        // UNC hosts were judged above; here only local paths and registry keys.
        if !p.starts_with("\\\\")
            && !facts.knows_path(p)
            && !WELL_KNOWN.contains(&norm_path(p).as_str())
            && !in_evidence(p, evidence)
            && seen.insert(norm_path(p))
        {
            s.names
                .push(format!("path {}", p.trim_end_matches(['\'', '"'])));
        }
    }
    for c in PROCESS_ID.captures_iter(text) {
        let pid = c.get(1).map_or("", |m| m.as_str());
        if !facts.numbers.contains(pid) {
            s.names.push(format!("process id {pid}"));
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn facts() -> AlertFacts {
        let raw = json!({
            "@timestamp": "2025-03-04T10:15:32.118Z",
            "kibana.alert.uuid": "a1",
            "kibana.alert.rule.name": "R",
            "host": {"name": "WS-FIN-042", "ip": ["10.20.4.42"]},
            "user": {"name": "CORP\\alice"},
            "destination": {"ip": "185.220.101.7"},
            "process": {"name": "odupd.exe", "pid": 3312,
                        "command_line": "odupd.exe --proxy 203.0.113.5:8080 --user helpdesk"},
            "registry": {"path": "HKLM\\SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\Run\\OneDriveUpdate",
                         "data": {"strings": ["C:\\ProgramData\\odu\\odupd.exe /silent"]}}
        });
        AlertFacts::new(&Alert::from_document("a1", "i", &raw, "@timestamp").unwrap())
    }

    #[test]
    fn provenance_tells_observed_from_attacker_text() {
        let f = facts();
        assert_eq!(
            f.provenance("185.220.101.7"),
            Provenance::Observed("destination.ip".into())
        );
        assert_eq!(
            f.provenance("alice"),
            Provenance::Observed("user.name".into())
        );
        assert_eq!(
            f.provenance("203.0.113.5"),
            Provenance::AttackerText(vec!["process.command_line".into()])
        );
        assert_eq!(
            f.provenance("helpdesk"),
            Provenance::AttackerText(vec!["process.command_line".into()])
        );
        assert_eq!(f.provenance("198.51.100.1"), Provenance::Absent);
    }

    #[test]
    fn paths_are_matched_across_spellings() {
        let f = facts();
        assert!(f.knows_path("HKLM:\\SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\Run"));
        assert!(f.knows_path("'C:\\ProgramData\\odu\\odupd.exe'"));
        assert!(f.knows_path("c:/programdata/odu"));
        assert!(!f.knows_path("C:\\"));
        assert!(!f.knows_path("C:\\Windows\\System32\\drivers\\etc\\hosts"));
    }

    #[test]
    fn the_alerts_own_programs() {
        let f = facts();
        assert!(f.names_program("odupd.exe"));
        assert!(f.names_program("odupd"));
        assert!(f.names_program("C:\\ProgramData\\odu\\odupd.exe"));
        assert!(!f.names_program("notepad.exe"));
    }
}
