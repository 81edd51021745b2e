//! `jes user add|passwd|del|list|set|unset --dir DIR`, and the accounts lines of `jes check`.
//!
//! The accounts are wherever the folder's `mail.conf` says (`accounts::for_folder`): its
//! `user.conf`, or the database of `store.url`, shared by every server on it, which sees a
//! change within seconds. Passwords come from a prompt without echo or one line of stdin, never
//! from the command line (where `ps` and shell histories would show them).

use std::io::{BufRead, IsTerminal, Write};
use std::path::Path;

use crate::accounts::{self, AccountStore};
use crate::config::{Config, Users};

/// What `jes user` was asked to do.
pub enum Action {
    Add {
        address: String,
    },
    Passwd {
        address: String,
    },
    Del {
        address: String,
    },
    List,
    /// `userprop.ADDRESS.NAME=VALUE` (`forwardAddresses`, `webhook`, ...).
    Set {
        address: String,
        name: String,
        value: String,
    },
    Unset {
        address: String,
        name: String,
    },
}

fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))
}

/// Runs `action` on the accounts of `dir`, printing to `out`.
pub fn run(dir: &Path, action: Action, out: &mut dyn Write) -> Result<(), String> {
    // Asked before connecting: a prompt should not wait behind a slow database.
    let password = match &action {
        Action::Add { address } => Some(read_password(&format!("password for {address}: "))?),
        Action::Passwd { address } => {
            Some(read_password(&format!("new password for {address}: "))?)
        }
        _ => None,
    };
    runtime()?.block_on(async {
        let store = accounts::for_folder(dir).await?;
        apply(
            store.as_ref(),
            action,
            password.as_deref().unwrap_or(""),
            out,
        )
        .await
    })
}

async fn apply(
    store: &dyn AccountStore,
    action: Action,
    password: &str,
    out: &mut dyn Write,
) -> Result<(), String> {
    let w = |out: &mut dyn Write, line: String| {
        writeln!(out, "{line}").map_err(|e| format!("cannot write: {e}"))
    };
    match action {
        Action::Add { address } => {
            store
                .add(&address, password)
                .await
                .map_err(|e| e.to_string())?;
            w(out, format!("added {address} to {}", store.location()))
        }
        Action::Passwd { address } => {
            store
                .set_password(&address, password)
                .await
                .map_err(|e| e.to_string())?;
            w(out, format!("changed the password of {address}"))
        }
        Action::Del { address } => {
            store.delete(&address).await.map_err(|e| e.to_string())?;
            w(out, format!("deleted {address} (its mailbox is kept)"))
        }
        Action::List => {
            for address in store.list().await.map_err(|e| e.to_string())? {
                w(out, address)?;
            }
            Ok(())
        }
        Action::Set {
            address,
            name,
            value,
        } => {
            store
                .set_property(&address, &name, Some(&value))
                .await
                .map_err(|e| e.to_string())?;
            w(
                out,
                format!("set {name} of {address} in {}", store.location()),
            )
        }
        Action::Unset { address, name } => {
            store
                .set_property(&address, &name, None)
                .await
                .map_err(|e| e.to_string())?;
            w(
                out,
                format!("removed {name} of {address} from {}", store.location()),
            )
        }
    }
}

/// The accounts lines of `jes check`: from `user.conf` as read with the configuration, or, with
/// `store.url`, counted in the database (or why it cannot be read; the database line of `jes
/// check` says whether it connects at all).
pub fn accounts_summary(config: &Config) -> String {
    let Some(settings) = &config.mail.database else {
        return summary(&config.users, "");
    };
    let read = async {
        let db = crate::pg::Database::open(settings)
            .map_err(|e| e.to_string())?
            .without_migration();
        let version = crate::pg::migrate::current_version(&db)
            .await
            .map_err(|e| e.to_string())?;
        if version < 2 {
            return Err(format!(
                "the schema is version {version}, without accounts yet (`jes serve` or `jes user add` upgrades it)"
            ));
        }
        let store = accounts::postgres::PgAccounts::new(db);
        let snapshot = store.load().await.map_err(|e| e.to_string())?;
        let mut s = String::new();
        for w in &snapshot.warnings {
            s.push_str(&format!("warning: {w}\n"));
        }
        let at = format!(" in the database {}", crate::pg::url::masked(&settings.url));
        Ok(s + &summary(&snapshot.users, &at))
    };
    match runtime().and_then(|rt| rt.block_on(read)) {
        Ok(s) => s,
        Err(e) => format!("accounts: in the database, which cannot be read: {e}\n"),
    }
}

/// The accounts by address, each with where its mail goes when it is forwarded.
pub(crate) fn summary(users: &Users, at: &str) -> String {
    let mut addresses: Vec<&String> = users.accounts.keys().collect();
    addresses.sort();
    let mut s = format!("accounts: {}{at}\n", addresses.len());
    for address in addresses {
        s.push_str("  ");
        s.push_str(address);
        if let Some(to) = users.forwards.get(address) {
            s.push_str(" -> ");
            s.push_str(&to.join(", "));
        }
        s.push('\n');
    }
    // Forwards for an address that has no account of its own are listed too.
    let mut orphans: Vec<(&String, &Vec<String>)> = users
        .forwards
        .iter()
        .filter(|(a, _)| !users.accounts.contains_key(*a))
        .collect();
    orphans.sort();
    for (address, to) in orphans {
        s.push_str(&format!(
            "  {address} (forward only) -> {}\n",
            to.join(", ")
        ));
    }
    s
}

/// Reads a password from the terminal without echo (rpassword: the prompt and the typing go
/// through /dev/tty, and the terminal's settings are restored when the read ends), or one line
/// from stdin when it is not a terminal (scripts: `echo pw | jes user add a@b`).
fn read_password(prompt: &str) -> Result<String, String> {
    let stdin = std::io::stdin();
    let password = if stdin.is_terminal() {
        rpassword::prompt_password(prompt)
    } else {
        let mut line = String::new();
        stdin.lock().read_line(&mut line).map(|_| line)
    };
    let password = password.map_err(|e| format!("cannot read the password: {e}"))?;
    let password = password.trim_end_matches(['\r', '\n']).to_string();
    if password.is_empty() {
        return Err("the password is empty".into());
    }
    Ok(password)
}
