//! Captured mail: the messages capture mode holds in the queue, and releasing or deleting them.
//!
//! Held mail is ordinary queued mail whose recipients are in state `held` (see
//! `delivery::attempt::hold_captured`), so it is exactly as durable as the rest of the queue and
//! every backend keeps it the same way. These operations work through the `Queue` interface only
//! (take with a lease, record, release, retry), so the console, the API and `jes capture` (on a
//! `FileQueue` over the spool, whether the server runs or not) share them and any backend serves
//! them. They return what they did; reporting it (events, words) is the caller's.

use std::time::Duration;

use super::{Queue, QueueError, QueueRecipient, QueuedMessage, RecipientState, Taken};
use crate::event::now_ms;

/// How long a release holds its message: a few writes.
const LEASE: Duration = Duration::from_secs(60);

/// Whether `m` has recipients held by capture mode.
pub fn is_captured(m: &QueuedMessage) -> bool {
    m.recipients.iter().any(|r| r.state == RecipientState::Held)
}

/// The held recipients' addresses.
pub fn held(m: &QueuedMessage) -> Vec<String> {
    m.recipients
        .iter()
        .filter(|r| r.state == RecipientState::Held)
        .map(|r| r.address.clone())
        .collect()
}

/// Every captured message, oldest first, and the descriptions of unreadable queue entries.
pub async fn list(queue: &dyn Queue) -> Result<(Vec<QueuedMessage>, Vec<String>), QueueError> {
    let (mut msgs, errors) = queue.list().await?;
    msgs.retain(is_captured);
    msgs.sort_by(|a, b| (a.received_ms, &a.id).cmp(&(b.received_ms, &b.id)));
    Ok((msgs, errors))
}

/// Why a release could not be done.
#[derive(Debug, thiserror::Error)]
pub enum ReleaseError {
    #[error("no queued message {0}")]
    NotFound(String),
    #[error("message {0} has no held recipient")]
    NotHeld(String),
    #[error("message {0} is busy (a delivery attempt holds it); try again")]
    Busy(String),
    #[error(transparent)]
    Queue(#[from] QueueError),
}

/// What a release did: the message as saved, the held addresses it had, and where they now go.
#[derive(Debug)]
pub struct Released {
    pub message: QueuedMessage,
    pub held: Vec<String>,
    pub to: Vec<String>,
}

/// Releases message `id`'s held recipients: they become `released` (pending, not held again
/// while capture stays on) and the message is due now. With `to`, they are replaced by that one
/// address: only the envelope changes, the message is sent as it is. `owner` names the lease.
pub async fn release(
    queue: &dyn Queue,
    id: &str,
    to: Option<&str>,
    owner: &str,
) -> Result<Released, ReleaseError> {
    if !super::valid_id(id) {
        return Err(ReleaseError::NotFound(id.to_string()));
    }
    let (lease, mut msg) = take_waiting(queue, id, owner).await?;
    let held = held(&msg);
    if held.is_empty() {
        queue.release(lease).await;
        return Err(ReleaseError::NotHeld(id.to_string()));
    }
    let note = "released by the administrator";
    let to: Vec<String> = match to {
        Some(addr) => {
            // The new address inherits the first held recipient's DSN request (its NOTIFY, and
            // ORCPT naming the address the sender wrote): the sender asked about that one.
            let dsn = msg
                .recipients
                .iter()
                .find(|r| r.state == RecipientState::Held)
                .map(|r| r.dsn.clone())
                .unwrap_or_default();
            msg.recipients.retain(|r| r.state != RecipientState::Held);
            msg.recipients.push(QueueRecipient {
                address: addr.to_string(),
                state: RecipientState::Released,
                last_error: Some(format!("{note} (was {})", held.join(", "))),
                dsn,
            });
            vec![addr.to_string()]
        }
        None => {
            for r in msg.recipients.iter_mut() {
                if r.state == RecipientState::Held {
                    r.state = RecipientState::Released;
                    r.last_error = Some(note.into());
                }
            }
            held.clone()
        }
    };
    msg.next_attempt_ms = now_ms();
    let saved = queue.record(&lease, &msg).await;
    queue.release(lease).await;
    saved?;
    // Wakes a running server (the file backend leaves a retry request for it).
    queue.retry(Some(id)).await?;
    Ok(Released {
        message: msg,
        held,
        to,
    })
}

/// Takes `id`, waiting up to ten seconds for an attempt or tool that holds it.
async fn take_waiting(
    queue: &dyn Queue,
    id: &str,
    owner: &str,
) -> Result<(super::Lease, QueuedMessage), ReleaseError> {
    for _ in 0..50 {
        match queue.take(id, owner, LEASE).await {
            Ok(Taken::Leased(lease, msg)) => return Ok((lease, msg)),
            Ok(Taken::Gone) => return Err(ReleaseError::NotFound(id.to_string())),
            Ok(Taken::Busy) => tokio::time::sleep(Duration::from_millis(200)).await,
            Err(e) if e.is_not_found() => return Err(ReleaseError::NotFound(id.to_string())),
            Err(e) => return Err(e.into()),
        }
    }
    Err(ReleaseError::Busy(id.to_string()))
}
