//! Kibana: the Security AI Assistant ([`assistant`]), Agent Builder, Cases ([`cases`]), Elastic
//! Defend response actions ([`endpoint`]) and connectors ([`connectors`]).
//!
//! [`KibanaHttp`] carries what every Kibana call needs: the base URL with the space prefix, the
//! `kbn-xsrf` and `elastic-api-version` headers, auth, and the mapping of both Kibana error body
//! shapes into one [`KibanaError`].

pub mod agent_builder;
pub mod assistant;
pub mod cases;
pub mod connectors;
pub mod endpoint;
pub mod maintenance;
pub mod wire;

use std::time::Duration;

use reqwest::{Method, RequestBuilder, Response};

use super::{Retryable, retryable_status};
use crate::config::KibanaSettings;

#[derive(Debug, thiserror::Error)]
pub enum KibanaError {
    #[error("cannot reach Kibana: {0}")]
    Transport(String),
    #[error("Kibana answered {status}: {message}")]
    Status { status: u16, message: String },
    #[error("unexpected Kibana response: {0}")]
    Decode(String),
    /// A 2xx answer that could not be read (cut off, not JSON): worth asking again.
    #[error("Kibana's answer could not be read: {0}")]
    Unreadable(String),
    #[error("the assistant's answer was empty")]
    EmptyAnswer,
}

impl Retryable for KibanaError {
    fn is_retryable(&self) -> bool {
        match self {
            KibanaError::Transport(_) => true,
            KibanaError::Status { status, .. } => retryable_status(*status),
            KibanaError::Decode(_) => false,
            KibanaError::Unreadable(_) => true,
            // An empty stream is how newer Kibana reports a mid-stream model error; try again.
            KibanaError::EmptyAnswer => true,
        }
    }
}

impl KibanaError {
    fn transport(e: reqwest::Error) -> Self {
        // reqwest's Display includes the URL but never headers, so no credentials leak here.
        KibanaError::Transport(crate::clients::tls::describe(&e, "KIBANA"))
    }
}

#[derive(Clone)]
pub struct KibanaHttp {
    http: reqwest::Client,
    base: String,
    auth: Option<String>,
}

impl KibanaHttp {
    pub fn new(settings: &KibanaSettings) -> anyhow::Result<Self> {
        let builder = reqwest::Client::builder()
            .timeout(settings.timeout)
            .connect_timeout(Duration::from_secs(10));
        let http = crate::clients::tls::apply(builder, &settings.tls, "Kibana")
            .map_err(|e| anyhow::anyhow!("KIBANA_CA_FILE: {e}"))?
            .build()?;
        // API calls go to the space the same way people's links do.
        let base = crate::config::kibana_app_base(&settings.url, settings.space.as_deref());
        Ok(Self {
            http,
            base,
            auth: settings.auth.header(),
        })
    }

    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        let mut rb = self
            .http
            .request(method, format!("{}{path}", self.base))
            .header("kbn-xsrf", "true")
            .header("elastic-api-version", "2023-10-31")
            .header("accept", "application/json");
        if let Some(auth) = &self.auth {
            rb = rb.header("authorization", auth);
        }
        rb
    }

    /// Sends and turns a non-2xx answer into [`KibanaError::Status`] with Kibana's own message.
    pub async fn send(&self, rb: RequestBuilder) -> Result<Response, KibanaError> {
        let resp = rb.send().await.map_err(KibanaError::transport)?;
        let status = resp.status().as_u16();
        if (200..300).contains(&status) {
            return Ok(resp);
        }
        let text = resp.text().await.unwrap_or_default();
        Err(KibanaError::Status {
            status,
            message: wire::error_message(&text),
        })
    }

    pub async fn json<T: serde::de::DeserializeOwned>(
        &self,
        rb: RequestBuilder,
    ) -> Result<T, KibanaError> {
        let resp = self.send(rb).await?;
        let bytes = resp.bytes().await.map_err(KibanaError::transport)?;
        serde_json::from_slice(&bytes).map_err(|e| {
            let detail = format!(
                "{e}: {}",
                String::from_utf8_lossy(&bytes[..bytes.len().min(300)])
            );
            if crate::clients::unreadable(&e) {
                KibanaError::Unreadable(detail)
            } else {
                KibanaError::Decode(detail)
            }
        })
    }
}
