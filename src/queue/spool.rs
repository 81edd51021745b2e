//! The spool folder `smtp/`: one plain-text file per queued message (the file backend's files).
//!
//! Files keep JES's name pattern `smtp<digits>.ser` so an administrator finds the queue where JES
//! kept it, and JES's own 1.0 files are read as they are, so a JES queue carries over. What jes
//! writes is its own readable format (see `format`), into which a JES file is converted on its first
//! update. Every write is temp file, fsync, rename, fsync of the directory: `enqueue` returning Ok is
//! what allows the SMTP server to answer 250, and a full disk leaves no partial file behind. The
//! server reaches it only through `files::FileQueue` (the `Queue` interface); the `jes queue` tools
//! (`admin`, `lock`) work on it directly, as the file backend's offline tools.

#[cfg(test)]
#[path = "spool_tests.rs"]
mod tests;

use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use super::format::{format, parse};
use super::{valid_id, QueueError, QueueRecipient, QueuedMessage, RecipientState};
use crate::dsn::Dsn;
use crate::durable::{create_temp, ensure_dir, fsync_dir, remove_if_exists};
use crate::event::new_id;

/// The id of a queue file name `smtp<digits>.ser`.
fn id_of(name: &str) -> Option<&str> {
    let id = name.strip_prefix("smtp")?.strip_suffix(".ser")?;
    valid_id(id).then_some(id)
}

#[derive(Debug)]
pub struct Spool {
    dir: PathBuf,
}

impl Spool {
    pub fn new(dir: PathBuf) -> Self {
        Spool { dir }
    }

    /// The queue directory (`smtp/`).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The file of queue entry `id`.
    pub fn path_of(&self, id: &str) -> PathBuf {
        self.dir.join(format!("smtp{id}.ser"))
    }

    /// The next-attempt and received times (epoch ms) of entry `id`, reading only the first few
    /// KB of its file: what the runner needs to schedule a file it found.
    pub fn peek_times(&self, id: &str) -> Result<(u64, u64), QueueError> {
        use std::io::Read;
        let path = self.path_of(id);
        let file = File::open(&path).map_err(|e| QueueError::io(e, &path))?;
        let mut head = Vec::with_capacity(8192);
        file.take(64 * 1024)
            .read_to_end(&mut head)
            .map_err(|e| QueueError::io(e, &path))?;
        match parse(id, &head) {
            Ok(msg) => Ok((msg.next_attempt_ms, msg.received_ms)),
            // A header longer than what we read: read it all.
            Err(_) => self.load(id).map(|m| (m.next_attempt_ms, m.received_ms)),
        }
    }

    /// When the queue folder last changed (a file added or removed): the runner lists it only
    /// when this moves. `None` when it cannot be told.
    pub fn changed_at(&self) -> Option<std::time::SystemTime> {
        std::fs::metadata(&self.dir).and_then(|m| m.modified()).ok()
    }

    /// Whether a file can be written into the queue now (`/healthz`): creates and removes a
    /// temporary file, which no reader lists.
    pub fn probe_writable(&self) -> io::Result<()> {
        ensure_dir(&self.dir)?;
        let (path, file) = create_temp(&self.dir)?;
        drop(file);
        remove_if_exists(&path)
    }

    /// Keeps a finished message that could not be delivered or bounced in `failed_dir` (its final
    /// state), as JES did with undeliverable bounces. Returns where it went.
    pub fn keep_failed(&self, msg: &QueuedMessage, failed_dir: &Path) -> io::Result<PathBuf> {
        let to = failed_dir.join(format!("smtp{}.ser", msg.id));
        std::fs::create_dir_all(failed_dir)?;
        std::fs::write(&to, format(msg))?;
        Ok(to)
    }

    /// Writes a new queue file durably (temp name, fsync, rename, fsync dir); returns its id.
    /// `sender` may be bare or in angle brackets; empty or `<>` is the null sender. Every recipient
    /// starts `pending`; received and next attempt are now, attempts 0.
    pub fn enqueue(
        &self,
        sender: &str,
        recipients: &[String],
        message: &[u8],
    ) -> Result<String, QueueError> {
        self.enqueue_as(&new_id(), sender, recipients, message)
    }

    /// `enqueue` under the message's id (`new_id`), so that its queue file and its mailbox files
    /// share one id. Returns the id used: another one only if a file of that id exists already
    /// (a clock set back since an earlier run).
    pub fn enqueue_as(
        &self,
        id: &str,
        sender: &str,
        recipients: &[String],
        message: &[u8],
    ) -> Result<String, QueueError> {
        self.enqueue_dsn(id, sender, recipients, &Dsn::default(), message)
    }

    /// `enqueue_as` with the DSN parameters of the message and its recipients (RFC 3461).
    pub fn enqueue_dsn(
        &self,
        id: &str,
        sender: &str,
        recipients: &[String],
        dsn: &Dsn,
        message: &[u8],
    ) -> Result<String, QueueError> {
        self.enqueue_with(id, sender, (recipients, dsn), message, |f, b| {
            f.write_all(b)
        })
    }

    fn enqueue_with<W>(
        &self,
        id: &str,
        sender: &str,
        (recipients, dsn): (&[String], &Dsn),
        message: &[u8],
        write: W,
    ) -> Result<String, QueueError>
    where
        W: FnMut(&mut File, &[u8]) -> io::Result<()>,
    {
        let sender = sender.trim();
        let sender = sender
            .strip_prefix('<')
            .and_then(|s| s.strip_suffix('>'))
            .unwrap_or(sender);
        let now = crate::event::now_ms();
        let mut msg = QueuedMessage {
            id: String::new(),
            sender: sender.to_string(),
            recipients: recipients
                .iter()
                .map(|r| QueueRecipient {
                    address: r.trim().to_string(),
                    state: RecipientState::Pending,
                    last_error: None,
                    dsn: dsn.recipient(r),
                })
                .collect(),
            received_ms: now,
            next_attempt_ms: now,
            attempts: 0,
            delay_warned: false,
            dsn: dsn.message.clone(),
            message: message.to_vec(),
        };
        self.check(&msg, &self.dir)?;
        let bytes = format(&msg);
        self.write_atomic(&bytes, true, write, || {
            // A fresh name that does not exist yet (the stem is unique in this process; the check
            // guards against a clock set back since an earlier run).
            let mut id = if valid_id(id) {
                id.to_string()
            } else {
                new_id()
            };
            loop {
                let path = self.path_of(&id);
                if std::fs::symlink_metadata(&path).is_err() {
                    msg.id = id;
                    return path;
                }
                id = new_id();
            }
        })?;
        Ok(msg.id)
    }

    /// Rewrites queue entry `msg.id` atomically in jes's format (a JES 1.0 file becomes a jes file).
    pub fn save(&self, msg: &QueuedMessage) -> Result<(), QueueError> {
        self.save_with(msg, |f, b| f.write_all(b))
    }

    pub(super) fn save_with<W>(&self, msg: &QueuedMessage, write: W) -> Result<(), QueueError>
    where
        W: FnMut(&mut File, &[u8]) -> io::Result<()>,
    {
        let path = self.path_of(&msg.id);
        if !valid_id(&msg.id) {
            return Err(QueueError::invalid(&path, format!("bad id {:?}", msg.id)));
        }
        self.check(msg, &path)?;
        self.write_atomic(&format(msg), false, write, || path.clone())
    }

    /// Refuses what cannot be written faithfully: no recipients, control characters in addresses.
    fn check(&self, msg: &QueuedMessage, path: &Path) -> Result<(), QueueError> {
        if msg.recipients.is_empty() {
            return Err(QueueError::invalid(path, "no recipients".into()));
        }
        super::format::check_address(&msg.sender, true)
            .map_err(|r| QueueError::invalid(path, r))?;
        for r in &msg.recipients {
            super::format::check_address(&r.address, false)
                .map_err(|r| QueueError::invalid(path, r))?;
        }
        Ok(())
    }

    /// Temp file, write, fsync, rename to the path `final_path` picks, fsync the directory. On any
    /// error the temporary file is removed, and so is the final one if `new_file` (see below).
    fn write_atomic<W, P>(
        &self,
        bytes: &[u8],
        new_file: bool,
        mut write: W,
        final_path: P,
    ) -> Result<(), QueueError>
    where
        W: FnMut(&mut File, &[u8]) -> io::Result<()>,
        P: FnOnce() -> PathBuf,
    {
        ensure_dir(&self.dir).map_err(|e| QueueError::io(e, &self.dir))?;
        let (temp, mut file) = create_temp(&self.dir).map_err(|e| QueueError::io(e, &self.dir))?;
        let mut renamed = None;
        let result = (|| {
            write(&mut file, bytes).map_err(|e| QueueError::io(e, &temp))?;
            file.sync_all().map_err(|e| QueueError::io(e, &temp))?;
            let path = final_path();
            std::fs::rename(&temp, &path).map_err(|e| QueueError::io(e, &path))?;
            renamed = Some(path);
            fsync_dir(&self.dir).map_err(|e| QueueError::io(e, &self.dir))
        })();
        if result.is_err() {
            let _ = remove_if_exists(&temp);
            // A new file whose rename may not be durable is withdrawn: the sender was not told 250
            // and will retry, so keeping it would duplicate the mail. A rewritten file stays: it is
            // the only copy of mail already acknowledged.
            if let (Some(path), true) = (renamed, new_file) {
                let _ = remove_if_exists(&path);
            }
        }
        result
    }

    /// Reads a queue file by id, in either format (JES 1.0 `.ser`, or jes's own).
    pub fn load(&self, id: &str) -> Result<QueuedMessage, QueueError> {
        let path = self.path_of(id);
        if !valid_id(id) {
            return Err(QueueError::invalid(&path, format!("bad id {id:?}")));
        }
        let bytes = std::fs::read(&path).map_err(|e| QueueError::io(e, &path))?;
        parse(id, &bytes).map_err(|e| QueueError::Format {
            path,
            line: e.line,
            reason: e.reason,
        })
    }

    /// The ids of all queue files, sorted; temporary and unknown files are skipped. A missing
    /// directory is an empty queue.
    pub fn list_ids(&self) -> io::Result<Vec<String>> {
        let Some(entries) = crate::durable::read_dir_if_exists(&self.dir)? else {
            return Ok(Vec::new());
        };
        let mut ids = Vec::new();
        for entry in entries {
            let entry = entry?;
            if let Some(id) = entry.file_name().to_str().and_then(id_of) {
                ids.push(id.to_string());
            }
        }
        ids.sort();
        Ok(ids)
    }

    /// Removes queue entry `id`; one already gone is fine.
    pub fn remove(&self, id: &str) -> Result<(), QueueError> {
        let path = self.path_of(id);
        if !valid_id(id) {
            return Err(QueueError::invalid(&path, format!("bad id {id:?}")));
        }
        // No fsync of the directory: a removal lost in a crash only means the message is
        // delivered once more (at least once, never lost), and the file system's next journal
        // commit makes it durable anyway. That saves one fsync per relayed message.
        remove_if_exists(&path).map_err(|e| QueueError::io(e, &path))
    }

    /// Removes temporary files left by a crash during a write. Call at start-up only, before any
    /// enqueue, since a write in progress also has a temporary file. Returns how many were removed.
    pub fn remove_stale_temp_files(&self) -> io::Result<usize> {
        crate::durable::remove_stale_temps(&self.dir)
    }
}
