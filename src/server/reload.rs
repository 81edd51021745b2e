//! Configuration reload: `mail.conf`, `user.conf` and `log.conf` are re-read when they change
//! (checked every two seconds by modification time and size: cheaper and more robust than inotify
//! across editors that replace files) and on SIGHUP, which also reopens the log file. A change is
//! applied only once the files have held still for one poll, so a file caught in the middle of
//! being written (truncated, half copied) is not read. A file that no longer parses leaves the
//! running configuration in place, with an error in the log; a `user.conf` that is missing or
//! blank keeps the running accounts (see `Config::reload`). With `store.url` the accounts are
//! the database's (`server::accounts` watches them) and a reload keeps them.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::watch;

use super::Shared;
use crate::auth::StoredPassword;
use crate::certificate::ServerTls;
use crate::config::{Config, Reloaded};
use crate::logging::LogHandle;

const POLL: Duration = Duration::from_secs(2);
const FILES: [&str; 3] = ["mail.conf", "user.conf", "log.conf"];

pub(super) type Stamp = Vec<Option<(SystemTime, u64)>>;

pub(super) fn stamp(dir: &Path) -> Stamp {
    FILES
        .iter()
        .map(|f| {
            std::fs::metadata(dir.join(f))
                .ok()
                .and_then(|m| Some((m.modified().ok()?, m.len())))
        })
        .collect()
}

/// Replaces plaintext passwords in `user.conf` by salted hashes, keeping comments and order.
/// A read-only file is left alone: plaintext passwords keep working.
pub fn upgrade_passwords(config: &Config) {
    if config.mail.database.is_some() {
        // The accounts are the database's; user.conf is not read, so not rewritten either.
        return;
    }
    let plain = config
        .users
        .accounts
        .values()
        .filter(|p| matches!(p, StoredPassword::Plain(_)))
        .count();
    if plain == 0 {
        return;
    }
    let path = config.dir.join("user.conf");
    match crate::config::users::upgrade_plaintext(&path) {
        Ok(n) => tracing::info!("{}: replaced {n} plaintext passwords by argon2id hashes", path.display()),
        Err(e) => tracing::warn!(
            "{}: {plain} passwords are stored in plaintext and cannot be hashed ({e}); they still work",
            path.display()
        ),
    }
}

fn reload(shared: &Shared, log: &LogHandle, dir: &Path, reopen_log: bool) {
    let running = shared.config();
    match Config::reload(dir, &running.users) {
        Ok(Reloaded {
            mut config,
            warnings,
            kept_accounts,
        }) => {
            warn_restart_keys(&config, &running);
            keep_start_only(&mut config, &running);
            for w in &warnings {
                tracing::warn!("{w}");
            }
            if let Some(why) = &kept_accounts {
                tracing::error!("{why}");
            }
            let log_changed = {
                let old = shared.config();
                old.log.file != config.log.file
                    || old.log.level != config.log.level
                    || old.log.max_file_size != config.log.max_file_size
                    || old.log.max_backups != config.log.max_backups
            };
            if reopen_log || log_changed {
                if let Err(e) = log.apply(&config.log) {
                    tracing::error!(
                        "cannot reopen the log file {}: {e}",
                        config.log.file.display()
                    );
                }
            }
            if kept_accounts.is_none() {
                upgrade_passwords(&config);
            }
            super::apply_history_settings(&config);
            tracing::info!(
                "configuration reloaded: {} accounts, local domains {}",
                config.users.accounts.len(),
                config.mail.domains.join(", ")
            );
            if running.mail.database.is_some() {
                // The accounts stay the database's (the store is chosen at start).
                shared.set_config_keeping_users(config);
            } else {
                shared.set_config(config);
            }
        }
        Err(e) => tracing::error!("configuration not reloaded, the running one stays: {e}"),
    }
}

/// Keys read at start only (the addresses and ports listened on): a changed value is not applied
/// until the next start, which the administrator is told rather than left to guess.
fn warn_restart_keys(config: &Config, running: &Config) {
    for (key, old, new) in crate::config::mail::restart_changes(&running.mail, &config.mail) {
        if key == "store.dir" {
            continue; // keep_start_only says more
        }
        let show = |v: &str| {
            if v.is_empty() {
                "unset".to_string()
            } else {
                format!("{v:?}")
            }
        };
        tracing::warn!(
            "{key} changed from {} to {}: it applies at the next start",
            show(&old),
            show(&new)
        );
    }
}

/// `store.dir` and `node.name` are read at start only. `store.dir`: the mailboxes, the queue and the lock were opened there,
/// and moving half of them (the failed folder, the generated certificate) would split the mail
/// root in two.
fn keep_start_only(config: &mut Config, running: &Config) {
    if config.mail.store_dir != running.mail.store_dir {
        tracing::warn!(
            "store.dir changed to {}: it applies at the next start; the mail root stays {}",
            config.store_dir().display(),
            running.store_dir().display()
        );
        config.mail.store_dir = running.mail.store_dir.clone();
    }
    // `node.name` too (the reload's warning about it was given above): the servers' table, the
    // leases and the history go on naming this server as it started, so the console must too.
    config.mail.node_name = running.mail.node_name.clone();
}

/// Watches the configuration files and SIGHUP until `stop`.
pub async fn watch(
    shared: Arc<Shared>,
    log: LogHandle,
    mut tls: ServerTls,
    dir: PathBuf,
    seen_at_start: Stamp,
    mut stop: watch::Receiver<bool>,
) {
    let mut hup = match signal(SignalKind::hangup()) {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::warn!("SIGHUP will not reload the configuration: {e}");
            None
        }
    };
    // Taken before the server announced itself: a file changed (or removed) from then on is a
    // change, however late this task first runs on a busy machine.
    let mut last = seen_at_start;
    // A change seen at the last poll and not yet applied: applied when the next poll sees the
    // same stamp, i.e. once the files have held still for one poll.
    let mut settling: Option<Stamp> = None;
    let mut ticker = tokio::time::interval(POLL);
    loop {
        let hangup = async {
            match hup.as_mut() {
                Some(h) => h.recv().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = stop.changed() => return,
            _ = hangup => {
                tracing::info!("SIGHUP: reloading the configuration and reopening the log");
                // An administrator's explicit request: applied at once, without settling.
                last = stamp(&dir);
                settling = None;
                reload(&shared, &log, &dir, true);
            }
            _ = ticker.tick() => {
                let now = stamp(&dir);
                if now == last {
                    settling = None;
                } else if settling.as_ref() == Some(&now) {
                    settling = None;
                    reload(&shared, &log, &dir, false);
                    // The password upgrade may have rewritten user.conf; don't reload for that.
                    last = stamp(&dir);
                } else {
                    settling = Some(now);
                }
                match crate::certificate::reload_if_changed(&tls, &shared.config()) {
                    None => {}
                    Some(Ok(new)) => {
                        tracing::info!("TLS certificate reloaded from {}", new.files.certificate.display());
                        shared.set_tls(new.config.clone());
                        tls = new;
                    }
                    Some(Err(e)) => {
                        tracing::error!("TLS certificate not reloaded, the running one stays: {e}");
                        // Don't retry the same broken files every two seconds.
                        tls.stamp = tls.files.stamp();
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_read_at_start_are_told_apart_on_reload() {
        let parse = |text: &str| {
            crate::config::MailConf::parse(Path::new("mail.conf"), text)
                .unwrap()
                .0
        };
        let running = parse("domains=a.test\nsmtpport=2525\n");
        let same = parse("domains=b.test\nsmtpport=2525\nsmtp.messagesize=9\n");
        assert!(crate::config::mail::restart_changes(&running, &same).is_empty());
        let moved = parse("domains=a.test\nsmtpport=2526\nhttp.port=8025\n");
        assert_eq!(
            crate::config::mail::restart_changes(&running, &moved),
            vec![
                ("smtpport", "2525".to_string(), "2526".to_string()),
                ("http.port", "0".to_string(), "8025".to_string()),
            ]
        );
    }

    /// The configuration of folder `etc` with `text` as its mail.conf and no accounts.
    fn config_of(etc: &Path, text: &str) -> Config {
        std::fs::write(etc.join("mail.conf"), text).unwrap();
        std::fs::write(etc.join("user.conf"), "# none\n").unwrap();
        Config::load(etc).unwrap().0
    }

    #[test]
    fn a_new_store_dir_waits_for_the_next_start() {
        let etc = tempfile::tempdir().unwrap();
        let load = |text: &str| config_of(etc.path(), text);
        let running = load("domains=a.test\nstore.dir=/srv/one\n");
        let mut new = load("domains=b.test\nstore.dir=/srv/two\n");
        keep_start_only(&mut new, &running);
        assert_eq!(new.store_dir(), Path::new("/srv/one"));
        assert_eq!(new.mail.domains, vec!["b.test"]);
        let mut same = load("domains=c.test\nstore.dir=/srv/one\n");
        keep_start_only(&mut same, &running);
        assert_eq!(same.queue_dir(), Path::new("/srv/one/smtp"));
    }

    #[test]
    fn a_new_node_name_waits_for_the_next_start() {
        let etc = tempfile::tempdir().unwrap();
        let load = |text: &str| config_of(etc.path(), text);
        let running = load("domains=a.test\nnode.name=mx-a\n");
        let mut new = load("domains=b.test\nnode.name=mx-b\n");
        assert_eq!(
            crate::config::mail::restart_changes(&running.mail, &new.mail),
            vec![("node.name", "mx-a".to_string(), "mx-b".to_string())]
        );
        keep_start_only(&mut new, &running);
        assert_eq!(
            new.mail.node_name, "mx-a",
            "the table and leases still say mx-a"
        );
        assert_eq!(new.mail.domains, vec!["b.test"]);
    }
}
