//! Configuration: JES's `mail.conf`, `user.conf` and `log.conf` read into typed settings.
//!
//! This is the only module that reads configuration files. Everything else receives a `Config`
//! (behind an `Arc`, swapped whole on reload). Every JES 1.6.1 key is honoured with JES's default;
//! new keys keep JES's style. A bad value stops the load with the file, line and key named;
//! unknown keys become warnings.
//!
//! Sub-modules: `properties` (Java .properties syntax with line numbers), `mail` (mail.conf),
//! `users` (user.conf: accounts, forwards, in-place rewriting that keeps comments and order),
//! `log` (log.conf: level, file, rotation), `sample` (what `jes init` writes).

pub mod log;
pub mod mail;
pub mod properties;
pub mod sample;
pub mod users;

use std::path::{Path, PathBuf};

pub use log::LogConf;
pub use mail::{IpPattern, MailConf, SmartHost};
pub use users::Users;

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
    #[error("{}:{line}: key '{key}': {reason}", path.display())]
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

/// Something worth telling the administrator that does not stop the server (unknown key, ...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    pub path: PathBuf,
    pub line: usize,
    pub message: String,
}

impl std::fmt::Display for Warning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}: {}", self.path.display(), self.line, self.message)
    }
}

/// Everything the server runs on.
#[derive(Debug, Clone)]
pub struct Config {
    /// The configuration directory, which is also the mail root (JES's `Mail DIR`).
    pub dir: PathBuf,
    pub mail: MailConf,
    pub users: Users,
    pub log: LogConf,
}

impl Config {
    /// Reads `mail.conf`, `user.conf` and `log.conf` from `dir`. `user.conf` and `log.conf` may be
    /// absent (no accounts, default logging); `mail.conf` must exist and name `domains`.
    pub fn load(dir: &Path) -> Result<(Config, Vec<Warning>), ConfigError> {
        let (mail, mut warnings) = MailConf::load(&dir.join("mail.conf"))?;
        let (users, user_warnings) = Users::load(&dir.join("user.conf"))?;
        warnings.extend(user_warnings);
        let (log, log_warnings) = LogConf::load(&dir.join("log.conf"), dir)?;
        warnings.extend(log_warnings);
        Ok((
            Config {
                dir: dir.to_path_buf(),
                mail,
                users,
                log,
            },
            warnings,
        ))
    }

    pub fn users_dir(&self) -> PathBuf {
        self.dir.join("users")
    }

    pub fn queue_dir(&self) -> PathBuf {
        self.dir.join("smtp")
    }

    pub fn failed_dir(&self) -> PathBuf {
        self.dir.join("failed")
    }
}
