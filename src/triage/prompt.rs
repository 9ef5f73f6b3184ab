//! Prompt templates: loaded from `prompts/` (or the embedded copies, so the binary works from any
//! directory), compiled once at start-up, rendered with minijinja.
//!
//! A broken template fails start-up with its file name and line, not the first alert.

use std::path::Path;

use anyhow::Context;
use minijinja::Environment;
use serde_json::json;

use crate::domain::Alert;

const EMBEDDED: [(&str, &str); 3] = [
    ("triage.md.j2", include_str!("../../prompts/triage.md.j2")),
    ("handler.md.j2", include_str!("../../prompts/handler.md.j2")),
    (
        "followup.md.j2",
        include_str!("../../prompts/followup.md.j2"),
    ),
];

/// The compiled prompt templates.
pub struct Prompts {
    env: Environment<'static>,
}

impl Prompts {
    /// The templates shipped inside the binary.
    pub fn embedded() -> anyhow::Result<Self> {
        let mut env = Environment::new();
        for (name, src) in EMBEDDED {
            env.add_template_owned(name.to_string(), src.to_string())
                .with_context(|| format!("prompt template {name} does not compile"))?;
        }
        Ok(Self { env })
    }

    /// Templates from a directory; every expected file must exist there.
    pub fn from_dir(dir: &Path) -> anyhow::Result<Self> {
        let mut env = Environment::new();
        for (name, _) in EMBEDDED {
            let path = dir.join(name);
            let src = std::fs::read_to_string(&path)
                .with_context(|| format!("cannot read prompt template {}", path.display()))?;
            env.add_template_owned(name.to_string(), src)
                .with_context(|| format!("prompt template {} does not compile", path.display()))?;
        }
        Ok(Self { env })
    }

    fn render(&self, name: &str, ctx: serde_json::Value) -> anyhow::Result<String> {
        let tmpl = self.env.get_template(name)?;
        tmpl.render(minijinja::value::Serde(&ctx))
            .with_context(|| format!("rendering prompt {name}"))
    }

    /// The triage prompt: the alert JSON (fenced, labelled untrusted) and the answer format.
    pub fn triage(&self, alert: &Alert) -> anyhow::Result<String> {
        let alert_json = serde_json::to_string_pretty(&alert.raw)?;
        self.render(
            "triage.md.j2",
            json!({
                "alert_json": alert_json,
                "host_name": alert.host_name,
                "host_ip": alert.primary_ip(),
                "os_family": alert.os_family,
                "rule_name": alert.rule_name,
            }),
        )
    }

    /// "Who handles {os} alerts? Respond with just their name."
    pub fn handler_question(&self, alert: &Alert) -> anyhow::Result<String> {
        Ok(self
            .render("handler.md.j2", json!({ "os_family": alert.os_family }))?
            .trim()
            .to_string())
    }

    /// A follow-up question from the Slack thread.
    pub fn followup(&self, alert: &Alert, question: &str) -> anyhow::Result<String> {
        self.render(
            "followup.md.j2",
            json!({ "alert_id": alert.id.0, "host_name": alert.host_name, "question": question }),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_templates_render_with_the_alert_fenced() {
        let p = Prompts::embedded().unwrap();
        let raw = json!({"@timestamp":"2025-01-01T00:00:00Z","kibana.alert.uuid":"a1","kibana.alert.rule.name":"R","kibana.alert.severity":"critical","host":{"name":"WS1","ip":["10.0.0.9"],"os":{"family":"windows"}}});
        let alert = Alert::from_document("a1", "idx", &raw, "@timestamp").unwrap();
        let t = p.triage(&alert).unwrap();
        assert!(t.contains("BEGIN ALERT (untrusted data)"));
        assert!(t.contains("\"kibana.alert.uuid\": \"a1\""));
        assert!(t.contains("10.0.0.9"));
        assert!(t.contains("Investigation Commands:") && t.contains("Remediation Commands:"));
        assert_eq!(
            p.handler_question(&alert).unwrap(),
            "Who handles windows alerts? Respond with just their name."
        );
    }

    #[test]
    fn broken_template_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        for (name, src) in EMBEDDED {
            std::fs::write(dir.path().join(name), src).unwrap();
        }
        std::fs::write(dir.path().join("handler.md.j2"), "line one\n{% if %}").unwrap();
        let err = format!("{:#}", Prompts::from_dir(dir.path()).err().unwrap());
        assert!(err.contains("handler.md.j2"), "{err}");
        assert!(err.contains("handler.md.j2:2"), "the line is named: {err}");
    }
}
