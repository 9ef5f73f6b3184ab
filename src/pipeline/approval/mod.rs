//! The approval stage: the Slack card that asks the handler, the decisions taken on it, the
//! clock that escalates and expires it, and the questions answered in its thread.
//!
//! - [`blocks`] — the Block Kit messages (pure: incident in, JSON out);
//! - [`notify`] — posting and updating them, thread replies, private notes (outbox jobs);
//! - [`decide`] — Yes / Investigation only / No / Isolate host: who may, for what, first click;
//! - [`expiry`] — escalation and expiry of an undecided incident;
//! - [`edit`] — the Edit… modal (edit and pick the commands, then approve the edited list) and
//!   the Request changes… modal;
//! - [`times`] — time to acknowledge and time to respond, marked, recorded and exported;
//! - [`followup`] — thread questions answered in the incident's AI conversation, and commands
//!   proposed there (or left unfinished by a crash, or revised at an analyst's request) as
//!   follow-up approvals in the same thread.
//!
//! Slack text is built here and only here; the other stages queue facts, not messages.

pub mod blocks;
pub mod decide;
pub mod edit;
pub mod expiry;
pub mod followup;
pub mod notify;
pub mod times;

pub use decide::ClickOutcome;
