//! The PostgreSQL backend of the queue, shared by every server on one database (`store.url`).
//!
//! Design. One row per message (`jes_queue`) and one per recipient (`jes_queue_recipients`);
//! the bytes are a shared body (`crate::pg::bodies`). `enqueue` commits before it returns, so the
//! 250 follows the commit. `take` claims a message in one short transaction (`SELECT ... FOR
//! UPDATE SKIP LOCKED`, then owner, a token from a sequence and `lease_until_ms` from the
//! database's clock, commit); no transaction is open while the SMTP conversation with the next
//! hop runs. The lease lasts `store.leaseseconds` and a task renews it at half that while this
//! process holds it, so a long delivery keeps its message and a dead server's leases run out;
//! every later write names the token and fails with `LeaseLost` once another server took over.
//!
//! Other servers learn of new mail at once through `NOTIFY jes_queue` (payload `owner id`;
//! `owner retry:id` for a retry of one message, `owner *` for "retry everything": the console's
//! and `jes queue retry`'s, and a capture release's), handed to the runner as retry requests; the runner's
//! periodic `arrivals` (due, unleased rows) is the fallback when a notification is missed.

use std::collections::HashMap;
use std::io;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::mpsc;

use super::admin::{deletion_bounce, Deleted};
use super::RetryRequest;
use super::{
    valid_id, BounceFrom, Lease, Queue, QueueError, QueueRecipient, QueuedMessage, RecipientState,
    Taken,
};
use crate::dsn::{Dsn, MessageDsn, Notify, Ret};
use crate::event::{new_id, now_ms};
use crate::pg::{bodies, Database};

/// The database's clock in epoch milliseconds: the one clock leases are measured on.
const DB_NOW: &str = "(extract(epoch from clock_timestamp()) * 1000)::bigint";

/// How far ahead `arrivals` looks: messages due later are found by a later look.
const ARRIVALS_AHEAD_MS: i64 = 5 * 60 * 1000;

const CHANNEL: &str = "jes_queue";

fn guard<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn state_name(s: RecipientState) -> &'static str {
    match s {
        RecipientState::Pending => "pending",
        RecipientState::Delivered => "delivered",
        RecipientState::Failed => "failed",
        RecipientState::Held => "held",
        RecipientState::Released => "released",
    }
}

fn state_of(s: &str) -> RecipientState {
    match s {
        "delivered" => RecipientState::Delivered,
        "failed" => RecipientState::Failed,
        "held" => RecipientState::Held,
        "released" => RecipientState::Released,
        _ => RecipientState::Pending,
    }
}

/// The queue in a PostgreSQL database.
pub struct PgQueue {
    db: Database,
    /// Who this server is in notifications (`host:pid`), to skip its own.
    me: String,
    notified: Mutex<mpsc::UnboundedReceiver<String>>,
    /// Retry requests made through this server.
    local_retries: Mutex<Vec<RetryRequest>>,
    /// The renewal task of each lease this process holds, by token.
    renewals: Mutex<HashMap<i64, tokio::task::JoinHandle<()>>>,
}

impl PgQueue {
    /// Must run on the tokio runtime (it starts the `LISTEN` task).
    pub fn new(db: Database, me: String) -> PgQueue {
        let notified = db.listen(CHANNEL);
        PgQueue {
            db,
            me,
            notified: Mutex::new(notified),
            local_retries: Mutex::default(),
            renewals: Mutex::default(),
        }
    }

    /// For a command-line tool (`jes queue`, `jes capture`): no `LISTEN` connection, since a
    /// tool only makes changes and wakes the servers with `NOTIFY`.
    pub fn for_tool(db: Database, me: String) -> PgQueue {
        let (_, notified) = mpsc::unbounded_channel();
        PgQueue {
            db,
            me,
            notified: Mutex::new(notified),
            local_retries: Mutex::default(),
            renewals: Mutex::default(),
        }
    }

    fn io(&self, e: io::Error) -> QueueError {
        QueueError::io(e, &PathBuf::from(&self.db.location))
    }

    fn pg(&self, e: tokio_postgres::Error) -> QueueError {
        self.io(self.db.err(e))
    }

    fn not_found(&self, id: &str) -> QueueError {
        self.io(io::Error::new(
            io::ErrorKind::NotFound,
            format!("queue entry {id} not found"),
        ))
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, QueueError> {
        self.db.client().await.map_err(|e| self.io(e))
    }

    fn stop_renewal(&self, token: u64) {
        if let Some(task) = guard(&self.renewals).remove(&(token as i64)) {
            task.abort();
        }
    }

    /// Extends lease `token` every half lease while this process holds it.
    fn renew(&self, id: &str, token: i64, lease: Duration) {
        let (db, id) = (self.db.clone(), id.to_string());
        let lease_ms = lease.as_millis() as i64;
        let task = tokio::spawn(async move {
            loop {
                tokio::time::sleep(lease / 2).await;
                let Ok(client) = db.client().await else {
                    continue;
                };
                let sql = format!(
                    "UPDATE jes_queue SET lease_until_ms = {DB_NOW} + $3 WHERE id = $1 AND lease_token = $2"
                );
                match client.execute(&sql, &[&id, &token, &lease_ms]).await {
                    Ok(0) => return,
                    Ok(_) => {}
                    Err(e) => tracing::warn!(queue_id = %id, "cannot renew the lease: {e}"),
                }
            }
        });
        guard(&self.renewals).insert(token, task);
    }

    /// The messages of `ids` (all unfinished ones with `None`), in order of arrival.
    async fn fetch(&self, ids: Option<&[String]>) -> Result<Vec<QueuedMessage>, QueueError> {
        let client = self.client().await?;
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
        }
        .map_err(|e| self.pg(e))?;
        let ids: Vec<String> = rows.iter().map(|r| r.get::<_, String>(0)).collect();
        let rcpts = client
            .query(
                "SELECT message_id, address, state, last_error, notify, orcpt FROM jes_queue_recipients \
                 WHERE message_id = ANY($1) ORDER BY message_id, position",
                &[&ids],
            )
            .await
            .map_err(|e| self.pg(e))?;
        let mut by_id: HashMap<String, Vec<QueueRecipient>> = HashMap::new();
        for r in rcpts {
            by_id.entry(r.get(0)).or_default().push(QueueRecipient {
                address: r.get(1),
                state: state_of(r.get(2)),
                last_error: r.get(3),
                dsn: crate::dsn::RecipientDsn {
                    notify: r.get::<_, Option<&str>>(4).and_then(Notify::parse),
                    orcpt: r.get(5),
                },
            });
        }
        Ok(rows
            .into_iter()
            .map(|r| {
                let id: String = r.get(0);
                QueuedMessage {
                    recipients: by_id.remove(&id).unwrap_or_default(),
                    id,
                    sender: r.get(1),
                    received_ms: r.get::<_, i64>(2).max(0) as u64,
                    next_attempt_ms: r.get::<_, i64>(3).max(0) as u64,
                    attempts: r.get::<_, i32>(4).max(0) as u32,
                    delay_warned: r.get(5),
                    message: r.get(6),
                    dsn: MessageDsn {
                        ret: r.get::<_, Option<&str>>(7).and_then(Ret::parse),
                        envid: r.get(8),
                    },
                }
            })
            .collect())
    }

    /// Writes a leased message's state (in `tx`); false when the lease is lost.
    async fn write_state(
        &self,
        tx: &tokio_postgres::Transaction<'_>,
        lease: &Lease,
        msg: &QueuedMessage,
        failed: bool,
    ) -> Result<bool, QueueError> {
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
            .await
            .map_err(|e| self.pg(e))?;
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
            .await
            .map_err(|e| self.pg(e))?;
        }
        tx.execute(
            "DELETE FROM jes_queue_recipients WHERE message_id = $1 AND position >= $2",
            &[&lease.id, &(msg.recipients.len() as i32)],
        )
        .await
        .map_err(|e| self.pg(e))?;
        Ok(true)
    }

    async fn notify(&self, what: &str) {
        if let Ok(client) = self.db.client().await {
            let payload = format!("{} {what}", self.me);
            if let Err(e) = client
                .execute("SELECT pg_notify($1, $2)", &[&CHANNEL, &payload])
                .await
            {
                tracing::debug!("NOTIFY {CHANNEL}: {e}");
            }
        }
    }
}

#[async_trait]
impl Queue for PgQueue {
    fn location(&self) -> String {
        self.db.location.clone()
    }

    async fn enqueue(
        &self,
        id: &str,
        sender: &str,
        recipients: &[String],
        dsn: &Dsn,
        message: Arc<Vec<u8>>,
    ) -> Result<String, QueueError> {
        let mut id = if valid_id(id) {
            id.to_string()
        } else {
            new_id()
        };
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(|e| self.pg(e))?;
        let key = bodies::store(&tx, &message).await.map_err(|e| self.pg(e))?;
        let now = now_ms() as i64;
        let ret = dsn.message.ret.map(Ret::as_str);
        loop {
            let n = tx
                .execute(
                    "INSERT INTO jes_queue (id, sender, digest, received_ms, next_attempt_ms, ret, envid) \
                     VALUES ($1, $2, $3, $4, $4, $5, $6) ON CONFLICT (id) DO NOTHING",
                    &[&id, &sender, &key, &now, &ret, &dsn.message.envid],
                )
                .await
                .map_err(|e| self.pg(e))?;
            if n == 1 {
                break;
            }
            id = new_id();
        }
        for (i, r) in recipients.iter().enumerate() {
            let rd = dsn.recipient(r);
            let notify = rd.notify.map(|n| n.as_string());
            tx.execute(
                "INSERT INTO jes_queue_recipients \
                 (message_id, position, address, state, notify, orcpt) \
                 VALUES ($1, $2, $3, 'pending', $4, $5)",
                &[&id, &(i as i32), r, &notify, &rd.orcpt],
            )
            .await
            .map_err(|e| self.pg(e))?;
        }
        // Delivered to the listeners only when the transaction commits.
        let payload = format!("{} {id}", self.me);
        tx.execute("SELECT pg_notify($1, $2)", &[&CHANNEL, &payload])
            .await
            .map_err(|e| self.pg(e))?;
        tx.commit().await.map_err(|e| self.pg(e))?;
        Ok(id)
    }

    async fn shared_depth(&self) -> Option<io::Result<(usize, Option<u64>)>> {
        let depth = async {
            let client = self.db.client().await?;
            let row = client
                .query_one(
                    "SELECT COUNT(*), MIN(received_ms) FROM jes_queue WHERE NOT failed",
                    &[],
                )
                .await
                .map_err(|e| self.db.err(e))?;
            let (n, oldest): (i64, Option<i64>) = (row.get(0), row.get(1));
            Ok((n.max(0) as usize, oldest.map(|t| t.max(0) as u64)))
        };
        Some(depth.await)
    }

    async fn arrivals(&self) -> Result<Option<Vec<String>>, QueueError> {
        let client = self.client().await?;
        let horizon = now_ms() as i64 + ARRIVALS_AHEAD_MS;
        let sql = format!(
            "SELECT id FROM jes_queue WHERE NOT failed AND next_attempt_ms <= $1 \
             AND lease_until_ms < {DB_NOW} ORDER BY next_attempt_ms"
        );
        let rows = client
            .query(&sql, &[&horizon])
            .await
            .map_err(|e| self.pg(e))?;
        Ok(Some(rows.iter().map(|r| r.get(0)).collect()))
    }

    async fn times(&self, ids: Vec<String>) -> Vec<(String, u64, u64)> {
        let client = match self.client().await {
            Ok(c) => c,
            Err(e) => {
                tracing::error!("cannot read the queue: {e}");
                return Vec::new();
            }
        };
        match client
            .query(
                "SELECT id, next_attempt_ms, received_ms FROM jes_queue WHERE id = ANY($1) AND NOT failed",
                &[&ids],
            )
            .await
        {
            Ok(rows) => rows
                .iter()
                .map(|r| {
                    (
                        r.get::<_, String>(0),
                        r.get::<_, i64>(1).max(0) as u64,
                        r.get::<_, i64>(2).max(0) as u64,
                    )
                })
                .collect(),
            Err(e) => {
                tracing::error!("cannot read the queue: {}", self.db.err(e));
                Vec::new()
            }
        }
    }

    async fn take(&self, id: &str, owner: &str, ttl: Duration) -> Result<Taken, QueueError> {
        // The configured lease, renewed while held; a zero `ttl` (tests) is an expired lease.
        let lease = if ttl.is_zero() {
            Duration::ZERO
        } else {
            self.db.lease
        };
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(|e| self.pg(e))?;
        let sql = format!(
            "SELECT lease_until_ms, failed, {DB_NOW} FROM jes_queue WHERE id = $1 FOR UPDATE SKIP LOCKED"
        );
        let row = tx.query_opt(&sql, &[&id]).await.map_err(|e| self.pg(e))?;
        let Some(row) = row else {
            // Locked by another server's claim this instant, or gone.
            let exists = tx
                .query_opt("SELECT 1 FROM jes_queue WHERE id = $1", &[&id])
                .await
                .map_err(|e| self.pg(e))?;
            return Ok(if exists.is_some() {
                Taken::Busy
            } else {
                Taken::Gone
            });
        };
        let (until, failed, now): (i64, bool, i64) = (row.get(0), row.get(1), row.get(2));
        if failed {
            return Ok(Taken::Gone);
        }
        if until > now {
            return Ok(Taken::Busy);
        }
        let until = now + lease.as_millis() as i64;
        let token: i64 = tx
            .query_one(
                "UPDATE jes_queue SET lease_owner = $2, lease_token = nextval('jes_lease_tokens'), \
                 lease_until_ms = $3 WHERE id = $1 RETURNING lease_token",
                &[&id, &owner, &until],
            )
            .await
            .map_err(|e| self.pg(e))?
            .get(0);
        tx.commit().await.map_err(|e| self.pg(e))?;
        // Back to the pool before `fetch` takes one: holding it while waiting for a second
        // deadlocks the pool once as many attempts as it has connections claim at once.
        drop(client);
        let l = Lease {
            id: id.to_string(),
            owner: owner.to_string(),
            token: token as u64,
            expires_ms: until.max(0) as u64,
        };
        let ids = [id.to_string()];
        let msg = match self.fetch(Some(&ids)).await {
            Ok(mut found) if !found.is_empty() => found.remove(0),
            Ok(_) => return Ok(Taken::Gone),
            Err(e) => {
                self.release(l).await;
                return Err(e);
            }
        };
        if !lease.is_zero() {
            self.renew(id, token, lease);
        }
        Ok(Taken::Leased(l, msg))
    }

    async fn record(&self, lease: &Lease, msg: &QueuedMessage) -> Result<(), QueueError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(|e| self.pg(e))?;
        if !self.write_state(&tx, lease, msg, false).await? {
            self.stop_renewal(lease.token);
            return Err(QueueError::LeaseLost {
                id: lease.id.clone(),
            });
        }
        tx.commit().await.map_err(|e| self.pg(e))
    }

    async fn complete(
        &self,
        lease: Lease,
        keep_failed: Option<&QueuedMessage>,
    ) -> Result<(), QueueError> {
        self.stop_renewal(lease.token);
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(|e| self.pg(e))?;
        let lost = || QueueError::LeaseLost {
            id: lease.id.clone(),
        };
        let mut digest: Option<Vec<u8>> = None;
        match keep_failed {
            Some(m) => {
                if !self.write_state(&tx, &lease, m, true).await? {
                    return Err(lost());
                }
                tx.execute(
                    "UPDATE jes_queue SET lease_owner = NULL, lease_until_ms = 0 WHERE id = $1",
                    &[&lease.id],
                )
                .await
                .map_err(|e| self.pg(e))?;
            }
            None => {
                let row = tx
                    .query_opt(
                        "DELETE FROM jes_queue WHERE id = $1 AND lease_token = $2 RETURNING digest",
                        &[&lease.id, &(lease.token as i64)],
                    )
                    .await
                    .map_err(|e| self.pg(e))?;
                match row {
                    Some(r) => digest = Some(r.get(0)),
                    None => return Err(lost()),
                }
            }
        }
        tx.commit().await.map_err(|e| self.pg(e))?;
        if let Some(d) = digest {
            bodies::collect(&client, &[d]).await;
        }
        Ok(())
    }

    async fn release(&self, lease: Lease) {
        self.stop_renewal(lease.token);
        let Ok(client) = self.db.client().await else {
            return; // The lease runs out by itself.
        };
        let done = client
            .execute(
                "UPDATE jes_queue SET lease_owner = NULL, lease_until_ms = 0 \
                 WHERE id = $1 AND lease_token = $2",
                &[&lease.id, &(lease.token as i64)],
            )
            .await;
        if let Err(e) = done {
            tracing::warn!(queue_id = %lease.id, "cannot release the lease: {e}");
        }
    }

    async fn withdraw(&self, id: &str) -> Result<(), QueueError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "DELETE FROM jes_queue WHERE id = $1 AND lease_owner IS NULL RETURNING digest",
                &[&id],
            )
            .await
            .map_err(|e| self.pg(e))?;
        let keys: Vec<Vec<u8>> = rows.iter().map(|r| r.get(0)).collect();
        bodies::collect(&client, &keys).await;
        Ok(())
    }

    async fn list(&self) -> Result<(Vec<QueuedMessage>, Vec<String>), QueueError> {
        Ok((self.fetch(None).await?, Vec::new()))
    }

    async fn load(&self, id: &str) -> Result<QueuedMessage, QueueError> {
        let ids = [id.to_string()];
        let mut found = self.fetch(Some(&ids)).await?;
        if found.is_empty() {
            return Err(self.not_found(id));
        }
        Ok(found.remove(0))
    }

    async fn retry(&self, id: Option<&str>) -> Result<usize, QueueError> {
        let client = self.client().await?;
        let now = now_ms() as i64;
        let n =
            match id {
                Some(id) => client
                    .execute(
                        "UPDATE jes_queue SET next_attempt_ms = $2 WHERE id = $1 AND NOT failed",
                        &[&id, &now],
                    )
                    .await,
                None => {
                    client
                        .execute(
                            "UPDATE jes_queue SET next_attempt_ms = $1 WHERE NOT failed",
                            &[&now],
                        )
                        .await
                }
            }
            .map_err(|e| self.pg(e))?;
        let request = match id {
            Some(id) if n == 0 => return Err(self.not_found(id)),
            Some(id) => RetryRequest::One(id.to_string()),
            None => RetryRequest::All,
        };
        guard(&self.local_retries).push(request);
        // `retry:ID`, not the bare id of an arrival: a server that already has the message
        // scheduled must move it to now (a release before this one ignores the unknown word).
        match id {
            Some(id) => self.notify(&format!("retry:{id}")).await,
            None => self.notify("*").await,
        }
        Ok(n as usize)
    }

    async fn retry_requests(&self) -> Vec<RetryRequest> {
        let mut out = std::mem::take(&mut *guard(&self.local_retries));
        let mut rx = guard(&self.notified);
        while let Ok(payload) = rx.try_recv() {
            let Some((from, what)) = payload.split_once(' ') else {
                continue;
            };
            if from == self.me {
                continue;
            }
            if what == "*" {
                out.push(RetryRequest::All);
            } else if let Some(id) = what.strip_prefix("retry:").filter(|id| valid_id(id)) {
                out.push(RetryRequest::One(id.to_string()));
            } else if valid_id(what) {
                out.push(RetryRequest::Arrived(what.to_string()));
            }
        }
        out
    }

    async fn delete(
        &self,
        id: &str,
        bounce_from: Option<&BounceFrom>,
    ) -> Result<(Deleted, QueuedMessage), QueueError> {
        // Waits a little for an attempt in progress, as the file backend does.
        let mut tries = 0;
        let (lease, m) = loop {
            match self.take(id, &self.me, self.db.lease).await? {
                Taken::Leased(l, m) => break (l, m),
                Taken::Gone => return Err(self.not_found(id)),
                Taken::Busy if tries < 50 => {
                    tries += 1;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Taken::Busy => {
                    return Err(self.io(io::Error::new(
                        io::ErrorKind::WouldBlock,
                        format!("queue entry {id} is being delivered"),
                    )))
                }
            }
        };
        let mut outcome = Deleted::Silently;
        if let Some(from) = bounce_from {
            outcome = match deletion_bounce(&m, from, chrono::Utc::now()) {
                Some(dsn) => {
                    let sender = std::slice::from_ref(&m.sender);
                    match self
                        .enqueue("", "", sender, &Dsn::default(), Arc::new(dsn))
                        .await
                    {
                        Ok(bounce_id) => Deleted::Bounced {
                            sender: m.sender.clone(),
                            bounce_id,
                        },
                        Err(e) => {
                            self.release(lease).await;
                            return Err(e);
                        }
                    }
                }
                None if crate::queue::bounce::is_null_sender(&m.sender) => {
                    Deleted::NullSender(m.sender.clone())
                }
                None => Deleted::NonePending,
            };
        }
        self.complete(lease, None).await?;
        Ok((outcome, m))
    }

    async fn probe(&self) -> io::Result<()> {
        let client = self.db.client().await?;
        client
            .execute("SELECT 1", &[])
            .await
            .map_err(|e| self.db.err(e))?;
        Ok(())
    }

    async fn recover(&self) -> io::Result<usize> {
        // Nothing is half-written in a database. Bodies a server killed between a commit and
        // its `bodies::collect` left are the periodic sweep's (`server::sweeper`), which starts
        // with the server.
        Ok(0)
    }
}
