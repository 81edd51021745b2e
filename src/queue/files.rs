//! The file backend of the queue: JES's spool folder `smtp/` behind the `Queue` interface.
//!
//! A lease is an `flock` on the queue file (`file_lock::QueueLock`), so a `jes queue` tool or a second
//! process waits for it whatever the expiry, plus a token and an expiry kept here. Expiry matters
//! only to `take`: a lease past it may be taken over, which closes the old flock, and from then on
//! the first holder's writes get `LeaseLost` (a stalled attempt cannot overwrite the result of the
//! one after it). A holder past its expiry that nobody took over still writes: losing a slow
//! attempt's result would only send its mail again. Blocking work (fsyncs, listing the folder)
//! runs on tokio's blocking pool.
//!
//! The runner learns of files it was not handed through `arrivals`, which lists the folder only
//! when its modification time moved, and of `jes queue retry` requests through `retry_requests`,
//! one `stat` of `smtp/.retry/` unless it moved: an idle server with 100,000 deferred messages
//! reads no files.

use std::collections::HashMap;
use std::io;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;

use super::admin::{self, Deleted};
use super::file_lock::{self, QueueLock};
use super::retry_request::{self, RetryRequest};
use super::{BounceFrom, Lease, Queue, QueueError, QueuedMessage, Spool, Taken};
use crate::event::now_ms;
use crate::store::blocking;

/// A lease this process holds: the token its writes must carry, and the file's flock.
struct Held {
    token: u64,
    expires_ms: u64,
    lock: Arc<Mutex<QueueLock>>,
}

/// Modification times (themselves optional: a folder that does not exist) at the last look, for
/// the spool folder and its retry folder; `None` before the first look.
type Seen = (Option<Option<SystemTime>>, Option<Option<SystemTime>>);

/// The spool folder as a `Queue`. Cloning shares the leases.
#[derive(Clone)]
pub struct FileQueue {
    spool: Arc<Spool>,
    failed_dir: PathBuf,
    held: Arc<Mutex<HashMap<String, Held>>>,
    tokens: Arc<AtomicU64>,
    /// The folder's and the retry folder's modification times at the last look.
    seen: Arc<Mutex<Seen>>,
}

/// Locks a mutex even if a panicking thread poisoned it: the maps stay usable.
fn guard<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn joined<T>(r: Result<Result<T, QueueError>, tokio::task::JoinError>) -> Result<T, QueueError> {
    r.unwrap_or_else(|e| {
        Err(QueueError::Io {
            path: PathBuf::new(),
            source: io::Error::other(format!("queue task failed: {e}")),
        })
    })
}

impl FileQueue {
    /// The queue in spool folder `dir`; finished messages that could not be bounced go to
    /// `failed_dir`.
    pub fn new(dir: PathBuf, failed_dir: PathBuf) -> Self {
        // Tokens only need to differ between the leases of one process (the flock excludes
        // other processes); starting from the clock keeps them from repeating after a restart.
        let first = now_ms().wrapping_mul(1000);
        FileQueue {
            spool: Arc::new(Spool::new(dir)),
            failed_dir,
            held: Arc::default(),
            tokens: Arc::new(AtomicU64::new(first)),
            seen: Arc::new(Mutex::new((None, None))),
        }
    }

    /// The spool itself, for the file backend's tools and tests.
    pub fn spool(&self) -> &Spool {
        &self.spool
    }

    /// The held lease `lease` names, if nobody took it over: same token.
    fn current(&self, lease: &Lease) -> Result<Arc<Mutex<QueueLock>>, QueueError> {
        let held = guard(&self.held);
        match held.get(&lease.id) {
            Some(h) if h.token == lease.token => Ok(h.lock.clone()),
            _ => Err(QueueError::LeaseLost {
                id: lease.id.clone(),
            }),
        }
    }
}

#[async_trait]
impl Queue for FileQueue {
    fn location(&self) -> String {
        self.spool.dir().display().to_string()
    }

    async fn enqueue(
        &self,
        id: &str,
        sender: &str,
        recipients: &[String],
        dsn: &crate::dsn::Dsn,
        message: Arc<Vec<u8>>,
    ) -> Result<String, QueueError> {
        let (spool, id, sender) = (self.spool.clone(), id.to_string(), sender.to_string());
        let (recipients, dsn) = (recipients.to_vec(), dsn.clone());
        joined(
            tokio::task::spawn_blocking(move || {
                spool.enqueue_dsn(&id, &sender, &recipients, &dsn, &message)
            })
            .await,
        )
    }

    async fn arrivals(&self) -> Result<Option<Vec<String>>, QueueError> {
        let spool = self.spool.clone();
        let stamp = spool.changed_at();
        {
            let mut seen = guard(&self.seen);
            if seen.0 == Some(stamp) {
                return Ok(None);
            }
            seen.0 = Some(stamp);
        }
        let dir = spool.dir().to_path_buf();
        let ids = blocking(move || spool.list_ids()).await;
        if ids.is_err() {
            // Look again next time, or new files stay hidden until the folder changes again.
            guard(&self.seen).0 = None;
        }
        ids.map(Some).map_err(|e| QueueError::io(e, &dir))
    }

    async fn times(&self, ids: Vec<String>) -> Vec<(String, u64, u64)> {
        let spool = self.spool.clone();
        blocking(move || {
            Ok(ids
                .into_iter()
                .filter_map(|id| match spool.peek_times(&id) {
                    Ok((next, received)) => Some((id, next, received)),
                    Err(e) => {
                        tracing::error!("queue file {id} cannot be read, left alone: {e}");
                        None
                    }
                })
                .collect())
        })
        .await
        .unwrap_or_default()
    }

    async fn take(&self, id: &str, owner: &str, ttl: Duration) -> Result<Taken, QueueError> {
        {
            let mut held = guard(&self.held);
            match held.get(id) {
                Some(h) if h.expires_ms > now_ms() => return Ok(Taken::Busy),
                // Expired: its holder loses it. Dropping our share of its flock lets the
                // try_lock below succeed once the holder is done with any write in progress.
                Some(_) => {
                    held.remove(id);
                }
                None => {}
            }
        }
        let (spool, id_owned) = (self.spool.clone(), id.to_string());
        let locked = joined(
            tokio::task::spawn_blocking(move || {
                let Some(l) = file_lock::try_lock(&spool, &id_owned)? else {
                    return Ok(None);
                };
                let msg = l.load(&spool)?;
                Ok(Some((l, msg)))
            })
            .await,
        );
        let (l, msg) = match locked {
            Ok(Some(found)) => found,
            Ok(None) => return Ok(Taken::Busy),
            Err(e) if e.is_not_found() => return Ok(Taken::Gone),
            Err(e) => return Err(e),
        };
        let lease = Lease {
            id: id.to_string(),
            owner: owner.to_string(),
            token: self.tokens.fetch_add(1, Ordering::Relaxed),
            expires_ms: now_ms().saturating_add(ttl.as_millis() as u64),
        };
        let mut held = guard(&self.held);
        if held.contains_key(id) {
            // Taken by another caller of this process while we locked: cannot happen with the
            // flock held, but never hand out two leases.
            return Ok(Taken::Busy);
        }
        held.insert(
            id.to_string(),
            Held {
                token: lease.token,
                expires_ms: lease.expires_ms,
                lock: Arc::new(Mutex::new(l)),
            },
        );
        Ok(Taken::Leased(lease, msg))
    }

    async fn record(&self, lease: &Lease, msg: &QueuedMessage) -> Result<(), QueueError> {
        let lock = self.current(lease)?;
        let (spool, msg) = (self.spool.clone(), msg.clone());
        joined(tokio::task::spawn_blocking(move || guard(&lock).save(&spool, &msg)).await)
    }

    async fn complete(
        &self,
        lease: Lease,
        keep_failed: Option<&QueuedMessage>,
    ) -> Result<(), QueueError> {
        let lock = {
            let mut held = guard(&self.held);
            match held.get(&lease.id) {
                Some(h) if h.token == lease.token => {}
                _ => return Err(QueueError::LeaseLost { id: lease.id }),
            }
            held.remove(&lease.id).map(|h| h.lock)
        };
        let Some(lock) = lock else {
            return Err(QueueError::LeaseLost { id: lease.id });
        };
        let (spool, id) = (self.spool.clone(), lease.id);
        let failed = keep_failed.map(|m| (m.clone(), self.failed_dir.clone()));
        // Removed while the flock is still held: a waiting tool then finds it gone.
        joined(
            tokio::task::spawn_blocking(move || {
                let _held = guard(&lock);
                if let Some((msg, dir)) = failed {
                    // A finished message nobody could be told about (an undeliverable bounce):
                    // JES kept it in failed/, in its final state; failing to keep that copy is
                    // logged, not worth keeping the message queued for.
                    match spool.keep_failed(&msg, &dir) {
                        Ok(to) => tracing::warn!(queue_id = %id, "undeliverable message kept in {}", to.display()),
                        Err(e) => tracing::error!(queue_id = %id, "cannot keep the undeliverable message in {}: {e}", dir.display()),
                    }
                }
                spool.remove(&id)
            })
            .await,
        )
    }

    async fn release(&self, lease: Lease) {
        let mut held = guard(&self.held);
        if held.get(&lease.id).is_some_and(|h| h.token == lease.token) {
            held.remove(&lease.id);
        }
    }

    async fn withdraw(&self, id: &str) -> Result<(), QueueError> {
        let (spool, id) = (self.spool.clone(), id.to_string());
        joined(tokio::task::spawn_blocking(move || spool.remove(&id)).await)
    }

    async fn list(&self) -> Result<(Vec<QueuedMessage>, Vec<String>), QueueError> {
        let spool = self.spool.clone();
        let dir = spool.dir().to_path_buf();
        joined(
            tokio::task::spawn_blocking(move || {
                admin::load_all(&spool).map_err(|e| QueueError::invalid(&dir, e))
            })
            .await,
        )
    }

    async fn load(&self, id: &str) -> Result<QueuedMessage, QueueError> {
        let (spool, id) = (self.spool.clone(), id.to_string());
        joined(tokio::task::spawn_blocking(move || spool.load(&id)).await)
    }

    async fn retry(&self, id: Option<&str>) -> Result<usize, QueueError> {
        let (spool, id) = (self.spool.clone(), id.map(str::to_string));
        joined(
            tokio::task::spawn_blocking(move || match id {
                Some(id) => admin::retry_entry(&spool, &id, true).map(|()| 1),
                None => {
                    let dir = spool.dir().to_path_buf();
                    let ids = spool.list_ids().map_err(|e| QueueError::io(e, &dir))?;
                    let mut retried = 0;
                    for id in ids {
                        match admin::retry_entry(&spool, &id, false) {
                            Ok(()) => retried += 1,
                            // Delivered or deleted meanwhile.
                            Err(e) if admin::is_not_found(&e) => {}
                            Err(e) => tracing::warn!("cannot retry queue entry {id}: {e}"),
                        }
                    }
                    retry_request::request_retry(&spool, None)
                        .map_err(|e| QueueError::io(e, &dir))?;
                    Ok(retried)
                }
            })
            .await,
        )
    }

    async fn retry_requests(&self) -> Vec<RetryRequest> {
        let spool = self.spool.clone();
        let stamp = retry_request::retry_dir_stamp(&spool);
        {
            let mut seen = guard(&self.seen);
            // The first look always reads: requests left from before the start are served too.
            if seen.1 == Some(stamp) {
                return Vec::new();
            }
            seen.1 = Some(stamp);
        }
        blocking(move || retry_request::take_retry_requests(&spool))
            .await
            .unwrap_or_else(|e| {
                tracing::error!("cannot read the queue's retry requests: {e}");
                guard(&self.seen).1 = None;
                Vec::new()
            })
    }

    async fn delete(
        &self,
        id: &str,
        bounce_from: Option<&BounceFrom>,
    ) -> Result<(Deleted, QueuedMessage), QueueError> {
        let (spool, id) = (self.spool.clone(), id.to_string());
        let bounce_from = bounce_from.cloned();
        joined(
            tokio::task::spawn_blocking(move || {
                admin::delete_entry(&spool, &id, bounce_from.as_ref())
            })
            .await,
        )
    }

    async fn probe(&self) -> io::Result<()> {
        let spool = self.spool.clone();
        blocking(move || spool.probe_writable()).await
    }

    async fn recover(&self) -> io::Result<usize> {
        let spool = self.spool.clone();
        blocking(move || spool.remove_stale_temp_files()).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queue() -> (tempfile::TempDir, FileQueue) {
        let tmp = tempfile::tempdir().unwrap();
        let q = FileQueue::new(tmp.path().join("smtp"), tmp.path().join("failed"));
        (tmp, q)
    }

    async fn enqueue(q: &FileQueue) -> String {
        let rcpt = vec!["bob@remote.test".to_string()];
        let msg = Arc::new(b"Subject: x\r\n\r\nbody\r\n".to_vec());
        q.enqueue("", "app@local.test", &rcpt, &Default::default(), msg)
            .await
            .unwrap()
    }

    async fn lease(q: &FileQueue, id: &str, ttl: Duration) -> (Lease, QueuedMessage) {
        match q.take(id, "test", ttl).await.unwrap() {
            Taken::Leased(l, m) => (l, m),
            other => panic!("expected a lease, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn a_leased_message_is_busy_until_released_and_gone_once_complete() {
        let (_tmp, q) = queue();
        let id = enqueue(&q).await;
        let (l, mut m) = lease(&q, &id, Duration::from_secs(60)).await;
        assert_eq!(l.owner, "test");
        assert!(matches!(
            q.take(&id, "other", Duration::from_secs(60)).await.unwrap(),
            Taken::Busy
        ));
        m.attempts = 3;
        q.record(&l, &m).await.unwrap();
        assert_eq!(q.load(&id).await.unwrap().attempts, 3);
        q.release(l).await;
        let (l2, m2) = lease(&q, &id, Duration::from_secs(60)).await;
        assert_eq!(m2.attempts, 3);
        q.complete(l2, None).await.unwrap();
        assert!(!q.spool().path_of(&id).exists());
        assert!(matches!(
            q.take(&id, "test", Duration::from_secs(60)).await.unwrap(),
            Taken::Gone
        ));
    }

    #[tokio::test]
    async fn an_expired_lease_cannot_overwrite_its_successor() {
        let (_tmp, q) = queue();
        let id = enqueue(&q).await;
        let (stale, mut m) = lease(&q, &id, Duration::ZERO).await;
        let (fresh, mut m2) = lease(&q, &id, Duration::from_secs(60)).await;
        assert_ne!(stale.token, fresh.token);
        m2.attempts = 2;
        q.record(&fresh, &m2).await.unwrap();
        m.attempts = 9;
        let lost = q.record(&stale, &m).await;
        assert!(
            matches!(lost, Err(QueueError::LeaseLost { .. })),
            "{lost:?}"
        );
        assert!(matches!(
            q.complete(stale.clone(), None).await,
            Err(QueueError::LeaseLost { .. })
        ));
        assert_eq!(q.load(&id).await.unwrap().attempts, 2);
        // A stale release does not end the successor's lease, which still works.
        q.release(stale).await;
        assert!(matches!(
            q.take(&id, "other", Duration::from_secs(60)).await.unwrap(),
            Taken::Busy
        ));
        q.complete(fresh, None).await.unwrap();
        assert!(!q.spool().path_of(&id).exists());
    }

    #[tokio::test]
    async fn an_expired_lease_nobody_took_over_still_writes() {
        let (_tmp, q) = queue();
        let id = enqueue(&q).await;
        let (slow, mut m) = lease(&q, &id, Duration::ZERO).await;
        m.attempts = 4;
        q.record(&slow, &m).await.unwrap();
        assert_eq!(q.load(&id).await.unwrap().attempts, 4);
        q.complete(slow, None).await.unwrap();
    }

    #[tokio::test]
    async fn complete_can_keep_an_undeliverable_message_in_failed() {
        let (tmp, q) = queue();
        let id = enqueue(&q).await;
        let (l, mut m) = lease(&q, &id, Duration::from_secs(60)).await;
        m.recipients[0].state = crate::queue::RecipientState::Failed;
        q.complete(l, Some(&m)).await.unwrap();
        assert!(!q.spool().path_of(&id).exists());
        let kept =
            std::fs::read_to_string(tmp.path().join(format!("failed/smtp{id}.ser"))).unwrap();
        assert!(kept.contains("failed"), "its final state: {kept}");
    }

    #[tokio::test]
    async fn withdraw_takes_back_an_entry_nobody_holds() {
        let (_tmp, q) = queue();
        let id = enqueue(&q).await;
        q.withdraw(&id).await.unwrap();
        assert!(matches!(
            q.take(&id, "t", Duration::from_secs(60)).await.unwrap(),
            Taken::Gone
        ));
    }

    #[tokio::test]
    async fn a_tool_holding_the_file_makes_it_busy() {
        let (_tmp, q) = queue();
        let id = enqueue(&q).await;
        let tool = file_lock::lock(q.spool(), &id).unwrap();
        assert!(matches!(
            q.take(&id, "t", Duration::from_secs(60)).await.unwrap(),
            Taken::Busy
        ));
        drop(tool);
        lease(&q, &id, Duration::from_secs(60)).await;
    }

    #[tokio::test]
    async fn arrivals_lists_the_folder_only_when_it_changed() {
        let (_tmp, q) = queue();
        assert_eq!(q.arrivals().await.unwrap(), Some(vec![]));
        let id = enqueue(&q).await;
        // The folder's mtime may not move within one clock tick: compare with a fresh look.
        let seen = q.arrivals().await.unwrap();
        if let Some(ids) = seen {
            assert_eq!(ids, vec![id.clone()]);
        }
        assert_eq!(q.arrivals().await.unwrap(), None);
        let times = q.times(vec![id.clone(), "999".into()]).await;
        assert_eq!(times.len(), 1);
        assert_eq!(times[0].0, id);
    }
}
