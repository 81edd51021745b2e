//! The PostgreSQL backend of the mailboxes, shared by every server on one database.
//!
//! Design. One row per message copy (`jes_mail`): the mailbox's key (the folder name the file
//! store would use, so a migrated mailbox keeps its name), the UID POP3 shows (`<id>,S=<size>`
//! as the file store makes them; JES's own kept on migration), the copy's own first lines
//! (`X-DeliveredTo:`, `Return-Path:`) and a reference to the body, which is stored once
//! (`crate::pg::bodies`) and shared with the queue. The size is counted by the one rule
//! (`crate::stored_form`) when the copy is written, so LIST and RETR agree. Oldest first is the
//! order of `seq`.
//!
//! One POP3 session per mailbox across all servers: `open` takes the mailbox's row in
//! `jes_mailbox_sessions` (or takes it over once its lease, measured on the database's clock, has
//! run out), and a task renews it every third of `store.leaseseconds` while the session lasts. A
//! server that dies, or loses the database, stops renewing, and another server can open the
//! mailbox within `store.leaseseconds`: an advisory lock would stay held until TCP noticed the
//! dead connection. The deletion at QUIT checks, in its transaction, that the session still holds
//! the row.

use std::io;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use async_trait::async_trait;

use super::{DeliverError, MessageInfo, OpenError, OpenMailbox, SizeCounter};
use crate::event::{new_id, now_ms};
use crate::pg::{bodies, Database};

/// The database's clock in epoch milliseconds (leases are measured on it).
const DB_NOW: &str = "(extract(epoch from clock_timestamp()) * 1000)::bigint";

/// The mailboxes in a PostgreSQL database.
pub struct PgMailboxes {
    db: Database,
    /// Who holds a session lease (`node.name:pid`), for an administrator reading the table.
    me: String,
}

impl PgMailboxes {
    pub fn new(db: Database, me: String) -> PgMailboxes {
        PgMailboxes { db, me }
    }

    async fn messages(&self, key: &str) -> io::Result<Vec<MessageInfo>> {
        let client = self.db.client().await?;
        let rows = client
            .query(
                "SELECT uid, message_id, size, stored_ms FROM jes_mail WHERE mailbox = $1 ORDER BY seq",
                &[&key],
            )
            .await
            .map_err(|e| self.db.err(e))?;
        Ok(rows
            .iter()
            .map(|r| MessageInfo {
                uid: r.get(0),
                id: r.get(1),
                size: r.get::<_, i64>(2).max(0) as u64,
                stored_at: Some(
                    UNIX_EPOCH + Duration::from_millis(r.get::<_, i64>(3).max(0) as u64),
                ),
            })
            .collect())
    }
}

/// The stored bytes of one copy: its first lines, then the shared body.
async fn read_copy(
    db: &Database,
    key: &str,
    uid: &str,
    limit: Option<usize>,
) -> io::Result<Vec<u8>> {
    let client = db.client().await?;
    let row = match limit {
        None => {
            client
                .query_opt(
                    "SELECT m.prefix, b.data FROM jes_mail m JOIN jes_bodies b USING (digest) \
                 WHERE m.mailbox = $1 AND m.uid = $2",
                    &[&key, &uid],
                )
                .await
        }
        Some(limit) => {
            client
                .query_opt(
                    "SELECT m.prefix, substring(b.data FROM 1 FOR $3) FROM jes_mail m \
                 JOIN jes_bodies b USING (digest) WHERE m.mailbox = $1 AND m.uid = $2",
                    &[&key, &uid, &(limit.min(i32::MAX as usize) as i32)],
                )
                .await
        }
    }
    .map_err(|e| db.err(e))?;
    let row = row.ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::NotFound,
            format!("message {uid} is no longer in mailbox {key}"),
        )
    })?;
    let mut bytes: Vec<u8> = row.get(0);
    bytes.extend_from_slice(row.get::<_, &[u8]>(1));
    if let Some(limit) = limit {
        if let Some(end) = bytes.windows(4).position(|w| w == b"\r\n\r\n") {
            bytes.truncate(end + 4);
        }
        bytes.truncate(limit);
    }
    Ok(bytes)
}

fn key_of(mailbox: &str) -> Result<String, crate::address::UnsafeAddress> {
    crate::address::mailbox_dir_name(mailbox)
}

#[async_trait]
impl super::Mailboxes for PgMailboxes {
    async fn deliver(
        &self,
        id: &str,
        mailboxes: &[String],
        return_path: &str,
        message: Arc<Vec<u8>>,
    ) -> Result<Vec<String>, DeliverError> {
        let rp = super::clean_return_path(return_path)?;
        let mut targets = Vec::with_capacity(mailboxes.len());
        for mb in mailboxes {
            targets.push((mb.trim(), key_of(mb)?));
        }
        let db = &self.db;
        let mut client = db.client().await.map_err(DeliverError::Io)?;
        let tx = client
            .transaction()
            .await
            .map_err(|e| DeliverError::Io(db.err(e)))?;
        let digest = bodies::store(&tx, &message)
            .await
            .map_err(|e| DeliverError::Io(db.err(e)))?;
        let stem = if !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()) {
            id.to_string()
        } else {
            new_id()
        };
        let now = now_ms() as i64;
        let mut uids = Vec::with_capacity(targets.len());
        for (mb, key) in &targets {
            let prefix = format!("X-DeliveredTo: {mb}\r\nReturn-Path: <{rp}>\r\n");
            let mut counter = SizeCounter::new();
            counter.feed(prefix.as_bytes());
            counter.feed(&message);
            let size = counter.size();
            let mut uid_stem = stem.clone();
            loop {
                let uid = format!("{uid_stem},S={size}");
                let n = tx
                    .execute(
                        "INSERT INTO jes_mail (mailbox, uid, message_id, prefix, digest, size, stored_ms) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (mailbox, uid) DO NOTHING",
                        &[
                            key,
                            &uid,
                            &id,
                            &prefix.as_bytes(),
                            &digest,
                            &(size.min(i64::MAX as u64) as i64),
                            &now,
                        ],
                    )
                    .await
                    .map_err(|e| DeliverError::Io(db.err(e)))?;
                if n == 1 {
                    uids.push(uid);
                    break;
                }
                uid_stem = new_id();
            }
        }
        tx.commit().await.map_err(|e| DeliverError::Io(db.err(e)))?;
        Ok(uids)
    }

    async fn list(&self, mailbox: &str) -> Result<Vec<MessageInfo>, OpenError> {
        Ok(self.messages(&key_of(mailbox)?).await?)
    }

    async fn read(&self, mailbox: &str, uid: &str) -> io::Result<Vec<u8>> {
        let key = key_of(mailbox).map_err(|e| io::Error::new(io::ErrorKind::NotFound, e))?;
        read_copy(&self.db, &key, uid, None).await
    }

    async fn head(&self, mailbox: &str, uid: &str, limit: usize) -> io::Result<Vec<u8>> {
        let key = key_of(mailbox).map_err(|e| io::Error::new(io::ErrorKind::NotFound, e))?;
        read_copy(&self.db, &key, uid, Some(limit)).await
    }

    async fn open(&self, mailbox: &str) -> Result<Box<dyn OpenMailbox>, OpenError> {
        let key = key_of(mailbox)?;
        let lease_ms = self.db.lease.as_millis() as i64;
        let client = self.db.client().await?;
        let sql = format!(
            "INSERT INTO jes_mailbox_sessions (mailbox, owner, token, until_ms) \
             VALUES ($1, $2, nextval('jes_lease_tokens'), {DB_NOW} + $3) \
             ON CONFLICT (mailbox) DO UPDATE SET owner = EXCLUDED.owner, token = EXCLUDED.token, \
             until_ms = EXCLUDED.until_ms WHERE jes_mailbox_sessions.until_ms < {DB_NOW} \
             RETURNING token"
        );
        let row = client
            .query_opt(&sql, &[&key, &self.me, &lease_ms])
            .await
            .map_err(|e| self.db.err(e))?;
        drop(client);
        let Some(row) = row else {
            return Err(OpenError::InUse);
        };
        let token: i64 = row.get(0);
        let session = Session {
            db: self.db.clone(),
            key: key.clone(),
            token,
            released: false,
        };
        let messages = match self.messages(&key).await {
            Ok(m) => m,
            Err(e) => {
                drop(session);
                return Err(e.into());
            }
        };
        let renewal = tokio::spawn(renew(self.db.clone(), key.clone(), token));
        Ok(Box::new(PgMailbox {
            messages,
            session,
            renewal,
        }))
    }

    async fn recover(&self) -> io::Result<usize> {
        // Nothing is half-written in a database: a transaction either committed or not.
        Ok(0)
    }
}

/// Keeps a session's lease alive; ends when the row is no longer the session's.
async fn renew(db: Database, key: String, token: i64) {
    let lease_ms = db.lease.as_millis() as i64;
    let sql =
        format!("UPDATE jes_mailbox_sessions SET until_ms = {DB_NOW} + $3 WHERE mailbox = $1 AND token = $2");
    loop {
        tokio::time::sleep(db.lease / 3).await;
        let Ok(client) = db.client().await else {
            continue;
        };
        match client.execute(&sql, &[&key, &token, &lease_ms]).await {
            Ok(0) => {
                tracing::warn!("the POP3 session's hold on mailbox {key} was taken over");
                return;
            }
            Ok(_) => {}
            Err(e) => tracing::warn!("cannot renew the POP3 session's hold on {key}: {e}"),
        }
    }
}

/// The session's row in `jes_mailbox_sessions`, given back when the session ends: by `release`
/// when it ends cleanly, else by a task its drop spawns.
struct Session {
    db: Database,
    key: String,
    token: i64,
    released: bool,
}

const RELEASE: &str = "DELETE FROM jes_mailbox_sessions WHERE mailbox = $1 AND token = $2";

impl Session {
    /// Deletes the row now (a failure leaves it to its lease, as a crash would).
    async fn release(&mut self) {
        if let Ok(client) = self.db.client().await {
            if let Err(e) = client.execute(RELEASE, &[&self.key, &self.token]).await {
                tracing::debug!(
                    "mailbox {}: cannot release the session: {}",
                    self.key,
                    self.db.err(e)
                );
            }
        }
        self.released = true;
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        if self.released {
            return;
        }
        let (db, key, token) = (self.db.clone(), self.key.clone(), self.token);
        // Without a runtime (process exit) the lease simply runs out.
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                if let Ok(client) = db.client().await {
                    let _ = client.execute(RELEASE, &[&key, &token]).await;
                }
            });
        }
    }
}

struct PgMailbox {
    messages: Vec<MessageInfo>,
    session: Session,
    renewal: tokio::task::JoinHandle<()>,
}

impl Drop for PgMailbox {
    fn drop(&mut self) {
        self.renewal.abort();
    }
}

impl PgMailbox {
    fn uid(&self, index: usize) -> io::Result<&str> {
        self.messages
            .get(index)
            .map(|m| m.uid.as_str())
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("no message {index} in mailbox {}", self.session.key),
                )
            })
    }
}

#[async_trait]
impl OpenMailbox for PgMailbox {
    fn messages(&self) -> &[MessageInfo] {
        &self.messages
    }

    async fn read(&self, index: usize) -> io::Result<Vec<u8>> {
        read_copy(&self.session.db, &self.session.key, self.uid(index)?, None).await
    }

    async fn head(&self, index: usize, limit: usize) -> io::Result<Vec<u8>> {
        read_copy(
            &self.session.db,
            &self.session.key,
            self.uid(index)?,
            Some(limit),
        )
        .await
    }

    async fn delete(&self, indices: &[usize]) -> io::Result<()> {
        let uids = indices
            .iter()
            .map(|&i| self.uid(i).map(str::to_string))
            .collect::<io::Result<Vec<_>>>()?;
        if uids.is_empty() {
            return Ok(());
        }
        let db = &self.session.db;
        let mut client = db.client().await?;
        let tx = client.transaction().await.map_err(|e| db.err(e))?;
        let held = tx
            .query_opt(
                "SELECT 1 FROM jes_mailbox_sessions WHERE mailbox = $1 AND token = $2 FOR UPDATE",
                &[&self.session.key, &self.session.token],
            )
            .await
            .map_err(|e| db.err(e))?;
        if held.is_none() {
            return Err(io::Error::other(format!(
                "the session's hold on mailbox {} ran out; nothing deleted",
                self.session.key
            )));
        }
        let rows = tx
            .query(
                "DELETE FROM jes_mail WHERE mailbox = $1 AND uid = ANY($2) RETURNING digest",
                &[&self.session.key, &uids],
            )
            .await
            .map_err(|e| db.err(e))?;
        tx.commit().await.map_err(|e| db.err(e))?;
        let keys: Vec<Vec<u8>> = rows.iter().map(|r| r.get(0)).collect();
        bodies::collect(&client, &keys).await;
        Ok(())
    }

    async fn close(mut self: Box<Self>) {
        self.renewal.abort();
        self.session.release().await;
    }
}
