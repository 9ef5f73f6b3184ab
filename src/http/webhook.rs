//! `POST /api/webhook/kibana`: alerts pushed by a Kibana Webhook connector. Off (404) unless
//! `KIBANA_WEBHOOK_SECRET` is set; the secret must come in the configured header (401); the body
//! is bounded (413); a body that is not JSON, or holds no alerts, is a 400 with the reason. The
//! 202 is sent only after every alert was handed to the policy stage (the store write is the
//! acknowledgement), so a push Kibana saw accepted is never lost; a repeat is a no-op.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::config::intake::WEBHOOK_SOURCE;
use crate::pipeline::Ctx;
use crate::pipeline::ingest::es_alerts::record_rejection;
use crate::pipeline::ingest::webhook::{self, PUSH_INDEX};

fn answer(status: StatusCode, message: impl Into<String>) -> Response {
    (status, axum::Json(json!({ "error": message.into() }))).into_response()
}

pub async fn kibana(State(ctx): State<Arc<Ctx>>, headers: HeaderMap, body: Body) -> Response {
    let Some(settings) = &ctx.settings.intake.webhook else {
        return answer(
            StatusCode::NOT_FOUND,
            "the Kibana webhook is not enabled (set KIBANA_WEBHOOK_SECRET)",
        );
    };
    let presented = headers.get(settings.header.as_str()).map(|v| v.as_bytes());
    if !webhook::authorised(&settings.secret, presented) {
        let why = match presented {
            None => format!("the {} header is missing", settings.header),
            Some(_) => format!(
                "the {} header does not hold the shared secret",
                settings.header
            ),
        };
        tracing::warn!(reason = %why, "KibanaWebhookRefused");
        return answer(StatusCode::UNAUTHORIZED, why);
    }
    let body = match axum::body::to_bytes(body, settings.max_bytes).await {
        Ok(b) => b,
        Err(_) => {
            return answer(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!(
                    "the body is larger than {} bytes (KIBANA_WEBHOOK_MAX_BYTES)",
                    settings.max_bytes
                ),
            );
        }
    };
    // Named by its content, so a retried push names its entries the same way.
    let received = format!("push-{}", &hex::encode(Sha256::digest(&body))[..16]);
    let entries = match webhook::parse(&body, &received) {
        Ok(e) => e,
        Err(e) => {
            let excerpt: String = String::from_utf8_lossy(&body).chars().take(2000).collect();
            let doc = json!({ "excerpt": excerpt });
            if let Err(db) = record_rejection(
                &ctx,
                WEBHOOK_SOURCE,
                &received,
                PUSH_INDEX,
                &e.to_string(),
                &doc,
            )
            .await
            {
                tracing::error!(error = %db, "cannot record a refused push");
            }
            return answer(StatusCode::BAD_REQUEST, e.to_string());
        }
    };
    for r in &entries.rejected {
        if let Err(e) =
            record_rejection(&ctx, WEBHOOK_SOURCE, &r.doc_id, &r.index, &r.reason, &r.doc).await
        {
            return unavailable(e);
        }
    }
    match crate::workers::intake::accept(&ctx, WEBHOOK_SOURCE, &entries.alerts).await {
        Ok(stats) => {
            tracing::info!(
                new = stats.new,
                grouped = stats.grouped,
                duplicates = stats.duplicates,
                rejected = entries.rejected.len(),
                "KibanaWebhookReceived"
            );
            let rejected: Vec<_> = entries
                .rejected
                .iter()
                .map(|r| json!({ "id": r.doc_id, "reason": r.reason }))
                .collect();
            (
                StatusCode::ACCEPTED,
                axum::Json(json!({
                    "new": stats.new,
                    "grouped": stats.grouped,
                    "duplicates": stats.duplicates,
                    "rejected": rejected,
                })),
            )
                .into_response()
        }
        Err(e) => unavailable(e),
    }
}

/// The store could not take the alerts: our fault, and Kibana's retry is safe (duplicates are
/// ignored).
fn unavailable(e: anyhow::Error) -> Response {
    tracing::error!(error = %e, "KibanaWebhook: cannot record the pushed alerts");
    answer(
        StatusCode::SERVICE_UNAVAILABLE,
        "the alerts could not be recorded; retry later",
    )
}
