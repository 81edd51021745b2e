//! Durable writes: the one way jes writes a file that must survive a crash.
//!
//! Nothing is ever half-visible and nothing acknowledged is lost: a temporary file whose name no
//! reader lists (`.tmp-…`, dot-prefixed, never `pop*` or `smtp*`), created exclusively, written,
//! fsynced, renamed to its final name, and then the directory fsynced so that the rename itself
//! survives a crash. Two forms: `replace_file` for one file (user.conf, the generated TLS key and
//! certificate), and the primitives (`create_temp`, `fsync_dir`, ...) the storage backends batch
//! (one message into several mailboxes: every file fsynced, then renamed, then each directory
//! fsynced once; a queue file written or rewritten). Names are `<millis><6-digit counter>`: time
//! keeps them ordered and unique across restarts, the per-process counter keeps them unique within
//! a millisecond and across threads.

use std::fs::{File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Prefix of every temporary file; readers skip anything that starts with a dot.
pub(crate) const TEMP_PREFIX: &str = ".tmp-";

static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

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
    create_temp_mode(dir, 0o666)
}

/// `create_temp` with the permission bits `mode` (before the umask).
fn create_temp_mode(dir: &Path, mode: u32) -> io::Result<(PathBuf, File)> {
    use std::os::unix::fs::OpenOptionsExt;
    let pid = std::process::id();
    loop {
        let n = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
        let path = dir.join(format!("{TEMP_PREFIX}{pid}-{n}"));
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&path)
        {
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

/// Replaces (or creates) `path` with `contents` durably: temporary file in the same folder, fsync,
/// rename, fsync of the folder. A new file is private (0600). With `keep_owner`, a file that
/// exists keeps its permissions, owner and group (root running `jes user add` on a `root:jes 0640`
/// user.conf must not leave one the server's group cannot read; best effort, since only root may
/// give a file away); without, the result is always 0600 (a private key).
pub fn replace_file(path: &Path, contents: &[u8], keep_owner: bool) -> io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::MetadataExt;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let old = if keep_owner {
        std::fs::metadata(path).ok()
    } else {
        None
    };
    let (tmp, mut file) =
        create_temp_mode(dir, 0o600).map_err(|e| with_path(e, "cannot write a file in", dir))?;
    let result = (|| {
        if let Some(m) = &old {
            file.set_permissions(m.permissions())?;
            let _ = std::os::unix::fs::fchown(&file, Some(m.uid()), Some(m.gid()));
        }
        file.write_all(contents)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)?;
        fsync_dir(dir)
    })();
    if result.is_err() {
        let _ = remove_if_exists(&tmp);
    }
    result.map_err(|e| with_path(e, "cannot write", path))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn replace_file_is_private_when_new_and_keeps_the_old_mode_when_asked() {
        let dir = tempfile::tempdir().unwrap();
        let conf = dir.path().join("user.conf");
        replace_file(&conf, b"a", true).unwrap();
        assert_eq!(
            (std::fs::read(&conf).unwrap(), mode(&conf)),
            (b"a".to_vec(), 0o600)
        );
        std::fs::set_permissions(&conf, std::fs::Permissions::from_mode(0o640)).unwrap();
        replace_file(&conf, b"b", true).unwrap();
        assert_eq!(
            (std::fs::read(&conf).unwrap(), mode(&conf)),
            (b"b".to_vec(), 0o640)
        );
        // A private key stays private whatever the file it replaces.
        replace_file(&conf, b"key", false).unwrap();
        assert_eq!(mode(&conf), 0o600);
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(
            names,
            vec![std::ffi::OsString::from("user.conf")],
            "no temp left"
        );
    }

    #[test]
    fn replace_file_names_the_path_on_failure() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("no/such/folder/f");
        let err = replace_file(&missing, b"x", false).unwrap_err();
        assert!(err.to_string().contains("no/such/folder"), "{err}");
    }
}
