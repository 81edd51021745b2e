//! File-system primitives shared by the mailbox store and the queue.
//!
//! Both write mail the same way, so that nothing is ever half-visible and nothing acknowledged is
//! lost: a temporary file whose name no reader lists (`.tmp-…`, dot-prefixed, never `pop*` or
//! `smtp*`), created exclusively, written, fsynced, renamed to its final name, and then the directory
//! fsynced so that the rename itself survives a crash. Names are `<millis><6-digit counter>`: time
//! keeps them ordered and unique across restarts, the per-process counter keeps them unique within
//! a millisecond and across threads.

use std::fs::{File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Prefix of every temporary file; readers skip anything that starts with a dot.
pub(crate) const TEMP_PREFIX: &str = ".tmp-";

static NAME_COUNTER: AtomicU64 = AtomicU64::new(0);
static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

use crate::event::now_ms;

/// Runs blocking file work (fsyncs, directory scans) on tokio's blocking pool, so the threads
/// that serve sessions never wait for a disk. A panic in `f` comes back as an error.
pub(crate) async fn blocking<T, F>(f: F) -> io::Result<T>
where
    F: FnOnce() -> io::Result<T> + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|e| Err(io::Error::other(format!("file task failed: {e}"))))
}

/// Runs short blocking work (reading one file that is usually in the page cache) where it is:
/// cheaper than a hand-off to the blocking pool for every POP3 RETR. On the multi-threaded
/// runtime the runtime first moves other tasks off this thread; elsewhere (tools, tests on a
/// current-thread runtime) it simply runs.
pub(crate) fn in_place<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(f)
        }
        _ => f(),
    }
}

/// A fresh name stem `<millis><6-digit counter>`, distinct for every call in this process.
pub(crate) fn unique_stem() -> String {
    let n = NAME_COUNTER.fetch_add(1, Ordering::Relaxed) % 1_000_000;
    format!("{}{:06}", now_ms(), n)
}

/// True for "no space left on device" and "disk quota exceeded": the caller answers 452 4.3.1.
pub fn is_full(err: &io::Error) -> bool {
    matches!(err.raw_os_error(), Some(28) | Some(122))
        || matches!(
            err.kind(),
            io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded
        )
}

/// Fsyncs a directory so that renames and unlinks inside it are durable.
pub(crate) fn fsync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Creates `dir` (and missing parents) if needed, fsyncing the parent of every directory created.
pub(crate) fn ensure_dir(dir: &Path) -> io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    // Find the first ancestor that exists: each directory below it is new and needs its parent synced.
    let mut missing = Vec::new();
    let mut cur = Some(dir);
    while let Some(d) = cur {
        if d.is_dir() {
            break;
        }
        missing.push(d.to_path_buf());
        cur = d.parent();
    }
    std::fs::create_dir_all(dir)?;
    for d in missing.iter().rev() {
        if let Some(parent) = d.parent() {
            let parent = if parent.as_os_str().is_empty() {
                Path::new(".")
            } else {
                parent
            };
            fsync_dir(parent)?;
        }
    }
    Ok(())
}

/// Creates a new temporary file in `dir`, exclusively; a stale name left by an earlier process with
/// the same pid is skipped, never reused.
pub(crate) fn create_temp(dir: &Path) -> io::Result<(PathBuf, File)> {
    let pid = std::process::id();
    loop {
        let n = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
        let path = dir.join(format!("{TEMP_PREFIX}{pid}-{n}"));
        match OpenOptions::new().write(true).create_new(true).open(&path) {
            Ok(f) => return Ok((path, f)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
}

/// The entries of `dir`, or `None` when it does not exist: a mailbox, queue or request folder that
/// was never created is simply empty.
pub(crate) fn read_dir_if_exists(dir: &Path) -> io::Result<Option<std::fs::ReadDir>> {
    match std::fs::read_dir(dir) {
        Ok(entries) => Ok(Some(entries)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Removes the temporary files a crash left in `dir` (not below it); a missing `dir` has none.
/// Only safe while nothing writes there, i.e. at start-up: a write in progress has one too.
pub(crate) fn remove_stale_temps(dir: &Path) -> io::Result<usize> {
    let Some(entries) = read_dir_if_exists(dir)? else {
        return Ok(0);
    };
    let mut n = 0;
    for entry in entries {
        let entry = entry?;
        let is_temp = entry
            .file_name()
            .to_str()
            .is_some_and(|s| s.starts_with(TEMP_PREFIX));
        if is_temp && entry.file_type()?.is_file() {
            remove_if_exists(&entry.path())?;
            n += 1;
        }
    }
    if n > 0 {
        fsync_dir(dir)?;
    }
    Ok(n)
}

/// Removes a file, treating "already gone" as success.
pub(crate) fn remove_if_exists(path: &Path) -> io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Attaches a path to an error message, keeping its kind and OS code visible in the text.
pub(crate) fn with_path(err: io::Error, what: &str, path: &Path) -> io::Error {
    io::Error::new(err.kind(), format!("{what} {}: {err}", path.display()))
}
