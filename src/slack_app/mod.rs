//! Inbound Slack only: requests Slack sends (over HTTP, or over a Socket Mode WebSocket) are
//! verified ([`signature`]), parsed, and handed to the approval stage — clicks
//! ([`interactions`]) to `pipeline::approval::decide`, thread messages ([`events`]) to the
//! outbox as follow-up questions. What triage-bot posts to Slack is built in
//! `pipeline::approval`.

/// How long a click or event may be processed before Slack gets its acknowledgement anyway:
/// Slack wants one within 3 s, and the work goes on after it.
pub const ACK_WITHIN: std::time::Duration = std::time::Duration::from_millis(2500);

pub mod events;
pub mod interactions;
pub mod signature;
pub mod socket_mode;
