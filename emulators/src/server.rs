//! Shared plumbing for the emulators: binding an axum router on loopback, and the
//! [`Recorder`] that holds an emulator's state and wakes waiters whenever it changes.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use serde_json::Value;
use tokio::sync::Notify;

use crate::faults::Faults;

/// A JSON response with the status given (`application/json; charset=utf-8`, as Kibana and
/// Slack send it).
pub fn json_response(status: u16, body: &Value) -> Response {
    let mut resp = Response::new(Body::from(body.to_string()));
    *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    resp
}

/// Binds `router` on `127.0.0.1:0` and serves it on a background task, every request first
/// through `faults` (off until a test turns it on). Returns the bound address; the server lives
/// as long as the runtime.
pub async fn spawn(router: axum::Router, faults: &Faults) -> anyhow::Result<SocketAddr> {
    let router = crate::faults::wrap(router, faults);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    // As real servers do: a response written in pieces (headers, then body; SSE events) must not
    // wait on Nagle's algorithm for the client's delayed ACK (~40 ms a round).
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        let _ = tcp.set_nodelay(true);
    });
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, router).await {
            tracing::error!(error = %e, "emulator server stopped");
        }
    });
    Ok(addr)
}

/// State of an emulator plus a notifier, so tests can wait for a condition on recorded state
/// (with a timeout) instead of sleeping.
pub struct Recorder<S> {
    state: Mutex<S>,
    changed: Notify,
}

impl<S> Recorder<S> {
    pub fn new(state: S) -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(state),
            changed: Notify::new(),
        })
    }

    /// Read access to the state.
    pub fn read(&self) -> MutexGuard<'_, S> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Mutates the state and wakes every waiter.
    pub fn update<R>(&self, f: impl FnOnce(&mut S) -> R) -> R {
        let r = f(&mut self.read());
        self.changed.notify_waiters();
        r
    }

    /// Waits until `pred` holds on the state, or fails after `timeout` with the given description.
    pub async fn wait_until(
        &self,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&S) -> bool,
    ) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if pred(&self.read()) {
                return Ok(());
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                anyhow::bail!("timed out after {timeout:?} waiting for: {what}");
            }
        }
    }
}
