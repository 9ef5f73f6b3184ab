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
