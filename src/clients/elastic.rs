//! Elasticsearch: the `_search` calls the alert pollers make, through the official
//! `elasticsearch` crate.

use elasticsearch::auth::Credentials;
use elasticsearch::cert::{Certificate, CertificateValidation};
use elasticsearch::http::transport::{SingleNodeConnectionPool, TransportBuilder};
use elasticsearch::{BulkOperation, BulkParts, Elasticsearch, SearchParts};
use serde::Deserialize;
use serde_json::Value;

use super::{Retryable, retryable_status};
use crate::config::{ElasticSettings, HttpAuth};

#[derive(Debug, thiserror::Error)]
pub enum ElasticError {
    #[error("cannot reach Elasticsearch: {0}")]
    Transport(String),
    #[error("Elasticsearch answered {status}: {reason}")]
    Status { status: u16, reason: String },
    #[error("unexpected Elasticsearch response: {0}")]
    Decode(String),
    /// A 2xx answer that could not be read (cut off, not JSON): worth asking again.
    #[error("Elasticsearch's answer could not be read: {0}")]
    Unreadable(String),
}

impl ElasticError {
    /// A non-200 answer: Elasticsearch's own `error.reason` when it gave one, else the body.
    fn status(status: u16, body: &Value) -> Self {
        let reason = body
            .pointer("/error/reason")
            .and_then(Value::as_str)
            .map(String::from)
            .unwrap_or_else(|| body.to_string());
        ElasticError::Status { status, reason }
    }
}

impl Retryable for ElasticError {
    fn is_retryable(&self) -> bool {
        match self {
            ElasticError::Transport(_) => true,
            ElasticError::Status { status, .. } => retryable_status(*status),
            ElasticError::Decode(_) => false,
            ElasticError::Unreadable(_) => true,
        }
    }
}

/// One hit of a search response.
#[derive(Debug, Clone, Deserialize)]
pub struct Hit {
    #[serde(rename = "_index")]
    pub index: String,
    #[serde(rename = "_id")]
    pub id: String,
    #[serde(rename = "_source", default)]
    pub source: Value,
    #[serde(default)]
    pub sort: Vec<Value>,
}

/// A hit that could not be decoded (an unpaired surrogate escape, JSON nested too deep, …):
/// what is known of it, so it can be recorded and paged past instead of failing the search.
#[derive(Debug, Clone)]
pub struct UndecodableHit {
    pub id: String,
    pub index: String,
    pub sort: Vec<Value>,
    pub reason: String,
    /// The start of the hit as sent, for the rejection record.
    pub excerpt: String,
}

/// One hit of a page: decoded, or not.
#[derive(Debug, Clone)]
pub enum SearchHit {
    Decoded(Hit),
    Undecodable(UndecodableHit),
}

impl SearchHit {
    pub fn sort(&self) -> &[Value] {
        match self {
            SearchHit::Decoded(h) => &h.sort,
            SearchHit::Undecodable(u) => &u.sort,
        }
    }
}

/// The envelope, with each hit kept as raw text: one bad document must not fail the page (or,
/// polled every interval, blind the source for good).
#[derive(Debug, Deserialize)]
struct SearchResponse<'a> {
    #[serde(borrow)]
    hits: Hits<'a>,
}

#[derive(Debug, Deserialize)]
struct Hits<'a> {
    #[serde(borrow)]
    hits: Vec<&'a serde_json::value::RawValue>,
}

/// What can be read of a hit whatever its `_source` holds (the source is skipped, not parsed).
#[derive(Debug, Deserialize)]
struct HitHeader {
    #[serde(rename = "_index", default)]
    index: String,
    #[serde(rename = "_id", default)]
    id: String,
    #[serde(default)]
    sort: Vec<Value>,
}

/// Decodes one hit; an unpaired UTF-16 surrogate escape (which Windows file and registry names
/// can hold) becomes U+FFFD rather than failing the document.
fn decode_hit(raw: &str) -> SearchHit {
    let first = match serde_json::from_str::<Hit>(raw) {
        Ok(hit) => return SearchHit::Decoded(hit),
        Err(e) => e,
    };
    let lossy = replace_lone_surrogates(raw);
    if let Some(text) = &lossy
        && let Ok(hit) = serde_json::from_str::<Hit>(text)
    {
        return SearchHit::Decoded(hit);
    }
    let header: Option<HitHeader> = serde_json::from_str(raw).ok();
    let header = header.unwrap_or(HitHeader {
        index: String::new(),
        id: String::new(),
        sort: Vec::new(),
    });
    SearchHit::Undecodable(UndecodableHit {
        id: header.id,
        index: header.index,
        sort: header.sort,
        reason: format!("the document cannot be decoded: {first}"),
        excerpt: raw.chars().take(2000).collect(),
    })
}

/// `\uD800`-`\uDFFF` escapes that are not a high surrogate followed by a low one, replaced by
/// `\uFFFD`; `None` when there are none.
fn replace_lone_surrogates(text: &str) -> Option<String> {
    let b = text.as_bytes();
    let hex = |i: usize| -> Option<u16> {
        let s = text.get(i..i + 4)?;
        u16::from_str_radix(s, 16).ok()
    };
    let mut out = String::with_capacity(text.len());
    let (mut i, mut last, mut changed) = (0, 0, false);
    while i + 1 < b.len() {
        if b[i] == b'\\' {
            if b[i + 1] == b'u'
                && let Some(unit) = hex(i + 2)
                && (0xD800..=0xDFFF).contains(&unit)
            {
                let paired = (0xD800..=0xDBFF).contains(&unit)
                    && text.get(i + 6..i + 8) == Some("\\u")
                    && hex(i + 8).is_some_and(|lo| (0xDC00..=0xDFFF).contains(&lo));
                if paired {
                    i += 12;
                    continue;
                }
                out.push_str(&text[last..i]);
                out.push_str("\\uFFFD");
                i += 6;
                last = i;
                changed = true;
                continue;
            }
            i += 2; // any other escape, `\\` included
            continue;
        }
        i += 1;
    }
    changed.then(|| {
        out.push_str(&text[last..]);
        out
    })
}

#[derive(Clone)]
pub struct ElasticClient {
    es: Elasticsearch,
}

impl ElasticClient {
    pub fn new(settings: &ElasticSettings) -> anyhow::Result<Self> {
        let url = reqwest::Url::parse(&settings.url)?;
        let mut builder = TransportBuilder::new(SingleNodeConnectionPool::new(url));
        match &settings.auth {
            HttpAuth::None => {}
            HttpAuth::ApiKey(k) => {
                // The encoded form (base64 of id:key) is what operators copy from Kibana.
                builder = builder.auth(Credentials::EncodedApiKey(k.expose().to_string()));
            }
            HttpAuth::Basic { username, password } => {
                builder = builder.auth(Credentials::Basic(
                    username.clone(),
                    password.expose().to_string(),
                ));
            }
        }
        if let Some(path) = &settings.tls.ca_file {
            let pem = std::fs::read(path).map_err(|e| {
                anyhow::anyhow!("ELASTICSEARCH_CA_FILE: cannot read {}: {e}", path.display())
            })?;
            let certs = Certificate::from_pem(&pem)
                .map_err(|e| anyhow::anyhow!("ELASTICSEARCH_CA_FILE: {}: {e}", path.display()))?;
            // `Full`: the CA is trusted besides the built-in and the system roots, and the
            // host name is still checked.
            builder = builder.cert_validation(CertificateValidation::Full(certs));
        }
        if settings.tls.insecure {
            super::tls::warn_insecure("Elasticsearch");
            builder = builder.cert_validation(CertificateValidation::None);
        }
        let transport = builder
            .build()
            .map_err(|e| anyhow::anyhow!("Elasticsearch client: {e}"))?;
        Ok(Self {
            es: Elasticsearch::new(transport),
        })
    }

    /// Runs a search against `index` (a pattern is fine) and returns the hits, each decoded on
    /// its own.
    pub async fn search(&self, index: &str, body: Value) -> Result<Vec<SearchHit>, ElasticError> {
        let response = self
            .es
            .search(SearchParts::Index(&[index]))
            .allow_no_indices(true)
            .ignore_unavailable(true)
            .body(body)
            .send()
            .await
            .map_err(|e| ElasticError::Transport(super::tls::describe(&e, "ELASTICSEARCH")))?;
        let status = response.status_code().as_u16();
        if status != 200 {
            let body: Value = response.json().await.unwrap_or(Value::Null);
            return Err(ElasticError::status(status, &body));
        }
        let bytes = response
            .bytes()
            .await
            .map_err(|e| ElasticError::Transport(e.to_string()))?;
        let text = String::from_utf8_lossy(&bytes);
        let parsed: SearchResponse = serde_json::from_str(&text).map_err(|e| {
            if super::unreadable(&e) {
                ElasticError::Unreadable(e.to_string())
            } else {
                ElasticError::Decode(e.to_string())
            }
        })?;
        Ok(parsed
            .hits
            .hits
            .iter()
            .map(|raw| decode_hit(raw.get()))
            .collect())
    }
}

impl ElasticClient {
    /// Indexes documents by id (`_bulk`, `index` operations, so a retry overwrites rather than
    /// duplicates). Fails when the request or any item failed.
    pub async fn bulk_index(
        &self,
        index: &str,
        docs: &[(String, Value)],
    ) -> Result<(), ElasticError> {
        let ops: Vec<BulkOperation<Value>> = docs
            .iter()
            .map(|(id, doc)| BulkOperation::index(doc.clone()).id(id.as_str()).into())
            .collect();
        let response = self
            .es
            .bulk(BulkParts::Index(index))
            .body(ops)
            .send()
            .await
            .map_err(|e| ElasticError::Transport(super::tls::describe(&e, "ELASTICSEARCH")))?;
        let status = response.status_code().as_u16();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        if status != 200 {
            return Err(ElasticError::status(status, &body));
        }
        if body["errors"].as_bool() == Some(true) {
            let first = body["items"]
                .as_array()
                .and_then(|items| items.iter().find_map(|i| i.pointer("/index/error/reason")))
                .and_then(Value::as_str)
                .unwrap_or("an item failed")
                .to_string();
            return Err(ElasticError::Status {
                status: 200,
                reason: first,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lone_surrogate_becomes_a_replacement_character_and_pairs_stay() {
        let raw = r#"{"_index":"i","_id":"a","_source":{"f":"C:\\x\uD800y","ok":"\uD83D\uDE00","q":"\\uD800"}}"#;
        let SearchHit::Decoded(hit) = decode_hit(raw) else {
            panic!("decoded lossily")
        };
        assert_eq!(hit.source["f"], "C:\\x\u{FFFD}y");
        assert_eq!(hit.source["ok"], "😀");
        assert_eq!(
            hit.source["q"], "\\uD800",
            "an escaped backslash is not an escape"
        );
    }

    #[test]
    fn a_document_nested_too_deep_is_undecodable_but_named() {
        let raw = format!(
            r#"{{"_index":"i","_id":"deep","_source":{{"x":{}{}}},"sort":[1,"deep"]}}"#,
            "[".repeat(400),
            "]".repeat(400)
        );
        let SearchHit::Undecodable(u) = decode_hit(&raw) else {
            panic!("too deep to decode")
        };
        assert_eq!((u.id.as_str(), u.index.as_str()), ("deep", "i"));
        assert_eq!(u.sort.len(), 2);
        assert!(u.reason.contains("cannot be decoded"), "{}", u.reason);
    }
}
