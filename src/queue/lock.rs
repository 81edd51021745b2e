//! Coordination between the running server and the `jes queue` tools, through the file system only.
//!
//! Locks: the server's queue runner and an administrator's `jes queue retry|delete` must never
//! rewrite the same queue file at the same time, or one of them loses the other's change (or a
//! deleted message is delivered anyway). An advisory `flock` on the queue file itself needs no extra
//! lock files to clean up after a crash: the kernel drops the lock with the process. Because `save`
//! replaces a file by rename (a new inode), a lock is only good if the path still names the inode
//! that was locked, so acquiring checks that and starts over; and `QueueLock::save` locks the new
//! file *before* renaming it into place, so the lock is never let go between two writes.
//!
//! Retry requests: `jes queue retry` must reach a running server without a socket or a signal (the
//! tools may run as another user, the server may be a service). An empty file in `smtp/.retry/`
//! is the request; the server polls the directory's mtime (one `stat` a second) and takes them.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use super::{valid_id, QueueError, QueuedMessage, Spool};
use crate::durable::ensure_dir;

/// How long `lock` waits for another process to finish with a file.
pub const LOCK_TIMEOUT: Duration = Duration::from_secs(10);

/// An exclusive lock on one queue file, held until dropped.
#[derive(Debug)]
pub struct QueueLock {
    id: String,
    path: PathBuf,
    /// The locked open file; its inode is the one the path names while the lock is held.
    file: File,
}

impl QueueLock {
    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads the locked file.
    pub fn load(&self, store: &Spool) -> Result<QueuedMessage, QueueError> {
        store.load(&self.id)
    }

    /// Rewrites the locked file (like `Spool::save`) and keeps the lock on the new file: it is
    /// locked before the rename puts it in place, so no other process can slip in between.
    pub fn save(&mut self, store: &Spool, msg: &QueuedMessage) -> Result<(), QueueError> {
        if msg.id != self.id {
            return Err(QueueError::invalid(
                &self.path,
                format!("lock is for {}, not {}", self.id, msg.id),
            ));
        }
        let mut locked: Option<File> = None;
        store.save_with(msg, |f, bytes| {
            // Nobody else can know the temporary file yet, so this never waits. The clone shares
            // the open file description, so the lock outlives the handle `save_with` closes.
            f.try_lock().map_err(io::Error::from)?;
            locked = Some(f.try_clone()?);
            io::Write::write_all(f, bytes)
        })?;
        if let Some(file) = locked {
            // Dropping the old handle releases the old (now unlinked) inode; waiters on it will
            // find the path changed and come to the new one.
            self.file = file;
        }
        Ok(())
    }

    /// Removes the file while still holding the lock; a waiter then finds it gone (NotFound).
    pub fn remove(self, store: &Spool) -> Result<(), QueueError> {
        store.remove(&self.id)
    }
}

/// Locks queue entry `id`, waiting up to `LOCK_TIMEOUT` for another holder. A file that does not
/// exist (or vanished while waiting) is `QueueError::Io` with kind `NotFound`; a timeout has kind
/// `WouldBlock`.
pub fn lock(store: &Spool, id: &str) -> Result<QueueLock, QueueError> {
    lock_timeout(store, id, LOCK_TIMEOUT)
}

/// `lock` with a chosen timeout.
pub fn lock_timeout(store: &Spool, id: &str, timeout: Duration) -> Result<QueueLock, QueueError> {
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_millis(5);
    loop {
        if let Some(l) = try_lock(store, id)? {
            return Ok(l);
        }
        let now = Instant::now();
        if now >= deadline {
            let path = store.path_of(id);
            return Err(QueueError::Io {
                path,
                source: io::Error::new(
                    io::ErrorKind::WouldBlock,
                    format!(
                        "locked by another process (the server?) for more than {}s",
                        timeout.as_secs_f32()
                    ),
                ),
            });
        }
        std::thread::sleep(pause.min(deadline - now));
        pause = (pause * 2).min(Duration::from_millis(100));
    }
}

/// Locks queue entry `id` if no one else holds it: `Ok(None)` when it is busy.
pub fn try_lock(store: &Spool, id: &str) -> Result<Option<QueueLock>, QueueError> {
    let path = store.path_of(id);
    if !valid_id(id) {
        return Err(QueueError::invalid(&path, format!("bad id {id:?}")));
    }
    let io_err = |e| QueueError::Io {
        path: path.clone(),
        source: e,
    };
    loop {
        let file = File::open(&path).map_err(io_err)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => return Ok(None),
            Err(std::fs::TryLockError::Error(e)) => return Err(io_err(e)),
        }
        let locked = file.metadata().map_err(io_err)?;
        // The path must still name what we locked: a `save` may have renamed a new file over it,
        // or a `remove` unlinked it, while we waited.
        match std::fs::metadata(&path) {
            Ok(now) if now.ino() == locked.ino() && now.dev() == locked.dev() => {
                return Ok(Some(QueueLock {
                    id: id.to_string(),
                    path,
                    file,
                }));
            }
            Ok(_) => continue,
            Err(e) => return Err(io_err(e)),
        }
    }
}

/// A request, found in `smtp/.retry/`, to try queued mail now.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum RetryRequest {
    All,
    One(String),
    /// Not a retry: a message another server sharing the queue just queued (the database
    /// backend's `NOTIFY`), due now.
    Arrived(String),
}

const RETRY_DIR: &str = ".retry";
const RETRY_ALL: &str = "all";

fn retry_dir(store: &Spool) -> PathBuf {
    store.dir().join(RETRY_DIR)
}

/// Asks a running server to retry entry `id` now (`None`: every entry) by creating
/// `smtp/.retry/<id>` (or `smtp/.retry/all`). Set the file's Next-Attempt first: the request only
/// wakes the server, the queue file says what is due.
pub fn request_retry(store: &Spool, id: Option<&str>) -> io::Result<()> {
    let name = match id {
        Some(id) if valid_id(id) => id,
        Some(id) => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("bad queue id {id:?}"),
            ))
        }
        None => RETRY_ALL,
    };
    let dir = retry_dir(store);
    ensure_dir(&dir)?;
    let path = dir.join(name);
    OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)
        .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
    Ok(())
}

/// Takes (lists and removes) the pending retry requests: `All` first, then ids in order, no
/// duplicates. Names that are neither `all` nor a queue id are removed and ignored. A missing
/// directory is no request. Read `retry_dir_stamp` *before* calling this, so that a request made
/// while taking changes the stamp after the one remembered.
pub fn take_retry_requests(store: &Spool) -> io::Result<Vec<RetryRequest>> {
    let dir = retry_dir(store);
    let Some(entries) = crate::durable::read_dir_if_exists(&dir)
        .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", dir.display())))?
    else {
        return Ok(Vec::new());
    };
    let mut requests = Vec::new();
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name();
        let request = match name.to_str() {
            Some(RETRY_ALL) => Some(RetryRequest::All),
            Some(id) if valid_id(id) => Some(RetryRequest::One(id.to_string())),
            _ => None,
        };
        // Removal errors are not fatal: the request is still honoured now, and at worst repeated.
        let path = entry.path();
        if std::fs::remove_file(&path).is_err() && request.is_none() {
            let _ = std::fs::remove_dir(&path);
        }
        requests.extend(request);
    }
    requests.sort();
    requests.dedup();
    Ok(requests)
}

/// The modification time of `smtp/.retry/` (None if it does not exist): it changes whenever a
/// request is made, so a server can poll with this single `stat` and call `take_retry_requests`
/// only when it changed. Poll the queue itself on its usual interval too: a file system with
/// one-second timestamps can hide a request made in the same second as the last take.
pub fn retry_dir_stamp(store: &Spool) -> Option<SystemTime> {
    std::fs::metadata(retry_dir(store))
        .and_then(|m| m.modified())
        .ok()
}

#[cfg(test)]
#[path = "lock_tests.rs"]
mod tests;
