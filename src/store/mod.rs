//! Local mailboxes under `users/ADDR/`, one `popNNNN.jmsg` file per message.
//! (Skeleton: the store helper fills this in.)

use std::path::PathBuf;

/// One message in a mailbox as POP3 sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageInfo {
    /// UIDL: the file name without `pop` and `.jmsg`.
    pub uid: String,
    /// Octets RETR sends before byte-stuffing (i.e. the unstuffed message with CRLF line ends).
    pub size: u64,
    pub path: PathBuf,
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

/// The mailboxes of one configuration directory.
#[derive(Debug)]
pub struct MailStore {
    users_dir: PathBuf,
}

impl MailStore {
    pub fn new(users_dir: PathBuf) -> Self {
        MailStore { users_dir }
    }

    /// Delivers `message` (wire form: CRLF line ends, still dot-stuffed, no terminating dot) into
    /// each mailbox of `mailboxes`, each file starting with `X-DeliveredTo: <mailbox>` and
    /// `Return-Path: <return_path>`. Durable when it returns Ok (files and directories fsynced).
    /// Returns the new UIDs in the same order.
    pub fn deliver(
        &self,
        mailboxes: &[String],
        return_path: &str,
        message: &[u8],
    ) -> Result<Vec<String>, DeliverError> {
        let _ = (mailboxes, return_path, message, &self.users_dir);
        todo!()
    }

    /// Locks and lists a mailbox for a POP3 session; the lock is released when `Mailbox` drops.
    pub fn open(&self, mailbox: &str) -> Result<Mailbox, OpenError> {
        let _ = mailbox;
        todo!()
    }
}

/// A locked mailbox with its messages, oldest first.
#[derive(Debug)]
pub struct Mailbox {
    pub messages: Vec<MessageInfo>,
}

impl Mailbox {
    /// The stored bytes of message `index` (0-based): wire form, still dot-stuffed.
    pub fn read(&self, index: usize) -> std::io::Result<Vec<u8>> {
        let _ = index;
        todo!()
    }

    /// Deletes the messages at `indices` (0-based), durably.
    pub fn delete(&self, indices: &[usize]) -> std::io::Result<()> {
        let _ = indices;
        todo!()
    }
}
