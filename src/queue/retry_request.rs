//! Retry requests: how `jes queue retry` reaches a running server, through the file system only.
//!
//! The tools may run as another user and the server may be a service, so there is no socket or
//! signal to use. An empty file in `smtp/.retry/` is the request; the server polls the
//! directory's mtime (one `stat` a second) and takes them.

use std::fs::OpenOptions;
use std::io;
use std::path::PathBuf;
use std::time::SystemTime;

use super::{valid_id, Spool};
use crate::durable::ensure_dir;

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
#[path = "retry_request_tests.rs"]
mod tests;
