//! Message bodies stored once (`jes_bodies`), shared by the queue's entries and the mailboxes'
//! copies of one message: both backends add a reference with `store` in their own transaction
//! and drop theirs with `collect` after it commits.
//!
//! Nothing else removes a body: `collect` right after the last reference goes, and `sweep`
//! periodically for whatever `collect` missed (see `sweep` for why neither races a new
//! reference).
//!
//! Bodies are keyed by their SHA-256, so the accept step's queue entry and mailbox copies (which
//! are written by two backends, in two transactions) share one row without knowing of each
//! other. `store` locks an existing row (`ON CONFLICT ... DO UPDATE`), so a `collect` running at
//! the same moment waits, and the foreign keys make that removal fail rather than lose a body
//! someone just referenced.

use tokio_postgres::{Client, Transaction};

/// The key of `data`.
pub fn digest(data: &[u8]) -> Vec<u8> {
    ring::digest::digest(&ring::digest::SHA256, data)
        .as_ref()
        .to_vec()
}

/// Makes sure the body is stored (in the caller's transaction) and returns its key.
pub async fn store(tx: &Transaction<'_>, data: &[u8]) -> Result<Vec<u8>, tokio_postgres::Error> {
    let key = digest(data);
    tx.execute(
        "INSERT INTO jes_bodies (digest, data) VALUES ($1, $2) \
         ON CONFLICT (digest) DO UPDATE SET digest = EXCLUDED.digest",
        &[&key, &data],
    )
    .await?;
    Ok(key)
}

/// Removes the bodies of keys $1 that nothing refers to any more, committed without waiting for
/// the WAL flush (`synchronous_commit` off for its own transaction): a removal lost in a crash
/// of the database leaves an unreferenced body for `sweep`, nothing worse.
pub const COLLECT: &str = "WITH quiet AS (SELECT set_config('synchronous_commit', 'off', true)) \
     DELETE FROM jes_bodies b USING quiet WHERE b.digest = ANY($1) \
     AND NOT EXISTS (SELECT 1 FROM jes_queue q WHERE q.digest = b.digest) \
     AND NOT EXISTS (SELECT 1 FROM jes_mail m WHERE m.digest = b.digest)";

/// Removes the bodies of `keys` that nothing refers to any more (`COLLECT`). Best effort, after
/// the caller's commit: a removal that races a new reference fails on the foreign key and the
/// body stays, which is what it should.
pub async fn collect(client: &tokio_postgres::Client, keys: &[Vec<u8>]) {
    if keys.is_empty() {
        return;
    }
    let done = client.execute(COLLECT, &[&keys]).await;
    if let Err(e) = done {
        tracing::debug!("bodies kept for now: {e}");
    }
}

/// How many bodies one sweep transaction removes at most: its locks and its work stay small.
pub const SWEEP_BATCH: i64 = 500;

/// Removes every body nothing refers to, in transactions of at most `batch` bodies; returns how
/// many went. Run periodically by every server (and safe when several sweep at once): it catches
/// what `collect` left, a server that died between its commit and its `collect`, a `collect`
/// that lost a race.
///
/// No race with a transaction adding a reference to the same body: `store` locks the body's row
/// (`ON CONFLICT ... DO UPDATE`) until that transaction ends. A batch first locks the bodies it
/// found unreferenced, skipping locked ones (`FOR UPDATE SKIP LOCKED`: another sweeper's, or a
/// body being stored this moment), then deletes them only if still unreferenced, checked by a
/// second statement whose snapshot is taken after the locks were granted (READ COMMITTED). A
/// transaction that stored the body before the lock has committed by then, and its reference is
/// seen; one that stores it after waits for the lock and, once the body is gone, inserts it anew.
/// The foreign keys stay the last guard: a violation aborts the batch and removes nothing.
pub async fn sweep(client: &mut Client, batch: i64) -> Result<u64, tokio_postgres::Error> {
    let mut removed = 0;
    // Keyset over the primary key: each batch starts after the last body the previous one saw,
    // so referenced bodies are read once per sweep, not once per batch.
    let mut after: Vec<u8> = Vec::new();
    loop {
        let tx = client.transaction().await?;
        let found: Vec<Vec<u8>> = tx
            .query(
                "SELECT b.digest FROM jes_bodies b WHERE b.digest > $1 \
                 AND NOT EXISTS (SELECT 1 FROM jes_queue q WHERE q.digest = b.digest) \
                 AND NOT EXISTS (SELECT 1 FROM jes_mail m WHERE m.digest = b.digest) \
                 ORDER BY b.digest LIMIT $2 FOR UPDATE OF b SKIP LOCKED",
                &[&after, &batch],
            )
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect();
        let Some(last) = found.last().cloned() else {
            return Ok(removed);
        };
        removed += tx
            .execute(
                "DELETE FROM jes_bodies b WHERE b.digest = ANY($1) \
                 AND NOT EXISTS (SELECT 1 FROM jes_queue q WHERE q.digest = b.digest) \
                 AND NOT EXISTS (SELECT 1 FROM jes_mail m WHERE m.digest = b.digest)",
                &[&found],
            )
            .await?;
        tx.commit().await?;
        if (found.len() as i64) < batch {
            return Ok(removed);
        }
        after = last;
    }
}
