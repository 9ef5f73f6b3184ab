//! What the WinRM emulator knows of PowerShell: triage-bot's approved-command wrapper and stdin
//! bootstrap (exact copies, so it can take them off), finding the script in a
//! `-EncodedCommand` line, and the CLIXML powershell.exe writes to a redirected stderr.

use base64::Engine as _;

use super::xml::esc;

/// The exact text of triage-bot's approved-command wrapper (a copy of
/// `triage_bot::clients::winrm::powershell::APPROVED_WRAPPER`; the client's tests fail if the two
/// drift, because the emulator would then not find the approved command).
pub const APPROVED_WRAPPER: &str = "# triage-bot approved-command wrapper v1\n\
$ProgressPreference = 'SilentlyContinue'\n\
$VerbosePreference = 'SilentlyContinue'\n\
$WarningPreference = 'SilentlyContinue'\n\
$triageBotCommand = [Text.Encoding]::UTF8.GetString([Convert]::FromBase64String($env:TRIAGE_BOT_COMMAND))\n\
try { & ([ScriptBlock]::Create($triageBotCommand)) | Format-List | Out-String -Width 120 } catch { 'Error: ' + $_.Exception.Message }\n";
/// The environment variable the wrapper reads.
pub const APPROVED_COMMAND_VAR: &str = "TRIAGE_BOT_COMMAND";
/// The exact text of triage-bot's stdin bootstrap (a copy of the client's `STDIN_BOOTSTRAP`).
pub const STDIN_BOOTSTRAP: &str = "# triage-bot stdin bootstrap v1\n\
$ProgressPreference = 'SilentlyContinue'\n\
& chcp.com 65001 > $null\n\
$triageBotScript = $input | Out-String\n\
& ([ScriptBlock]::Create($triageBotScript))\n";

/// powershell.exe with redirected stdio writes error records to stderr as CLIXML: one
/// `<S S="Error">` per line, CRLF escaped as `_x000D__x000A_`.
pub fn clixml_stderr(stderr: &str) -> String {
    if stderr.is_empty() || stderr.starts_with("#< CLIXML") {
        return stderr.to_owned();
    }
    let mut out = String::from(
        "#< CLIXML\r\n<Objs Version=\"1.1.0.1\" xmlns=\"http://schemas.microsoft.com/powershell/2004/04\">",
    );
    for line in stderr.split_inclusive('\n') {
        let body = line.trim_end_matches(['\r', '\n']);
        let mut escaped = clixml_escape(body);
        if line.ends_with('\n') {
            escaped.push_str("_x000D__x000A_");
        }
        out.push_str(&format!("<S S=\"Error\">{}</S>", esc(&escaped)));
    }
    out.push_str("</Objs>");
    out
}

/// CLIXML string escaping: control characters as `_xHHHH_`, and an underscore that would
/// start such a sequence as `_x005F_`.
fn clixml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let chars: Vec<char> = s.chars().collect();
    for (i, &ch) in chars.iter().enumerate() {
        let starts_escape = ch == '_'
            && chars.get(i + 1) == Some(&'x')
            && chars.len() > i + 6
            && chars[i + 2..i + 6].iter().all(char::is_ascii_hexdigit)
            && chars[i + 6] == '_';
        if starts_escape {
            out.push_str("_x005F_");
        } else if (ch as u32) < 0x20 && ch != '\t' {
            out.push_str(&format!("_x{:04X}_", ch as u32));
        } else {
            out.push(ch);
        }
    }
    out
}

/// Finds the script in a `powershell[.exe] … -EncodedCommand <base64>` line: the flag
/// case-insensitive and abbreviated as powershell.exe accepts (`-e`, `-ec`, `-enc`, …), the
/// value base64 of UTF-16LE. `None` for anything else (cmd commands, `-Command`, bad base64).
pub fn decode_powershell(command_line: &str) -> Option<String> {
    let args = split_args(command_line);
    let exe = args.first()?.to_ascii_lowercase();
    let base = exe.rsplit(['\\', '/']).next().unwrap_or(&exe);
    if base != "powershell" && base != "powershell.exe" {
        return None;
    }
    let mut i = 1;
    while i < args.len() {
        let arg = &args[i];
        let name = arg
            .strip_prefix('-')
            .or_else(|| arg.strip_prefix('/'))?
            .to_ascii_lowercase();
        if name.is_empty() {
            return None; // `-`: the script comes from stdin
        }
        if name == "e" || name == "ec" || (name.len() >= 2 && "encodedcommand".starts_with(&name)) {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(args.get(i + 1)?)
                .ok()?;
            if bytes.len() % 2 != 0 {
                return None;
            }
            let units: Vec<u16> = bytes
                .chunks_exact(2)
                .map(|c| u16::from_le_bytes([c[0], c[1]]))
                .collect();
            return String::from_utf16(&units).ok();
        }
        let takes_value = name == "ep"
            || (name.len() >= 2 && "executionpolicy".starts_with(&name))
            || ["inputformat", "outputformat", "windowstyle", "version"]
                .iter()
                .any(|p| p.starts_with(&name))
            || (name.len() >= 3 && "psconsolefile".starts_with(&name))
            || (name.len() >= 4 && "configurationname".starts_with(&name));
        if takes_value {
            i += 2;
            continue;
        }
        if "command".starts_with(&name) || "file".starts_with(&name) {
            return None;
        }
        i += 1;
    }
    None
}

/// Splits a command line on whitespace, honouring double quotes.
fn split_args(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut has = false;
    for ch in s.chars() {
        match ch {
            '"' => {
                quoted = !quoted;
                has = true;
            }
            c if c.is_whitespace() && !quoted => {
                if has {
                    out.push(std::mem::take(&mut cur));
                    has = false;
                }
            }
            c => {
                cur.push(c);
                has = true;
            }
        }
    }
    if has {
        out.push(cur);
    }
    out
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    pub(in crate::winrm) fn enc(script: &str) -> String {
        let bytes: Vec<u8> = script.encode_utf16().flat_map(u16::to_le_bytes).collect();
        base64::engine::general_purpose::STANDARD.encode(bytes)
    }

    #[test]
    fn decodes_encoded_command_variants() {
        let b = enc("Write-Output hello");
        assert_eq!(b, "VwByAGkAdABlAC0ATwB1AHQAcAB1AHQAIABoAGUAbABsAG8A");
        for line in [
            format!("powershell -encodedcommand {b}"),
            format!("powershell.exe -NoProfile -NonInteractive -EncodedCommand {b}"),
            format!("PowerShell.EXE -enc {b}"),
            format!("powershell -e {b}"),
            format!("powershell -ec {b}"),
            format!("powershell -ExecutionPolicy Bypass -EncodedCommand {b}"),
            format!(
                r#""C:\Windows\System32\WindowsPowerShell\v1.0\powershell.exe" /NoLogo -EncodedCommand {b}"#
            ),
        ] {
            assert_eq!(
                decode_powershell(&line).as_deref(),
                Some("Write-Output hello"),
                "{line}"
            );
        }
        for line in [
            "ipconfig /all".to_owned(),
            "powershell -Command Get-Date".to_owned(),
            format!("powershell -ex {b}"),
            "powershell -EncodedCommand !!!".to_owned(),
            "powershell -EncodedCommand".to_owned(),
        ] {
            assert_eq!(decode_powershell(&line), None, "{line}");
        }
    }

    #[test]
    fn clixml_rendering() {
        let x = clixml_stderr("boom\r\nline two _x0041_\n");
        assert!(x.starts_with("#< CLIXML\r\n<Objs"));
        assert!(x.contains(r#"<S S="Error">boom_x000D__x000A_</S>"#), "{x}");
        assert!(x.contains("line two _x005F_x0041__x000D__x000A_"), "{x}");
        assert_eq!(clixml_stderr(""), "");
        assert_eq!(
            clixml_stderr("#< CLIXML\r\n<Objs/>"),
            "#< CLIXML\r\n<Objs/>"
        );
    }
}
