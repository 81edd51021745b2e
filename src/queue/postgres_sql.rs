//! The statements of the PostgreSQL queue's hot path (`postgres::PgQueue`: store, claim,
//! finish, release), and the reading and writing of a message's rows (`fetch`, `write_state`).
//!
//! Design. Each statement does in one round trip what the queue's slower path did in several
//! (issue 15: relaying through the database at least half as fast as through files), so each
//! carries its reasons here: what it locks, what it commits durably and what it need not.

use std::collections::HashMap;

use super::{Lease, QueueRecipient, QueuedMessage, RecipientState};
use crate::dsn::{MessageDsn, Notify, Ret};

/// The database's clock in epoch milliseconds: the one clock leases are measured on.
macro_rules! db_now {
    () => {
        "(extract(epoch from clock_timestamp()) * 1000)::bigint"
    };
}
pub(super) const DB_NOW: &str = db_now!();

/// Claims a message that is due for an attempt or not (the runner decides that), unless
/// someone holds an unexpired lease on it, it failed for good, or another claim has it locked
/// this instant (`SKIP LOCKED`: come back later rather than wait); returns the lease and the
/// message. The row lock re-reads the row as committed when it is granted (READ COMMITTED), so
/// two claims never both see it free. $1 id, $2 owner, $3 lease in ms.
pub(super) const CLAIM: &str = concat!(
    "WITH free AS (SELECT id FROM jes_queue WHERE id = $1 AND NOT failed AND lease_until_ms <= ",
    db_now!(),
    " FOR UPDATE SKIP LOCKED) \
     UPDATE jes_queue q SET lease_owner = $2, lease_token = nextval('jes_lease_tokens'), \
     lease_until_ms = ",
    db_now!(),
    " + $3 FROM free, jes_bodies b WHERE q.id = free.id AND b.digest = q.digest \
     RETURNING q.lease_token, q.lease_until_ms, q.sender, q.received_ms, q.next_attempt_ms, \
     q.attempts, q.delay_warned, b.data, q.ret, q.envid, q.digest"
);

/// Stores a new message in one statement, so one round trip and one durable commit: the body
/// (`bodies::store`'s insert), the message unless id $1 is taken (then nothing else is written
/// and no row comes back), its recipients in order, and the notification to the other servers
/// (delivered when the statement's transaction commits). The foreign keys are checked at the
/// statement's end, when the body and message rows are there. $1 id, $2 sender, $3 body key,
/// $4 now (ms), $5 RET, $6 ENVID, $7 channel, $8 this server in notifications, $9 the bytes,
/// $10 addresses, $11 NOTIFY and $12 ORCPT of each.
pub(super) const ENQUEUE: &str = "WITH body AS (INSERT INTO jes_bodies (digest, data) VALUES ($3::bytea, $9::bytea) \
     ON CONFLICT (digest) DO UPDATE SET digest = EXCLUDED.digest RETURNING digest), \
     msg AS (INSERT INTO jes_queue (id, sender, digest, received_ms, next_attempt_ms, ret, envid) \
     SELECT $1::text, $2::text, body.digest, $4::bigint, $4::bigint, $5::text, $6::text FROM body \
     ON CONFLICT (id) DO NOTHING RETURNING id), \
     rcpt AS (INSERT INTO jes_queue_recipients (message_id, position, address, state, notify, orcpt) \
     SELECT msg.id, r.n - 1, r.address, 'pending', r.notify, r.orcpt FROM msg, \
     unnest($10::text[], $11::text[], $12::text[]) WITH ORDINALITY AS r (address, notify, orcpt, n)) \
     SELECT msg.id, pg_notify($7::text, $8::text || ' ' || msg.id) FROM msg";

/// `ENQUEUE` for a message leased to this server from the start (`postgres_ready`): lease owner
/// $7 for $8 ms, a token from the sequence; no notification, since no other server may take it
/// before the lease runs out. Returns the id, the token and the lease's end. $1 id, $2 sender,
/// $3 body key, $4 now (ms), $5 RET, $6 ENVID, $9 the bytes, $10 addresses, $11 NOTIFY and
/// $12 ORCPT of each.
pub(super) const ENQUEUE_LEASED: &str = concat!(
    "WITH body AS (INSERT INTO jes_bodies (digest, data) VALUES ($3::bytea, $9::bytea) \
     ON CONFLICT (digest) DO UPDATE SET digest = EXCLUDED.digest RETURNING digest), \
     msg AS (INSERT INTO jes_queue (id, sender, digest, received_ms, next_attempt_ms, ret, envid, \
     lease_owner, lease_token, lease_until_ms) \
     SELECT $1::text, $2::text, body.digest, $4::bigint, $4::bigint, $5::text, $6::text, $7::text, \
     nextval('jes_lease_tokens'), ",
    db_now!(),
    " + $8::bigint FROM body \
     ON CONFLICT (id) DO NOTHING RETURNING id, lease_token, lease_until_ms), \
     rcpt AS (INSERT INTO jes_queue_recipients (message_id, position, address, state, notify, orcpt) \
     SELECT msg.id, r.n - 1, r.address, 'pending', r.notify, r.orcpt FROM msg, \
     unnest($10::text[], $11::text[], $12::text[]) WITH ORDINALITY AS r (address, notify, orcpt, n)) \
     SELECT msg.id, msg.lease_token, msg.lease_until_ms FROM msg"
);

/// The recipients of message $1, in envelope order, as `recipient_of` reads them.
pub(super) const RECIPIENTS_OF: &str = "SELECT address, state, last_error, notify, orcpt \
     FROM jes_queue_recipients WHERE message_id = $1 ORDER BY position";

/// Removes a finished message whose lease is $2, returning its body's key. Committed without
/// waiting for the WAL flush (`synchronous_commit` off for this statement's own transaction):
/// the file store does not fsync a finished message's removal either (`Spool::remove`), since a
/// removal lost in a crash of the database only means the message is delivered once more (at
/// least once, never lost), and any later durable commit flushes it anyway.
pub(super) const FINISH: &str =
    "WITH gone AS (DELETE FROM jes_queue WHERE id = $1 AND lease_token = $2 \
     RETURNING digest) SELECT digest, set_config('synchronous_commit', 'off', true) FROM gone";

/// Ends lease $2 of message $1 without waiting for the WAL flush: a release lost in a crash of
/// the database only leaves the lease to run out.
pub(super) const RELEASE: &str =
    "WITH quiet AS (SELECT set_config('synchronous_commit', 'off', true)) \
     UPDATE jes_queue SET lease_owner = NULL, lease_until_ms = 0 FROM quiet \
     WHERE id = $1 AND lease_token = $2";

pub(super) fn state_name(s: RecipientState) -> &'static str {
    match s {
        RecipientState::Pending => "pending",
        RecipientState::Delivered => "delivered",
        RecipientState::Failed => "failed",
        RecipientState::Held => "held",
        RecipientState::Released => "released",
    }
}

/// A recipient from a row whose columns from `first` on are address, state, last_error, notify,
/// orcpt.
pub(super) fn recipient_at(r: &tokio_postgres::Row, first: usize) -> QueueRecipient {
    QueueRecipient {
        address: r.get(first),
        state: state_of(r.get(first + 1)),
        last_error: r.get(first + 2),
        dsn: crate::dsn::RecipientDsn {
            notify: r.get::<_, Option<&str>>(first + 3).and_then(Notify::parse),
            orcpt: r.get(first + 4),
        },
    }
}

pub(super) fn recipient_of(r: &tokio_postgres::Row) -> QueueRecipient {
    recipient_at(r, 0)
}

pub(super) fn state_of(s: &str) -> RecipientState {
    match s {
        "delivered" => RecipientState::Delivered,
        "failed" => RecipientState::Failed,
        "held" => RecipientState::Held,
        "released" => RecipientState::Released,
        _ => RecipientState::Pending,
    }
}

/// The messages of `ids` (all unfinished ones with `None`), in order of arrival.
pub(super) async fn fetch(
    client: &tokio_postgres::Client,
    ids: Option<&[String]>,
) -> Result<Vec<QueuedMessage>, tokio_postgres::Error> {
    let cols =
        "q.id, q.sender, q.received_ms, q.next_attempt_ms, q.attempts, q.delay_warned, b.data, q.ret, q.envid";
    let rows = match ids {
        Some(ids) => {
            let sql = format!("SELECT {cols} FROM jes_queue q JOIN jes_bodies b USING (digest) WHERE q.id = ANY($1) ORDER BY q.received_ms, q.id");
            client.query(&sql, &[&ids]).await
        }
        None => {
            let sql = format!("SELECT {cols} FROM jes_queue q JOIN jes_bodies b USING (digest) WHERE NOT q.failed ORDER BY q.received_ms, q.id");
            client.query(&sql, &[]).await
        }
    }?;
    let ids: Vec<String> = rows.iter().map(|r| r.get::<_, String>(0)).collect();
    let rcpts = client
        .query(
            "SELECT message_id, address, state, last_error, notify, orcpt FROM jes_queue_recipients \
             WHERE message_id = ANY($1) ORDER BY message_id, position",
            &[&ids],
        )
        .await?;
    let mut by_id: HashMap<String, Vec<QueueRecipient>> = HashMap::new();
    for r in rcpts {
        by_id.entry(r.get(0)).or_default().push(recipient_at(&r, 1));
    }
    Ok(rows
        .into_iter()
        .map(|r| {
            let id: String = r.get(0);
            let recipients = by_id.remove(&id).unwrap_or_default();
            message_at(&r, 1, id, recipients)
        })
        .collect())
}

/// A message from `r`'s columns from `at` on: sender, received_ms, next_attempt_ms, attempts,
/// delay_warned, the body's data, ret, envid (as `fetch` and the claim select them).
pub(super) fn message_at(
    r: &tokio_postgres::Row,
    at: usize,
    id: String,
    recipients: Vec<QueueRecipient>,
) -> QueuedMessage {
    QueuedMessage {
        id,
        recipients,
        sender: r.get(at),
        received_ms: r.get::<_, i64>(at + 1).max(0) as u64,
        next_attempt_ms: r.get::<_, i64>(at + 2).max(0) as u64,
        attempts: r.get::<_, i32>(at + 3).max(0) as u32,
        delay_warned: r.get(at + 4),
        message: r.get(at + 5),
        dsn: MessageDsn {
            ret: r.get::<_, Option<&str>>(at + 6).and_then(Ret::parse),
            envid: r.get(at + 7),
        },
    }
}

/// Writes a leased message's state (in `tx`); false when the lease is lost.
pub(super) async fn write_state(
    tx: &tokio_postgres::Transaction<'_>,
    lease: &Lease,
    msg: &QueuedMessage,
    failed: bool,
) -> Result<bool, tokio_postgres::Error> {
    let n = tx
        .execute(
            "UPDATE jes_queue SET next_attempt_ms = $3, attempts = $4, delay_warned = $5, failed = $6 \
             WHERE id = $1 AND lease_token = $2",
            &[
                &lease.id,
                &(lease.token as i64),
                &(msg.next_attempt_ms.min(i64::MAX as u64) as i64),
                &(msg.attempts.min(i32::MAX as u32) as i32),
                &msg.delay_warned,
                &failed,
            ],
        )
        .await?;
    if n == 0 {
        return Ok(false);
    }
    // An attempt may add recipients (a forward to an outside address) and a capture release
    // may replace them (`--to`): the rows follow the message's list, position by position.
    for (i, r) in msg.recipients.iter().enumerate() {
        let notify = r.dsn.notify.map(|n| n.as_string());
        tx.execute(
            "INSERT INTO jes_queue_recipients \
             (message_id, position, address, state, last_error, notify, orcpt) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (message_id, position) DO UPDATE SET address = $3, state = $4, \
             last_error = $5, notify = $6, orcpt = $7",
            &[
                &lease.id,
                &(i as i32),
                &r.address,
                &state_name(r.state),
                &r.last_error,
                &notify,
                &r.dsn.orcpt,
            ],
        )
        .await?;
    }
    tx.execute(
        "DELETE FROM jes_queue_recipients WHERE message_id = $1 AND position >= $2",
        &[&lease.id, &(msg.recipients.len() as i32)],
    )
    .await?;
    Ok(true)
}
