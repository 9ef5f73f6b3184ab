//! Inbound Slack only: requests Slack sends (over HTTP, or over a Socket Mode WebSocket) are
//! verified ([`signature`]), parsed, and handed to the approval stage — clicks
//! ([`interactions`]) to `pipeline::approval::decide`, thread messages ([`events`]) to the
//! outbox as follow-up questions. What triage-bot posts to Slack is built in
//! `pipeline::approval`.

/// How long a click or event may be processed before Slack gets its acknowledgement anyway:
/// Slack wants one within 3 s, and the work goes on after it.
pub const ACK_WITHIN: std::time::Duration = std::time::Duration::from_millis(2500);

/// Why an inbound Slack request was not accepted. The HTTP edge (`http::ApiError`) turns it into
/// a status code; the message names the problem and never holds a secret.
#[derive(Debug, thiserror::Error)]
pub enum Rejected {
    /// The signature or its timestamp did not verify (401).
    #[error("{0}")]
    Unauthenticated(String),
    /// The body is not what Slack sends (400).
    #[error("{0}")]
    Malformed(String),
    /// Verified and well-formed, but it could not be recorded now; Slack retries a non-2xx, and
    /// the `event_id` dedupe makes the retry safe.
    #[error("")]
    Unavailable,
}

pub mod events;
pub mod interactions;
pub mod signature;
pub mod socket_mode;
