//! Commands in the WinRM emulator's shells: `rsp:Command` (the wrappers taken off, the script
//! looked up in the output table, cmd.exe's and CreateProcess's line limits), `rsp:Receive`
//! (base64 output chunks over two responses, `w:TimedOut` for delayed commands), `rsp:Send`
//! (stdin; the bootstrap's command starts at its end) and `rsp:Signal`.

use base64::Engine as _;
use chrono::Utc;

use super::powershell::{
    APPROVED_COMMAND_VAR, APPROVED_WRAPPER, STDIN_BOOTSTRAP, clixml_stderr, decode_powershell,
};
use super::soap::{
    FaultSpec, NS_SHELL, Reply, Request, SIGNAL_PREFIX, STATE_DONE, STATE_RUNNING,
    WSMAN_FILENAME_TOO_LONG, WSMAN_TIMED_OUT, response,
};
use super::state::{Canned, CommandState, ExecutedCommand, RecordedSignal, WinRmState};

/// cmd.exe's command-line limit, and CreateProcess's (less the NUL) with WINRS_SKIP_CMD_SHELL.
pub(super) const CMD_LINE_LIMIT: usize = 8191;
const CREATE_PROCESS_LIMIT: usize = 32766;

pub(super) fn command(s: &mut WinRmState, req: &Request, shell_id: &str) -> Reply {
    let Some(line) = req.body.child(NS_SHELL, "CommandLine") else {
        return Reply::Fault(FaultSpec::schema(
            Some(req.message_id.clone()),
            "The Command request has no rsp:CommandLine.".into(),
        ));
    };
    let Some(cmd) = line.child(NS_SHELL, "Command") else {
        return Reply::Fault(FaultSpec::schema(
            Some(req.message_id.clone()),
            "The Command request has no rsp:Command.".into(),
        ));
    };
    let mut command_line = cmd.text.clone();
    for arg in line.children.iter().filter(|c| c.is(NS_SHELL, "Arguments")) {
        command_line.push(' ');
        command_line.push_str(&arg.text);
    }
    let skip_cmd = req
        .option("WINRS_SKIP_CMD_SHELL")
        .is_some_and(|v| v.eq_ignore_ascii_case("true"));
    if skip_cmd && command_line.len() > CREATE_PROCESS_LIMIT {
        return Reply::Fault(FaultSpec {
            relates_to: Some(req.message_id.clone()),
            code: "s:Receiver",
            subcode: Some("w:InternalError"),
            reason: "The filename or extension is too long. ".into(),
            wsman_code: Some(WSMAN_FILENAME_TOO_LONG),
            not_understood: None,
        });
    }

    let outer_script = decode_powershell(&command_line);
    // A client may choose the id (`CommandId` on `rsp:CommandLine`, WSManRunShellCommandEx,
    // Windows 8 / Server 2012 and later); the server uses it and refuses one already in use.
    let chosen = line.attr("CommandId").map(str::to_uppercase);
    let shell = s.shells.get(shell_id).expect("checked by dispatch");
    if let Some(id) = &chosen
        && shell.commands.contains_key(id)
    {
        return Reply::Fault(FaultSpec::schema(
            Some(req.message_id.clone()),
            format!("A command with the identifier {id} already exists in the shell."),
        ));
    }
    let command_id = chosen.unwrap_or_else(|| uuid::Uuid::new_v4().to_string().to_uppercase());
    let mut record = ExecutedCommand {
        shell_id: shell_id.to_owned(),
        command_id: command_id.clone(),
        command_line: command_line.clone(),
        script: outer_script.clone(),
        outer_script: outer_script.clone(),
        wrapped: false,
        via_stdin: false,
        codepage: shell.codepage,
        noprofile: shell.noprofile,
        env: shell.env.clone(),
        at: Utc::now(),
    };
    let too_long = !skip_cmd && command_line.len() > CMD_LINE_LIMIT;
    if !too_long && outer_script.as_deref() == Some(STDIN_BOOTSTRAP) {
        // Nothing runs until stdin ends; the record is made then, with the script read.
        record.via_stdin = true;
        let shell = s.shells.get_mut(shell_id).expect("checked by dispatch");
        shell.commands.insert(
            command_id.clone(),
            CommandState {
                stdout: Vec::new(),
                stderr: Vec::new(),
                exit_code: 0,
                timeouts_left: 0,
                stage: 0,
                terminated: false,
                pending: Some(Box::new(record)),
            },
        );
    } else {
        let (state, record) = if too_long {
            (
                CommandState {
                    stdout: Vec::new(),
                    stderr: b"The command line is too long.\r\n".to_vec(),
                    exit_code: 1,
                    timeouts_left: 0,
                    stage: 0,
                    terminated: false,
                    pending: None,
                },
                record,
            )
        } else {
            start_command(s, record)
        };
        let shell = s.shells.get_mut(shell_id).expect("checked by dispatch");
        shell.commands.insert(command_id.clone(), state);
        s.executed.push(record);
    }
    Reply::Ok(response(
        "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/CommandResponse",
        &req.message_id,
        &format!(
            "<rsp:CommandResponse><rsp:CommandId>{command_id}</rsp:CommandId></rsp:CommandResponse>"
        ),
    ))
}

/// Takes the wrapper off (triage-bot's approved-command wrapper reads the command from the
/// shell's environment), looks the script up in the output table and builds the command's
/// state. A wrapper whose variable is missing or not base64 of UTF-8 fails the way
/// PowerShell would.
fn start_command(s: &WinRmState, mut record: ExecutedCommand) -> (CommandState, ExecutedCommand) {
    let mut failure: Option<String> = None;
    if record.script.as_deref() == Some(APPROVED_WRAPPER) {
        record.wrapped = true;
        let value = record
            .env
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(APPROVED_COMMAND_VAR))
            .map(|(_, v)| v.trim().to_owned());
        let decoded = value
            .as_deref()
            .and_then(|v| base64::engine::general_purpose::STANDARD.decode(v).ok())
            .and_then(|b| String::from_utf8(b).ok());
        match decoded {
            Some(inner) => record.script = Some(inner),
            None => {
                record.script = None;
                failure = Some(format!(
                    "Exception calling \"FromBase64String\" with \"1\" argument(s): \"The input is not a valid Base-64 string\" ({APPROVED_COMMAND_VAR} is {})\r\n",
                    if value.is_some() {
                        "malformed"
                    } else {
                        "not set"
                    }
                ));
            }
        }
    }
    let powershell = record.outer_script.is_some();
    let key = record
        .script
        .clone()
        .unwrap_or_else(|| record.command_line.trim().to_owned());
    let canned = match failure {
        Some(stderr) => Canned {
            stdout: String::new(),
            stderr,
            exit_code: 1,
        },
        None => s
            .responses
            .get(&key)
            .or(s.default_response.as_ref())
            .cloned()
            .unwrap_or_else(|| not_recognized(&key, powershell)),
    };
    let stderr = if powershell {
        clixml_stderr(&canned.stderr)
    } else {
        canned.stderr.clone()
    };
    let state = CommandState {
        stdout: canned.stdout.into_bytes(),
        stderr: stderr.into_bytes(),
        exit_code: canned.exit_code,
        timeouts_left: s.delays.get(&key).copied().unwrap_or(0),
        stage: 0,
        terminated: false,
        pending: None,
    };
    (state, record)
}

/// What a host prints for a name it cannot find.
fn not_recognized(key: &str, powershell: bool) -> Canned {
    let first = key.split_whitespace().next().unwrap_or(key);
    let stderr = if powershell {
        format!(
            "{first} : The term '{first}' is not recognized as the name of a cmdlet, function, script file, or operable program. Check the spelling of the name, or if a path was included, verify that the path is correct and try again.\r\nAt line:1 char:1\r\n"
        )
    } else {
        format!(
            "'{first}' is not recognized as an internal or external command,\r\noperable program or batch file.\r\n"
        )
    };
    Canned {
        stdout: String::new(),
        stderr,
        exit_code: 1,
    }
}

fn find_command<'s>(
    s: &'s mut WinRmState,
    req: &Request,
    shell_id: &str,
    command_id: &str,
) -> Result<&'s mut CommandState, Box<Reply>> {
    s.shells
        .get_mut(shell_id)
        .and_then(|sh| sh.commands.get_mut(command_id))
        .filter(|c| !c.terminated)
        .ok_or_else(|| {
            Box::new(Reply::Fault(FaultSpec::invalid_selectors(
                &req.message_id,
                format!("The WS-Management service cannot process the request because the request contained an operation on a command identifier {command_id} that does not exist."),
            )))
        })
}

pub(super) fn receive(s: &mut WinRmState, req: &Request, shell_id: &str) -> Reply {
    let desired = req
        .body
        .child(NS_SHELL, "Receive")
        .and_then(|r| r.child(NS_SHELL, "DesiredStream"));
    let Some(command_id) = desired.and_then(|d| d.attr("CommandId")).map(str::to_owned) else {
        // What Windows says to a Receive without a CommandId (pypsrp test_winrs_fail_poll_process).
        return Reply::Fault(FaultSpec::invalid_parameter(
            &req.message_id,
            "The parameter is incorrect. ".into(),
        ));
    };
    let hold = s.timed_out_hold.min(req.operation_timeout);
    let cmd = match find_command(s, req, shell_id, &command_id) {
        Ok(c) => c,
        Err(reply) => return *reply,
    };
    if cmd.pending.is_some() || cmd.timeouts_left > 0 {
        // Still waiting for stdin (the bootstrap reads all of it first), or a slow command.
        cmd.timeouts_left = cmd.timeouts_left.saturating_sub(1);
        return Reply::TimedOut {
            fault: FaultSpec {
                relates_to: Some(req.message_id.clone()),
                code: "s:Receiver",
                subcode: Some("w:TimedOut"),
                reason: "The WS-Management service cannot complete the operation within the time specified in OperationTimeout.  ".into(),
                wsman_code: Some(WSMAN_TIMED_OUT),
                not_understood: None,
            },
            hold,
        };
    }

    let id = &command_id;
    let stream = |name: &str, data: &[u8]| {
        if data.is_empty() {
            String::new()
        } else {
            format!(
                r#"<rsp:Stream Name="{name}" CommandId="{id}">{}</rsp:Stream>"#,
                base64::engine::general_purpose::STANDARD.encode(data)
            )
        }
    };
    // Split points: stdout in half (the first half again in two chunks), stderr after the
    // CLIXML marker line when there is one, as pywinrm's recorded response does.
    let half = cmd.stdout.len() / 2;
    let err_split = if cmd.stderr.starts_with(b"#< CLIXML\r\n") {
        11
    } else {
        cmd.stderr.len() / 2
    };
    let mut body = String::from("<rsp:ReceiveResponse>");
    let has_output = !cmd.stdout.is_empty() || !cmd.stderr.is_empty();
    if cmd.stage == 0 && has_output {
        body.push_str(&stream("stdout", &cmd.stdout[..half / 2]));
        body.push_str(&stream("stdout", &cmd.stdout[half / 2..half]));
        body.push_str(&stream("stderr", &cmd.stderr[..err_split]));
        body.push_str(&format!(
            r#"<rsp:CommandState CommandId="{id}" State="{STATE_RUNNING}"></rsp:CommandState>"#
        ));
        cmd.stage = 1;
    } else {
        if cmd.stage < 2 {
            let (out_from, err_from) = if cmd.stage == 1 {
                (half, err_split)
            } else {
                (0, 0)
            };
            body.push_str(&stream("stdout", &cmd.stdout[out_from..]));
            body.push_str(&stream("stderr", &cmd.stderr[err_from..]));
            body.push_str(&format!(
                r#"<rsp:Stream Name="stdout" CommandId="{id}" End="true"></rsp:Stream><rsp:Stream Name="stderr" CommandId="{id}" End="true"></rsp:Stream>"#
            ));
        }
        body.push_str(&format!(
            r#"<rsp:CommandState CommandId="{id}" State="{STATE_DONE}"><rsp:ExitCode>{}</rsp:ExitCode></rsp:CommandState>"#,
            cmd.exit_code
        ));
        cmd.stage = 2;
    }
    body.push_str("</rsp:ReceiveResponse>");
    Reply::Ok(response(
        "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/ReceiveResponse",
        &req.message_id,
        &body,
    ))
}

pub(super) fn send(s: &mut WinRmState, req: &Request, shell_id: &str) -> Reply {
    let Some(stream) = req
        .body
        .child(NS_SHELL, "Send")
        .and_then(|r| r.child(NS_SHELL, "Stream"))
    else {
        return Reply::Fault(FaultSpec::schema(
            Some(req.message_id.clone()),
            "The Send request has no rsp:Stream.".into(),
        ));
    };
    let Some(command_id) = stream.attr("CommandId").map(str::to_owned) else {
        return Reply::Fault(FaultSpec::invalid_parameter(
            &req.message_id,
            "The parameter is incorrect. ".into(),
        ));
    };
    if let Err(reply) = find_command(s, req, shell_id, &command_id) {
        return *reply;
    }
    let data = match base64::engine::general_purpose::STANDARD.decode(stream.trimmed()) {
        Ok(d) => d,
        Err(_) => {
            return Reply::Fault(FaultSpec::schema(
                Some(req.message_id.clone()),
                "The stdin stream is not valid base64.".into(),
            ));
        }
    };
    let end = stream
        .attr("End")
        .is_some_and(|v| v.eq_ignore_ascii_case("true"));
    s.stdin.entry(command_id.clone()).or_default().extend(data);
    if end {
        let pending = s
            .shells
            .get_mut(shell_id)
            .and_then(|sh| sh.commands.get_mut(&command_id))
            .and_then(|c| c.pending.take());
        if let Some(mut record) = pending {
            let input = s.stdin.get(&command_id).cloned().unwrap_or_default();
            // `$input | Out-String` adds a line break after the last line; the script is
            // what was sent.
            record.script = Some(String::from_utf8_lossy(&input).into_owned());
            let (state, record) = start_command(s, *record);
            if let Some(cmd) = s
                .shells
                .get_mut(shell_id)
                .and_then(|sh| sh.commands.get_mut(&command_id))
            {
                *cmd = state;
            }
            s.executed.push(record);
        }
    }
    Reply::Ok(response(
        "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/SendResponse",
        &req.message_id,
        "<rsp:SendResponse/>",
    ))
}

pub(super) fn signal(s: &mut WinRmState, req: &Request, shell_id: &str) -> Reply {
    let sig = req.body.child(NS_SHELL, "Signal");
    let Some(command_id) = sig.and_then(|e| e.attr("CommandId")).map(str::to_owned) else {
        return Reply::Fault(FaultSpec::invalid_parameter(
            &req.message_id,
            "The parameter is incorrect. ".into(),
        ));
    };
    let code = sig
        .and_then(|e| e.child(NS_SHELL, "Code"))
        .map(|c| c.trimmed().to_owned())
        .unwrap_or_default();
    let known = code
        .strip_prefix(SIGNAL_PREFIX)
        .is_some_and(|c| matches!(c, "terminate" | "ctrl_c" | "ctrl_break"));
    if !known {
        return Reply::Fault(FaultSpec::invalid_parameter(
            &req.message_id,
            format!("The signal code {code:?} is not supported."),
        ));
    }
    match find_command(s, req, shell_id, &command_id) {
        Ok(cmd) => cmd.terminated = true,
        Err(reply) => return *reply,
    }
    s.signals.push(RecordedSignal {
        shell_id: shell_id.to_owned(),
        command_id,
        code,
    });
    Reply::Ok(response(
        "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/SignalResponse",
        &req.message_id,
        "<rsp:SignalResponse/>",
    ))
}
