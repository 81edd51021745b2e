//! The delivery history: a durable record of every outcome event, so that "did the notification
//! about task 123 reach bob?" has an answer weeks later, with the remote server's own reply.
//!
//! `outcome::emit_all` hands each batch of events to [`record`], which only tries to put them on a
//! bounded channel (`writer`): it never blocks and never touches a file, so writing history cannot
//! delay an SMTP reply. One writer thread takes them off the channel and commits them in batches
//! (at most 1 s or [`BATCH_MAX`] events per transaction). When it falls behind, the channel is full
//! and further events are dropped and counted in `jes_history_dropped_total` instead of growing
//! memory: history is a convenience, mail is what must not be lost.
//!
//! Storage is behind [`HistoryStore`] (append, query, prune, forget): SQLite (`sqlite`),
//! `history.db` in the mail root, or, with `store.url`, the database's `jes_history` table
//! (`postgres`), which every server on that database writes to. The server names the database
//! once at start ([`use_database`]); the writer and the API then use it instead of the file. A stored row is a [`Record`]: the event's fields that matter after the fact
//! (no session or client address, no bodies). `query` reads what `jes trace` and the console ask
//! for ([`Query`], parsed from one search string by [`Query::parse`]); `render` turns records into
//! plain-word timelines and the JSON objects both print.

pub mod postgres;
pub mod render;
pub mod sqlite;
mod writer;

#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::event::Event;

pub use postgres::PgHistory;
pub use sqlite::SqliteHistory;
pub use writer::{close, configure, record, DROPPED_METRIC};

/// Most events one transaction commits.
pub const BATCH_MAX: usize = 1_000;
/// The history file's name in the mail root.
pub const DB_FILE: &str = "history.db";

/// The server's history in the database, when its configuration has `store.url`.
static DATABASE: OnceLock<PgHistory> = OnceLock::new();

/// Keeps this server's history in the database `db` instead of `history.db` (called once at
/// start, on the runtime whose pool `db` is, before the first `configure`). `server` names this
/// process in each row.
pub fn use_database(db: crate::pg::Database, server: String) {
    let handle = tokio::runtime::Handle::current();
    let _ = DATABASE.set(PgHistory::new(db, handle, server));
}

/// The server's history in the database, if it has one (for the API: `None` means the file).
pub fn database() -> Option<&'static PgHistory> {
    DATABASE.get()
}

/// Where the history of the mail root `store_dir` lives (without `store.url`).
pub fn db_path(store_dir: &Path) -> PathBuf {
    store_dir.join(DB_FILE)
}

/// Epoch milliseconds and sizes as the stores' signed integer columns keep them (saturating:
/// no real time or size comes near the limits).
fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// A stored signed integer back as a count (a negative one, written by hand, reads as 0).
fn to_u64(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

/// Adds one message's `events` to a query's answer `out`, cut at `limit` events in all; true
/// when the answer is full (the stores read timelines message by message, newest first).
fn append_limited(out: &mut Vec<Record>, mut events: Vec<Record>, limit: Option<usize>) -> bool {
    if let Some(limit) = limit {
        events.truncate(limit.saturating_sub(out.len()));
    }
    out.extend(events);
    limit.is_some_and(|l| out.len() >= l)
}

/// One stored event: the fields of an [`Event`] the history keeps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Epoch milliseconds.
    pub time_ms: u64,
    /// The message's one id; empty for a recipient refused before the message had one.
    pub id: String,
    pub message_id: Option<String>,
    /// The outcome's name (`delivered`, `refused`, ...: `event::Kind::as_str`).
    pub event: String,
    pub sender: String,
    pub recipient: String,
    pub subject: Option<String>,
    pub size: u64,
    pub attempt: u32,
    pub remote_host: Option<String>,
    pub remote_ip: Option<String>,
    pub tls: Option<String>,
    pub reply: String,
    pub status: Option<String>,
    /// The server that reported it (its `node.name`), kept by the database's history, which
    /// several servers write; `None` in `history.db`, which only its own server writes.
    pub server: Option<String>,
}

impl Record {
    /// The record of `event`; without its subject unless `keep_subject` (`history.subjects`).
    pub fn of(event: &Event, keep_subject: bool) -> Record {
        let m = &event.message;
        Record {
            time_ms: event.time_ms,
            id: m.id.clone(),
            message_id: m.message_id.clone(),
            event: event.kind.as_str().to_string(),
            sender: m.sender.clone(),
            recipient: event.recipient.clone(),
            subject: if keep_subject {
                m.subject.clone()
            } else {
                None
            },
            size: m.size,
            attempt: event.attempt,
            remote_host: event.remote_host.clone(),
            remote_ip: event.remote_ip.map(|ip| ip.to_string()),
            tls: event.tls.clone(),
            reply: event.reply.clone(),
            status: event.status.clone(),
            server: None,
        }
    }
}

/// What to look for: one search string, read as `jes trace` documents it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Query {
    /// Everything (no search string; `--since` bounds it).
    All,
    /// A sender or recipient address, exact and case-insensitive; also a Message-ID written
    /// without its angle brackets (`task-123@tracker`).
    Address(String),
    /// Any sender or recipient address in this domain (lower case, without the `@`).
    Domain(String),
    /// A Message-ID, with its angle brackets.
    MessageId(String),
    /// A message id, a Message-ID as stored, or else a case-insensitive substring of the subject.
    Text(String),
}

impl Query {
    /// `@domain`: a domain; `<...>`: a Message-ID; an `@` and no space: an address; empty: all;
    /// anything else: an id, a Message-ID as stored, or a piece of the subject.
    pub fn parse(q: &str) -> Query {
        let q = q.trim();
        if q.is_empty() {
            Query::All
        } else if q.starts_with('<') && q.ends_with('>') && q.len() > 2 {
            Query::MessageId(q.to_string())
        } else if let Some(domain) = q.strip_prefix('@').filter(|d| !d.contains([' ', '@'])) {
            Query::Domain(domain.to_ascii_lowercase())
        } else if q.contains('@') && !q.contains(char::is_whitespace) {
            Query::Address(q.to_string())
        } else {
            Query::Text(q.to_string())
        }
    }
}

/// `N` followed by `m`, `h` or `d` (`30m`, `2h`, `7d`) as milliseconds; N has 1 to 9 digits.
pub fn parse_duration(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let bad = || format!("{s:?} is not a duration: write N followed by m, h or d (30m, 2h, 7d)");
    let unit = match s.chars().last() {
        Some('m') => 60_000,
        Some('h') => 3_600_000,
        Some('d') => 86_400_000,
        _ => return Err(bad()),
    };
    let digits = &s[..s.len() - 1];
    if digits.is_empty() || digits.len() > 9 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let n: u64 = digits.parse().map_err(|_| bad())?;
    Ok(n * unit)
}

/// What went wrong with the history's storage.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Db {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error("database {location}: {why}")]
    Database {
        location: String,
        why: String,
        /// The database could not be reached (as opposed to refusing the statement): the same
        /// work may succeed later.
        transient: bool,
    },
}

impl HistoryError {
    /// Whether trying the same thing again later may succeed (the database is away).
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            HistoryError::Database {
                transient: true,
                ..
            }
        )
    }
}

/// Where history is kept. Appends come from one writer; queries may run beside it (the console,
/// `jes trace` in another process).
pub trait HistoryStore: Send {
    /// Stores `records` in one transaction: all or none.
    fn append(&mut self, records: &[Record]) -> Result<(), HistoryError>;
    /// The timelines of the messages `query` matches that have an event at or after `since_ms`:
    /// newest message first, each message's events oldest first, at most `limit` events in all
    /// (the last message may be cut). A refused recipient without an id is a message of its own.
    fn query(
        &self,
        query: &Query,
        since_ms: u64,
        limit: Option<usize>,
    ) -> Result<Vec<Record>, HistoryError>;
    /// Removes at most `max` events older than `before_ms`; returns how many it removed (fewer
    /// than `max`: nothing older is left).
    fn prune(&mut self, before_ms: u64, max: usize) -> Result<usize, HistoryError>;
    /// Removes every event whose sender or recipient is `address` (case-insensitive); returns
    /// how many.
    fn forget(&mut self, address: &str) -> Result<usize, HistoryError>;
}
