//! `log.conf`: level, file and rotation. (Skeleton: the config helper fills this in.)

use std::path::{Path, PathBuf};

use super::{ConfigError, Warning};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Error,
    Warn,
    Info,
    Debug,
    Trace,
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

impl LogConf {
    pub fn load(path: &Path, config_dir: &Path) -> Result<(LogConf, Vec<Warning>), ConfigError> {
        let _ = (path, config_dir);
        todo!()
    }
}
