//! Elasticsearch: the `_search` calls the alert pollers make, through the official
//! `elasticsearch` crate.

use elasticsearch::auth::Credentials;
use elasticsearch::cert::{Certificate, CertificateValidation};
use elasticsearch::http::transport::{SingleNodeConnectionPool, TransportBuilder};
use elasticsearch::{Elasticsearch, SearchParts};
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
}

impl Retryable for ElasticError {
    fn is_retryable(&self) -> bool {
        match self {
            ElasticError::Transport(_) => true,
            ElasticError::Status { status, .. } => retryable_status(*status),
            ElasticError::Decode(_) => false,
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

#[derive(Debug, Deserialize)]
struct SearchResponse {
    hits: Hits,
}

#[derive(Debug, Deserialize)]
struct Hits {
    hits: Vec<Hit>,
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

    /// Runs a search against `index` (a pattern is fine) and returns the hits.
    pub async fn search(&self, index: &str, body: Value) -> Result<Vec<Hit>, ElasticError> {
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
            let reason = body
                .pointer("/error/reason")
                .and_then(Value::as_str)
                .map(String::from)
                .unwrap_or_else(|| body.to_string());
            return Err(ElasticError::Status { status, reason });
        }
        let parsed: SearchResponse = response
            .json()
            .await
            .map_err(|e| ElasticError::Decode(e.to_string()))?;
        Ok(parsed.hits.hits)
    }
}
