//! # triage-bot
//!
//! Picks up critical Elastic Security alerts, has the AI assistant triage them, asks the right
//! person in Slack for approval, runs exactly the approved commands on the affected Windows host,
//! and records everything in a Kibana case.
//!
//! The folder tree is the pipeline. Dependencies point one way only — a module may use the
//! modules on its left, never those on its right (`tests/checks/architecture.rs` keeps it so):
//!
//! ```text
//! text, secret, shutdown, samples, health  ←  domain  ←  config  ←  store, clients, telemetry
//!   ←  runners  ←  pipeline  ←  workers, slack_app  ←  http  ←  app  ←  demo  ←  cli
//! ```
//!
//! - [`domain`] — pure types: alerts, incidents and their state machine, commands, decisions;
//! - [`config`] — the one place settings are read and validated;
//! - [`store`] — the only place with SQL: incidents, commands, the outbox, the audit trail;
//! - [`clients`] — one module per outside system, wire types apart; [`clients::ai`] is the
//!   assistant interface every AI backend implements;
//! - [`runners`] — how an approved command reaches a host (WinRM, Elastic Defend, dry run);
//! - [`pipeline`] — the stages, in order: [`pipeline::ingest`] → [`pipeline::policy`] →
//!   [`pipeline::triage`] → [`pipeline::approval`] → [`pipeline::execute`] →
//!   [`pipeline::record`]; a stage may use an earlier stage's items, never a later one's;
//! - [`workers`] — what drives the stages: alert intake, the outbox runner, timers, recovery;
//! - [`slack_app`] — inbound Slack (HTTP and Socket Mode): verify, parse, hand to a stage;
//! - [`http`] — the axum router; [`app`] wires everything; [`cli`] is one file per subcommand;
//! - `demo` (default feature `demo`) — the whole loop against in-process emulators.

pub mod app;
pub mod cli;
pub mod clients;
pub mod config;
#[cfg(feature = "demo")]
pub mod demo;
pub mod domain;
pub mod health;
pub mod http;
pub mod pipeline;
pub mod runners;
pub mod samples;
pub mod secret;
pub mod shutdown;
pub mod slack_app;
pub mod store;
pub mod telemetry;
pub mod text;
pub mod workers;

/// The layer of every module, lowest first: a module may use modules of a lower layer, and its
/// own descendants (a folder's `mod.rs` names its files); never a module of a higher layer, nor
/// another module of the same layer. The pipeline's stages are layered in their order, so a
/// stage may use an earlier stage's items, never a later one's. Kept by
/// `tests/checks/architecture.rs`; a new module must be placed here.
pub const LAYERS: &[(&str, u8)] = &[
    ("text", 0),
    ("secret", 0),
    ("shutdown", 0),
    ("samples", 0),
    ("health", 0),
    ("domain", 10),
    ("config", 20),
    ("store", 30),
    ("clients", 30),
    ("telemetry", 30),
    ("runners", 40),
    ("pipeline", 50),
    ("pipeline::ingest", 51),
    ("pipeline::policy", 52),
    ("pipeline::triage", 53),
    ("pipeline::approval", 54),
    ("pipeline::execute", 55),
    ("pipeline::record", 56),
    ("workers", 60),
    ("slack_app", 60),
    ("http", 70),
    ("app", 80),
    ("demo", 90),
    ("cli", 100),
];
