//! User stories, end to end: each module spawns the whole app against the emulated outside
//! world (Elasticsearch, Kibana, Slack, a Windows host), acts as Slack would, and asserts on what
//! each outside system saw. One test binary, so the crate is linked once.

mod common;

mod analyst_control;
mod approval_options;
mod approval_refusals;
mod approval_yes;
mod bad_input;
mod case_record;
mod chaos;
mod check_config;
mod execute_runners;
mod faults;
mod ingest;
mod ingest_conditions;
mod ingest_index_action;
mod ingest_webhook;
mod isolation;
mod observability;
mod outbox_concurrency;
mod policies;
mod restart;
mod setup_connector;
mod slack_transports;
mod stopping;
mod thread_questions;
mod tls;
mod triage_assistants;
mod triage_enrichment;
mod triage_failed;
mod triage_handler;
mod triage_injection;
mod triage_replay;
mod winrm_by_ip;
