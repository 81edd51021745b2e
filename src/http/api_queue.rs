//! The queue in the console: list, show, retry, delete (with or without a bounce).
//!
//! Every action goes through the `Queue` interface; the file backend performs them with the code
//! behind `jes queue` (`queue::admin`), so the console and the command line cannot disagree:
//! changes are made under the message's lease lock (the runner may be delivering that very
//! message) and the runner is woken by a retry request. Ids are checked to be digits first.

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Serialize;

use super::session::Admin;
use super::{ApiError, ApiResult, AppState};
use crate::event::{Event, Kind, MessageFacts};
use crate::queue::admin::{self, Deleted};
use crate::queue::{valid_id, BounceFrom, QueueError, QueuedMessage};

#[derive(Debug, Serialize)]
pub struct RecipientJson {
    address: String,
    state: &'static str,
    last_error: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct EntryJson {
    id: String,
    sender: String,
    recipients: Vec<RecipientJson>,
    attempts: u32,
    /// Seconds since the epoch; null when nothing is pending.
    next_attempt: Option<u64>,
    created: u64,
    last_error: Option<String>,
    size: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    headers: Option<String>,
}

fn entry_json(m: &QueuedMessage, with_headers: bool) -> EntryJson {
    let pending = m.recipients.iter().any(|r| r.state.is_pending());
    let last_error = admin::last_error(m);
    EntryJson {
        id: m.id.clone(),
        sender: m.sender.clone(),
        recipients: m
            .recipients
            .iter()
            .map(|r| RecipientJson {
                address: r.address.clone(),
                state: r.state.as_str(),
                last_error: r.last_error.clone(),
            })
            .collect(),
        attempts: m.attempts,
        next_attempt: pending.then_some(m.next_attempt_ms / 1000),
        created: m.received_ms / 1000,
        last_error: (!last_error.is_empty()).then(|| last_error.to_string()),
        size: m.message.len() as u64,
        headers: with_headers.then(|| {
            let mut text = admin::header_lines_raw(&m.message).join("\n");
            text.push('\n');
            text
        }),
    }
}

/// The error answer for a failed queue operation on `id`.
fn queue_error(id: &str, e: QueueError) -> ApiError {
    match &e {
        _ if e.is_not_found() => {
            ApiError::not_found(format!("{id}: not in the queue (delivered or deleted?)"))
        }
        _ if e.is_busy() => ApiError::new(
            StatusCode::CONFLICT,
            format!("{id} is busy (being delivered); try again"),
        ),
        _ => ApiError::internal(e),
    }
}

fn check_id(id: &str) -> ApiResult<()> {
    if valid_id(id) {
        Ok(())
    } else {
        Err(ApiError::not_found(format!(
            "{id:?} is not a queue id (digits)"
        )))
    }
}

/// `GET /api/queue`: every entry, oldest id first. Unreadable files are logged, not fatal.
pub async fn list(State(state): State<AppState>, _admin: Admin) -> ApiResult<Json<Vec<EntryJson>>> {
    let (msgs, errors) = state
        .shared
        .queue
        .list()
        .await
        .map_err(ApiError::internal)?;
    for e in errors {
        tracing::warn!("HTTP API: cannot read a queue entry: {e}");
    }
    Ok(Json(msgs.iter().map(|m| entry_json(m, false)).collect()))
}

/// `GET /api/queue/{id}`: the entry and its message headers.
pub async fn show(
    State(state): State<AppState>,
    _admin: Admin,
    Path(id): Path<String>,
) -> ApiResult<Json<EntryJson>> {
    check_id(&id)?;
    let m = state
        .shared
        .queue
        .load(&id)
        .await
        .map_err(|e| queue_error(&id, e))?;
    Ok(Json(entry_json(&m, true)))
}

/// `POST /api/queue/{id}/retry`: due now, and the runner is woken.
pub async fn retry(
    State(state): State<AppState>,
    admin: Admin,
    Path(id): Path<String>,
) -> ApiResult<Json<serde_json::Value>> {
    check_id(&id)?;
    let queue = &state.shared.queue;
    queue
        .retry(Some(&id))
        .await
        .map_err(|e| queue_error(&id, e))?;
    tracing::info!(user = admin.user, "console: queue entry {id} due now");
    Ok(Json(serde_json::json!({ "id": id })))
}

/// `POST /api/queue/retry-all`: every entry due now; entries that vanish meanwhile are skipped.
pub async fn retry_all(
    State(state): State<AppState>,
    admin: Admin,
) -> ApiResult<Json<serde_json::Value>> {
    let retried = state
        .shared
        .queue
        .retry(None)
        .await
        .map_err(ApiError::internal)?;
    tracing::info!(
        user = admin.user,
        "console: {retried} queue entries due now"
    );
    Ok(Json(serde_json::json!({ "retried": retried })))
}

/// `?bounce=true|false` (default false); anything else is a 400.
fn bounce_param(query: Option<&str>) -> ApiResult<bool> {
    let mut bounce = false;
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        if k == "bounce" {
            bounce = match v {
                "true" => true,
                "false" => false,
                _ => {
                    return Err(ApiError::new(
                        StatusCode::BAD_REQUEST,
                        "bounce must be true or false",
                    ))
                }
            };
        }
    }
    Ok(bounce)
}

/// `DELETE /api/queue/{id}?bounce=true|false`.
pub async fn delete(
    State(state): State<AppState>,
    admin: Admin,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
) -> ApiResult<Json<serde_json::Value>> {
    check_id(&id)?;
    let bounce = bounce_param(query.as_deref())?;
    let config = state.shared.config();
    let from = BounceFrom {
        hostname: config.mail.hostname.clone(),
        dkim: config.mail.dkim.clone(),
    };
    drop(config);
    let (outcome, msg) = state
        .shared
        .queue
        .delete(&id, bounce.then_some(&from))
        .await
        .map_err(|e| queue_error(&id, e))?;
    let facts = MessageFacts::of(&msg.id, &msg.sender, &msg.message, msg.received_ms);
    let reply = format!("deleted from the queue by {} (console)", admin.user);
    let events = msg
        .recipients
        .iter()
        .filter(|r| r.state.is_pending())
        .map(|r| {
            Event::new(Kind::DeletedAdmin, &facts, &r.address)
                .with_reply(&reply)
                .with_attempt(msg.attempts)
        })
        .collect();
    crate::outcome::emit_all(events);
    tracing::info!(
        user = admin.user,
        "console: queue entry {id} deleted ({outcome:?})"
    );
    let bounce_id = match outcome {
        Deleted::Bounced { bounce_id, .. } => Some(bounce_id),
        _ => None,
    };
    Ok(Json(
        serde_json::json!({ "id": id, "bounce_id": bounce_id }),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounce_parameter() {
        assert!(!bounce_param(None).unwrap());
        assert!(bounce_param(Some("bounce=true")).unwrap());
        assert!(!bounce_param(Some("x=1&bounce=false")).unwrap());
        for bad in ["bounce=yes", "bounce=", "bounce"] {
            assert_eq!(
                bounce_param(Some(bad)).unwrap_err().0,
                StatusCode::BAD_REQUEST
            );
        }
    }

    #[test]
    fn only_digits_are_queue_ids() {
        assert!(check_id("123").is_ok());
        for bad in ["", "../1", "1/2", "abc", "1.ser", "%2e%2e"] {
            assert_eq!(check_id(bad).unwrap_err().0, StatusCode::NOT_FOUND, "{bad}");
        }
    }
}
