//! The file backend of the accounts: a folder's `user.conf`, read and rewritten by
//! `config::users` (comments, order and line ends kept; each change under the folder's lock).
//! A running server watches the file itself (`server::reload`), so there is no revision here.

use std::io;
use std::path::PathBuf;

use async_trait::async_trait;

use super::{AccountStore, Snapshot};
use crate::address::mailbox_dir_name;
use crate::config::users;
use crate::config::Users;

pub struct FileAccounts {
    path: PathBuf,
}

impl FileAccounts {
    pub fn new(path: PathBuf) -> FileAccounts {
        FileAccounts { path }
    }
}

#[async_trait]
impl AccountStore for FileAccounts {
    fn location(&self) -> String {
        self.path.display().to_string()
    }

    async fn add(&self, address: &str, password: &str) -> io::Result<String> {
        users::add_user(&self.path, address, password)?;
        mailbox_dir_name(address).map_err(|why| super::invalid(why.to_string()))
    }

    async fn set_password(&self, address: &str, password: &str) -> io::Result<()> {
        users::set_password(&self.path, address, password)
    }

    async fn delete(&self, address: &str) -> io::Result<()> {
        users::delete_user(&self.path, address)
    }

    async fn list(&self) -> io::Result<Vec<String>> {
        users::list_users(&self.path)
    }

    async fn set_property(&self, address: &str, name: &str, value: Option<&str>) -> io::Result<()> {
        users::set_property(&self.path, address, name, value)
    }

    async fn load(&self) -> io::Result<Snapshot> {
        let (users, warnings) = Users::load(&self.path).map_err(|e| match e {
            crate::config::ConfigError::Io { source, .. } => source,
            e => io::Error::new(io::ErrorKind::InvalidData, e.to_string()),
        })?;
        Ok(Snapshot {
            users,
            warnings,
            revision: 0,
        })
    }

    async fn revision(&self) -> io::Result<i64> {
        Ok(0)
    }
}

/// The `user.conf` key a database row stands for (`user.ADDRESS`, `userprop.ADDRESS.NAME`).
pub fn key_of(row: &super::postgres::Row) -> String {
    match &row.1 {
        None => format!("user.{}", row.0),
        Some(name) => format!("userprop.{}.{name}", row.0),
    }
}

/// For `jes migrate --from`: writes `rows` (the database's, as they are: stored passwords,
/// forwards, other properties) as `user.conf` at `path`, after `keep` (the text of a file
/// without accounts, kept as it was) and a `# comment` line. One durable replace: a crash
/// leaves the old file or the new one.
pub fn write_rows(
    path: &std::path::Path,
    keep: &str,
    comment: &str,
    rows: &[super::postgres::Row],
) -> io::Result<()> {
    use crate::config::properties::{escape_key, escape_value};
    let mut text = keep.to_string();
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    text.push_str(&format!("# {comment}\n"));
    for row in rows {
        text.push_str(&format!(
            "{}={}\n",
            escape_key(&key_of(row)),
            escape_value(&row.2)
        ));
    }
    users::write_atomically(path, text.as_bytes())
}
