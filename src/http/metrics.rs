//! `GET /metrics` (Prometheus text format) and `GET /healthz`.
//!
//! Both are public by default (`http.metrics.public`) because scrapers and load balancers do not
//! log in; they reveal counts, not mail. With the key off they need a console session like the API.
//! Health means "can take mail": the queue directory must accept a new file, since every relayed
//! message is written there before the 250.

use axum::extract::{FromRequestParts, Request, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

use super::session::Admin;
use super::{ApiError, AppState};

/// Refuses with 401 when metrics are private and `req` has no session.
async fn allowed(state: &AppState, req: Request) -> Result<(), ApiError> {
    if state.shared.config().mail.http.metrics_public {
        return Ok(());
    }
    let (mut parts, _) = req.into_parts();
    Admin::from_request_parts(&mut parts, state).await.map(drop)
}

pub async fn metrics(State(state): State<AppState>, req: Request) -> Response {
    if let Err(e) = allowed(&state, req).await {
        return e.into_response();
    }
    match crate::stats::render_prometheus() {
        Some(text) => (
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        None => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "metrics are not available")
            .into_response(),
    }
}

pub async fn healthz(State(state): State<AppState>, req: Request) -> Response {
    if let Err(e) = allowed(&state, req).await {
        return e.into_response();
    }
    let queue = &state.shared.queue;
    let probe = queue.probe().await.map_err(|e| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("queue {} is not writable: {e}", queue.location()),
        )
    });
    match probe {
        Ok(()) => Json(serde_json::json!({ "status": "ok" })).into_response(),
        Err(ApiError(_, msg)) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(serde_json::json!({ "status": "unavailable", "error": msg })),
        )
            .into_response(),
    }
}
