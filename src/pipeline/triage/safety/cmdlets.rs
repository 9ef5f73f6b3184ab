//! The effect of PowerShell cmdlets, by what they are given: the direction of a Defender or
//! firewall setting (`-DisableRealtimeMonitoring $false` turns protection back on), which service
//! or process is stopped (the security agent or not), where a file is written (the evidence
//! folder, a startup folder, the Windows folder), which registry location is written (an
//! autostart key, a protection setting), which certificate store is trusted, which account is
//! given a password or a group. Cmdlets without a rule take their verb's meaning
//! ([`super::effects::by_verb`]).

use super::effects::{Args, Effect, Finding, Upstream, Walk, by_verb, finding, reg_finding};
use super::places::{
    TRUST_STORES, cert_path_store, file_delete, hosts_entry, in_evidence, is_registry, norm_path,
    registry_delete, registry_write, remote_access_service, security_product, truth,
};

/// A Defender preference whose value either weakens protection or strengthens it.
struct Toggle {
    /// Which (lowercased) parameter names it covers.
    names: fn(&str) -> bool,
    /// The values listed; `values_weaken` says whether they are the weakening ones (otherwise
    /// they are the strengthening ones and every other value weakens).
    values: &'static [&'static str],
    values_weaken: bool,
    /// What each direction does, in words for the analyst (`{param}`: the parameter as written).
    weakens: &'static str,
    strengthens: &'static str,
}

const DEFENDER_TOGGLES: &[Toggle] = &[
    Toggle {
        names: |n| n == "mapsreporting",
        values: &["0", "disabled"],
        values_weaken: true,
        weakens: "disables or weakens security tooling (turns off Defender cloud reporting, MAPS)",
        strengthens: "turns Defender cloud reporting (MAPS) on",
    },
    Toggle {
        names: |n| n == "submitsamplesconsent",
        values: &["2", "neversend"],
        values_weaken: true,
        weakens: "disables or weakens security tooling (stops Defender sample submission)",
        strengthens: "turns Defender sample submission on",
    },
    Toggle {
        names: |n| {
            matches!(
                n,
                "puaprotection" | "enablecontrolledfolderaccess" | "enablenetworkprotection"
            )
        },
        values: &["1", "enabled"],
        values_weaken: false,
        weakens: "disables or weakens security tooling (Microsoft Defender {param})",
        strengthens: "turns Microsoft Defender protection on ({param})",
    },
    Toggle {
        names: |n| n == "cloudblocklevel",
        values: &["0", "default"],
        values_weaken: true,
        weakens: "disables or weakens security tooling (Defender cloud block level)",
        strengthens: "raises Defender's cloud block level",
    },
    Toggle {
        names: |n| n.starts_with("attacksurfacereductionrules_actions"),
        values: &["1", "enabled"],
        values_weaken: false,
        weakens: "disables or weakens security tooling (attack-surface-reduction rules)",
        strengthens: "turns attack-surface-reduction rules on",
    },
];

fn grant(effect: Effect, what: impl Into<String>, grants: Vec<String>) -> Finding {
    Finding {
        effect,
        what: what.into(),
        grants,
    }
}

/// The texts of a value given by name or position, else what flows in from the pipeline.
fn targets(a: &Args, names: &[&str], pos: usize, up: Option<&Upstream>) -> (Vec<String>, bool) {
    if let Some(v) = a.get_or_pos(names, pos) {
        let mut w = v.texts.clone();
        if !v.exact {
            w.extend(v.deep.iter().cloned());
        }
        return (w, false);
    }
    match up {
        Some(u) => (u.words.clone(), u.everything),
        None => (vec![], false),
    }
}

/// Is this value a Microsoft Defender scheduled task?
fn defender_task(words: &[String]) -> bool {
    words
        .iter()
        .any(|w| w.to_lowercase().contains("windows defender"))
}

pub fn judge(w: &mut Walk<'_>, c: &str, a: &Args, up: Option<&Upstream>, out: &mut Vec<Finding>) {
    match c {
        "invoke-expression" => out.push(finding(
            Effect::Executes,
            "Invoke-Expression / iex runs arbitrary text as code",
        )),
        "invoke-webrequest" | "invoke-restmethod" | "start-bitstransfer" => out.push(finding(
            Effect::ReachesOut,
            "downloads from or uploads to the network",
        )),
        "send-mailmessage" => out.push(finding(
            Effect::ReachesOut,
            "sends e-mail: data leaves the host",
        )),
        "invoke-command" | "start-job" | "start-threadjob" => {
            if a.has(&["filepath"]) {
                out.push(finding(
                    Effect::Executes,
                    "runs a script file whose contents are not reviewed",
                ));
            }
            if a.has(&["vmname", "vmid", "containerid", "session", "connectionuri"]) {
                out.push(finding(
                    Effect::ReachesOut,
                    "runs commands in another session or machine",
                ));
            }
        }
        "enter-pssession" | "new-pssession" | "new-cimsession" | "connect-wsman" => {
            out.push(finding(Effect::Changes, "opens a remote session"))
        }
        "invoke-item" => out.push(finding(
            Effect::Executes,
            "opens a file with its default program, which runs it",
        )),
        "invoke-history" => out.push(finding(Effect::Executes, "re-runs earlier commands")),
        "start-process" => start_process(w, a, out),
        "import-module" => {
            let v = a.get_or_pos(&["name", "fullyqualifiedname"], 0);
            let path_like = v.is_none_or(|v| {
                !v.exact
                    || v.texts.iter().any(|t| {
                        let t = t.to_lowercase();
                        t.contains(['\\', '/']) || t.ends_with(".psm1") || t.ends_with(".dll") || t.ends_with(".ps1")
                    })
            });
            if path_like || a.has(&["assembly", "moduleinfo"]) {
                out.push(finding(Effect::Executes, "loads code from a file (Import-Module)"));
            } else {
                out.push(finding(Effect::Reads, ""));
            }
        }
        "add-type" => out.push(finding(
            Effect::Executes,
            "compiles and loads code (Add-Type)",
        )),
        "set-alias" | "new-alias" | "import-alias" | "new-module" => out.push(finding(
            Effect::Executes,
            "dynamic or obfuscated invocation hides what would run (an alias or module defined on the fly)",
        )),
        "register-objectevent" | "register-engineevent" | "register-wmievent"
        | "register-cimindicationevent" => out.push(finding(
            Effect::Persists,
            "registers an event handler that runs code later",
        )),
        "set-executionpolicy" => {
            let p = a
                .get_or_pos(&["executionpolicy"], 0)
                .map(|v| v.lower())
                .unwrap_or_default();
            out.push(match p.as_str() {
                "bypass" | "unrestricted" => finding(
                    Effect::Weakens,
                    "turns off the script execution policy (lets unsigned scripts run)",
                ),
                "allsigned" | "restricted" => finding(
                    Effect::Strengthens,
                    "tightens the script execution policy",
                ),
                _ => finding(Effect::Changes, ""),
            });
        }
        "set-mppreference" | "add-mppreference" | "remove-mppreference" => mp_preference(c, a, out),
        "remove-mpthreat" => out.push(finding(Effect::Changes, "")),
        "start-mpscan" | "update-mpsignature" => out.push(finding(
            Effect::Strengthens,
            "runs a Microsoft Defender scan or signature update",
        )),
        "start-mpwdoscan" => out.push(finding(
            Effect::Changes,
            "restarts the host into a Defender offline scan",
        )),
        "set-netfirewallprofile" => firewall_profile(a, out),
        "new-netfirewallrule" | "set-netfirewallrule" => firewall_rule(c, a, out),
        "enable-netfirewallrule" => {
            let words = a.words().join(" ").to_lowercase();
            if ["remote desktop", "remote management", "file and printer sharing", "remote", "winrm", "smb"]
                .iter()
                .any(|g| words.contains(g))
            {
                out.push(finding(
                    Effect::Weakens,
                    "opens the firewall for remote access",
                ));
            } else {
                out.push(finding(Effect::Changes, ""));
            }
        }
        "disable-netfirewallrule" | "remove-netfirewallrule" => {
            let mut words = a.words();
            words.extend(up.map(|u| u.words.clone()).unwrap_or_default());
            out.push(unblocking(&words));
        }
        "stop-service" | "suspend-service" | "remove-service" => {
            let (names, everything) = targets(a, &["name", "displayname", "inputobject"], 0, up);
            service_stop(&names, everything, out);
        }
        "set-service" => set_service(w, a, up, out),
        "start-service" | "restart-service" | "resume-service" => {
            let (names, _) = targets(a, &["name", "displayname", "inputobject"], 0, up);
            service_start(w, c, &names, out);
        }
        "new-service" => out.push(finding(Effect::Persists, "creates a service")),
        "stop-process" => {
            let (names, everything) = if a.has(&["id"]) {
                (vec![], false)
            } else {
                targets(a, &["name", "inputobject"], 0, up)
            };
            if let Some(p) = security_product(&names) {
                out.push(finding(
                    Effect::Weakens,
                    format!("stops or disables security tooling ({p})"),
                ));
            } else if everything {
                out.push(finding(
                    Effect::Weakens,
                    "stops every process, security tooling included",
                ));
            } else {
                out.push(finding(Effect::Changes, ""));
            }
        }
        "register-scheduledtask" => out.push(finding(
            Effect::Persists,
            "creates a scheduled task (an autostart)",
        )),
        "set-scheduledtask" => out.push(finding(
            Effect::Persists,
            "changes what a scheduled task runs",
        )),
        "new-scheduledtask" | "new-scheduledtaskaction" | "new-scheduledtasktrigger"
        | "new-scheduledtaskprincipal" | "new-scheduledtasksettingsset" | "export-scheduledtask" => {
            // Only builds a definition; registering it is judged where that happens.
            out.push(finding(Effect::Reads, ""))
        }
        "enable-scheduledtask" => {
            let (names, _) = targets(a, &["taskname", "taskpath", "inputobject"], 0, up);
            let mut all = names;
            all.extend(a.words());
            if defender_task(&all) {
                out.push(finding(
                    Effect::Strengthens,
                    "re-enables a Microsoft Defender task",
                ));
            } else {
                out.push(finding(
                    Effect::Persists,
                    "re-enables a scheduled task (an autostart)",
                ));
            }
        }
        "disable-scheduledtask" | "unregister-scheduledtask" | "stop-scheduledtask" => {
            let (mut names, _) = targets(a, &["taskname", "taskpath", "inputobject"], 0, up);
            names.extend(a.words());
            if defender_task(&names) {
                out.push(finding(
                    Effect::Weakens,
                    "disables a Microsoft Defender task (security tooling)",
                ));
            } else {
                out.push(finding(Effect::Changes, ""));
            }
        }
        "start-scheduledtask" => out.push(finding(
            Effect::Executes,
            "runs a scheduled task's action now",
        )),
        "set-wmiinstance" | "new-ciminstance" | "set-ciminstance" | "invoke-wmimethod"
        | "invoke-cimmethod" | "remove-wmiobject" | "remove-ciminstance" => wmi(c, a, up, out),
        "new-localuser" | "new-aduser" => {
            let who = names_of(a, &["name", "samaccountname"], 0);
            out.push(grant(
                Effect::Weakens,
                "creates an account or grants group membership (a new account)",
                who,
            ));
        }
        "enable-localuser" | "enable-adaccount" | "unlock-adaccount" => {
            let who = names_of(a, &["name", "identity", "sid", "inputobject"], 0);
            out.push(grant(
                Effect::Weakens,
                "re-enables an account (the attacker may own it)",
                who,
            ));
        }
        "add-localgroupmember" | "add-adgroupmember" | "add-adprincipalgroupmembership" => {
            let who = names_of(a, &["member", "members", "identity"], 1);
            out.push(grant(
                Effect::Weakens,
                "creates an account or grants group membership",
                who,
            ));
        }
        "set-localuser" | "set-aduser" | "set-adaccountpassword" | "set-adaccountcontrol" => {
            set_account(c, a, out)
        }
        "import-certificate" | "import-pfxcertificate" => {
            let file = names_of(a, &["filepath"], 0);
            match a.get(&["certstorelocation"]) {
                Some(v) if v.exact => {
                    let store = cert_path_store(v.first().unwrap_or("")).unwrap_or_default();
                    out.push(cert_store_write(&store, file));
                }
                Some(_) => out.push(grant(
                    Effect::Weakens,
                    "imports a certificate into a store computed at run time",
                    file,
                )),
                None => out.push(finding(Effect::Changes, "")),
            }
        }
        // A `Get-` that writes a file (to the desktop).
        "get-windowsupdatelog" => out.push(finding(Effect::Changes, "writes a file")),
        "export-pfxcertificate" => out.push(finding(
            Effect::Weakens,
            "exports a certificate with its private key (credential theft)",
        )),
        "set-item" => set_item(w, a, out),
        "set-itemproperty" | "new-itemproperty" | "rename-itemproperty" | "copy-itemproperty"
        | "move-itemproperty" => set_item_property(w, c, a, up, out),
        "remove-itemproperty" | "clear-itemproperty" => {
            let name = a.get_or_pos(&["name"], 1).and_then(|v| v.first().map(String::from));
            let paths = paths_of(w, a, up);
            if paths.is_empty() {
                out.push(finding(Effect::Changes, ""));
            }
            for p in paths {
                match registry_delete(&p, name.as_deref()) {
                    Some(r) => out.push(reg_finding(r, &[])),
                    None => out.push(finding(Effect::Changes, "")),
                }
            }
        }
        "new-item" => new_item(w, a, out),
        "remove-item" | "clear-item" => {
            let recursive = a.has(&["recurse"])
                || a.flat.iter().any(|f| f == "/s")
                || up.is_some_and(|u| u.words.iter().any(|x| x.eq_ignore_ascii_case("recurse")));
            let v = a.get_or_pos(&["path", "literalpath"], 0);
            let exact = v.is_none_or(|v| v.exact);
            if a.words().iter().any(|x| {
                let x = x.to_lowercase();
                x.contains("historysavepath") || x.contains("consolehost_history")
            }) {
                out.push(finding(
                    Effect::Destroys,
                    "deletes PowerShell command history (evidence)",
                ));
            }
            let paths = delete_targets(w, a, up);
            if !exact && recursive {
                out.push(finding(
                    Effect::Destroys,
                    "deletes recursively a path computed at run time",
                ));
            }
            if paths.is_empty() {
                out.push(finding(Effect::Changes, ""));
            }
            for p in paths {
                out.extend(w.delete(&p, recursive));
            }
        }
        "clear-content" => {
            let paths = paths_of(w, a, up);
            out.push(finding(Effect::Changes, ""));
            for p in paths {
                if let Some((e, what)) = file_delete(&p, false)
                    && e == Effect::Destroys
                {
                    out.push(finding(e, what));
                }
            }
        }
        "set-content" | "add-content" => {
            let path = a.get_or_pos(&["path", "literalpath"], 0);
            let value = a
                .get_or_pos(&["value"], 1)
                .map(|v| v.texts.join("\n"))
                .unwrap_or_default();
            match path.filter(|p| p.exact).and_then(|p| p.first().map(String::from)) {
                Some(p) if norm_path(&w.path(&p)) == "c:\\windows\\system32\\drivers\\etc\\hosts" => {
                    let (e, what) = hosts_entry(&value);
                    // Only a redirect grants anything; a sinkhole blocks.
                    let grants = if e == Effect::Weakens { vec![value] } else { vec![] };
                    out.push(grant(e, what, grants));
                }
                Some(p) => out.extend(w.write_to(&p, "writes a file")),
                None => match path {
                    Some(v) => out.extend(w.write_value(v, "writes a file")),
                    None => out.push(finding(Effect::Changes, "writes a file")),
                },
            }
        }
        "out-file" | "tee-object" | "export-csv" | "export-clixml" | "start-transcript"
        | "export-certificate" => {
            let dest = a.get_or_pos(&["filepath", "path", "literalpath"], 0);
            match dest {
                Some(d) => out.extend(w.write_value(d, "writes a file")),
                None if c == "tee-object" => out.push(finding(Effect::Reads, "")),
                None => out.push(finding(Effect::Changes, "writes a file")),
            }
        }
        "compress-archive" | "expand-archive" => {
            let dest = a.get_or_pos(&["destinationpath"], 1);
            match dest {
                Some(d) => out.extend(w.write_value(d, "writes a file")),
                None => out.push(finding(Effect::Changes, "writes a file")),
            }
        }
        "copy-item" => {
            if a.has(&["tosession", "fromsession"]) {
                out.push(finding(
                    Effect::ReachesOut,
                    "copies files to or from another machine",
                ));
            }
            let dest_val = a.get_or_pos(&["destination"], 1);
            let dest = dest_val.and_then(|v| v.first().map(String::from));
            match (dest, dest_val) {
                (Some(d), _) if cert_path_store(&d).is_some() => {
                    let store = cert_path_store(&d).unwrap_or_default();
                    out.push(cert_store_write(&store, names_of(a, &["path"], 0)));
                }
                (_, Some(v)) => out.extend(w.write_value(v, "")),
                _ => out.push(finding(Effect::Changes, "")),
            }
        }
        "move-item" | "rename-item" => move_item(w, c, a, up, out),
        "set-acl" => out.push(finding(Effect::Changes, "")),
        "unblock-file" => out.push(finding(
            Effect::Weakens,
            "removes the downloaded-from-the-internet mark, so the file runs without a warning",
        )),
        "set-location" | "push-location" => {
            if let Some(p) = a
                .get_or_pos(&["path", "literalpath"], 0)
                .filter(|v| v.exact)
                .and_then(|v| v.first().map(String::from))
            {
                let p = w.path(&p);
                w.set_cwd(Some(p));
            }
            out.push(finding(Effect::Reads, ""));
        }
        "set-date" => out.push(finding(
            Effect::Destroys,
            "changes the system clock, so log timestamps become unreliable",
        )),
        "clear-recyclebin" => out.push(finding(
            Effect::Destroys,
            "empties the recycle bin (evidence)",
        )),
        "clear-eventlog" | "remove-eventlog" => out.push(finding(
            Effect::Destroys,
            "clears or tampers with event logs",
        )),
        "limit-eventlog" => out.push(finding(
            Effect::Weakens,
            "clears or tampers with event logs (limits their size or retention)",
        )),
        "format-volume" | "clear-disk" | "initialize-disk" | "remove-partition" => out.push(finding(
            Effect::Destroys,
            "destroys backups, recovery options or disks",
        )),
        "disable-computerrestore" => out.push(finding(
            Effect::Weakens,
            "turns off System Restore (destroys backups and recovery options)",
        )),
        "enable-computerrestore" | "checkpoint-computer" => out.push(finding(
            Effect::Strengthens,
            "turns System Restore on or creates a restore point",
        )),
        "restart-computer" | "stop-computer" => out.push(finding(
            Effect::Changes,
            "restarts or shuts down the host (evidence in memory is lost)",
        )),
        "set-dnsclientserveraddress" => {
            if a.has(&["resetserveraddresses"]) {
                out.push(finding(Effect::Changes, ""));
            } else {
                out.push(grant(
                    Effect::Weakens,
                    "changes the DNS servers, which can send lookups to the attacker",
                    names_of(a, &["serveraddresses"], 1),
                ));
            }
        }
        "add-dnsclientnrptrule" | "set-dnsclientglobalsetting" | "set-dnsclientnrptglobal" => {
            out.push(finding(Effect::Weakens, "changes how DNS names are resolved"))
        }
        "new-netroute" | "set-netroute" => out.push(grant(
            Effect::Weakens,
            "changes network routing",
            names_of(a, &["nexthop", "destinationprefix"], 0),
        )),
        "new-netnat" | "add-netnatstaticmapping" => out.push(finding(
            Effect::Weakens,
            "forwards traffic to another host",
        )),
        "enable-psremoting" | "enable-wsmancredssp" | "set-wsmanquickconfig" | "set-wsmaninstance" => {
            out.push(finding(
                Effect::Weakens,
                "opens remote management (WinRM / CredSSP)",
            ))
        }
        "disable-psremoting" | "disable-wsmancredssp" => out.push(finding(
            Effect::Strengthens,
            "closes remote management",
        )),
        "set-smbserverconfiguration" | "set-smbclientconfiguration" => smb(a, out),
        "new-smbshare" | "grant-smbshareaccess" | "unblock-smbshareaccess" => out.push(grant(
            Effect::Weakens,
            "shares a folder over the network or grants access to a share",
            names_of(a, &["fullaccess", "changeaccess", "readaccess", "accountname"], 99),
        )),
        "remove-smbshare" | "revoke-smbshareaccess" | "block-smbshareaccess" | "close-smbsession"
        | "close-smbopenfile" => out.push(finding(Effect::Changes, "")),
        "set-processmitigation" => {
            if a.has(&["disable", "remove", "reset"]) {
                out.push(finding(
                    Effect::Weakens,
                    "turns off exploit protection (process mitigations)",
                ));
            } else {
                out.push(finding(Effect::Strengthens, "turns exploit protection on"));
            }
        }
        "disable-windowsoptionalfeature" | "uninstall-windowsfeature" | "remove-windowsfeature"
        | "remove-windowscapability" => {
            let words = a.words().join(" ").to_lowercase();
            if words.contains("defender") || words.contains("sysmon") {
                out.push(finding(
                    Effect::Weakens,
                    "removes Microsoft Defender (security tooling)",
                ));
            } else {
                out.push(finding(Effect::Changes, ""));
            }
        }
        "enable-windowsoptionalfeature" | "install-windowsfeature" | "add-windowsfeature"
        | "add-windowscapability" => {
            let words = a.words().join(" ").to_lowercase();
            if ["smb1", "telnet", "tftp", "openssh.server", "rsat", "iis"]
                .iter()
                .any(|f| words.contains(f))
            {
                out.push(finding(
                    Effect::Weakens,
                    "adds a remote-access or legacy-protocol feature",
                ));
            } else {
                out.push(finding(Effect::Changes, ""));
            }
        }
        "install-module" | "install-package" | "install-script" | "save-module"
        | "install-packageprovider" | "register-psrepository" | "register-packagesource"
        | "update-module" => out.push(finding(
            Effect::Executes,
            "installs software from the network, which runs its code",
        )),
        "uninstall-package" | "uninstall-module" => {
            let mut words = a.words();
            words.extend(up.map(|u| u.words.clone()).unwrap_or_default());
            if let Some(p) = security_product(&words) {
                out.push(finding(
                    Effect::Weakens,
                    format!("uninstalls security tooling ({p})"),
                ));
            } else {
                out.push(finding(Effect::Changes, ""));
            }
        }
        "set-psreadlineoption" => {
            let style = a.get(&["historysavestyle"]).map(|v| v.lower()).unwrap_or_default();
            if style == "savenothing" || a.has(&["historysavepath"]) {
                out.push(finding(
                    Effect::Weakens,
                    "stops PowerShell recording its command history (evidence)",
                ));
            } else {
                out.push(finding(Effect::Changes, ""));
            }
        }
        "start-sleep" | "clear-host" | "write-progress" | "out-gridview" | "out-default"
        | "write-verbose" | "write-debug" | "write-warning" | "write-error" | "write-information" => {
            out.push(finding(Effect::Reads, ""))
        }
        "set-variable" | "new-variable" | "remove-variable" | "clear-variable" => {
            out.push(finding(Effect::Reads, ""))
        }
        "foreach-object" | "where-object" | "new-object" | "measure-command" | "trace-command" => {}
        _ => out.push(by_verb(c)),
    }
}

/// Names given to an account or grant, as texts.
fn names_of(a: &Args, names: &[&str], pos: usize) -> Vec<String> {
    a.get_or_pos(names, pos)
        .map(|v| v.texts.clone())
        .unwrap_or_default()
}

fn cert_store_write(store: &str, file: Vec<String>) -> Finding {
    if store == "disallowed" {
        finding(Effect::Strengthens, "distrusts a certificate")
    } else if TRUST_STORES.contains(&store) {
        grant(
            Effect::Weakens,
            format!(
                "trusts a certificate in the {store} store (lets its owner sign code or intercept TLS)"
            ),
            file,
        )
    } else {
        finding(Effect::Changes, "")
    }
}

/// Paths a file or registry cmdlet works on: `-Path`, `-LiteralPath`, the first positional,
/// else literal paths flowing in from the pipeline.
fn paths_of(w: &Walk<'_>, a: &Args, up: Option<&Upstream>) -> Vec<String> {
    if let Some(v) = a.get_or_pos(&["path", "literalpath", "fullname"], 0) {
        return v.texts.iter().map(|t| w.path(t)).collect();
    }
    piped_paths(w, up)
}

/// Literal paths flowing in from the pipeline.
fn piped_paths(w: &Walk<'_>, up: Option<&Upstream>) -> Vec<String> {
    up.map(|u| {
        u.words
            .iter()
            .filter(|x| x.contains(['\\', ':']))
            .map(|x| w.path(x))
            .collect()
    })
    .unwrap_or_default()
}

/// What `Remove-Item` (and cmd's `del`, `rd`) deletes: `-Path`, else every positional value
/// that is not a cmd switch (`del /s /q C:\x` reaches `Remove-Item` with its switches), else
/// what flows in from the pipeline.
fn delete_targets(w: &Walk<'_>, a: &Args, up: Option<&Upstream>) -> Vec<String> {
    if let Some(v) = a.get(&["path", "literalpath", "fullname"]) {
        return v.texts.iter().map(|t| w.path(t)).collect();
    }
    let positional: Vec<String> = a
        .items
        .iter()
        .filter_map(|i| match i {
            super::effects::Arg::Pos(v) => Some(v.texts.clone()),
            super::effects::Arg::Named(..) => None,
        })
        .flatten()
        .filter(|t| !is_cmd_switch(t))
        .map(|t| w.path(&t))
        .collect();
    if !positional.is_empty() {
        return positional;
    }
    piped_paths(w, up)
}

/// `/s`, `/q`, `/f:x`: a cmd switch, not a path.
fn is_cmd_switch(t: &str) -> bool {
    t.starts_with('/') && t.len() <= 12 && !t[1..].contains(['/', '\\'])
}

fn start_process(w: &mut Walk<'_>, a: &Args, out: &mut Vec<Finding>) {
    // cmd's `start "title" /b prog args`: the title and switches come before the program.
    let positional: Vec<&super::effects::Val> = a
        .items
        .iter()
        .filter_map(|i| match i {
            super::effects::Arg::Pos(v) => Some(v),
            super::effects::Arg::Named(..) => None,
        })
        .collect();
    let skip = positional
        .iter()
        .take_while(|v| v.first().is_some_and(|t| t.is_empty() || is_cmd_switch(t)))
        .count();
    let target = a
        .get(&["filepath"])
        .or_else(|| positional.get(skip).copied());
    let Some(target) = target else {
        out.push(finding(
            Effect::Executes,
            "starts a program it does not name",
        ));
        return;
    };
    if !target.exact {
        out.push(finding(
            Effect::Executes,
            "starts a program whose name is computed at run time",
        ));
        return;
    }
    let program = target.first().unwrap_or_default().replace('\'', "''");
    let args = match a.get(&["argumentlist"]) {
        Some(v) => v.texts.join(" "),
        None if a.has(&["filepath"]) => positional
            .iter()
            .flat_map(|v| v.texts.iter().cloned())
            .collect::<Vec<_>>()
            .join(" "),
        None => positional
            .iter()
            .skip(skip + 1)
            .flat_map(|v| v.texts.iter().cloned())
            .collect::<Vec<_>>()
            .join(" "),
    };
    if a.get(&["verb"]).is_some_and(|v| v.lower() == "runas") || a.has(&["credential"]) {
        out.push(finding(Effect::Changes, "starts a program as another user"));
    }
    // Judged as if the program were run directly, with its arguments.
    w.started_text(&format!("& '{program}' {args}"), out);
}

fn mp_preference(c: &str, a: &Args, out: &mut Vec<Finding>) {
    if a.unknown_splat {
        out.push(finding(
            Effect::Weakens,
            "sets Microsoft Defender preferences from a variable that cannot be reviewed (security tooling)",
        ));
    }
    let remove = c == "remove-mppreference";
    let before = out.len();
    for item in &a.items {
        let super::effects::Arg::Named(n, v) = item else {
            continue;
        };
        let n = mp_alias(n);
        let val = v.as_ref().map(|v| v.lower()).unwrap_or_default();
        let texts = v.as_ref().map(|v| v.texts.clone()).unwrap_or_default();
        let on = if v.is_none() { Some(true) } else { truth(&val) };
        let param = param_name(n);
        let f = if remove {
            if n.starts_with("exclusion")
                || n.starts_with("threatiddefaultaction_ids")
                || n.starts_with("controlledfolderaccessallowed")
                || n.starts_with("attacksurfacereductiononlyexclusions")
            {
                finding(
                    Effect::Strengthens,
                    format!("removes a Microsoft Defender exclusion or allowance ({param})"),
                )
            } else if n.starts_with("attacksurfacereductionrules") {
                finding(
                    Effect::Weakens,
                    "removes attack-surface-reduction rules (security tooling)",
                )
            } else {
                finding(Effect::Changes, "")
            }
        } else if n.starts_with("exclusion")
            || n.starts_with("attacksurfacereductiononlyexclusions")
            || n.starts_with("controlledfolderaccessallowed")
        {
            grant(
                Effect::Weakens,
                format!(
                    "adds a Microsoft Defender exclusion, so Defender stops looking there (security tooling: {param} {})",
                    texts.join(",")
                ),
                texts,
            )
        } else if let Some(what) = n.strip_prefix("disable") {
            let what = defender_feature(what);
            match on {
                Some(false) => finding(
                    Effect::Strengthens,
                    format!("turns Microsoft Defender {what} back on"),
                ),
                _ => finding(
                    Effect::Weakens,
                    format!(
                        "turns off Microsoft Defender {what} (disables or weakens security tooling)"
                    ),
                ),
            }
        } else if let Some(t) = DEFENDER_TOGGLES.iter().find(|t| (t.names)(n)) {
            let param = param.to_string();
            if t.values.contains(&val.as_str()) == t.values_weaken {
                finding(Effect::Weakens, t.weakens.replace("{param}", &param))
            } else {
                finding(
                    Effect::Strengthens,
                    t.strengthens.replace("{param}", &param),
                )
            }
        } else if n.ends_with("defaultaction") || n.starts_with("threatiddefaultaction_actions") {
            if matches!(
                val.as_str(),
                "6" | "allow" | "9" | "noaction" | "8" | "userdefined"
            ) {
                grant(
                    Effect::Weakens,
                    "disables or weakens security tooling (lets detected threats run)",
                    texts,
                )
            } else {
                finding(
                    Effect::Strengthens,
                    "makes Defender act on detected threats",
                )
            }
        } else if n == "scanscheduleday" {
            if matches!(val.as_str(), "8" | "never") {
                finding(
                    Effect::Weakens,
                    "disables or weakens security tooling (never runs scheduled scans)",
                )
            } else {
                finding(Effect::Changes, "")
            }
        } else if matches!(
            n,
            "force"
                | "scanparameters"
                | "scanscheduletime"
                | "scanscheduledaytime"
                | "scanscheduleoffset"
                | "scanavgcpuloadfactor"
                | "attacksurfacereductionrules_ids"
                | "threatiddefaultaction_ids"
                | "signatureupdateinterval"
                | "signaturescheduleday"
                | "signaturescheduletime"
                | "quarantinepurgeitemsafterdelay"
                | "cloudextendedtimeout"
        ) {
            finding(Effect::Changes, "")
        } else if n.contains("scan")
            && matches!(
                val.as_str(),
                "$false" | "0" | "2" | "$true" | "false" | "true" | ""
            )
        {
            // A scan setting the gate has no table for: judged as the old rule did.
            finding(
                Effect::Weakens,
                format!("disables or weakens security tooling (Defender scan setting {param})"),
            )
        } else if n.starts_with("enable") || n.starts_with("checkfor") {
            match on {
                Some(true) => finding(
                    Effect::Strengthens,
                    format!("turns Microsoft Defender protection on ({param})"),
                ),
                _ => finding(
                    Effect::Weakens,
                    format!("disables or weakens security tooling (Microsoft Defender {param})"),
                ),
            }
        } else if truth(&val).is_some() || v.is_none() {
            // An on/off setting the gate has no table for: judged as the worst it could be.
            finding(
                Effect::Weakens,
                format!(
                    "disables or weakens security tooling (a Defender setting it cannot judge: {param})"
                ),
            )
        } else {
            finding(Effect::Changes, "")
        };
        out.push(f);
    }
    if out.len() == before {
        out.push(finding(Effect::Changes, ""));
    }
}

/// Set-MpPreference's parameter aliases (`-drtm` is `-DisableRealtimeMonitoring`).
fn mp_alias(n: &str) -> &str {
    match n {
        "drtm" => "disablerealtimemonitoring",
        "dbm" => "disablebehaviormonitoring",
        "dioavp" => "disableioavprotection",
        "dscrptsc" => "disablescriptscanning",
        "dips" => "disableintrusionpreventionsystem",
        "dpm" => "disableprivacymode",
        "darchsc" => "disablearchivescanning",
        "dcfsc" => "disablecatchupfullscan",
        "dcqsc" => "disablecatchupquickscan",
        "demsc" => "disableemailscanning",
        "drdsc" => "disableremovabledrivescanning",
        "drp" => "disablerestorepoint",
        "dsmndf" => "disablescanningmappednetworkdrivesforfullscan",
        "dsnf" => "disablescanningnetworkfiles",
        "dbaf" => "disableblockatfirstseen",
        "csce" => "checkforsignaturesbeforerunningscan",
        other => other,
    }
}

/// `-exclusionpath` → `-ExclusionPath`-like, for reasons (the reader lowercases names).
fn param_name(n: &str) -> String {
    format!("-{n}")
}

/// What a `-Disable…` switch of Set-MpPreference turns off, in words.
fn defender_feature(rest: &str) -> String {
    match rest {
        "realtimemonitoring" => "real-time monitoring".into(),
        "behaviormonitoring" => "behavior monitoring".into(),
        "ioavprotection" => "scanning of downloaded files (IOAV)".into(),
        "scriptscanning" => "script scanning".into(),
        "blockatfirstseen" => "block at first sight (cloud protection)".into(),
        "archivescanning" => "archive scanning".into(),
        "intrusionpreventionsystem" => "network intrusion prevention".into(),
        "tamperprotection" => "tamper protection".into(),
        "emailscanning" => "e-mail scanning".into(),
        "removabledrivescanning" => "removable-drive scanning".into(),
        "privacymode" => "privacy mode".into(),
        "restorepoint" => "restore points before cleaning".into(),
        "antispyware" | "antivirus" => "antivirus".into(),
        other => format!("protection (-Disable{other})"),
    }
}

fn firewall_profile(a: &Args, out: &mut Vec<Finding>) {
    if a.unknown_splat {
        out.push(finding(
            Effect::Weakens,
            "sets firewall profiles from a variable that cannot be reviewed (security tooling)",
        ));
    }
    let mut any = false;
    if let Some(v) = a.get(&["enabled"]) {
        any = true;
        out.push(match v.first().and_then(truth) {
            Some(true) => finding(Effect::Strengthens, "turns the Windows firewall back on"),
            _ => finding(
                Effect::Weakens,
                "disables or weakens security tooling (turns the Windows firewall off)",
            ),
        });
    }
    if let Some(v) = a.get(&["defaultinboundaction"]) {
        any = true;
        out.push(if v.lower() == "block" {
            finding(Effect::Strengthens, "blocks inbound connections by default")
        } else {
            finding(
                Effect::Weakens,
                "disables or weakens security tooling (allows inbound connections by default)",
            )
        });
    }
    if let Some(v) = a.get(&["defaultoutboundaction"]) {
        any = true;
        out.push(if v.lower() == "block" {
            finding(
                Effect::Strengthens,
                "blocks outbound connections by default",
            )
        } else {
            finding(Effect::Changes, "")
        });
    }
    for p in ["logblocked", "logallowed", "logignored"] {
        if let Some(v) = a.get(&[p]) {
            any = true;
            out.push(match v.first().and_then(truth) {
                Some(true) => finding(Effect::Strengthens, "turns firewall logging on"),
                _ => finding(Effect::Weakens, "stops firewall logging (evidence)"),
            });
        }
    }
    if !any {
        out.push(finding(Effect::Changes, ""));
    }
}

/// Removing or disabling a rule whose name says it blocks opens what it closed; any other
/// rule's removal is ordinary (it may be the attacker's allow rule).
fn unblocking(words: &[String]) -> Finding {
    let names = words.join(" ").to_lowercase();
    if names.contains("block") || names.contains("deny") || names.contains("isolat") {
        finding(
            Effect::Weakens,
            "opens the firewall: removes or disables a blocking rule",
        )
    } else {
        finding(Effect::Changes, "")
    }
}

fn firewall_rule(c: &str, a: &Args, out: &mut Vec<Finding>) {
    let mut subjects = names_of(a, &["remoteaddress"], 99);
    subjects.extend(names_of(a, &["program"], 99));
    let action = a.get(&["action"]);
    let creating = c == "new-netfirewallrule";
    match action {
        Some(v) if v.exact && v.lower() == "block" => out.push(finding(Effect::Changes, "")),
        Some(v) if v.exact && v.lower() == "allow" => out.push(grant(
            Effect::Weakens,
            "opens the firewall: an Allow rule (the opposite of blocking)",
            subjects,
        )),
        Some(_) => out.push(grant(
            Effect::Weakens,
            "opens the firewall: a rule whose action cannot be read is treated as Allow",
            subjects,
        )),
        None if creating || a.unknown_splat => out.push(grant(
            Effect::Weakens,
            "opens the firewall: a new rule without -Action Block allows traffic",
            subjects,
        )),
        None if a.flag(&["enabled"]) == Some(Some(false)) => out.push(unblocking(&a.words())),
        None => out.push(finding(Effect::Changes, "")),
    }
}

fn service_stop(names: &[String], everything: bool, out: &mut Vec<Finding>) {
    if let Some(p) = security_product(names) {
        out.push(finding(
            Effect::Weakens,
            format!("stops or disables security tooling ({p})"),
        ));
    } else if everything {
        out.push(finding(
            Effect::Weakens,
            "stops every service, security tooling included",
        ));
    } else {
        out.push(finding(Effect::Changes, ""));
    }
}

fn service_start(w: &Walk<'_>, c: &str, names: &[String], out: &mut Vec<Finding>) {
    if let Some(p) = security_product(names) {
        out.push(if c == "restart-service" {
            finding(Effect::Changes, "")
        } else {
            finding(
                Effect::Strengthens,
                format!("starts the security service {p}"),
            )
        });
    } else if let Some(s) = remote_access_service(names) {
        out.push(finding(
            Effect::Weakens,
            format!("enables remote access ({s})"),
        ));
    } else if names.iter().any(|n| w.facts.names_program(n)) {
        out.push(finding(
            Effect::Executes,
            "starts the service of the program the alert names (the attacker's code)",
        ));
    } else {
        out.push(finding(Effect::Changes, ""));
    }
}

fn set_service(w: &Walk<'_>, a: &Args, up: Option<&Upstream>, out: &mut Vec<Finding>) {
    let (names, everything) = targets(a, &["name", "displayname", "inputobject"], 0, up);
    let startup = a.get(&["startuptype"]).map(|v| v.lower());
    let status = a.get(&["status"]).map(|v| v.lower());
    if a.has(&["binarypathname", "credential", "securitydescriptorsddl"]) {
        out.push(finding(
            Effect::Persists,
            "changes what a service runs or as whom",
        ));
    }
    let disabling = matches!(startup.as_deref(), Some("disabled" | "manual"))
        || matches!(status.as_deref(), Some("stopped" | "paused"));
    let enabling = matches!(
        startup.as_deref(),
        Some("automatic" | "automaticdelayedstart" | "boot" | "system")
    ) || status.as_deref() == Some("running");
    if disabling {
        service_stop(&names, everything, out);
    } else if enabling {
        if let Some(p) = security_product(&names) {
            out.push(finding(
                Effect::Strengthens,
                format!("sets the security service {p} to run"),
            ));
        } else if let Some(s) = remote_access_service(&names) {
            out.push(finding(
                Effect::Weakens,
                format!("enables remote access ({s})"),
            ));
        } else if status.as_deref() == Some("running") && startup.is_none() {
            service_start(w, "start-service", &names, out);
        } else {
            out.push(finding(
                Effect::Persists,
                "makes a service start automatically (an autostart)",
            ));
        }
    } else if startup.is_some() || status.is_some() || a.unknown_splat {
        // A value the gate cannot read: the worst it could be.
        service_stop(&names, everything, out);
        if security_product(&names).is_none() {
            out.push(finding(
                Effect::Persists,
                "sets a service's start mode to a value it cannot read",
            ));
        }
    } else {
        out.push(finding(Effect::Changes, ""));
    }
}

fn set_account(c: &str, a: &Args, out: &mut Vec<Finding>) {
    let who = names_of(a, &["name", "identity", "sid", "inputobject"], 0);
    let mut any = false;
    if c == "set-adaccountpassword" || a.has(&["password", "newpassword", "accountpassword"]) {
        any = true;
        out.push(grant(
            Effect::Weakens,
            "sets an account's password (whoever wrote the alert text would know it; reset passwords out of band)",
            who.clone(),
        ));
    }
    for p in [
        "passwordneverexpires",
        "accountneverexpires",
        "passwordnotrequired",
        "doesnotrequirepreauth",
        "trustedfordelegation",
        "trustedtoauthfordelegation",
        "allowreversiblepasswordencryption",
        "cannotchangepassword",
    ] {
        if let Some(on) = a.flag(&[p]) {
            any = true;
            out.push(if on == Some(false) {
                finding(Effect::Strengthens, "tightens an account's settings")
            } else {
                grant(
                    Effect::Weakens,
                    format!("weakens an account's protection (-{p})"),
                    who.clone(),
                )
            });
        }
    }
    if let Some(on) = a.flag(&["enabled"]) {
        any = true;
        out.push(if on == Some(false) {
            finding(Effect::Changes, "")
        } else {
            grant(
                Effect::Weakens,
                "re-enables an account (the attacker may own it)",
                who.clone(),
            )
        });
    }
    if a.has(&["serviceprincipalnames", "add", "replace"]) {
        any = true;
        out.push(grant(
            Effect::Weakens,
            "changes an account's attributes (service principal names, flags) that attackers abuse",
            who.clone(),
        ));
    }
    if !any {
        out.push(finding(Effect::Changes, ""));
    }
}

fn set_item(w: &Walk<'_>, a: &Args, out: &mut Vec<Finding>) {
    let value = a
        .get_or_pos(&["value"], 1)
        .map(|v| v.texts.clone())
        .unwrap_or_default();
    let paths = paths_of(w, a, None);
    if paths.is_empty() {
        out.push(finding(Effect::Changes, ""));
    }
    for p in paths {
        let n = norm_path(&p);
        if n.starts_with("wsman:") {
            if n.contains("trustedhosts") {
                out.push(grant(
                    Effect::Weakens,
                    "trusts another host for remote management (WinRM TrustedHosts)",
                    value.clone(),
                ));
            } else {
                out.push(finding(
                    Effect::Weakens,
                    "changes remote-management (WinRM) settings",
                ));
            }
        } else if n.starts_with("function:") || n.starts_with("alias:") {
            out.push(finding(
                Effect::Executes,
                "dynamic or obfuscated invocation hides what would run (redefines a command)",
            ));
        } else if n.starts_with("env:") || n.starts_with("variable:") {
            out.push(finding(Effect::Reads, ""));
        } else if is_registry(&p) {
            match registry_write(&p, None, value.first().map(String::as_str)) {
                Some(r) => out.push(reg_finding(r, &value)),
                None => out.push(finding(Effect::Changes, "")),
            }
        } else {
            out.extend(w.write_to(&p, "writes a file"));
        }
    }
}

fn set_item_property(
    w: &Walk<'_>,
    c: &str,
    a: &Args,
    up: Option<&Upstream>,
    out: &mut Vec<Finding>,
) {
    let names: Vec<String> = a
        .get_or_pos(&["name", "newname"], 1)
        .map(|v| v.texts.clone())
        .unwrap_or_default();
    let value = a
        .get_or_pos(&["value"], 2)
        .map(|v| v.texts.clone())
        .unwrap_or_default();
    let path_val = a.get_or_pos(&["path", "literalpath"], 0);
    if path_val.is_some_and(|v| !v.exact) || a.unknown_splat {
        out.push(finding(
            Effect::Persists,
            "writes the registry at a location computed at run time",
        ));
    }
    let mut paths: Vec<String> = path_val
        .map(|v| v.texts.iter().map(|t| w.path(t)).collect())
        .unwrap_or_else(|| piped_paths(w, up));
    if c == "copy-itemproperty" || c == "move-itemproperty" {
        paths.extend(
            a.get(&["destination"])
                .map(|v| v.texts.iter().map(|t| w.path(t)).collect::<Vec<_>>())
                .unwrap_or_default(),
        );
    }
    if paths.is_empty() {
        out.push(finding(Effect::Changes, ""));
    }
    for p in paths {
        if is_registry(&p) {
            let judged = if names.is_empty() {
                registry_write(&p, None, value.first().map(String::as_str))
            } else {
                names
                    .iter()
                    .filter_map(|n| registry_write(&p, Some(n), value.first().map(String::as_str)))
                    .max_by_key(|r| r.effect)
            };
            match judged {
                Some(r) => out.push(reg_finding(r, &value)),
                None => out.push(finding(Effect::Changes, "")),
            }
        } else if names.iter().any(|n| {
            matches!(
                n.to_lowercase().as_str(),
                "lastwritetime"
                    | "creationtime"
                    | "lastaccesstime"
                    | "lastwritetimeutc"
                    | "creationtimeutc"
                    | "lastaccesstimeutc"
            )
        }) {
            out.push(finding(
                Effect::Destroys,
                "changes a file's timestamps (timestomping destroys evidence)",
            ));
        } else {
            out.push(finding(Effect::Changes, ""));
        }
    }
}

fn new_item(w: &Walk<'_>, a: &Args, out: &mut Vec<Finding>) {
    let name = a.get(&["name"]).and_then(|v| v.first().map(String::from));
    let value = a
        .get(&["value"])
        .map(|v| v.texts.clone())
        .unwrap_or_default();
    let kind = a
        .get(&["itemtype", "type"])
        .map(|v| v.lower())
        .unwrap_or_default();
    let paths: Vec<String> = match a.get_or_pos(&["path"], 0) {
        Some(v) => v.texts.iter().map(|t| w.path(t)).collect(),
        None => name.iter().map(|n| w.path(n)).collect(),
    };
    if paths.is_empty() {
        out.push(finding(Effect::Changes, ""));
    }
    for p in paths {
        let full = match (&name, a.get(&["path"]).is_some() || a.pos(0).is_some()) {
            (Some(n), true) => format!("{}\\{n}", p.trim_end_matches('\\')),
            _ => p.clone(),
        };
        if is_registry(&full) {
            match registry_write(&full, None, value.first().map(String::as_str)) {
                Some(r) => out.push(reg_finding(r, &value)),
                None => out.push(finding(Effect::Changes, "")),
            }
        } else if kind == "directory" && in_evidence(&full, w.evidence) {
            out.push(finding(Effect::Reads, ""));
        } else {
            out.extend(w.write_to(&full, ""));
        }
    }
}

fn move_item(w: &Walk<'_>, c: &str, a: &Args, up: Option<&Upstream>, out: &mut Vec<Finding>) {
    let sources = paths_of(w, a, up);
    let dest = a
        .get_or_pos(&["destination", "newname"], 1)
        .and_then(|v| v.first().map(String::from));
    for s in &sources {
        if is_registry(s) {
            if let Some(r) = registry_delete(s, None) {
                out.push(reg_finding(r, &[]));
            }
        } else if let Some((e, what)) = file_delete(s, true) {
            out.push(finding(e, what));
        }
    }
    match dest {
        Some(d) if c == "move-item" && cert_path_store(&d).is_some() => {
            let store = cert_path_store(&d).unwrap_or_default();
            out.push(cert_store_write(&store, sources.clone()));
        }
        Some(d) if c == "move-item" && in_evidence(&w.path(&d), w.evidence) => out.push(finding(
            Effect::Changes,
            "quarantines the file into the evidence folder",
        )),
        Some(d) if c == "move-item" => out.extend(w.write_to(&d, "")),
        Some(d) => {
            // A rename keeps the folder: judge the new name there.
            let folder = sources
                .first()
                .and_then(|s| s.rsplit_once('\\').map(|(f, _)| f.to_string()));
            match folder {
                Some(f) if !d.contains('\\') => out.extend(w.write_to(&format!("{f}\\{d}"), "")),
                _ => out.extend(w.write_to(&d, "")),
            }
        }
        None => out.push(finding(Effect::Changes, "")),
    }
}

fn smb(a: &Args, out: &mut Vec<Finding>) {
    let mut any = false;
    for (p, weak_when) in [
        ("enablesmb1protocol", true),
        ("requiresecuritysignature", false),
        ("enablesecuritysignature", false),
        ("rejectunencryptedaccess", false),
        ("encryptdata", false),
        ("enableinsecureguestlogons", true),
    ] {
        if let Some(on) = a.flag(&[p]) {
            any = true;
            out.push(match on {
                Some(v) if v != weak_when => {
                    finding(Effect::Strengthens, format!("hardens SMB (-{p})"))
                }
                _ => finding(Effect::Weakens, format!("weakens SMB security (-{p})")),
            });
        }
    }
    if !any {
        out.push(finding(Effect::Changes, ""));
    }
}

/// WMI and CIM writes: shadow copies, event subscriptions, processes, services, the registry
/// provider and Defender's own classes.
fn wmi(c: &str, a: &Args, up: Option<&Upstream>, out: &mut Vec<Finding>) {
    let mut words = a.words();
    if let Some(u) = up {
        words.extend(u.words.iter().cloned());
    }
    let all = words.join(" ").to_lowercase();
    let removing = c.starts_with("remove");
    let method = a
        .get(&["name", "methodname"])
        .map(|v| v.lower())
        .unwrap_or_default();
    if all.contains("shadowcopy")
        && (removing || method.contains("delete") || all.contains("delete"))
    {
        out.push(finding(
            Effect::Destroys,
            "deletes shadow copies through WMI/CIM (destroys backups)",
        ));
        return;
    }
    let subscription = [
        "__eventfilter",
        "eventconsumer",
        "filtertoconsumerbinding",
        "root\\subscription",
        "root/subscription",
    ]
    .iter()
    .any(|s| all.contains(s));
    if subscription {
        out.push(if removing {
            finding(Effect::Changes, "")
        } else {
            finding(
                Effect::Persists,
                "creates a WMI event subscription, which runs code on an event",
            )
        });
        return;
    }
    if all.contains("win32_process") && (method == "create" || all.contains("create")) {
        out.push(finding(
            Effect::Executes,
            "remote process execution: starts a process through WMI",
        ));
        return;
    }
    if all.contains("win32_service") {
        if method == "create" {
            out.push(finding(Effect::Persists, "creates a service through WMI"));
        } else if let Some(p) = security_product(&words)
            && (removing
                || matches!(
                    method.as_str(),
                    "stopservice" | "changestartmode" | "delete" | "pauseservice"
                ))
        {
            out.push(finding(
                Effect::Weakens,
                format!("stops or disables security tooling ({p})"),
            ));
        } else {
            out.push(finding(Effect::Changes, ""));
        }
        return;
    }
    if all.contains("msft_mppreference")
        || all.contains("windows/defender")
        || all.contains("windows\\defender")
    {
        out.push(finding(
            Effect::Weakens,
            "changes Microsoft Defender through WMI (security tooling)",
        ));
        return;
    }
    if all.contains("msft_netfirewall") {
        out.push(finding(
            Effect::Weakens,
            "changes the Windows firewall through WMI (security tooling)",
        ));
        return;
    }
    if all.contains("stdregprov") {
        let key = words
            .iter()
            .find(|x| x.contains('\\'))
            .cloned()
            .unwrap_or_default();
        let hive = if all.contains("2147483649") {
            "hkcu"
        } else {
            "hklm"
        };
        let value_name = after(&words, "svaluename");
        let value = after(&words, "svalue").or_else(|| after(&words, "uvalue"));
        let full = format!("{hive}\\{key}");
        let judged = if method.starts_with("delete") {
            registry_delete(&full, value_name.as_deref())
        } else {
            registry_write(&full, value_name.as_deref(), value.as_deref())
        };
        out.push(match judged {
            Some(r) => reg_finding(r, &value.into_iter().collect::<Vec<_>>()),
            None if method.starts_with("get")
                || method.starts_with("enum")
                || method.starts_with("check") =>
            {
                finding(Effect::Reads, "")
            }
            None => finding(Effect::Changes, ""),
        });
        return;
    }
    if all.contains("win32_useraccount") && all.contains("disabled") && all.contains("$false") {
        out.push(finding(
            Effect::Weakens,
            "re-enables an account (the attacker may own it)",
        ));
        return;
    }
    out.push(finding(Effect::Changes, ""));
}

/// The word after `key` in a flattened hashtable (`sValueName`, `x` → `x`).
fn after(words: &[String], key: &str) -> Option<String> {
    words
        .iter()
        .position(|w| w.eq_ignore_ascii_case(key))
        .and_then(|i| words.get(i + 1).cloned())
}
