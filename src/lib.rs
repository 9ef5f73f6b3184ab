//! # triage-bot
//!
//! Picks up critical Elastic Security alerts, has the Kibana Security AI Assistant triage them,
//! asks the right person in Slack for approval, runs exactly the approved commands on the
//! affected Windows host over WinRM, and records everything in a Kibana case.
//!
//! The layout follows the pipeline and the outside systems:
//!
//! - [`ingest`] — alert sources (Elasticsearch polling) → one [`domain::Alert`] type;
//! - [`triage`] — prompts, the assistant call, the answer parser, handler resolution;
//! - [`slack_app`] — the approval message, button clicks and decisions, thread questions;
//! - [`execute`] — running approved commands on a host ([`execute::CommandRunner`]);
//! - [`record`] — the Kibana case: the audit trail;
//! - [`clients`] — one module per outside system, wire types apart from domain types;
//! - [`domain`] — pure types and the incident state machine;
//! - [`store`] — SQLite persistence and the outbox; [`workers`] — the outbox runner and recovery;
//! - [`app`] wires it all, [`http`] serves Slack's callbacks and the probes, [`config`] is the
//!   one place settings are read, [`demo`] runs the whole loop against in-process emulators.

pub mod app;
pub mod bench;
pub mod cli;
pub mod clients;
pub mod config;
pub mod demo;
pub mod domain;
pub mod execute;
pub mod http;
pub mod ingest;
pub mod record;
pub mod secret;
pub mod slack_app;
pub mod store;
pub mod telemetry;
pub mod text;
pub mod triage;
pub mod workers;
