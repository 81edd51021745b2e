//! The spool `smtp/`: one plain-text file per accepted message for remote recipients.
//! (Skeleton: the store helper fills this in.)

use std::path::PathBuf;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecipientState {
    Pending,
    Delivered,
    Failed,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueRecipient {
    pub address: String,
    pub state: RecipientState,
    pub last_error: Option<String>,
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
    #[error("{path}:{line}: {reason}")]
    Format {
        path: PathBuf,
        line: usize,
        reason: String,
    },
}

#[derive(Debug)]
pub struct QueueStore {
    dir: PathBuf,
}

impl QueueStore {
    pub fn new(dir: PathBuf) -> Self {
        QueueStore { dir }
    }

    /// Writes a new queue file durably (temp name, fsync, rename, fsync dir); returns its id.
    pub fn enqueue(
        &self,
        sender: &str,
        recipients: &[String],
        message: &[u8],
    ) -> Result<String, QueueError> {
        let _ = (sender, recipients, message, &self.dir);
        todo!()
    }

    /// Reads a queue file by id, in either format (JES 1.0 `.ser`, or jes's own).
    pub fn load(&self, id: &str) -> Result<QueuedMessage, QueueError> {
        let _ = id;
        todo!()
    }
}
