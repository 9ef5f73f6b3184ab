//! What `/readyz` reports besides the database: whether the Slack Socket Mode connection is up
//! (when that transport is used) and when each alert source was last polled successfully. The
//! workers write it, the HTTP probe reads it; plain atomics and a map, no I/O.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

#[derive(Debug)]
pub struct Health {
    /// Since when this process polls: its start, or when it took the lead from a replica gone.
    started: Mutex<Instant>,
    socket_connected: AtomicBool,
    last_poll_ok: Mutex<HashMap<String, Instant>>,
}

impl Default for Health {
    fn default() -> Self {
        Self {
            started: Mutex::new(Instant::now()),
            socket_connected: AtomicBool::new(false),
            last_poll_ok: Mutex::new(HashMap::new()),
        }
    }
}

impl Health {
    pub fn set_socket_connected(&self, up: bool) {
        self.socket_connected.store(up, Ordering::Relaxed);
        metrics::gauge!("triage_bot_slack_socket_connected").set(if up { 1.0 } else { 0.0 });
    }

    pub fn socket_connected(&self) -> bool {
        self.socket_connected.load(Ordering::Relaxed)
    }

    /// This replica has just taken over the polling: a source it never polled yet is stale only
    /// after `stale_after` from now, not from the process's start.
    pub fn polling_started(&self) {
        *self.started.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
    }

    pub fn poll_succeeded(&self, source: &str) {
        self.last_poll_ok
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(source.to_string(), Instant::now());
        let now = chrono::Utc::now().timestamp() as f64;
        metrics::gauge!("triage_bot_last_successful_poll_timestamp_seconds", "source" => source.to_string())
            .set(now);
    }

    /// The sources (of `sources`) with no successful poll within `stale_after` — counted from
    /// the start for a source never polled yet.
    pub fn stale_sources<'a>(&self, sources: &[&'a str], stale_after: Duration) -> Vec<&'a str> {
        let started = *self.started.lock().unwrap_or_else(|p| p.into_inner());
        let last = self.last_poll_ok.lock().unwrap_or_else(|p| p.into_inner());
        sources
            .iter()
            .copied()
            .filter(|s| last.get(*s).copied().unwrap_or(started).elapsed() > stale_after)
            .collect()
    }
}
