//! Configuration: JES's `mail.conf`, `user.conf` and `log.conf` read into typed settings.
//!
//! This is the only module that reads configuration files. Everything else receives a `Config`
//! (behind an `Arc`, swapped whole on reload). Every JES 1.6.1 key is honoured with JES's default;
//! new keys keep JES's style. A bad value stops the load with the file, line and key named;
//! unknown keys become warnings.
//!
//! Sub-modules: `properties` (Java .properties syntax with line numbers), `mail` (mail.conf),
//! `users` (user.conf: accounts, forwards, in-place rewriting that keeps comments and order),
//! `log` (log.conf: level, file, rotation), `http` (the `http.*` keys of mail.conf), `sample` (what `jes init` writes).

mod dkim;
pub mod hostname;
pub mod http;
pub mod ip_pattern;
pub mod keys;
pub mod log;
pub mod mail;
#[cfg(test)]
mod prop_tests;
pub mod properties;
mod reader;
pub mod sample;
pub mod smart_host;
pub mod users;
pub mod webhook;

use std::path::{Path, PathBuf};

pub use http::HttpConf;
pub use keys::{lookup, Applies, KeyInfo, LOG_KEYS, MAIL_KEYS, USER_KEYS};
pub use log::{Level, LogConf};
pub use mail::{BareLf, ClearText, DeliveryTls, IpPattern, MailConf, SmartHost};
pub use users::{Users, UsersFile};

/// Levenshtein distance, case-insensitive (for "did you mean").
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.to_lowercase().chars().collect();
    let b: Vec<char> = b.to_lowercase().chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != cb);
            cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

/// The known key closest to `unknown`, if within edit distance 2. Keys whose lengths differ by
/// more than 2 are skipped before the distance is computed: the distance is at least the length
/// difference, and a megabyte-long line would otherwise cost seconds per known key.
pub fn suggest<'a>(unknown: &str, known: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let n = unknown.chars().count();
    known
        .into_iter()
        .filter(|k| k.chars().count().abs_diff(n) <= 2)
        .map(|k| (edit_distance(unknown, k), k))
        .filter(|(d, _)| *d <= 2)
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

/// The warning for an unknown key, with a suggestion when one is close.
pub(crate) fn unknown_key_warning<'a>(
    path: &Path,
    line: usize,
    key: &str,
    known: impl IntoIterator<Item = &'a str>,
) -> Warning {
    let message = match suggest(key, known) {
        Some(k) => format!("unknown key '{key}' ignored; did you mean '{k}'?"),
        None => format!("unknown key '{key}' ignored"),
    };
    Warning {
        path: path.to_path_buf(),
        line,
        message,
    }
}

/// A configuration error that names where it is.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A file could not be read (missing `mail.conf`, permissions, ...).
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A value is wrong: `mail.conf:12: key 'smtpport': "abc" is not a port number (1-65535)`.
    /// Line 0 is a value with no line: an account row of the database store.
    #[error("{}{}: key '{key}': {reason}", path.display(), at_line(*line))]
    Value {
        path: PathBuf,
        line: usize,
        key: String,
        reason: String,
    },
    /// A required key is absent, e.g. `domains`.
    #[error("{}: required key '{key}' is missing: {reason}", path.display())]
    Missing {
        path: PathBuf,
        key: String,
        reason: String,
    },
}

/// `:LINE`, or nothing for line 0 (a value that comes from no file line).
fn at_line(line: usize) -> String {
    match line {
        0 => String::new(),
        line => format!(":{line}"),
    }
}

/// Something worth telling the administrator that does not stop the server (unknown key, ...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    pub path: PathBuf,
    pub line: usize,
    pub message: String,
}

impl std::fmt::Display for Warning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.line {
            // About the file as a whole (missing, empty), not one of its lines.
            0 => write!(f, "{}: {}", self.path.display(), self.message),
            line => write!(f, "{}:{line}: {}", self.path.display(), self.message),
        }
    }
}

/// The warning for a `user.conf` beside `store.url` (its path goes before it).
pub const USER_CONF_IGNORED: &str = "ignored: with store.url the accounts, forwards and user properties are in the database (manage them with `jes user ... --dir DIR`)";

/// What a reload read: the new configuration, its warnings, and, when `user.conf` could not be
/// used and the running accounts were kept instead, why (for an ERROR line).
#[derive(Debug)]
pub struct Reloaded {
    pub config: Config,
    pub warnings: Vec<Warning>,
    pub kept_accounts: Option<String>,
}

/// Everything the server runs on.
#[derive(Debug, Clone)]
pub struct Config {
    /// The configuration directory; also the mail root (JES's `Mail DIR`) unless `store.dir`
    /// says otherwise (see `store_dir`).
    pub dir: PathBuf,
    pub mail: MailConf,
    pub users: Users,
    pub log: LogConf,
}

impl Config {
    /// Reads `mail.conf`, `user.conf` and `log.conf` from `dir`. `user.conf` and `log.conf` may be
    /// absent (no accounts, default logging); `mail.conf` must exist and name `domains`.
    /// A missing or blank `user.conf` is a warning naming it: the server starts, with no accounts.
    pub fn load(dir: &Path) -> Result<(Config, Vec<Warning>), ConfigError> {
        let r = Config::read(dir, None)?;
        Ok((r.config, r.warnings))
    }

    /// Reads the files again for a running server whose accounts are `running`. A `user.conf`
    /// that is missing, unreadable or blank keeps `running` (accounts and forwards) and says so
    /// in `kept_accounts`; the other files apply as usual. Such a file is far more often a
    /// moment of an edit, a `mv` by mistake or a full disk than a wish to refuse all local mail,
    /// and taking it at its word bounces every message; "no accounts" is written as a file with
    /// a comment and no account, which applies. A `user.conf` with an error keeps the running
    /// configuration whole, as an error in any file does.
    pub fn reload(dir: &Path, running: &Users) -> Result<Reloaded, ConfigError> {
        Config::read(dir, Some(running))
    }

    fn read(dir: &Path, running: Option<&Users>) -> Result<Reloaded, ConfigError> {
        let (mail, mut warnings) = MailConf::load(&dir.join("mail.conf"))?;
        let users_path = dir.join("user.conf");
        if mail.database.is_some() {
            return Config::with_database_accounts(dir, mail, warnings, running);
        }
        // An error in the file stops the load either way; only "not there" differs.
        let found = match Users::read(&users_path) {
            Ok(found) => Ok(found),
            Err(ConfigError::Io { source, .. }) => Err(source),
            Err(e) => return Err(e),
        };
        let (users, kept_accounts) = match (found, running) {
            (Ok(UsersFile::Read(users, w)), _) => {
                warnings.extend(w);
                (users, None)
            }
            (Err(source), None) => {
                return Err(ConfigError::Io {
                    path: users_path,
                    source,
                })
            }
            (Ok(found), None) => {
                let what = match found {
                    UsersFile::Missing => "does not exist",
                    _ => "is empty",
                };
                warnings.push(Warning {
                    path: users_path.clone(),
                    line: 0,
                    message: format!("{what}: no accounts, so mail for the local domains is refused (add one with `jes user add ADDRESS`)"),
                });
                (Users::default(), None)
            }
            (found, Some(running)) => {
                let what = match found {
                    Ok(UsersFile::Missing) => "does not exist".to_string(),
                    Ok(_) => {
                        "is empty (to remove every account, leave a comment line in it)".to_string()
                    }
                    Err(e) => format!("cannot be read ({e})"),
                };
                let why = format!(
                    "{} {what}: keeping the {} running accounts",
                    users_path.display(),
                    running.accounts.len()
                );
                (running.clone(), Some(why))
            }
        };
        let (log, log_warnings) = LogConf::load(&dir.join("log.conf"), dir)?;
        warnings.extend(log_warnings);
        Ok(Reloaded {
            config: Config {
                dir: dir.to_path_buf(),
                mail,
                users,
                log,
            },
            warnings,
            kept_accounts,
        })
    }

    /// With `store.url`, the accounts and everything else `user.conf` held are in the database
    /// (`crate::accounts`), shared by every server on it: the server fills `users` from there
    /// (empty here; a reload keeps the running ones, since the database, not this folder,
    /// decides them). A `user.conf` beside it is not read at all, and said so: an administrator
    /// editing it would otherwise wonder why nothing changes.
    fn with_database_accounts(
        dir: &Path,
        mail: MailConf,
        mut warnings: Vec<Warning>,
        running: Option<&Users>,
    ) -> Result<Reloaded, ConfigError> {
        let users_path = dir.join("user.conf");
        if users_path.symlink_metadata().is_ok() {
            warnings.push(Warning {
                path: users_path,
                line: 0,
                message: USER_CONF_IGNORED.to_string(),
            });
        }
        let (log, log_warnings) = LogConf::load(&dir.join("log.conf"), dir)?;
        warnings.extend(log_warnings);
        Ok(Reloaded {
            config: Config {
                dir: dir.to_path_buf(),
                mail,
                users: running.cloned().unwrap_or_default(),
                log,
            },
            warnings,
            kept_accounts: None,
        })
    }

    /// The mail root: `store.dir`, or the configuration directory (the JES layout). Everything
    /// the server writes but its log lives here, so that the configuration may be read-only.
    pub fn store_dir(&self) -> PathBuf {
        self.mail
            .store_dir
            .clone()
            .unwrap_or_else(|| self.dir.clone())
    }

    pub fn users_dir(&self) -> PathBuf {
        self.store_dir().join("users")
    }

    pub fn queue_dir(&self) -> PathBuf {
        self.store_dir().join("smtp")
    }

    pub fn failed_dir(&self) -> PathBuf {
        self.store_dir().join("failed")
    }

    /// Where the generated self-signed certificate and key go (`tls/` in the store).
    pub fn generated_tls_dir(&self) -> PathBuf {
        self.store_dir().join("tls")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture_dir() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/jes-1.6.1/etc")
    }

    /// `store.dir` moves every data folder, the generated certificate included; unset, they stay
    /// in the configuration folder (the JES layout); relative, it is relative to that folder.
    #[test]
    fn store_dir_moves_the_data_folders() {
        let etc = tempfile::tempdir().unwrap();
        let dir = etc.path();
        let load = |extra: &str| {
            std::fs::write(dir.join("mail.conf"), format!("domains=d.test\n{extra}")).unwrap();
            std::fs::write(dir.join("user.conf"), "# none\n").unwrap();
            Config::load(dir).unwrap().0
        };
        let c = load("");
        assert_eq!(c.store_dir(), dir);
        assert_eq!(c.users_dir(), dir.join("users"));
        let c = load("store.dir=/var/lib/jes\n");
        assert_eq!(c.store_dir(), Path::new("/var/lib/jes"));
        assert_eq!(c.users_dir(), Path::new("/var/lib/jes/users"));
        assert_eq!(c.queue_dir(), Path::new("/var/lib/jes/smtp"));
        assert_eq!(c.failed_dir(), Path::new("/var/lib/jes/failed"));
        let tls = crate::certificate::TlsFiles::for_config(&c);
        assert_eq!(tls.key, Path::new("/var/lib/jes/tls/selfsigned-key.pem"));
        assert_eq!(
            tls.certificate,
            Path::new("/var/lib/jes/tls/selfsigned-cert.pem")
        );
        let c = load("store.dir=data\n");
        assert_eq!(c.queue_dir(), dir.join("data/smtp"));
    }

    #[test]
    fn jes_fixture_loads() {
        let (config, warnings) = Config::load(&fixture_dir()).unwrap();
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(config.mail.smtp_port, 25);
        assert_eq!(config.mail.domains, vec!["localhost", "127.0.0.1"]);
        assert_eq!(
            config.mail.delivery_interval,
            std::time::Duration::from_secs(2)
        );
        assert!(config.mail.relay_ip_allowed("127.0.0.1".parse().unwrap()));
        assert_eq!(config.mail.smart_hosts[0].host, "smtp.example.com");
        assert!(config.users.exists("TrackStudio@127.0.0.1"));
        assert!(config
            .users
            .password("trackstudio@127.0.0.1")
            .unwrap()
            .verify("secret"));
        assert!(config
            .users
            .password("analyst@localhost")
            .unwrap()
            .verify("password"));
        assert!(!config
            .users
            .password("analyst@localhost")
            .unwrap()
            .verify("secret"));
        assert_eq!(
            config.users.forwards("analyst@localhost"),
            Some(
                &[
                    "analyst@localhost".to_string(),
                    "boss@remote.test".to_string()
                ][..]
            )
        );
        // No log.conf in the fixture: defaults, the log folder beside etc/.
        assert_eq!(config.log.level, Level::Info);
        assert!(
            config.log.file.ends_with("log/jes.log"),
            "{:?}",
            config.log.file
        );
    }

    #[test]
    fn missing_mail_conf_is_an_io_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        match Config::load(dir.path()) {
            Err(e @ ConfigError::Io { .. }) => assert!(e.to_string().contains("mail.conf"), "{e}"),
            other => panic!("{other:?}"),
        }
        std::fs::write(dir.path().join("mail.conf"), "smtpport=25\n").unwrap();
        assert!(matches!(
            Config::load(dir.path()),
            Err(ConfigError::Missing { ref key, .. }) if key == "domains"
        ));
    }

    #[test]
    fn byte_order_marks_are_skipped_in_all_three_files() {
        let dir = tempfile::tempdir().unwrap();
        let bom = "\u{feff}";
        std::fs::write(
            dir.path().join("mail.conf"),
            format!("{bom}# mail\ndomains=localhost\n"),
        )
        .unwrap();
        std::fs::write(
            dir.path().join("user.conf"),
            format!("{bom}# users\nuser.a@localhost=pw\n"),
        )
        .unwrap();
        std::fs::write(
            dir.path().join("log.conf"),
            format!("{bom}# log\nlevel=debug\n"),
        )
        .unwrap();
        let (config, warnings) = Config::load(dir.path()).unwrap();
        assert!(warnings.is_empty(), "{warnings:?}");
        assert!(config.users.exists("a@localhost"));
        assert_eq!(config.log.level, Level::Debug);
        // The mark before a key: the key is read without it.
        std::fs::write(
            dir.path().join("mail.conf"),
            format!("{bom}domains=x.test\n"),
        )
        .unwrap();
        let (config, warnings) = Config::load(dir.path()).unwrap();
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(config.mail.domains, vec!["x.test"]);
    }

    #[test]
    fn a_missing_user_conf_at_start_is_a_warning_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("mail.conf"), "domains=localhost\n").unwrap();
        let (config, warnings) = Config::load(dir.path()).unwrap();
        assert!(config.users.accounts.is_empty());
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        let shown = warnings[0].to_string();
        let path = dir.path().join("user.conf");
        assert!(
            shown.starts_with(&format!("{}: does not exist", path.display())),
            "{shown}"
        );
        std::fs::write(&path, "").unwrap();
        let (_, warnings) = Config::load(dir.path()).unwrap();
        assert!(warnings[0].to_string().contains("is empty"), "{warnings:?}");
    }

    #[test]
    fn a_reload_keeps_the_running_accounts_when_user_conf_is_missing_or_blank() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("mail.conf"), "domains=localhost\n").unwrap();
        let path = dir.path().join("user.conf");
        std::fs::write(&path, "user.a@localhost=pw\n").unwrap();
        let (running, _) = Config::load(dir.path()).unwrap();
        std::fs::write(
            dir.path().join("mail.conf"),
            "domains=localhost,other.test\n",
        )
        .unwrap();
        for (state, expect) in [
            (None, "does not exist"),
            (Some(&b""[..]), "is empty"),
            (Some(b"\xEF\xBB\xBF \n"), "is empty"),
        ] {
            let _ = std::fs::remove_file(&path);
            if let Some(bytes) = state {
                std::fs::write(&path, bytes).unwrap();
            }
            let r = Config::reload(dir.path(), &running.users).unwrap();
            assert!(r.config.users.exists("a@localhost"), "{expect}");
            let why = r.kept_accounts.expect("says why");
            assert!(
                why.contains(expect) && why.contains("keeping the 1 running accounts"),
                "{why}"
            );
            // The other files still apply.
            assert_eq!(r.config.mail.domains, vec!["localhost", "other.test"]);
        }
        // A comment and no account: "no accounts", applied.
        std::fs::write(&path, "# nobody\n").unwrap();
        let r = Config::reload(dir.path(), &running.users).unwrap();
        assert!(r.config.users.accounts.is_empty() && r.kept_accounts.is_none());
        // An error in the file fails the reload: the caller keeps everything.
        std::fs::write(&path, "user.a@localhost=\n").unwrap();
        assert!(matches!(
            Config::reload(dir.path(), &running.users),
            Err(ConfigError::Value { line: 1, .. })
        ));
        // Unreadable (a folder in its place; permissions do not stop root): kept too.
        std::fs::remove_file(&path).unwrap();
        std::fs::create_dir(&path).unwrap();
        let r = Config::reload(dir.path(), &running.users).unwrap();
        assert!(r.config.users.exists("a@localhost"));
        assert!(r.kept_accounts.unwrap().contains("cannot be read"));
        assert!(matches!(
            Config::load(dir.path()),
            Err(ConfigError::Io { .. })
        ));
    }

    /// With store.url, user.conf is not read (a broken one does not stop the load), its presence
    /// is a warning naming it, and a reload keeps the running (the database's) accounts.
    #[test]
    fn user_conf_beside_store_url_is_ignored_with_a_warning() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("mail.conf"),
            "domains=localhost\nstore.url=postgresql://jes@127.0.0.1:1/jes\n",
        )
        .unwrap();
        let path = dir.path().join("user.conf");
        std::fs::write(&path, "user.a@localhost=\n").unwrap();
        let (config, warnings) = Config::load(dir.path()).unwrap();
        assert!(config.users.accounts.is_empty());
        let shown: Vec<String> = warnings.iter().map(ToString::to_string).collect();
        assert_eq!(
            shown,
            vec![format!("{}: {USER_CONF_IGNORED}", path.display())]
        );
        let (running, _) = Users::parse(&path, "user.db@localhost=pw\n").unwrap();
        let r = Config::reload(dir.path(), &running).unwrap();
        assert!(r.config.users.exists("db@localhost") && r.kept_accounts.is_none());
        assert!(!r.config.users.exists("a@localhost"));
        // Without user.conf: no warning at all.
        std::fs::remove_file(&path).unwrap();
        let (_, warnings) = Config::load(dir.path()).unwrap();
        assert!(warnings.is_empty(), "{warnings:?}");
    }

    #[test]
    fn suggestions() {
        let names = MAIL_KEYS.iter().map(|k| k.name);
        assert_eq!(suggest("smtport", names.clone()), Some("smtpport"));
        assert_eq!(suggest("SMTPPORT", names.clone()), Some("smtpport"));
        assert_eq!(
            suggest("allowcleartext", names.clone()),
            Some("allowClearText")
        );
        assert_eq!(suggest("completely.different", names), None);
    }

    #[test]
    fn key_names_are_unique() {
        let mut names: Vec<_> = MAIL_KEYS.iter().map(|k| k.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), MAIL_KEYS.len());
    }
}
