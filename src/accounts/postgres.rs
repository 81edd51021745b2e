//! The PostgreSQL backend of the accounts (`store.url`): `jes_accounts` (one row per
//! `user.ADDRESS`), `jes_account_props` (one per `userprop.ADDRESS.NAME`) and the revision
//! counter `jes_accounts_revision`.
//!
//! Design. Addresses are kept canonical, as `user.conf`'s reader keys them. The revision is
//! bumped, and `NOTIFY jes_accounts` sent, by triggers on the two tables (migration V2), so it
//! moves in the same transaction as any change, whether made by `jes user` on any machine or by
//! hand in SQL; servers poll it and listen. `load` reads the revision and every row in one
//! snapshot (repeatable read), so a server never applies half of a change with a revision that
//! claims all of it. Passwords are hashed here (argon2id) before they are sent; the plaintext
//! upgrade of JES's `user.conf` has no counterpart: nothing writes plaintext into these tables.

use std::io;
use std::path::PathBuf;

use async_trait::async_trait;
use tokio::sync::mpsc;

use super::{invalid, AccountStore, Snapshot};
use crate::address::{canonical, mailbox_dir_name};
use crate::config::users::property_name;
use crate::config::Users;
use crate::pg::Database;

/// The channel the triggers notify (the payload is the new revision).
const CHANNEL: &str = "jes_accounts";

/// A row as `Users::from_rows` reads it: (address, property name or `None` for the password,
/// value).
pub type Row = (String, Option<String>, String);

pub struct PgAccounts {
    db: Database,
}

impl PgAccounts {
    pub fn new(db: Database) -> PgAccounts {
        PgAccounts { db }
    }

    /// What warnings and errors about rows name in place of a file.
    fn source(&self) -> PathBuf {
        PathBuf::from(format!("database {}", self.db.location))
    }

    fn checked(&self, rows: &[Row]) -> io::Result<(Users, Vec<crate::config::Warning>)> {
        Users::from_rows(&self.source(), rows)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))
    }

    fn not_found(&self, address: &str) -> io::Error {
        io::Error::new(
            io::ErrorKind::NotFound,
            format!(
                "{address} has no account in the database {}",
                self.db.location
            ),
        )
    }
}

/// For `jes migrate`: how many accounts the database holds, in its transaction.
pub async fn count_in(tx: &tokio_postgres::Transaction<'_>) -> Result<i64, tokio_postgres::Error> {
    Ok(tx
        .query_one("SELECT COUNT(*) FROM jes_accounts", &[])
        .await?
        .get(0))
}

/// For `jes migrate`: writes `rows` (as `Users::from_rows` reads them: the password as stored,
/// or a property) in its transaction; returns how many accounts were written.
pub async fn import(
    tx: &tokio_postgres::Transaction<'_>,
    rows: &[Row],
) -> Result<usize, tokio_postgres::Error> {
    let mut accounts = 0;
    for (address, name, value) in rows {
        match name {
            None => {
                tx.execute(
                    "INSERT INTO jes_accounts (address, password) VALUES ($1, $2)",
                    &[address, value],
                )
                .await?;
                accounts += 1;
            }
            Some(name) => {
                tx.execute(
                    "INSERT INTO jes_account_props (address, name, value) VALUES ($1, $2, $3) \
                     ON CONFLICT (address, name) DO UPDATE SET value = EXCLUDED.value",
                    &[address, name, value],
                )
                .await?;
            }
        }
    }
    Ok(accounts)
}

/// Every row, accounts first (by address), then the properties.
async fn read_rows(
    tx: &tokio_postgres::Transaction<'_>,
) -> Result<Vec<Row>, tokio_postgres::Error> {
    let mut rows: Vec<Row> = tx
        .query(
            "SELECT address, password FROM jes_accounts ORDER BY address",
            &[],
        )
        .await?
        .iter()
        .map(|r| (r.get(0), None, r.get(1)))
        .collect();
    let props = tx
        .query(
            "SELECT address, name, value FROM jes_account_props ORDER BY address, name",
            &[],
        )
        .await?;
    rows.extend(props.iter().map(|r| (r.get(0), Some(r.get(1)), r.get(2))));
    Ok(rows)
}

/// For `jes migrate --from`: every row as it is stored (the passwords in their stored form,
/// never re-hashed), read in one snapshot.
pub async fn export(db: &Database) -> io::Result<Vec<Row>> {
    let mut client = db.client().await?;
    let tx = client
        .build_transaction()
        .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await
        .map_err(|e| db.err(e))?;
    let rows = read_rows(&tx).await.map_err(|e| db.err(e))?;
    tx.commit().await.map_err(|e| db.err(e))?;
    Ok(rows)
}

/// An argon2id hash of `password`, on a blocking thread (it takes a noticeable moment and memory).
async fn hash(password: &str) -> io::Result<String> {
    if password.is_empty() {
        return Err(invalid("the password must not be empty".into()));
    }
    let password = password.to_string();
    tokio::task::spawn_blocking(move || crate::auth::hash_password(&password))
        .await
        .map_err(io::Error::other)
}

#[async_trait]
impl AccountStore for PgAccounts {
    fn location(&self) -> String {
        format!("the database {}", self.db.location)
    }

    async fn add(&self, address: &str, password: &str) -> io::Result<String> {
        let addr =
            mailbox_dir_name(address).map_err(|why| invalid(format!("{address:?}: {why}")))?;
        let stored = hash(password).await?;
        let client = self.db.client().await?;
        let n = client
            .execute(
                "INSERT INTO jes_accounts (address, password) VALUES ($1, $2) ON CONFLICT (address) DO NOTHING",
                &[&addr, &stored],
            )
            .await
            .map_err(|e| self.db.err(e))?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!(
                    "{addr} already has an account in the database {}",
                    self.db.location
                ),
            ));
        }
        Ok(addr)
    }

    async fn set_password(&self, address: &str, password: &str) -> io::Result<()> {
        let addr = canonical(address);
        let stored = hash(password).await?;
        let client = self.db.client().await?;
        let n = client
            .execute(
                "UPDATE jes_accounts SET password = $2 WHERE address = $1",
                &[&addr, &stored],
            )
            .await
            .map_err(|e| self.db.err(e))?;
        if n == 0 {
            return Err(self.not_found(&addr));
        }
        Ok(())
    }

    async fn delete(&self, address: &str) -> io::Result<()> {
        let addr = canonical(address);
        let mut client = self.db.client().await?;
        let tx = client.transaction().await.map_err(|e| self.db.err(e))?;
        let n = tx
            .execute("DELETE FROM jes_accounts WHERE address = $1", &[&addr])
            .await
            .map_err(|e| self.db.err(e))?;
        if n == 0 {
            return Err(self.not_found(&addr));
        }
        tx.execute("DELETE FROM jes_account_props WHERE address = $1", &[&addr])
            .await
            .map_err(|e| self.db.err(e))?;
        tx.commit().await.map_err(|e| self.db.err(e))
    }

    async fn list(&self) -> io::Result<Vec<String>> {
        let client = self.db.client().await?;
        let rows = client
            .query("SELECT address FROM jes_accounts ORDER BY address", &[])
            .await
            .map_err(|e| self.db.err(e))?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    async fn set_property(&self, address: &str, name: &str, value: Option<&str>) -> io::Result<()> {
        let addr =
            mailbox_dir_name(address).map_err(|why| invalid(format!("{address:?}: {why}")))?;
        let name = property_name(name)?;
        let mut client = self.db.client().await?;
        let tx = client.transaction().await.map_err(|e| self.db.err(e))?;
        let Some(value) = value else {
            let n = tx
                .execute(
                    "DELETE FROM jes_account_props WHERE address = $1 AND name = $2",
                    &[&addr, &name],
                )
                .await
                .map_err(|e| self.db.err(e))?;
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::NotFound,
                    format!(
                        "{addr} has no property {name} in the database {}",
                        self.db.location
                    ),
                ));
            }
            return tx.commit().await.map_err(|e| self.db.err(e));
        };
        // The address's properties with the new value, read as the server will read them:
        // a value it would refuse is refused now, before anything is written.
        let mut rows: Vec<Row> = tx
            .query(
                "SELECT name, value FROM jes_account_props WHERE address = $1 AND name <> $2",
                &[&addr, &name],
            )
            .await
            .map_err(|e| self.db.err(e))?
            .iter()
            .map(|r| (addr.clone(), Some(r.get(0)), r.get(1)))
            .collect();
        rows.push((addr.clone(), Some(name.to_string()), value.to_string()));
        self.checked(&rows).map_err(|e| invalid(e.to_string()))?;
        tx.execute(
            "INSERT INTO jes_account_props (address, name, value) VALUES ($1, $2, $3) \
             ON CONFLICT (address, name) DO UPDATE SET value = EXCLUDED.value",
            &[&addr, &name, &value],
        )
        .await
        .map_err(|e| self.db.err(e))?;
        tx.commit().await.map_err(|e| self.db.err(e))
    }

    async fn load(&self) -> io::Result<Snapshot> {
        let mut client = self.db.client().await?;
        let tx = client
            .build_transaction()
            .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .await
            .map_err(|e| self.db.err(e))?;
        let revision: i64 = tx
            .query_one("SELECT revision FROM jes_accounts_revision", &[])
            .await
            .map_err(|e| self.db.err(e))?
            .get(0);
        let rows = read_rows(&tx).await.map_err(|e| self.db.err(e))?;
        tx.commit().await.map_err(|e| self.db.err(e))?;
        let (users, warnings) = self.checked(&rows)?;
        Ok(Snapshot {
            users,
            warnings,
            revision,
        })
    }

    async fn revision(&self) -> io::Result<i64> {
        let client = self.db.client().await?;
        let row = client
            .query_one("SELECT revision FROM jes_accounts_revision", &[])
            .await
            .map_err(|e| self.db.err(e))?;
        Ok(row.get(0))
    }

    fn notifications(&self) -> Option<mpsc::UnboundedReceiver<String>> {
        Some(self.db.listen(CHANNEL))
    }
}
