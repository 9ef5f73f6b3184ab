//! `triage-bot parse`: parse an assistant answer (a file, or `-` for stdin) and print the result
//! as JSON — to see how the parser reads a model's answer.

use std::io::Read;

pub fn run(file: &str) -> anyhow::Result<()> {
    let mut text = String::new();
    if file == "-" {
        std::io::stdin().read_to_string(&mut text)?;
    } else {
        text = std::fs::read_to_string(file)
            .map_err(|e| anyhow::anyhow!("cannot read {file}: {e}"))?;
    }
    let triage = crate::pipeline::triage::parser::parse_answer(&text);
    println!("{}", serde_json::to_string_pretty(&triage)?);
    Ok(())
}
