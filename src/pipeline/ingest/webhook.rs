//! The Kibana webhook push (`POST /api/webhook/kibana`): the shared-secret check and the body a
//! Kibana Webhook connector sends, read into alerts by [`super::action_doc`]. The HTTP edge
//! (`http`) answers; what happens to the alerts is the policy stage's decision, reached through
//! `workers::intake::accept` like every other intake path.

use serde_json::Value;
use sha2::{Digest, Sha256};

use super::action_doc::{self, Entries};
use crate::secret::Secret;

/// Whether the presented header value is the configured secret. Both are hashed first and the
/// digests compared without an early exit, so neither the content nor the length of the secret
/// shows in the time taken.
pub fn authorised(secret: &Secret, presented: Option<&[u8]>) -> bool {
    let Some(presented) = presented else {
        return false;
    };
    let want = Sha256::digest(secret.expose().as_bytes());
    let got = Sha256::digest(presented);
    let diff = want
        .iter()
        .zip(got.iter())
        .fold(0u8, |acc, (a, b)| acc | (a ^ b));
    diff == 0 && !secret.is_empty()
}

/// Why a pushed body was refused as a whole (400).
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    #[error("the body is not valid JSON: {0}")]
    Json(String),
    #[error("the body holds no alerts: {0}")]
    Shape(String),
}

/// Reads a pushed body: an array of alert documents, `{"alerts": [...]}` (what
/// `{{{context.alerts}}}` in a template makes), or `{"rule.name": …, "context.hits": …}`.
/// `received` names the push in rejections of entries without an id of their own.
pub fn parse(body: &[u8], received: &str) -> Result<Entries, PushError> {
    let doc: Value = serde_json::from_slice(body).map_err(|e| PushError::Json(e.to_string()))?;
    action_doc::entries(received, PUSH_INDEX, &doc).map_err(PushError::Shape)
}

/// The index recorded for a pushed entry that names none.
pub const PUSH_INDEX: &str = "kibana-webhook";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_exact_secret_is_accepted() {
        let s = Secret::new("s3cret");
        assert!(authorised(&s, Some(b"s3cret")));
        assert!(!authorised(&s, Some(b"s3cre")));
        assert!(!authorised(&s, Some(b"s3cretx")));
        assert!(!authorised(&s, None));
        assert!(!authorised(&Secret::new(""), Some(b"")));
    }

    #[test]
    fn malformed_json_says_why() {
        let e = parse(b"{\"alerts\": [", "push-1").unwrap_err();
        assert!(matches!(e, PushError::Json(_)));
        assert!(e.to_string().contains("EOF"), "{e}");
    }
}
