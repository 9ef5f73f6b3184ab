//! Verifies that a request really comes from Slack: `v0=` HMAC-SHA256 of `v0:{timestamp}:{body}`
//! with the signing secret, compared in constant time, within a 300-second window — through
//! slack-morphism's verifier, so the check is the library's, not a home-grown one.

use axum::http::HeaderMap;
use slack_morphism::prelude::SlackSigningSecret;
use slack_morphism::signature_verifier::SlackEventSignatureVerifier;

use crate::secret::Secret;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SignatureError {
    #[error("missing X-Slack-Signature or X-Slack-Request-Timestamp header")]
    Missing,
    #[error("request timestamp is outside the 300-second window")]
    Stale,
    #[error("signature does not match")]
    Mismatch,
    /// Socket Mode deployments have no signing secret: nothing arriving over HTTP is from Slack.
    #[error("no SLACK_SIGNING_SECRET is configured (Socket Mode); HTTP callbacks are refused")]
    NoSecret,
}

pub fn verify(secret: &Secret, headers: &HeaderMap, body: &str) -> Result<(), SignatureError> {
    // An empty key would let anyone compute a valid signature.
    if secret.is_empty() {
        return Err(SignatureError::NoSecret);
    }
    let sig = headers
        .get("x-slack-signature")
        .and_then(|v| v.to_str().ok())
        .ok_or(SignatureError::Missing)?;
    let ts = headers
        .get("x-slack-request-timestamp")
        .and_then(|v| v.to_str().ok())
        .ok_or(SignatureError::Missing)?;
    let verifier =
        SlackEventSignatureVerifier::new(&SlackSigningSecret::new(secret.expose().to_string()));
    verifier.verify(sig, body, ts).map_err(|e| {
        use slack_morphism::signature_verifier::SlackEventSignatureVerifierError as E;
        match e {
            E::IncorrectOrExpiredTimestampError(_) => SignatureError::Stale,
            _ => SignatureError::Mismatch,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_a_secret_every_request_is_refused() {
        let now = chrono::Utc::now().timestamp();
        let body = "payload=x";
        // A signature computed with the empty key is exactly what a forger would send.
        let sig = emulators::slack::sign("", now, body);
        assert_eq!(
            verify(&Secret::new(""), &headers(&sig, &now.to_string()), body),
            Err(SignatureError::NoSecret)
        );
    }

    fn headers(sig: &str, ts: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("x-slack-signature", sig.parse().unwrap());
        h.insert("x-slack-request-timestamp", ts.parse().unwrap());
        h
    }

    #[test]
    fn accepts_fresh_valid_and_refuses_the_rest() {
        let secret = Secret::new("s3cr3t");
        let now = chrono::Utc::now().timestamp();
        let body = "payload=%7B%7D";
        let sig = emulators::slack::sign("s3cr3t", now, body);
        assert_eq!(
            verify(&secret, &headers(&sig, &now.to_string()), body),
            Ok(())
        );
        assert_eq!(
            verify(&secret, &headers(&sig, &now.to_string()), "payload=x"),
            Err(SignatureError::Mismatch)
        );
        let old = now - 600;
        let old_sig = emulators::slack::sign("s3cr3t", old, body);
        assert_eq!(
            verify(&secret, &headers(&old_sig, &old.to_string()), body),
            Err(SignatureError::Stale)
        );
        assert_eq!(
            verify(&secret, &HeaderMap::new(), body),
            Err(SignatureError::Missing)
        );
    }
}
