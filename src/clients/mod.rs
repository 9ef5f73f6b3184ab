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

use std::time::Duration;

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

/// Exponential backoff from the configured base, capped at five minutes, with "equal jitter":
/// the wait is half the exponential step plus a random part of the other half (`jitter` in
/// `[0, 1)`), so the jobs of an outage that all failed together do not all retry together.
pub fn backoff(base: Duration, attempt: i64, jitter: f64) -> Duration {
    let step = base
        .saturating_mul(1u32 << attempt.clamp(0, 12) as u32)
        .min(Duration::from_secs(300));
    step / 2 + (step / 2).mul_f64(jitter.clamp(0.0, 1.0))
}

/// A random fraction in `[0, 1)` for [`backoff`], from the v4 UUID generator the crate
/// already uses (no other random source needed).
pub fn jitter() -> f64 {
    // The low 56 bits of a v4 UUID are all random (its version and variant bits are higher).
    let bits = uuid::Uuid::new_v4().as_u128() & ((1u128 << 53) - 1);
    bits as f64 / (1u64 << 53) as f64
}
