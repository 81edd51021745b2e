//! The mailboxes step: every message of every mailbox folder, with its UIDL, its size as RETR
//! sends it and its place in the order, read through the file store (`store::files`, the rules
//! a server on the folder lists by) and written through `store::postgres_import`.
//!
//! A folder is copied under its own name, which is the mailbox's key in the database too. A
//! folder whose name is not the one `address::mailbox_dir_name` gives for it (not lower case,
//! not NFC, not text) is one no login opens on the file store either: it is left out and named
//! in the summary rather than given a key no server would find.

use tokio_postgres::Transaction;

use super::{epoch_ms, sha256_hex};
use crate::pg::Database;
use crate::store::postgres_import::{insert, ImportedCopy};
use crate::store::{FileMailboxes, Mailboxes};

/// What the mailboxes step copied.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct MailboxCounts {
    /// The folders copied (empty ones included: they hold nothing to copy).
    pub copied: Vec<String>,
    pub messages: usize,
    /// Bytes as stored (what RETR sends before dot-unstuffing), all messages together.
    pub bytes: u64,
    /// Folders left out, with why.
    pub skipped: Vec<String>,
}

/// Copies every mailbox folder under `users/` in the caller's transaction.
pub(super) async fn copy(
    db: &Database,
    tx: &Transaction<'_>,
    files: &FileMailboxes,
) -> Result<MailboxCounts, String> {
    let (names, odd) = files.mailbox_folders().map_err(|e| e.to_string())?;
    let mut counts = MailboxCounts::default();
    for path in odd {
        counts.skipped.push(format!(
            "{} (its name is not text, so no address names it)",
            path.display()
        ));
    }
    for name in names {
        if crate::address::mailbox_dir_name(&name).ok().as_deref() != Some(name.as_str()) {
            counts.skipped.push(format!(
                "{} (no address names this folder: jes serves users/{} for it)",
                files.users_dir().join(&name).display(),
                crate::address::mailbox_dir_name(&name).unwrap_or_else(|_| "nothing".into())
            ));
            continue;
        }
        // The folder's own lock, as a POP3 session takes it: the listing and the reads agree.
        let held = files
            .open(&name)
            .map_err(|e| format!("mailbox {name}: {e}"))?;
        for (i, info) in held.messages().iter().enumerate() {
            let bytes = held.read(i).map_err(|e| format!("mailbox {name}: {e}"))?;
            let copy = ImportedCopy {
                uid: &info.uid,
                message_id: &info.id,
                bytes: &bytes,
                size: info.size,
                stored_ms: info.stored_at.map_or(0, epoch_ms),
            };
            insert(tx, &name, &copy)
                .await
                .map_err(|e| format!("mailbox {name}, message {}: {}", info.uid, db.err(e)))?;
            counts.messages += 1;
            counts.bytes += bytes.len() as u64;
        }
        counts.copied.push(name);
    }
    Ok(counts)
}

/// At most this many differences are named per mailbox: the first ones tell what went wrong.
const SHOWN_PER_MAILBOX: usize = 5;

/// Reads every copied mailbox back through the database backend and compares it with the
/// folder read again: the POP3 view (UIDLs, sizes, order) and every message's SHA-256.
pub(super) async fn verify(
    db: &Database,
    me: &str,
    files: &FileMailboxes,
    counts: &MailboxCounts,
) -> Vec<String> {
    let pg = crate::store::postgres::PgMailboxes::new(db.clone(), me.to_string());
    let mut out = Vec::new();
    for name in &counts.copied {
        let mut found = Vec::new();
        let source = match files.peek(name) {
            Ok(s) => s,
            Err(e) => {
                out.push(format!("mailbox {name}: cannot list the folder again: {e}"));
                continue;
            }
        };
        let copy = match pg.list(name).await {
            Ok(c) => c,
            Err(e) => {
                out.push(format!(
                    "mailbox {name}: cannot list it in the database: {e}"
                ));
                continue;
            }
        };
        let view = |m: &crate::store::MessageInfo| (m.uid.clone(), m.size);
        let source_view: Vec<_> = source.iter().map(view).collect();
        let copy_view: Vec<_> = copy.iter().map(view).collect();
        if source_view != copy_view {
            found.push(format!(
                "mailbox {name}: the folder lists {} message(s), the database {}; first difference: {}",
                source_view.len(),
                copy_view.len(),
                first_difference(&source_view, &copy_view)
            ));
        }
        for m in &source {
            if found.len() >= SHOWN_PER_MAILBOX {
                break;
            }
            let here = Mailboxes::read(files, name, &m.uid).await;
            let there = pg.read(name, &m.uid).await;
            match (here, there) {
                (Ok(a), Ok(b)) if a == b => {}
                (Ok(a), Ok(b)) => found.push(format!(
                    "mailbox {name}, message {}: the folder's copy has SHA-256 {} ({} bytes), the database's {} ({} bytes)",
                    m.uid,
                    sha256_hex(&a),
                    a.len(),
                    sha256_hex(&b),
                    b.len()
                )),
                (Err(e), _) => found.push(format!(
                    "mailbox {name}, message {}: cannot read the folder's copy again: {e}",
                    m.uid
                )),
                (_, Err(e)) => found.push(format!(
                    "mailbox {name}, message {}: cannot read it from the database: {e}",
                    m.uid
                )),
            }
        }
        out.extend(found);
    }
    out
}

/// Where two listings (UID, size) first part.
fn first_difference(a: &[(String, u64)], b: &[(String, u64)]) -> String {
    let show = |m: Option<&(String, u64)>| match m {
        Some((uid, size)) => format!("{uid} ({size} octets)"),
        None => "nothing".to_string(),
    };
    let at = a
        .iter()
        .zip(b)
        .position(|(x, y)| x != y)
        .unwrap_or(a.len().min(b.len()));
    format!(
        "message {}: {} in the folder, {} in the database",
        at + 1,
        show(a.get(at)),
        show(b.get(at))
    )
}
