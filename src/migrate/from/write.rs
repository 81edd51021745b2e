//! The steps of `jes migrate --from` that write the database's mail into the staging folder,
//! each through the backend that reads it (`store::postgres`, `queue::postgres`,
//! `history::postgres`) and the file backend that will serve it, and the checks of the queue
//! and of the list of mailboxes (the others are `--to`'s, which compare the same two sides).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::super::queue::{differences, Spools};
use super::super::{MailboxCounts, QueueCounts};
use super::folder::Staging;
use crate::history::{HistoryStore, Query, SqliteHistory};
use crate::pg::Database;
use crate::queue::postgres::PgQueue;
use crate::queue::{Queue, Spool};
use crate::store::postgres::PgMailboxes;
use crate::store::{FileMailboxes, Mailboxes};

/// What the steps wrote.
pub(super) struct Written {
    pub mailboxes: MailboxCounts,
    pub queue: QueueCounts,
    pub history: usize,
}

/// Writes mailboxes, queue and history into `staging`; an error stops the run (the caller
/// discards the staging folder).
pub(super) async fn all(db: &Database, me: &str, staging: &Staging) -> Result<Written, String> {
    Ok(Written {
        mailboxes: mailboxes(db, me, &staging.mailboxes()).await?,
        queue: queue(db, me, &staging.spools()).await?,
        history: history(db, staging).await?,
    })
}

/// Every mailbox the database holds, message by message, under its UID. The file store lists
/// by modification time, the database by insertion: each file gets its stored time, moved on
/// by a nanosecond where that would not keep it after the one before, so the order (what POP3
/// message numbers follow) is the database's.
async fn mailboxes(
    db: &Database,
    me: &str,
    files: &FileMailboxes,
) -> Result<MailboxCounts, String> {
    let client = db.client().await.map_err(|e| e.to_string())?;
    let keys = crate::store::postgres_export::mailbox_keys(&client)
        .await
        .map_err(|e| db.err(e).to_string())?;
    drop(client);
    let pg = PgMailboxes::new(db.clone(), me.to_string());
    let mut counts = MailboxCounts::default();
    for key in keys {
        if crate::address::mailbox_dir_name(&key).ok().as_deref() != Some(key.as_str()) {
            counts
                .skipped
                .push(format!("{key} (no address names this mailbox)"));
            continue;
        }
        let list = pg
            .list(&key)
            .await
            .map_err(|e| format!("mailbox {key}: {e}"))?;
        let mut last: Option<SystemTime> = None;
        for info in &list {
            let bytes = Mailboxes::read(&pg, &key, &info.uid)
                .await
                .map_err(|e| format!("mailbox {key}, message {}: {e}", info.uid))?;
            let stored = info.stored_at.unwrap_or(UNIX_EPOCH);
            let mtime = match last {
                Some(t) if stored <= t => t + Duration::from_nanos(1),
                _ => stored,
            };
            files
                .restore(&key, &info.uid, &bytes, mtime)
                .map_err(|e| format!("mailbox {key}, message {}: {e}", info.uid))?;
            last = Some(mtime);
            counts.messages += 1;
            counts.bytes += bytes.len() as u64;
        }
        if !list.is_empty() {
            files
                .sync_mailbox(&key)
                .map_err(|e| format!("mailbox {key}: {e}"))?;
        }
        counts.copied.push(key);
    }
    Ok(counts)
}

/// Every queue entry with all its fields, waiting ones into `smtp/`, failed ones into `failed/`.
async fn queue(db: &Database, me: &str, spools: &Spools) -> Result<QueueCounts, String> {
    let client = db.client().await.map_err(|e| e.to_string())?;
    let entries = crate::queue::postgres_export::entries(&client)
        .await
        .map_err(|e| db.err(e).to_string())?;
    drop(client);
    let pg = PgQueue::for_tool(db.clone(), me.to_string());
    let mut counts = QueueCounts::default();
    for (id, failed) in entries {
        let msg = pg
            .load(&id)
            .await
            .map_err(|e| format!("queue entry {id}: {e}"))?;
        let spool: &Spool = spools.spool(failed);
        spool
            .save(&msg)
            .map_err(|e| format!("queue entry {id}: {e}"))?;
        if failed {
            counts.failed += 1;
        } else {
            counts.waiting += 1;
        }
    }
    Ok(counts)
}

/// Every history event into a new history.db (none without events).
async fn history(db: &Database, staging: &Staging) -> Result<usize, String> {
    let pg = crate::history::postgres::PgHistory::new(
        db.clone(),
        tokio::runtime::Handle::current(),
        "jes-migrate".into(),
    );
    let mut records = pg
        .query_async(&Query::All, 0, None)
        .await
        .map_err(|e| format!("history: {e}"))?;
    if records.is_empty() {
        return Ok(0);
    }
    records.sort_by_key(|r| r.time_ms);
    let mut store = SqliteHistory::create(&staging.history_path()).map_err(|e| e.to_string())?;
    for batch in records.chunks(super::super::history::BATCH) {
        store.append(batch).map_err(|e| format!("history: {e}"))?;
    }
    Ok(records.len())
}

/// The mailboxes with mail on each side: the folder must hold exactly the database's.
pub(super) async fn verify_lists(
    db: &Database,
    files: &FileMailboxes,
    counts: &MailboxCounts,
) -> Vec<String> {
    let mut out: Vec<String> = counts
        .skipped
        .iter()
        .map(|s| format!("mailbox {s}: not written"))
        .collect();
    let in_db = match db.client().await {
        Ok(client) => crate::store::postgres_export::mailbox_keys(&client)
            .await
            .map_err(|e| db.err(e).to_string()),
        Err(e) => Err(e.to_string()),
    };
    let in_db = match in_db {
        Ok(k) => k,
        Err(e) => return vec![format!("mailboxes: cannot list them in the database: {e}")],
    };
    let in_folder = match files.mailbox_folders() {
        Ok((names, _)) => names
            .into_iter()
            .filter(|n| files.peek(n).is_ok_and(|m| !m.is_empty()))
            .collect::<Vec<_>>(),
        Err(e) => return vec![format!("mailboxes: cannot list the folder: {e}")],
    };
    for key in &in_db {
        if !in_folder.contains(key) && !counts.skipped.iter().any(|s| s.starts_with(key)) {
            out.push(format!(
                "mailbox {key}: has mail in the database, none in the folder"
            ));
        }
    }
    for name in in_folder.iter().filter(|n| !in_db.contains(n)) {
        out.push(format!(
            "mailbox {name}: has mail in the folder, none in the database"
        ));
    }
    out
}

/// Every queue entry of the database against its file (and where it is kept), and no file
/// the database has no entry for.
pub(super) async fn verify_queue(db: &Database, me: &str, spools: &Spools) -> Vec<String> {
    let in_db = match db.client().await {
        Ok(client) => crate::queue::postgres_export::entries(&client)
            .await
            .map_err(|e| db.err(e).to_string()),
        Err(e) => Err(e.to_string()),
    };
    let in_db = match in_db {
        Ok(e) => e,
        Err(e) => return vec![format!("queue: cannot list it in the database: {e}")],
    };
    let mut in_folder = match spools.entries() {
        Ok(e) => e,
        Err(e) => return vec![format!("queue: {e}")],
    };
    in_folder.sort();
    let mut out = Vec::new();
    let pg = PgQueue::for_tool(db.clone(), me.to_string());
    for (id, failed) in &in_db {
        if !in_folder.contains(&(id.clone(), *failed)) {
            out.push(format!(
                "queue entry {id}: {} in the database, not there in the folder",
                if *failed { "kept as failed" } else { "waiting" }
            ));
            continue;
        }
        let (file, row) = (spools.load(id, *failed), pg.load(id).await);
        match (file, row) {
            (Ok(a), Ok(b)) => {
                let differ = differences(&a, &b);
                if !differ.is_empty() {
                    out.push(format!(
                        "queue entry {id}: the file differs from the database in {}",
                        differ.join(", ")
                    ));
                }
            }
            (Err(e), _) => out.push(format!("queue entry {id}: cannot read its file: {e}")),
            (_, Err(e)) => out.push(format!("queue entry {id}: not read from the database: {e}")),
        }
    }
    for (id, _) in in_folder.iter().filter(|e| !in_db.contains(e)) {
        if !in_db.iter().any(|(i, _)| i == id) {
            out.push(format!(
                "queue entry {id}: a file in the folder, no entry in the database"
            ));
        }
    }
    out
}
