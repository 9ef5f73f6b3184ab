//! What the gate knows about places on a Windows host: how to spell a file or registry path
//! one way (`HKLM:\…`, `Registry::HKEY_LOCAL_MACHINE\…`, `%SystemRoot%`, `$env:windir` all become
//! one form), and what writing to or deleting a place means — an autostart location (Run keys,
//! services, Winlogon, startup folders…), a protection setting (Defender, logging, LSA, UAC, RDP,
//! proxy, firewall, certificate stores) and in which direction a value moves it, a system root,
//! a store of evidence (event logs, prefetch, the USN journal), or the security agent's files.
//!
//! The tables are deliberately about *direction*: the same key can be the attacker's move
//! (`DisableRealtimeMonitoring = 1`) or the analyst's fix (`= 0`).

use super::effects::Effect;
use crate::text::glob;

/// One spelling for a path: lowercase, backslashes, registry hives short (`hklm\…`),
/// environment variables expanded to their defaults, no quotes and no trailing backslash.
pub fn norm_path(p: &str) -> String {
    let mut s = p
        .trim_matches(|c: char| c == '\'' || c == '"' || c.is_whitespace())
        .to_lowercase()
        .replace('/', "\\");
    s = expand_env(&s);
    if let Some(rest) = s.strip_prefix("microsoft.powershell.core\\") {
        s = rest.to_string();
    }
    for (long, short) in [
        ("registry::hkey_local_machine", "hklm"),
        ("registry::hkey_current_user", "hkcu"),
        ("registry::hkey_users", "hku"),
        ("registry::hkey_classes_root", "hkcr"),
        ("registry::hklm", "hklm"),
        ("registry::hkcu", "hkcu"),
        ("registry::hku", "hku"),
        ("hkey_local_machine", "hklm"),
        ("hkey_current_user", "hkcu"),
        ("hkey_users", "hku"),
        ("hkey_classes_root", "hkcr"),
        ("registry::", ""),
    ] {
        if let Some(rest) = s.strip_prefix(long) {
            s = format!("{short}{rest}");
            break;
        }
    }
    for hive in ["hklm:", "hkcu:", "hku:", "hkcr:"] {
        if let Some(rest) = s.strip_prefix(hive) {
            s = format!("{}{rest}", &hive[..hive.len() - 1]);
        }
    }
    while s.contains("\\\\") && !s.starts_with("\\\\") {
        s = s.replace("\\\\", "\\");
    }
    // `C:\x\.\y`, and `C:\x\..\y` once: enough to stop the cheapest disguise of a system path.
    s = s.replace("\\.\\", "\\");
    while let Some(i) = s.find("\\..\\") {
        let head = &s[..i];
        let cut = head.rfind('\\').map_or(0, |j| j);
        if cut == 0 {
            break;
        }
        s = format!("{}{}", &s[..cut], &s[i + 3..]);
    }
    s.trim_end_matches('\\').to_string()
}

/// `%SystemRoot%`, `$env:windir`, `${env:ProgramData}` … → their default values, so a system
/// path written through a variable is still recognised.
fn expand_env(s: &str) -> String {
    const VARS: &[(&str, &str)] = &[
        ("systemroot", "c:\\windows"),
        ("windir", "c:\\windows"),
        ("systemdrive", "c:"),
        ("programdata", "c:\\programdata"),
        ("allusersprofile", "c:\\programdata"),
        ("programfiles(x86)", "c:\\program files (x86)"),
        ("programfiles", "c:\\program files"),
        ("commonprogramfiles", "c:\\program files\\common files"),
        ("public", "c:\\users\\public"),
        ("comspec", "c:\\windows\\system32\\cmd.exe"),
    ];
    let mut out = s.to_string();
    for (name, value) in VARS {
        for form in [
            format!("%{name}%"),
            format!("${{env:{name}}}"),
            format!("$env:{name}"),
        ] {
            out = out.replace(&form, value);
        }
    }
    out
}

/// A registry path, as `(hive, key below the hive)`: `hku\S-1-5-…\` and `Wow6432Node\` are
/// dropped and `hkcr` becomes `software\classes`, so one table serves every hive.
pub fn registry_key(p: &str) -> Option<(String, String)> {
    let n = norm_path(p);
    let (hive, rest) = n.split_once('\\').unwrap_or((n.as_str(), ""));
    let rest = match hive {
        "hklm" | "hkcu" => rest.to_string(),
        "hku" => rest.split_once('\\').map_or("", |(_, r)| r).to_string(),
        "hkcr" => format!("software\\classes\\{rest}"),
        _ => return None,
    };
    let mut key = rest.replace("wow6432node\\", "");
    for n in 1..=9 {
        key = key.replace(&format!("controlset00{n}\\"), "currentcontrolset\\");
    }
    Some((hive.to_string(), key.trim_end_matches('\\').to_string()))
}

pub fn is_registry(p: &str) -> bool {
    registry_key(p).is_some()
}

/// Does `key` (which may end in a wildcard) name `table_key` or something below it?
fn under(key: &str, table_key: &str) -> bool {
    match key.find(['*', '?', '[']) {
        // A wildcard could expand into the table key: judge it as if it did.
        Some(i) => {
            let prefix = &key[..i];
            table_key.starts_with(prefix) || prefix.starts_with(&format!("{table_key}\\"))
        }
        None => key == table_key || key.starts_with(&format!("{table_key}\\")),
    }
}

/// Registry keys whose values start programs: writing there is persistence.
const AUTOSTART_KEYS: &[&str] = &[
    "software\\microsoft\\windows\\currentversion\\run",
    "software\\microsoft\\windows\\currentversion\\runonce",
    "software\\microsoft\\windows\\currentversion\\runonceex",
    "software\\microsoft\\windows\\currentversion\\runservices",
    "software\\microsoft\\windows\\currentversion\\runservicesonce",
    "software\\microsoft\\windows\\currentversion\\policies\\explorer\\run",
    "software\\microsoft\\windows\\currentversion\\explorer\\shell folders",
    "software\\microsoft\\windows\\currentversion\\explorer\\user shell folders",
    "software\\microsoft\\windows\\currentversion\\explorer\\browser helper objects",
    "software\\microsoft\\windows\\currentversion\\explorer\\shellexecutehooks",
    "software\\microsoft\\windows\\currentversion\\shellserviceobjectdelayload",
    "software\\microsoft\\windows\\currentversion\\group policy\\scripts",
    "software\\microsoft\\windows nt\\currentversion\\image file execution options",
    "software\\microsoft\\windows nt\\currentversion\\silentprocessexit",
    "software\\microsoft\\windows nt\\currentversion\\windows",
    "software\\microsoft\\windows nt\\currentversion\\terminal server\\install",
    "software\\microsoft\\active setup\\installed components",
    "software\\microsoft\\command processor",
    "software\\microsoft\\office test",
    "software\\microsoft\\netsh",
    "software\\policies\\microsoft\\windows\\system\\scripts",
    "system\\currentcontrolset\\control\\session manager",
    "system\\currentcontrolset\\control\\print\\monitors",
    "system\\currentcontrolset\\control\\print\\environments",
    "system\\currentcontrolset\\control\\safeboot",
    "system\\currentcontrolset\\control\\networkprovider",
    "system\\currentcontrolset\\control\\terminal server\\wds\\rdpwd",
    "system\\currentcontrolset\\control\\securityproviders",
    "environment",
    "control panel\\desktop",
];

/// Services whose stopping blinds the defenders: the security agent that raised the alert
/// (Elastic Agent / Endpoint), Microsoft Defender, Sysmon, the event log, and common EDRs.
#[rustfmt::skip]
pub const SECURITY_PRODUCTS: &[&str] = &[
    "windefend", "windows defender", "microsoft defender", "defender antivirus", "sense",
    "mssense", "wdnissvc", "wdnisdrv", "wdboot", "wdfilter", "msmpeng", "nissrv",
    "mpdefendercoreservice", "mpssvc", "windows firewall", "defender firewall",
    "securityhealthservice", "wscsvc", "sysmon", "sysmon64", "sysmondrv", "elastic-agent",
    "elastic agent", "elastic-endpoint", "elastic endpoint", "elasticendpoint",
    "elastic-endpoint-driver", "endpoint-security", "winlogbeat", "auditbeat", "packetbeat",
    "filebeat", "eventlog", "windows event log", "osqueryd", "csagent", "csfalconservice",
    "sentinelagent", "cbdefense", "carbonblack", "cylancesvc", "splunkforwarder",
];

/// Services that open the host to remote access when started.
pub const REMOTE_ACCESS_SERVICES: &[&str] = &[
    "remoteregistry",
    "termservice",
    "winrm",
    "sshd",
    "tlntsvr",
    "umrdpservice",
];

/// Does any of `names` (a service, process or product name, maybe a wildcard or a fragment
/// from a filter) stand for a security product? Returns the product it matched.
pub fn security_product(names: &[String]) -> Option<&'static str> {
    names
        .iter()
        .find_map(|n| product_in(n, SECURITY_PRODUCTS))
        .or_else(|| {
            // A filter or query naming the vendor (`name like '%Elastic%'`).
            names.iter().find_map(|n| {
                let n = n.to_lowercase();
                BRANDS.iter().copied().find(|b| n.contains(b))
            })
        })
}

/// Vendor words distinctive enough to mean the security product wherever they appear.
#[rustfmt::skip]
const BRANDS: &[&str] = &[
    "elastic agent", "elastic endpoint", "%elastic%", "*elastic*", "defender", "sysmon",
    "crowdstrike", "sentinelone", "carbon black", "cylance", "winlogbeat", "auditbeat",
];

pub fn remote_access_service(names: &[String]) -> Option<&'static str> {
    names
        .iter()
        .find_map(|n| product_in(n, REMOTE_ACCESS_SERVICES))
}

fn product_in(name: &str, table: &[&'static str]) -> Option<&'static str> {
    let n = name
        .trim_matches(|c: char| c == '\'' || c == '"' || c.is_whitespace())
        .to_lowercase();
    // A path is not a service or process name (`C:\\x\\*` must not match every product).
    if n.contains(['\\', '/', ':']) {
        return None;
    }
    let n = n.trim_end_matches(".exe").trim_end_matches(".sys");
    if n.is_empty() {
        return None;
    }
    if n.contains(['*', '?']) {
        return table.iter().copied().find(|p| glob(n, p));
    }
    table
        .iter()
        .copied()
        .find(|p| n == *p || n.contains(*p) && p.len() >= 5 || (n.len() >= 4 && p.contains(n)))
}

/// A registry value's data as on or off: `1`, `0x1`, `$true` are on; `0`, `$false` are off.
pub fn truth(data: &str) -> Option<bool> {
    let d = data
        .trim()
        .trim_matches(|c| c == '\'' || c == '"')
        .to_lowercase();
    match d.as_str() {
        "$true" | "true" | "yes" | "on" | "enabled" | "enable" => return Some(true),
        "$false" | "false" | "no" | "off" | "disabled" | "disable" | "$null" => {
            return Some(false);
        }
        _ => {}
    }
    let n = d
        .strip_prefix("0x")
        .map(|h| u64::from_str_radix(h, 16).ok())
        .unwrap_or_else(|| d.parse::<u64>().ok())?;
    Some(n != 0)
}

fn number(data: Option<&str>) -> Option<u64> {
    let d = data?
        .trim()
        .trim_matches(|c| c == '\'' || c == '"')
        .to_lowercase();
    d.strip_prefix("0x")
        .map(|h| u64::from_str_radix(h, 16).ok())
        .unwrap_or_else(|| d.parse::<u64>().ok())
}

/// Which way a value named like a switch moves protection: `Disable*` on, or `Enable*` off,
/// weakens. `None` when the name says nothing or the data is not a plain on/off.
fn toggle(name: &str, data: Option<&str>) -> Option<bool> {
    let on = truth(data?)?;
    if name.starts_with("disable") {
        Some(on)
    } else if name.starts_with("enable") || name == "start" {
        Some(!on)
    } else {
        None
    }
}

/// What a registry write or delete does.
pub struct RegJudgement {
    pub effect: Effect,
    pub what: String,
    /// The write helps an attacker (a proxy, a trust, an exclusion): its data is a subject whose
    /// provenance matters.
    pub helps: bool,
}

fn j(effect: Effect, what: impl Into<String>) -> Option<RegJudgement> {
    Some(RegJudgement {
        effect,
        what: what.into(),
        helps: false,
    })
}

fn helps(effect: Effect, what: impl Into<String>) -> Option<RegJudgement> {
    Some(RegJudgement {
        effect,
        what: what.into(),
        helps: true,
    })
}

/// The protection direction of a value in a protection key, by its name and data.
fn direction(weakens: Option<bool>, subject: &str, off: &str, on: &str) -> Option<RegJudgement> {
    match weakens {
        Some(true) => j(Effect::Weakens, format!("{off} ({subject})")),
        Some(false) => j(Effect::Strengthens, format!("{on} ({subject})")),
        None => j(
            Effect::Weakens,
            format!("changes a protection setting it cannot judge ({subject})"),
        ),
    }
}

/// Writing `name = data` under `key` (`name` `None`: creating the key or setting its default).
pub fn registry_write(key: &str, name: Option<&str>, data: Option<&str>) -> Option<RegJudgement> {
    let (_, k) = registry_key(key)?;
    // Shown as written; compared lowercased.
    let shown = match name.map(str::trim).filter(|n| !n.is_empty()) {
        Some(n) => format!("{key}, value {n}"),
        None => key.to_string(),
    };
    let name = name.map(|n| n.trim().to_lowercase()).unwrap_or_default();
    let data_l = data.map(|d| d.trim().to_lowercase());
    if let Some(p) = protection(&k, &name, data, true, &shown) {
        return Some(p);
    }
    if under(
        &k,
        "software\\microsoft\\windows nt\\currentversion\\winlogon",
    ) {
        let default = match name.as_str() {
            "userinit" => Some("c:\\windows\\system32\\userinit.exe"),
            "shell" => Some("explorer.exe"),
            _ => None,
        };
        if let (Some(d), Some(v)) = (default, data_l.as_deref())
            && v.trim_end_matches([',', ' ']) == d
        {
            return j(Effect::Changes, "");
        }
        if matches!(
            name.as_str(),
            "autoadminlogon" | "defaultpassword" | "defaultusername"
        ) {
            return helps(
                Effect::Weakens,
                "stores a password for automatic logon (Winlogon)",
            );
        }
        return j(
            Effect::Persists,
            format!("writes a Winlogon value that runs at logon ({shown})"),
        );
    }
    if let Some(svc) = service_key(&k) {
        return match name.as_str() {
            "imagepath" | "servicedll" | "failurecommand" | "servicemain" => j(
                Effect::Persists,
                format!("changes what the service {svc} runs"),
            ),
            "start" | "delayedautostart" => match number(data) {
                Some(0..=2) if REMOTE_ACCESS_SERVICES.contains(&svc.as_str()) => {
                    j(Effect::Weakens, format!("enables remote access ({svc})"))
                }
                Some(0..=2) => j(
                    Effect::Persists,
                    format!("makes the service {svc} start automatically"),
                ),
                Some(_) => j(Effect::Changes, ""),
                None => j(
                    Effect::Persists,
                    format!("changes how the service {svc} starts"),
                ),
            },
            "" if k.matches('\\').count() == 3 => {
                j(Effect::Persists, format!("creates the service {svc}"))
            }
            _ => j(Effect::Changes, ""),
        };
    }
    if under(&k, "software\\classes") {
        let hijack = (k.contains("\\shell\\") && k.ends_with("\\command"))
            || k.contains("\\shellex")
            || (k.contains("clsid\\")
                && ["inprocserver32", "localserver32", "treatas", "scriptleturl"]
                    .iter()
                    .any(|s| k.ends_with(s) || k.contains(&format!("\\{s}\\"))));
        if hijack || name == "delegateexecute" {
            return j(
                Effect::Persists,
                format!("hijacks a COM or shell handler, which runs code ({shown})"),
            );
        }
        return None;
    }
    // Blanking a value disarms it; it does not start anything.
    if data.is_some_and(|d| d.trim().trim_matches(['\'', '"']).is_empty()) {
        return j(Effect::Changes, "");
    }
    for a in AUTOSTART_KEYS {
        if under(&k, a) {
            // Only the values of these keys that start programs; the rest are ordinary settings.
            let starts = match *a {
                "software\\microsoft\\windows\\currentversion\\explorer\\shell folders"
                | "software\\microsoft\\windows\\currentversion\\explorer\\user shell folders" => {
                    name.contains("startup")
                }
                "software\\microsoft\\windows nt\\currentversion\\windows" => {
                    matches!(
                        name.as_str(),
                        "appinit_dlls" | "loadappinit_dlls" | "load" | "run"
                    )
                }
                "system\\currentcontrolset\\control\\session manager" => {
                    k.contains("appcertdlls")
                        || k.contains("knowndlls")
                        || matches!(
                            name.as_str(),
                            "bootexecute"
                                | "setupexecute"
                                | "execute"
                                | "s0initialcommand"
                                | "pendingfilerenameoperations"
                                | ""
                        )
                }
                "environment" => name == "userinitmprlogonscript",
                "control panel\\desktop" => name == "scrnsave.exe",
                "system\\currentcontrolset\\control\\networkprovider" => true,
                _ => true,
            };
            if starts {
                return j(
                    Effect::Persists,
                    format!("writes an autostart registry location ({shown})"),
                );
            }
        }
    }
    None
}

/// Deleting the value `name` (or, with `None`, the whole key) under `key`.
pub fn registry_delete(key: &str, name: Option<&str>) -> Option<RegJudgement> {
    let (_, k) = registry_key(key)?;
    // Shown as written; compared lowercased.
    let shown = match name.map(str::trim).filter(|n| !n.is_empty()) {
        Some(n) => format!("{key}, value {n}"),
        None => key.to_string(),
    };
    let name = name.map(|n| n.trim().to_lowercase()).unwrap_or_default();
    if let Some(p) = protection(&k, &name, None, false, &shown) {
        return Some(p);
    }
    // Whole hives or their first level: not remediation, destruction.
    if name.is_empty() && !k.contains('\\') {
        return j(
            Effect::Destroys,
            format!("deletes a whole registry branch ({key})"),
        );
    }
    if let Some(svc) = service_key(&k)
        && name.is_empty()
        && k.matches('\\').count() == 3
        && SECURITY_PRODUCTS.contains(&svc.as_str())
    {
        return j(
            Effect::Weakens,
            format!("removes the security service {svc} (security tooling)"),
        );
    }
    None
}

fn service_key(k: &str) -> Option<String> {
    let rest = k.strip_prefix("system\\currentcontrolset\\services\\")?;
    Some(rest.split('\\').next().unwrap_or(rest).to_string())
}

/// Protection settings: Defender, security services, logging, LSA, UAC, RDP, proxy, AMSI,
/// firewall, WinRM and certificate trust. `write` false: the value (or key) is deleted.
fn protection(
    k: &str,
    name: &str,
    data: Option<&str>,
    write: bool,
    shown: &str,
) -> Option<RegJudgement> {
    let defender = under(k, "software\\policies\\microsoft\\windows defender")
        || under(k, "software\\microsoft\\windows defender")
        || under(k, "software\\policies\\microsoft\\microsoft antimalware")
        || under(k, "software\\microsoft\\windows advanced threat protection");
    if defender {
        let policy = k.starts_with("software\\policies\\");
        if k.contains("\\exclusions") {
            return if write {
                helps(
                    Effect::Weakens,
                    format!("adds a Microsoft Defender exclusion (security tooling) ({shown})"),
                )
            } else {
                j(
                    Effect::Strengthens,
                    format!("removes a Microsoft Defender exclusion ({shown})"),
                )
            };
        }
        if !write {
            return if name.starts_with("disable") || (name.is_empty() && policy) {
                j(
                    Effect::Strengthens,
                    format!("removes a setting that turned Defender off ({shown})"),
                )
            } else {
                j(
                    Effect::Weakens,
                    format!("deletes Microsoft Defender settings (security tooling) ({shown})"),
                )
            };
        }
        let weakens = match name {
            "spynetreporting" => data.and_then(truth).map(|on| !on),
            "submitsamplesconsent" => number(data).map(|n| n == 2),
            "tamperprotection" => number(data).map(|n| n != 5 && n != 1),
            "puaprotection" | "mpenablepus" => data.and_then(truth).map(|on| !on),
            _ => toggle(name, data),
        };
        return direction(
            weakens,
            shown,
            "turns Microsoft Defender protection off (security tooling)",
            "turns Microsoft Defender protection back on",
        );
    }
    if let Some(svc) = service_key(k)
        && SECURITY_PRODUCTS.contains(&svc.as_str())
    {
        if !write {
            return j(
                Effect::Weakens,
                format!("deletes the security service's settings (security tooling) ({shown})"),
            );
        }
        return match (name, number(data)) {
            ("start", Some(0..=2)) => j(
                Effect::Strengthens,
                format!("sets the security service {svc} to start automatically"),
            ),
            ("start", _) => j(
                Effect::Weakens,
                format!("disables the security service {svc} (security tooling)"),
            ),
            _ => j(
                Effect::Weakens,
                format!("changes the security service {svc}'s registration (security tooling)"),
            ),
        };
    }
    let logging = under(k, "software\\policies\\microsoft\\windows\\powershell")
        || under(k, "software\\policies\\microsoft\\windows\\eventlog")
        || under(k, "system\\currentcontrolset\\services\\eventlog")
        || under(k, "software\\microsoft\\windows\\currentversion\\winevt")
        || under(k, "system\\currentcontrolset\\control\\wmi\\autologger")
        || under(
            k,
            "software\\microsoft\\windows\\currentversion\\policies\\system\\audit",
        );
    if logging {
        if !write {
            return if name.starts_with("disable") {
                j(
                    Effect::Strengthens,
                    format!("turns logging back on ({shown})"),
                )
            } else {
                j(
                    Effect::Weakens,
                    format!("removes logging settings: tampers with event logs ({shown})"),
                )
            };
        }
        return direction(
            toggle(name, data),
            shown,
            "turns logging off: tampers with event logs",
            "turns logging back on",
        );
    }
    if under(
        k,
        "system\\currentcontrolset\\control\\securityproviders\\wdigest",
    ) {
        let weakens = if write {
            data.and_then(truth)
        } else {
            Some(false)
        };
        return direction(
            weakens,
            shown,
            "makes Windows keep plain-text passwords in memory (WDigest)",
            "stops Windows keeping plain-text passwords (WDigest)",
        );
    }
    if under(k, "system\\currentcontrolset\\control\\lsa") {
        if matches!(
            name,
            "security packages" | "authentication packages" | "notification packages"
        ) {
            return j(
                Effect::Persists,
                format!("registers a DLL that LSA loads ({shown})"),
            );
        }
        let weakens = match (name, write) {
            (_, false) => None,
            ("runasppl", _) => data.and_then(truth).map(|on| !on),
            ("lmcompatibilitylevel", _) => number(data).map(|n| n < 3),
            ("limitblankpassworduse" | "nolmhash" | "restrictanonymous", _) => {
                data.and_then(truth).map(|on| !on)
            }
            ("everyoneincludesanonymous", _) => data.and_then(truth),
            // 0 turns Restricted Admin on, which lets a stolen hash log on over RDP.
            ("disablerestrictedadmin", _) => data.and_then(truth).map(|on| !on),
            _ => toggle(name, data),
        };
        return direction(
            weakens,
            shown,
            "weakens how Windows protects credentials (LSA)",
            "strengthens how Windows protects credentials (LSA)",
        );
    }
    if under(
        k,
        "software\\microsoft\\windows\\currentversion\\policies\\system",
    ) {
        let weakens = match name {
            "enablelua"
            | "promptonsecuredesktop"
            | "enableinstallerdetection"
            | "filteradministratortoken"
            | "consentpromptbehavioradmin" => data.and_then(truth).map(|on| !on),
            "localaccounttokenfilterpolicy" => data.and_then(truth),
            _ => return None,
        };
        let weakens = if write { weakens } else { Some(true) };
        return direction(
            weakens,
            shown,
            "weakens User Account Control",
            "restores User Account Control",
        );
    }
    if under(k, "system\\currentcontrolset\\control\\terminal server") {
        if !write {
            return j(Effect::Changes, "");
        }
        if name == "initialprogram" || k.contains("\\wds\\rdpwd") {
            return j(
                Effect::Persists,
                format!("sets a program Remote Desktop starts ({shown})"),
            );
        }
        let weakens = match name {
            "fdenytsconnections" => data.and_then(truth).map(|on| !on),
            "userauthentication" | "securitylayer" => data.and_then(truth).map(|on| !on),
            "fallowtogethelp" | "fallowunsolicited" => data.and_then(truth),
            _ => None,
        };
        return direction(
            weakens,
            shown,
            "opens Remote Desktop access",
            "closes Remote Desktop access",
        );
    }
    let proxy = under(
        k,
        "software\\microsoft\\windows\\currentversion\\internet settings",
    ) || under(
        k,
        "software\\policies\\microsoft\\windows\\currentversion\\internet settings",
    );
    if proxy {
        let proxy_value = matches!(
            name,
            "proxyserver" | "autoconfigurl" | "proxyoverride" | "autodetect"
        ) || k.ends_with("\\connections");
        if !write {
            return if proxy_value || name == "proxyenable" {
                j(
                    Effect::Strengthens,
                    format!("removes a proxy setting ({shown})"),
                )
            } else {
                j(Effect::Changes, "")
            };
        }
        if proxy_value {
            return helps(
                Effect::Weakens,
                format!(
                    "sets a system proxy, which can route traffic through the attacker ({shown})"
                ),
            );
        }
        if name == "proxyenable" {
            return direction(
                data.and_then(truth),
                shown,
                "turns a system proxy on",
                "turns the system proxy off",
            );
        }
        if k.contains("\\zones") || k.contains("\\lockdown") {
            return j(
                Effect::Weakens,
                format!("changes Internet security zones ({shown})"),
            );
        }
        return None;
    }
    if under(k, "software\\microsoft\\amsi")
        || under(k, "software\\microsoft\\windows script\\settings")
    {
        let weakens = if write {
            toggle(name, data).or(Some(name != "amsienable"))
        } else {
            Some(true)
        };
        return direction(
            weakens,
            shown,
            "weakens the Antimalware Scan Interface (AMSI, security tooling)",
            "turns AMSI back on",
        );
    }
    let firewall = under(
        k,
        "system\\currentcontrolset\\services\\sharedaccess\\parameters\\firewallpolicy",
    ) || under(k, "software\\policies\\microsoft\\windowsfirewall");
    if firewall {
        if !write {
            return j(Effect::Changes, "");
        }
        let weakens = match name {
            "enablefirewall" => data.and_then(truth).map(|on| !on),
            "defaultinboundaction" | "defaultoutboundaction" => number(data).map(|n| n == 0),
            _ => Some(true),
        };
        return direction(
            weakens,
            shown,
            "opens or turns off the Windows firewall (security tooling)",
            "turns the Windows firewall back on",
        );
    }
    if under(k, "software\\policies\\microsoft\\windows\\winrm")
        || under(k, "software\\microsoft\\windows\\currentversion\\wsman")
    {
        return if write {
            j(
                Effect::Weakens,
                format!("opens remote management (WinRM) ({shown})"),
            )
        } else {
            j(Effect::Changes, "")
        };
    }
    if let Some(store) = cert_store(k) {
        let distrust = store == "disallowed";
        return match (write, distrust) {
            (true, false) => helps(
                Effect::Weakens,
                format!("trusts a certificate in the {store} store ({shown})"),
            ),
            (false, false) => j(Effect::Changes, ""),
            (true, true) => j(
                Effect::Strengthens,
                format!("distrusts a certificate ({shown})"),
            ),
            (false, true) => j(
                Effect::Weakens,
                format!("removes a distrusted certificate ({shown})"),
            ),
        };
    }
    if under(
        k,
        "software\\microsoft\\windows\\currentversion\\wintrust\\trust providers",
    ) || under(k, "system\\currentcontrolset\\control\\deviceguard")
        || under(k, "system\\currentcontrolset\\control\\ci")
        || under(k, "software\\policies\\microsoft\\windows\\safer")
    {
        let weakens = if write {
            toggle(name, data)
        } else {
            Some(true)
        };
        return direction(
            weakens,
            shown,
            "weakens code-signing or code-integrity checks",
            "strengthens code-integrity checks",
        );
    }
    None
}

/// `software\microsoft\systemcertificates\root\…` → `root` (trusted stores and `disallowed`).
fn cert_store(k: &str) -> Option<&'static str> {
    for base in [
        "software\\microsoft\\systemcertificates\\",
        "software\\policies\\microsoft\\systemcertificates\\",
        "software\\microsoft\\enterprisecertificates\\",
    ] {
        if let Some(rest) = k.strip_prefix(base) {
            let store = rest.split('\\').next().unwrap_or(rest);
            return TRUST_STORES
                .iter()
                .copied()
                .find(|s| *s == store)
                .or((store == "disallowed").then_some("disallowed"));
        }
    }
    None
}

/// Certificate stores whose members Windows trusts to sign code or TLS.
pub const TRUST_STORES: &[&str] = &[
    "root",
    "authroot",
    "ca",
    "trustedpublisher",
    "trustedpeople",
    "trust",
];

/// The store of a `Cert:\LocalMachine\Root\…` path.
pub fn cert_path_store(p: &str) -> Option<String> {
    let n = norm_path(p);
    let rest = n.strip_prefix("cert:\\")?;
    let mut parts = rest.split('\\');
    let _location = parts.next()?;
    parts.next().map(String::from)
}

/// What writing a file at `path` means, beyond changing state.
pub fn file_write(path: &str) -> Option<(Effect, String)> {
    let p = norm_path(path);
    if p.contains("\\start menu\\programs\\startup") {
        return Some((
            Effect::Persists,
            format!("puts a file in a startup folder, which runs at logon ({path})"),
        ));
    }
    if p.ends_with("profile.ps1") || p.starts_with("$profile") {
        return Some((
            Effect::Persists,
            format!("writes a PowerShell profile, which runs in every session ({path})"),
        ));
    }
    if let Some(w) = evidence_store(&p) {
        return Some((Effect::Destroys, w));
    }
    if let Some(w) = agent_files(&p) {
        return Some((Effect::Weakens, w));
    }
    #[rustfmt::skip]
    const ACCESSIBILITY: &[&str] = &[
        "sethc.exe", "utilman.exe", "osk.exe", "magnify.exe", "narrator.exe", "displayswitch.exe",
        "atbroker.exe",
    ];
    if let Some(f) = p.strip_prefix("c:\\windows\\system32\\")
        && ACCESSIBILITY.contains(&f)
    {
        return Some((
            Effect::Persists,
            format!("replaces an accessibility program, a logon-screen backdoor ({path})"),
        ));
    }
    if p == "c:\\windows\\system32\\drivers\\etc\\hosts" {
        return None; // judged with the text written, see `hosts_entry`
    }
    if under(&p, "c:\\windows") || p == "c:\\windows" {
        return Some((
            Effect::Persists,
            format!(
                "plants a file in the Windows folder (system-file tampering or DLL hijacking) ({path})"
            ),
        ));
    }
    None
}

/// What deleting (or emptying, or moving away) `path` means, beyond changing state.
pub fn file_delete(path: &str, recursive: bool) -> Option<(Effect, String)> {
    let p = norm_path(path);
    if let Some(w) = evidence_store(&p) {
        return Some((Effect::Destroys, w));
    }
    let wild = p.contains(['*', '?']);
    let depth = p.split('\\').filter(|s| !s.is_empty()).count();
    // A drive (`C:`, `D:\*`); a bare relative name is not one.
    let drive = p.len() >= 2 && p.as_bytes()[1] == b':';
    let protected_root = (depth <= 1 && drive)
        || [
            "c:\\windows",
            "c:\\windows\\system32",
            "c:\\windows\\syswow64",
            "c:\\windows\\system32\\drivers",
            "c:\\windows\\system32\\config",
            "c:\\program files",
            "c:\\program files (x86)",
            "c:\\programdata",
            "c:\\users",
            "c:\\users\\public",
            "c:\\boot",
            "c:\\recovery",
            "c:\\documents and settings",
        ]
        .contains(&p.as_str())
        || (p.starts_with("c:\\users\\") && depth == 3 && !wild);
    if protected_root {
        return Some((
            Effect::Destroys,
            format!("deletes a system folder ({path})"),
        ));
    }
    let profile_level = p.starts_with("c:\\users\\") && depth <= 3;
    if (recursive || wild) && (under(&p, "c:\\windows") || profile_level || depth <= 2 && wild) {
        return Some((
            Effect::Destroys,
            format!("deletes recursively under a system folder ({path})"),
        ));
    }
    agent_files(&p).map(|w| (Effect::Weakens, w))
}

/// Places that hold the host's evidence: event logs, prefetch, Amcache, the NTFS journal,
/// shadow storage, registry hives, PowerShell history, the recycle bin.
fn evidence_store(p: &str) -> Option<String> {
    const STORES: &[(&str, &str)] = &[
        ("\\winevt\\logs", "clears or tampers with event logs"),
        (
            "c:\\windows\\prefetch",
            "deletes prefetch files (evidence of execution)",
        ),
        (
            "\\amcache.hve",
            "deletes the Amcache (evidence of execution)",
        ),
        ("\\$extend", "deletes the NTFS change journal (evidence)"),
        ("\\$usnjrnl", "deletes the NTFS change journal (evidence)"),
        ("\\$mft", "tampers with the NTFS master file table"),
        ("\\$logfile", "tampers with the NTFS log"),
        (
            "\\system volume information",
            "deletes shadow copies and restore points (destroys backups)",
        ),
        ("\\$recycle.bin", "empties the recycle bin (evidence)"),
        ("c:\\windows\\system32\\config", "deletes registry hives"),
        (
            "consolehost_history.txt",
            "deletes PowerShell command history (evidence)",
        ),
        (
            "c:\\windows\\system32\\sru",
            "deletes the resource-usage database (evidence)",
        ),
        (
            "c:\\windows\\system32\\logfiles",
            "deletes system log files (evidence)",
        ),
    ];
    STORES
        .iter()
        .find(|(frag, _)| p.contains(frag))
        .map(|(_, w)| (*w).to_string())
}

/// The security agent's and Defender's own files.
fn agent_files(p: &str) -> Option<String> {
    const AGENT: &[&str] = &[
        "c:\\program files\\elastic",
        "c:\\programdata\\elastic",
        "c:\\program files\\windows defender",
        "c:\\programdata\\microsoft\\windows defender",
        "c:\\program files\\windows defender advanced threat protection",
        "c:\\windows\\system32\\drivers\\wd",
        "c:\\windows\\system32\\drivers\\sysmondrv.sys",
        "c:\\windows\\sysmon.exe",
        "c:\\windows\\sysmon64.exe",
        "c:\\windows\\system32\\drivers\\elastic-endpoint-driver.sys",
    ];
    AGENT
        .iter()
        .any(|a| under(p, a))
        .then(|| format!("tampers with the security agent's files (security tooling) ({p})"))
}

/// Is `path` inside one of the evidence folders (`SAFETY_EVIDENCE_DIRS`)?
pub fn in_evidence(path: &str, dirs: &[String]) -> bool {
    let p = norm_path(path);
    !p.contains("\\..")
        && dirs.iter().any(|d| {
            let d = norm_path(d);
            d.split('\\').filter(|s| !s.is_empty()).count() >= 2
                && (p == d || p.starts_with(&format!("{d}\\")))
        })
}

/// A hosts-file line: pointing a name at `0.0.0.0` / `127.0.0.1` blocks it (a sinkhole); any
/// other address redirects the name, which helps an attacker.
pub fn hosts_entry(text: &str) -> (Effect, String) {
    let sinkhole = text
        .split(['\n', ','])
        .filter(|l| !l.trim().is_empty())
        .all(|l| {
            let ip = l.split_whitespace().next().unwrap_or("");
            matches!(ip, "0.0.0.0" | "127.0.0.1" | "::1" | "::")
        });
    if sinkhole {
        (Effect::Changes, String::new())
    } else {
        (
            Effect::Weakens,
            "adds a hosts-file entry that redirects a name to another address".into(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_have_one_spelling() {
        assert_eq!(
            norm_path("Registry::HKEY_LOCAL_MACHINE\\SOFTWARE\\x\\"),
            "hklm\\software\\x"
        );
        assert_eq!(norm_path("HKLM:\\Software"), "hklm\\software");
        assert_eq!(norm_path("$env:windir\\System32"), "c:\\windows\\system32");
        assert_eq!(norm_path("%SystemRoot%/Temp"), "c:\\windows\\temp");
        assert_eq!(norm_path("C:\\IR\\..\\Windows"), "c:\\windows");
        assert_eq!(
            registry_key("HKU\\S-1-5-21-1\\Software\\Wow6432Node\\Microsoft").map(|k| k.1),
            Some("software\\microsoft".into())
        );
    }

    #[test]
    fn registry_direction() {
        let run = "HKLM:\\SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\Run";
        assert_eq!(
            registry_write(run, Some("x"), Some("c:\\x.exe")).map(|r| r.effect),
            Some(Effect::Persists)
        );
        assert!(registry_delete(run, Some("x")).is_none());
        let def = "HKLM:\\SOFTWARE\\Policies\\Microsoft\\Windows Defender";
        assert_eq!(
            registry_write(def, Some("DisableAntiSpyware"), Some("1")).map(|r| r.effect),
            Some(Effect::Weakens)
        );
        assert_eq!(
            registry_write(def, Some("DisableAntiSpyware"), Some("0")).map(|r| r.effect),
            Some(Effect::Strengthens)
        );
        assert_eq!(
            registry_delete(def, Some("DisableAntiSpyware")).map(|r| r.effect),
            Some(Effect::Strengthens)
        );
        assert_eq!(
            registry_write(
                "HKLM:\\SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\R*",
                Some("x"),
                Some("y")
            )
            .map(|r| r.effect),
            Some(Effect::Persists)
        );
    }

    #[test]
    fn products_and_wildcards() {
        assert_eq!(security_product(&["Win*".into()]), Some("windefend"));
        assert_eq!(security_product(&["'*defend*'".into()]), Some("windefend"));
        assert_eq!(
            security_product(&["Elastic Agent".into()]),
            Some("elastic agent")
        );
        assert_eq!(security_product(&["odusvc".into()]), None);
        assert!(glob("*x?z", "aaxyz"));
        assert!(!glob("a*", "ba"));
    }

    #[test]
    fn deletions_by_place() {
        assert!(file_delete("C:\\Windows\\Temp\\x", true).is_some());
        assert!(file_delete("C:\\ProgramData\\odu", true).is_none());
        assert!(file_delete("C:\\ProgramData\\odu\\odupd.exe", false).is_none());
        assert!(file_delete("C:\\Windows", false).is_some());
        assert!(file_delete("C:\\Users\\bob", false).is_some());
        assert!(file_delete("C:\\Windows\\System32\\winevt\\Logs\\Security.evtx", false).is_some());
        assert!(in_evidence("C:\\IR\\case1\\x.zip", &["C:\\IR".into()]));
        assert!(!in_evidence("C:\\IR\\..\\Windows\\x", &["C:\\IR".into()]));
        assert!(!in_evidence("C:\\IRX\\x", &["C:\\IR".into()]));
    }
}
