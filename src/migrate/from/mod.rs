//! `jes migrate DIR --from URL`: a PostgreSQL database written back into a folder that holds
//! no mail (to leave the database, or to keep a file copy), then checked against it. The
//! reverse of `jes migrate DIR --to URL` (`super::run`), with the same rules.
//!
//! Design. The database is only read: it is opened without the schema migration a server
//! makes, and its schema must be the one this binary knows (an older or newer one is refused,
//! naming both versions, rather than read with queries written for another schema). The folder
//! is prepared first: a missing or empty folder gets `jes init`'s sample mail.conf (and
//! log.conf) but not its sample accounts, whose known passwords must never go
//! live; its mail root is locked (`store::root_lock`: a server on it makes the run refuse, and
//! none can start meanwhile); one that already holds mail (a mailbox message, a queue entry),
//! accounts (an entry of user.conf, unless it is `jes init`'s untouched sample) or history
//! events is refused, naming what it holds, with nothing written.
//!
//! One step per part, each written through the file backend the servers use, into a staging
//! folder `.jes-migrate-from` in the mail root: `write::mailboxes` (every message under its own
//! UID and time, `store::files_restore`), `write::queue` (`queue::Spool`, same ids and fields,
//! failed entries into `failed/`), `write::history` (`history.db`); the accounts are read as
//! stored rows (`accounts::postgres::export`: passwords in their stored form, so every login
//! keeps working). A failure while writing removes the staging folder: the folder is as it was.
//! Then `folder::Staging::publish` renames each part into place (one rename per mailbox and
//! queue entry, on one file system) and writes `user.conf` last; a failure there moves back
//! what was moved. A crash can only leave the staging folder, which the next run removes, or,
//! in the moment of the renames, some parts in place, which the next run refuses and names.
//!
//! Then every part is read back through the file backends (`FileMailboxes`, `Spool`,
//! user.conf's reader, the SQLite history) and compared with the database read again by the
//! same checks `--to` uses: counts, UIDLs, sizes and order, SHA-256 of every message, every
//! queue field, every account's stored password and property, every history event. A server
//! still writing to the database meanwhile shows up there as a mismatch.

mod folder;
mod write;

use std::path::{Path, PathBuf};

use super::{MailboxCounts, QueueCounts};
use crate::config::Config;
use crate::pg::{Database, Settings};

/// What writing a database back did.
#[derive(Debug)]
pub struct Summary {
    /// The database, password masked.
    pub location: String,
    pub schema_version: i64,
    /// The mail root written (the folder's store.dir).
    pub root: PathBuf,
    pub mailboxes: MailboxCounts,
    pub queue: QueueCounts,
    /// `user.ADDRESS` entries written into user.conf.
    pub accounts: usize,
    /// `userprop.ADDRESS.NAME` entries (forwards, webhooks) written into user.conf.
    pub properties: usize,
    /// Events written into history.db.
    pub history: usize,
    /// What the run did to prepare the folder, and warnings about its configuration.
    pub notes: Vec<String>,
    /// Where the folder does not read back as the database: empty when the copy is exact.
    pub mismatches: Vec<String>,
}

/// Writes the database of `settings` into the folder `dir` and checks the copy. An `Err` is a
/// refusal or a failure before the folder got any mail; mismatches found after are in the
/// summary.
pub async fn run(dir: &Path, settings: &Settings) -> Result<Summary, String> {
    let db = Database::open(settings)
        .map_err(|e| e.to_string())?
        .without_migration();
    let schema_version = same_schema(&db).await?;
    let mut notes = folder::prepare(dir)?;
    let (config, warnings) = Config::load(dir).map_err(|e| e.to_string())?;
    // The user.conf read here is the one about to get the database's accounts.
    let about_folder = warnings
        .iter()
        .filter(|w| w.path.file_name() != Some("user.conf".as_ref()));
    notes.extend(about_folder.map(|w| format!("warning: {w}")));
    if config.mail.database.is_some() {
        notes.push(format!(
            "{} names store.url: servers started on it use that database, not these files, until store.url is removed",
            dir.join("mail.conf").display()
        ));
    }
    let root = config.store_dir();
    crate::durable::ensure_dir(&root)
        .map_err(|e| format!("cannot create {}: {e}", root.display()))?;
    let _lock = super::FolderLock::take(&root).map_err(|e| {
        e.replace(
            "refusing to migrate while a server runs",
            "refusing to write into the folder while a server runs",
        )
    })?;
    let keep = folder::refuse_unless_empty(&config)?;
    if let Some(note) = &keep.note {
        notes.push(note.clone());
    }

    let rows = crate::accounts::postgres::export(&db)
        .await
        .map_err(|e| format!("accounts: {e}; nothing was written"))?;
    let me = format!("jes-migrate:{}", std::process::id());
    let staging = folder::Staging::create(&root, &mut notes)?;
    let written = match write::all(&db, &me, &staging).await {
        Ok(w) => w,
        Err(e) => {
            staging.discard();
            return Err(format!("{e}; nothing was written to {}", root.display()));
        }
    };
    staging.publish(&config, &keep.text, &settings_comment(&db), &rows)?;

    let files = crate::store::FileMailboxes::new(config.users_dir());
    let mut mismatches = super::mailboxes::verify(&db, &me, &files, &written.mailboxes).await;
    mismatches.extend(write::verify_lists(&db, &files, &written.mailboxes).await);
    let spools = super::queue::Spools::of(&config);
    mismatches.extend(write::verify_queue(&db, &me, &spools).await);
    match crate::config::Users::load(&config.dir.join("user.conf")) {
        Ok((users, _)) => mismatches
            .extend(super::accounts::verify(&db, &users, &super::accounts::DbAccounts).await),
        Err(e) => mismatches.push(format!("accounts: cannot read user.conf back: {e}")),
    }
    match super::history::read(&root) {
        Ok(events) => mismatches
            .extend(super::history::verify(&db, &events, &super::history::DbHistory).await),
        Err(e) => mismatches.push(format!("history: cannot read history.db back: {e}")),
    }
    Ok(Summary {
        location: db.location.clone(),
        schema_version,
        root,
        mailboxes: written.mailboxes,
        queue: written.queue,
        accounts: rows.iter().filter(|r| r.1.is_none()).count(),
        properties: rows.iter().filter(|r| r.1.is_some()).count(),
        history: written.history,
        notes,
        mismatches,
    })
}

/// The comment user.conf gets above the accounts written.
fn settings_comment(db: &Database) -> String {
    format!(
        "Written by jes migrate --from {} (the database's accounts and user properties, passwords in their stored form)",
        db.location
    )
}

/// The database's schema version, refused unless it is the one this binary knows: the run
/// reads with this binary's queries and must not migrate the source.
async fn same_schema(db: &Database) -> Result<i64, String> {
    let found = crate::pg::migrate::current_version(db)
        .await
        .map_err(|e| e.to_string())?;
    let known = crate::pg::migrate::known_version();
    if found == known {
        return Ok(found);
    }
    if found == 0 {
        return Err(format!(
            "the database {} holds no jes tables: nothing to write back",
            db.location
        ));
    }
    let (which, what) = if found > known {
        ("newer", "use the jes its servers run")
    } else {
        (
            "older",
            "use the jes its servers run, or start a server of this version on it once (which brings the schema up to date)",
        )
    };
    Err(format!(
        "the database {} has schema version {found}, {which} than this jes knows ({known}); it is only read, never migrated, by jes migrate --from: {what}",
        db.location
    ))
}
