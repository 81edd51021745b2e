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

use crate::config::Users;
use crate::pg::Database;

use super::Copied;

/// The database side of the accounts step.
#[async_trait]
pub trait AccountsTarget: Send + Sync {
    /// How many accounts the database holds (the migration refuses one with any).
    async fn count(&self, tx: &Transaction<'_>) -> Result<i64, tokio_postgres::Error>;

    /// Writes everything `users` holds in the migration's transaction: each account with its
    /// stored password as it is (JES's SHA-1 digits, argon2id, plaintext: never re-hashed),
    /// the forwards and the webhook settings. Returns how many accounts it wrote.
    async fn insert(
        &self,
        tx: &Transaction<'_>,
        users: &Users,
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
    target: Option<&dyn AccountsTarget>,
) -> Result<Copied, String> {
    match target {
        None => Ok(Copied::Kept(users.accounts.len())),
        Some(t) => t
            .insert(tx, users)
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
        if users.accounts.get(name) != back.accounts.get(name) {
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
