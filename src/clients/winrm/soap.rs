//! The WS-Management SOAP layer of the WinRS cmd shell: envelope builders for Create, Command,
//! Receive, Signal and Delete (fixed templates with XML escaping, winrm.md §1.3–§1.9), and
//! response parsing that matches elements by namespace URI and local name, never by prefix
//! (Windows says `s:`/`a:`/`rsp:`, OMI says `SOAP-ENV:`/`wsa:`/`wsman:`). No I/O lives here, so
//! all of it is tested against the recorded XML in winrm.md.

use std::time::Duration;

use base64::Engine as _;
use quick_xml::XmlVersion;
use quick_xml::events::Event;
use quick_xml::name::ResolveResult;
use quick_xml::reader::NsReader;

use super::error::{Phase, WinRmError};

/// Namespace URIs (winrm.md §1.2).
pub mod ns {
    pub const SOAP: &str = "http://www.w3.org/2003/05/soap-envelope";
    pub const ADDRESSING: &str = "http://schemas.xmlsoap.org/ws/2004/08/addressing";
    pub const WSMAN: &str = "http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd";
    pub const WSMAN_MS: &str = "http://schemas.microsoft.com/wbem/wsman/1/wsman.xsd";
    pub const SHELL: &str = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell";
    pub const TRANSFER: &str = "http://schemas.xmlsoap.org/ws/2004/09/transfer";
    pub const WSMAN_FAULT: &str = "http://schemas.microsoft.com/wbem/wsman/1/wsmanfault";
}

pub const RESOURCE_URI_CMD: &str = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/cmd";
pub const ACTION_CREATE: &str = "http://schemas.xmlsoap.org/ws/2004/09/transfer/Create";
pub const ACTION_DELETE: &str = "http://schemas.xmlsoap.org/ws/2004/09/transfer/Delete";
pub const ACTION_COMMAND: &str = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/Command";
pub const ACTION_RECEIVE: &str = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/Receive";
pub const ACTION_SIGNAL: &str = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/Signal";
pub const ACTION_SEND: &str = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/Send";
pub const ADDRESS_ANONYMOUS: &str =
    "http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous";
pub const SIGNAL_TERMINATE: &str =
    "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/signal/terminate";
const STATE_DONE_SUFFIX: &str = "CommandState/Done";

/// 150 KiB, what pywinrm, masterzen and pypsrp send; every host accepts it (winrm.md §1.3).
pub const MAX_ENVELOPE_SIZE: u32 = 153_600;
/// UTF-8, so stdout bytes decode as UTF-8 (pywinrm's default 437 would give OEM bytes).
pub const CODEPAGE_UTF8: u32 = 65001;

/// A fresh `uuid:`-prefixed MessageID; every response must echo it in `a:RelatesTo`.
pub fn new_message_id() -> String {
    format!("uuid:{}", uuid::Uuid::new_v4().to_string().to_uppercase())
}

/// XML-escapes text for element content and double-quoted attributes.
pub fn escape(s: &str) -> std::borrow::Cow<'_, str> {
    quick_xml::escape::escape(s)
}

/// ISO-8601 duration as WS-Management wants it: `PT20S`, or `PT1.500S` below whole seconds.
pub fn iso_duration(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("PT{}S", d.as_secs())
    } else {
        format!("PT{}.{:03}S", d.as_secs(), d.subsec_millis())
    }
}

/// What every request header needs.
#[derive(Debug, Clone, Copy)]
pub struct RequestContext<'a> {
    /// `a:To`: the endpoint URL (Windows ignores it, WinRb/masterzen/pypsrp send the endpoint).
    pub to: &'a str,
    pub message_id: &'a str,
    pub operation_timeout: Duration,
}

fn envelope(
    ctx: &RequestContext<'_>,
    action: &str,
    shell_id: Option<&str>,
    options: &[(&str, &str)],
    body: &str,
) -> String {
    let mut h = String::with_capacity(1600 + body.len());
    h.push_str(r#"<?xml version="1.0" encoding="utf-8"?>"#);
    h.push_str(&format!(
        r#"<s:Envelope xmlns:s="{}" xmlns:a="{}" xmlns:w="{}" xmlns:p="{}" xmlns:rsp="{}">"#,
        ns::SOAP,
        ns::ADDRESSING,
        ns::WSMAN,
        ns::WSMAN_MS,
        ns::SHELL
    ));
    h.push_str("<s:Header>");
    h.push_str(&format!("<a:To>{}</a:To>", escape(ctx.to)));
    h.push_str(&format!(
        r#"<a:ReplyTo><a:Address s:mustUnderstand="true">{ADDRESS_ANONYMOUS}</a:Address></a:ReplyTo>"#
    ));
    h.push_str(&format!(
        r#"<w:MaxEnvelopeSize s:mustUnderstand="true">{MAX_ENVELOPE_SIZE}</w:MaxEnvelopeSize>"#
    ));
    h.push_str(&format!(
        "<a:MessageID>{}</a:MessageID>",
        escape(ctx.message_id)
    ));
    h.push_str(r#"<w:Locale s:mustUnderstand="false" xml:lang="en-US"/>"#);
    h.push_str(r#"<p:DataLocale s:mustUnderstand="false" xml:lang="en-US"/>"#);
    h.push_str(&format!(
        "<w:OperationTimeout>{}</w:OperationTimeout>",
        iso_duration(ctx.operation_timeout)
    ));
    h.push_str(&format!(
        r#"<w:ResourceURI s:mustUnderstand="true">{RESOURCE_URI_CMD}</w:ResourceURI>"#
    ));
    h.push_str(&format!(
        r#"<a:Action s:mustUnderstand="true">{action}</a:Action>"#
    ));
    if let Some(id) = shell_id {
        h.push_str(&format!(
            r#"<w:SelectorSet><w:Selector Name="ShellId">{}</w:Selector></w:SelectorSet>"#,
            escape(id)
        ));
    }
    if !options.is_empty() {
        h.push_str("<w:OptionSet>");
        for (name, value) in options {
            h.push_str(&format!(
                r#"<w:Option Name="{}">{}</w:Option>"#,
                escape(name),
                escape(value)
            ));
        }
        h.push_str("</w:OptionSet>");
    }
    h.push_str("</s:Header>");
    if body.is_empty() {
        h.push_str("<s:Body/>");
    } else {
        h.push_str("<s:Body>");
        h.push_str(body);
        h.push_str("</s:Body>");
    }
    h.push_str("</s:Envelope>");
    h
}

/// `transfer/Create` of a cmd shell with the given codepage and no user profile loaded.
pub fn create_shell(ctx: &RequestContext<'_>, codepage: u32) -> String {
    create_shell_with_env(ctx, codepage, &[])
}

/// `transfer/Create` with environment variables for the shell (`rsp:Environment`): how data
/// reaches a fixed script without being spliced into its text (winrm.md §2.2, method 2).
pub fn create_shell_with_env(
    ctx: &RequestContext<'_>,
    codepage: u32,
    env: &[(&str, &str)],
) -> String {
    let codepage = codepage.to_string();
    let mut body = String::from(
        "<rsp:Shell><rsp:InputStreams>stdin</rsp:InputStreams>\
         <rsp:OutputStreams>stdout stderr</rsp:OutputStreams>",
    );
    if !env.is_empty() {
        body.push_str("<rsp:Environment>");
        for (name, value) in env {
            body.push_str(&format!(
                r#"<rsp:Variable Name="{}">{}</rsp:Variable>"#,
                escape(name),
                escape(value)
            ));
        }
        body.push_str("</rsp:Environment>");
    }
    body.push_str("</rsp:Shell>");
    envelope(
        ctx,
        ACTION_CREATE,
        None,
        &[("WINRS_NOPROFILE", "TRUE"), ("WINRS_CODEPAGE", &codepage)],
        &body,
    )
}

/// `shell/Send` of one stdin chunk; `end` marks the last one (`End="true"`).
pub fn send_stdin(
    ctx: &RequestContext<'_>,
    shell_id: &str,
    command_id: &str,
    data: &[u8],
    end: bool,
) -> String {
    envelope(
        ctx,
        ACTION_SEND,
        Some(shell_id),
        &[],
        &format!(
            r#"<rsp:Send><rsp:Stream Name="stdin" CommandId="{}" End="{}">{}</rsp:Stream></rsp:Send>"#,
            escape(command_id),
            if end { "true" } else { "false" },
            base64::engine::general_purpose::STANDARD.encode(data)
        ),
    )
}

/// `shell/Command` with the whole command line in `rsp:Command` and no `rsp:Arguments`, as
/// pywinrm's `run_ps` does; Windows runs it through `cmd.exe /c` (WINRS_SKIP_CMD_SHELL=FALSE).
///
/// `command_id`, when given, is a client-chosen id (`CommandId` on `rsp:CommandLine`, as
/// WSManRunShellCommandEx and WinRb send it): known before the command is sent, so it can be
/// recorded first. Hosts older than Windows 8 / Server 2012 ignore it and answer their own.
pub fn command(
    ctx: &RequestContext<'_>,
    shell_id: &str,
    command_line: &str,
    command_id: Option<&str>,
) -> String {
    let id_attr = command_id
        .map(|id| format!(r#" CommandId="{}""#, escape(id)))
        .unwrap_or_default();
    envelope(
        ctx,
        ACTION_COMMAND,
        Some(shell_id),
        &[
            ("WINRS_CONSOLEMODE_STDIN", "TRUE"),
            ("WINRS_SKIP_CMD_SHELL", "FALSE"),
        ],
        &format!(
            "<rsp:CommandLine{id_attr}><rsp:Command>{}</rsp:Command></rsp:CommandLine>",
            escape(command_line)
        ),
    )
}

/// `shell/Receive` of stdout and stderr of one command.
pub fn receive(ctx: &RequestContext<'_>, shell_id: &str, command_id: &str) -> String {
    envelope(
        ctx,
        ACTION_RECEIVE,
        Some(shell_id),
        &[],
        &format!(
            r#"<rsp:Receive><rsp:DesiredStream CommandId="{}">stdout stderr</rsp:DesiredStream></rsp:Receive>"#,
            escape(command_id)
        ),
    )
}

/// `shell/Signal` terminate for one command.
pub fn signal_terminate(ctx: &RequestContext<'_>, shell_id: &str, command_id: &str) -> String {
    envelope(
        ctx,
        ACTION_SIGNAL,
        Some(shell_id),
        &[],
        &format!(
            r#"<rsp:Signal CommandId="{}"><rsp:Code>{SIGNAL_TERMINATE}</rsp:Code></rsp:Signal>"#,
            escape(command_id)
        ),
    )
}

/// `transfer/Delete` of the shell; the body is empty.
pub fn delete_shell(ctx: &RequestContext<'_>, shell_id: &str) -> String {
    envelope(ctx, ACTION_DELETE, Some(shell_id), &[], "")
}

// ---------------------------------------------------------------------------------------------
// A small namespace-aware tree. Responses are a few KiB; a tree keeps the lookups below simple
// and keeps parsing independent of prefixes.

#[derive(Debug, Clone, Default)]
pub struct Element {
    /// Namespace URI, `None` when the name is unqualified.
    pub ns: Option<String>,
    pub local: String,
    /// `(namespace URI, local name, value)`; unprefixed attributes have no namespace.
    pub attrs: Vec<(Option<String>, String, String)>,
    pub children: Vec<Element>,
    /// The element's own character data (text and CDATA), concatenated, not trimmed.
    pub text: String,
}

impl Element {
    pub fn is(&self, ns: &str, local: &str) -> bool {
        self.local == local && self.ns.as_deref() == Some(ns)
    }

    pub fn child(&self, ns: &str, local: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.is(ns, local))
    }

    /// An attribute without a namespace (`Name="…"`, `CommandId="…"`).
    pub fn attr(&self, local: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(ns, l, _)| ns.is_none() && l == local)
            .map(|(_, _, v)| v.as_str())
    }

    /// All elements below this one, depth first, in document order.
    pub fn descendants(&self) -> Vec<&Element> {
        let mut out = Vec::new();
        fn walk<'e>(e: &'e Element, out: &mut Vec<&'e Element>) {
            for c in &e.children {
                out.push(c);
                walk(c, out);
            }
        }
        walk(self, &mut out);
        out
    }

    pub fn find(&self, ns: &str, local: &str) -> Option<&Element> {
        self.descendants().into_iter().find(|e| e.is(ns, local))
    }

    pub fn find_all(&self, ns: &str, local: &str) -> Vec<&Element> {
        self.descendants()
            .into_iter()
            .filter(|e| e.is(ns, local))
            .collect()
    }

    /// The trimmed text of this element (OMI indents values with newlines).
    pub fn trimmed(&self) -> &str {
        self.text.trim()
    }

    /// Text of this element and everything below it, for messages nested in markup
    /// (`f:Message` holding an `f:ProviderFault`).
    pub fn deep_text(&self) -> String {
        let mut s = self.text.clone();
        for c in &self.children {
            s.push_str(&c.deep_text());
        }
        s
    }
}

fn ns_of(r: ResolveResult<'_>) -> Option<String> {
    match r {
        ResolveResult::Bound(ns) => Some(AsRef::<str>::as_ref(&ns).to_owned()),
        _ => None,
    }
}

/// Parses a whole document into its root element.
pub fn parse_document(xml: &str) -> Result<Element, String> {
    let mut reader = NsReader::from_str(xml);
    let mut stack: Vec<Element> = Vec::new();
    let mut root: Option<Element> = None;
    loop {
        let (res, event) = reader.read_resolved_event().map_err(|e| e.to_string())?;
        match event {
            Event::Start(ref start) | Event::Empty(ref start) => {
                let mut el = Element {
                    ns: ns_of(res),
                    local: AsRef::<str>::as_ref(&start.local_name()).to_owned(),
                    ..Element::default()
                };
                for attr in start.attributes() {
                    let attr = attr.map_err(|e| e.to_string())?;
                    if attr.key.as_namespace_binding().is_some() {
                        continue;
                    }
                    let (ans, alocal) = reader.resolver().resolve_attribute(attr.key);
                    let value = attr
                        .normalized_value(XmlVersion::Implicit1_0)
                        .map_err(|e| e.to_string())?;
                    el.attrs.push((
                        ns_of(ans),
                        AsRef::<str>::as_ref(&alocal).to_owned(),
                        value.into_owned(),
                    ));
                }
                if matches!(event, Event::Start(_)) {
                    stack.push(el);
                } else {
                    close(&mut stack, &mut root, el)?;
                }
            }
            Event::End(_) => {
                let el = stack.pop().ok_or("unbalanced end tag")?;
                close(&mut stack, &mut root, el)?;
            }
            Event::Text(t) => {
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(&t.xml10_content());
                }
            }
            Event::CData(c) => {
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(&c.xml10_content());
                }
            }
            Event::GeneralRef(r) => {
                let resolved = match r.resolve_char_ref().map_err(|e| e.to_string())? {
                    Some(ch) => ch.to_string(),
                    None => quick_xml::escape::resolve_predefined_entity(&r.xml10_content())
                        .ok_or_else(|| format!("unknown entity &{};", r.xml10_content()))?
                        .to_owned(),
                };
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(&resolved);
                }
            }
            Event::Eof => break,
            Event::Comment(_) | Event::Decl(_) | Event::PI(_) | Event::DocType(_) => {}
        }
    }
    if !stack.is_empty() {
        return Err("document ended inside an element".into());
    }
    root.ok_or_else(|| "empty document".into())
}

fn close(stack: &mut [Element], root: &mut Option<Element>, el: Element) -> Result<(), String> {
    match stack.last_mut() {
        Some(parent) => parent.children.push(el),
        None if root.is_none() => *root = Some(el),
        None => return Err("more than one root element".into()),
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Response interpretation.

/// A parsed SOAP 1.2 envelope.
#[derive(Debug, Clone)]
pub struct Envelope {
    pub root: Element,
}

impl Envelope {
    pub fn parse(xml: &str) -> Option<Envelope> {
        let root = parse_document(xml).ok()?;
        root.is(ns::SOAP, "Envelope").then_some(Envelope { root })
    }

    pub fn header(&self) -> Option<&Element> {
        self.root.child(ns::SOAP, "Header")
    }

    pub fn body(&self) -> Option<&Element> {
        self.root.child(ns::SOAP, "Body")
    }

    fn header_value(&self, local: &str) -> Option<&str> {
        self.header()?
            .child(ns::ADDRESSING, local)
            .map(Element::trimmed)
    }

    pub fn relates_to(&self) -> Option<&str> {
        self.header_value("RelatesTo")
    }

    pub fn action(&self) -> Option<&str> {
        self.header_value("Action")
    }

    pub fn fault(&self) -> Option<&Element> {
        self.body()?.child(ns::SOAP, "Fault")
    }
}

/// The pieces of a SOAP fault we report (winrm.md §4.1).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FaultInfo {
    pub code: String,
    pub subcode: Option<String>,
    pub reason: String,
    pub wsman_code: Option<u32>,
    pub machine: Option<String>,
    pub wmi_code: Option<u32>,
}

pub fn parse_fault(fault: &Element) -> FaultInfo {
    let code_el = fault.child(ns::SOAP, "Code");
    let code = code_el
        .and_then(|c| c.child(ns::SOAP, "Value"))
        .map(|v| v.trimmed().to_owned())
        .unwrap_or_default();
    let subcode = code_el
        .and_then(|c| c.child(ns::SOAP, "Subcode"))
        .and_then(|s| s.child(ns::SOAP, "Value"))
        .map(|v| v.trimmed().to_owned())
        .filter(|s| !s.is_empty());
    let wsman = fault.find(ns::WSMAN_FAULT, "WSManFault");
    let wsman_code = wsman
        .and_then(|w| w.attr("Code"))
        .and_then(|c| c.trim().parse().ok());
    let machine = wsman
        .and_then(|w| w.attr("Machine"))
        .map(|m| m.trim().to_owned());
    let message = wsman
        .and_then(|w| w.child(ns::WSMAN_FAULT, "Message"))
        .map(|m| m.deep_text().trim().to_owned())
        .filter(|m| !m.is_empty());
    let reason = fault
        .child(ns::SOAP, "Reason")
        .and_then(|r| r.child(ns::SOAP, "Text"))
        .map(|t| t.trimmed().to_owned())
        .filter(|r| !r.is_empty())
        .or(message)
        .unwrap_or_else(|| "(no reason given)".to_owned());
    // MSFT_WmiError lives in a per-class namespace; match the local name only.
    let wmi_code = fault
        .descendants()
        .into_iter()
        .find(|e| e.local == "error_Code")
        .and_then(|e| e.trimmed().parse().ok());
    FaultInfo {
        code,
        subcode,
        reason,
        wsman_code,
        machine,
        wmi_code,
    }
}

/// Longest server body we copy into an error; enough to diagnose, bounded for logs.
const MAX_ERROR_BODY: usize = 2048;

fn snippet(body: &str) -> String {
    if body.len() <= MAX_ERROR_BODY {
        return body.to_owned();
    }
    let mut end = MAX_ERROR_BODY;
    while !body.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &body[..end])
}

/// Turns one HTTP answer into the response envelope or the matching error. Any XML fault is a
/// [`WinRmError::Fault`] whatever the status (pywinrm does the same for any non-2xx); success
/// must carry `a:RelatesTo` equal to our MessageID and, when present, the expected Action.
pub fn interpret(
    phase: Phase,
    http_status: u16,
    body: &str,
    message_id: &str,
    expected_action: &str,
) -> Result<Envelope, WinRmError> {
    let Some(env) = Envelope::parse(body) else {
        if (200..300).contains(&http_status) {
            return Err(WinRmError::Protocol(format!(
                "{phase}: HTTP {http_status} answer is not a SOAP 1.2 envelope: {}",
                snippet(body)
            )));
        }
        return Err(WinRmError::Http {
            phase,
            status: http_status,
            body: snippet(body),
        });
    };
    // A fault may lack RelatesTo (OMI); when present it must be ours.
    let relates = env.relates_to();
    if let Some(r) = relates
        && !r.eq_ignore_ascii_case(message_id)
    {
        return Err(WinRmError::Protocol(format!(
            "{phase}: RelatesTo {r} does not match our MessageID {message_id}"
        )));
    }
    if let Some(fault) = env.fault() {
        let f = parse_fault(fault);
        return Err(WinRmError::Fault {
            phase,
            http_status,
            code: f.code,
            subcode: f.subcode,
            reason: f.reason,
            wsman_code: f.wsman_code,
            machine: f.machine,
            wmi_code: f.wmi_code,
        });
    }
    if !(200..300).contains(&http_status) {
        return Err(WinRmError::Http {
            phase,
            status: http_status,
            body: snippet(body),
        });
    }
    if relates.is_none() {
        return Err(WinRmError::Protocol(format!(
            "{phase}: response has no RelatesTo header"
        )));
    }
    if let Some(action) = env.action() {
        let expected = format!("{expected_action}Response");
        if action != expected {
            return Err(WinRmError::Protocol(format!(
                "{phase}: response Action {action}, expected {expected}"
            )));
        }
    }
    Ok(env)
}

/// The ShellId from a CreateResponse: the `w:Selector Name="ShellId"` inside
/// `x:ResourceCreated` (present on every host), else `rsp:Shell/rsp:ShellId`.
pub fn parse_shell_id(env: &Envelope) -> Result<String, WinRmError> {
    let body = env
        .body()
        .ok_or_else(|| WinRmError::Protocol("CreateResponse without a Body".into()))?;
    let from_selector = body
        .find_all(ns::WSMAN, "Selector")
        .into_iter()
        .find(|s| s.attr("Name") == Some("ShellId"))
        .map(|s| s.trimmed().to_owned());
    let from_shell = || {
        body.find(ns::SHELL, "ShellId")
            .map(|s| s.trimmed().to_owned())
    };
    from_selector
        .or_else(from_shell)
        .filter(|id| !id.is_empty())
        .ok_or_else(|| WinRmError::Protocol("CreateResponse carries no ShellId".into()))
}

/// The CommandId from a CommandResponse.
pub fn parse_command_id(env: &Envelope) -> Result<String, WinRmError> {
    env.body()
        .and_then(|b| b.find(ns::SHELL, "CommandId"))
        .map(|c| c.trimmed().to_owned())
        .filter(|id| !id.is_empty())
        .ok_or_else(|| WinRmError::Protocol("CommandResponse carries no CommandId".into()))
}

/// One ReceiveResponse: raw stream bytes in document order, and the state.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ReceiveChunk {
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub done: bool,
    /// `rsp:ExitCode`, present with Done. A Windows exit code is 32 bits, unsigned in the XML
    /// (0xC0000005 arrives as 3221225477), so it does not fit an i32.
    pub exit_code: Option<i64>,
}

pub fn parse_receive(env: &Envelope) -> Result<ReceiveChunk, WinRmError> {
    let body = env
        .body()
        .ok_or_else(|| WinRmError::Protocol("ReceiveResponse without a Body".into()))?;
    let mut chunk = ReceiveChunk::default();
    for stream in body.find_all(ns::SHELL, "Stream") {
        let text = stream.trimmed();
        if text.is_empty() {
            continue; // End="true" markers carry no data
        }
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text)
            .map_err(|e| WinRmError::Protocol(format!("bad base64 in rsp:Stream: {e}")))?;
        match stream.attr("Name") {
            Some("stdout") => chunk.stdout.extend_from_slice(&bytes),
            Some("stderr") => chunk.stderr.extend_from_slice(&bytes),
            other => {
                return Err(WinRmError::Protocol(format!(
                    "rsp:Stream with unexpected Name {other:?}"
                )));
            }
        }
    }
    if let Some(state) = body.find(ns::SHELL, "CommandState")
        && state
            .attr("State")
            .is_some_and(|s| s.trim().ends_with(STATE_DONE_SUFFIX))
    {
        chunk.done = true;
        if let Some(code) = state.child(ns::SHELL, "ExitCode") {
            let text = code.trimmed();
            chunk.exit_code = Some(text.parse().map_err(|_| {
                WinRmError::Protocol(format!("ExitCode {text:?} is not an integer"))
            })?);
        }
    }
    Ok(chunk)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MSG: &str = "uuid:A779D886-33C4-4947-A9DA-2B10E9EC43A4";

    /// Real Windows Server CreateResponse (pypsrp test_client_execute_cmd.yml, winrm.md §1.4).
    const CREATE_WITH_SHELL: &str = r#"<s:Envelope xml:lang="en-US" xmlns:s="http://www.w3.org/2003/05/soap-envelope"
    xmlns:a="http://schemas.xmlsoap.org/ws/2004/08/addressing"
    xmlns:x="http://schemas.xmlsoap.org/ws/2004/09/transfer"
    xmlns:w="http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd"
    xmlns:rsp="http://schemas.microsoft.com/wbem/wsman/1/windows/shell"
    xmlns:p="http://schemas.microsoft.com/wbem/wsman/1/wsman.xsd">
  <s:Header>
    <a:Action>http://schemas.xmlsoap.org/ws/2004/09/transfer/CreateResponse</a:Action>
    <a:MessageID>uuid:2DB1A6D0-87F0-4C1C-9CE3-EA6856E8F629</a:MessageID>
    <a:To>http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous</a:To>
    <a:RelatesTo>uuid:A779D886-33C4-4947-A9DA-2B10E9EC43A4</a:RelatesTo>
  </s:Header>
  <s:Body>
    <x:ResourceCreated>
      <a:Address>https://127.0.0.1:55986/wsman</a:Address>
      <a:ReferenceParameters>
        <w:ResourceURI>http://schemas.microsoft.com/wbem/wsman/1/windows/shell/cmd</w:ResourceURI>
        <w:SelectorSet>
          <w:Selector Name="ShellId">19CE36E9-BE25-4CDE-9257-EFC212F8003E</w:Selector>
        </w:SelectorSet>
      </a:ReferenceParameters>
    </x:ResourceCreated>
    <rsp:Shell xmlns:rsp="http://schemas.microsoft.com/wbem/wsman/1/windows/shell">
      <rsp:ShellId>19CE36E9-BE25-4CDE-9257-EFC212F8003E</rsp:ShellId>
      <rsp:ResourceUri>http://schemas.microsoft.com/wbem/wsman/1/windows/shell/cmd</rsp:ResourceUri>
      <rsp:Owner>WIN-NNMU24VVKJ0\vagrant</rsp:Owner>
      <rsp:ClientIP>10.0.2.2</rsp:ClientIP>
      <rsp:IdleTimeOut>PT7200.000S</rsp:IdleTimeOut>
      <rsp:InputStreams>stdin</rsp:InputStreams>
      <rsp:OutputStreams>stdout stderr</rsp:OutputStreams>
      <rsp:ShellRunTime>P0DT0H0M0S</rsp:ShellRunTime>
      <rsp:ShellInactivity>P0DT0H0M0S</rsp:ShellInactivity>
    </rsp:Shell>
  </s:Body>
</s:Envelope>"#;

    /// pywinrm's `open_shell_response` fixture: only x:ResourceCreated, no rsp:Shell.
    const CREATE_WITHOUT_SHELL: &str = r#"<?xml version="1.0" ?>
<s:Envelope xml:lang="en-US" xmlns:a="http://schemas.xmlsoap.org/ws/2004/08/addressing" xmlns:p="http://schemas.microsoft.com/wbem/wsman/1/wsman.xsd" xmlns:rsp="http://schemas.microsoft.com/wbem/wsman/1/windows/shell" xmlns:s="http://www.w3.org/2003/05/soap-envelope" xmlns:w="http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd" xmlns:x="http://schemas.xmlsoap.org/ws/2004/09/transfer">
    <s:Header>
        <a:Action>http://schemas.xmlsoap.org/ws/2004/09/transfer/CreateResponse</a:Action>
        <a:MessageID>uuid:11111111-1111-1111-1111-111111111112</a:MessageID>
        <a:To>http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous</a:To>
        <a:RelatesTo>uuid:11111111-1111-1111-1111-111111111111</a:RelatesTo>
    </s:Header>
    <s:Body>
        <x:ResourceCreated>
            <a:Address>http://windows-host:5985/wsman</a:Address>
            <a:ReferenceParameters>
                <w:ResourceURI>http://schemas.microsoft.com/wbem/wsman/1/windows/shell/cmd</w:ResourceURI>
                <w:SelectorSet>
                    <w:Selector Name="ShellId">11111111-1111-1111-1111-111111111113</w:Selector>
                </w:SelectorSet>
            </a:ReferenceParameters>
        </x:ResourceCreated>
    </s:Body>
</s:Envelope>"#;

    /// OMI-style: other prefixes, values wrapped in newlines and indentation.
    const CREATE_OMI: &str = r#"<SOAP-ENV:Envelope xmlns:SOAP-ENV="http://www.w3.org/2003/05/soap-envelope" xmlns:wsa="http://schemas.xmlsoap.org/ws/2004/08/addressing" xmlns:wsman="http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd" xmlns:wxf="http://schemas.xmlsoap.org/ws/2004/09/transfer">
  <SOAP-ENV:Header>
    <wsa:To>http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous</wsa:To>
    <wsa:Action>http://schemas.xmlsoap.org/ws/2004/09/transfer/CreateResponse</wsa:Action>
    <wsa:MessageID>uuid:0AB58087-C2C3-0005-0000-000000010000</wsa:MessageID>
    <wsa:RelatesTo>
      uuid:A779D886-33C4-4947-A9DA-2B10E9EC43A4
    </wsa:RelatesTo>
  </SOAP-ENV:Header>
  <SOAP-ENV:Body>
    <wxf:ResourceCreated>
      <wsa:Address>http://localhost:5985</wsa:Address>
      <wsa:ReferenceParameters>
        <wsman:ResourceURI>http://schemas.microsoft.com/wbem/wsman/1/windows/shell/cmd</wsman:ResourceURI>
        <wsman:SelectorSet>
          <wsman:Selector Name="ShellId">
            9A153F9E-2B75-4D73-93E6-6B0A5D6DB3A5
          </wsman:Selector>
        </wsman:SelectorSet>
      </wsa:ReferenceParameters>
    </wxf:ResourceCreated>
  </SOAP-ENV:Body>
</SOAP-ENV:Envelope>"#;

    fn receive_doc(body: &str) -> String {
        format!(
            r#"<s:Envelope xml:lang="en-US" xmlns:s="http://www.w3.org/2003/05/soap-envelope" xmlns:a="http://schemas.xmlsoap.org/ws/2004/08/addressing" xmlns:rsp="http://schemas.microsoft.com/wbem/wsman/1/windows/shell"><s:Header><a:Action>http://schemas.microsoft.com/wbem/wsman/1/windows/shell/ReceiveResponse</a:Action><a:MessageID>uuid:1</a:MessageID><a:To>http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous</a:To><a:RelatesTo>{MSG}</a:RelatesTo></s:Header>{body}</s:Envelope>"#
        )
    }

    /// Real "still running" Receive (pypsrp test_winrs_operation_timeout.yml, winrm.md §1.6).
    const RECEIVE_RUNNING: &str = r#"<s:Body>
  <rsp:ReceiveResponse>
    <rsp:Stream Name="stdout" CommandId="D644AE56-61E5-4C1A-A135-E599B76B3035">aGk=</rsp:Stream>
    <rsp:Stream Name="stdout" CommandId="D644AE56-61E5-4C1A-A135-E599B76B3035">Cg==</rsp:Stream>
    <rsp:CommandState CommandId="D644AE56-61E5-4C1A-A135-E599B76B3035"
        State="http://schemas.microsoft.com/wbem/wsman/1/windows/shell/CommandState/Running"></rsp:CommandState>
  </rsp:ReceiveResponse>
</s:Body>"#;

    const RECEIVE_DONE: &str = r#"<s:Body>
  <rsp:ReceiveResponse>
    <rsp:Stream Name="stdout" CommandId="D644AE56-61E5-4C1A-A135-E599B76B3035">aGk=</rsp:Stream>
    <rsp:Stream Name="stdout" CommandId="D644AE56-61E5-4C1A-A135-E599B76B3035">IGFnYWluCg==</rsp:Stream>
    <rsp:Stream Name="stdout" CommandId="D644AE56-61E5-4C1A-A135-E599B76B3035" End="true"></rsp:Stream>
    <rsp:Stream Name="stderr" CommandId="D644AE56-61E5-4C1A-A135-E599B76B3035" End="true"></rsp:Stream>
    <rsp:CommandState CommandId="D644AE56-61E5-4C1A-A135-E599B76B3035"
        State="http://schemas.microsoft.com/wbem/wsman/1/windows/shell/CommandState/Done">
      <rsp:ExitCode>0</rsp:ExitCode>
    </rsp:CommandState>
  </rsp:ReceiveResponse>
</s:Body>"#;

    /// Real w:TimedOut fault (winrm.md §1.6).
    const TIMED_OUT_FAULT: &str = r#"<s:Envelope xml:lang="en-US" xmlns:s="http://www.w3.org/2003/05/soap-envelope"
    xmlns:a="http://schemas.xmlsoap.org/ws/2004/08/addressing"
    xmlns:w="http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd">
  <s:Header>
    <a:Action>http://schemas.dmtf.org/wbem/wsman/1/wsman/fault</a:Action>
    <a:MessageID>uuid:0D4B0250-D011-45CB-B33F-612745F6BEC5</a:MessageID>
    <a:To>http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous</a:To>
    <a:RelatesTo>uuid:A779D886-33C4-4947-A9DA-2B10E9EC43A4</a:RelatesTo>
  </s:Header>
  <s:Body>
    <s:Fault>
      <s:Code>
        <s:Value>s:Receiver</s:Value>
        <s:Subcode><s:Value>w:TimedOut</s:Value></s:Subcode>
      </s:Code>
      <s:Reason><s:Text xml:lang="en-US">The WS-Management service cannot complete the operation within the time specified in OperationTimeout.  </s:Text></s:Reason>
      <s:Detail>
        <f:WSManFault xmlns:f="http://schemas.microsoft.com/wbem/wsman/1/wsmanfault" Code="2150858793" Machine="192.168.56.11">
          <f:Message>The WS-Management service cannot complete the operation within the time specified in OperationTimeout.  </f:Message>
        </f:WSManFault>
      </s:Detail>
    </s:Fault>
  </s:Body>
</s:Envelope>"#;

    /// InvalidSelectors with a ProviderFault message (winrm.md §4.1/§4.2 shape).
    const INVALID_SELECTORS_FAULT: &str = r#"<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" xmlns:a="http://schemas.xmlsoap.org/ws/2004/08/addressing" xmlns:w="http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd"><s:Header><a:Action>http://schemas.dmtf.org/wbem/wsman/1/wsman/fault</a:Action><a:RelatesTo>uuid:A779D886-33C4-4947-A9DA-2B10E9EC43A4</a:RelatesTo></s:Header><s:Body><s:Fault><s:Code><s:Value>s:Sender</s:Value><s:Subcode><s:Value>w:InvalidSelectors</s:Value></s:Subcode></s:Code><s:Reason><s:Text xml:lang="">The WS-Management service cannot process the request because the request contained invalid selectors for the resource. </s:Text></s:Reason><s:Detail><w:FaultDetail>http://schemas.dmtf.org/wbem/wsman/1/wsman/faultDetail/InvalidValue</w:FaultDetail><f:WSManFault xmlns:f="http://schemas.microsoft.com/wbem/wsman/1/wsmanfault" Code="2150858843" Machine="win-host"><f:Message><f:ProviderFault provider="Shell cmd plugin" path="%systemroot%\system32\winrscmd.dll">The request for the Windows Remote Shell with ShellId X failed because the shell was not found on the server.</f:ProviderFault></f:Message></f:WSManFault></s:Detail></s:Fault></s:Body></s:Envelope>"#;

    /// pywinrm test_wsman_fault_must_understand: no Detail, a NotUnderstood header.
    const MUST_UNDERSTAND_FAULT: &str = r#"<s:Envelope xml:lang="en-US"
    xmlns:s="http://www.w3.org/2003/05/soap-envelope"
    xmlns:a="http://schemas.xmlsoap.org/ws/2004/08/addressing">
    <s:Header>
        <a:Action>http://schemas.xmlsoap.org/ws/2004/08/addressing/fault</a:Action>
        <a:RelatesTo>uuid:A779D886-33C4-4947-A9DA-2B10E9EC43A4</a:RelatesTo>
        <s:NotUnderstood qname="wsman:ResourceUri" xmlns:wsman="http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd" />
    </s:Header>
    <s:Body><s:Fault><s:Code><s:Value>s:MustUnderstand</s:Value></s:Code><s:Reason><s:Text xml:lang=""> Test reason. </s:Text></s:Reason></s:Fault></s:Body>
</s:Envelope>"#;

    fn ctx() -> RequestContext<'static> {
        RequestContext {
            to: "http://win:5985/wsman",
            message_id: MSG,
            operation_timeout: Duration::from_secs(20),
        }
    }

    #[test]
    fn create_response_with_rsp_shell() {
        let env = interpret(Phase::Create, 200, CREATE_WITH_SHELL, MSG, ACTION_CREATE).unwrap();
        assert_eq!(
            parse_shell_id(&env).unwrap(),
            "19CE36E9-BE25-4CDE-9257-EFC212F8003E"
        );
    }

    #[test]
    fn create_response_without_rsp_shell() {
        let msg = "uuid:11111111-1111-1111-1111-111111111111";
        let env = interpret(Phase::Create, 200, CREATE_WITHOUT_SHELL, msg, ACTION_CREATE).unwrap();
        assert_eq!(
            parse_shell_id(&env).unwrap(),
            "11111111-1111-1111-1111-111111111113"
        );
    }

    #[test]
    fn create_response_omi_prefixes_and_whitespace() {
        let env = interpret(Phase::Create, 200, CREATE_OMI, MSG, ACTION_CREATE).unwrap();
        assert_eq!(
            parse_shell_id(&env).unwrap(),
            "9A153F9E-2B75-4D73-93E6-6B0A5D6DB3A5"
        );
    }

    #[test]
    fn relates_to_must_match() {
        let err = interpret(
            Phase::Create,
            200,
            CREATE_WITH_SHELL,
            "uuid:00000000-0000-0000-0000-000000000000",
            ACTION_CREATE,
        )
        .unwrap_err();
        assert!(matches!(err, WinRmError::Protocol(ref m) if m.contains("RelatesTo")));
        // Case of the UUID is free.
        interpret(
            Phase::Create,
            200,
            CREATE_WITH_SHELL,
            &MSG.to_lowercase(),
            ACTION_CREATE,
        )
        .unwrap();
    }

    #[test]
    fn missing_relates_to_is_a_protocol_error() {
        let doc = CREATE_WITH_SHELL.replace(
            "<a:RelatesTo>uuid:A779D886-33C4-4947-A9DA-2B10E9EC43A4</a:RelatesTo>",
            "",
        );
        let err = interpret(Phase::Create, 200, &doc, MSG, ACTION_CREATE).unwrap_err();
        assert!(matches!(err, WinRmError::Protocol(_)), "{err}");
    }

    #[test]
    fn unexpected_action_is_a_protocol_error() {
        let err = interpret(Phase::Create, 200, CREATE_WITH_SHELL, MSG, ACTION_DELETE).unwrap_err();
        assert!(matches!(err, WinRmError::Protocol(ref m) if m.contains("Action")));
    }

    #[test]
    fn receive_running_then_done() {
        let running = interpret(
            Phase::Receive,
            200,
            &receive_doc(RECEIVE_RUNNING),
            MSG,
            ACTION_RECEIVE,
        )
        .unwrap();
        let c = parse_receive(&running).unwrap();
        assert_eq!(c.stdout, b"hi\n");
        assert!(!c.done);
        assert_eq!(c.exit_code, None);

        let done = interpret(
            Phase::Receive,
            200,
            &receive_doc(RECEIVE_DONE),
            MSG,
            ACTION_RECEIVE,
        )
        .unwrap();
        let c = parse_receive(&done).unwrap();
        assert_eq!(c.stdout, b"hi again\n");
        assert!(c.stderr.is_empty());
        assert!(c.done);
        assert_eq!(c.exit_code, Some(0));
    }

    #[test]
    fn exit_code_above_i32() {
        let doc =
            receive_doc(&RECEIVE_DONE.replace("<rsp:ExitCode>0<", "<rsp:ExitCode>3221225477<"));
        let env = interpret(Phase::Receive, 200, &doc, MSG, ACTION_RECEIVE).unwrap();
        assert_eq!(parse_receive(&env).unwrap().exit_code, Some(3_221_225_477));
    }

    #[test]
    fn bad_base64_is_a_protocol_error() {
        let doc = receive_doc(&RECEIVE_RUNNING.replace("aGk=", "a@k="));
        let env = interpret(Phase::Receive, 200, &doc, MSG, ACTION_RECEIVE).unwrap();
        assert!(matches!(parse_receive(&env), Err(WinRmError::Protocol(_))));
    }

    #[test]
    fn timed_out_fault() {
        let err = interpret(Phase::Receive, 500, TIMED_OUT_FAULT, MSG, ACTION_RECEIVE).unwrap_err();
        assert!(err.is_operation_timeout());
        match err {
            WinRmError::Fault {
                http_status,
                code,
                subcode,
                reason,
                wsman_code,
                machine,
                ..
            } => {
                assert_eq!(http_status, 500);
                assert_eq!(code, "s:Receiver");
                assert_eq!(subcode.as_deref(), Some("w:TimedOut"));
                assert!(reason.starts_with("The WS-Management service cannot complete"));
                assert_eq!(wsman_code, Some(2_150_858_793));
                assert_eq!(machine.as_deref(), Some("192.168.56.11"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn fault_with_wsman_code_and_provider_fault() {
        let err = interpret(
            Phase::Receive,
            500,
            INVALID_SELECTORS_FAULT,
            MSG,
            ACTION_RECEIVE,
        )
        .unwrap_err();
        assert_eq!(err.wsman_code(), Some(2_150_858_843));
        assert!(!err.is_retryable());
        let shown = err.to_string();
        assert!(shown.contains("w:InvalidSelectors"), "{shown}");
        assert!(shown.contains("2150858843"), "{shown}");
    }

    #[test]
    fn must_understand_fault_without_detail() {
        let err = interpret(
            Phase::Create,
            500,
            MUST_UNDERSTAND_FAULT,
            MSG,
            ACTION_CREATE,
        )
        .unwrap_err();
        match err {
            WinRmError::Fault {
                code,
                subcode,
                reason,
                wsman_code,
                ..
            } => {
                assert_eq!(code, "s:MustUnderstand");
                assert_eq!(subcode, None);
                assert_eq!(reason, "Test reason.");
                assert_eq!(wsman_code, None);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn wmi_error_code() {
        let doc = r#"<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope"><s:Body><s:Fault><s:Code><s:Value>s:Receiver</s:Value><s:Subcode><s:Value>w:InternalError</s:Value></s:Subcode></s:Code><s:Reason><s:Text>quota</s:Text></s:Reason><s:Detail><p:MSFT_WmiError xmlns:p="http://schemas.microsoft.com/wbem/wsman/1/wmi/root/cimv2/MSFT_WmiError"><p:error_Code>2150859174</p:error_Code></p:MSFT_WmiError></s:Detail></s:Fault></s:Body></s:Envelope>"#;
        let err = interpret(Phase::Create, 500, doc, MSG, ACTION_CREATE).unwrap_err();
        assert!(matches!(
            err,
            WinRmError::Fault {
                wmi_code: Some(2_150_859_174),
                ..
            }
        ));
    }

    #[test]
    fn non_xml_error_body_is_http_error() {
        let err = interpret(
            Phase::Create,
            503,
            "Service Unavailable",
            MSG,
            ACTION_CREATE,
        )
        .unwrap_err();
        assert!(matches!(err, WinRmError::Http { status: 503, .. }));
        assert!(err.is_retryable());
        let err = interpret(Phase::Create, 200, "hello", MSG, ACTION_CREATE).unwrap_err();
        assert!(matches!(err, WinRmError::Protocol(_)));
    }

    #[test]
    fn requests_are_well_formed_and_escaped() {
        let c = ctx();
        for xml in [
            create_shell(&c, CODEPAGE_UTF8),
            command(&c, "SHELL", "cmd /c echo a & b <c>", None),
            receive(&c, "SHELL", "CMD\"1"),
            signal_terminate(&c, "SHELL", "CMD"),
            delete_shell(&c, "SHELL"),
        ] {
            let env = Envelope::parse(&xml).expect("our own envelope parses");
            let header = env.header().unwrap();
            assert_eq!(
                header.child(ns::ADDRESSING, "MessageID").unwrap().trimmed(),
                MSG
            );
            assert_eq!(
                header.child(ns::WSMAN, "ResourceURI").unwrap().trimmed(),
                RESOURCE_URI_CMD
            );
            assert_eq!(
                header
                    .child(ns::WSMAN, "OperationTimeout")
                    .unwrap()
                    .trimmed(),
                "PT20S"
            );
        }
        let env = Envelope::parse(&command(&c, "SHELL", "cmd /c echo a & b <c>", None)).unwrap();
        assert_eq!(
            env.body().unwrap().find(ns::SHELL, "Command").unwrap().text,
            "cmd /c echo a & b <c>"
        );
        let env = Envelope::parse(&create_shell(&c, CODEPAGE_UTF8)).unwrap();
        let opts: Vec<_> = env
            .header()
            .unwrap()
            .find_all(ns::WSMAN, "Option")
            .into_iter()
            .map(|o| (o.attr("Name").unwrap().to_owned(), o.text.clone()))
            .collect();
        assert!(opts.contains(&("WINRS_CODEPAGE".into(), "65001".into())));
        assert!(opts.contains(&("WINRS_NOPROFILE".into(), "TRUE".into())));
        let env = Envelope::parse(&delete_shell(&c, "SHELL")).unwrap();
        assert!(env.body().unwrap().children.is_empty());
    }

    #[test]
    fn durations() {
        assert_eq!(iso_duration(Duration::from_secs(20)), "PT20S");
        assert_eq!(iso_duration(Duration::from_millis(1500)), "PT1.500S");
    }

    #[test]
    fn entities_and_char_refs_in_text() {
        let el = parse_document("<a>x &amp; &lt;y&gt; &#65;&#x42;</a>").unwrap();
        assert_eq!(el.text, "x & <y> AB");
        assert!(parse_document("<a><b></a>").is_err());
        assert!(parse_document("").is_err());
    }
}
