//! Which queue a configuration folder's tools work on: the spool folder of its mail root, or the
//! PostgreSQL database its mail.conf names (`store.url`), both behind `queue::Queue`.
//!
//! `jes queue` and `jes capture` are synchronous commands; the queue interface is async, so they
//! run it on a small tokio runtime of their own. A tool on the database connects, checks the
//! schema (it never migrates: changing the schema is a server's start, under its lock), and wakes
//! the running servers with `NOTIFY` as the console does; on the spool it works under the queue
//! files' locks and leaves retry requests, as it always did. Either way a running server sees the
//! change within a second or two.

use std::path::Path;

use tokio::runtime::Runtime;

use crate::queue::postgres::PgQueue;
use crate::queue::{FileQueue, Queue, Spool};

/// The queue of configuration directory `dir`: `smtp/` in its mail root (`store.dir`, or `dir`
/// itself), as the server uses it. A mail.conf that does not read leaves `dir`: the tools also
/// serve to look at a queue whose server cannot start.
pub(crate) fn store_of(dir: &Path) -> Spool {
    let root = crate::config::MailConf::load(&dir.join("mail.conf"))
        .ok()
        .and_then(|(conf, _)| conf.store_dir)
        .unwrap_or_else(|| dir.to_path_buf());
    Spool::new(root.join("smtp"))
}

/// A configuration folder's queue.
pub(crate) enum QueueStore {
    Files { spool: Spool, queue: FileQueue },
    Database { queue: PgQueue, location: String },
}

/// The runtime the tools' queue work runs on: one worker (the file backend moves blocking work
/// to tokio's blocking pool, which a current-thread runtime would also do, but `block_in_place`
/// needs a multi-threaded one).
pub(crate) fn runtime() -> Result<Runtime, String> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))
}

impl QueueStore {
    /// The queue of `dir`: the database of its `store.url` when it names one (connected, and its
    /// schema checked, on `rt`), else the spool. `tool` names the lease holder in the database.
    pub(crate) fn open(dir: &Path, rt: &Runtime, tool: &str) -> Result<QueueStore, String> {
        let conf = crate::config::MailConf::load(&dir.join("mail.conf"))
            .ok()
            .map(|(c, _)| c);
        let Some((settings, hostname)) = conf.and_then(|c| Some((c.database?, c.hostname))) else {
            let spool = store_of(dir);
            let root = spool.dir().parent().unwrap_or(dir).to_path_buf();
            let queue = FileQueue::new(spool.dir().to_path_buf(), root.join("failed"));
            return Ok(QueueStore::Files { spool, queue });
        };
        let db = crate::pg::Database::open(&settings)
            .map_err(|e| e.to_string())?
            .without_migration();
        let location = db.location.clone();
        let known = crate::pg::migrate::known_version();
        let found = rt
            .block_on(crate::pg::migrate::current_version(&db))
            .map_err(|e| {
                format!(
                    "the queue of {} is in the database {location} (store.url), which cannot be used: {e}",
                    dir.display()
                )
            })?;
        if found == 0 {
            return Err(format!(
                "the database {location} (store.url of {}) holds no jes tables yet: a jes server creates them when it starts",
                dir.display()
            ));
        }
        if found > known {
            return Err(format!(
                "the database {location} has schema version {found}, newer than this jes knows ({known}): use the jes the servers run"
            ));
        }
        // No space in the name: it leads the `NOTIFY` payload.
        let me = format!("{hostname}:{}:{tool}", std::process::id());
        Ok(QueueStore::Database {
            queue: PgQueue::for_tool(db, me),
            location,
        })
    }

    pub(crate) fn queue(&self) -> &dyn Queue {
        match self {
            QueueStore::Files { queue, .. } => queue,
            QueueStore::Database { queue, .. } => queue,
        }
    }

    /// Where the queue is, for "queue is empty (...)".
    pub(crate) fn location(&self) -> String {
        match self {
            QueueStore::Files { spool, .. } => spool.dir().display().to_string(),
            QueueStore::Database { location, .. } => format!("database {location}"),
        }
    }

    /// How an entry is named in the output: its file, or its id in the database.
    pub(crate) fn entry(&self, id: &str) -> String {
        match self {
            QueueStore::Files { spool, .. } => spool.path_of(id).display().to_string(),
            QueueStore::Database { .. } => id.to_string(),
        }
    }

    /// The error for an entry that is not queued.
    pub(crate) fn not_in_queue(&self, id: &str) -> String {
        match self {
            QueueStore::Files { spool, .. } => format!(
                "{}: not in the queue (delivered or deleted?)",
                spool.path_of(id).display()
            ),
            QueueStore::Database { location, .. } => {
                format!("{id}: not in the queue of the database {location} (delivered or deleted?)")
            }
        }
    }
}
