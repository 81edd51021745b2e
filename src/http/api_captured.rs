//! Captured mail in the console: what capture mode holds (`capture=true`), one message in the
//! mailbox view's form, and releasing or deleting it.
//!
//! The operations are `queue::capture`'s, through the `Queue` interface; this module reports
//! them (`released`, `deleted-admin` events) as the queue API does. A captured message is read
//! from the queue whole (the mailbox view's parsing in `message`), since it is shown in full.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::Json;
use serde::{Deserialize, Serialize};

use super::api_mail;
use super::message::{self, Detail, Summary};
use super::session::Admin;
use super::{blocking, ApiError, ApiResult, AppState};
use crate::event::{Event, Kind, MessageFacts};
use crate::queue::capture::{self, ReleaseError};
use crate::queue::{valid_id, QueuedMessage};

#[derive(Debug, Serialize)]
pub struct CapturedJson {
    id: String,
    sender: String,
    held: Vec<String>,
    /// Seconds since the epoch.
    received: u64,
    size: u64,
    #[serde(flatten)]
    summary: Summary,
}

#[derive(Debug, Serialize)]
pub struct CapturedDetailJson {
    id: String,
    sender: String,
    held: Vec<String>,
    received: u64,
    size: u64,
    #[serde(flatten)]
    detail: Detail,
}

fn check_id(id: &str) -> ApiResult<()> {
    match valid_id(id) {
        true => Ok(()),
        false => Err(ApiError::not_found(format!(
            "{id:?} is not a queue id (digits)"
        ))),
    }
}

/// Message `id` if capture mode holds it, else 404.
async fn load(state: &AppState, id: &str) -> ApiResult<QueuedMessage> {
    check_id(id)?;
    let m = state.shared.queue.load(id).await.map_err(|e| {
        if e.is_not_found() {
            ApiError::not_found(format!("{id}: no captured message (released or deleted?)"))
        } else {
            ApiError::internal(e)
        }
    })?;
    if !capture::is_captured(&m) {
        return Err(ApiError::not_found(format!(
            "{id}: not held by capture mode"
        )));
    }
    Ok(m)
}

/// `GET /api/captured`: every captured message, oldest first.
pub async fn list(
    State(state): State<AppState>,
    _admin: Admin,
) -> ApiResult<Json<Vec<CapturedJson>>> {
    let (msgs, errors) = capture::list(state.shared.queue.as_ref())
        .await
        .map_err(ApiError::internal)?;
    for e in errors {
        tracing::warn!("HTTP API: cannot read a queue entry: {e}");
    }
    let out = blocking(move || {
        Ok(msgs
            .iter()
            .map(|m| CapturedJson {
                id: m.id.clone(),
                sender: m.sender.clone(),
                held: capture::held(m),
                received: m.received_ms / 1000,
                size: crate::stored_form::pop3_size(&m.message),
                summary: message::summarize(&crate::stored_form::unstuff(&m.message)),
            })
            .collect())
    })
    .await?;
    Ok(Json(out))
}

/// `GET /api/captured/{id}`: the message as the mailbox view shows one.
pub async fn show(
    State(state): State<AppState>,
    _admin: Admin,
    Path(id): Path<String>,
) -> ApiResult<Json<CapturedDetailJson>> {
    let m = load(&state, &id).await?;
    let held = capture::held(&m);
    let size = crate::stored_form::pop3_size(&m.message);
    let (sender, received) = (m.sender.clone(), m.received_ms / 1000);
    let detail =
        blocking(move || Ok(message::detail(&crate::stored_form::unstuff(&m.message)))).await?;
    Ok(Json(CapturedDetailJson {
        id,
        sender,
        held,
        received,
        size,
        detail,
    }))
}

/// `GET /api/captured/{id}/html`: its first HTML part, for the sandboxed frame.
pub async fn html(
    State(state): State<AppState>,
    _admin: Admin,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let m = load(&state, &id).await?;
    let html =
        blocking(move || Ok(message::html_body(&crate::stored_form::unstuff(&m.message)))).await?;
    let html = html.ok_or_else(|| ApiError::not_found("the message has no HTML part"))?;
    Ok(api_mail::html_frame(html))
}

/// `GET /api/captured/{id}/raw`: the message as it would be sent (un-stuffed), as a download.
pub async fn raw(
    State(state): State<AppState>,
    _admin: Admin,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let m = load(&state, &id).await?;
    Ok(api_mail::eml_download(
        &id,
        crate::stored_form::unstuff(&m.message),
    ))
}

/// `GET /api/captured/{id}/attachments/{index}`: the decoded bytes, always as a download.
pub async fn attachment(
    State(state): State<AppState>,
    _admin: Admin,
    Path((id, index)): Path<(String, String)>,
) -> ApiResult<Response> {
    let m = load(&state, &id).await?;
    api_mail::attachment_download(crate::stored_form::unstuff(&m.message), &index).await
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReleaseBody {
    to: Option<String>,
}

fn release_error(e: ReleaseError) -> ApiError {
    match e {
        ReleaseError::NotFound(_) | ReleaseError::NotHeld(_) => ApiError::not_found(e.to_string()),
        ReleaseError::Busy(_) => ApiError::new(StatusCode::CONFLICT, e.to_string()),
        ReleaseError::Queue(e) => ApiError::internal(e),
    }
}

/// Releases `id` and reports one `released` event per address it now goes to.
async fn release_one(
    state: &AppState,
    admin: &Admin,
    id: &str,
    to: Option<&str>,
) -> Result<Vec<String>, ReleaseError> {
    let owner = format!("console:{}", admin.user);
    let r = capture::release(state.shared.queue.as_ref(), id, to, &owner).await?;
    let m = &r.message;
    let facts = MessageFacts::of(&m.id, &m.sender, &m.message, m.received_ms);
    let reply = format!(
        "released by {} (console; held for {})",
        admin.user,
        r.held.join(", ")
    );
    let events =
        r.to.iter()
            .map(|a| {
                Event::new(Kind::Released, &facts, a)
                    .with_reply(&reply)
                    .with_attempt(m.attempts)
            })
            .collect();
    crate::outcome::emit_all(events);
    Ok(r.to)
}

/// `POST /api/captured/{id}/release` with an optional `{"to": "address"}`: sends it now.
pub async fn release(
    State(state): State<AppState>,
    admin: Admin,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<Json<serde_json::Value>> {
    check_id(&id)?;
    let body: ReleaseBody = if body.iter().all(u8::is_ascii_whitespace) {
        ReleaseBody::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("expected {{\"to\": \"address\"}} or nothing: {e}"),
            )
        })?
    };
    let to = body.to.as_deref().map(str::trim).filter(|t| !t.is_empty());
    if let Some(to) = to {
        let ok = to.contains('@') && crate::queue::check_address(to, false).is_ok();
        if !ok {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("{to:?} is not an address"),
            ));
        }
    }
    let sent_to = release_one(&state, &admin, &id, to)
        .await
        .map_err(release_error)?;
    tracing::info!(
        user = admin.user,
        "console: captured message {id} released to {}",
        sent_to.join(", ")
    );
    Ok(Json(serde_json::json!({ "id": id, "to": sent_to })))
}

/// `POST /api/captured/release-all`: releases every captured message.
pub async fn release_all(
    State(state): State<AppState>,
    admin: Admin,
) -> ApiResult<Json<serde_json::Value>> {
    let (msgs, _) = capture::list(state.shared.queue.as_ref())
        .await
        .map_err(ApiError::internal)?;
    let mut released = 0usize;
    for m in msgs {
        match release_one(&state, &admin, &m.id, None).await {
            Ok(_) => released += 1,
            // Released, deleted or taken meanwhile: the others still go.
            Err(e) => tracing::warn!("console: captured message {} not released: {e}", m.id),
        }
    }
    tracing::info!(
        user = admin.user,
        "console: {released} captured messages released"
    );
    Ok(Json(serde_json::json!({ "released": released })))
}

/// `DELETE /api/captured/{id}`: removes it; nobody is told.
pub async fn delete(
    State(state): State<AppState>,
    admin: Admin,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    load(&state, &id).await?;
    let (_, m) = state.shared.queue.delete(&id, None).await.map_err(|e| {
        if e.is_not_found() {
            ApiError::not_found(format!("{id}: no captured message"))
        } else if e.is_busy() {
            ApiError::new(StatusCode::CONFLICT, format!("{id} is busy; try again"))
        } else {
            ApiError::internal(e)
        }
    })?;
    let facts = MessageFacts::of(&m.id, &m.sender, &m.message, m.received_ms);
    let reply = format!("captured message deleted by {} (console)", admin.user);
    let events = capture::held(&m)
        .iter()
        .map(|a| {
            Event::new(Kind::DeletedAdmin, &facts, a)
                .with_reply(&reply)
                .with_attempt(m.attempts)
        })
        .collect();
    crate::outcome::emit_all(events);
    tracing::info!(user = admin.user, "console: captured message {id} deleted");
    Ok(StatusCode::NO_CONTENT)
}
