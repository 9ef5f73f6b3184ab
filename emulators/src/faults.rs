//! Fault injection shared by the HTTP emulators: at a configurable rate, a request meets one of
//! the failures real dependencies produce — a 5xx, a 429 with `Retry-After`, a connection cut
//! before the answer (the request was never handled), an answer cut off mid-body after the
//! request *was* handled (the write happened, its answer was lost), or a slow answer. The draw is
//! a seeded xorshift, so a run prints its seed and can be replayed (the order in which concurrent
//! requests draw still varies).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;
use futures_util::stream;

/// One kind of failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FaultKind {
    /// 503 with a short body; the request was not handled.
    Unavailable,
    /// 429 with `Retry-After: 1`; the request was not handled.
    RateLimited,
    /// The connection breaks before any answer byte; the request was not handled.
    ResetBeforeAnswer,
    /// The request was handled, then its answer broke off half-way (status 2xx, body cut).
    TruncatedAnswer,
    /// The answer comes, late.
    Slow,
}

impl FaultKind {
    pub const ALL: [FaultKind; 5] = [
        FaultKind::Unavailable,
        FaultKind::RateLimited,
        FaultKind::ResetBeforeAnswer,
        FaultKind::TruncatedAnswer,
        FaultKind::Slow,
    ];
}

/// What was injected, for the test's report.
#[derive(Debug, Clone)]
pub struct Injected {
    pub kind: FaultKind,
    pub method: String,
    pub path: String,
}

#[derive(Debug)]
struct Plan {
    rate: f64,
    rng: Rng,
    kinds: Vec<FaultKind>,
    slow: Duration,
    /// Paths (prefixes) never faulted: the test's own back doors.
    exempt: Vec<String>,
    injected: Vec<Injected>,
}

/// The fault plan of one emulator; cheap to clone. Off (rate 0) until [`Faults::set`].
#[derive(Debug, Clone)]
pub struct Faults {
    plan: Arc<Mutex<Plan>>,
}

impl Default for Faults {
    fn default() -> Self {
        Self {
            plan: Arc::new(Mutex::new(Plan {
                rate: 0.0,
                rng: Rng::new(1),
                kinds: FaultKind::ALL.to_vec(),
                slow: Duration::from_millis(300),
                exempt: Vec::new(),
                injected: Vec::new(),
            })),
        }
    }
}

impl Faults {
    fn plan(&self) -> std::sync::MutexGuard<'_, Plan> {
        self.plan.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Faults `rate` of requests (0.0–1.0), drawn from `seed`, choosing among `kinds`.
    pub fn set(&self, rate: f64, seed: u64, kinds: &[FaultKind]) {
        let mut p = self.plan();
        p.rate = rate.clamp(0.0, 1.0);
        p.rng = Rng::new(seed);
        p.kinds = kinds.to_vec();
    }

    /// Requests whose path starts with `prefix` are never faulted.
    pub fn exempt(&self, prefix: &str) {
        self.plan().exempt.push(prefix.to_owned());
    }

    /// Stops injecting.
    pub fn off(&self) {
        self.plan().rate = 0.0;
    }

    pub fn injected(&self) -> Vec<Injected> {
        self.plan().injected.clone()
    }

    /// Draws for one request: `None`, or the fault to inject.
    fn draw(&self, method: &str, path: &str) -> Option<(FaultKind, Duration)> {
        let mut p = self.plan();
        if p.rate <= 0.0 || p.kinds.is_empty() || p.exempt.iter().any(|e| path.starts_with(e)) {
            return None;
        }
        if p.rng.fraction() >= p.rate {
            return None;
        }
        let pick = (p.rng.next_u64() % p.kinds.len() as u64) as usize;
        let kind = p.kinds[pick];
        p.injected.push(Injected {
            kind,
            method: method.to_owned(),
            path: path.to_owned(),
        });
        Some((kind, p.slow))
    }
}

/// `router` with every request first through `faults`.
pub fn wrap(router: axum::Router, faults: &Faults) -> axum::Router {
    router.layer(axum::middleware::from_fn_with_state(faults.clone(), inject))
}

/// xorshift64*: a small seeded generator, so a run's draws can be replayed from its seed (the
/// fault plan here; a test's kill schedule).
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed.max(1))
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A fraction in `[0, 1)`.
    pub fn fraction(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// The axum middleware (`axum::middleware::from_fn_with_state(faults, inject)`).
pub async fn inject(State(faults): State<Faults>, req: Request, next: Next) -> Response {
    let Some((kind, slow)) = faults.draw(req.method().as_str(), req.uri().path()) else {
        return next.run(req).await;
    };
    tracing::debug!(?kind, path = %req.uri().path(), "injecting a fault");
    match kind {
        FaultKind::Unavailable => status(503, None),
        FaultKind::RateLimited => status(429, Some("1")),
        FaultKind::ResetBeforeAnswer => broken(StatusCode::OK, Bytes::new()),
        FaultKind::TruncatedAnswer => {
            let resp = next.run(req).await;
            let (parts, body) = resp.into_parts();
            let bytes = axum::body::to_bytes(body, usize::MAX)
                .await
                .unwrap_or_default();
            let half = bytes.slice(..bytes.len() / 2);
            let mut cut = broken(parts.status, half);
            if let Some(ct) = parts.headers.get(header::CONTENT_TYPE) {
                cut.headers_mut().insert(header::CONTENT_TYPE, ct.clone());
            }
            cut
        }
        FaultKind::Slow => {
            tokio::time::sleep(slow).await;
            next.run(req).await
        }
    }
}

fn status(code: u16, retry_after: Option<&'static str>) -> Response {
    let mut resp = Response::new(Body::from("injected fault: service unavailable"));
    *resp.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
    if let Some(secs) = retry_after {
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static(secs));
    }
    resp
}

/// A response whose body yields `head`, then breaks: the connection is closed mid-body.
fn broken(code: StatusCode, head: Bytes) -> Response {
    let chunks: Vec<Result<Bytes, std::io::Error>> = vec![
        Ok(head),
        Err(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "injected fault: connection reset",
        )),
    ];
    let mut resp = Response::new(Body::from_stream(stream::iter(chunks)));
    *resp.status_mut() = code;
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rate_is_kept_and_a_seed_replays() {
        let draw = |seed| {
            let f = Faults::default();
            f.set(0.2, seed, &FaultKind::ALL);
            (0..10_000)
                .map(|_| f.draw("GET", "/x").map(|(k, _)| k))
                .collect::<Vec<_>>()
        };
        let a = draw(7);
        assert_eq!(a, draw(7), "same seed, same faults");
        assert_ne!(a, draw(8));
        let n = a.iter().filter(|k| k.is_some()).count();
        assert!((1_800..2_200).contains(&n), "{n} faults in 10,000 at 20 %");
        let f = Faults::default();
        f.set(1.0, 1, &FaultKind::ALL);
        f.exempt("/_test/");
        assert!(f.draw("GET", "/_test/state").is_none());
    }
}
