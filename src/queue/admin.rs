//! Administrative operations on the spool: what `jes queue` and the console do to queued mail.
//!
//! JES offered nothing but an editor on `smtp/*.ser`; editing a file the server is rewriting loses
//! one of the two changes. These operations work on the files directly (no connection to the
//! server, so they work whether it runs or not), change a file only under its lock (`lock`, the
//! same flock a delivery attempt's lease holds), and wake a running server through a retry request
//! rather than a signal. They return data; the command line's text is `crate::cli::queue`, and the
//! console reaches them through `files::FileQueue`.

use chrono::DateTime;

use super::bounce::{build_report, is_null_sender, FailedRecipient, Notice, ReportOptions};
use super::{lock, request_retry, BounceFrom, QueueError, QueuedMessage, Spool};
use crate::event::{new_id, now_ms};

/// The error to show for a message: the first pending recipient's, else any recipient's.
pub fn last_error(m: &QueuedMessage) -> &str {
    let pending = m.recipients.iter().filter(|r| r.state.is_pending());
    pending
        .chain(m.recipients.iter())
        .find_map(|r| r.last_error.as_deref())
        .unwrap_or("")
}

/// Every readable queue entry, by id, and the errors of the unreadable ones (an entry delivered
/// and removed since the directory was read is neither).
pub fn load_all(store: &Spool) -> Result<(Vec<QueuedMessage>, Vec<String>), String> {
    let ids = store
        .list_ids()
        .map_err(|e| format!("cannot read {}: {e}", store.dir().display()))?;
    let mut msgs = Vec::new();
    let mut errors = Vec::new();
    for id in ids {
        match store.load(&id) {
            Ok(m) => msgs.push(m),
            Err(e) if is_not_found(&e) => {}
            Err(e) => errors.push(e.to_string()),
        }
    }
    Ok((msgs, errors))
}

/// The message's header section, un-stuffed, as text lines (not escaped).
pub fn header_lines_raw(wire: &[u8]) -> Vec<String> {
    let mut lines = Vec::new();
    for line in wire.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let line = line.strip_prefix(b".").unwrap_or(line);
        if line.is_empty() {
            break;
        }
        lines.push(String::from_utf8_lossy(line).into_owned());
    }
    lines
}

/// Whether `e` means the entry does not exist (never did, or delivered or deleted meanwhile).
pub fn is_not_found(e: &QueueError) -> bool {
    e.is_not_found()
}

/// Makes entry `id` due now, under its lock; with `wake`, also asks a running server to look at
/// it at once (for many entries, make one `request_retry(store, None)` afterwards instead).
pub fn retry_entry(store: &Spool, id: &str, wake: bool) -> Result<(), QueueError> {
    let mut l = lock(store, id)?;
    let mut m = l.load(store)?;
    m.next_attempt_ms = now_ms();
    l.save(store, &m)?;
    drop(l);
    if wake {
        request_retry(store, Some(id)).map_err(|source| QueueError::Io {
            path: store.path_of(id),
            source,
        })?;
    }
    Ok(())
}

/// The notice for an administrator's deletion of `m`: its pending recipients, status 5.0.0.
/// `None` when there is nobody to tell (null sender), nothing undelivered, or only recipients
/// whose `NOTIFY=` leaves failures out (RFC 3461).
pub fn deletion_bounce(
    m: &QueuedMessage,
    from: &BounceFrom,
    now: DateTime<chrono::Utc>,
) -> Option<Vec<u8>> {
    let hostname = from.hostname.as_str();
    if is_null_sender(&m.sender) {
        return None;
    }
    let failed: Vec<FailedRecipient> = m
        .recipients
        .iter()
        .filter(|r| r.state.is_pending() && r.dsn.wants_failure())
        .map(|r| FailedRecipient {
            address: r.address.clone(),
            status: "5.0.0".into(),
            diagnostic: "deleted by the administrator".into(),
            remote_host: None,
            orcpt: r.dsn.orcpt.clone(),
            action: None,
        })
        .collect();
    if failed.is_empty() {
        return None;
    }
    let message_id = format!("{}.dsn@{hostname}", new_id());
    Some(build_report(
        hostname,
        &m.sender,
        &m.message,
        m.received_ms,
        &failed,
        Notice::Failure,
        now,
        &message_id,
        ReportOptions::of(&m.dsn),
    ))
    .map(|report| crate::dkim::sign_stored(&from.dkim, &report).unwrap_or(report))
}

/// What `delete_entry` did besides removing the entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Deleted {
    /// No bounce was asked for.
    Silently,
    /// A DSN to `sender` was queued as `bounce_id`.
    Bounced { sender: String, bounce_id: String },
    /// A bounce was asked for, but the sender is the null sender (given as stored).
    NullSender(String),
    /// A bounce was asked for, but every recipient was already delivered or failed.
    NonePending,
}

/// Removes entry `id` under its lock; with `bounce_hostname`, first queues a DSN (signed with that
/// name, from the null sender) to the sender for the recipients not yet delivered.
pub fn delete_entry(
    store: &Spool,
    id: &str,
    bounce_from: Option<&BounceFrom>,
) -> Result<(Deleted, QueuedMessage), QueueError> {
    let l = lock(store, id)?;
    let m = l.load(store)?;
    let mut outcome = Deleted::Silently;
    if let Some(from) = bounce_from {
        outcome = match deletion_bounce(&m, from, chrono::Utc::now()) {
            Some(dsn) => {
                let bounce_id = store.enqueue("", std::slice::from_ref(&m.sender), &dsn)?;
                Deleted::Bounced {
                    sender: m.sender.clone(),
                    bounce_id,
                }
            }
            None if is_null_sender(&m.sender) => Deleted::NullSender(m.sender.clone()),
            None => Deleted::NonePending,
        };
    }
    // The bounce is on disk before the original goes: a crash between leaves both.
    l.remove(store)?;
    Ok((outcome, m))
}

#[cfg(test)]
#[path = "admin_tests.rs"]
pub(crate) mod tests;
