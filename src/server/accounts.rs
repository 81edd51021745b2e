//! The database's accounts on a running server (`store.url`): read at start, then watched.
//!
//! Design. Every server on the database polls the accounts' revision counter every two
//! seconds (one tiny query) and also listens for its `NOTIFY`, so a change made by `jes user`
//! on any machine reaches every server at once, or within the poll when a notification is lost
//! (listening connection reopened, database restarted). A moved revision reloads all accounts in
//! one snapshot and swaps them into the configuration (`Shared::set_users`), as a reload of
//! `user.conf` would. When the database cannot be read, or holds a value the reader refuses, the
//! last accounts known stay in use and the problem is logged once, not every poll: dropping to
//! no accounts would bounce every local message while the database is away.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::accounts::{AccountStore, Snapshot};
use crate::shared::Shared;

/// How often the revision is polled (the notification is usually faster).
const POLL: Duration = Duration::from_secs(2);

/// Logs what a load found, for the start and for each change.
pub(super) fn report(store: &dyn AccountStore, snapshot: &Snapshot, what: &str) {
    for w in &snapshot.warnings {
        tracing::warn!("{w}");
    }
    let n = snapshot.users.accounts.len();
    if n == 0 {
        tracing::warn!(
            "{} holds no accounts: mail for the local domains is refused (add one with `jes user add ADDRESS --dir DIR`)",
            store.location()
        );
    }
    tracing::info!(
        "accounts {what} from {} (revision {}): {n} accounts",
        store.location(),
        snapshot.revision
    );
}

/// Watches the accounts' revision until `stop`, swapping new accounts into `shared`.
pub(super) async fn watch(
    shared: Arc<Shared>,
    store: Arc<dyn AccountStore>,
    mut seen: i64,
    mut stop: watch::Receiver<bool>,
) {
    let mut notifications = store.notifications();
    let mut ticker = tokio::time::interval(POLL);
    // Whether the last poll failed: a database that stays away is told about once (its
    // errors change as pooled connections die and new ones are refused).
    let mut failing = false;
    loop {
        let notified = async {
            match notifications.as_mut() {
                Some(rx) => rx.recv().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = stop.changed() => return,
            _ = ticker.tick() => {}
            note = notified => {
                if note.is_none() {
                    notifications = None;
                }
            }
        }
        let result = match store.revision().await {
            Ok(revision) if revision == seen => Ok(None),
            Ok(_) => store.load().await.map(Some),
            Err(e) => Err(e),
        };
        match result {
            Ok(None) => {}
            Ok(Some(snapshot)) => {
                seen = snapshot.revision;
                report(store.as_ref(), &snapshot, "changed");
                shared.set_users(snapshot.users);
                shared.set_accounts_unknown(false);
            }
            Err(e) => {
                if failing {
                    tracing::debug!("the accounts are still unreadable: {e}");
                } else {
                    tracing::error!(
                        "cannot read the accounts ({e}); the {} accounts known stay in use",
                        shared.config().users.accounts.len()
                    );
                    failing = true;
                }
                continue;
            }
        }
        if std::mem::take(&mut failing) {
            tracing::info!("the accounts can be read again from {}", store.location());
        }
    }
}
