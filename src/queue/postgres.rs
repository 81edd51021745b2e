//! The PostgreSQL backend of the queue, shared by every server on one database (`store.url`).
//!
//! Design. One row per message (`jes_queue`) and one per recipient (`jes_queue_recipients`);
//! the bytes are a shared body (`crate::pg::bodies`). `enqueue` commits before it returns, so the
//! 250 follows the commit. `take` claims a message in one statement (`FOR UPDATE SKIP LOCKED`,
//! then owner, a token from a sequence and `lease_until_ms` from the database's clock), committed
//! durably before the message is read; no transaction is open while the SMTP conversation with
//! the next hop runs. A relayed message costs two round trips and one durable commit: the accept
//! step stores it leased to this server (`ENQUEUE_LEASED`, kept in `postgres_ready` for the
//! runner's first `take`), and `FINISH` is pipelined with `bodies::COLLECT`; any other claim is
//! `CLAIM` pipelined with `RECIPIENTS_OF`. Each statement is prepared once per connection; the
//! removal of a finished message waits for no WAL flush (see `FINISH`). The lease lasts `store.leaseseconds` and a task renews it at half that while this
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
use tokio_postgres::types::ToSql;

use super::admin::{deletion_bounce, Deleted};
use super::postgres_ready::Ready;
use super::postgres_sql::{
    self, message_at, recipient_of, CLAIM, DB_NOW, ENQUEUE, ENQUEUE_LEASED, FINISH, RECIPIENTS_OF,
    RELEASE,
};
use super::RetryRequest;
use super::{
    valid_id, BounceFrom, Lease, Queue, QueueError, QueueRecipient, QueuedMessage, RecipientState,
    Taken,
};
use crate::dsn::{Dsn, Ret};
use crate::event::{new_id, now_ms};
use crate::pg::{bodies, Database};

/// How far ahead `arrivals` looks: messages due later are found by a later look.
const ARRIVALS_AHEAD_MS: i64 = 5 * 60 * 1000;

const CHANNEL: &str = "jes_queue";

fn guard<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// What this process keeps for a lease it holds: the task renewing it, and the key of the
/// message's body, for `complete` to drop it in the same round trip as the message.
struct Held {
    renewal: Option<tokio::task::JoinHandle<()>>,
    digest: Vec<u8>,
}

/// The queue in a PostgreSQL database.
pub struct PgQueue {
    db: Database,
    /// Who this server is in notifications (`node.name:pid`), to skip its own.
    me: String,
    notified: Mutex<mpsc::UnboundedReceiver<String>>,
    /// Retry requests made through this server.
    local_retries: Mutex<Vec<RetryRequest>>,
    /// Each lease this process holds, by token.
    held: Mutex<HashMap<i64, Held>>,
    /// Messages stored for this server's runner, leased to it until its attempt takes them.
    /// Boxed: a `PgQueue` is a variant of the command line's queue enum beside the file queue.
    ready: Mutex<Box<Ready>>,
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
            held: Mutex::default(),
            ready: Mutex::default(),
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
            held: Mutex::default(),
            ready: Mutex::default(),
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

    /// Forgets lease `token` (ended or lost): stops its renewal; returns its body's key.
    fn let_go(&self, token: u64) -> Option<Vec<u8>> {
        let held = guard(&self.held).remove(&(token as i64))?;
        if let Some(task) = held.renewal {
            task.abort();
        }
        Some(held.digest)
    }

    /// Keeps lease `token` on `id` (body `digest`), renewed every half lease unless it is zero,
    /// for at most `ttl` (the take's: how long an attempt may hold a message). The bound is
    /// what frees a message whose attempt died without ending its lease (a panic): its renewal
    /// would otherwise hold it for this server, and make it Busy to every other, until a restart.
    fn hold(&self, id: &str, token: i64, digest: Vec<u8>, lease: Duration, ttl: Duration) {
        let renewal = (!lease.is_zero()).then(|| self.renew(id, token, lease, ttl));
        guard(&self.held).insert(token, Held { renewal, digest });
    }

    /// Extends lease `token` every half lease while this process holds it, for at most `ttl`.
    fn renew(
        &self,
        id: &str,
        token: i64,
        lease: Duration,
        ttl: Duration,
    ) -> tokio::task::JoinHandle<()> {
        let (db, id) = (self.db.clone(), id.to_string());
        let lease_ms = lease.as_millis() as i64;
        let until = tokio::time::Instant::now() + ttl;
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(lease / 2).await;
                if tokio::time::Instant::now() >= until {
                    tracing::warn!(queue_id = %id, "held longer than {} s: its lease is left to run out", ttl.as_secs());
                    return;
                }
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
        })
    }

    /// The messages of `ids` (all unfinished ones with `None`), in order of arrival.
    async fn fetch(&self, ids: Option<&[String]>) -> Result<Vec<QueuedMessage>, QueueError> {
        let client = self.client().await?;
        postgres_sql::fetch(&client, ids)
            .await
            .map_err(|e| self.pg(e))
    }

    /// Writes a leased message's state (in `tx`); false when the lease is lost.
    async fn write_state(
        &self,
        tx: &tokio_postgres::Transaction<'_>,
        lease: &Lease,
        msg: &QueuedMessage,
        failed: bool,
    ) -> Result<bool, QueueError> {
        postgres_sql::write_state(tx, lease, msg, failed)
            .await
            .map_err(|e| self.pg(e))
    }

    /// Removes a finished message under `lease` and drops its body (`digest`, known from the
    /// take) when nothing else refers to it, in one round trip: the removal, then the body's
    /// collection as its own statement after the removal's commit (`bodies::COLLECT`). False
    /// when the lease was lost.
    async fn finish(&self, lease: &Lease, digest: Option<Vec<u8>>) -> Result<bool, QueueError> {
        let client = self.client().await?;
        let (finish, collect) = tokio::try_join!(
            client.prepare_cached(FINISH),
            client.prepare_cached(bodies::COLLECT)
        )
        .map_err(|e| self.pg(e))?;
        let token = lease.token as i64;
        let Some(digest) = digest else {
            // Not taken through this queue object (never so today): the body's key comes back
            // with the removal.
            let row = client
                .query_opt(&finish, &[&lease.id, &token])
                .await
                .map_err(|e| self.pg(e))?;
            let Some(row) = row else {
                return Ok(false);
            };
            bodies::collect(&client, &[row.get(0)]).await;
            return Ok(true);
        };
        let keys = [digest];
        let (finish_args, collect_args): (&[&(dyn ToSql + Sync)], &[&(dyn ToSql + Sync)]) =
            (&[&lease.id, &token], &[&keys.as_slice()]);
        let (gone, collected) = tokio::join!(
            client.query_opt(&finish, finish_args),
            client.execute(&collect, collect_args)
        );
        if let Err(e) = collected {
            tracing::debug!("bodies kept for now: {e}");
        }
        Ok(gone.map_err(|e| self.pg(e))?.is_some())
    }

    /// Stores a new message in one statement (`ENQUEUE`, or `ENQUEUE_LEASED` for a lease of
    /// `leased` ms to this server) under its id, or a new one if that is taken. Returns the id
    /// used, the time stored as its arrival, and the statement's row.
    async fn store_new(
        &self,
        leased: Option<i64>,
        (id, sender, recipients, dsn): (&str, &str, &[String], &Dsn),
        message: &[u8],
    ) -> Result<(String, i64, tokio_postgres::Row), QueueError> {
        let mut id = if valid_id(id) {
            id.to_string()
        } else {
            new_id()
        };
        let key = bodies::digest(message);
        let now = now_ms() as i64;
        let ret = dsn.message.ret.map(Ret::as_str);
        let (mut notifies, mut orcpts) = (Vec::new(), Vec::new());
        for r in recipients {
            let rd = dsn.recipient(r);
            notifies.push(rd.notify.map(|n| n.as_string()));
            orcpts.push(rd.orcpt.clone());
        }
        let client = self.client().await?;
        let sql = if leased.is_some() {
            ENQUEUE_LEASED
        } else {
            ENQUEUE
        };
        let insert = client.prepare_cached(sql).await.map_err(|e| self.pg(e))?;
        let lease_ms = leased.unwrap_or(0);
        // The two statements differ in $7 and $8 only.
        let (seventh, eighth): (&(dyn ToSql + Sync), &(dyn ToSql + Sync)) = match leased {
            Some(_) => (&self.me, &lease_ms),
            None => (&CHANNEL, &self.me),
        };
        loop {
            let args: &[&(dyn ToSql + Sync)] = &[
                &id,
                &sender,
                &key,
                &now,
                &ret,
                &dsn.message.envid,
                seventh,
                eighth,
                &message,
                &recipients,
                &notifies,
                &orcpts,
            ];
            let row = client
                .query_opt(&insert, args)
                .await
                .map_err(|e| self.pg(e))?;
            if let Some(row) = row {
                return Ok((id, now, row));
            }
            // The id is another server's (the same millisecond and counter): the body is
            // stored, the message is not; again under a new id.
            id = new_id();
        }
    }

    /// Messages kept for this server's runner longer than half a lease (its attempts are busy
    /// with a backlog): their leases are given back and the other servers told, so that a busy
    /// server does not sit on mail an idle one could send.
    async fn free_stale_ready(&self) {
        let stale = guard(&self.ready).take_older_than(self.db.lease / 2);
        self.give_back(stale).await;
    }

    /// Releases `leases` and tells the other servers, which schedule the messages at once.
    async fn give_back(&self, leases: Vec<Lease>) {
        for lease in leases {
            let id = lease.id.clone();
            self.release(lease).await;
            self.notify(&id).await;
        }
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
        let new = (id, sender, recipients, dsn);
        Ok(self.store_new(None, new, &message).await?.0)
    }

    async fn enqueue_for_attempt(
        &self,
        id: &str,
        sender: &str,
        recipients: &[String],
        dsn: &Dsn,
        message: Arc<Vec<u8>>,
    ) -> Result<String, QueueError> {
        self.free_stale_ready().await;
        let lease = self.db.lease;
        if lease.is_zero() || !guard(&self.ready).has_room(message.len()) {
            return self.enqueue(id, sender, recipients, dsn, message).await;
        }
        let new = (id, sender, recipients, dsn);
        let (id, now, row) = self
            .store_new(Some(lease.as_millis() as i64), new, &message)
            .await?;
        let (token, until): (i64, i64) = (row.get(1), row.get(2));
        let lease_of = Lease {
            id: id.clone(),
            owner: self.me.clone(),
            token: token as u64,
            expires_ms: until.max(0) as u64,
        };
        // As `take` would read it back.
        let msg = QueuedMessage {
            id: id.clone(),
            sender: sender.to_string(),
            recipients: recipients
                .iter()
                .map(|r| QueueRecipient {
                    address: r.clone(),
                    state: RecipientState::Pending,
                    last_error: None,
                    dsn: dsn.recipient(r),
                })
                .collect(),
            received_ms: now.max(0) as u64,
            next_attempt_ms: now.max(0) as u64,
            attempts: 0,
            delay_warned: false,
            dsn: dsn.message.clone(),
            message: message.as_ref().clone(),
        };
        // Until the runner's take renews it under the attempt's bound (or half a lease has
        // passed and it is given back).
        self.hold(&id, token, bodies::digest(&message), lease, lease);
        guard(&self.ready).insert(lease_of, msg);
        Ok(id)
    }

    async fn stop(&self) {
        let kept = guard(&self.ready).take_older_than(Duration::ZERO);
        if !kept.is_empty() {
            tracing::info!(
                "giving {} message(s) kept for this server's runner back to the other servers",
                kept.len()
            );
        }
        self.give_back(kept).await;
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
        self.free_stale_ready().await;
        // Stored for this server's runner, leased to it since: no round trip. Kept too long (its
        // renewals may have failed meanwhile), it is released and claimed as any other.
        let ready = guard(&self.ready).take(id);
        if let Some((lease, msg, waited)) = ready {
            if waited < self.db.lease / 2 {
                if let Some(digest) = self.let_go(lease.token) {
                    let token = lease.token as i64;
                    self.hold(id, token, digest, self.db.lease, ttl);
                }
                return Ok(Taken::Leased(lease, msg));
            }
            self.release(lease).await;
        }
        // The configured lease, renewed while held; a zero `ttl` (tests) is an expired lease.
        let lease = if ttl.is_zero() {
            Duration::ZERO
        } else {
            self.db.lease
        };
        let client = self.client().await?;
        let (claim, recipients) = tokio::try_join!(
            client.prepare_cached(CLAIM),
            client.prepare_cached(RECIPIENTS_OF)
        )
        .map_err(|e| self.pg(e))?;
        // One round trip: the claim (its own transaction, committed durably before the next
        // statement runs) and the read of the recipients, pipelined. The read comes after the
        // commit, so it sees whatever the previous holder committed before losing the lease.
        let lease_ms = lease.as_millis() as i64;
        let (claim_args, recipients_args): (&[&(dyn ToSql + Sync)], &[&(dyn ToSql + Sync)]) =
            (&[&id, &owner, &lease_ms], &[&id]);
        let (claimed, rcpts) = tokio::join!(
            client.query_opt(&claim, claim_args),
            client.query(&recipients, recipients_args)
        );
        let claimed = claimed.map_err(|e| self.pg(e))?;
        let rcpts = match rcpts {
            Ok(rcpts) => rcpts,
            Err(e) => {
                // The claim committed but its message cannot be read: give the lease back at
                // once rather than leave the message to nobody until it runs out.
                if let Some(row) = &claimed {
                    let token: i64 = row.get(0);
                    drop(client);
                    let lease = Lease {
                        id: id.to_string(),
                        owner: owner.to_string(),
                        token: token as u64,
                        expires_ms: 0,
                    };
                    self.release(lease).await;
                }
                return Err(self.pg(e));
            }
        };
        let Some(row) = claimed else {
            // Leased to someone (or being claimed this instant), failed, or gone.
            let state = client
                .prepare_cached("SELECT failed FROM jes_queue WHERE id = $1")
                .await
                .map_err(|e| self.pg(e))?;
            let failed = client
                .query_opt(&state, &[&id])
                .await
                .map_err(|e| self.pg(e))?;
            return Ok(match failed.map(|r| r.get::<_, bool>(0)) {
                Some(false) => Taken::Busy,
                _ => Taken::Gone,
            });
        };
        drop(client);
        let token: i64 = row.get(0);
        let until: i64 = row.get(1);
        let l = Lease {
            id: id.to_string(),
            owner: owner.to_string(),
            token: token as u64,
            expires_ms: until.max(0) as u64,
        };
        let recipients = rcpts.iter().map(recipient_of).collect();
        let msg = message_at(&row, 2, id.to_string(), recipients);
        self.hold(id, token, row.get(10), lease, ttl);
        Ok(Taken::Leased(l, msg))
    }

    async fn record(&self, lease: &Lease, msg: &QueuedMessage) -> Result<(), QueueError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(|e| self.pg(e))?;
        if !self.write_state(&tx, lease, msg, false).await? {
            self.let_go(lease.token);
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
        let digest = self.let_go(lease.token);
        let lost = || QueueError::LeaseLost {
            id: lease.id.clone(),
        };
        let Some(m) = keep_failed else {
            return match self.finish(&lease, digest).await? {
                true => Ok(()),
                false => Err(lost()),
            };
        };
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(|e| self.pg(e))?;
        if !self.write_state(&tx, &lease, m, true).await? {
            return Err(lost());
        }
        tx.execute(
            "UPDATE jes_queue SET lease_owner = NULL, lease_until_ms = 0 WHERE id = $1",
            &[&lease.id],
        )
        .await
        .map_err(|e| self.pg(e))?;
        tx.commit().await.map_err(|e| self.pg(e))
    }

    async fn release(&self, lease: Lease) {
        self.let_go(lease.token);
        let Ok(client) = self.db.client().await else {
            return; // The lease runs out by itself.
        };
        let done = match client.prepare_cached(RELEASE).await {
            Ok(release) => {
                client
                    .execute(&release, &[&lease.id, &(lease.token as i64)])
                    .await
            }
            Err(e) => Err(e),
        };
        if let Err(e) = done {
            tracing::warn!(queue_id = %lease.id, "cannot release the lease: {}", self.db.err(e));
        }
    }

    async fn withdraw(&self, id: &str) -> Result<(), QueueError> {
        // One stored for this server's runner is leased to it: that lease may remove it.
        let ready = guard(&self.ready).take(id);
        let token = ready.map(|(lease, _, _)| {
            self.let_go(lease.token);
            lease.token as i64
        });
        let client = self.client().await?;
        let rows = client
            .query(
                "DELETE FROM jes_queue WHERE id = $1 \
                 AND (lease_owner IS NULL OR lease_token = $2::bigint) RETURNING digest",
                &[&id, &token],
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
