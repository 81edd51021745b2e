//! What `jes migrate`'s two directions share on the command line (`super::migrate` for `--to`,
//! `super::migrate_from` for `--from`): the arguments, the note about a password in the URL,
//! the runtime, and the printed counts of mail, so both say the same things the same way.

use std::io::Write;
use std::path::PathBuf;

use crate::migrate::{MailboxCounts, QueueCounts};
use crate::pg::url::masked;

/// What the command line gave.
#[derive(Debug, Clone)]
pub struct Args {
    pub dir: PathBuf,
    pub to: Option<String>,
    /// `--from URL`: the database written back into the folder.
    pub from: Option<String>,
    pub password_file: Option<PathBuf>,
}

/// A URL with a password in it is readable by every user of the machine in the process list.
pub(super) fn password_note(url: &str, out: &mut dyn Write) -> std::io::Result<()> {
    if masked(url) != url {
        writeln!(
            out,
            "note: the URL holds a password, which other users of this machine can read in the process list; --password-file FILE keeps it out"
        )?;
    }
    Ok(())
}

/// The one-thread runtime a migration runs on.
pub(super) fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))
}

/// The database and the mail counts, as both directions print them (`done`: "copied" or
/// "written").
pub(super) fn print_mail_counts(
    out: &mut dyn Write,
    (location, schema_version): (&str, i64),
    m: &MailboxCounts,
    q: &QueueCounts,
    done: &str,
) -> std::io::Result<()> {
    writeln!(
        out,
        "database: {location} (schema version {schema_version})"
    )?;
    writeln!(
        out,
        "mailboxes: {} mailbox(es), {} message(s), {} bytes {done}",
        m.copied.len(),
        m.messages,
        m.bytes
    )?;
    for skipped in &m.skipped {
        writeln!(out, "  left out: {skipped}")?;
    }
    writeln!(
        out,
        "queue: {} message(s) {done} ({} waiting, {} kept as failed)",
        q.waiting + q.failed,
        q.waiting,
        q.failed
    )
}
