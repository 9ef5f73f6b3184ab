//! How SOAP envelopes reach the host: the [`Transport`] / [`TransportSession`] seam and the
//! Basic-auth implementation over reqwest, with HTTPS certificate options ([`TlsOptions`]).
//!
//! The seam exists for NTLM with message sealing (winrm.md §3.2–§3.3), which comes later. NTLM
//! binds its security context and the sealing sequence numbers to one TCP connection, so a
//! sealing transport must hand out a *session* that owns its own connection, authenticates it,
//! seals each request and unseals each answer. The client therefore asks for one session per
//! command run and sends every envelope of that run through it; it only ever sees plaintext SOAP
//! and an HTTP status. Basic needs no per-connection state, so its sessions share one pooled
//! `reqwest::Client`.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{CONTENT_TYPE, HeaderValue, WWW_AUTHENTICATE};

use super::error::{Phase, WinRmError};
use crate::config::TlsOptions;
use crate::secret::Secret;

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// `Content-Type` of every plaintext WS-Management request (winrm.md §1.1).
pub const SOAP_CONTENT_TYPE: &str = "application/soap+xml;charset=UTF-8";

/// One HTTP answer with its SOAP text already unsealed.
#[derive(Debug, Clone)]
pub struct SoapReply {
    pub status: u16,
    pub body: String,
}

/// A way to reach one WinRM endpoint.
pub trait Transport: Send + Sync + fmt::Debug {
    /// The endpoint URL, which also goes into every request's `a:To`.
    fn endpoint(&self) -> &str;

    /// Starts the exchanges of one command run (Create … Delete). A sealing transport opens and
    /// authenticates its own connection here (lazily, on the first exchange).
    fn session(&self) -> Box<dyn TransportSession>;
}

/// A sequence of request/answer exchanges that belong together.
pub trait TransportSession: Send {
    /// Sends one envelope and returns the status and SOAP body. HTTP 401 becomes
    /// [`WinRmError::Auth`]; a failed connect [`WinRmError::Connect`]; no full answer within
    /// `timeout` [`WinRmError::Timeout`]. Every other status is returned for the caller to read
    /// (faults come as 500 with a SOAP body).
    fn exchange<'a>(
        &'a mut self,
        phase: Phase,
        envelope: String,
        timeout: Duration,
    ) -> BoxFuture<'a, Result<SoapReply, WinRmError>>;
}

/// HTTP Basic over a pooled client: for hosts with `Auth/Basic=true` (local accounts), normally
/// over HTTPS; over plain HTTP it also needs `AllowUnencrypted=true` (winrm.md §3.1).
pub struct BasicTransport {
    inner: Arc<BasicInner>,
}

struct BasicInner {
    http: reqwest::Client,
    endpoint: String,
    username: String,
    password: Secret,
}

impl fmt::Debug for BasicTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BasicTransport")
            .field("endpoint", &self.inner.endpoint)
            .field("username", &self.inner.username)
            .field("password", &self.inner.password)
            .finish()
    }
}

impl BasicTransport {
    pub fn new(
        endpoint: &str,
        username: &str,
        password: Secret,
        connect_timeout: Duration,
    ) -> Result<Self, WinRmError> {
        Self::with_tls(
            endpoint,
            username,
            password,
            connect_timeout,
            &TlsOptions::default(),
        )
    }

    pub fn with_tls(
        endpoint: &str,
        username: &str,
        password: Secret,
        connect_timeout: Duration,
        tls: &TlsOptions,
    ) -> Result<Self, WinRmError> {
        let builder = reqwest::Client::builder()
            // WinRM speaks HTTP/1.1; never negotiate h2 over TLS.
            .http1_only()
            .connect_timeout(connect_timeout)
            .user_agent(concat!("triage-bot/", env!("CARGO_PKG_VERSION"), " winrm"));
        let builder = crate::clients::tls::apply(builder, tls, &format!("WinRM {endpoint}"))
            .map_err(WinRmError::Config)?;
        let http = builder
            .build()
            .map_err(|e| WinRmError::Config(format!("cannot build the HTTP client: {e}")))?;
        Ok(Self {
            inner: Arc::new(BasicInner {
                http,
                endpoint: endpoint.to_owned(),
                username: username.to_owned(),
                password,
            }),
        })
    }
}

impl Transport for BasicTransport {
    fn endpoint(&self) -> &str {
        &self.inner.endpoint
    }

    fn session(&self) -> Box<dyn TransportSession> {
        Box::new(BasicSession {
            inner: self.inner.clone(),
        })
    }
}

struct BasicSession {
    inner: Arc<BasicInner>,
}

impl TransportSession for BasicSession {
    fn exchange<'a>(
        &'a mut self,
        phase: Phase,
        envelope: String,
        timeout: Duration,
    ) -> BoxFuture<'a, Result<SoapReply, WinRmError>> {
        Box::pin(async move {
            let inner = &self.inner;
            let sent = inner
                .http
                .post(&inner.endpoint)
                .header(CONTENT_TYPE, HeaderValue::from_static(SOAP_CONTENT_TYPE))
                .basic_auth(&inner.username, Some(inner.password.expose()))
                .timeout(timeout)
                .body(envelope)
                .send()
                .await;
            let response = match sent {
                Ok(r) => r,
                Err(e) => return Err(send_error(phase, &inner.endpoint, timeout, e)),
            };
            let status = response.status().as_u16();
            if status == 401 {
                return Err(WinRmError::Auth {
                    status,
                    offered_schemes: offered_schemes(response.headers()),
                });
            }
            let body = response
                .text()
                .await
                .map_err(|e| send_error(phase, &inner.endpoint, timeout, e))?;
            Ok(SoapReply { status, body })
        })
    }
}

/// Maps a reqwest failure onto the error variants that tell whether the request was delivered.
fn send_error(phase: Phase, endpoint: &str, timeout: Duration, e: reqwest::Error) -> WinRmError {
    if e.is_connect() {
        // Includes connect timeouts: the request never left.
        WinRmError::Connect {
            phase,
            endpoint: endpoint.to_owned(),
            source: Box::new(e.without_url()),
        }
    } else if e.is_timeout() {
        WinRmError::Timeout {
            phase,
            after: timeout,
        }
    } else {
        WinRmError::Transport {
            phase,
            endpoint: endpoint.to_owned(),
            source: Box::new(e.without_url()),
        }
    }
}

/// The scheme names in every `WWW-Authenticate` header (`Basic realm="WSMAN"` → `Basic`), so an
/// Auth error can say "the host offers Negotiate, Kerberos" without echoing any token.
pub fn offered_schemes(headers: &reqwest::header::HeaderMap) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for value in headers.get_all(WWW_AUTHENTICATE) {
        let Ok(v) = value.to_str() else { continue };
        if let Some(scheme) = v.split_whitespace().next() {
            let scheme = scheme.trim_end_matches(',').to_owned();
            if !out.contains(&scheme) {
                out.push(scheme);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scheme_names_only() {
        let mut h = reqwest::header::HeaderMap::new();
        h.append(WWW_AUTHENTICATE, HeaderValue::from_static("Negotiate"));
        h.append(
            WWW_AUTHENTICATE,
            HeaderValue::from_static(r#"Basic realm="WSMAN""#),
        );
        h.append(
            WWW_AUTHENTICATE,
            HeaderValue::from_static("Negotiate TlRMTVNTUAACAAAA"),
        );
        assert_eq!(offered_schemes(&h), vec!["Negotiate", "Basic"]);
    }

    #[test]
    fn debug_redacts_the_password() {
        let t = BasicTransport::new(
            "http://h:5985/wsman",
            "admin",
            Secret::new("pa55-w0rd!"),
            Duration::from_secs(1),
        )
        .unwrap();
        let shown = format!("{t:?}");
        assert!(!shown.contains("pa55-w0rd!"), "{shown}");
    }
}
