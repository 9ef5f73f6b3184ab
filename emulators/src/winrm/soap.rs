//! SOAP and WS-Management for the WinRM emulator: the namespaces, actions and fault codes,
//! parsing and validating a request envelope ([`Request`]) as strictly as a Windows host does,
//! and rendering the answers — responses and `s:Fault`s with `f:WSManFault` ([`FaultSpec`],
//! [`Reply`]).

use std::time::Duration;

use super::xml::{Element, esc, parse_document};

pub(super) const NS_SOAP: &str = "http://www.w3.org/2003/05/soap-envelope";
pub(super) const NS_SOAP11: &str = "http://schemas.xmlsoap.org/soap/envelope/";
pub(super) const NS_ADDRESSING: &str = "http://schemas.xmlsoap.org/ws/2004/08/addressing";
pub(super) const NS_WSMAN: &str = "http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd";
pub(super) const NS_WSMAN_MS: &str = "http://schemas.microsoft.com/wbem/wsman/1/wsman.xsd";
pub(super) const NS_SHELL: &str = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell";
pub(super) const NS_TRANSFER: &str = "http://schemas.xmlsoap.org/ws/2004/09/transfer";
pub(super) const NS_FAULT: &str = "http://schemas.microsoft.com/wbem/wsman/1/wsmanfault";

pub(super) const RESOURCE_URI_CMD: &str =
    "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/cmd";
pub(super) const ACTION_CREATE: &str = "http://schemas.xmlsoap.org/ws/2004/09/transfer/Create";
pub(super) const ACTION_DELETE: &str = "http://schemas.xmlsoap.org/ws/2004/09/transfer/Delete";
pub(super) const ACTION_COMMAND: &str =
    "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/Command";
pub(super) const ACTION_RECEIVE: &str =
    "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/Receive";
pub(super) const ACTION_SEND: &str = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/Send";
pub(super) const ACTION_SIGNAL: &str =
    "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/Signal";
pub(super) const ACTION_FAULT: &str = "http://schemas.dmtf.org/wbem/wsman/1/wsman/fault";
pub(super) const ADDRESS_ANONYMOUS: &str =
    "http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous";
pub(super) const STATE_RUNNING: &str =
    "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/CommandState/Running";
pub(super) const STATE_DONE: &str =
    "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/CommandState/Done";
pub(super) const SIGNAL_PREFIX: &str =
    "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/signal/";

pub(super) const SOAP_CONTENT_TYPE: &str = "application/soap+xml;charset=UTF-8";

/// WSManFault codes (winrm.md §4.2).
pub const WSMAN_TIMED_OUT: u32 = 2_150_858_793;
pub const WSMAN_INVALID_SELECTORS: u32 = 2_150_858_843;
pub const WSMAN_SCHEMA_VALIDATION: u32 = 2_150_858_817;
pub const WSMAN_INVALID_PARAMETER: u32 = 87;
pub const WSMAN_FILENAME_TOO_LONG: u32 = 2_147_942_606;

/// The host's MaxTimeoutms default; OperationTimeout above it is refused by Windows, capped here.
const MAX_OPERATION_TIMEOUT: Duration = Duration::from_secs(60);

// ---------------------------------------------------------------------------------------------
// Request parsing and validation.

/// A validated request envelope.
pub(super) struct Request {
    pub(super) message_id: String,
    pub(super) action: String,
    pub(super) shell_id: Option<String>,
    options: Vec<(String, String)>,
    pub(super) operation_timeout: Duration,
    pub(super) body: Element,
}

impl Request {
    pub(super) fn parse(xml: &str) -> Result<Request, Box<FaultSpec>> {
        let root = parse_document(xml).map_err(|e| {
            Box::new(FaultSpec::schema(
                None,
                format!("The WS-Management service cannot process the request because the XML is invalid: {e}"),
            ))
        })?;
        if root.is(NS_SOAP11, "Envelope") {
            return Err(Box::new(FaultSpec {
                code: "s:VersionMismatch",
                ..FaultSpec::schema(None, "SOAP 1.1 envelopes are not supported.".into())
            }));
        }
        if !root.is(NS_SOAP, "Envelope") {
            return Err(Box::new(FaultSpec::schema(
                None,
                "The root element is not a SOAP 1.2 Envelope.".into(),
            )));
        }
        let header = root.child(NS_SOAP, "Header").ok_or_else(|| {
            Box::new(FaultSpec::schema(
                None,
                "The envelope has no Header.".into(),
            ))
        })?;
        let body = root
            .child(NS_SOAP, "Body")
            .ok_or_else(|| Box::new(FaultSpec::schema(None, "The envelope has no Body.".into())))?
            .clone();

        let message_id = header
            .child(NS_ADDRESSING, "MessageID")
            .map(|m| m.trimmed().to_owned())
            .filter(|m| !m.is_empty());
        let Some(message_id) = message_id else {
            return Err(Box::new(FaultSpec {
                subcode: Some("a:MessageInformationHeaderRequired"),
                ..FaultSpec::schema(None, "The request has no MessageID header.".into())
            }));
        };
        let relates = Some(message_id.clone());

        for block in &header.children {
            if must_understand(block) && !understood(block) {
                return Err(Box::new(FaultSpec {
                    relates_to: relates,
                    code: "s:MustUnderstand",
                    subcode: None,
                    reason: format!(
                        "The WS-Management service cannot process a SOAP header in the request that is marked as mustUnderstand: {}",
                        block.local
                    ),
                    wsman_code: None,
                    not_understood: Some((
                        block.ns.clone().unwrap_or_default(),
                        block.local.clone(),
                    )),
                }));
            }
        }

        let action = header
            .child(NS_ADDRESSING, "Action")
            .map(|a| a.trimmed().to_owned())
            .unwrap_or_default();
        if ![
            ACTION_CREATE,
            ACTION_DELETE,
            ACTION_COMMAND,
            ACTION_RECEIVE,
            ACTION_SEND,
            ACTION_SIGNAL,
        ]
        .contains(&action.as_str())
        {
            return Err(Box::new(FaultSpec {
                subcode: Some("a:ActionNotSupported"),
                ..FaultSpec::schema(
                    relates,
                    format!("The WS-Management service does not support the action {action:?}."),
                )
            }));
        }

        let resource = header
            .child(NS_WSMAN, "ResourceURI")
            .map(|r| r.trimmed().to_owned())
            .unwrap_or_default();
        if !resource.eq_ignore_ascii_case(RESOURCE_URI_CMD) {
            return Err(Box::new(FaultSpec {
                subcode: Some("w:DestinationUnreachable"),
                ..FaultSpec::schema(
                    relates,
                    format!(
                        "The WS-Management service cannot process the request because the resource URI {resource:?} is not supported here."
                    ),
                )
            }));
        }

        let mut operation_timeout = MAX_OPERATION_TIMEOUT;
        if let Some(t) = header.child(NS_WSMAN, "OperationTimeout") {
            match parse_iso_duration(t.trimmed()) {
                Some(d) => operation_timeout = d.min(MAX_OPERATION_TIMEOUT),
                None => {
                    return Err(Box::new(FaultSpec {
                        subcode: Some("w:InvalidParameter"),
                        ..FaultSpec::schema(
                            relates,
                            format!(
                                "The OperationTimeout {:?} is not a valid duration.",
                                t.trimmed()
                            ),
                        )
                    }));
                }
            }
        }
        if let Some(m) = header.child(NS_WSMAN, "MaxEnvelopeSize")
            && m.trimmed().parse::<u32>().is_err()
        {
            return Err(Box::new(FaultSpec::schema(
                relates,
                "MaxEnvelopeSize is not a number.".into(),
            )));
        }

        let shell_id = header
            .child(NS_WSMAN, "SelectorSet")
            .and_then(|set| {
                set.children
                    .iter()
                    .find(|s| s.is(NS_WSMAN, "Selector") && s.attr("Name") == Some("ShellId"))
            })
            .map(|s| s.trimmed().to_owned());
        let options = header
            .child(NS_WSMAN, "OptionSet")
            .map(|set| {
                set.children
                    .iter()
                    .filter(|o| o.is(NS_WSMAN, "Option"))
                    .map(|o| {
                        (
                            o.attr("Name").unwrap_or("").to_owned(),
                            o.trimmed().to_owned(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();

        Ok(Request {
            message_id,
            action,
            shell_id,
            options,
            operation_timeout,
            body,
        })
    }

    pub(super) fn option(&self, name: &str) -> Option<&str> {
        self.options
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// `mustUnderstand="true"` (or `1`), unprefixed (pywinrm) or SOAP-prefixed (pypsrp).
fn must_understand(block: &Element) -> bool {
    block.attrs.iter().any(|(ns, local, value)| {
        local == "mustUnderstand"
            && (ns.is_none() || ns.as_deref() == Some(NS_SOAP))
            && matches!(value.trim().to_ascii_lowercase().as_str(), "true" | "1")
    })
}

/// The header blocks a Windows host processes.
fn understood(block: &Element) -> bool {
    const KNOWN: &[(&str, &str)] = &[
        (NS_ADDRESSING, "To"),
        (NS_ADDRESSING, "ReplyTo"),
        (NS_ADDRESSING, "MessageID"),
        (NS_ADDRESSING, "Action"),
        (NS_WSMAN, "ResourceURI"),
        (NS_WSMAN, "MaxEnvelopeSize"),
        (NS_WSMAN, "Locale"),
        (NS_WSMAN, "OperationTimeout"),
        (NS_WSMAN, "SelectorSet"),
        (NS_WSMAN, "OptionSet"),
        (NS_WSMAN_MS, "DataLocale"),
        (NS_WSMAN_MS, "SessionId"),
        (NS_WSMAN_MS, "OperationID"),
        (NS_WSMAN_MS, "SequenceId"),
    ];
    KNOWN.iter().any(|(ns, local)| block.is(ns, local))
}

/// `PT20S`, `PT60.000S`, `PT1M30S`, `P0DT0H0M5S`.
fn parse_iso_duration(s: &str) -> Option<Duration> {
    let rest = s.strip_prefix('P')?;
    let (date, time) = match rest.split_once('T') {
        Some((d, t)) => (d, t),
        None => (rest, ""),
    };
    let mut secs = 0f64;
    let mut num = String::new();
    for ch in date.chars() {
        match ch {
            '0'..='9' | '.' => num.push(ch),
            'D' => secs += num.parse::<f64>().ok()? * 86400.0,
            _ => return None,
        }
        if ch == 'D' {
            num.clear();
        }
    }
    if !num.is_empty() {
        return None;
    }
    for ch in time.chars() {
        let unit = match ch {
            '0'..='9' | '.' => {
                num.push(ch);
                continue;
            }
            'H' => 3600.0,
            'M' => 60.0,
            'S' => 1.0,
            _ => return None,
        };
        secs += num.parse::<f64>().ok()? * unit;
        num.clear();
    }
    if !num.is_empty() || !secs.is_finite() || secs < 0.0 {
        return None;
    }
    Some(Duration::from_secs_f64(secs))
}

/// What an operation answers: a response, a fault, or a `w:TimedOut` fault held first.
pub(super) enum Reply {
    Ok(String),
    Fault(FaultSpec),
    TimedOut { fault: FaultSpec, hold: Duration },
}

impl Reply {
    pub(super) fn wsman_code(&self) -> Option<u32> {
        match self {
            Reply::Ok(_) => None,
            Reply::Fault(f) | Reply::TimedOut { fault: f, .. } => f.wsman_code,
        }
    }

    pub(super) fn status(&self) -> u16 {
        match self {
            Reply::Ok(_) => 200,
            _ => 500,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Response rendering.

fn new_message_id() -> String {
    format!("uuid:{}", uuid::Uuid::new_v4().to_string().to_uppercase())
}

fn envelope_open() -> String {
    format!(
        r#"<s:Envelope xml:lang="en-US" xmlns:s="{NS_SOAP}" xmlns:a="{NS_ADDRESSING}" xmlns:x="{NS_TRANSFER}" xmlns:w="{NS_WSMAN}" xmlns:rsp="{NS_SHELL}" xmlns:p="{NS_WSMAN_MS}">"#
    )
}

pub(super) fn response(action: &str, relates_to: &str, body: &str) -> String {
    let body = if body.is_empty() {
        "<s:Body></s:Body>".to_owned()
    } else {
        format!("<s:Body>{body}</s:Body>")
    };
    format!(
        "{}<s:Header><a:Action>{action}</a:Action><a:MessageID>{}</a:MessageID><a:To>{ADDRESS_ANONYMOUS}</a:To><a:RelatesTo>{}</a:RelatesTo></s:Header>{body}</s:Envelope>",
        envelope_open(),
        new_message_id(),
        esc(relates_to)
    )
}

/// A fault to send: SOAP code and subcode, reason, WSManFault code.
#[derive(Debug, Clone)]
pub(super) struct FaultSpec {
    pub(super) relates_to: Option<String>,
    pub(super) code: &'static str,
    pub(super) subcode: Option<&'static str>,
    pub(super) reason: String,
    pub(super) wsman_code: Option<u32>,
    /// For `s:MustUnderstand`: the header block not understood (namespace, local name).
    pub(super) not_understood: Option<(String, String)>,
}

impl FaultSpec {
    /// A malformed request. The notes do not record the exact code Windows uses for every such
    /// case, so they all carry SchemaValidationError's code with a subcode naming the problem.
    pub(super) fn schema(relates_to: Option<String>, reason: String) -> Self {
        Self {
            relates_to,
            code: "s:Sender",
            subcode: Some("w:SchemaValidationError"),
            reason,
            wsman_code: Some(WSMAN_SCHEMA_VALIDATION),
            not_understood: None,
        }
    }

    pub(super) fn invalid_selectors(message_id: &str, reason: String) -> Self {
        Self {
            relates_to: Some(message_id.to_owned()),
            code: "s:Sender",
            subcode: Some("w:InvalidSelectors"),
            reason,
            wsman_code: Some(WSMAN_INVALID_SELECTORS),
            not_understood: None,
        }
    }

    pub(super) fn invalid_parameter(message_id: &str, reason: String) -> Self {
        Self {
            relates_to: Some(message_id.to_owned()),
            code: "s:Sender",
            subcode: Some("w:InvalidParameter"),
            reason,
            wsman_code: Some(WSMAN_INVALID_PARAMETER),
            not_understood: None,
        }
    }

    pub(super) fn render(&self, machine: &str) -> String {
        let mut header = format!(
            "<s:Header><a:Action>{ACTION_FAULT}</a:Action><a:MessageID>{}</a:MessageID><a:To>{ADDRESS_ANONYMOUS}</a:To>",
            new_message_id()
        );
        if let Some(r) = &self.relates_to {
            header.push_str(&format!("<a:RelatesTo>{}</a:RelatesTo>", esc(r)));
        }
        if let Some((ns, local)) = &self.not_understood {
            header.push_str(&format!(
                r#"<s:NotUnderstood qname="nu:{}" xmlns:nu="{}"/>"#,
                esc(local),
                esc(ns)
            ));
        }
        header.push_str("</s:Header>");
        let mut code = format!("<s:Code><s:Value>{}</s:Value>", self.code);
        if let Some(sub) = self.subcode {
            code.push_str(&format!("<s:Subcode><s:Value>{sub}</s:Value></s:Subcode>"));
        }
        code.push_str("</s:Code>");
        let detail = match self.wsman_code {
            Some(c) => format!(
                r#"<s:Detail><f:WSManFault xmlns:f="{NS_FAULT}" Code="{c}" Machine="{}"><f:Message>{}</f:Message></f:WSManFault></s:Detail>"#,
                esc(machine),
                esc(&self.reason)
            ),
            None => String::new(),
        };
        format!(
            r#"{}{header}<s:Body><s:Fault>{code}<s:Reason><s:Text xml:lang="en-US">{}</s:Text></s:Reason>{detail}</s:Fault></s:Body></s:Envelope>"#,
            envelope_open(),
            esc(&self.reason)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_iso_duration("PT20S"), Some(Duration::from_secs(20)));
        assert_eq!(
            parse_iso_duration("PT60.000S"),
            Some(Duration::from_secs(60))
        );
        assert_eq!(
            parse_iso_duration("PT1.5S"),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(parse_iso_duration("PT1M30S"), Some(Duration::from_secs(90)));
        assert_eq!(
            parse_iso_duration("P0DT0H0M5S"),
            Some(Duration::from_secs(5))
        );
        assert_eq!(parse_iso_duration("20"), None);
        assert_eq!(parse_iso_duration("PT20"), None);
    }

    #[test]
    fn must_understand_with_and_without_prefix() {
        let doc = format!(
            r#"<env:Envelope xmlns:env="{NS_SOAP}" xmlns:w="{NS_WSMAN}" xmlns:z="urn:zzz"><env:Header><w:ResourceURI mustUnderstand="true">x</w:ResourceURI><z:Custom env:mustUnderstand="1"/><z:Other mustUnderstand="false"/></env:Header><env:Body/></env:Envelope>"#
        );
        let root = parse_document(&doc).unwrap();
        let h = root.child(NS_SOAP, "Header").unwrap();
        assert!(must_understand(&h.children[0]) && understood(&h.children[0]));
        assert!(must_understand(&h.children[1]) && !understood(&h.children[1]));
        assert!(!must_understand(&h.children[2]));
    }
}
