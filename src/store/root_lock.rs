//! One server per mail root: `jes serve` holds an exclusive `flock` on `<root>/jes.lock` for as
//! long as it runs.
//!
//! Two servers on one folder would each think they own the queue (both deliver every message) and
//! the mailboxes (both answer POP3 from their own listing). The lock file also says who holds it
//! (process id, host, start time), so the second server's refusal names the first. The kernel drops
//! an flock when its holder dies, so `kill -9` leaves no stale lock to clean up: the file stays,
//! and the next server simply takes it.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{self, Read, Seek, Write};
use std::path::{Path, PathBuf};

/// The lock file's name in the mail root.
pub const LOCK_FILE: &str = "jes.lock";

/// Held for the life of the server; dropping it releases the lock.
#[derive(Debug)]
pub struct RootLock {
    _file: File,
    pub path: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum RootLockError {
    #[error("another jes is serving {root} ({holder}); stop it first (lock file {path})")]
    Held {
        root: PathBuf,
        path: PathBuf,
        holder: String,
    },
    #[error("cannot lock the mail root {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// Takes the lock on mail root `root` and writes who holds it.
pub fn lock_root(root: &Path) -> Result<RootLock, RootLockError> {
    let path = root.join(LOCK_FILE);
    let io_err = |source| RootLockError::Io {
        path: path.clone(),
        source,
    };
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(io_err)?;
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            let holder = holder.trim();
            return Err(RootLockError::Held {
                root: root.to_path_buf(),
                path: path.clone(),
                holder: if holder.is_empty() {
                    "holder unknown".into()
                } else {
                    holder.to_string()
                },
            });
        }
        Err(TryLockError::Error(e)) => return Err(io_err(e)),
    }
    let host = crate::config::hostname::machine_name().unwrap_or_else(|| "?".into());
    let line = format!(
        "pid {} on {host}, since {}\n",
        std::process::id(),
        chrono::Local::now().format("%Y-%m-%d %H:%M:%S %z")
    );
    file.set_len(0)
        .and_then(|()| file.rewind())
        .and_then(|()| file.write_all(line.as_bytes()))
        .map_err(io_err)?;
    Ok(RootLock { _file: file, path })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_is_refused_naming_the_holder_and_freed_on_drop() {
        let tmp = tempfile::tempdir().unwrap();
        let first = lock_root(tmp.path()).unwrap();
        let err = lock_root(tmp.path()).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains(&format!("pid {}", std::process::id())),
            "{text}"
        );
        assert!(text.contains("another jes is serving"), "{text}");
        drop(first);
        let again = lock_root(tmp.path()).unwrap();
        let content = std::fs::read_to_string(&again.path).unwrap();
        assert_eq!(
            content.lines().count(),
            1,
            "rewritten, not appended: {content}"
        );
    }
}
