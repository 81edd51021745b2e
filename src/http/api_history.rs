//! The delivery history in the console: `GET /api/history?q=&since=&limit=`.
//!
//! The same search as `jes trace` (`history::Query`, `history::parse_duration`) and the same JSON
//! objects (`history::render::JsonEvent`), so the console, the API and the command line agree.
//! With `store.url` the search runs on the database's history (every server's events); otherwise
//! each request opens `history.db` read-only on the blocking pool, and a server whose history is
//! off and has never had one answers an empty list.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;

use super::session::Admin;
use super::{blocking, ApiError, ApiResult, AppState};
use crate::history::render::JsonEvent;
use crate::history::{self, HistoryStore, SqliteHistory};

/// Events answered when the request names no limit.
pub const DEFAULT_LIMIT: usize = 100;
/// The most events one request may ask for.
pub const MAX_LIMIT: usize = 1_000;

#[derive(Debug, Deserialize)]
pub struct HistoryParams {
    q: Option<String>,
    since: Option<String>,
    limit: Option<String>,
}

fn bad_request(msg: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, msg)
}

fn limit(param: Option<&str>) -> ApiResult<usize> {
    match param {
        None => Ok(DEFAULT_LIMIT),
        Some(s) => s
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_LIMIT).contains(n))
            .ok_or_else(|| {
                bad_request(format!(
                    "limit must be a whole number from 1 to {MAX_LIMIT}"
                ))
            }),
    }
}

/// `GET /api/history`: `{"events": [...]}`, newest message first, each message's events oldest
/// first.
pub async fn history(
    State(state): State<AppState>,
    _admin: Admin,
    params: Result<Query<HistoryParams>, QueryRejection>,
) -> ApiResult<Json<serde_json::Value>> {
    let Query(p) = params.map_err(|e| bad_request(e.body_text()))?;
    let limit = limit(p.limit.as_deref())?;
    let since_ms = match p.since.as_deref() {
        Some(s) => {
            crate::event::now_ms().saturating_sub(history::parse_duration(s).map_err(bad_request)?)
        }
        None => 0,
    };
    let query = history::Query::parse(p.q.as_deref().unwrap_or(""));
    if let Some(db) = history::database() {
        let records = db
            .query_async(&query, since_ms, Some(limit))
            .await
            .map_err(|e| match e.is_transient() {
                true => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
                false => ApiError::internal(e),
            })?;
        let events: Vec<JsonEvent> = records.iter().map(JsonEvent::of).collect();
        return Ok(Json(serde_json::json!({ "events": events })));
    }
    let path = history::db_path(&state.shared.config().store_dir());
    blocking(move || {
        let Some(store) = SqliteHistory::open_read_only(&path).map_err(ApiError::internal)? else {
            return Ok(Json(serde_json::json!({ "events": [] })));
        };
        let records = store
            .query(&query, since_ms, Some(limit))
            .map_err(ApiError::internal)?;
        let events: Vec<JsonEvent> = records.iter().map(JsonEvent::of).collect();
        Ok(Json(serde_json::json!({ "events": events })))
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits() {
        assert_eq!(limit(None).unwrap(), DEFAULT_LIMIT);
        assert_eq!(limit(Some("1000")).unwrap(), 1000);
        assert_eq!(limit(Some("1")).unwrap(), 1);
        for bad in ["0", "1001", "-1", "x", ""] {
            assert_eq!(
                limit(Some(bad)).unwrap_err().0,
                StatusCode::BAD_REQUEST,
                "{bad}"
            );
        }
    }
}
