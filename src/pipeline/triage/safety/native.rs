//! The effect of native Windows programs, by their sub-command and switches: `vssadmin list`
//! reads while `vssadmin delete` destroys backups, `wevtutil qe|gli|epl` read while `wevtutil cl`
//! destroys evidence and `wevtutil sl … /e:true` turns a log back on, `bcdedit /enum` reads
//! while `bcdedit /set … recoveryenabled no` weakens recovery, `net user NAME` reads while
//! `net user NAME PASSWORD` sets a password, and so on. Nested shells (`powershell -Command`,
//! `cmd /c`) have their script judged as part of the command.
//!
//! Programs blocked whatever their arguments (credential dumpers, remote-execution tools,
//! living-off-the-land binaries that run arbitrary code) are here too.

use super::effects::{Arg, Args, Effect, Finding, Upstream, Walk, finding, reg_finding};
use super::places::{TRUST_STORES, registry_delete, registry_write, security_product};

/// Programs that only read.
#[rustfmt::skip]
const READ_TOOLS: &[&str] = &[
    "whoami", "hostname", "netstat", "tasklist", "systeminfo", "quser", "qwinsta", "query",
    "getmac", "driverquery", "findstr", "find", "ver", "gpresult", "tree", "more", "chcp",
    "sigcheck", "sigcheck64", "autorunsc", "autorunsc64", "tcpvcon", "listdlls", "pslist",
    "psloggedon", "psinfo", "accesschk", "accesschk64", "strings", "timeout", "qprocess", "nltest",
    "dsquery", "dsget", "nslookup", "ping", "tracert", "pathping", "wevtutil.exe", "fc", "comp",
    "whoami.exe", "handle", "handle64", "tzutil", "w32tm", "openfiles", "vol", "label", "date",
    "time", "echo",
];

/// Programs that dump credentials.
#[rustfmt::skip]
const CREDENTIAL_TOOLS: &[&str] = &[
    "mimikatz", "procdump", "procdump64", "ntdsutil", "secretsdump", "secretsdump.py", "lazagne",
    "pypykatz", "nanodump", "rubeus", "sharphound", "kekeo", "safetykatz",
];

/// Programs that run a command on another machine.
#[rustfmt::skip]
const REMOTE_EXEC: &[&str] = &[
    "psexec", "psexec64", "paexec", "wmiexec", "smbexec", "wmiexec.py", "winrs", "dcomexec",
    "atexec",
];

/// Programs that connect to another host.
#[rustfmt::skip]
const REMOTE_CLIENTS: &[&str] = &[
    "ftp", "tftp", "ssh", "scp", "sftp", "plink", "putty", "pscp", "telnet", "nc", "ncat",
    "netcat", "socat", "curl", "wget", "mstsc", "rdesktop", "teamviewer", "anydesk",
];

/// Signed Windows programs that run arbitrary code handed to them.
#[rustfmt::skip]
const LOLBINS: &[&str] = &[
    "mshta", "regsvr32", "rundll32", "installutil", "msbuild", "cmstp", "odbcconf", "regasm",
    "regsvcs", "wscript", "cscript", "msxsl", "bitsadmin", "forfiles", "pcalua", "hh", "msiexec",
    "control", "infdefaultinstall", "ieexec", "msdt", "presentationhost", "mavinject", "bash",
    "wsl", "python", "python3", "node", "java", "javaw", "perl", "ruby", "powershell_ise", "runas",
    "explorer", "conhost", "syncappvpublishingserver", "scriptrunner", "appvlp", "msconfig",
    "dnscmd", "csc", "vbc", "jsc", "ilasm", "xwizard", "mmc", "winword", "excel", "wmic.exe",
];

/// Programs this module judges by their arguments.
#[rustfmt::skip]
const JUDGED: &[&str] = &[
    "net", "net1", "reg", "sc", "schtasks", "netsh", "wmic", "wevtutil", "vssadmin", "bcdedit",
    "reagentc", "wbadmin", "fsutil", "auditpol", "fltmc", "logman", "certutil", "icacls", "cacls",
    "cmdkey", "vaultcmd", "sysmon", "sysmon64", "elastic-agent", "elastic-endpoint", "mpcmdrun",
    "taskkill", "route", "manage-bde", "dism", "wusa", "winrm", "setspn", "powershell", "pwsh",
    "cmd", "ipconfig", "arp", "nbtstat", "klist", "attrib", "cipher", "format", "diskpart",
    "sdelete", "sdelete64", "takeown", "robocopy", "xcopy", "shutdown", "logoff", "tsdiscon",
    "rwinsta", "reset", "where", "mofcomp",
];

/// Does the gate know this program (by its file name without `.exe`)?
pub fn known(stem: &str) -> bool {
    [
        READ_TOOLS,
        CREDENTIAL_TOOLS,
        REMOTE_EXEC,
        REMOTE_CLIENTS,
        LOLBINS,
        JUDGED,
    ]
    .iter()
    .any(|t| t.contains(&stem))
}

fn has(flat: &[String], x: &str) -> bool {
    flat.iter().any(|f| f == x)
}

fn has_prefix(flat: &[String], x: &str) -> bool {
    flat.iter().any(|f| f.starts_with(x))
}

/// The token after `x`.
fn after(flat: &[String], x: &str) -> Option<String> {
    flat.iter()
        .position(|f| f == x)
        .and_then(|i| flat.get(i + 1).cloned())
}

/// `key=value` (or `key= value`) among the tokens.
fn kv(flat: &[String], key: &str) -> Option<String> {
    let eq = format!("{key}=");
    flat.iter().enumerate().find_map(|(i, f)| {
        let v = f.strip_prefix(&eq)?;
        if v.is_empty() {
            flat.get(i + 1).cloned()
        } else {
            Some(v.to_string())
        }
    })
}

/// The most severe of a write's findings (the place can make a write worse than a change).
fn worst(v: Vec<Finding>) -> Finding {
    v.into_iter()
        .max_by_key(|x| x.effect)
        .unwrap_or_else(|| finding(Effect::Changes, ""))
}

fn f(effect: Effect, what: impl Into<String>) -> Finding {
    finding(effect, what)
}

fn grant(effect: Effect, what: impl Into<String>, grants: Vec<String>) -> Finding {
    Finding {
        effect,
        what: what.into(),
        grants,
    }
}

pub fn judge(
    w: &mut Walk<'_>,
    tool: &str,
    a: &Args,
    up: Option<&Upstream>,
    out: &mut Vec<Finding>,
) {
    let flat = &a.flat;
    let first = flat.first().map(String::as_str).unwrap_or("");
    let joined = flat.join(" ");
    if CREDENTIAL_TOOLS.contains(&tool) {
        out.push(f(Effect::Executes, "credential dumping tool or technique"));
        return;
    }
    if REMOTE_EXEC.contains(&tool) {
        out.push(f(Effect::ReachesOut, "remote process execution"));
        return;
    }
    if REMOTE_CLIENTS.contains(&tool) {
        out.push(f(
            Effect::ReachesOut,
            format!("connects to another host ({tool})"),
        ));
        return;
    }
    if LOLBINS.contains(&tool) {
        out.push(f(
            Effect::Executes,
            "living-off-the-land binary that runs arbitrary code",
        ));
        return;
    }
    if READ_TOOLS.contains(&tool) {
        let changes = match tool {
            "tzutil" => has(flat, "/s"),
            "w32tm" => !flat
                .iter()
                .any(|x| x == "/query" || x == "/tz" || x == "/monitor" || x == "/stripchart"),
            "openfiles" => has(flat, "/disconnect") || has(flat, "/local"),
            "handle" | "handle64" => has(flat, "-c"),
            "label" | "date" | "time" => !flat.is_empty() && !has(flat, "/t"),
            _ => false,
        };
        out.push(f(
            if changes {
                Effect::Changes
            } else {
                Effect::Reads
            },
            "",
        ));
        return;
    }
    match tool {
        "where" => out.push(f(Effect::Reads, "")),
        "ipconfig" => out.push(f(
            if flat.iter().any(|x| ["/release", "/renew", "/flushdns", "/registerdns", "/release6", "/renew6", "/setclassid"].contains(&x.as_str())) {
                Effect::Changes
            } else {
                Effect::Reads
            },
            "",
        )),
        "arp" => out.push(f(if has(flat, "-d") || has(flat, "-s") || has(flat, "/d") || has(flat, "/s") { Effect::Changes } else { Effect::Reads }, "")),
        "nbtstat" => out.push(f(if has(flat, "-r") || has(flat, "-rr") || has(flat, "/r") { Effect::Changes } else { Effect::Reads }, "")),
        "klist" => out.push(f(if has(flat, "purge") || has(flat, "add_bind") { Effect::Changes } else { Effect::Reads }, "")),
        "attrib" => out.push(f(if flat.iter().any(|x| x.starts_with('+') || x.starts_with('-') && x.len() == 2) { Effect::Changes } else { Effect::Reads }, "")),
        "cipher" => out.push(if has_prefix(flat, "/w") {
            f(Effect::Destroys, "wipes free disk space, destroying deleted evidence")
        } else if flat.iter().any(|x| ["/e", "/d", "/k", "/r", "/u", "/x", "/rekey"].contains(&x.as_str())) {
            f(Effect::Changes, "")
        } else {
            f(Effect::Reads, "")
        }),
        "format" | "diskpart" => out.push(f(
            Effect::Destroys,
            "destroys backups, recovery options or disks",
        )),
        "sdelete" | "sdelete64" => out.push(f(
            Effect::Destroys,
            "securely deletes files, destroying evidence",
        )),
        "takeown" => out.push(f(Effect::Changes, "")),
        "mofcomp" => out.push(if flat.is_empty() || has(flat, "-check") {
            f(Effect::Reads, "")
        } else {
            f(
                Effect::Persists,
                "compiles a WMI definition (MOF), which can create an event subscription",
            )
        }),
        "robocopy" | "xcopy" => {
            let dest = flat.iter().filter(|x| !x.starts_with('/') && !x.starts_with('-')).nth(1).cloned();
            if (has(flat, "/move") || has(flat, "/mov"))
                && let Some(src) = flat.first()
                && let Some((e, what)) = super::places::file_delete(src, true)
            {
                out.push(f(e, what));
            }
            match dest {
                Some(d) if !has(flat, "/move") && !has(flat, "/mov") && !has(flat, "/mir") && !has(flat, "/purge") => {
                    out.extend(w.write_to(&d, ""))
                }
                Some(d) => {
                    out.extend(w.write_to(&d, ""));
                    out.push(f(Effect::Changes, ""));
                }
                None => out.push(f(Effect::Changes, "")),
            }
        }
        "shutdown" => out.push(if has(flat, "/a") || has(flat, "-a") {
            f(Effect::Changes, "")
        } else {
            f(Effect::Changes, "restarts or shuts down the host (evidence in memory is lost)")
        }),
        "logoff" | "tsdiscon" | "rwinsta" | "reset" => out.push(f(Effect::Changes, "")),
        "powershell" | "pwsh" => powershell(w, tool, a, up, out),
        "cmd" => cmd(w, a, out),
        "net" | "net1" => net(flat, up, out),
        "reg" => reg(w, flat, out),
        "sc" => sc(w, flat, out),
        "schtasks" => schtasks(flat, out),
        "netsh" => netsh(w, flat, &joined, out),
        "wmic" => wmic(flat, &joined, out),
        "wevtutil" => wevtutil(w, flat, out),
        "vssadmin" => out.push(match first {
            "list" | "query" => f(Effect::Reads, ""),
            "delete" => f(Effect::Destroys, "deletes shadow copies (destroys backups)"),
            "resize" => f(
                Effect::Destroys,
                "shrinks shadow storage, which deletes shadow copies (destroys backups)",
            ),
            "revert" => f(Effect::Destroys, "reverts a volume to a shadow copy (destroys backups and current evidence)"),
            _ => f(Effect::Changes, ""),
        }),
        "bcdedit" => bcdedit(w, flat, out),
        "reagentc" => out.push(match first {
            "/info" | "" => f(Effect::Reads, ""),
            "/disable" => f(
                Effect::Weakens,
                "turns off the Windows Recovery Environment (recovery options)",
            ),
            "/enable" => f(Effect::Strengthens, "re-enables the Windows Recovery Environment"),
            _ => f(Effect::Changes, ""),
        }),
        "wbadmin" => out.push(match first {
            "get" | "" => f(Effect::Reads, ""),
            "delete" => f(Effect::Destroys, "deletes backups (destroys backups)"),
            "disable" | "stop" => f(Effect::Weakens, "stops or disables backups"),
            _ => f(Effect::Changes, ""),
        }),
        "fsutil" => fsutil(flat, out),
        "auditpol" => {
            out.push(if has_prefix(flat, "/get") || has_prefix(flat, "/list") || flat.is_empty() {
                f(Effect::Reads, "")
            } else if has_prefix(flat, "/clear") || has_prefix(flat, "/remove") {
                f(Effect::Weakens, "disables or weakens security tooling (clears the audit policy)")
            } else if has_prefix(flat, "/restore") {
                f(Effect::Weakens, "disables or weakens security tooling (replaces the audit policy from a file)")
            } else if has_prefix(flat, "/set") {
                if joined.contains("disable") {
                    f(Effect::Weakens, "disables or weakens security tooling (turns auditing off)")
                } else {
                    f(Effect::Strengthens, "turns auditing on")
                }
            } else if has_prefix(flat, "/backup") {
                match flat.iter().find_map(|x| x.strip_prefix("/file:")) {
                    Some(file) => worst(w.write_to(file, "")),
                    None => f(Effect::Changes, ""),
                }
            } else {
                f(Effect::Changes, "")
            });
        }
        "fltmc" => out.push(match first {
            "" | "filters" | "instances" | "volumes" => f(Effect::Reads, ""),
            "unload" | "detach" => f(
                Effect::Weakens,
                "disables or weakens security tooling (unloads a file-system filter driver)",
            ),
            _ => f(Effect::Changes, ""),
        }),
        "logman" => out.push(match first {
            "query" | "" => f(Effect::Reads, ""),
            "stop" | "delete" | "update" | "import" => f(
                Effect::Weakens,
                "stops or changes an event trace session (telemetry)",
            ),
            _ => f(Effect::Changes, ""),
        }),
        "certutil" => certutil(flat, out),
        "icacls" | "cacls" => icacls(flat, out),
        "cmdkey" => out.push(if has_prefix(flat, "/list") || flat.is_empty() {
            f(Effect::Reads, "")
        } else if has_prefix(flat, "/add") || has_prefix(flat, "/generic") {
            grant(
                Effect::Weakens,
                "stores credentials for another host",
                flat.iter().filter_map(|x| x.split_once(':').map(|(_, v)| v.to_string())).collect(),
            )
        } else {
            f(Effect::Changes, "")
        }),
        "vaultcmd" => out.push(if has_prefix(flat, "/addcreds") {
            f(Effect::Weakens, "stores credentials")
        } else if has_prefix(flat, "/list") {
            f(Effect::Reads, "")
        } else {
            f(Effect::Changes, "")
        }),
        "sysmon" | "sysmon64" => out.push(if has(flat, "-u") || has(flat, "/u") {
            f(Effect::Weakens, "disables or weakens security tooling (uninstalls Sysmon telemetry)")
        } else if (has(flat, "-c") || has(flat, "/c")) && flat.len() > 1 {
            f(Effect::Weakens, "disables or weakens security tooling (replaces Sysmon's configuration)")
        } else if has(flat, "-i") || has(flat, "/i") {
            f(Effect::Strengthens, "installs Sysmon")
        } else if flat.is_empty() || has(flat, "-c") || has(flat, "-s") || has(flat, "-?") {
            f(Effect::Reads, "")
        } else {
            f(Effect::Changes, "")
        }),
        "elastic-agent" | "elastic-endpoint" => out.push(match first {
            "status" | "inspect" | "version" | "help" | "test" | "" => f(Effect::Reads, ""),
            "uninstall" | "unenroll" | "stop" => f(
                Effect::Weakens,
                "disables or weakens security tooling (removes the Elastic agent that raised the alert)",
            ),
            _ => f(Effect::Changes, ""),
        }),
        "mpcmdrun" => out.push(if has_prefix(flat, "-removedefinitions") || has_prefix(flat, "-disableservice") {
            f(Effect::Weakens, "disables or weakens security tooling (removes Defender signatures)")
        } else if has_prefix(flat, "-restore") {
            f(Effect::Weakens, "restores a file Microsoft Defender quarantined")
        } else if has_prefix(flat, "-downloadfile") || has_prefix(flat, "-url") {
            f(Effect::ReachesOut, "download cradle: fetches content from the network")
        } else if has_prefix(flat, "-scan") || has_prefix(flat, "-signatureupdate") || has_prefix(flat, "-wdenable") {
            f(Effect::Strengthens, "runs a Microsoft Defender scan or signature update")
        } else if has_prefix(flat, "-validatemapsconnection") || has_prefix(flat, "-checkexclusion") || flat.is_empty() {
            f(Effect::Reads, "")
        } else {
            f(Effect::Changes, "")
        }),
        "taskkill" => {
            let mut names: Vec<String> = flat
                .iter()
                .enumerate()
                .filter(|(i, _)| *i > 0 && (flat[i - 1] == "/im" || flat[i - 1] == "-im"))
                .map(|(_, x)| x.clone())
                .collect();
            if names.is_empty()
                && let Some(u) = up
            {
                names.extend(u.words.iter().cloned());
            }
            out.push(if let Some(p) = security_product(&names) {
                f(Effect::Weakens, format!("stops or disables security tooling ({p})"))
            } else if names.iter().any(|n| n == "*" || n == "*.*") {
                f(Effect::Weakens, "stops every process, security tooling included")
            } else {
                f(Effect::Changes, "")
            });
        }
        "route" => out.push(match first {
            "print" | "" => f(Effect::Reads, ""),
            "add" | "change" | "-p" => grant(
                Effect::Weakens,
                "changes network routing",
                flat.iter().skip(1).take(1).cloned().collect(),
            ),
            _ => f(Effect::Changes, ""),
        }),
        "manage-bde" => out.push(if has_prefix(flat, "-status") || flat.is_empty() {
            f(Effect::Reads, "")
        } else if has_prefix(flat, "-off") || has_prefix(flat, "-disable") || joined.contains("-protectors -disable") {
            f(Effect::Weakens, "turns off BitLocker protection")
        } else if has_prefix(flat, "-on") || has_prefix(flat, "-resume") {
            f(Effect::Strengthens, "turns BitLocker protection on")
        } else {
            f(Effect::Changes, "")
        }),
        "dism" => out.push(if flat.iter().any(|x| x.starts_with("/get-")) {
            f(Effect::Reads, "")
        } else if has_prefix(flat, "/disable-feature") && (joined.contains("defender") || joined.contains("sysmon")) {
            f(Effect::Weakens, "disables or weakens security tooling (removes Microsoft Defender)")
        } else if has_prefix(flat, "/enable-feature") && ["smb1", "telnet", "tftp"].iter().any(|x| joined.contains(x)) {
            f(Effect::Weakens, "adds a remote-access or legacy-protocol feature")
        } else if has_prefix(flat, "/remove-package") {
            f(Effect::Weakens, "removes a Windows package (security updates)")
        } else if has_prefix(flat, "/add-package") {
            f(Effect::Executes, "installs a package, which runs its code")
        } else {
            f(Effect::Changes, "")
        }),
        "wusa" => out.push(if has_prefix(flat, "/uninstall") {
            f(Effect::Weakens, "removes a security update")
        } else {
            f(Effect::Executes, "installs an update package, which runs its code")
        }),
        "winrm" => out.push(match first {
            "get" | "g" | "enumerate" | "e" | "identify" | "id" | "" => f(Effect::Reads, ""),
            "delete" | "d" => f(Effect::Changes, ""),
            "invoke" | "i" => f(Effect::Executes, "invokes a management action"),
            _ => f(Effect::Weakens, "opens remote management (WinRM)"),
        }),
        "setspn" => out.push(if has(flat, "-l") || has(flat, "-q") || has(flat, "-x") {
            f(Effect::Reads, "")
        } else if has(flat, "-a") || has(flat, "-s") || has(flat, "-u") {
            f(Effect::Weakens, "adds a service principal name (Kerberoasting)")
        } else {
            f(Effect::Changes, "")
        }),
        _ => out.push(f(Effect::Changes, format!("unknown command `{tool}`; treated as changing state"))),
    }
}

/// The arguments as texts in order (`-Name`, then its value's items), original case kept.
fn texts(a: &Args) -> Vec<String> {
    a.items
        .iter()
        .flat_map(|item| match item {
            Arg::Named(n, v) => {
                let mut t = vec![format!("-{n}")];
                if let Some(v) = v {
                    t.push(v.texts.join(","));
                }
                t
            }
            Arg::Pos(v) => vec![v.texts.join(",")],
        })
        .collect()
}

/// Parameters of `powershell.exe` / `pwsh` that take a value; any other parameter is a switch,
/// and a word after it already belongs to the script.
fn shell_param(n: &str) -> Option<&'static str> {
    let is = |full: &str, min: usize| n.len() >= min && full.starts_with(n);
    Some(if n == "ep" || n == "ex" || is("executionpolicy", 3) {
        "executionpolicy"
    } else if n == "e" || n == "ec" || is("encodedcommand", 2) {
        "encodedcommand"
    } else if n == "v" || is("version", 2) {
        "version"
    } else if n == "f" || is("file", 2) {
        "file"
    } else if n == "c" || is("command", 2) {
        "command"
    } else if n == "w" || is("windowstyle", 2) {
        "windowstyle"
    } else if is("inputformat", 2) || n == "if" || is("outputformat", 2) || n == "of" || n == "o" {
        "format"
    } else if is("configurationname", 3)
        || is("psconsolefile", 3)
        || is("workingdirectory", 2)
        || n == "wd"
        || is("settingsfile", 2)
        || is("custompipename", 2)
        || is("encodedarguments", 8)
    {
        "value"
    } else {
        return None;
    })
}

/// `powershell [-NoProfile] [-ExecutionPolicy Bypass] [-Command] …`: the script is judged.
fn powershell(
    w: &mut Walk<'_>,
    tool: &str,
    a: &Args,
    up: Option<&Upstream>,
    out: &mut Vec<Finding>,
) {
    out.push(f(
        Effect::Changes,
        format!("starts a nested shell ({tool}); its script is judged with this command"),
    ));
    let mut script: Vec<String> = Vec::new();
    for item in &a.items {
        if !script.is_empty() {
            // Everything after the start of the script belongs to it.
            script.extend(texts(&Args {
                items: vec![item.clone()],
                ..Args::default()
            }));
            continue;
        }
        match item {
            Arg::Named(n, v) => {
                let val = v.as_ref().map(|v| v.lower()).unwrap_or_default();
                let first = v
                    .as_ref()
                    .and_then(|v| v.first().map(String::from))
                    .unwrap_or_default();
                match shell_param(n) {
                    Some("executionpolicy")
                        if matches!(val.as_str(), "bypass" | "unrestricted") =>
                    {
                        out.push(f(
                            Effect::Weakens,
                            "bypasses the script execution policy (how unsigned scripts are run)",
                        ))
                    }
                    Some("version") if val.starts_with('2') || val.starts_with('1') => out.push(f(
                        Effect::Weakens,
                        "downgrades to PowerShell 2, which has no script logging or AMSI",
                    )),
                    Some("encodedcommand") => out.push(f(
                        Effect::Executes,
                        "encoded command: the payload cannot be reviewed",
                    )),
                    Some("file") => out.push(f(
                        Effect::Executes,
                        format!("runs a script file whose contents are not reviewed ({first})"),
                    )),
                    Some("command") => match v {
                        Some(v) => script.push(v.texts.join(",")),
                        None => script.push(String::new()),
                    },
                    Some(_) => {}
                    // A switch: a value bound to it is really the start of the script.
                    None => {
                        if let Some(v) = v {
                            script.push(v.texts.join(","));
                        }
                    }
                }
            }
            Arg::Pos(v) => script.push(v.texts.join(",")),
        }
    }
    let text = script.join(" ");
    // `… | powershell -` (or a pipeline into `-Command -`): the script is whatever flows in.
    if text.trim() == "-" || (up.is_some() && text.trim().is_empty()) {
        out.push(f(
            Effect::Executes,
            "runs a script piped into it, whose contents are not reviewed",
        ));
    } else if !text.trim().is_empty() {
        w.nested_text(&text, out);
    }
}

/// `cmd /c …`: the command line after `/c` (or `/k`) is judged.
fn cmd(w: &mut Walk<'_>, a: &Args, out: &mut Vec<Finding>) {
    out.push(f(
        Effect::Changes,
        "starts a nested shell (cmd); its command is judged with this command",
    ));
    let t = texts(a);
    if let Some(i) = t
        .iter()
        .position(|x| matches!(x.to_lowercase().as_str(), "/c" | "/k" | "/r"))
    {
        let rest = t.get(i + 1..).map(|t| t.join(" ")).unwrap_or_default();
        w.nested_text(&rest, out);
    }
}

fn net(flat: &[String], up: Option<&Upstream>, out: &mut Vec<Finding>) {
    let sub = flat.first().map(String::as_str).unwrap_or("");
    let args: Vec<&String> = flat
        .iter()
        .skip(1)
        .filter(|x| !x.starts_with('/'))
        .collect();
    let switches: Vec<&String> = flat.iter().filter(|x| x.starts_with('/')).collect();
    let sw = |s: &str| switches.iter().any(|x| x.starts_with(s));
    let who: Vec<String> = args.first().map(|s| vec![(*s).clone()]).unwrap_or_default();
    out.push(match sub {
        "user" | "users" => {
            if sw("/add") {
                grant(Effect::Weakens, "creates an account or grants group membership (a new account)", who)
            } else if sw("/del") {
                f(Effect::Changes, "")
            } else if switches.iter().any(|x| *x == "/active:yes" || *x == "/active") {
                grant(Effect::Weakens, "re-enables an account (the attacker may own it)", who)
            } else if args.len() >= 2 {
                grant(
                    Effect::Weakens,
                    "sets an account's password (whoever wrote the alert text would know it; reset passwords out of band)",
                    who,
                )
            } else if sw("/expires:never") || sw("/passwordreq:no") || sw("/passwordchg") {
                grant(Effect::Weakens, "weakens an account's protection", who)
            } else if switches.iter().any(|x| x.as_str() != "/domain") {
                f(Effect::Changes, "")
            } else {
                f(Effect::Reads, "")
            }
        }
        "localgroup" | "group" => {
            if sw("/add") && args.len() >= 2 {
                grant(
                    Effect::Weakens,
                    "creates an account or grants group membership",
                    args.iter().skip(1).map(|s| (*s).clone()).collect(),
                )
            } else if sw("/add") || sw("/del") {
                f(Effect::Changes, "")
            } else {
                f(Effect::Reads, "")
            }
        }
        "share" => {
            if sw("/del") {
                f(Effect::Changes, "")
            } else if args.iter().any(|a| a.contains('=')) || flat.get(1).is_some_and(|x| x.contains('=')) {
                f(Effect::Weakens, "shares a folder over the network")
            } else {
                f(Effect::Reads, "")
            }
        }
        "use" => {
            if sw("/del") {
                f(Effect::Changes, "")
            } else if flat.len() > 1 {
                f(Effect::Changes, "connects a network drive")
            } else {
                f(Effect::Reads, "")
            }
        }
        "stop" => {
            let mut names: Vec<String> = args.iter().map(|s| (*s).clone()).collect();
            if names.is_empty()
                && let Some(u) = up
            {
                names.extend(u.words.iter().cloned());
            }
            match security_product(&names) {
                Some(p) => f(Effect::Weakens, format!("stops or disables security tooling ({p})")),
                None => f(Effect::Changes, ""),
            }
        }
        "start" => {
            if args.is_empty() {
                f(Effect::Reads, "")
            } else if let Some(p) = security_product(&args.iter().map(|s| (*s).clone()).collect::<Vec<_>>()) {
                f(Effect::Strengthens, format!("starts the security service {p}"))
            } else if let Some(s) = super::places::remote_access_service(&args.iter().map(|s| (*s).clone()).collect::<Vec<_>>()) {
                f(Effect::Weakens, format!("enables remote access ({s})"))
            } else {
                f(Effect::Changes, "")
            }
        }
        "accounts" => {
            if switches.iter().any(|x| x.starts_with("/maxpwage:unlimited") || x.starts_with("/minpwlen:0") || x.starts_with("/lockoutthreshold:0") || x.starts_with("/uniquepw:0")) {
                f(Effect::Weakens, "weakens the password or lockout policy")
            } else if switches.iter().any(|x| *x != "/domain") {
                f(Effect::Changes, "")
            } else {
                f(Effect::Reads, "")
            }
        }
        "session" | "sessions" | "file" | "files" => {
            if sw("/del") || sw("/close") {
                f(Effect::Changes, "")
            } else {
                f(Effect::Reads, "")
            }
        }
        "view" | "config" | "statistics" | "stats" | "time" | "help" | "helpmsg" | "" => {
            if sw("/set") {
                f(Effect::Changes, "")
            } else {
                f(Effect::Reads, "")
            }
        }
        _ => f(Effect::Changes, ""),
    });
}

fn reg(w: &Walk<'_>, flat: &[String], out: &mut Vec<Finding>) {
    let sub = flat.first().map(String::as_str).unwrap_or("");
    let key = flat.get(1).cloned().unwrap_or_default();
    let value_name = if has(flat, "/ve") {
        Some(String::new())
    } else {
        after(flat, "/v")
    };
    out.push(match sub {
        "query" | "compare" | "" => f(Effect::Reads, ""),
        "add" => {
            let data = after(flat, "/d");
            match registry_write(
                &key,
                value_name.as_deref().filter(|n| !n.is_empty()),
                data.as_deref(),
            ) {
                Some(r) => reg_finding(r, &data.into_iter().collect::<Vec<_>>()),
                None => f(Effect::Changes, ""),
            }
        }
        "delete" => {
            let name = if has(flat, "/va") { None } else { value_name };
            match registry_delete(&key, name.as_deref()) {
                Some(r) => reg_finding(r, &[]),
                None => f(Effect::Changes, ""),
            }
        }
        "import" | "restore" => f(
            Effect::Weakens,
            "imports registry settings that are not shown here, so they cannot be reviewed",
        ),
        "export" | "save" => match flat.get(2) {
            Some(file) => worst(w.write_to(file, "")),
            None => f(Effect::Changes, ""),
        },
        "copy" => match flat
            .get(2)
            .and_then(|dest| registry_write(dest, None, None))
        {
            Some(r) => reg_finding(r, &[]),
            None => f(Effect::Changes, ""),
        },
        _ => f(Effect::Changes, ""),
    });
}

fn sc(w: &Walk<'_>, flat: &[String], out: &mut Vec<Finding>) {
    // `sc \\host query x`: the host is judged by the entity guard.
    let flat: Vec<String> = flat
        .iter()
        .filter(|x| !x.starts_with("\\\\"))
        .cloned()
        .collect();
    let sub = flat.first().map(String::as_str).unwrap_or("");
    let name = flat.get(1).cloned().unwrap_or_default();
    let names = vec![name.clone()];
    let product = security_product(&names);
    let joined = flat.join(" ");
    let start_mode = kv(&flat, "start").unwrap_or_default();
    out.push(match sub {
        "query" | "queryex" | "qc" | "qdescription" | "qfailure" | "qfailureflags" | "qsidtype"
        | "qprivs" | "qtriggerinfo" | "qpreferrednode" | "qmanagedaccount" | "qprotection"
        | "enumdepend" | "sdshow" | "getdisplayname" | "getkeyname" | "showsid" | "" => {
            f(Effect::Reads, "")
        }
        "stop" | "pause" | "delete" | "control" => match product {
            Some(p) => f(
                Effect::Weakens,
                format!("stops or disables security tooling ({p})"),
            ),
            None => f(Effect::Changes, ""),
        },
        "start" | "continue" => match product {
            Some(p) => f(
                Effect::Strengthens,
                format!("starts the security service {p}"),
            ),
            None if super::places::remote_access_service(&names).is_some() => {
                f(Effect::Weakens, format!("enables remote access ({name})"))
            }
            None if w.facts.names_program(&name) => f(
                Effect::Executes,
                "starts the service of the program the alert names (the attacker's code)",
            ),
            None => f(Effect::Changes, ""),
        },
        "create" => f(Effect::Persists, "creates a service"),
        "failure" if joined.contains("command=") => f(
            Effect::Persists,
            "sets a program to run when a service fails",
        ),
        "config" => {
            if kv(&flat, "binpath").is_some() || kv(&flat, "obj").is_some() {
                f(Effect::Persists, "changes what a service runs or as whom")
            } else if matches!(start_mode.as_str(), "disabled" | "demand") {
                match product {
                    Some(p) => f(
                        Effect::Weakens,
                        format!("stops or disables security tooling ({p})"),
                    ),
                    None => f(Effect::Changes, ""),
                }
            } else if matches!(
                start_mode.as_str(),
                "auto" | "boot" | "system" | "delayed-auto"
            ) {
                match product {
                    Some(p) => f(
                        Effect::Strengthens,
                        format!("sets the security service {p} to start automatically"),
                    ),
                    None if super::places::remote_access_service(&names).is_some() => {
                        f(Effect::Weakens, format!("enables remote access ({name})"))
                    }
                    None => f(
                        Effect::Persists,
                        "makes a service start automatically (an autostart)",
                    ),
                }
            } else if product.is_some() {
                f(
                    Effect::Weakens,
                    "changes a security service's configuration (security tooling)",
                )
            } else {
                f(Effect::Changes, "")
            }
        }
        "sdset" => f(Effect::Weakens, "changes who may control a service"),
        "triggerinfo" => f(Effect::Persists, "sets what starts a service"),
        _ => match product {
            Some(p) => f(Effect::Weakens, format!("changes security tooling ({p})")),
            None => f(Effect::Changes, ""),
        },
    });
}

fn schtasks(flat: &[String], out: &mut Vec<Finding>) {
    let defender = flat.iter().any(|x| x.contains("windows defender"));
    out.push(
        if flat.is_empty() || has_prefix(flat, "/query") || has(flat, "/showsid") {
            f(Effect::Reads, "")
        } else if has(flat, "/create") {
            f(Effect::Persists, "creates a scheduled task (an autostart)")
        } else if has(flat, "/run") {
            f(Effect::Executes, "runs a scheduled task's action now")
        } else if has(flat, "/delete") || has(flat, "/end") {
            if defender {
                f(
                    Effect::Weakens,
                    "disables a Microsoft Defender task (security tooling)",
                )
            } else {
                f(Effect::Changes, "")
            }
        } else if has(flat, "/change") {
            if has(flat, "/tr") || has(flat, "/ru") || has(flat, "/rp") {
                f(
                    Effect::Persists,
                    "changes what a scheduled task runs or as whom",
                )
            } else if has(flat, "/enable") {
                if defender {
                    f(Effect::Strengthens, "re-enables a Microsoft Defender task")
                } else {
                    f(
                        Effect::Persists,
                        "re-enables a scheduled task (an autostart)",
                    )
                }
            } else if has(flat, "/disable") && defender {
                f(
                    Effect::Weakens,
                    "disables a Microsoft Defender task (security tooling)",
                )
            } else {
                f(Effect::Changes, "")
            }
        } else {
            f(Effect::Changes, "")
        },
    );
}

fn netsh(w: &Walk<'_>, flat: &[String], joined: &str, out: &mut Vec<Finding>) {
    let writes = [
        "add",
        "set",
        "delete",
        "reset",
        "import",
        "install",
        "uninstall",
        "start",
        "stop",
    ]
    .iter()
    .any(|x| has(flat, x));
    if (has(flat, "show") || has(flat, "dump")) && !writes {
        out.push(f(Effect::Reads, ""));
        return;
    }
    if joined.contains("key=clear") {
        out.push(f(
            Effect::Executes,
            "credential dumping tool or technique (shows Wi-Fi passwords)",
        ));
        return;
    }
    let area = |x: &str| has(flat, x);
    let action = kv(flat, "action").unwrap_or_default();
    let mut grants: Vec<String> = Vec::new();
    for key in ["remoteip", "connectaddress", "proxy-server", "server"] {
        if let Some(v) = kv(flat, key) {
            grants.push(v);
        }
    }
    let finding = if area("advfirewall") || area("firewall") {
        if has(flat, "rule") && has(flat, "add") {
            match action.as_str() {
                "block" => f(Effect::Changes, ""),
                _ => grant(
                    Effect::Weakens,
                    "opens the firewall: an Allow rule (the opposite of blocking)",
                    grants,
                ),
            }
        } else if has(flat, "rule") && has(flat, "set") {
            if joined.contains("enable=no")
                && (joined.contains("block") || joined.contains("isolat"))
            {
                f(
                    Effect::Weakens,
                    "opens the firewall: removes or disables a blocking rule",
                )
            } else if action == "allow" || action == "bypass" || joined.contains("enable=yes") {
                grant(
                    Effect::Weakens,
                    "opens the firewall: changes a rule to allow traffic",
                    grants,
                )
            } else {
                f(Effect::Changes, "")
            }
        } else if has(flat, "rule") && has(flat, "delete") {
            if joined.contains("block") || joined.contains("isolat") {
                f(
                    Effect::Weakens,
                    "opens the firewall: removes or disables a blocking rule",
                )
            } else {
                f(Effect::Changes, "")
            }
        } else if joined.contains("state off")
            || joined.contains("opmode disable")
            || joined.contains("mode=disable")
            || joined.contains("allowinbound")
            || joined.contains("logging") && joined.contains("disable")
            || has(flat, "allowedprogram")
            || has(flat, "portopening")
        {
            f(
                Effect::Weakens,
                "disables or weakens security tooling (opens or turns off the Windows firewall)",
            )
        } else if joined.contains("state on")
            || joined.contains("opmode enable")
            || joined.contains("mode=enable")
            || joined.contains("blockinbound")
        {
            f(Effect::Strengthens, "turns the Windows firewall back on")
        } else if has(flat, "import") {
            f(
                Effect::Weakens,
                "imports firewall settings that are not reviewed (security tooling)",
            )
        } else if has(flat, "export") {
            match flat.iter().find(|x| x.contains('\\')) {
                Some(file) => worst(w.write_to(file, "")),
                None => f(Effect::Changes, ""),
            }
        } else {
            f(Effect::Changes, "")
        }
    } else if area("winhttp") {
        if has(flat, "reset") {
            f(Effect::Strengthens, "removes the WinHTTP proxy")
        } else if has(flat, "set") || has(flat, "import") {
            let proxy = flat
                .iter()
                .skip_while(|x| *x != "proxy")
                .nth(1)
                .cloned()
                .into_iter()
                .collect::<Vec<_>>();
            grant(
                Effect::Weakens,
                "sets the WinHTTP proxy, which can route traffic through the attacker",
                if grants.is_empty() { proxy } else { grants },
            )
        } else {
            f(Effect::Changes, "")
        }
    } else if area("portproxy") {
        if has(flat, "add") || has(flat, "set") {
            grant(Effect::Weakens, "forwards a port to another host", grants)
        } else {
            f(Effect::Changes, "")
        }
    } else if (area("interface") || area("int"))
        && (joined.contains("dns") || joined.contains("wins"))
        && (has(flat, "set") || has(flat, "add"))
    {
        grant(
            Effect::Weakens,
            "changes the DNS servers, which can send lookups to the attacker",
            grants,
        )
    } else if has(flat, "helper") && has(flat, "add") {
        f(
            Effect::Persists,
            "registers a netsh helper DLL, which runs code",
        )
    } else {
        f(Effect::Changes, "")
    };
    out.push(finding);
}

fn wmic(flat: &[String], joined: &str, out: &mut Vec<Finding>) {
    let flat: Vec<String> = flat
        .iter()
        .filter(|x| !x.starts_with("/node:"))
        .cloned()
        .collect();
    let words = flat.clone();
    let acts = ["call", "delete", "set", "create"];
    let writes = acts.iter().any(|x| has(&flat, x));
    out.push(if joined.contains("shadowcopy") && has(&flat, "delete") {
        f(Effect::Destroys, "deletes shadow copies (destroys backups)")
    } else if joined.contains("subscription") && (has(&flat, "create") || has(&flat, "set")) {
        f(
            Effect::Persists,
            "creates a WMI event subscription, which runs code on an event",
        )
    } else if joined.contains("process") && has(&flat, "call") && joined.contains("create") {
        f(
            Effect::Executes,
            "remote process execution: starts a process through WMI",
        )
    } else if (joined.contains("service")
        || joined.contains("process")
        || joined.contains("product"))
        && writes
        && let Some(p) = security_product(&words)
    {
        if joined.contains("startservice") {
            f(
                Effect::Strengthens,
                format!("starts the security service {p}"),
            )
        } else {
            f(
                Effect::Weakens,
                format!("stops or disables security tooling ({p})"),
            )
        }
    } else if joined.contains("useraccount") && joined.contains("disabled=false") {
        f(
            Effect::Weakens,
            "re-enables an account (the attacker may own it)",
        )
    } else if joined.contains("useraccount") && joined.contains("passwordexpires=false") {
        f(Effect::Weakens, "weakens an account's protection")
    } else if writes || joined.contains("product") && joined.contains("uninstall") {
        f(Effect::Changes, "")
    } else if has(&flat, "get")
        || has(&flat, "list")
        || joined.contains(" get ")
        || flat.iter().any(|x| x.starts_with("get"))
    {
        f(Effect::Reads, "")
    } else {
        f(Effect::Changes, "")
    });
}

fn wevtutil(w: &Walk<'_>, flat: &[String], out: &mut Vec<Finding>) {
    let sub = flat.first().map(String::as_str).unwrap_or("");
    out.push(match sub {
        "qe" | "query-events" | "gli" | "get-loginfo" | "gl" | "get-log" | "el" | "enum-logs"
        | "ep" | "enum-publishers" | "gp" | "get-publisher" | "" => f(Effect::Reads, ""),
        "epl" | "export-log" => match flat.iter().skip(2).find(|x| !x.starts_with('/')) {
            Some(dest) => worst(w.write_to(dest, "writes a file")),
            None => f(Effect::Changes, ""),
        },
        "cl" | "clear-log" => f(Effect::Destroys, "clears or tampers with event logs"),
        "sl" | "set-log" => {
            let opts: Vec<&String> = flat.iter().filter(|x| x.starts_with('/')).collect();
            let disables = opts
                .iter()
                .any(|o| o.starts_with("/e:false") || o.starts_with("/enabled:false"));
            let enables = opts
                .iter()
                .any(|o| o.starts_with("/e:true") || o.starts_with("/enabled:true"));
            let other = opts.iter().any(|o| {
                !(o.starts_with("/e:")
                    || o.starts_with("/enabled:")
                    || o.starts_with("/q")
                    || o.starts_with("/quiet"))
            });
            if disables {
                f(
                    Effect::Weakens,
                    "turns an event log off: clears or tampers with event logs",
                )
            } else if enables && !other {
                f(Effect::Strengthens, "turns an event log back on")
            } else {
                f(
                    Effect::Weakens,
                    "changes an event log's settings: clears or tampers with event logs",
                )
            }
        }
        "um" | "uninstall-manifest" => f(Effect::Weakens, "removes an event provider (telemetry)"),
        _ => f(Effect::Changes, ""),
    });
}

fn bcdedit(w: &Walk<'_>, flat: &[String], out: &mut Vec<Finding>) {
    let sub = flat.first().map(String::as_str).unwrap_or("");
    let rest: Vec<&str> = flat.iter().skip(1).map(String::as_str).collect();
    let value_of = |key: &str| {
        rest.iter()
            .position(|x| *x == key)
            .and_then(|i| rest.get(i + 1))
            .map(|v| v.to_string())
    };
    out.push(match sub {
        "" | "/enum" | "/v" | "/?" => f(Effect::Reads, ""),
        "/export" => match rest.first() {
            Some(file) => worst(w.write_to(file, "")),
            None => f(Effect::Changes, ""),
        },
        "/set" => {
            if let Some(v) = value_of("recoveryenabled") {
                if matches!(v.as_str(), "yes" | "on" | "true" | "1") {
                    f(Effect::Strengthens, "re-enables boot recovery")
                } else {
                    f(
                        Effect::Weakens,
                        "turns off boot recovery (destroys recovery options)",
                    )
                }
            } else if let Some(v) = value_of("bootstatuspolicy") {
                if v == "displayallfailures" {
                    f(
                        Effect::Strengthens,
                        "restores boot failure reporting (recovery)",
                    )
                } else {
                    f(
                        Effect::Weakens,
                        "hides boot failures from recovery (destroys recovery options)",
                    )
                }
            } else if rest.contains(&"safeboot") {
                f(
                    Effect::Weakens,
                    "forces Safe Mode, where security tools do not run",
                )
            } else {
                let risky = [
                    "testsigning",
                    "nointegritychecks",
                    "debug",
                    "bootdebug",
                    "disableelamdrivers",
                    "hypervisorlaunchtype",
                    "nx",
                    "loadoptions",
                    "bootlog",
                ];
                match risky.iter().find(|k| rest.contains(k)) {
                    Some(k) => {
                        let v = value_of(k).unwrap_or_default();
                        let safe = match *k {
                            "hypervisorlaunchtype" => v == "auto",
                            "nx" => v == "optin" || v == "optout" || v == "alwayson",
                            "bootlog" => v == "yes",
                            _ => matches!(v.as_str(), "off" | "no" | "false"),
                        };
                        if safe {
                            f(
                                Effect::Strengthens,
                                format!("restores a boot protection ({k})"),
                            )
                        } else {
                            f(
                                Effect::Weakens,
                                format!("weakens boot-time protection ({k})"),
                            )
                        }
                    }
                    None => f(Effect::Changes, ""),
                }
            }
        }
        "/deletevalue" => {
            if rest.contains(&"safeboot") {
                f(Effect::Strengthens, "removes a forced Safe Mode boot")
            } else {
                f(Effect::Changes, "")
            }
        }
        "/delete" => f(
            Effect::Destroys,
            "deletes a boot entry (destroys recovery options)",
        ),
        "/import" => f(
            Effect::Weakens,
            "replaces the boot configuration from a file",
        ),
        _ => f(Effect::Changes, ""),
    });
}

fn fsutil(flat: &[String], out: &mut Vec<Finding>) {
    let area = flat.first().map(String::as_str).unwrap_or("");
    let op = flat.get(1).map(String::as_str).unwrap_or("");
    let reads = op.starts_with("query")
        || op.starts_with("list")
        || op.starts_with("enum")
        || op.starts_with("read")
        || matches!(
            op,
            "info"
                | "diskfree"
                | "drives"
                | "drivetype"
                | "ntfsinfo"
                | "refsinfo"
                | "sectorinfo"
                | "statistics"
                | "volumeinfo"
                | "layout"
                | "findbysid"
                | ""
        )
        || matches!(area, "fsinfo" | "");
    out.push(if area == "usn" && op == "deletejournal" {
        f(
            Effect::Destroys,
            "deletes the NTFS change journal (USN), destroying evidence",
        )
    } else if area == "behavior" && op == "set" && flat.iter().any(|x| x == "disablelastaccess") {
        match flat
            .iter()
            .skip_while(|x| *x != "disablelastaccess")
            .nth(1)
            .map(String::as_str)
        {
            Some("0") | Some("2") => f(Effect::Strengthens, "records last-access times again"),
            _ => f(
                Effect::Weakens,
                "stops recording last-access times (evidence)",
            ),
        }
    } else if area == "file" && (op == "setzerodata" || op == "setvaliddata") {
        f(Effect::Destroys, "overwrites file contents (evidence)")
    } else if reads {
        f(Effect::Reads, "")
    } else {
        f(Effect::Changes, "")
    });
}

fn certutil(flat: &[String], out: &mut Vec<Finding>) {
    let store_after = |op: &str| {
        flat.iter()
            .skip_while(|x| *x != op)
            .skip(1)
            .find(|x| !x.starts_with('-') && !x.starts_with('/'))
            .cloned()
            .unwrap_or_default()
    };
    out.push(if has_prefix(flat, "-hashfile") || has_prefix(flat, "-store") || has_prefix(flat, "-viewstore") || has_prefix(flat, "-dump") || has_prefix(flat, "-verify") && !has_prefix(flat, "-verifyctl") || flat.is_empty() {
        f(Effect::Reads, "")
    } else if has(flat, "-addstore") {
        let store = store_after("-addstore");
        if store == "disallowed" {
            f(Effect::Strengthens, "distrusts a certificate")
        } else if TRUST_STORES.contains(&store.as_str()) {
            grant(
                Effect::Weakens,
                format!("trusts a certificate in the {store} store (lets its owner sign code or intercept TLS)"),
                flat.iter().skip_while(|x| **x != store).skip(1).cloned().collect(),
            )
        } else {
            f(Effect::Changes, "")
        }
    } else if has(flat, "-delstore") {
        if store_after("-delstore") == "disallowed" {
            f(Effect::Weakens, "removes a distrusted certificate")
        } else {
            f(Effect::Changes, "")
        }
    } else if has_prefix(flat, "-importpfx") {
        f(Effect::Weakens, "imports a certificate with its private key")
    } else {
        f(Effect::Changes, "")
    });
}

fn icacls(flat: &[String], out: &mut Vec<Finding>) {
    #[rustfmt::skip]
    const WIDE: &[&str] = &[
        "everyone", "users", "authenticated users", "guests", "anonymous logon", "*s-1-1-0",
        "*s-1-5-11", "*s-1-5-32-545", "*s-1-5-32-546", "*s-1-5-7", "domain users",
    ];
    let grant_at = flat
        .iter()
        .position(|x| x.starts_with("/grant") || x == "/g");
    out.push(match grant_at {
        Some(i) => {
            let grantees: Vec<String> = flat
                .iter()
                .skip(i + 1)
                .take_while(|x| !x.starts_with('/'))
                .map(|x| x.split(':').next().unwrap_or(x).to_string())
                .collect();
            if grantees.iter().any(|g| WIDE.contains(&g.as_str())) {
                f(
                    Effect::Weakens,
                    "grants file permissions to everyone or all users",
                )
            } else {
                grant(
                    Effect::Changes,
                    "grants file permissions to an account",
                    grantees,
                )
            }
        }
        None if has_prefix(flat, "/restore") => f(
            Effect::Weakens,
            "replaces permissions from a file that is not reviewed",
        ),
        None if [
            "/deny",
            "/remove",
            "/setowner",
            "/reset",
            "/inheritance",
            "/setintegritylevel",
            "/d",
            "/r",
            "/p",
        ]
        .iter()
        .any(|x| has_prefix(flat, x)) =>
        {
            f(Effect::Changes, "")
        }
        None if has_prefix(flat, "/save") => f(Effect::Changes, ""),
        None => f(Effect::Reads, ""),
    });
}
