//! The WinRS cmd shell of the WinRM emulator: dispatching a validated request by its Action —
//! creating a shell (codepage, profile and environment options), deleting it, and handing
//! commands, receives, sends and signals on to `command.rs` — with the request record.

use std::collections::HashMap;

use super::command::{command, receive, send, signal};
use super::soap::{
    ACTION_COMMAND, ACTION_CREATE, ACTION_RECEIVE, ACTION_SEND, ACTION_SIGNAL, FaultSpec, NS_SHELL,
    RESOURCE_URI_CMD, Reply, Request, response,
};
use super::state::{ShellState, WinRmEmulatorConfig, WinRmState, recorded};
use super::xml::esc;

// ---------------------------------------------------------------------------------------------
// Operations.

pub(super) fn dispatch(
    cfg: &WinRmEmulatorConfig,
    s: &mut WinRmState,
    req: &Request,
    host: &str,
) -> Reply {
    let reply = match req.action.as_str() {
        ACTION_CREATE => create(cfg, s, req, host),
        other => match req.shell_id.as_deref() {
            Some(id) if s.shells.contains_key(id) => match other {
                ACTION_COMMAND => command(s, req, id),
                ACTION_RECEIVE => receive(s, req, id),
                ACTION_SEND => send(s, req, id),
                ACTION_SIGNAL => signal(s, req, id),
                _ => delete(s, req, id),
            },
            Some(id) => Reply::Fault(FaultSpec::invalid_selectors(
                &req.message_id,
                format!("The request for the Windows Remote Shell with ShellId {id} failed because the shell was not found on the server. Possible causes are: the specified ShellId is incorrect or the shell no longer exists on the server."),
            )),
            None => Reply::Fault(FaultSpec::invalid_selectors(
                &req.message_id,
                "The WS-Management service cannot process the request because the request contained invalid selectors for the resource.".into(),
            )),
        },
    };
    s.requests.push(recorded(
        Some(&req.action),
        req.shell_id.as_deref(),
        Some(&req.message_id),
        reply.status(),
        reply.wsman_code(),
    ));
    reply
}

fn create(cfg: &WinRmEmulatorConfig, s: &mut WinRmState, req: &Request, host: &str) -> Reply {
    let Some(shell) = req.body.child(NS_SHELL, "Shell") else {
        return Reply::Fault(FaultSpec::schema(
            Some(req.message_id.clone()),
            "The Create request has no rsp:Shell in its body.".into(),
        ));
    };
    let codepage = match req.option("WINRS_CODEPAGE") {
        None => 437,
        Some(v) => match v.parse::<u32>() {
            Ok(cp) => cp,
            Err(_) => {
                return Reply::Fault(FaultSpec::invalid_parameter(
                    &req.message_id,
                    format!("WINRS_CODEPAGE {v:?} is not a codepage."),
                ));
            }
        },
    };
    let noprofile = match req.option("WINRS_NOPROFILE") {
        None => None,
        Some(v) if v.eq_ignore_ascii_case("true") => Some(true),
        Some(v) if v.eq_ignore_ascii_case("false") => Some(false),
        Some(v) => {
            return Reply::Fault(FaultSpec::invalid_parameter(
                &req.message_id,
                format!("WINRS_NOPROFILE {v:?} is not TRUE or FALSE."),
            ));
        }
    };
    let mut env = Vec::new();
    if let Some(e) = shell.child(NS_SHELL, "Environment") {
        for v in &e.children {
            let name = v.attr("Name").unwrap_or("");
            if !v.is(NS_SHELL, "Variable") || name.is_empty() {
                return Reply::Fault(FaultSpec::schema(
                    Some(req.message_id.clone()),
                    "rsp:Environment holds something other than named rsp:Variable elements."
                        .into(),
                ));
            }
            env.push((name.to_owned(), v.text.clone()));
        }
    }
    let input = shell
        .child(NS_SHELL, "InputStreams")
        .map(|e| e.trimmed().to_owned())
        .unwrap_or_else(|| "stdin".into());
    let output = shell
        .child(NS_SHELL, "OutputStreams")
        .map(|e| e.trimmed().to_owned())
        .unwrap_or_else(|| "stdout stderr".into());

    let id = uuid::Uuid::new_v4().to_string().to_uppercase();
    s.shells.insert(
        id.clone(),
        ShellState {
            codepage,
            noprofile,
            env,
            commands: HashMap::new(),
        },
    );
    s.shells_created += 1;
    let body = format!(
        concat!(
            "<x:ResourceCreated><a:Address>http://{host}/wsman</a:Address><a:ReferenceParameters>",
            "<w:ResourceURI>{uri}</w:ResourceURI><w:SelectorSet><w:Selector Name=\"ShellId\">{id}</w:Selector>",
            "</w:SelectorSet></a:ReferenceParameters></x:ResourceCreated>",
            "<rsp:Shell xmlns:rsp=\"{shell_ns}\"><rsp:ShellId>{id}</rsp:ShellId>",
            "<rsp:ResourceUri>{uri}</rsp:ResourceUri><rsp:Owner>{owner}</rsp:Owner>",
            "<rsp:ClientIP>127.0.0.1</rsp:ClientIP><rsp:IdleTimeOut>PT7200.000S</rsp:IdleTimeOut>",
            "<rsp:InputStreams>{input}</rsp:InputStreams><rsp:OutputStreams>{output}</rsp:OutputStreams>",
            "<rsp:ShellRunTime>P0DT0H0M0S</rsp:ShellRunTime><rsp:ShellInactivity>P0DT0H0M0S</rsp:ShellInactivity>",
            "</rsp:Shell>"
        ),
        host = esc(host),
        uri = RESOURCE_URI_CMD,
        id = id,
        shell_ns = NS_SHELL,
        owner = esc(&format!("{}\\{}", cfg.host_name, cfg.username)),
        input = esc(&input),
        output = esc(&output),
    );
    Reply::Ok(response(
        "http://schemas.xmlsoap.org/ws/2004/09/transfer/CreateResponse",
        &req.message_id,
        &body,
    ))
}

fn delete(s: &mut WinRmState, req: &Request, shell_id: &str) -> Reply {
    s.shells.remove(shell_id);
    s.shells_deleted += 1;
    Reply::Ok(response(
        "http://schemas.xmlsoap.org/ws/2004/09/transfer/DeleteResponse",
        &req.message_id,
        "",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::winrm::command::CMD_LINE_LIMIT;
    use crate::winrm::powershell::tests::enc;
    use crate::winrm::soap::{
        ACTION_DELETE, NS_ADDRESSING, NS_SOAP, NS_SOAP11, NS_TRANSFER, NS_WSMAN, SIGNAL_PREFIX,
        STATE_DONE, WSMAN_INVALID_PARAMETER, WSMAN_INVALID_SELECTORS, WSMAN_SCHEMA_VALIDATION,
        WSMAN_TIMED_OUT,
    };
    use crate::winrm::state::Canned;
    use crate::winrm::xml::{Element, parse_document};
    use base64::Engine as _;

    /// A request the way pypsrp writes one: `s:` prefixes and `s:mustUnderstand`.
    fn request(action: &str, shell_id: Option<&str>, extra_header: &str, body: &str) -> String {
        let selector = shell_id
            .map(|id| {
                format!(r#"<wsman:SelectorSet><wsman:Selector Name="ShellId">{id}</wsman:Selector></wsman:SelectorSet>"#)
            })
            .unwrap_or_default();
        format!(
            r#"<s:Envelope xmlns:s="{NS_SOAP}" xmlns:wsa="{NS_ADDRESSING}" xmlns:wsman="{NS_WSMAN}" xmlns:rsp="{NS_SHELL}"><s:Header><wsa:To>http://x:5985/wsman</wsa:To><wsa:MessageID>uuid:REQ-1</wsa:MessageID><wsman:OperationTimeout>PT20S</wsman:OperationTimeout><wsman:ResourceURI s:mustUnderstand="true">{RESOURCE_URI_CMD}</wsman:ResourceURI><wsa:Action s:mustUnderstand="true">{action}</wsa:Action>{selector}{extra_header}</s:Header><s:Body>{body}</s:Body></s:Envelope>"#
        )
    }

    fn cfg() -> WinRmEmulatorConfig {
        WinRmEmulatorConfig {
            host_name: "WIN-T".into(),
            username: "u".into(),
            password: "p".into(),
        }
    }

    fn run(s: &mut WinRmState, xml: &str) -> Reply {
        match Request::parse(xml) {
            Ok(req) => dispatch(&cfg(), s, &req, "x:5985"),
            Err(f) => Reply::Fault(*f),
        }
    }

    fn ok(reply: Reply) -> Element {
        match reply {
            Reply::Ok(xml) => {
                let root = parse_document(&xml).unwrap();
                let header = root.child(NS_SOAP, "Header").unwrap();
                assert_eq!(
                    header.child(NS_ADDRESSING, "RelatesTo").unwrap().trimmed(),
                    "uuid:REQ-1"
                );
                root.child(NS_SOAP, "Body").unwrap().clone()
            }
            Reply::Fault(f) | Reply::TimedOut { fault: f, .. } => panic!("fault: {f:?}"),
        }
    }

    fn fault_code(reply: Reply) -> (Option<&'static str>, Option<u32>) {
        match reply {
            Reply::Fault(f) | Reply::TimedOut { fault: f, .. } => (f.subcode, f.wsman_code),
            Reply::Ok(xml) => panic!("expected a fault, got {xml}"),
        }
    }

    fn create(s: &mut WinRmState) -> String {
        let body = ok(run(
            s,
            &request(
                ACTION_CREATE,
                None,
                "",
                "<rsp:Shell><rsp:InputStreams>stdin</rsp:InputStreams></rsp:Shell>",
            ),
        ));
        let created = body.child(NS_TRANSFER, "ResourceCreated").unwrap();
        let selector = created
            .child(NS_ADDRESSING, "ReferenceParameters")
            .and_then(|r| r.child(NS_WSMAN, "SelectorSet"))
            .and_then(|s| s.child(NS_WSMAN, "Selector"))
            .unwrap();
        let id = selector.trimmed().to_owned();
        let shell = body.child(NS_SHELL, "Shell").unwrap();
        assert_eq!(shell.child(NS_SHELL, "ShellId").unwrap().trimmed(), id);
        id
    }

    fn command(s: &mut WinRmState, shell: &str, line: &str) -> String {
        let body = ok(run(
            s,
            &request(
                ACTION_COMMAND,
                Some(shell),
                "",
                &format!(
                    "<rsp:CommandLine><rsp:Command>{}</rsp:Command></rsp:CommandLine>",
                    esc(line)
                ),
            ),
        ));
        body.child(NS_SHELL, "CommandResponse")
            .and_then(|c| c.child(NS_SHELL, "CommandId"))
            .unwrap()
            .trimmed()
            .to_owned()
    }

    fn receive_req(shell: &str, cmd: &str) -> String {
        request(
            ACTION_RECEIVE,
            Some(shell),
            "",
            &format!(
                r#"<rsp:Receive><rsp:DesiredStream CommandId="{cmd}">stdout stderr</rsp:DesiredStream></rsp:Receive>"#
            ),
        )
    }

    #[test]
    fn full_flow_with_chunked_output() {
        let mut s = WinRmState::new();
        s.responses.insert(
            "Get-Date".into(),
            Canned {
                stdout: "Monday 1 January\r\n".into(),
                stderr: "oops\r\n".into(),
                exit_code: 2,
            },
        );
        let shell = create(&mut s);
        let cmd = command(
            &mut s,
            &shell,
            &format!("powershell -EncodedCommand {}", enc("Get-Date")),
        );
        assert_eq!(s.executed[0].script.as_deref(), Some("Get-Date"));
        assert_eq!(
            s.executed[0].codepage, 437,
            "Windows' default when no codepage is sent"
        );

        let mut stdout = Vec::new();
        let mut stderr = Vec::new();
        let mut stdout_chunks = 0;
        let mut exit = None;
        for _ in 0..5 {
            let body = ok(run(&mut s, &receive_req(&shell, &cmd)));
            let resp = body.child(NS_SHELL, "ReceiveResponse").unwrap();
            for st in resp.children.iter().filter(|c| c.is(NS_SHELL, "Stream")) {
                let data = base64::engine::general_purpose::STANDARD
                    .decode(st.trimmed())
                    .unwrap();
                match st.attr("Name") {
                    Some("stdout") if !data.is_empty() => {
                        stdout_chunks += 1;
                        stdout.extend(data);
                    }
                    Some("stderr") => stderr.extend(data),
                    _ => {}
                }
            }
            let state = resp.child(NS_SHELL, "CommandState").unwrap();
            if state.attr("State") == Some(STATE_DONE) {
                exit = Some(
                    state
                        .child(NS_SHELL, "ExitCode")
                        .unwrap()
                        .trimmed()
                        .to_owned(),
                );
                break;
            }
        }
        assert_eq!(stdout, b"Monday 1 January\r\n");
        assert!(stdout_chunks >= 2, "stdout must come in several chunks");
        let stderr = String::from_utf8(stderr).unwrap();
        assert!(stderr.starts_with("#< CLIXML\r\n<Objs"), "{stderr}");
        assert!(
            stderr.contains(r#"<S S="Error">oops_x000D__x000A_</S>"#),
            "{stderr}"
        );
        assert_eq!(exit.as_deref(), Some("2"));

        ok(run(
            &mut s,
            &request(
                ACTION_SIGNAL,
                Some(&shell),
                "",
                &format!(
                    r#"<rsp:Signal CommandId="{cmd}"><rsp:Code>{SIGNAL_PREFIX}terminate</rsp:Code></rsp:Signal>"#
                ),
            ),
        ));
        assert_eq!(
            fault_code(run(&mut s, &receive_req(&shell, &cmd))).1,
            Some(WSMAN_INVALID_SELECTORS)
        );
        ok(run(&mut s, &request(ACTION_DELETE, Some(&shell), "", "")));
        assert_eq!(s.open_shells(), 0);
        assert_eq!(
            fault_code(run(&mut s, &request(ACTION_DELETE, Some(&shell), "", ""))).1,
            Some(WSMAN_INVALID_SELECTORS),
            "the shell is gone"
        );
    }

    #[test]
    fn delayed_receives_time_out_first() {
        let mut s = WinRmState::new();
        s.delays.insert("slow".into(), 2);
        let shell = create(&mut s);
        let cmd = command(&mut s, &shell, &format!("powershell -enc {}", enc("slow")));
        for _ in 0..2 {
            match run(&mut s, &receive_req(&shell, &cmd)) {
                Reply::TimedOut { fault, .. } => {
                    assert_eq!(fault.wsman_code, Some(WSMAN_TIMED_OUT));
                    assert_eq!(fault.subcode, Some("w:TimedOut"));
                }
                _ => panic!("expected w:TimedOut"),
            }
        }
        ok(run(&mut s, &receive_req(&shell, &cmd)));
    }

    #[test]
    fn strict_validation() {
        let mut s = WinRmState::new();
        let shell = create(&mut s);
        let line = "<rsp:CommandLine><rsp:Command>hostname</rsp:Command></rsp:CommandLine>";

        // ShellId selector missing, or unknown.
        assert_eq!(
            fault_code(run(&mut s, &request(ACTION_COMMAND, None, "", line))).1,
            Some(WSMAN_INVALID_SELECTORS)
        );
        assert_eq!(
            fault_code(run(
                &mut s,
                &request(ACTION_COMMAND, Some("NOPE"), "", line)
            ))
            .1,
            Some(WSMAN_INVALID_SELECTORS)
        );
        // Unknown CommandId; Receive without one.
        assert_eq!(
            fault_code(run(&mut s, &receive_req(&shell, "NOPE"))).1,
            Some(WSMAN_INVALID_SELECTORS)
        );
        assert_eq!(
            fault_code(run(
                &mut s,
                &request(
                    ACTION_RECEIVE,
                    Some(&shell),
                    "",
                    "<rsp:Receive><rsp:DesiredStream>stdout</rsp:DesiredStream></rsp:Receive>"
                )
            ))
            .1,
            Some(WSMAN_INVALID_PARAMETER)
        );
        // Unknown Action, wrong ResourceURI, no MessageID, not understood header, SOAP 1.1.
        assert_eq!(
            fault_code(run(
                &mut s,
                &request("http://example.com/Nope", Some(&shell), "", "")
            ))
            .0,
            Some("a:ActionNotSupported")
        );
        let wrong_uri = request(ACTION_COMMAND, Some(&shell), "", line).replace(
            RESOURCE_URI_CMD,
            "http://schemas.microsoft.com/powershell/Microsoft.PowerShell",
        );
        assert_eq!(
            fault_code(run(&mut s, &wrong_uri)).0,
            Some("w:DestinationUnreachable")
        );
        let no_id = request(ACTION_COMMAND, Some(&shell), "", line)
            .replace("<wsa:MessageID>uuid:REQ-1</wsa:MessageID>", "");
        assert_eq!(
            fault_code(run(&mut s, &no_id)).0,
            Some("a:MessageInformationHeaderRequired")
        );
        match run(
            &mut s,
            &request(
                ACTION_COMMAND,
                Some(&shell),
                r#"<z:Thing xmlns:z="urn:z" s:mustUnderstand="true"/>"#,
                line,
            ),
        ) {
            Reply::Fault(f) => {
                assert_eq!(f.code, "s:MustUnderstand");
                assert!(f.render("h").contains("NotUnderstood"));
            }
            _ => panic!("expected MustUnderstand"),
        }
        let soap11 =
            format!(r#"<e:Envelope xmlns:e="{NS_SOAP11}"><e:Header/><e:Body/></e:Envelope>"#);
        assert_eq!(
            fault_code(run(&mut s, &soap11)).1,
            Some(WSMAN_SCHEMA_VALIDATION)
        );
        assert!(matches!(run(&mut s, "<not xml"), Reply::Fault(_)));
        // A not-understood header that is optional is fine.
        ok(run(
            &mut s,
            &request(
                ACTION_COMMAND,
                Some(&shell),
                r#"<z:Thing xmlns:z="urn:z" s:mustUnderstand="false"/>"#,
                line,
            ),
        ));
        assert_eq!(s.open_shells(), 1);
    }

    /// The decoded stderr bytes of a ReceiveResponse body.
    fn stderr_chunks(body: &Element) -> Vec<u8> {
        body.child(NS_SHELL, "ReceiveResponse")
            .unwrap()
            .children
            .iter()
            .filter(|c| c.attr("Name") == Some("stderr"))
            .flat_map(|c| {
                base64::engine::general_purpose::STANDARD
                    .decode(c.trimmed())
                    .unwrap()
            })
            .collect()
    }

    #[test]
    fn command_line_too_long_for_cmd() {
        let mut s = WinRmState::new();
        let shell = create(&mut s);
        let cmd = command(
            &mut s,
            &shell,
            &format!("echo {}", "a".repeat(CMD_LINE_LIMIT)),
        );
        let body = ok(run(&mut s, &receive_req(&shell, &cmd)));
        let stderr = stderr_chunks(&body);
        // The first Receive carries part of it; the rest comes with Done.
        let body2 = ok(run(&mut s, &receive_req(&shell, &cmd)));
        let rest = stderr_chunks(&body2);
        assert_eq!(
            [stderr, rest].concat(),
            b"The command line is too long.\r\n"
        );
    }
}
