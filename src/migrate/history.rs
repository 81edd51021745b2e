//! The history step: every event of `history.db` (the delivery history of the folder's server),
//! copied oldest first in the migration's transaction.
//!
//! The history's tables belong to the history's database backend, which this step does not
//! know: it is handed one as a [`HistoryTarget`] (see `migrate::Targets`). To connect it,
//! implement the trait next to that backend and set `Targets::history` where `cli::migrate`
//! builds the targets. Without a target the step counts the events and leaves them in
//! `history.db`, where this build's `jes trace` reads them.

use std::path::Path;

use async_trait::async_trait;
use tokio_postgres::Transaction;

use crate::history::{db_path, HistoryStore, Query, Record, SqliteHistory};
use crate::pg::Database;

use super::Copied;

/// How many events `HistoryTarget::insert` is given at a time.
pub const BATCH: usize = 1000;

/// The database side of the history step.
#[async_trait]
pub trait HistoryTarget: Send + Sync {
    /// How many events the database holds (the migration refuses one with any).
    async fn count(&self, tx: &Transaction<'_>) -> Result<i64, tokio_postgres::Error>;

    /// Writes `records` (at most [`BATCH`], oldest first, every field as it is) in the
    /// migration's transaction.
    async fn insert(
        &self,
        tx: &Transaction<'_>,
        records: &[Record],
    ) -> Result<(), tokio_postgres::Error>;

    /// Every event the database holds after the commit, in any order: the check compares them
    /// with history.db's.
    async fn read_back(&self, db: &Database) -> Result<Vec<Record>, String>;
}

/// Every event of the mail root's `history.db` (none without the file), oldest first. Opened
/// read-only: the source is never changed.
pub(super) fn read(root: &Path) -> Result<Vec<Record>, String> {
    let path = db_path(root);
    let Some(store) = SqliteHistory::open_read_only(&path).map_err(|e| e.to_string())? else {
        return Ok(Vec::new());
    };
    let mut records = store
        .query(&Query::All, 0, None)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    records.sort_by_key(|r| r.time_ms);
    Ok(records)
}

/// Copies the events through `target`, or counts them when there is none.
pub(super) async fn copy(
    db: &Database,
    tx: &Transaction<'_>,
    records: &[Record],
    target: Option<&dyn HistoryTarget>,
) -> Result<Copied, String> {
    let Some(target) = target else {
        return Ok(Copied::Kept(records.len()));
    };
    for batch in records.chunks(BATCH) {
        target
            .insert(tx, batch)
            .await
            .map_err(|e| format!("history: {}", db.err(e)))?;
    }
    Ok(Copied::Copied(records.len()))
}

/// Compares the events read back with history.db's, as two sets of equal records. The server
/// that reported an event is not compared: history.db, one server's, names none, so the
/// database's names do not survive the way back, and events migrated in have none.
pub(super) async fn verify(
    db: &Database,
    records: &[Record],
    target: &dyn HistoryTarget,
) -> Vec<String> {
    let mut back = match target.read_back(db).await {
        Ok(b) => b,
        Err(e) => return vec![format!("history: not read back from the database: {e}")],
    };
    let unnamed = |r: &mut Record| r.server = None;
    back.iter_mut().for_each(unnamed);
    let mut records = records.to_vec();
    records.iter_mut().for_each(unnamed);
    let key = |r: &Record| {
        format!(
            "{:020}\0{}\0{}\0{}\0{:?}",
            r.time_ms, r.id, r.event, r.recipient, r
        )
    };
    let mut source: Vec<&Record> = records.iter().collect();
    source.sort_by_cached_key(|r| key(r));
    back.sort_by_cached_key(key);
    if source.len() != back.len() {
        return vec![format!(
            "history: {} event(s) in history.db, {} in the database",
            source.len(),
            back.len()
        )];
    }
    match source.iter().zip(&back).position(|(a, b)| *a != b) {
        None => Vec::new(),
        Some(i) => vec![format!(
            "history: the event of message {:?} at {} ms differs from history.db's",
            source[i].id, source[i].time_ms
        )],
    }
}

/// The history's database backend (`history::postgres`) as the migration's target.
pub struct DbHistory;

#[async_trait]
impl HistoryTarget for DbHistory {
    async fn count(&self, tx: &Transaction<'_>) -> Result<i64, tokio_postgres::Error> {
        crate::history::postgres::count_in(tx).await
    }

    async fn insert(
        &self,
        tx: &Transaction<'_>,
        records: &[Record],
    ) -> Result<(), tokio_postgres::Error> {
        // Reported by servers history.db does not name.
        crate::history::postgres::insert_records(tx, records, None).await
    }

    async fn read_back(&self, db: &Database) -> Result<Vec<Record>, String> {
        let store = crate::history::postgres::PgHistory::new(
            db.clone(),
            tokio::runtime::Handle::current(),
            "jes-migrate".into(),
        );
        store
            .query_async(&Query::All, 0, None)
            .await
            .map_err(|e| e.to_string())
    }
}
