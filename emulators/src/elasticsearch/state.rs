//! What the Elasticsearch emulator holds: the documents per concrete index ([`StoredDoc`]), the
//! aliases and the record of every search ([`RecordedSearch`]), with the injected failures, auth
//! requirement and latency, all in [`EsState`].
//!
//! It depends on no other Elasticsearch file.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;

/// One stored document.
#[derive(Debug, Clone)]
pub struct StoredDoc {
    pub id: String,
    pub source: Value,
    /// Global insertion sequence; used for `_doc` sorting and stable tie-breaking.
    pub seq: u64,
    /// The stored bytes, when they are not what `source` would serialise to: Elasticsearch
    /// returns `_source` exactly as it was indexed — an unpaired surrogate escape or JSON nested
    /// hundreds deep included — and a client must survive that.
    pub raw_source: Option<String>,
}

/// What a hit's `_source` is replaced with until the body is written (see `raw_source`).
pub fn raw_placeholder(seq: u64) -> String {
    format!("\u{0}raw-source:{seq}")
}

/// One recorded `_search` request.
#[derive(Debug, Clone)]
pub struct RecordedSearch {
    /// `GET` or `POST`.
    pub method: String,
    /// Request path, e.g. `/.alerts-security.alerts-default/_search`.
    pub path: String,
    /// The raw query string (without `?`), empty when none.
    pub query: String,
    /// The target expression from the path (`""` for `/_search`).
    pub target: String,
    /// The parsed JSON body (`null` when the request had no body).
    pub body: Value,
}

/// Everything the emulator holds. Public so tests can `wait_until` on it.
#[derive(Debug, Default)]
pub struct EsState {
    /// Concrete index name → documents in insertion order.
    pub indices: BTreeMap<String, Vec<StoredDoc>>,
    /// Alias name → concrete index names.
    pub aliases: BTreeMap<String, Vec<String>>,
    /// Every `_search` request, in arrival order (including ones that failed).
    pub searches: Vec<RecordedSearch>,
    /// Status codes the next requests fail with (front first).
    pub fail_queue: Vec<u16>,
    /// When set, requests whose `Authorization` header differs get a 401.
    pub required_auth: Option<String>,
    /// Artificial latency added before every response.
    pub delay: Option<Duration>,
    /// The last insertion sequence handed out (see [`StoredDoc::seq`]).
    pub(super) next_seq: u64,
}

impl EsState {
    /// Stores (or replaces) a document in a concrete index, creating the index if needed.
    /// True when a document of that id was replaced.
    pub fn store_doc(&mut self, index: &str, id: &str, source: Value) -> bool {
        self.next_seq += 1;
        let seq = self.next_seq;
        let docs = self.indices.entry(index.to_string()).or_default();
        match docs.iter_mut().find(|d| d.id == id) {
            Some(existing) => {
                existing.source = source;
                existing.seq = seq;
                existing.raw_source = None;
                true
            }
            None => {
                docs.push(StoredDoc {
                    id: id.to_string(),
                    source,
                    seq,
                    raw_source: None,
                });
                false
            }
        }
    }
}
