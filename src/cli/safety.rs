//! `triage-bot safety check [--alert ALERT.json] [--kind K] [--json] COMMAND…`: judges commands
//! with the same safety gate and the same `SAFETY_*` settings as the service, and prints each
//! verdict with its reasons and the effect of every statement — so an operator can see why a
//! command was blocked, or try a rule before deploying it. It reads nothing but the alert file
//! and the environment, and runs nothing.

use anyhow::Context;
use serde_json::json;

use crate::config::{Env, SafetyPolicy};
use crate::domain::{Alert, CommandKind, Risk};
use crate::pipeline::triage::safety::{AlertFacts, Assessment, assess};

#[derive(clap::Subcommand, Debug)]
pub enum SafetyCommand {
    /// Judge commands and print the verdict, the reasons and each statement's effect.
    Check(CheckArgs),
}

#[derive(clap::Args, Debug, Clone)]
pub struct CheckArgs {
    /// The alert the commands answer (an alert document or a search hit). Without it, every
    /// host, address, user and path a command names counts as one the alert does not contain.
    #[arg(long)]
    pub alert: Option<String>,
    /// `investigation`, `remediation`, or `auto` (as remediation, or as investigation when the
    /// command only reads — so the investigation allow list applies to it).
    #[arg(long, default_value = "auto")]
    pub kind: String,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
    /// The commands, one per argument (quote each).
    #[arg(required = true)]
    pub commands: Vec<String>,
}

pub fn run(action: SafetyCommand) -> anyhow::Result<()> {
    let SafetyCommand::Check(args) = action;
    let lookup = |k: &str| std::env::var(k).ok();
    let policy = SafetyPolicy::from_env(&Env { lookup: &lookup })?;
    let alert = match &args.alert {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read the alert file {path}"))?;
            super::replay::read_alert(&text, "replay")?
        }
        None => no_alert()?,
    };
    let facts = AlertFacts::new(&alert);
    let kind = match args.kind.to_ascii_lowercase().as_str() {
        "auto" => None,
        k => Some(CommandKind::parse(k).ok_or_else(|| {
            anyhow::anyhow!("--kind: expected investigation, remediation or auto, got {k:?}")
        })?),
    };
    let mut out = Vec::new();
    for command in &args.commands {
        let (kind, a) = judge(&policy, &facts, kind, command);
        out.push((command, kind, a));
    }
    if args.json {
        let v: Vec<_> = out
            .iter()
            .map(|(c, k, a)| {
                json!({
                    "command": c,
                    "kind": k.as_str(),
                    "risk": a.risk.as_str(),
                    "reasons": a.reasons,
                    "statements": a.statements.iter().map(|(t, e)| json!({"text": t, "effect": e.label()})).collect::<Vec<_>>(),
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    if args.alert.is_none() {
        println!(
            "(no --alert: every host, address, user and path counts as unknown to the alert)\n"
        );
    }
    for (c, k, a) in &out {
        println!("{:<13} [{}] {c}", a.risk.label(), k.as_str());
        for r in &a.reasons {
            println!("  - {r}");
        }
        if a.statements.len() > 1 {
            println!("  statements:");
            for (t, e) in &a.statements {
                println!("    {:<32} {t}", e.label());
            }
        }
        println!();
    }
    Ok(())
}

/// The verdict, with the kind it was judged as.
fn judge(
    policy: &SafetyPolicy,
    facts: &AlertFacts,
    kind: Option<CommandKind>,
    command: &str,
) -> (CommandKind, Assessment) {
    match kind {
        Some(k) => (k, assess(policy, facts, k, command)),
        None => {
            let a = assess(policy, facts, CommandKind::Remediation, command);
            if a.risk == Risk::ReadOnly {
                let k = CommandKind::Investigation;
                (k, assess(policy, facts, k, command))
            } else {
                (CommandKind::Remediation, a)
            }
        }
    }
}

/// An alert that mentions nothing but a host called `localhost`.
fn no_alert() -> anyhow::Result<Alert> {
    let doc = json!({
        "@timestamp": chrono::Utc::now().to_rfc3339(),
        "kibana.alert.uuid": "safety-check",
        "kibana.alert.rule.name": "(no alert given)",
        "host": {"name": "localhost"},
    });
    Ok(Alert::from_document(
        "safety-check",
        "cli",
        &doc,
        "@timestamp",
    )?)
}
