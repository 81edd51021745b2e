//! The file backend of the call spool: `webhooks/` in the mail root, one small JSON file per
//! pending call, written with `durable::replace_file` (temp file, fsync, rename, folder fsync), so
//! a crash leaves the old state or the new one.
//!
//! A file is named `<id>-<16 hex digits of SHA-256 of the mailbox>.json`: the message id keeps
//! names ordered and unique per message, the hash tells the mailboxes of one message apart without
//! putting an address (up to 255 bytes of UTF-8) into a file name. The file holds the mailbox
//! itself, so the name is never parsed back.

use std::io;
use std::path::PathBuf;

use async_trait::async_trait;

use super::{CallSpool, PendingCall};
use crate::durable;
use crate::store::blocking;

#[derive(Clone)]
pub struct FileCallSpool {
    dir: PathBuf,
}

impl FileCallSpool {
    /// The spool in `dir` (`<mail root>/webhooks`), made on the first call kept.
    pub fn new(dir: PathBuf) -> FileCallSpool {
        FileCallSpool { dir }
    }

    fn path_of(&self, call: &PendingCall) -> PathBuf {
        let digest = ring::digest::digest(&ring::digest::SHA256, call.mailbox.as_bytes());
        let hash: String = digest.as_ref()[..8]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        // The id is digits (`event::new_id`); anything else is kept out of the name.
        let id: String = call
            .id
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .take(40)
            .collect();
        self.dir.join(format!("{id}-{hash}.json"))
    }

    fn write(&self, call: &PendingCall) -> io::Result<()> {
        let json = serde_json::to_vec_pretty(call).map_err(io::Error::other)?;
        durable::replace_file(&self.path_of(call), &json, false)
    }
}

#[async_trait]
impl CallSpool for FileCallSpool {
    async fn add(&self, call: &PendingCall) -> io::Result<bool> {
        let path = self.path_of(call);
        let dir = self.dir.clone();
        let me = self.clone();
        let call = call.clone();
        blocking(move || {
            durable::ensure_dir(&dir).map_err(|e| durable::with_path(e, "cannot create", &dir))?;
            // Only the worker removes files and only the delivery path adds them, one message
            // id at a time, so checking first is enough.
            if path.exists() {
                return Ok(false);
            }
            me.write(&call)?;
            Ok(true)
        })
        .await
    }

    async fn update(&self, call: &PendingCall) -> io::Result<()> {
        let me = self.clone();
        let call = call.clone();
        blocking(move || me.write(&call)).await
    }

    async fn remove(&self, call: &PendingCall) -> io::Result<()> {
        let path = self.path_of(call);
        let dir = self.dir.clone();
        blocking(move || {
            durable::remove_if_exists(&path)
                .and_then(|()| durable::fsync_dir(&dir))
                .map_err(|e| durable::with_path(e, "cannot remove", &path))
        })
        .await
    }

    async fn pending(&self) -> io::Result<Vec<PendingCall>> {
        let dir = self.dir.clone();
        blocking(move || {
            durable::remove_stale_temps(&dir)?;
            let Some(entries) = durable::read_dir_if_exists(&dir)? else {
                return Ok(Vec::new());
            };
            let mut calls = Vec::new();
            for entry in entries {
                let path = entry?.path();
                if path.extension().is_none_or(|e| e != "json") {
                    continue;
                }
                let parsed = std::fs::read(&path)
                    .map_err(|e| e.to_string())
                    .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()));
                match parsed {
                    Ok(call) => calls.push(call),
                    Err(e) => tracing::error!(
                        "webhook spool file {} cannot be read, skipped: {e}",
                        path.display()
                    ),
                }
            }
            calls.sort_by_key(|c: &PendingCall| c.next_ms);
            Ok(calls)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(mailbox: &str, id: &str) -> PendingCall {
        PendingCall {
            mailbox: mailbox.into(),
            uid: format!("{id},S=10"),
            id: id.into(),
            created_ms: 1,
            attempts: 0,
            next_ms: 1,
            sent: false,
        }
    }

    #[tokio::test]
    async fn calls_survive_a_new_spool_and_duplicates_are_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("webhooks");
        let spool = FileCallSpool::new(dir.clone());
        assert!(spool.pending().await.unwrap().is_empty(), "no folder yet");
        let a = call("bob@local.test", "1795605697556000001");
        let b = call("ann@local.test", "1795605697556000001");
        assert!(spool.add(&a).await.unwrap());
        assert!(spool.add(&b).await.unwrap());
        assert!(!spool.add(&a).await.unwrap(), "same mailbox and id");
        let mut a2 = a.clone();
        a2.attempts = 3;
        a2.next_ms = 99;
        spool.update(&a2).await.unwrap();
        std::fs::write(dir.join("junk.json"), b"{not json").unwrap();
        let again = FileCallSpool::new(dir.clone()).pending().await.unwrap();
        assert_eq!(again, vec![b.clone(), a2.clone()], "ordered by next_ms");
        spool.remove(&a2).await.unwrap();
        spool.remove(&a2).await.unwrap();
        assert_eq!(spool.pending().await.unwrap(), vec![b]);
    }
}
