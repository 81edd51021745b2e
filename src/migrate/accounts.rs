//! The accounts step: what `user.conf` holds (accounts with their stored passwords as they
//! are, forwards, webhook settings), copied in the migration's transaction.
//!
//! The accounts' tables belong to the accounts' database backend, which this step does not know:
//! it is handed one as an [`AccountsTarget`] (see `migrate::Targets`). To connect it, implement
//! the trait next to that backend (only the backend touches its tables) and set
//! `Targets::accounts` where `cli::migrate` builds the targets. Without a target the step counts
//! the accounts and leaves them in `user.conf`, where this build's servers read them.

use async_trait::async_trait;
use tokio_postgres::Transaction;

use std::path::Path;

use crate::accounts::postgres::Row;
use crate::accounts::AccountStore;
use crate::address::canonical;
use crate::auth::{hash_password, StoredPassword};
use crate::config::properties::Properties;
use crate::config::Users;
use crate::pg::Database;

use super::Copied;

/// The accounts' database backend (`accounts::postgres`) as the migration's target.
pub struct DbAccounts;

#[async_trait]
impl AccountsTarget for DbAccounts {
    async fn count(&self, tx: &Transaction<'_>) -> Result<i64, tokio_postgres::Error> {
        crate::accounts::postgres::count_in(tx).await
    }

    async fn insert(
        &self,
        tx: &Transaction<'_>,
        rows: &[Row],
    ) -> Result<usize, tokio_postgres::Error> {
        crate::accounts::postgres::import(tx, rows).await
    }

    async fn read_back(&self, db: &Database) -> Result<Users, String> {
        let store = crate::accounts::postgres::PgAccounts::new(db.clone());
        store
            .load()
            .await
            .map(|s| s.users)
            .map_err(|e| e.to_string())
    }
}

/// The folder's `user.conf` as the servers would read it (also beside a `store.url`, where a
/// server ignores it: it is what is being moved) and as rows for the database: every
/// `user.ADDRESS` and every known `userprop.ADDRESS.NAME`. A plaintext password (a hand edit
/// JES never upgraded) is hashed with argon2id: nothing writes plaintext into the database.
pub fn read_user_conf(dir: &Path) -> Result<(Users, Vec<Row>), String> {
    let path = dir.join("user.conf");
    let Some((props, _)) = Properties::load(&path).map_err(|e| e.to_string())? else {
        return Ok((Users::default(), Vec::new()));
    };
    let (users, _) = Users::load(&path).map_err(|e| e.to_string())?;
    let mut names: Vec<&'static str> = crate::config::USER_KEYS
        .iter()
        .filter_map(|k| k.name.strip_prefix("userprop.ADDRESS."))
        .collect();
    // The longest name first: `webhook.secret` before `webhook`.
    names.sort_by_key(|n| std::cmp::Reverse(n.len()));
    let mut rows = Vec::new();
    for e in &props.entries {
        if let Some(addr) = e.key.strip_prefix("user.") {
            let addr = canonical(addr);
            let Some(stored) = users.accounts.get(&addr) else {
                continue; // refused by the reader (an empty password): not an account
            };
            let value = match stored {
                StoredPassword::Plain(p) => hash_password(p),
                _ => e.value.trim().to_string(),
            };
            rows.push((addr, None, value));
        } else if let Some(rest) = e.key.strip_prefix("userprop.") {
            let lower = rest.to_ascii_lowercase();
            if let Some(name) = names.iter().find(|n| {
                lower.len() > n.len() + 1
                    && lower.ends_with(&format!(".{}", n.to_ascii_lowercase()))
            }) {
                let addr = canonical(&rest[..rest.len() - name.len() - 1]);
                rows.push((addr, Some(name.to_string()), e.value.clone()));
            }
        }
    }
    Ok((users, rows))
}

/// The database side of the accounts step.
#[async_trait]
pub trait AccountsTarget: Send + Sync {
    /// How many accounts the database holds (the migration refuses one with any).
    async fn count(&self, tx: &Transaction<'_>) -> Result<i64, tokio_postgres::Error>;

    /// Writes `rows` (user.conf's entries as `Users::from_rows` reads them: each account with
    /// its stored password as it is, JES's SHA-1 digits or argon2id, and each property) in the
    /// migration's transaction. Returns how many accounts it wrote.
    async fn insert(
        &self,
        tx: &Transaction<'_>,
        rows: &[Row],
    ) -> Result<usize, tokio_postgres::Error>;

    /// What the database holds after the commit, read the way the servers read it: the check
    /// compares it with `user.conf`.
    async fn read_back(&self, db: &Database) -> Result<Users, String>;
}

/// Copies the accounts through `target`, or counts them when there is none.
pub(super) async fn copy(
    db: &Database,
    tx: &Transaction<'_>,
    users: &Users,
    rows: &[Row],
    target: Option<&dyn AccountsTarget>,
) -> Result<Copied, String> {
    match target {
        None => Ok(Copied::Kept(users.accounts.len())),
        Some(t) => t
            .insert(tx, rows)
            .await
            .map(Copied::Copied)
            .map_err(|e| format!("accounts: {}", db.err(e))),
    }
}

/// Compares the accounts read back with `user.conf`'s: every account, password form,
/// forward and webhook setting.
pub(super) async fn verify(
    db: &Database,
    users: &Users,
    target: &dyn AccountsTarget,
) -> Vec<String> {
    let back = match target.read_back(db).await {
        Ok(b) => b,
        Err(e) => return vec![format!("accounts: not read back from the database: {e}")],
    };
    let mut out = Vec::new();
    let mut names: Vec<&String> = users.accounts.keys().chain(back.accounts.keys()).collect();
    names.sort();
    names.dedup();
    for name in names {
        let same = match (users.accounts.get(name), back.accounts.get(name)) {
            // A plaintext password is hashed on the way: the copy must accept it.
            (Some(StoredPassword::Plain(p)), Some(stored)) => {
                !stored.is_plain() && stored.verify(p)
            }
            (a, b) => a == b,
        };
        if !same {
            out.push(format!(
                "account {name}: {} in user.conf, {} in the database",
                presence(users.accounts.contains_key(name)),
                presence(back.accounts.contains_key(name))
            ));
        }
    }
    if users.forwards != back.forwards {
        out.push("accounts: the forwards differ from user.conf's".into());
    }
    if users.webhooks != back.webhooks {
        out.push("accounts: the webhook settings differ from user.conf's".into());
    }
    out
}

fn presence(there: bool) -> &'static str {
    if there {
        "present (or with another password)"
    } else {
        "absent"
    }
}
