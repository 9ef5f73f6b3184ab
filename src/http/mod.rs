//! The HTTP surface: Slack's interactivity and Events API endpoints, the Kibana webhook push
//! ([`webhook`]), health and readiness probes, and Prometheus metrics. [`ApiError`] is the one error type at this edge: a client's
//! mistake is a 4xx with a message, never a 5xx.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};

use crate::pipeline::Ctx;
use crate::slack_app::Rejected;

mod webhook;

/// The service's routes. `/metrics` is here unless `METRICS_BIND` gives it an address of its
/// own ([`metrics_router`]), so it need not be exposed with the public Slack endpoints.
pub fn router(ctx: Arc<Ctx>) -> Router {
    let mut router = Router::new()
        .route("/slack/interactions", post(interactions))
        .route("/slack/events", post(events))
        .route("/api/webhook/kibana", post(webhook::kibana))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz));
    if ctx.settings.metrics_bind.is_none() {
        router = router.route("/metrics", get(metrics_page));
    }
    router
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .with_state(ctx)
}

/// `/metrics` alone, for `METRICS_BIND`.
pub fn metrics_router(ctx: Arc<Ctx>) -> Router {
    Router::new()
        .route("/metrics", get(metrics_page))
        .with_state(ctx)
}

async fn interactions(
    State(ctx): State<Arc<Ctx>>,
    headers: HeaderMap,
    body: String,
) -> impl IntoResponse {
    crate::slack_app::interactions::handle(ctx, &headers, &body)
        .await
        .map(|answer| match answer {
            // A modal submission answered synchronously (`response_action`).
            Some(body) => axum::Json(body).into_response(),
            None => StatusCode::OK.into_response(),
        })
        .map_err(ApiError::from)
}

async fn events(
    State(ctx): State<Arc<Ctx>>,
    headers: HeaderMap,
    body: String,
) -> impl IntoResponse {
    crate::slack_app::events::handle(&ctx, &headers, &body)
        .await
        .map_err(ApiError::from)
}

/// An error answered over HTTP: the status says whose problem it is, the body what it is.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
}

impl From<Rejected> for ApiError {
    fn from(r: Rejected) -> Self {
        let status = match &r {
            Rejected::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
            Rejected::Malformed(_) => StatusCode::BAD_REQUEST,
            // Slack retries a 500; the event id makes the retry safe.
            Rejected::Unavailable => StatusCode::INTERNAL_SERVER_ERROR,
        };
        Self {
            status,
            message: r.to_string(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> axum::response::Response {
        (self.status, self.message).into_response()
    }
}

/// Ready when the database answers, Socket Mode (when used) is connected, and (on the replica
/// that polls) every alert source was polled successfully within the last five poll intervals;
/// otherwise 503
/// with the reasons.
async fn readyz(State(ctx): State<Arc<Ctx>>) -> impl IntoResponse {
    let mut problems = Vec::new();
    if !ctx.store.ping().await {
        problems.push("database unavailable".to_string());
    }
    if ctx.settings.approval.transport == crate::config::SlackTransport::Socket
        && !ctx.health.socket_connected()
    {
        problems.push("Slack Socket Mode disconnected".to_string());
    }
    let es = &ctx.settings.elastic;
    let sources: Vec<&str> = es.sources.iter().map(|s| s.name.as_str()).collect();
    let stale_after = es.poll_interval * 5;
    // Only the leading replica polls; the others are ready without polls of their own.
    let polled = if ctx.replica.is_leading(crate::store::Lead::Main) {
        ctx.health.stale_sources(&sources, stale_after)
    } else {
        Vec::new()
    };
    for source in polled {
        problems.push(format!(
            "no successful poll of {source} in {:.0}s",
            stale_after.as_secs_f64()
        ));
    }
    if problems.is_empty() {
        (StatusCode::OK, "ready".to_string())
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, problems.join("; "))
    }
}

async fn metrics_page(State(ctx): State<Arc<Ctx>>) -> impl IntoResponse {
    if let Ok(counts) = ctx.store.outbox_counts().await {
        for (status, n) in counts {
            metrics::gauge!("triage_bot_outbox_jobs", "status" => status).set(n as f64);
        }
    }
    crate::telemetry::prometheus().render()
}
