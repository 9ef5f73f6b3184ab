//! Checks that need no running app: the module layering, the command line, the answer parser
//! and safety gate against their corpora, Block Kit snapshots, the Slack app manifest against the
//! methods and events the code uses, the packaging (Dockerfile, health probe, systemd unit), and
//! the WinRM client against recorded and independent peers. One test binary, so the crate is
//! linked once.

mod architecture;
mod cli;
mod execute_winrm_fixtures;
mod execute_winrm_ntlm_peer;
mod packaging;
mod policy_cli;
mod policy_kql_props;
mod report;
mod slack_manifest;
mod slack_message_snapshots;
mod triage_parser_corpus;
mod triage_parser_props;
mod triage_safety_corpus;
