//! PowerShell over the cmd shell: encoding a script for `-EncodedCommand` (so the script text is
//! never spliced into a command line or another script), the cmd.exe length check, and turning
//! powershell.exe's CLIXML stderr back into readable text (winrm.md §2).

use std::sync::LazyLock;

use base64::Engine as _;
use regex::Regex;

use super::error::WinRmError;
use super::soap;

/// What precedes the encoded script. `-NoProfile` keeps the host's profile scripts out of our
/// runs; `-NonInteractive` makes a prompt fail instead of hanging until the deadline.
pub const POWERSHELL_PREFIX: &str = "powershell.exe -NoProfile -NonInteractive -EncodedCommand ";

/// cmd.exe's command-line limit; the server runs our line through `cmd.exe /c`
/// (WINRS_SKIP_CMD_SHELL=FALSE), so this is the real ceiling (winrm.md §2.2).
pub const MAX_COMMAND_LINE: usize = 8191;

/// `base64(UTF-16LE(script))`, no BOM, standard alphabet with padding — what
/// `powershell.exe -EncodedCommand` expects.
pub fn encode_powershell(script: &str) -> String {
    let utf16: Vec<u8> = script.encode_utf16().flat_map(u16::to_le_bytes).collect();
    base64::engine::general_purpose::STANDARD.encode(utf16)
}

/// The environment variable that carries the approved command into [`APPROVED_WRAPPER`]:
/// base64 of its UTF-8 text, set on the shell with `rsp:Environment`.
pub const APPROVED_COMMAND_VAR: &str = "TRIAGE_BOT_COMMAND";

/// The fixed script every approved command runs inside (the original design's wrapper): progress,
/// verbose and warning streams silenced (they would arrive as CLIXML noise on stderr), output
/// formatted as a list 120 columns wide, a terminating error reported as `Error: <message>`.
/// The command is *data* to it: decoded from [`APPROVED_COMMAND_VAR`] and compiled with
/// `[ScriptBlock]::Create`, so nothing in the command can change the wrapper's own syntax (no
/// quote, brace or comment in it is ever parsed as part of this text). The emulator holds a copy
/// of this exact text to find the approved command; keep the two in step.
pub const APPROVED_WRAPPER: &str = "# triage-bot approved-command wrapper v1\n\
$ProgressPreference = 'SilentlyContinue'\n\
$VerbosePreference = 'SilentlyContinue'\n\
$WarningPreference = 'SilentlyContinue'\n\
$triageBotCommand = [Text.Encoding]::UTF8.GetString([Convert]::FromBase64String($env:TRIAGE_BOT_COMMAND))\n\
try { & ([ScriptBlock]::Create($triageBotCommand)) | Format-List | Out-String -Width 120 } catch { 'Error: ' + $_.Exception.Message }\n";

/// The short script that runs a long script read from stdin (Ansible's bootstrap,
/// winrm.md §2.2 workaround 1): the console input codepage is set to UTF-8 first so non-ASCII
/// text survives, then the whole of stdin is compiled as one script block. The emulator holds a
/// copy of this exact text.
pub const STDIN_BOOTSTRAP: &str = "# triage-bot stdin bootstrap v1\n\
$ProgressPreference = 'SilentlyContinue'\n\
& chcp.com 65001 > $null\n\
$triageBotScript = $input | Out-String\n\
& ([ScriptBlock]::Create($triageBotScript))\n";

/// The longest value Windows keeps in one environment variable.
pub const MAX_ENV_VALUE: usize = 32_767;

/// How a script reaches powershell.exe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PowerShellInvocation {
    /// The `rsp:Command` line (always within [`MAX_COMMAND_LINE`]).
    pub command_line: String,
    /// Variables for the shell's `rsp:Environment`.
    pub env: Vec<(String, String)>,
    /// Bytes to send on stdin (`rsp:Send`, last chunk `End="true"`).
    pub stdin: Option<Vec<u8>>,
}

/// `script` as-is: inline with `-EncodedCommand` when the line fits cmd.exe, otherwise the
/// [`STDIN_BOOTSTRAP`] inline and the script (UTF-8) on stdin.
pub fn invoke_script(script: &str) -> PowerShellInvocation {
    match powershell_command_line(script) {
        Ok(command_line) => PowerShellInvocation {
            command_line,
            env: Vec::new(),
            stdin: None,
        },
        Err(_) => PowerShellInvocation {
            command_line: powershell_command_line(STDIN_BOOTSTRAP).expect("the bootstrap is short"),
            env: Vec::new(),
            stdin: Some(script.as_bytes().to_vec()),
        },
    }
}

/// An approved command inside [`APPROVED_WRAPPER`]; the command travels base64-encoded in
/// [`APPROVED_COMMAND_VAR`], never in script text.
pub fn invoke_approved(command: &str) -> Result<PowerShellInvocation, WinRmError> {
    let value = base64::engine::general_purpose::STANDARD.encode(command.as_bytes());
    if value.len() > MAX_ENV_VALUE {
        return Err(WinRmError::CommandTooLong {
            len: value.len(),
            max: MAX_ENV_VALUE,
        });
    }
    Ok(PowerShellInvocation {
        command_line: powershell_command_line(APPROVED_WRAPPER).expect("the wrapper is short"),
        env: vec![(APPROVED_COMMAND_VAR.to_owned(), value)],
        stdin: None,
    })
}

/// The full command line for `script`, or [`WinRmError::CommandTooLong`] when it would not fit
/// cmd.exe. The limit is computed from the encoded length: about 3,000 script characters fit;
/// [`invoke_script`] switches to the stdin bootstrap above that.
pub fn powershell_command_line(script: &str) -> Result<String, WinRmError> {
    let line = format!("{POWERSHELL_PREFIX}{}", encode_powershell(script));
    if line.len() > MAX_COMMAND_LINE {
        return Err(WinRmError::CommandTooLong {
            len: line.len(),
            max: MAX_COMMAND_LINE,
        });
    }
    Ok(line)
}

const CLIXML_MARKER: &str = "#< CLIXML";

static CLIXML_ESCAPE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new("_x([0-9A-Fa-f]{4})_").expect("static regex"));

/// Makes powershell.exe's stderr readable. When it is a CLIXML document
/// (`#< CLIXML\r\n<Objs …>`), keeps the text of the `<S>` children of `<Objs>` (the error,
/// warning, verbose lines), decodes the `_xHHHH_` escapes (CRLF becomes `\n`) and trims. Text
/// that is not CLIXML, or CLIXML that does not parse, comes back unchanged (pywinrm
/// `_clean_error_msg`). One deliberate difference from pywinrm: CLIXML holding only progress
/// records ("Preparing modules for first use.") cleans to an empty string rather than the raw
/// XML, since it says nothing to the reader; the raw text stays in `CommandOutput::stderr_raw`.
pub fn clean_clixml(stderr: &str) -> String {
    let Some(rest) = stderr.strip_prefix(CLIXML_MARKER) else {
        return stderr.to_owned();
    };
    let xml = rest.trim_start_matches(['\r', '\n']);
    let Ok(root) = soap::parse_document(xml) else {
        return stderr.to_owned();
    };
    if root.local != "Objs" {
        return stderr.to_owned();
    }
    let mut text = String::new();
    for s in root.children.iter().filter(|c| c.local == "S") {
        text.push_str(&decode_clixml_string(&s.text));
    }
    text.replace("\r\n", "\n").trim().to_owned()
}

/// Decodes CLIXML string escapes: each `_xHHHH_` is one UTF-16 code unit; surrogate pairs come
/// as two escapes in a row.
fn decode_clixml_string(s: &str) -> String {
    let mut units: Vec<u16> = Vec::with_capacity(s.len());
    let mut last = 0;
    for caps in CLIXML_ESCAPE.captures_iter(s) {
        let m = caps.get(0).expect("whole match");
        units.extend(s[last..m.start()].encode_utf16());
        let hex = caps.get(1).expect("group 1").as_str();
        units.push(u16::from_str_radix(hex, 16).expect("four hex digits"));
        last = m.end();
    }
    units.extend(s[last..].encode_utf16());
    String::from_utf16_lossy(&units)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_vectors_from_pywinrm() {
        assert_eq!(
            encode_powershell(r#"Write-Error "Error""#),
            "VwByAGkAdABlAC0ARQByAHIAbwByACAAIgBFAHIAcgBvAHIAIgA="
        );
        assert_eq!(
            encode_powershell("Write-Output hello"),
            "VwByAGkAdABlAC0ATwB1AHQAcAB1AHQAIABoAGUAbABsAG8A"
        );
    }

    #[test]
    fn encode_non_ascii_as_utf16() {
        // "é" is U+00E9 → E9 00; "😀" is the surrogate pair D83D DE00 → 3D D8 00 DE.
        let b64 = encode_powershell("é😀");
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap();
        assert_eq!(bytes, [0xE9, 0x00, 0x3D, 0xD8, 0x00, 0xDE]);
    }

    #[test]
    fn command_line_limit_is_checked_on_the_encoded_length() {
        let line = powershell_command_line("Get-Process").unwrap();
        assert!(line.starts_with(POWERSHELL_PREFIX));
        // Each script character becomes 2 bytes → 8/3 base64 characters.
        let fits = (MAX_COMMAND_LINE - POWERSHELL_PREFIX.len()) / 4 * 3 / 2;
        assert!(powershell_command_line(&"a".repeat(fits)).is_ok());
        match powershell_command_line(&"a".repeat(fits + 2)) {
            Err(WinRmError::CommandTooLong { len, max }) => {
                assert_eq!(max, MAX_COMMAND_LINE);
                assert!(len > max);
            }
            other => panic!("{other:?}"),
        }
        // Non-ASCII costs the same per UTF-16 unit, not per UTF-8 byte.
        assert!(powershell_command_line(&"é".repeat(fits)).is_ok());
    }

    #[test]
    fn long_scripts_go_through_stdin_and_approved_commands_through_the_environment() {
        let short = invoke_script("Get-Service");
        assert!(short.stdin.is_none() && short.env.is_empty());
        let long_script = format!("'{}'", "x".repeat(5000));
        let long = invoke_script(&long_script);
        assert_eq!(long.stdin.as_deref(), Some(long_script.as_bytes()));
        assert!(long.command_line.len() <= MAX_COMMAND_LINE);
        assert_eq!(
            long.command_line,
            format!("{POWERSHELL_PREFIX}{}", encode_powershell(STDIN_BOOTSTRAP))
        );

        let hostile = "'a'; } catch {} ; Remove-Item C:\\ -Recurse # ' \" $(x)";
        let inv = invoke_approved(hostile).unwrap();
        assert_eq!(
            inv.command_line,
            format!("{POWERSHELL_PREFIX}{}", encode_powershell(APPROVED_WRAPPER))
        );
        assert_eq!(inv.env.len(), 1);
        assert_eq!(inv.env[0].0, APPROVED_COMMAND_VAR);
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(&inv.env[0].1)
            .unwrap();
        assert_eq!(decoded, hostile.as_bytes());
        assert!(!APPROVED_WRAPPER.contains(hostile));
        assert!(matches!(
            invoke_approved(&"a".repeat(30_000)),
            Err(WinRmError::CommandTooLong {
                max: MAX_ENV_VALUE,
                ..
            })
        ));
    }

    /// pywinrm test_session.py `test_decode_clixml_error`.
    #[test]
    fn clixml_error() {
        let msg = "#< CLIXML\r\n<Objs Version=\"1.1.0.1\" xmlns=\"http://schemas.microsoft.com/powershell/2004/04\"><Obj S=\"progress\" RefId=\"0\"><TN RefId=\"0\"><T>System.Management.Automation.PSCustomObject</T><T>System.Object</T></TN><MS><I64 N=\"SourceId\">1</I64><PR N=\"Record\"><AV>Preparing modules for first use.</AV><AI>0</AI><Nil /><PI>-1</PI><PC>-1</PC><T>Completed</T><SR>-1</SR><SD> </SD></PR></MS></Obj><Obj S=\"progress\" RefId=\"1\"><TNRef RefId=\"0\" /><MS><I64 N=\"SourceId\">1</I64><PR N=\"Record\"><AV>Preparing modules for first use.</AV><AI>0</AI><Nil /><PI>-1</PI><PC>-1</PC><T>Completed</T><SR>-1</SR><SD> </SD></PR></MS></Obj><S S=\"Error\">fake : The term 'fake' is not recognized as the name of a cmdlet, function, script file, or operable program. Check _x000D__x000A_</S><S S=\"Error\">the spelling of the name, or if a path was included, verify that the path is correct and try again._x000D__x000A_</S><S S=\"Error\">At line:1 char:1_x000D__x000A_</S><S S=\"Error\">+ fake cmdlet_x000D__x000A_</S><S S=\"Error\">+ ~~~~_x000D__x000A_</S><S S=\"Error\">    + CategoryInfo          : ObjectNotFound: (fake:String) [], CommandNotFoundException_x000D__x000A_</S><S S=\"Error\">    + FullyQualifiedErrorId : CommandNotFoundException_x000D__x000A_</S><S S=\"Error\"> _x000D__x000A_</S></Objs>";
        let expected = "fake : The term 'fake' is not recognized as the name of a cmdlet, function, script file, or operable program. Check \nthe spelling of the name, or if a path was included, verify that the path is correct and try again.\nAt line:1 char:1\n+ fake cmdlet\n+ ~~~~\n    + CategoryInfo          : ObjectNotFound: (fake:String) [], CommandNotFoundException\n    + FullyQualifiedErrorId : CommandNotFoundException";
        assert_eq!(clean_clixml(msg), expected);
    }

    /// pywinrm `test_decode_clixml_no_clixml`.
    #[test]
    fn clixml_not_clixml() {
        assert_eq!(clean_clixml("stderr line"), "stderr line");
    }

    /// pywinrm `test_decode_clixml_no_errors`: progress records only. pywinrm returns the raw
    /// message; we return nothing readable (see [`clean_clixml`]).
    #[test]
    fn clixml_no_errors() {
        let msg = "#< CLIXML\r\n<Objs Version=\"1.1.0.1\" xmlns=\"http://schemas.microsoft.com/powershell/2004/04\"><Obj S=\"progress\" RefId=\"0\"><TN RefId=\"0\"><T>System.Management.Automation.PSCustomObject</T><T>System.Object</T></TN><MS><I64 N=\"SourceId\">1</I64><PR N=\"Record\"><AV>Preparing modules for first use.</AV><AI>0</AI><Nil /><PI>-1</PI><PC>-1</PC><T>Completed</T><SR>-1</SR><SD> </SD></PR></MS></Obj></Objs>";
        assert_eq!(clean_clixml(msg), "");
    }

    /// pywinrm `test_decode_clixml_invalid_xml`.
    #[test]
    fn clixml_invalid_xml() {
        let msg = "#< CLIXML\r\n<in >dasf<?dsfij>";
        assert_eq!(clean_clixml(msg), msg);
    }

    /// pywinrm's `get_ps_output_response` fixture stderr (Write-Error "Error"), decoded.
    #[test]
    fn clixml_write_error_fixture() {
        let msg = "#< CLIXML\r\n<Objs Version=\"1.1.0.1\" xmlns=\"http://schemas.microsoft.com/powershell/2004/04\"><S S=\"Error\">Write-Error \"Error\" : Error_x000D__x000A_</S><S S=\"Error\">    + CategoryInfo          : NotSpecified: (:) [Write-Error], WriteErrorExcep _x000D__x000A_</S><S S=\"Error\">   tion_x000D__x000A_</S><S S=\"Error\">    + FullyQualifiedErrorId : Microsoft.PowerShell.Commands.WriteErrorExceptio _x000D__x000A_</S><S S=\"Error\">   n_x000D__x000A_</S><S S=\"Error\"> _x000D__x000A_</S></Objs>";
        let cleaned = clean_clixml(msg);
        assert!(
            cleaned.starts_with("Write-Error \"Error\" : Error\n"),
            "{cleaned}"
        );
        assert!(cleaned.ends_with("WriteErrorExceptio \n   n"), "{cleaned}");
    }

    #[test]
    fn clixml_other_escapes() {
        let msg = "#< CLIXML\r\n<Objs xmlns=\"http://schemas.microsoft.com/powershell/2004/04\"><S S=\"warning\">tab_x0009_here _x005F_x0041_ &lt;ok&gt; _xD83D__xDE00_</S></Objs>";
        assert_eq!(clean_clixml(msg), "tab\there _x0041_ <ok> 😀");
    }
}
