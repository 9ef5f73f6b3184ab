//! Property tests of the answer parser and the safety gate: they never panic on any input, and
//! a well-formed answer in any of the styles models write is read back exactly.
//! (The same entry points are fuzzed by `fuzz/fuzz_targets/*.rs` with `cargo +nightly fuzz`.)

use proptest::prelude::*;
use triage_bot::domain::{Alert, CommandKind, ProposedCommand};
use triage_bot::pipeline::triage::parser::parse_answer;
use triage_bot::pipeline::triage::safety::{SafetyPolicy, classify_all};

/// A plausible PowerShell command: a cmdlet and arguments, no markup characters.
fn command() -> impl Strategy<Value = String> {
    (
        prop::sample::select(vec![
            "Get-Process",
            "Get-Service",
            "Stop-Process",
            "Remove-Item",
            "Get-WinEvent",
            "Get-ItemProperty",
        ]),
        prop::collection::vec("[A-Za-z0-9:\\\\'=$_é]{1,12}", 0..4),
    )
        .prop_map(|(c, args)| {
            let mut s = c.to_string();
            for (i, a) in args.iter().enumerate() {
                s.push_str(&format!(" -P{i} {a}"));
            }
            s
        })
}

#[derive(Debug, Clone)]
struct Style {
    heading: usize,
    item: usize,
    backticks: bool,
    crlf: bool,
    fenced: bool,
    trailer: bool,
}

fn style() -> impl Strategy<Value = Style> {
    (
        0..5usize,
        0..4usize,
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(heading, item, backticks, crlf, fenced, trailer)| Style {
            heading,
            item,
            backticks,
            crlf,
            fenced,
            trailer,
        })
}

fn render(summary: &str, inv: &[String], rem: &[String], st: &Style) -> String {
    let heading = |name: &str| match st.heading {
        0 => format!("{name}:"),
        1 => format!("**{name}:**"),
        2 => format!("### {name}"),
        3 => name.to_lowercase(),
        _ => format!("## {}", name.to_uppercase()),
    };
    let list = |cmds: &[String]| -> String {
        if st.fenced {
            return format!("```powershell\n{}\n```", cmds.join("\n"));
        }
        cmds.iter()
            .enumerate()
            .map(|(i, c)| {
                let c = if st.backticks {
                    format!("`{c}`")
                } else {
                    c.clone()
                };
                match st.item {
                    0 => format!("{}. {c}", i + 1),
                    1 => format!("{}) {c}", i + 1),
                    2 => format!("- {c}"),
                    _ => format!("{}. {c} — explains what it shows", i + 1),
                }
            })
            .collect::<Vec<_>>()
            .join("\n")
    };
    let mut text = format!(
        "{summary}\n\n{}\n{}\n\n{}\n{}\n",
        heading("Investigation Commands"),
        list(inv),
        heading("Remediation Commands"),
        list(rem)
    );
    if st.trailer {
        text.push_str("\n### Notes\n- Do not reboot before imaging\n1. Keep the evidence\n");
    }
    if st.crlf {
        text = text.replace('\n', "\r\n");
    }
    text
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, .. ProptestConfig::default() })]

    #[test]
    fn parse_never_panics(s in "\\PC{0,400}") {
        let t = parse_answer(&s);
        for c in t.investigation.iter().chain(&t.remediation) {
            prop_assert!(!c.trim().is_empty());
        }
    }

    #[test]
    fn parse_never_panics_on_answer_like_noise(
        parts in prop::collection::vec(prop::sample::select(vec![
            "Investigation Commands:", "**Remediation Commands:**", "### Notes", "```", "~~~",
            "1. ", "2) ", "- ", "`", "{", "}", "|", "\r\n", "\n", " — ", "é", "{reference(x1)}",
            "Get-Process", "Summary:", "    ", "\r", "**", "#",
        ]), 0..60)
    ) {
        let _ = parse_answer(&parts.concat());
    }

    #[test]
    fn well_formed_answers_round_trip(
        inv in prop::collection::vec(command(), 1..6),
        rem in prop::collection::vec(command(), 1..4),
        st in style(),
    ) {
        let text = render("The host WS1 is compromised.", &inv, &rem, &st);
        let t = parse_answer(&text);
        prop_assert_eq!(&t.investigation, &inv, "{}", text);
        prop_assert_eq!(&t.remediation, &rem, "{}", text);
        prop_assert_eq!(t.summary, "The host WS1 is compromised.");
        prop_assert!(t.warnings.is_empty(), "{:?}", t.warnings);
    }

    #[test]
    fn classify_never_panics(text in "\\PC{0,300}", remediation in any::<bool>()) {
        let raw = serde_json::json!({"@timestamp": "2025-01-01T00:00:00Z", "kibana.alert.uuid": "a",
            "kibana.alert.rule.name": "R", "host": {"name": "WS1"}, "process": {"command_line": text.clone()}});
        let alert = Alert::from_document("a", "i", &raw, "@timestamp").unwrap();
        let kind = if remediation { CommandKind::Remediation } else { CommandKind::Investigation };
        let mut cmds = [ProposedCommand { seq: 1, kind, text, risk: kind.default_risk(), reasons: vec![] }];
        classify_all(&SafetyPolicy { deny: vec!["x y".into(), "iex".into()], ..SafetyPolicy::default() }, &alert, &mut cmds);
    }
}
