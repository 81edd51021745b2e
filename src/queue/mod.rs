//! The queue of messages for remote recipients, behind an interface.
//!
//! Everything outside this module reaches queued mail through [`Queue`]: the accept step
//! enqueues, the runner takes due messages for an attempt and records each attempt's result, the
//! console lists, retries and deletes. Work is taken with a [`Lease`] (owner, token, expiry), and
//! every later write for a leased message carries its token: a holder whose lease expired (a
//! stalled attempt, a server presumed dead) gets `QueueError::LeaseLost` instead of overwriting the
//! result of whoever took the message after it. So a backend shared by several servers (a
//! database) can hand each message to one attempt at a time without trusting clocks for more than
//! the lease's expiry.
//!
//! The default backend is `files::FileQueue`, over JES's spool folder `smtp/` (`spool`): its
//! leases are held as `flock`s on the queue files (`lock`), which also keep the `jes queue` tools
//! out while an attempt runs. Its administrative operations (`admin`: retry, delete with a bounce)
//! serve the console through `FileQueue` and `jes queue` (`crate::cli::queue`) directly on a
//! spool folder, with or without a running server.

pub mod admin;
pub mod bounce;
pub mod capture;
pub mod file_lock;
pub mod files;
mod format;
pub mod postgres;
pub mod postgres_export;
pub mod postgres_import;
mod postgres_ready;
mod postgres_sql;
#[cfg(test)]
mod prop_tests;
pub mod retry_request;
pub mod schedule;
pub mod spool;

pub use file_lock::{lock, lock_timeout, try_lock, QueueLock};
pub use files::FileQueue;

/// Who the bounce of an administrator's deletion is from: our host name, and the DKIM keys
/// (`dkim.DOMAIN`) that sign jes's own reports, so that it is signed as an attempt's bounce is.
#[derive(Debug, Clone)]
pub struct BounceFrom {
    pub hostname: String,
    pub dkim: Vec<crate::dkim::DomainKey>,
}
pub use format::{check_address, format, parse, ParseError, JES_QUEUE_V1, JES_V1};
pub use retry_request::{request_retry, retry_dir_stamp, take_retry_requests, RetryRequest};
pub use spool::Spool;

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::dsn::{Dsn, MessageDsn, RecipientDsn};
use crate::durable::is_full;

/// Message ids are digits only (`<millis><counter>`), so an id can never name a file outside the
/// spool, and every backend can use them as keys.
pub fn valid_id(id: &str) -> bool {
    !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecipientState {
    Pending,
    Delivered,
    Failed,
    /// Kept back by capture mode (`capture=true`): not tried, not due, until an administrator
    /// releases or deletes it. Held mail stays in the queue, so it is as durable as pending mail.
    Held,
    /// Released from capture by an administrator: pending, and not held again while capture
    /// stays on.
    Released,
}

impl RecipientState {
    /// Still to be delivered: pending, or released from capture.
    pub fn is_pending(self) -> bool {
        matches!(self, RecipientState::Pending | RecipientState::Released)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueRecipient {
    pub address: String,
    pub state: RecipientState,
    pub last_error: Option<String>,
    /// `NOTIFY=` and `ORCPT=` as the sender gave them (RFC 3461), passed on or acted on.
    pub dsn: RecipientDsn,
}

/// A queue file read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedMessage {
    pub id: String,
    /// Envelope sender; empty for the null sender `<>`.
    pub sender: String,
    pub recipients: Vec<QueueRecipient>,
    pub received_ms: u64,
    pub next_attempt_ms: u64,
    pub attempts: u32,
    /// Whether the sender was already told the message is delayed (`smtpdelivery.delaywarning`),
    /// so that a restart does not tell them again.
    pub delay_warned: bool,
    /// `RET=` and `ENVID=` as the sender gave them (RFC 3461).
    pub dsn: MessageDsn,
    /// Wire form: CRLF, dot-stuffed, no terminating dot.
    pub message: Vec<u8>,
}

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("no space left for the message: {0}")]
    Full(std::io::Error),
    #[error("queue i/o error on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The lease this write carried expired or was taken over: the message's state is now its
    /// successor's to write.
    #[error("lease on queue entry {id} lost (expired or taken over)")]
    LeaseLost { id: String },
    #[error("{path}:{line}: {reason}")]
    Format {
        path: PathBuf,
        line: usize,
        reason: String,
    },
}

impl QueueError {
    /// The message is not (or no longer) queued. Every backend reports this as an `Io` error of
    /// kind `NotFound`, so callers (the console's 404) need not know the backend.
    pub fn is_not_found(&self) -> bool {
        matches!(self, QueueError::Io { source, .. } if source.kind() == io::ErrorKind::NotFound)
    }

    /// Someone else holds the message for longer than the caller waits (kind `WouldBlock`).
    pub fn is_busy(&self) -> bool {
        matches!(self, QueueError::Io { source, .. } if source.kind() == io::ErrorKind::WouldBlock)
    }

    pub(crate) fn io(source: io::Error, path: &Path) -> Self {
        if is_full(&source) {
            let msg = format!("{}: {source}", path.display());
            QueueError::Full(io::Error::new(source.kind(), msg))
        } else {
            QueueError::Io {
                path: path.to_path_buf(),
                source,
            }
        }
    }

    pub(crate) fn invalid(path: &Path, reason: String) -> Self {
        QueueError::Io {
            path: path.to_path_buf(),
            source: io::Error::new(io::ErrorKind::InvalidInput, reason),
        }
    }
}

/// A message taken for one delivery attempt: every write names `token`; after `expires_ms` (epoch
/// ms) another `take` may take the message over, and from then on this lease's writes fail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub id: String,
    pub owner: String,
    pub token: u64,
    pub expires_ms: u64,
}

/// What `Queue::take` found.
// One per attempt, moved straight out: the size of the message's fields costs nothing here.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Taken {
    /// Leased to the caller, with the message as stored.
    Leased(Lease, QueuedMessage),
    /// Someone else holds it (an attempt, a `jes queue` tool, another server): come back shortly.
    Busy,
    /// It is no longer queued (delivered, deleted).
    Gone,
}

/// The outcome of deleting a queued message from the console.
pub use admin::Deleted;

/// The queue of one server (or of several, for a shared backend).
#[async_trait]
pub trait Queue: Send + Sync + 'static {
    /// Where the queue is, for log lines (`/var/lib/jes/smtp`).
    fn location(&self) -> String;

    /// Stores a new message durably (Ok is what allows the 250) under `id` (another id only if
    /// that one is taken); every recipient pending, due now. Returns the id used. `dsn` holds the
    /// DSN parameters (RFC 3461) of the message and of those recipients that had any: they are
    /// kept with the message (`QueuedMessage::dsn`, `QueueRecipient::dsn`).
    async fn enqueue(
        &self,
        id: &str,
        sender: &str,
        recipients: &[String],
        dsn: &Dsn,
        message: Arc<Vec<u8>>,
    ) -> Result<String, QueueError>;

    /// Stores a new message as `enqueue` does, for this server's runner, which the caller hands
    /// the id to at once (the accept step) unless it `withdraw`s it. A backend shared by several
    /// servers may lease it to this server from the start, so that the attempt's `take` needs no
    /// round trip; the default is `enqueue`.
    async fn enqueue_for_attempt(
        &self,
        id: &str,
        sender: &str,
        recipients: &[String],
        dsn: &Dsn,
        message: Arc<Vec<u8>>,
    ) -> Result<String, QueueError> {
        self.enqueue(id, sender, recipients, dsn, message).await
    }

    /// The server is stopping and its runner has stopped: messages `enqueue_for_attempt` kept
    /// for it are given back, so that other servers need not wait for their leases to run out.
    /// The default has nothing to give back.
    async fn stop(&self) {}

    /// The ids of every queued message, when the queue may have changed from outside this server
    /// since the last call (first call: always); `None` when it certainly did not. The runner
    /// polls this to find mail it was not handed (a restored backup, JES's spool, a tool).
    async fn arrivals(&self) -> Result<Option<Vec<String>>, QueueError>;

    /// When each of `ids` is next due and when it was received (epoch ms): what the runner needs
    /// to schedule a message it found. Unreadable entries are logged and left out.
    async fn times(&self, ids: Vec<String>) -> Vec<(String, u64, u64)>;

    /// Takes message `id` for a delivery attempt, leased to `owner` for `ttl`.
    async fn take(&self, id: &str, owner: &str, ttl: Duration) -> Result<Taken, QueueError>;

    /// Writes the new state of a leased message; the lease stays held. `LeaseLost` once someone
    /// took the message over.
    async fn record(&self, lease: &Lease, msg: &QueuedMessage) -> Result<(), QueueError>;

    /// Removes a leased message whose recipients are all done, ending the lease; with
    /// `keep_failed`, first keeps that final state where undeliverable mail is kept (JES's
    /// `failed/`): a message that failed and could not be bounced (a bounce itself).
    async fn complete(
        &self,
        lease: Lease,
        keep_failed: Option<&QueuedMessage>,
    ) -> Result<(), QueueError>;

    /// Ends a lease without writing.
    async fn release(&self, lease: Lease);

    /// Takes back a message just enqueued that nobody has taken yet (the accept step, when its
    /// mailbox copies failed). One already gone is fine.
    async fn withdraw(&self, id: &str) -> Result<(), QueueError>;

    /// Every queued message (for the console), with a description of each entry that cannot be
    /// read.
    async fn list(&self) -> Result<(Vec<QueuedMessage>, Vec<String>), QueueError>;

    /// One queued message.
    async fn load(&self, id: &str) -> Result<QueuedMessage, QueueError>;

    /// Makes message `id` (all messages for `None`) due now, and tells the runner. Returns how
    /// many were made due; with `None`, one that cannot be rewritten is logged and skipped.
    async fn retry(&self, id: Option<&str>) -> Result<usize, QueueError>;

    /// The retry requests made since the last call (`retry`, or `jes queue retry` from outside).
    async fn retry_requests(&self) -> Vec<RetryRequest>;

    /// Deletes message `id`, bouncing it to its sender first when `bounce_from` is given. Waits a
    /// little for an attempt in progress.
    async fn delete(
        &self,
        id: &str,
        bounce_from: Option<&BounceFrom>,
    ) -> Result<(Deleted, QueuedMessage), QueueError>;

    /// Whether a message could be stored now (`/healthz`).
    async fn probe(&self) -> io::Result<()>;

    /// Clears what a crash left behind (half-written entries). Called once at start-up, before
    /// any enqueue; returns how many leftovers were removed.
    async fn recover(&self) -> io::Result<usize>;

    /// For a queue several servers share: how many messages wait in it in all (not failed) and
    /// when the oldest arrived (epoch ms). Each server's runner sees only what it may claim soon,
    /// so the shared count comes from the backend. `None` for a queue one server owns, whose
    /// runner counts it itself.
    async fn shared_depth(&self) -> Option<io::Result<(usize, Option<u64>)>> {
        None
    }
}
