//! The accounts (everything `user.conf` holds: passwords, forwards, the other user properties)
//! behind one interface, whichever store a configuration folder names.
//!
//! Design. Two backends: `files` (the folder's `user.conf`, through `config::users`, whose writer
//! keeps comments and order) and `postgres` (the tables of `store.url`, shared by every server on
//! that database). Both hand out the same `config::Users`, read by the same code
//! (`Users::from_rows` feeds the rows to the reader of `user.conf` as the lines they stand for),
//! so a value is checked, and warned about, the same way wherever it is kept. `jes user`
//! (`cli::user`) changes accounts through this interface; the server reads them through it and,
//! for the database, watches its revision (`server::accounts`); the file backend is watched by
//! `server::reload` with the other files, as before. Only the backends touch the file or the
//! tables.

pub mod files;
pub mod postgres;

use std::io;
use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use tokio::sync::mpsc;

use crate::config::{MailConf, Users, Warning};

/// The accounts as read at one moment.
#[derive(Debug)]
pub struct Snapshot {
    pub users: Users,
    pub warnings: Vec<Warning>,
    /// The database's revision counter when they were read (0 for the file).
    pub revision: i64,
}

/// Where the accounts of a configuration folder live.
#[async_trait]
pub trait AccountStore: Send + Sync {
    /// The file's path or the database's URL (password masked), for messages.
    fn location(&self) -> String;
    /// Adds an account with an argon2id hash of `password`; returns its canonical address.
    /// `AlreadyExists` if it has one, `InvalidInput` if the address cannot be a mailbox.
    async fn add(&self, address: &str, password: &str) -> io::Result<String>;
    /// A new password for an existing account; `NotFound` if there is none.
    async fn set_password(&self, address: &str, password: &str) -> io::Result<()>;
    /// Removes an account and its user properties; `NotFound` if there is no account.
    async fn delete(&self, address: &str) -> io::Result<()>;
    /// The accounts' canonical addresses.
    async fn list(&self) -> io::Result<Vec<String>>;
    /// Sets (`Some`) or removes (`None`) the user property `NAME` of `address`
    /// (`forwardAddresses`, `webhook`, ...); a value the reader refuses is refused, unchanged.
    async fn set_property(&self, address: &str, name: &str, value: Option<&str>) -> io::Result<()>;
    /// Everything, read and checked as `user.conf` is. `InvalidData` for a value the reader
    /// refuses (the message names the key); other kinds: the store cannot be reached.
    async fn load(&self) -> io::Result<Snapshot>;
    /// The revision counter alone (cheap, for polling); the file backend has none (0).
    async fn revision(&self) -> io::Result<i64>;
    /// Wake-ups when another process changed the accounts (the database's `NOTIFY`), if the
    /// store has them.
    fn notifications(&self) -> Option<mpsc::UnboundedReceiver<String>> {
        None
    }
}

/// The account store `dir/mail.conf` names: the database of `store.url` (its schema brought up
/// to date, as `jes serve` does), or `dir/user.conf`. A folder without `mail.conf` has its
/// `user.conf`, as it always had.
pub async fn for_folder(dir: &Path) -> Result<Arc<dyn AccountStore>, String> {
    let mail_conf = dir.join("mail.conf");
    let users = dir.join("user.conf");
    if !mail_conf.exists() {
        return Ok(Arc::new(files::FileAccounts::new(users)));
    }
    let (mail, _) = MailConf::load(&mail_conf)
        .map_err(|e| format!("cannot tell where the accounts are: {e}"))?;
    match &mail.database {
        None => Ok(Arc::new(files::FileAccounts::new(users))),
        Some(settings) => {
            let db = crate::pg::Database::open(settings).map_err(|e| e.to_string())?;
            db.ensure_schema().await.map_err(|e| e.to_string())?;
            Ok(Arc::new(postgres::PgAccounts::new(db)))
        }
    }
}

/// An `InvalidInput` error (a bad address, password or property).
pub(crate) fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, message)
}
