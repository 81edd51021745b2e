//! `jes migrate DIR --to URL`: a JES or jes folder copied into a PostgreSQL database, then
//! checked against it. The printing is `crate::cli::migrate`; the work is here.
//!
//! Design. One step per part of the folder, each with a copy and a check: `mailboxes` (every
//! message with its UIDL, size and order, read through the file store and written through
//! `store::postgres_import`), `queue` (every entry of `smtp/` and `failed/`, JES 1.0 files and
//! jes's alike, read through `queue::Spool` and written through `queue::postgres_import`),
//! `accounts` (user.conf) and `history` (history.db). The last two copy into tables other
//! branches of the code own: each step takes its database side as a small trait
//! ([`accounts::AccountsTarget`], [`history::HistoryTarget`]) in [`Targets`]; without one the
//! step only counts what the folder holds, and the summary says it stayed where it is.
//!
//! The rules an operator relies on: the mail-root lock (`store::root_lock`) is taken for the
//! whole run, so a jes server serving the folder makes the migration refuse, and none can start
//! on it meanwhile; the schema is brought up to date first (`pg::migrate`); a database that
//! already holds mailbox messages or queue entries is refused (a second run must not duplicate
//! mail); everything is copied in one transaction (a failure leaves the database as it was, so
//! the run can simply be repeated); the source is only read (a lock file the run creates is
//! removed again). After the commit every part is read back through the database backends the
//! servers use and compared with the folder read again: counts, UIDLs, sizes, SHA-256 of every
//! message, every queue field. A JES (Java) server still running on the folder holds no jes lock;
//! mail it added or removed meanwhile shows up there as a mismatch.

pub mod accounts;
pub mod from;
pub mod history;
mod mailboxes;
mod queue;

use std::ops::DerefMut;

use crate::config::Config;
use crate::pg::{Database, Settings};
use crate::store::root_lock::{lock_root, RootLockError};

pub use mailboxes::MailboxCounts;
pub use queue::QueueCounts;

/// The advisory lock a migration holds in its transaction ("jes" and 2), so two migrations into
/// one database cannot both find it empty.
const MIGRATION_LOCK: i64 = 0x6a65_7300_0000_0002;

/// The database side of the steps whose tables this build does not own yet; `None`: that part
/// is counted and left in the folder.
#[derive(Default)]
pub struct Targets {
    pub accounts: Option<Box<dyn accounts::AccountsTarget>>,
    pub history: Option<Box<dyn history::HistoryTarget>>,
}

/// What happened to a part the database may not hold yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Copied {
    /// Copied: how many.
    Copied(usize),
    /// Found in the folder (how many) and left there: no table for it in this build.
    Kept(usize),
}

/// What a migration did.
#[derive(Debug)]
pub struct Summary {
    /// The database, password masked.
    pub location: String,
    pub schema_version: i64,
    pub mailboxes: MailboxCounts,
    pub queue: QueueCounts,
    /// Accounts (user.conf's `user.ADDRESS` entries).
    pub accounts: Copied,
    /// Events of history.db.
    pub history: Copied,
    /// Where the database does not read back as the folder: empty when the copy is exact.
    pub mismatches: Vec<String>,
}

/// Copies the mail root of `config` into the database of `settings` and checks the copy.
/// An `Err` is a refusal or a failure before the commit (the database is left as it was);
/// mismatches found after it are in the summary.
pub async fn run(
    config: &Config,
    settings: &Settings,
    targets: Targets,
) -> Result<Summary, String> {
    let root = config.store_dir();
    let _lock = FolderLock::take(&root)?;
    let db = Database::open(settings).map_err(|e| e.to_string())?;
    db.ensure_schema().await.map_err(|e| e.to_string())?;
    let schema_version = crate::pg::migrate::current_version(&db)
        .await
        .map_err(|e| e.to_string())?;

    let mut object = db.client().await.map_err(|e| e.to_string())?;
    let client: &mut tokio_postgres::Client = object.deref_mut().deref_mut();
    let pg = |e: tokio_postgres::Error| db.err(e).to_string();
    let tx = client.transaction().await.map_err(pg)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(pg)?;
    refuse_unless_empty(&db, &tx, &targets).await?;

    let files = crate::store::FileMailboxes::new(config.users_dir());
    let spools = queue::Spools::of(config);
    let mailboxes = mailboxes::copy(&db, &tx, &files).await?;
    let queue = queue::copy(&db, &tx, &spools).await?;
    // user.conf read here, not from `config`: beside a store.url a server ignores it.
    let (users, account_rows) = accounts::read_user_conf(&config.dir)?;
    let accounts =
        accounts::copy(&db, &tx, &users, &account_rows, targets.accounts.as_deref()).await?;
    let events = history::read(&root)?;
    let history = history::copy(&db, &tx, &events, targets.history.as_deref()).await?;
    tx.commit().await.map_err(pg)?;
    drop(object);

    let me = format!("jes-migrate:{}", std::process::id());
    let mut mismatches = mailboxes::verify(&db, &me, &files, &mailboxes).await;
    mismatches.extend(queue::verify(&db, &me, &spools).await);
    if let Some(target) = targets.accounts.as_deref() {
        mismatches.extend(accounts::verify(&db, &users, target).await);
    }
    if let Some(target) = targets.history.as_deref() {
        mismatches.extend(history::verify(&db, &events, target).await);
    }
    Ok(Summary {
        location: db.location.clone(),
        schema_version,
        mailboxes,
        queue,
        accounts,
        history,
        mismatches,
    })
}

/// The mail-root lock for the run. A lock file the run had to create is removed again before
/// the lock is let go: a JES folder gets no new file, and a migration run as root leaves no
/// root-owned `jes.lock` that would stop the server's own user from starting on the folder.
struct FolderLock {
    lock: Option<crate::store::root_lock::RootLock>,
    created: bool,
}

impl FolderLock {
    fn take(root: &std::path::Path) -> Result<FolderLock, String> {
        let existed = root.join(crate::store::root_lock::LOCK_FILE).exists();
        let lock = lock_root(root).map_err(|e| match e {
            RootLockError::Held { .. } => format!("refusing to migrate while a server runs: {e}"),
            e => e.to_string(),
        })?;
        Ok(FolderLock {
            lock: Some(lock),
            created: !existed,
        })
    }
}

impl Drop for FolderLock {
    fn drop(&mut self) {
        if let Some(lock) = self.lock.take() {
            if self.created {
                // Still held: a server starting now finds it taken, then a fresh file.
                let _ = std::fs::remove_file(&lock.path);
            }
        }
    }
}

/// Refuses a database that already holds mail (or accounts or events, for the parts connected).
async fn refuse_unless_empty(
    db: &Database,
    tx: &tokio_postgres::Transaction<'_>,
    targets: &Targets,
) -> Result<(), String> {
    let pg = |e: tokio_postgres::Error| db.err(e).to_string();
    let mut held = Vec::new();
    let n = crate::store::postgres_import::count(tx).await.map_err(pg)?;
    if n > 0 {
        held.push(format!("{n} mailbox message(s)"));
    }
    let n = crate::queue::postgres_import::count(tx).await.map_err(pg)?;
    if n > 0 {
        held.push(format!(
            "{n} queue entr{}",
            if n == 1 { "y" } else { "ies" }
        ));
    }
    if let Some(t) = &targets.accounts {
        let n = t.count(tx).await.map_err(pg)?;
        if n > 0 {
            held.push(format!("{n} account(s)"));
        }
    }
    if let Some(t) = &targets.history {
        let n = t.count(tx).await.map_err(pg)?;
        if n > 0 {
            held.push(format!("{n} history event(s)"));
        }
    }
    if held.is_empty() {
        return Ok(());
    }
    Err(format!(
        "refusing to migrate into {}: it already holds {}; jes migrate fills an empty database only, so that mail is never copied twice (name a new database, or empty this one)",
        db.location,
        held.join(" and ")
    ))
}

/// Epoch milliseconds of a file time (0 before 1970).
fn epoch_ms(t: std::time::SystemTime) -> i64 {
    t.duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis().min(i64::MAX as u128) as i64)
        .unwrap_or(0)
}

/// The SHA-256 of `bytes` in hex, as mismatches name a message's content.
fn sha256_hex(bytes: &[u8]) -> String {
    crate::pg::bodies::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
