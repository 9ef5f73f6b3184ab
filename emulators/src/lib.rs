//! In-process emulators of the outside systems triage-bot talks to.
//!
//! Each emulator is an axum server bound to `127.0.0.1:0`, stateful and inspectable, that speaks
//! the real wire protocol of the system it stands in for:
//!
//! - [`elasticsearch`]: `_search` over stored documents (bool / term / range, sort, search_after);
//! - [`kibana`]: the Security AI Assistant (`chat/complete`, conversations) and Cases;
//! - [`slack`]: the Slack Web API, plus helpers that act as Slack towards the app (signed callbacks);
//! - [`winrm`]: a Windows host over WS-Management (WinRS cmd shell, `-EncodedCommand`);
//! - [`openai`]: an OpenAI-compatible chat-completions server (streamed as server-sent events).
//!
//! Each system has its own folder: `<system>/mod.rs` holds the emulator and re-exports the
//! public API, the other files split it by concern, and imports between them go one way only.
//!
//! The demo (`triage-bot demo`) and the flow tests use the same emulators. The `emulators` binary
//! starts them all on loopback so independent clients (python `elasticsearch`, `slack_sdk`,
//! `pywinrm`) can be pointed at them.
//!
//! Every emulator records what it saw and offers `wait_until`, so tests synchronise on recorded
//! state rather than on sleeps.

pub mod elasticsearch;
pub mod faults;
pub mod kibana;
pub mod openai;
pub mod pycheck;
pub mod server;
pub mod slack;
pub mod tls;
pub mod winrm;

pub use server::Recorder;
