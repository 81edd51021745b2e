//! Message bodies stored once (`jes_bodies`), shared by the queue's entries and the mailboxes'
//! copies of one message: both backends add a reference with `store` in their own transaction
//! and drop theirs with `collect` after it commits.
//!
//! Bodies are keyed by their SHA-256, so the accept step's queue entry and mailbox copies (which
//! are written by two backends, in two transactions) share one row without knowing of each
//! other. `store` locks an existing row (`ON CONFLICT ... DO UPDATE`), so a `collect` running at
//! the same moment waits, and the foreign keys make that removal fail rather than lose a body
//! someone just referenced.

use tokio_postgres::Transaction;

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

/// Removes the bodies of `keys` that nothing refers to any more. Best effort, after the
/// caller's commit: a removal that races a new reference fails on the foreign key and the body
/// stays, which is what it should.
pub async fn collect(client: &tokio_postgres::Client, keys: &[Vec<u8>]) {
    if keys.is_empty() {
        return;
    }
    let done = client
        .execute(
            "DELETE FROM jes_bodies b WHERE b.digest = ANY($1) \
             AND NOT EXISTS (SELECT 1 FROM jes_queue q WHERE q.digest = b.digest) \
             AND NOT EXISTS (SELECT 1 FROM jes_mail m WHERE m.digest = b.digest)",
            &[&keys],
        )
        .await;
    if let Err(e) = done {
        tracing::debug!("bodies kept for now: {e}");
    }
}

/// Removes every body nothing refers to: those a server left when it died between its commit
/// and its `collect`. Returns how many went; an error (a race with a new reference) leaves them
/// for the next sweep.
pub async fn sweep(client: &tokio_postgres::Client) -> Result<u64, tokio_postgres::Error> {
    client
        .execute(
            "DELETE FROM jes_bodies b \
             WHERE NOT EXISTS (SELECT 1 FROM jes_queue q WHERE q.digest = b.digest) \
             AND NOT EXISTS (SELECT 1 FROM jes_mail m WHERE m.digest = b.digest)",
            &[],
        )
        .await
}
