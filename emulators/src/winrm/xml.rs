//! XML for the WinRM emulator: escaping text for the answers, and the small namespace-aware
//! element tree requests are parsed into.

use quick_xml::XmlVersion;
use quick_xml::events::Event;
use quick_xml::name::ResolveResult;
use quick_xml::reader::NsReader;

pub(super) fn esc(s: &str) -> std::borrow::Cow<'_, str> {
    quick_xml::escape::escape(s)
}

// ---------------------------------------------------------------------------------------------
// A small namespace-aware XML tree (the emulator parses requests independently of the client's
// parser, so a shared bug cannot hide on both sides).

#[derive(Debug, Clone, Default)]
pub(super) struct Element {
    pub(super) ns: Option<String>,
    pub(super) local: String,
    pub(super) attrs: Vec<(Option<String>, String, String)>,
    pub(super) children: Vec<Element>,
    pub(super) text: String,
}

impl Element {
    pub(super) fn is(&self, ns: &str, local: &str) -> bool {
        self.local == local && self.ns.as_deref() == Some(ns)
    }

    pub(super) fn child(&self, ns: &str, local: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.is(ns, local))
    }

    pub(super) fn attr(&self, local: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(ns, l, _)| ns.is_none() && l == local)
            .map(|(_, _, v)| v.as_str())
    }

    pub(super) fn trimmed(&self) -> &str {
        self.text.trim()
    }
}

fn ns_string(r: ResolveResult<'_>) -> Option<String> {
    match r {
        ResolveResult::Bound(ns) => Some(AsRef::<str>::as_ref(&ns).to_owned()),
        _ => None,
    }
}

pub(super) fn parse_document(xml: &str) -> Result<Element, String> {
    let mut reader = NsReader::from_str(xml);
    let mut stack: Vec<Element> = Vec::new();
    let mut root: Option<Element> = None;
    loop {
        let (res, event) = reader.read_resolved_event().map_err(|e| e.to_string())?;
        let finished = match event {
            Event::Start(ref start) | Event::Empty(ref start) => {
                if let ResolveResult::Unknown(prefix) = &res {
                    return Err(format!("undeclared namespace prefix {prefix:?}"));
                }
                let mut el = Element {
                    ns: ns_string(res),
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
                        ns_string(ans),
                        AsRef::<str>::as_ref(&alocal).to_owned(),
                        value.into_owned(),
                    ));
                }
                if matches!(event, Event::Start(_)) {
                    stack.push(el);
                    None
                } else {
                    Some(el)
                }
            }
            Event::End(_) => Some(stack.pop().ok_or("unbalanced end tag")?),
            Event::Text(t) => {
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(&t.xml10_content());
                }
                None
            }
            Event::CData(c) => {
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(&c.xml10_content());
                }
                None
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
                None
            }
            Event::Eof => break,
            Event::Comment(_) | Event::Decl(_) | Event::PI(_) | Event::DocType(_) => None,
        };
        if let Some(el) = finished {
            match stack.last_mut() {
                Some(parent) => parent.children.push(el),
                None if root.is_none() => root = Some(el),
                None => return Err("more than one root element".into()),
            }
        }
    }
    if !stack.is_empty() {
        return Err("document ended inside an element".into());
    }
    root.ok_or_else(|| "empty document".into())
}
