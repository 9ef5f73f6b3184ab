//! One module per outside system. Each client owns its wire types (`wire.rs`) and converts them
//! to domain types at the edge; each has one error type that says whether a retry can help.
//! [`ai`] is the interface every AI backend (Kibana `chat/complete`, Agent Builder,
//! OpenAI-compatible) implements.

pub mod ai;
pub mod elastic;
pub mod kibana;
pub mod openai;
pub mod slack;
pub mod tls;
pub mod winrm;

/// Implemented by every client error: can the same call succeed if tried again later?
pub trait Retryable {
    fn is_retryable(&self) -> bool;
}

/// HTTP statuses worth retrying: throttling and server-side trouble.
pub fn retryable_status(status: u16) -> bool {
    matches!(status, 408 | 429 | 500 | 502 | 503 | 504)
}

/// Whether a 2xx body that failed to parse was *unreadable* — cut off, not JSON, broken while
/// read — rather than well-formed JSON of an unexpected shape. An unreadable answer is a fault
/// of the wire, not of the request: asking again can help (reads are idempotent; writes are
/// reconciled by the jobs, which look before they post again). A wrong shape will not change.
pub fn unreadable(e: &serde_json::Error) -> bool {
    !matches!(e.classify(), serde_json::error::Category::Data)
}
