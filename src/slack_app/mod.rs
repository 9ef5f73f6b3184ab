//! The Slack side of triage-bot: the messages it posts ([`blocks`], [`notify`]), the button
//! clicks it receives and the decisions they make ([`interactions`]), and thread questions
//! ([`events`], [`followup`]).

/// How long a click or event may be processed before Slack gets its acknowledgement anyway:
/// Slack wants one within 3 s, and the work goes on after it.
pub const ACK_WITHIN: std::time::Duration = std::time::Duration::from_millis(2500);

pub mod blocks;
pub mod events;
pub mod followup;
pub mod interactions;
pub mod notify;
pub mod signature;
pub mod socket_mode;
