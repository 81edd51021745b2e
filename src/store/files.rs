//! The file backend of the mailboxes: local mailboxes under `users/ADDR/`, one `popNNNN.jmsg` file per message, readable by JES and jes.
//!
//! A message is a plain file so that a JES installation carries over unchanged and an administrator
//! can look at the mail with `cat`. Files hold the wire form (CRLF, still dot-stuffed), exactly as JES
//! stored it, so RETR streams a file as it is. jes-written names carry the POP3 size
//! (`pop<stem>,S=<size>.jmsg`) so that a login lists a big mailbox from the directory alone; JES's
//! own files (`pop<digits>.jmsg`) are read once and their size cached by path, length and mtime.
//! Delivery writes under a temporary name no reader lists and renames, so a POP3 client never sees
//! half a message, and a full disk leaves nothing behind. One POP3 session per mailbox is enforced
//! by an flock on the mailbox folder, which holds across processes (see `FileMailboxes::open`).

#[cfg(test)]
#[path = "files_tests.rs"]
mod tests;

#[path = "files_restore.rs"]
mod restore;

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use super::{DeliverError, MessageInfo, OpenError, SizeCounter};
use crate::durable::{
    create_temp, ensure_dir, fsync_dir, is_full, read_dir_if_exists, remove_if_exists,
    remove_stale_temps, with_path,
};
use crate::event::new_id;

impl DeliverError {
    fn from_io(err: io::Error, what: &str, path: &Path) -> Self {
        let full = is_full(&err);
        let err = with_path(err, what, path);
        if full {
            DeliverError::Full(err)
        } else {
            DeliverError::Io(err)
        }
    }
}

/// Size of a JES-written file, valid while the file keeps this length and mtime.
#[derive(Debug, Clone)]
struct CachedSize {
    len: u64,
    mtime: Option<SystemTime>,
    size: u64,
}

/// State shared by the store and every open mailbox.
#[derive(Debug, Default)]
struct Shared {
    /// Per mailbox directory name, per file name: sizes of files whose name does not carry one.
    sizes: Mutex<HashMap<String, HashMap<String, CachedSize>>>,
}

/// Locks a mutex even if a panicking thread poisoned it: the data (a set, a cache) stays usable.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The mailboxes of one configuration directory. Cloning is cheap and shares the size cache.
#[derive(Debug, Clone)]
pub struct FileMailboxes {
    users_dir: PathBuf,
    shared: Arc<Shared>,
}

/// A message written under its temporary name, not yet visible.
struct Pending {
    dir: PathBuf,
    temp: PathBuf,
    file: Option<File>,
    size: u64,
    /// Set once renamed.
    final_path: Option<PathBuf>,
    uid: String,
}

impl FileMailboxes {
    pub fn new(users_dir: PathBuf) -> Self {
        FileMailboxes {
            users_dir,
            shared: Arc::default(),
        }
    }

    /// The directory holding the mailboxes (`users/`).
    pub fn users_dir(&self) -> &Path {
        &self.users_dir
    }

    /// Removes the temporary files a crash left in any mailbox (they are never listed, but would
    /// pile up). Call at start-up only, before any delivery. Returns how many were removed.
    pub fn remove_stale_temp_files(&self) -> io::Result<usize> {
        let Some(entries) = read_dir_if_exists(&self.users_dir)? else {
            return Ok(0);
        };
        let mut n = 0;
        for entry in entries {
            let entry = entry?;
            if entry.file_type()?.is_dir() {
                n += remove_stale_temps(&entry.path())?;
            }
        }
        Ok(n)
    }

    /// Delivers `message` (wire form: CRLF line ends, still dot-stuffed, no terminating dot) into
    /// each mailbox of `mailboxes`, each file starting with `X-DeliveredTo: <mailbox>` and
    /// `Return-Path: <return_path>`. Durable when it returns Ok (files and directories fsynced).
    /// Returns the new UIDs in the same order.
    ///
    /// All or nothing: on any error every file written so far is removed again, so the sender's
    /// retry does not duplicate mail. `return_path` may be given bare or in angle brackets; empty
    /// or `<>` is the null sender.
    pub fn deliver(
        &self,
        mailboxes: &[String],
        return_path: &str,
        message: &[u8],
    ) -> Result<Vec<String>, DeliverError> {
        self.deliver_as(&new_id(), mailboxes, return_path, message)
    }

    /// `deliver` under the message's id: each file is named `pop<id>,S=<size>.jmsg` (its UIDL is
    /// `<id>,S=<size>`), so the mailbox copies of a message carry the id of its log lines and queue
    /// file. A mailbox that already holds a file of that name gets a fresh stem instead.
    pub fn deliver_as(
        &self,
        id: &str,
        mailboxes: &[String],
        return_path: &str,
        message: &[u8],
    ) -> Result<Vec<String>, DeliverError> {
        self.deliver_with(id, mailboxes, return_path, message, |f, bytes| {
            f.write_all(bytes)
        })
    }

    /// `deliver` with the writing of the message body injectable, so tests can simulate a full disk.
    fn deliver_with<W>(
        &self,
        id: &str,
        mailboxes: &[String],
        return_path: &str,
        message: &[u8],
        mut write_body: W,
    ) -> Result<Vec<String>, DeliverError>
    where
        W: FnMut(&mut File, &[u8]) -> io::Result<()>,
    {
        let rp = super::clean_return_path(return_path)?;
        // Refuse every unsafe name before anything touches the disk.
        let mut targets = Vec::with_capacity(mailboxes.len());
        for mb in mailboxes {
            let dir = self.users_dir.join(crate::address::mailbox_dir_name(mb)?);
            targets.push((mb.trim(), dir));
        }

        let mut pending: Vec<Pending> = Vec::with_capacity(targets.len());
        let result = write_temps(&targets, rp, message, &mut write_body, &mut pending)
            .and_then(|()| publish(id, &mut pending));
        match result {
            Ok(()) => Ok(pending.into_iter().map(|p| p.uid).collect()),
            Err(err) => {
                roll_back(pending);
                Err(err)
            }
        }
    }

    /// Locks and lists a mailbox for a POP3 session; the lock is released when `Mailbox` drops.
    /// A mailbox that does not exist yet is created empty, so that it can be locked: a second
    /// session gets `[IN-USE]` whether or not mail has arrived yet.
    ///
    /// The lock is an exclusive `flock` on the mailbox's folder, so it holds across processes (a
    /// second server, `jes` tools, a test) and between two sessions of one process alike: flock
    /// belongs to the open file description, unlike fcntl record locks, which a process shares
    /// with itself. The kernel drops it when the holder dies, so a crash leaves nothing stale.
    pub fn open(&self, mailbox: &str) -> Result<FileMailbox, OpenError> {
        let key = crate::address::mailbox_dir_name(mailbox)?;
        let dir = self.users_dir.join(&key);
        ensure_dir(&dir).map_err(|e| OpenError::Io(with_path(e, "cannot create", &dir)))?;
        let folder =
            File::open(&dir).map_err(|e| OpenError::Io(with_path(e, "cannot open", &dir)))?;
        match folder.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => return Err(OpenError::InUse),
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(OpenError::Io(with_path(e, "cannot lock", &dir)))
            }
        }
        let messages = list_dir(&dir, &key, &self.shared)?;
        Ok(FileMailbox {
            messages,
            dir,
            key,
            shared: Arc::clone(&self.shared),
            _lock: folder,
        })
    }

    /// The mailbox folders under `users/`, sorted (for `jes migrate`, which copies every one):
    /// the names that are text, and the paths of those that are not (no address names them).
    /// Files, symbolic links and hidden entries are not mailboxes and are left out.
    pub fn mailbox_folders(&self) -> io::Result<(Vec<String>, Vec<PathBuf>)> {
        let Some(entries) = read_dir_if_exists(&self.users_dir)
            .map_err(|e| with_path(e, "cannot list", &self.users_dir))?
        else {
            return Ok((Vec::new(), Vec::new()));
        };
        let (mut names, mut odd) = (Vec::new(), Vec::new());
        for entry in entries {
            let entry = entry.map_err(|e| with_path(e, "cannot list", &self.users_dir))?;
            let path = entry.path();
            let meta =
                std::fs::symlink_metadata(&path).map_err(|e| with_path(e, "cannot stat", &path))?;
            if !meta.is_dir() {
                continue;
            }
            match entry.file_name().into_string() {
                Ok(name) if name.starts_with('.') => {}
                Ok(name) => names.push(name),
                Err(_) => odd.push(path),
            }
        }
        names.sort();
        Ok((names, odd))
    }

    /// Lists a mailbox without locking it, oldest first: for looking (the web console), never for
    /// deleting, so a POP3 session holding the mailbox does not stop an administrator from reading.
    /// A mailbox that does not exist yet is empty.
    pub fn peek(&self, mailbox: &str) -> Result<Vec<MessageInfo>, OpenError> {
        let key = crate::address::mailbox_dir_name(mailbox)?;
        let dir = self.users_dir.join(&key);
        Ok(list_dir(&dir, &key, &self.shared)?)
    }
}

/// The first bytes of a message file, up to the blank line that ends its header section (at most
/// `limit`): enough for a listing or an outcome event without reading a large message whole.
pub fn read_head(path: &Path, limit: usize) -> io::Result<Vec<u8>> {
    let mut file = File::open(path)?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    while buf.len() < limit {
        let n = file.read(&mut chunk)?;
        if n == 0 {
            break;
        }
        let from = buf.len().saturating_sub(3);
        buf.extend_from_slice(&chunk[..n]);
        if buf[from..].windows(4).any(|w| w == b"\r\n\r\n") {
            break;
        }
    }
    buf.truncate(limit);
    Ok(buf)
}

/// A final name `pop<id>,S=<size>.jmsg` that does not exist yet in `dir`: the message's id when
/// it is a plain stem of digits and free, else a fresh stem (unique in this process; the check
/// guards against a clock set back since an earlier run).
fn free_name(dir: &Path, id: &str, size: u64) -> (String, PathBuf) {
    let mut stem = if !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()) {
        id.to_string()
    } else {
        new_id()
    };
    loop {
        let uid = format!("{stem},S={size}");
        let path = dir.join(format!("pop{uid}.jmsg"));
        if std::fs::symlink_metadata(&path).is_err() {
            return (uid, path);
        }
        stem = new_id();
    }
}

/// Each mailbox's copy in a temporary file of its folder: the `X-DeliveredTo:` and
/// `Return-Path:` lines, then the message. `pending` gets each file as soon as it exists, so a
/// failure leaves nothing the caller cannot roll back.
fn write_temps<W>(
    targets: &[(&str, PathBuf)],
    rp: &str,
    message: &[u8],
    write_body: &mut W,
    pending: &mut Vec<Pending>,
) -> Result<(), DeliverError>
where
    W: FnMut(&mut File, &[u8]) -> io::Result<()>,
{
    for (mb, dir) in targets {
        let header = format!("X-DeliveredTo: {mb}\r\nReturn-Path: <{rp}>\r\n");
        ensure_dir(dir).map_err(|e| DeliverError::from_io(e, "cannot create mailbox", dir))?;
        let (temp, mut file) = create_temp(dir)
            .map_err(|e| DeliverError::from_io(e, "cannot create a file in", dir))?;
        let mut counter = SizeCounter::new();
        counter.feed(header.as_bytes());
        counter.feed(message);
        pending.push(Pending {
            dir: dir.clone(),
            temp: temp.clone(),
            file: None,
            size: counter.size(),
            final_path: None,
            uid: String::new(),
        });
        file.write_all(header.as_bytes())
            .and_then(|()| write_body(&mut file, message))
            .map_err(|e| DeliverError::from_io(e, "cannot write", &temp))?;
        if let Some(p) = pending.last_mut() {
            p.file = Some(file);
        }
    }
    Ok(())
}

/// The written copies made durable and visible: every file fsynced, then renamed to its final
/// name (which holds the UID and size), then each folder fsynced once.
fn publish(id: &str, pending: &mut [Pending]) -> Result<(), DeliverError> {
    for p in pending.iter_mut() {
        if let Some(file) = p.file.take() {
            file.sync_all()
                .map_err(|e| DeliverError::from_io(e, "cannot fsync", &p.temp))?;
        }
    }
    for p in pending.iter_mut() {
        let (uid, path) = free_name(&p.dir, id, p.size);
        std::fs::rename(&p.temp, &path)
            .map_err(|e| DeliverError::from_io(e, "cannot rename", &p.temp))?;
        p.uid = uid;
        p.final_path = Some(path);
    }
    let mut synced: Vec<&Path> = Vec::new();
    for p in pending.iter() {
        if !synced.contains(&p.dir.as_path()) {
            fsync_dir(&p.dir).map_err(|e| DeliverError::from_io(e, "cannot fsync", &p.dir))?;
            synced.push(&p.dir);
        }
    }
    Ok(())
}

/// Undoes a failed delivery: temporary files and already renamed files go; best effort, since the
/// original error is what the caller must see.
fn roll_back(pending: Vec<Pending>) {
    let mut dirs: Vec<PathBuf> = Vec::new();
    for p in pending {
        drop(p.file);
        let _ = remove_if_exists(&p.temp);
        if let Some(path) = &p.final_path {
            let _ = remove_if_exists(path);
        }
        if !dirs.contains(&p.dir) {
            dirs.push(p.dir);
        }
    }
    for d in dirs {
        let _ = fsync_dir(&d);
    }
}

/// A locked mailbox with its messages, oldest first. Dropping it closes the locked folder, which
/// releases the lock.
#[derive(Debug)]
pub struct FileMailbox {
    messages: Vec<MessageInfo>,
    dir: PathBuf,
    key: String,
    shared: Arc<Shared>,
    /// The mailbox folder, flock'ed.
    _lock: File,
}

/// The UID of a listed file name, if the name is one of ours to list: `pop<uid>.jmsg`, with a UID
/// of 1-70 printable characters (RFC 1939).
fn uid_of(name: &str) -> Option<&str> {
    let uid = name.strip_prefix("pop")?.strip_suffix(".jmsg")?;
    let ok = !uid.is_empty() && uid.len() <= 70 && uid.bytes().all(|b| b.is_ascii_graphic());
    ok.then_some(uid)
}

/// The size a jes-written UID carries (`…,S=<size>`).
fn size_in_uid(uid: &str) -> Option<u64> {
    let (_, digits) = uid.rsplit_once(",S=")?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Reads a file once to compute its POP3 size.
fn size_by_reading(path: &Path) -> io::Result<u64> {
    let mut file = File::open(path)?;
    let mut counter = SizeCounter::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            return Ok(counter.size());
        }
        counter.feed(&buf[..n]);
    }
}

/// Lists the `pop*.jmsg` regular files of mailbox directory `dir` (named `key`), oldest first
/// (mtime, then name). Symbolic links are skipped: a link could make RETR read any file the
/// server can.
fn list_dir(dir: &Path, key: &str, shared: &Shared) -> io::Result<Vec<MessageInfo>> {
    let Some(entries) = read_dir_if_exists(dir).map_err(|e| with_path(e, "cannot list", dir))?
    else {
        return Ok(Vec::new());
    };
    let old_cache = lock(&shared.sizes).remove(key).unwrap_or_default();
    let mut new_cache = HashMap::new();
    let mut found = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| with_path(e, "cannot list", dir))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(uid) = uid_of(name) else { continue };
        let path = entry.path();
        let meta = match std::fs::symlink_metadata(&path) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(with_path(e, "cannot stat", &path)),
        };
        if !meta.is_file() {
            continue;
        }
        let mtime = meta.modified().ok();
        let size = match size_in_uid(uid) {
            Some(s) => s,
            None => {
                let cached = old_cache
                    .get(name)
                    .filter(|c| c.len == meta.len() && c.mtime == mtime);
                let size = match cached {
                    Some(c) => c.size,
                    None => match size_by_reading(&path) {
                        Ok(s) => s,
                        Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                        Err(e) => return Err(with_path(e, "cannot read", &path)),
                    },
                };
                let len = meta.len();
                new_cache.insert(name.to_string(), CachedSize { len, mtime, size });
                size
            }
        };
        let info = MessageInfo {
            uid: uid.to_string(),
            id: uid.split_once(",S=").map_or(uid, |(id, _)| id).to_string(),
            size,
            stored_at: mtime,
        };
        found.push((mtime, name.to_string(), info));
    }
    lock(&shared.sizes).insert(key.to_string(), new_cache);
    found.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
    Ok(found.into_iter().map(|(_, _, info)| info).collect())
}

/// The file of message `uid` in mailbox folder `dir`. UIDs come from listing the folder (or are
/// checked by `uid_of` first), so the name never leaves it.
fn message_path(dir: &Path, uid: &str) -> PathBuf {
    dir.join(format!("pop{uid}.jmsg"))
}

impl FileMailbox {
    /// Its messages at the time it was opened, oldest first.
    pub fn messages(&self) -> &[MessageInfo] {
        &self.messages
    }

    fn path(&self, index: usize) -> io::Result<PathBuf> {
        let info = self.messages.get(index).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("no message {index} in {}", self.dir.display()),
            )
        })?;
        Ok(message_path(&self.dir, &info.uid))
    }

    /// The stored bytes of message `index` (0-based): wire form, still dot-stuffed.
    pub fn read(&self, index: usize) -> std::io::Result<Vec<u8>> {
        let path = self.path(index)?;
        std::fs::read(&path).map_err(|e| with_path(e, "cannot read", &path))
    }

    /// The first bytes of message `index`: its header section, at most `limit` bytes.
    pub fn head(&self, index: usize, limit: usize) -> io::Result<Vec<u8>> {
        let path = self.path(index)?;
        read_head(&path, limit).map_err(|e| with_path(e, "cannot read", &path))
    }

    /// Deletes the messages at `indices` (0-based), durably. A file already gone is not an error.
    pub fn delete(&self, indices: &[usize]) -> std::io::Result<()> {
        let paths = indices
            .iter()
            .map(|&i| self.path(i))
            .collect::<io::Result<Vec<_>>>()?;
        if paths.is_empty() {
            return Ok(());
        }
        for path in &paths {
            remove_if_exists(path).map_err(|e| with_path(e, "cannot delete", path))?;
        }
        if let Some(cache) = lock(&self.shared.sizes).get_mut(&self.key) {
            for path in &paths {
                if let Some(name) = path.file_name().and_then(|n| n.to_str()) {
                    cache.remove(name);
                }
            }
        }
        match fsync_dir(&self.dir) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => {
                Err(with_path(e, "cannot fsync", &self.dir))
            }
            _ => Ok(()),
        }
    }
}

/// A UID given from outside (the console's URL) as a file name in its mailbox: the listing's rule,
/// and never a path separator.
fn checked_uid(uid: &str) -> io::Result<&str> {
    let name = format!("pop{uid}.jmsg");
    match uid_of(&name) {
        Some(_) if !uid.contains('/') => Ok(uid),
        _ => Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("no message {uid:?}"),
        )),
    }
}

impl FileMailboxes {
    /// The file of message `uid` of `mailbox`, for reading without the lock.
    fn file_of(&self, mailbox: &str, uid: &str) -> io::Result<PathBuf> {
        let key = crate::address::mailbox_dir_name(mailbox)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
        Ok(message_path(&self.users_dir.join(key), checked_uid(uid)?))
    }
}

#[async_trait::async_trait]
impl super::Mailboxes for FileMailboxes {
    async fn deliver(
        &self,
        id: &str,
        mailboxes: &[String],
        return_path: &str,
        message: Arc<Vec<u8>>,
    ) -> Result<Vec<String>, DeliverError> {
        let (me, id, mailboxes) = (self.clone(), id.to_string(), mailboxes.to_vec());
        let return_path = return_path.to_string();
        tokio::task::spawn_blocking(move || me.deliver_as(&id, &mailboxes, &return_path, &message))
            .await
            .unwrap_or_else(|e| Err(DeliverError::Io(io::Error::other(e.to_string()))))
    }

    async fn list(&self, mailbox: &str) -> Result<Vec<MessageInfo>, OpenError> {
        let (me, mailbox) = (self.clone(), mailbox.to_string());
        tokio::task::spawn_blocking(move || me.peek(&mailbox))
            .await
            .unwrap_or_else(|e| Err(OpenError::Io(io::Error::other(e.to_string()))))
    }

    async fn read(&self, mailbox: &str, uid: &str) -> io::Result<Vec<u8>> {
        let path = self.file_of(mailbox, uid)?;
        super::in_place(|| std::fs::read(&path))
    }

    async fn head(&self, mailbox: &str, uid: &str, limit: usize) -> io::Result<Vec<u8>> {
        let path = self.file_of(mailbox, uid)?;
        super::in_place(|| read_head(&path, limit))
    }

    async fn open(&self, mailbox: &str) -> Result<Box<dyn super::OpenMailbox>, OpenError> {
        let (me, mailbox) = (self.clone(), mailbox.to_string());
        let opened = tokio::task::spawn_blocking(move || me.open(&mailbox))
            .await
            .unwrap_or_else(|e| Err(OpenError::Io(io::Error::other(e.to_string()))))?;
        Ok(Box::new(Held(Arc::new(opened))))
    }

    async fn recover(&self) -> io::Result<usize> {
        let me = self.clone();
        super::blocking(move || me.remove_stale_temp_files()).await
    }
}

/// A `FileMailbox` as a session holds it (shared with the blocking pool for deletions).
struct Held(Arc<FileMailbox>);

#[async_trait::async_trait]
impl super::OpenMailbox for Held {
    fn messages(&self) -> &[MessageInfo] {
        &self.0.messages
    }

    async fn read(&self, index: usize) -> io::Result<Vec<u8>> {
        super::in_place(|| self.0.read(index))
    }

    async fn head(&self, index: usize, limit: usize) -> io::Result<Vec<u8>> {
        super::in_place(|| self.0.head(index, limit))
    }

    async fn delete(&self, indices: &[usize]) -> io::Result<()> {
        let (mailbox, indices) = (Arc::clone(&self.0), indices.to_vec());
        super::blocking(move || mailbox.delete(&indices)).await
    }
}
