//! TLS trust for every HTTPS client: the roots compiled in (web PKI) and the operating system's
//! store are trusted by default; a CA file (`*_CA_FILE`, one or more PEM certificates) adds a
//! private CA, as a self-managed Elastic cluster or an internal AI gateway needs; the insecure
//! switch (`*_INSECURE`, labs only) turns validation off and says so at every start.
//!
//! When a server's certificate is not trusted, [`untrusted_hint`] turns the TLS library's error
//! into one that names the setting to use.

use crate::config::TlsOptions;

/// The certificates of a PEM file. Errors name the file, never its content.
pub fn pem_roots(path: &std::path::Path) -> Result<Vec<reqwest::Certificate>, String> {
    let pem = std::fs::read(path)
        .map_err(|e| format!("cannot read the CA file {}: {e}", path.display()))?;
    let certs = reqwest::Certificate::from_pem_bundle(&pem)
        .map_err(|e| format!("the CA file {} is not PEM: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "the CA file {} holds no certificate",
            path.display()
        ));
    }
    Ok(certs)
}

/// Applies `tls` to a client builder. `what` names the peer in the insecure warning.
pub fn apply(
    mut builder: reqwest::ClientBuilder,
    tls: &TlsOptions,
    what: &str,
) -> Result<reqwest::ClientBuilder, String> {
    if let Some(path) = &tls.ca_file {
        for cert in pem_roots(path)? {
            builder = builder.add_root_certificate(cert);
        }
    }
    if tls.insecure {
        warn_insecure(what);
        builder = builder.danger_accept_invalid_certs(true);
    }
    Ok(builder)
}

/// The warning every client built with the insecure switch logs.
pub fn warn_insecure(what: &str) {
    tracing::warn!(
        peer = what,
        "TLS certificate validation is OFF for {what} (insecure switch): anyone on the path can read and change the traffic, credentials included; use a CA file instead"
    );
}

/// When `error` (or one of its causes) is a certificate the client does not trust, a sentence
/// naming the settings that fix it; `None` for any other failure.
pub fn untrusted_hint(error: &(dyn std::error::Error + 'static), prefix: &str) -> Option<String> {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = cause {
        let text = e.to_string();
        if text.contains("UnknownIssuer")
            || text.contains("certificate")
            || text.contains("NotValidForName")
        {
            return Some(format!(
                "the server's TLS certificate is not trusted: set {prefix}_CA_FILE to the PEM file of the CA that signed it (or {prefix}_INSECURE=true in a lab only)"
            ));
        }
        cause = e.source();
    }
    None
}

/// A client error's text with its causes (reqwest's and the Elasticsearch client's own `Display`
/// hide them), plus the certificate hint when that is what went wrong.
pub fn describe(error: &(dyn std::error::Error + 'static), prefix: &str) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(e) = cause {
        let more = e.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        cause = e.source();
    }
    match untrusted_hint(error, prefix) {
        Some(hint) => format!("{text} — {hint}"),
        None => text,
    }
}
