//! Writing queue entries into the PostgreSQL backend's tables as they are, for `jes migrate`:
//! the part of `queue::postgres` that takes a message with its history (attempts, next attempt,
//! each recipient's state and last error, DSN fields) instead of enqueueing a new one.
//!
//! Design. Only this module and `queue::postgres` touch `jes_queue` and `jes_queue_recipients`.
//! The migration calls these functions inside its one transaction; rows go in unleased (the
//! first server to find them due takes them), with no `NOTIFY`: nobody is waiting for them
//! before the commit, and the runners' periodic look finds them after it.

use tokio_postgres::Transaction;

use super::QueuedMessage;
use crate::dsn::Ret;
use crate::pg::bodies;

/// Queue entries already in the database (the migration refuses a database that has any).
pub async fn count(tx: &Transaction<'_>) -> Result<i64, tokio_postgres::Error> {
    Ok(tx
        .query_one("SELECT COUNT(*) FROM jes_queue", &[])
        .await?
        .get(0))
}

/// Adds `msg` under its own id; `failed` marks a message kept as undeliverable (JES's
/// `failed/`), which stays in the table and is never attempted. An id already there is an error.
pub async fn insert(
    tx: &Transaction<'_>,
    msg: &QueuedMessage,
    failed: bool,
) -> Result<(), tokio_postgres::Error> {
    let digest = bodies::store(tx, &msg.message).await?;
    let ret = msg.dsn.ret.map(Ret::as_str);
    tx.execute(
        "INSERT INTO jes_queue (id, sender, digest, received_ms, next_attempt_ms, attempts, \
         delay_warned, failed, ret, envid) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        &[
            &msg.id,
            &msg.sender,
            &digest,
            &(msg.received_ms.min(i64::MAX as u64) as i64),
            &(msg.next_attempt_ms.min(i64::MAX as u64) as i64),
            &(msg.attempts.min(i32::MAX as u32) as i32),
            &msg.delay_warned,
            &failed,
            &ret,
            &msg.dsn.envid,
        ],
    )
    .await?;
    for (i, r) in msg.recipients.iter().enumerate() {
        let notify = r.dsn.notify.map(|n| n.as_string());
        tx.execute(
            "INSERT INTO jes_queue_recipients \
             (message_id, position, address, state, last_error, notify, orcpt) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
            &[
                &msg.id,
                &(i as i32),
                &r.address,
                &r.state.as_str(),
                &r.last_error,
                &notify,
                &r.dsn.orcpt,
            ],
        )
        .await?;
    }
    Ok(())
}

/// Whether entry `id` is kept as failed (`None`: not in the table), for the migration's check.
pub async fn is_failed(
    client: &tokio_postgres::Client,
    id: &str,
) -> Result<Option<bool>, tokio_postgres::Error> {
    Ok(client
        .query_opt("SELECT failed FROM jes_queue WHERE id = $1", &[&id])
        .await?
        .map(|r| r.get(0)))
}
