//! Fuzzes the assistant-answer parser: any bytes, as lossy UTF-8, must parse without panicking,
//! and every command it returns must be non-empty.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let triage = triage_bot::pipeline::triage::parser::parse_answer(&text);
    for c in triage.investigation.iter().chain(&triage.remediation) {
        assert!(!c.trim().is_empty());
    }
});
