//! Mailboxes in the console: the accounts, their messages, one message (parsed, raw, its HTML,
//! its attachments), and deletion.
//!
//! Everything goes through the `Mailboxes` interface. Reading never locks a mailbox
//! (`Mailboxes::list`, `head`, `read`), so an administrator can look while the tracker is polling.
//! Deleting takes the same lock as a POP3 session (`Mailboxes::open`): while a session holds the
//! mailbox the answer is 409, because the session's message numbers must not change under it.
//! Only accounts in `user.conf` are served. A message is found by its UIDL among the listed ones;
//! the backend alone turns a UIDL into a file.
//!
//! The message's HTML is served by its own endpoint for a sandboxed frame: a CSP without scripts,
//! remote images or forms, so mail from strangers can be looked at without running it.

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;

use super::message::{self, Detail, Summary};
use super::session::Admin;
use super::{blocking, ApiError, ApiResult, AppState};
use crate::event::{Event, Kind, MessageFacts};
use crate::store::{MessageInfo, OpenError};

/// The policy for a message's HTML: no scripts, no remote anything, its own origin (`sandbox`).
pub const MESSAGE_HTML_CSP: &str =
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; sandbox";

/// Most bytes read from each message to list it: the header section is what is shown, and a
/// mailbox of thousands of messages must not mean reading all of them whole.
const SUMMARY_PREFIX: usize = 64 * 1024;

#[derive(Debug, Serialize)]
pub struct MailboxJson {
    address: String,
    messages: usize,
    bytes: u64,
}

#[derive(Debug, Serialize)]
pub struct MessageJson {
    id: String,
    size: u64,
    #[serde(flatten)]
    summary: Summary,
    received: u64,
}

#[derive(Debug, Serialize)]
pub struct MessageDetailJson {
    id: String,
    size: u64,
    #[serde(flatten)]
    detail: Detail,
}

/// A store time as seconds since the epoch (0 when unknown).
fn epoch_secs(t: Option<std::time::SystemTime>) -> u64 {
    t.and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs())
}

fn open_error(e: OpenError) -> ApiError {
    match e {
        OpenError::InUse => ApiError::new(
            StatusCode::CONFLICT,
            "mailbox is in use by a POP3 session; try again when it has logged out",
        ),
        OpenError::Unsafe(e) => ApiError::not_found(format!("no such mailbox: {e}")),
        OpenError::Io(e) => ApiError::internal(e),
    }
}

/// The canonical address of an account in user.conf, or 404.
fn account(state: &AppState, address: &str) -> ApiResult<String> {
    let config = state.shared.config();
    let canon = crate::address::canonical(address);
    if !config.users.exists(&canon) || crate::address::mailbox_dir_name(&canon).is_err() {
        return Err(ApiError::not_found(format!("no such mailbox: {address}")));
    }
    Ok(canon)
}

/// `GET /api/mailboxes`: every account, sorted, with its message count and POP3 octets.
pub async fn mailboxes(
    State(state): State<AppState>,
    _admin: Admin,
) -> ApiResult<Json<Vec<MailboxJson>>> {
    let mut accounts: Vec<String> = state
        .shared
        .config()
        .users
        .accounts
        .keys()
        .cloned()
        .collect();
    accounts.sort();
    let store = &state.shared.mailboxes;
    let mut out = Vec::with_capacity(accounts.len());
    for address in accounts {
        let listed = match store.list(&address).await {
            Ok(l) => l,
            // An account whose name cannot be a directory has no mailbox to show.
            Err(OpenError::Unsafe(_)) => Vec::new(),
            Err(e) => return Err(open_error(e)),
        };
        out.push(MailboxJson {
            address,
            messages: listed.len(),
            bytes: listed.iter().map(|m| m.size).sum(),
        });
    }
    Ok(Json(out))
}

/// `GET /api/mailboxes/{address}/messages`: newest first.
pub async fn messages(
    State(state): State<AppState>,
    _admin: Admin,
    Path(address): Path<String>,
) -> ApiResult<Json<Vec<MessageJson>>> {
    let address = account(&state, &address)?;
    let store = &state.shared.mailboxes;
    let listed = store.list(&address).await.map_err(open_error)?;
    let mut out = Vec::with_capacity(listed.len());
    for info in listed.iter().rev() {
        let head = match store.head(&address, &info.uid, SUMMARY_PREFIX).await {
            Ok(h) => h,
            // Deleted by a POP3 client since the listing.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(ApiError::internal(e)),
        };
        out.push(MessageJson {
            id: info.uid.clone(),
            size: info.size,
            summary: message::summarize(&message::unstuff(&head)),
            received: epoch_secs(info.stored_at),
        });
    }
    Ok(Json(out))
}

/// Finds message `id` of `address` and reads it, un-stuffed.
async fn load(state: &AppState, address: &str, id: &str) -> ApiResult<(MessageInfo, Vec<u8>)> {
    let address = account(state, address)?;
    let store = &state.shared.mailboxes;
    let listed = store.list(&address).await.map_err(open_error)?;
    let not_found = || ApiError::not_found(format!("no message {id:?} in {address}"));
    let info = listed
        .into_iter()
        .find(|m| m.uid == id)
        .ok_or_else(not_found)?;
    match store.read(&address, &info.uid).await {
        Ok(bytes) => Ok((info, message::unstuff(&bytes))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(not_found()),
        Err(e) => Err(ApiError::internal(e)),
    }
}

/// `GET /api/mailboxes/{address}/messages/{id}`: parsed.
pub async fn message(
    State(state): State<AppState>,
    _admin: Admin,
    Path((address, id)): Path<(String, String)>,
) -> ApiResult<Json<MessageDetailJson>> {
    let (info, bytes) = load(&state, &address, &id).await?;
    let detail = blocking(move || Ok(message::detail(&bytes))).await?;
    Ok(Json(MessageDetailJson {
        id: info.uid,
        size: info.size,
        detail,
    }))
}

fn disposition(filename: &str) -> String {
    format!(
        "attachment; filename=\"{}\"",
        message::safe_filename(filename)
    )
}

/// `GET .../{id}/raw`: the whole stored message, un-stuffed, with jes's `X-DeliveredTo:` and
/// `Return-Path:` lines: exactly what POP3 RETR gives.
pub async fn raw(
    State(state): State<AppState>,
    _admin: Admin,
    Path((address, id)): Path<(String, String)>,
) -> ApiResult<Response> {
    let (info, bytes) = load(&state, &address, &id).await?;
    Ok(eml_download(&info.uid, bytes))
}

/// A whole message as a download named `<name>.eml` (the mailbox view and captured mail).
pub(super) fn eml_download(name: &str, bytes: Vec<u8>) -> Response {
    (
        [
            (header::CONTENT_TYPE, "message/rfc822".to_string()),
            (
                header::CONTENT_DISPOSITION,
                disposition(&format!("{name}.eml")),
            ),
        ],
        bytes,
    )
        .into_response()
}

/// A message's first HTML part for the console's sandboxed frame: no scripts, no remote
/// content, framed only by the console itself.
pub(super) fn html_frame(html: String) -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CONTENT_SECURITY_POLICY, MESSAGE_HTML_CSP),
            (header::X_FRAME_OPTIONS, "SAMEORIGIN"),
        ],
        html,
    )
        .into_response()
}

/// Attachment `index` of a message (as stored or as sent), decoded, always as a download.
pub(super) async fn attachment_download(message: Vec<u8>, index: &str) -> ApiResult<Response> {
    let index: usize = index
        .parse()
        .map_err(|_| ApiError::not_found(format!("no attachment {index:?}")))?;
    let found = blocking(move || Ok(message::attachment(&message, index))).await?;
    let (name, contents) =
        found.ok_or_else(|| ApiError::not_found(format!("no attachment {index}")))?;
    let name = name.unwrap_or_else(|| format!("attachment-{index}"));
    Ok((
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_string()),
            (header::CONTENT_DISPOSITION, disposition(&name)),
        ],
        contents,
    )
        .into_response())
}

/// `GET .../{id}/html`: the first HTML part, for a sandboxed frame in the console.
pub async fn html(
    State(state): State<AppState>,
    _admin: Admin,
    Path((address, id)): Path<(String, String)>,
) -> ApiResult<Response> {
    let (_, bytes) = load(&state, &address, &id).await?;
    let html = blocking(move || Ok(message::html_body(&bytes))).await?;
    let html = html.ok_or_else(|| ApiError::not_found("the message has no HTML part"))?;
    Ok(html_frame(html))
}

/// `GET .../{id}/attachments/{index}`: the decoded bytes, always as a download.
pub async fn attachment(
    State(state): State<AppState>,
    _admin: Admin,
    Path((address, id, index)): Path<(String, String, String)>,
) -> ApiResult<Response> {
    let (_, bytes) = load(&state, &address, &id).await?;
    attachment_download(bytes, &index).await
}

/// `DELETE /api/mailboxes/{address}/messages/{id}`: 204, or 409 while a POP3 session holds the
/// mailbox.
pub async fn delete(
    State(state): State<AppState>,
    admin: Admin,
    Path((address, id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let address = account(&state, &address)?;
    let mailbox = state
        .shared
        .mailboxes
        .open(&address)
        .await
        .map_err(open_error)?;
    let index = mailbox
        .messages()
        .iter()
        .position(|m| m.uid == id)
        .ok_or_else(|| ApiError::not_found(format!("no message {id:?} in {address}")))?;
    // For the outcome event: what the message was, read before it goes.
    let head = mailbox.head(index, 16 * 1024).await.unwrap_or_default();
    let (size, message_id) = {
        let info = &mailbox.messages()[index];
        (info.size, info.id.clone())
    };
    mailbox.delete(&[index]).await.map_err(ApiError::internal)?;
    let facts = MessageFacts::of_stored(&message_id, &head, size);
    let reply = format!("deleted from the mailbox by {} (console)", admin.user);
    crate::outcome::emit(Event::new(Kind::DeletedAdmin, &facts, &address).with_reply(&reply));
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::SUMMARY_PREFIX;
    use crate::store::files::read_head;

    #[test]
    fn reads_the_head_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m");
        let mut text = String::from("Subject: x\r\n\r\n");
        text.push_str(&"body line\r\n".repeat(10_000));
        std::fs::write(&path, &text).unwrap();
        let head = read_head(&path, SUMMARY_PREFIX).unwrap();
        assert!(head.len() <= 4096 && head.starts_with(b"Subject: x\r\n\r\n"));
        // No empty line: stops at the limit.
        std::fs::write(&path, "X: y\r\n".repeat(100_000)).unwrap();
        assert_eq!(read_head(&path, 10_000).unwrap().len(), 10_000);
    }
}
