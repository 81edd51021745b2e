//! The queue step: every entry of the spool `smtp/` (waiting mail) and of `failed/` (mail kept
//! as undeliverable), JES 1.0 `.ser` files and jes's own alike, read by the one queue-file reader
//! (`queue::Spool`) and written through `queue::postgres_import` with everything they carry:
//! recipients in envelope order with their states and last errors, attempts, received and next
//! attempt times, the delay warning, the DSN fields. Times stay as they are, so a message due in
//! an hour is due in an hour on the database too, and one due already is sent at the first look.
//!
//! An entry the reader cannot read stops the migration (nothing is committed): leaving it out
//! would lose mail silently. The error names the file and line.

use tokio_postgres::Transaction;

use super::sha256_hex;
use crate::config::Config;
use crate::pg::Database;
use crate::queue::postgres::PgQueue;
use crate::queue::postgres_import::{insert, is_failed};
use crate::queue::{Queue, QueuedMessage, Spool};

/// What the queue step copied.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct QueueCounts {
    /// Entries of `smtp/`: mail still to be delivered.
    pub waiting: usize,
    /// Entries of `failed/`: kept, never attempted.
    pub failed: usize,
}

/// The two folders of the file queue.
pub(super) struct Spools {
    waiting: Spool,
    failed: Spool,
}

impl Spools {
    pub(super) fn of(config: &Config) -> Spools {
        Spools::at(config.queue_dir(), config.failed_dir())
    }

    /// The spools `waiting` (`smtp/`) and `failed` (`failed/`).
    pub(super) fn at(waiting: std::path::PathBuf, failed: std::path::PathBuf) -> Spools {
        Spools {
            waiting: Spool::new(waiting),
            failed: Spool::new(failed),
        }
    }

    /// The spool of the failed entries (`failed`) or of the waiting ones.
    pub(super) fn spool(&self, failed: bool) -> &Spool {
        if failed {
            &self.failed
        } else {
            &self.waiting
        }
    }

    /// Every entry with whether it is a failed one, in order of id (arrival).
    pub(super) fn entries(&self) -> Result<Vec<(String, bool)>, String> {
        let mut out = Vec::new();
        for (spool, failed) in [(&self.waiting, false), (&self.failed, true)] {
            let ids = spool
                .list_ids()
                .map_err(|e| format!("cannot list {}: {e}", spool.dir().display()))?;
            out.extend(ids.into_iter().map(|id| (id, failed)));
        }
        Ok(out)
    }

    pub(super) fn load(&self, id: &str, failed: bool) -> Result<QueuedMessage, String> {
        let spool = if failed { &self.failed } else { &self.waiting };
        spool.load(id).map_err(|e| e.to_string())
    }
}

/// Copies every queue entry in the caller's transaction.
pub(super) async fn copy(
    db: &Database,
    tx: &Transaction<'_>,
    spools: &Spools,
) -> Result<QueueCounts, String> {
    let mut counts = QueueCounts::default();
    for (id, failed) in spools.entries()? {
        let msg = spools.load(&id, failed).map_err(|e| {
            format!(
                "{e}; nothing was copied (move the file out of the folder to migrate without it)"
            )
        })?;
        insert(tx, &msg, failed)
            .await
            .map_err(|e| format!("queue entry {id}: {}", db.err(e)))?;
        if failed {
            counts.failed += 1;
        } else {
            counts.waiting += 1;
        }
    }
    Ok(counts)
}

/// Reads every entry back through the database queue and compares it with its file read again.
pub(super) async fn verify(db: &Database, me: &str, spools: &Spools) -> Vec<String> {
    let mut out = Vec::new();
    let entries = match spools.entries() {
        Ok(e) => e,
        Err(e) => return vec![e],
    };
    let pg = PgQueue::new(db.clone(), me.to_string());
    let client = match db.client().await {
        Ok(c) => c,
        Err(e) => return vec![e.to_string()],
    };
    for (id, failed) in entries {
        let source = match spools.load(&id, failed) {
            Ok(m) => m,
            Err(e) => {
                out.push(format!("queue entry {id}: cannot read its file again: {e}"));
                continue;
            }
        };
        let copy = match pg.load(&id).await {
            Ok(m) => m,
            Err(e) => {
                out.push(format!(
                    "queue entry {id}: not read back from the database: {e}"
                ));
                continue;
            }
        };
        let differ = differences(&source, &copy);
        if !differ.is_empty() {
            out.push(format!(
                "queue entry {id}: the database differs from the file in {}",
                differ.join(", ")
            ));
        }
        match is_failed(&client, &id).await {
            Ok(Some(f)) if f == failed => {}
            Ok(_) => out.push(format!(
                "queue entry {id}: kept as failed in the {}, not in the {}",
                if failed { "folder" } else { "database" },
                if failed { "database" } else { "folder" }
            )),
            Err(e) => out.push(format!("queue entry {id}: {}", db.err(e))),
        }
    }
    out
}

/// The names of the fields where two readings of one entry differ.
pub(super) fn differences(a: &QueuedMessage, b: &QueuedMessage) -> Vec<String> {
    let mut out = Vec::new();
    let mut field = |differs: bool, name: &str| {
        if differs {
            out.push(name.to_string());
        }
    };
    field(a.sender != b.sender, "sender");
    field(
        a.recipients != b.recipients,
        "recipients (addresses, states, errors, DSN)",
    );
    field(a.received_ms != b.received_ms, "received time");
    field(a.next_attempt_ms != b.next_attempt_ms, "next attempt");
    field(a.attempts != b.attempts, "attempts");
    field(a.delay_warned != b.delay_warned, "delay warning");
    field(a.dsn != b.dsn, "DSN (RET, ENVID)");
    if a.message != b.message {
        out.push(format!(
            "the message (SHA-256 {} in the file, {} in the database)",
            sha256_hex(&a.message),
            sha256_hex(&b.message)
        ));
    }
    out
}
