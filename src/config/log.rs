//! `log.conf`: level, file and rotation.
//!
//! JES's `log.conf` is a log4j configuration. jes has no log4j, but the few things an
//! administrator actually set there (the root level, the file, its size and backups) are read out
//! of the log4j keys so an old file keeps meaning what it meant; every other `log4j.*` key is
//! accepted silently because warning about layouts and patterns nobody can act on is noise. Plain
//! jes keys (`level`, `log.file`, ...) win over log4j ones when both are present.

use std::path::{Path, PathBuf};

use super::properties::{Entry, Properties};
use super::{ConfigError, Warning, LOG_KEYS};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Error,
    Warn,
    Info,
    Debug,
    Trace,
}

impl Level {
    /// A log4j or jes level name, case-insensitive. log4j's FATAL and OFF map to Error, ALL to Trace.
    pub fn parse(s: &str) -> Option<Level> {
        Some(match s.trim().to_ascii_lowercase().as_str() {
            "error" | "fatal" | "off" => Level::Error,
            "warn" | "warning" => Level::Warn,
            "info" => Level::Info,
            "debug" => Level::Debug,
            "trace" | "all" => Level::Trace,
            _ => return None,
        })
    }

    /// The level as `log.conf` spells it (`jes check` prints it so).
    pub fn name(self) -> &'static str {
        match self {
            Level::Error => "error",
            Level::Warn => "warn",
            Level::Info => "info",
            Level::Debug => "debug",
            Level::Trace => "trace",
        }
    }
}

#[derive(Debug, Clone)]
pub struct LogConf {
    pub level: Level,
    /// Default: `<config dir>/../log/jes.log`; `log.file` overrides.
    pub file: PathBuf,
    /// log4j `MaxFileSize` (default 10 MB).
    pub max_file_size: u64,
    /// log4j `MaxBackupIndex` (default 5).
    pub max_backups: u32,
}

/// The folder that holds the configuration folder (`jes/etc` → `jes`), where JES ran and where
/// relative log paths start.
fn install_dir(config_dir: &Path) -> PathBuf {
    match (config_dir.file_name(), config_dir.parent()) {
        (Some(_), Some(p)) if p.as_os_str().is_empty() => PathBuf::from("."),
        (Some(_), Some(p)) => p.to_path_buf(),
        _ => config_dir.join(".."),
    }
}

/// `10MB`, `512KB`, `1GB`, `1048576` (bytes), case-insensitive, as log4j's `MaxFileSize`.
pub fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim().to_ascii_uppercase();
    let (num, unit) = match s.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => (&s[..i], s[i..].trim()),
        None => (s.as_str(), ""),
    };
    let n: u64 = num.parse().ok()?;
    let unit: u64 = match unit {
        "" | "B" => 1,
        "KB" | "K" => 1 << 10,
        "MB" | "M" => 1 << 20,
        "GB" | "G" => 1 << 30,
        _ => return None,
    };
    n.checked_mul(unit)
}

impl LogConf {
    /// The defaults for a configuration folder: info, `<dir>/../log/jes.log`, 10 MB, 5 backups.
    pub fn default_for(config_dir: &Path) -> LogConf {
        LogConf {
            level: Level::Info,
            file: install_dir(config_dir).join("log").join("jes.log"),
            max_file_size: 10 << 20,
            max_backups: 5,
        }
    }

    pub fn load(path: &Path, config_dir: &Path) -> Result<(LogConf, Vec<Warning>), ConfigError> {
        match Properties::load(path)? {
            None => Ok((LogConf::default_for(config_dir), Vec::new())),
            Some((props, warnings)) => LogConf::from_properties(path, config_dir, &props, warnings),
        }
    }

    pub fn from_properties(
        path: &Path,
        config_dir: &Path,
        props: &Properties,
        mut warnings: Vec<Warning>,
    ) -> Result<(LogConf, Vec<Warning>), ConfigError> {
        let mut conf = LogConf::default_for(config_dir);
        conf.read_log4j(path, config_dir, props)?;
        // The plain keys come after, so they win over JES's log4j lines.
        for e in &props.entries {
            if !conf.read_plain_key(path, config_dir, e)? {
                warnings.push(super::unknown_key_warning(
                    path,
                    e.line,
                    &e.key,
                    LOG_KEYS.iter().map(|k| k.name),
                ));
            }
        }
        Ok((conf, warnings))
    }

    /// JES's log4j lines: the root logger's level, and the file and rotation of the first file
    /// appender among its appenders.
    fn read_log4j(
        &mut self,
        path: &Path,
        config_dir: &Path,
        props: &Properties,
    ) -> Result<(), ConfigError> {
        let err = |e: &Entry, reason: String| value_error(path, e, reason);
        let mut appenders: Vec<String> = Vec::new();
        for root in ["log4j.rootLogger", "log4j.rootCategory"] {
            if let Some(e) = props.get(root) {
                let mut parts = e.value.split(',').map(str::trim);
                let level = parts.next().unwrap_or("");
                if !level.is_empty() {
                    self.level = Level::parse(level)
                        .ok_or_else(|| err(e, format!("{level:?} is not a log level")))?;
                }
                appenders.extend(parts.filter(|s| !s.is_empty()).map(str::to_string));
            }
        }
        let appender_key = |suffix: &str| {
            appenders
                .iter()
                .find_map(|a| props.get(&format!("log4j.appender.{a}.{suffix}")))
        };
        if let Some(e) = appender_key("File") {
            if !e.value.trim().is_empty() {
                self.file = resolve(config_dir, e.value.trim());
            }
        }
        if let Some(e) = appender_key("MaxFileSize") {
            self.max_file_size = parse_size(&e.value)
                .ok_or_else(|| err(e, format!("{:?} is not a size like 10MB", e.value)))?;
        }
        if let Some(e) = appender_key("MaxBackupIndex") {
            self.max_backups = e
                .value
                .trim()
                .parse()
                .map_err(|_| err(e, format!("{:?} is not a whole number", e.value)))?;
        }
        Ok(())
    }

    /// One of jes's own keys (`level`, `log.*`); false for a key that is neither one of them
    /// nor a log4j line (the caller warns).
    fn read_plain_key(
        &mut self,
        path: &Path,
        config_dir: &Path,
        e: &Entry,
    ) -> Result<bool, ConfigError> {
        let err = |reason: String| value_error(path, e, reason);
        let v = e.value.trim();
        match e.key.as_str() {
            "level" => {
                self.level = Level::parse(v).ok_or_else(|| {
                    err(format!(
                        "{v:?} is not a log level (error, warn, info, debug, trace)"
                    ))
                })?
            }
            "log.file" if !v.is_empty() => self.file = resolve(config_dir, v),
            "log.file" => {}
            "log.maxfilesize" => {
                self.max_file_size =
                    parse_size(v).ok_or_else(|| err(format!("{v:?} is not a size like 10MB")))?
            }
            "log.maxbackups" => {
                self.max_backups = v
                    .parse()
                    .map_err(|_| err(format!("{v:?} is not a whole number")))?
            }
            k if k.starts_with("log4j.") => {}
            _ => return Ok(false),
        }
        Ok(true)
    }
}

fn value_error(path: &Path, e: &Entry, reason: String) -> ConfigError {
    ConfigError::Value {
        path: path.to_path_buf(),
        line: e.line,
        key: e.key.clone(),
        reason,
    }
}

/// A relative log file is beside the configuration folder's parent, as JES had it.
fn resolve(config_dir: &Path, v: &str) -> PathBuf {
    let p = PathBuf::from(v);
    if p.is_absolute() {
        p
    } else {
        install_dir(config_dir).join(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<(LogConf, Vec<Warning>), ConfigError> {
        let path = Path::new("/jes/etc/log.conf");
        let (props, w) = Properties::parse(path, text);
        LogConf::from_properties(path, Path::new("/jes/etc"), &props, w)
    }

    #[test]
    fn level_names_are_log_conf_spelling() {
        for level in [
            Level::Error,
            Level::Warn,
            Level::Info,
            Level::Debug,
            Level::Trace,
        ] {
            assert_eq!(Level::parse(level.name()), Some(level));
            assert_eq!(level.name(), level.name().to_ascii_lowercase());
        }
    }

    #[test]
    fn missing_file_gives_defaults_beside_etc() {
        let dir = tempfile::tempdir().unwrap();
        let etc = dir.path().join("etc");
        let (c, w) = LogConf::load(&etc.join("log.conf"), &etc).unwrap();
        assert!(w.is_empty());
        assert_eq!(c.level, Level::Info);
        assert_eq!(c.file, dir.path().join("log/jes.log"));
        assert_eq!((c.max_file_size, c.max_backups), (10 << 20, 5));
        assert_eq!(
            LogConf::default_for(Path::new("etc")).file,
            Path::new("./log/jes.log")
        );
        assert_eq!(
            LogConf::default_for(Path::new(".")).file,
            Path::new("./../log/jes.log")
        );
    }

    #[test]
    fn log4j_jes_style() {
        let (c, w) = parse(
            "log4j.rootCategory=debug, A1\nlog4j.appender.A1=org.apache.log4j.RollingFileAppender\n\
             log4j.appender.A1.File=log/mail.log\nlog4j.appender.A1.MaxFileSize=512KB\n\
             log4j.appender.A1.MaxBackupIndex=2\nlog4j.appender.A1.layout=org.apache.log4j.PatternLayout\n\
             log4j.appender.A1.layout.ConversionPattern=%d %-5p %m%n\n",
        )
        .unwrap();
        assert!(w.is_empty(), "{w:?}");
        assert_eq!(c.level, Level::Debug);
        assert_eq!(c.file, Path::new("/jes/log/mail.log"));
        assert_eq!((c.max_file_size, c.max_backups), (512 << 10, 2));
    }

    #[test]
    fn log4j_root_logger_and_levels() {
        for (v, want) in [
            ("INFO, R", Level::Info),
            ("FATAL", Level::Error),
            ("off,R", Level::Error),
            ("ALL", Level::Trace),
            ("warn", Level::Warn),
        ] {
            let (c, _) = parse(&format!("log4j.rootLogger={v}\n")).unwrap();
            assert_eq!(c.level, want, "{v}");
        }
        // An appender not attached to the root logger is ignored.
        let (c, _) = parse("log4j.rootLogger=INFO, R\nlog4j.appender.X.File=/tmp/x.log\nlog4j.appender.R.MaxFileSize=1GB\n").unwrap();
        assert_eq!(c.file, Path::new("/jes/log/jes.log"));
        assert_eq!(c.max_file_size, 1 << 30);
    }

    #[test]
    fn plain_keys_win_and_unknown_keys_warn() {
        let (c, w) = parse(
            "log4j.rootLogger=ERROR\nlevel=trace\nlog.file=/var/log/jes.log\nlog.maxfilesize=2MB\nlog.maxbackups=9\nlevle=debug\n",
        )
        .unwrap();
        assert_eq!(c.level, Level::Trace);
        assert_eq!(c.file, Path::new("/var/log/jes.log"));
        assert_eq!((c.max_file_size, c.max_backups), (2 << 20, 9));
        assert_eq!(w.len(), 1);
        assert_eq!(
            w[0].to_string(),
            "/jes/etc/log.conf:6: unknown key 'levle' ignored; did you mean 'level'?"
        );
    }

    #[test]
    fn bad_values() {
        let e = parse("log4j.rootLogger=LOUD, R\n")
            .err()
            .map(|e| e.to_string());
        assert_eq!(
            e.as_deref(),
            Some(r#"/jes/etc/log.conf:1: key 'log4j.rootLogger': "LOUD" is not a log level"#)
        );
        let e = parse("a=1\nlog.maxfilesize=10XB\n")
            .err()
            .map(|e| e.to_string());
        assert_eq!(
            e.as_deref(),
            Some(r#"/jes/etc/log.conf:2: key 'log.maxfilesize': "10XB" is not a size like 10MB"#)
        );
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("10MB"), Some(10 << 20));
        assert_eq!(parse_size("10 mb"), Some(10 << 20));
        assert_eq!(parse_size("100"), Some(100));
        assert_eq!(parse_size("MB"), None);
        assert_eq!(parse_size("99999999999GB"), None);
    }
}
