//! Local mailboxes, behind an interface.
//!
//! Everything outside this module reaches mailboxes through [`Mailboxes`] (deliver, list, read,
//! open for a POP3 session) and the [`OpenMailbox`] a session holds (read, delete at commit); the
//! lock of a session is the `OpenMailbox` value itself. The interface is async so that a backend
//! may be a database: the file backend ([`files::FileMailboxes`], JES's `users/ADDR/pop*.jmsg`
//! files, the default) does its fsyncs and listings on tokio's blocking pool and reads one
//! message in place (`block_in_place`), cheaper than a hand-off for every RETR. Nothing else opens a
//! mailbox file or parses its name: a message is known outside by its UID (what POP3's UIDL shows).
//!
//! Durable writes come from `crate::durable`, shared with the file queue backend; `root_lock` is
//! the lock `jes serve` holds on its mail root.

pub mod files;
pub mod postgres;
pub mod postgres_export;
pub mod postgres_import;
pub mod root_lock;

pub use crate::durable::is_full;
pub use crate::stored_form::{pop3_size, SizeCounter};
pub use files::FileMailboxes;

use std::io;
use std::sync::Arc;
use std::time::SystemTime;

use async_trait::async_trait;

/// Runs blocking file work (fsyncs, directory scans) on tokio's blocking pool, so the threads
/// that serve sessions never wait for a disk. A panic in `f` comes back as an error.
pub(crate) async fn blocking<T, F>(f: F) -> io::Result<T>
where
    F: FnOnce() -> io::Result<T> + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|e| Err(io::Error::other(format!("file task failed: {e}"))))
}

/// Runs short blocking work (reading one file that is usually in the page cache) where it is:
/// cheaper than a hand-off to the blocking pool for every POP3 RETR. On the multi-threaded
/// runtime the runtime first moves other tasks off this thread; elsewhere (tools, tests on a
/// current-thread runtime) it simply runs.
pub(crate) fn in_place<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(f)
        }
        _ => f(),
    }
}

/// One message in a mailbox as POP3 sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageInfo {
    /// UIDL: unique in its mailbox, 1-70 printable characters; also the console's message id.
    pub uid: String,
    /// The message's id (the one id of its log lines, queue file and outcome events) when the
    /// backend knows it; else the UID (a message JES stored).
    pub id: String,
    /// Octets RETR sends before byte-stuffing (i.e. the unstuffed message with CRLF line ends).
    pub size: u64,
    /// When the message was stored, if the backend knows.
    pub stored_at: Option<SystemTime>,
}

#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("mailbox is in use by another session")]
    InUse,
    #[error("mailbox address cannot be a directory name: {0}")]
    Unsafe(#[from] crate::address::UnsafeAddress),
    #[error("mailbox i/o error: {0}")]
    Io(#[from] std::io::Error),
}

#[derive(Debug, thiserror::Error)]
pub enum DeliverError {
    /// ENOSPC / EDQUOT: answer 452 4.3.1.
    #[error("no space left for the message: {0}")]
    Full(std::io::Error),
    #[error("mailbox address cannot be a directory name: {0}")]
    Unsafe(#[from] crate::address::UnsafeAddress),
    #[error("mailbox i/o error: {0}")]
    Io(std::io::Error),
}

/// The return path as every backend writes it into `Return-Path:`: without its angle brackets;
/// one with a control character is refused (it would break the header line).
fn clean_return_path(return_path: &str) -> Result<&str, DeliverError> {
    let rp = return_path.trim();
    let rp = rp
        .strip_prefix('<')
        .and_then(|s| s.strip_suffix('>'))
        .unwrap_or(rp);
    if rp.chars().any(|c| c.is_control()) {
        return Err(DeliverError::Io(io::Error::new(
            io::ErrorKind::InvalidInput,
            "return path contains a control character",
        )));
    }
    Ok(rp)
}

/// The mailboxes of one server (or of several, for a shared backend).
#[async_trait]
pub trait Mailboxes: Send + Sync + 'static {
    /// Delivers `message` (wire form: CRLF, still dot-stuffed, no terminating dot) into each of
    /// `mailboxes` under the message's `id`, each copy starting with `X-DeliveredTo:` and
    /// `Return-Path:`. All or nothing, and durable when it returns Ok. Returns the new UIDs in
    /// order.
    async fn deliver(
        &self,
        id: &str,
        mailboxes: &[String],
        return_path: &str,
        message: Arc<Vec<u8>>,
    ) -> Result<Vec<String>, DeliverError>;

    /// Lists a mailbox without locking it, oldest first: for looking (the console), never for
    /// deleting. A mailbox that does not exist yet is empty.
    async fn list(&self, mailbox: &str) -> Result<Vec<MessageInfo>, OpenError>;

    /// The stored bytes of a listed message, without the lock; `NotFound` once it is deleted.
    async fn read(&self, mailbox: &str, uid: &str) -> io::Result<Vec<u8>>;

    /// The header section of a listed message, at most `limit` bytes, without the lock.
    async fn head(&self, mailbox: &str, uid: &str, limit: usize) -> io::Result<Vec<u8>>;

    /// Locks and lists a mailbox for a session (POP3, or a deletion from the console); the lock
    /// holds across processes and servers and is released when the value drops. A second open
    /// while it is held is `OpenError::InUse`.
    async fn open(&self, mailbox: &str) -> Result<Box<dyn OpenMailbox>, OpenError>;

    /// Clears what a crash left behind (half-written messages). Called once at start-up, before
    /// any delivery; returns how many leftovers were removed.
    async fn recover(&self) -> io::Result<usize>;
}

/// A mailbox held by one session.
#[async_trait]
pub trait OpenMailbox: Send + Sync {
    /// Its messages at the time it was opened, oldest first.
    fn messages(&self) -> &[MessageInfo];

    /// The stored bytes of message `index` (0-based): wire form, still dot-stuffed.
    async fn read(&self, index: usize) -> io::Result<Vec<u8>>;

    /// The header section of message `index`, at most `limit` bytes.
    async fn head(&self, index: usize, limit: usize) -> io::Result<Vec<u8>>;

    /// Deletes the messages at `indices`, durably (POP3's UPDATE state). A message already gone
    /// is not an error.
    async fn delete(&self, indices: &[usize]) -> io::Result<()>;

    /// Gives the mailbox back and returns once another session, on any server, can open it:
    /// POP3 calls it before its `+OK` to QUIT, since a poller may log in again at once. Dropping
    /// the value also gives it back, only perhaps a moment later (the default does just that).
    async fn close(self: Box<Self>) {}
}
