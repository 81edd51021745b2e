//! The log file `log/jes.log`, rotated by size as log4j's `RollingFileAppender` did.
//!
//! tracing-appender's rolling writer rotates by time and renames the live file, so we keep our own
//! small writer: the live file is always `jes.log`; when it passes `max_file_size`, `jes.log.N-1`
//! becomes `jes.log.N` down to `jes.log` becoming `jes.log.1`, and a fresh `jes.log` is opened.
//! `reopen` (SIGHUP) lets an external logrotate move the file away. The level lives in a reload
//! handle so that a changed `log.conf` takes effect without a restart.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{filter::LevelFilter, reload, Layer};

use crate::config::log::Level;
use crate::config::LogConf;

struct RotatingState {
    path: PathBuf,
    file: Option<File>,
    written: u64,
    max_file_size: u64,
    max_backups: u32,
}

impl RotatingState {
    fn open(&mut self) -> io::Result<()> {
        if let Some(parent) = self.path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)?;
        self.written = file.metadata().map(|m| m.len()).unwrap_or(0);
        self.file = Some(file);
        Ok(())
    }

    fn rotate(&mut self) -> io::Result<()> {
        self.file = None;
        if self.max_backups == 0 {
            std::fs::remove_file(&self.path).or_else(ignore_not_found)?;
        } else {
            for n in (1..self.max_backups).rev() {
                let from = backup_path(&self.path, n);
                if from.exists() {
                    std::fs::rename(&from, backup_path(&self.path, n + 1))?;
                }
            }
            std::fs::rename(&self.path, backup_path(&self.path, 1)).or_else(ignore_not_found)?;
        }
        self.open()
    }

    fn write_record(&mut self, buf: &[u8]) -> io::Result<()> {
        if self.file.is_none() {
            self.open()?;
        }
        if self.max_file_size > 0
            && self.written > 0
            && self.written + buf.len() as u64 > self.max_file_size
        {
            self.rotate()?;
        }
        if let Some(file) = self.file.as_mut() {
            file.write_all(buf)?;
            self.written += buf.len() as u64;
        }
        Ok(())
    }
}

fn ignore_not_found(e: io::Error) -> io::Result<()> {
    if e.kind() == io::ErrorKind::NotFound {
        Ok(())
    } else {
        Err(e)
    }
}

fn backup_path(path: &Path, n: u32) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".{n}"));
    PathBuf::from(name)
}

/// A cloneable handle on the log file; also the `MakeWriter` for tracing.
#[derive(Clone)]
pub struct LogFile {
    state: Arc<Mutex<RotatingState>>,
}

impl LogFile {
    pub fn open(conf: &LogConf) -> io::Result<LogFile> {
        let mut state = RotatingState {
            path: conf.file.clone(),
            file: None,
            written: 0,
            max_file_size: conf.max_file_size,
            max_backups: conf.max_backups,
        };
        state.open()?;
        Ok(LogFile {
            state: Arc::new(Mutex::new(state)),
        })
    }

    /// Closes and reopens the file (SIGHUP), taking new rotation settings.
    pub fn reopen(&self, conf: &LogConf) -> io::Result<()> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state.path = conf.file.clone();
        state.max_file_size = conf.max_file_size;
        state.max_backups = conf.max_backups;
        state.open()
    }
}

/// One record: tracing writes a formatted event through one writer, flushed at drop.
pub struct RecordWriter {
    state: Arc<Mutex<RotatingState>>,
    buf: Vec<u8>,
}

impl Write for RecordWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for RecordWriter {
    fn drop(&mut self) {
        if self.buf.is_empty() {
            return;
        }
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        // A log write that fails must not take the server down; stderr still has the record.
        let _ = state.write_record(&self.buf);
    }
}

impl<'a> MakeWriter<'a> for LogFile {
    type Writer = RecordWriter;
    fn make_writer(&'a self) -> RecordWriter {
        RecordWriter {
            state: self.state.clone(),
            buf: Vec::with_capacity(256),
        }
    }
}

fn level_filter(level: Level) -> LevelFilter {
    match level {
        Level::Error => LevelFilter::ERROR,
        Level::Warn => LevelFilter::WARN,
        Level::Info => LevelFilter::INFO,
        Level::Debug => LevelFilter::DEBUG,
        Level::Trace => LevelFilter::TRACE,
    }
}

/// Lets the server change the level and reopen the file after a reload.
pub struct LogHandle {
    file: LogFile,
    level: reload::Handle<LevelFilter, tracing_subscriber::Registry>,
}

impl LogHandle {
    pub fn apply(&self, conf: &LogConf) -> io::Result<()> {
        // The level handle only fails when the subscriber is gone, i.e. at exit.
        let _ = self.level.modify(|f| *f = level_filter(conf.level));
        self.file.reopen(conf)
    }
}

/// Our own debug lines are worth reading; the libraries' (DNS, TLS) only from INFO up.
///
/// rustls's `msgs::handshake` warns about what a client put in its hello, above all
/// `Illegal SNI extension: ignoring IP address presented as hostname`, which every client that
/// connects by IP address sends (msmtp, `openssl s_client -servername 127.0.0.1`): once per
/// connection, about the client, and the handshake goes on. That is debug detail, and library
/// debug lines are not logged, so the module's warnings are dropped; its errors, and every other
/// rustls warning (alerts, unexpected messages), still show.
fn library_filter() -> tracing_subscriber::filter::Targets {
    tracing_subscriber::filter::Targets::new()
        .with_default(LevelFilter::INFO)
        .with_target("jes", LevelFilter::TRACE)
        .with_target("rustls::msgs::handshake", LevelFilter::ERROR)
}

/// Installs the global subscriber: the log file, and stderr when `to_stderr` (foreground runs).
pub fn init(conf: &LogConf, to_stderr: bool) -> io::Result<LogHandle> {
    let file = LogFile::open(conf)?;
    let (level, handle) = reload::Layer::new(level_filter(conf.level));
    let file_layer = tracing_subscriber::fmt::layer()
        .with_writer(file.clone())
        .with_ansi(false)
        .with_target(false);
    let stderr_layer = to_stderr.then(|| {
        tracing_subscriber::fmt::layer()
            .with_writer(io::stderr)
            .with_ansi(std::io::IsTerminal::is_terminal(&io::stderr()))
            .with_target(false)
            .with_filter(LevelFilter::INFO)
    });
    tracing_subscriber::registry()
        .with(level)
        .with(library_filter())
        .with(file_layer)
        .with(stderr_layer)
        .try_init()
        .map_err(|e| io::Error::other(format!("cannot install the logger: {e}")))?;
    Ok(LogHandle {
        file,
        level: handle,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_hello_warnings_are_dropped_and_other_warnings_kept() {
        use tracing::Level;
        let f = library_filter();
        assert!(!f.would_enable("rustls::msgs::handshake", &Level::WARN));
        assert!(f.would_enable("rustls::msgs::handshake", &Level::ERROR));
        assert!(f.would_enable("rustls::common_state", &Level::WARN));
        assert!(f.would_enable("hickory_resolver", &Level::WARN));
        assert!(!f.would_enable("hickory_resolver", &Level::DEBUG));
        assert!(f.would_enable("jes::server::smtp_conn", &Level::WARN));
        assert!(f.would_enable("jes::server::smtp_conn", &Level::DEBUG));
    }

    /// `log.maxfilesize=0`: jes never rotates, so that logrotate (the Debian package's) can do it
    /// alone and SIGHUP makes jes reopen the file.
    #[test]
    fn size_zero_never_rotates() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("jes.log");
        let conf = crate::config::LogConf::from_properties(
            &dir.path().join("log.conf"),
            dir.path(),
            &crate::config::properties::Properties::parse(
                Path::new("log.conf"),
                "log.maxfilesize=0\nlog.maxbackups=2\n",
            )
            .0,
            Vec::new(),
        )
        .unwrap()
        .0;
        assert_eq!(conf.max_file_size, 0);
        let mut state = RotatingState {
            path: path.clone(),
            file: None,
            written: 0,
            max_file_size: conf.max_file_size,
            max_backups: conf.max_backups,
        };
        for i in 0..50 {
            state
                .write_record(format!("record {i:02} {}\n", "x".repeat(300)).as_bytes())
                .unwrap();
        }
        assert!(!backup_path(&path, 1).exists());
        let live = std::fs::read_to_string(&path).unwrap();
        assert!(live.contains("record 00") && live.contains("record 49"));
    }

    #[test]
    fn rotates_by_size_and_keeps_the_live_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log/jes.log");
        let mut state = RotatingState {
            path: path.clone(),
            file: None,
            written: 0,
            max_file_size: 100,
            max_backups: 2,
        };
        for i in 0..10 {
            state
                .write_record(format!("record {i:02} {}\n", "x".repeat(30)).as_bytes())
                .unwrap();
        }
        let live = std::fs::read_to_string(&path).unwrap();
        assert!(
            live.contains("record 09"),
            "live file holds the newest record: {live}"
        );
        assert!(backup_path(&path, 1).exists());
        assert!(backup_path(&path, 2).exists());
        assert!(
            !backup_path(&path, 3).exists(),
            "only MaxBackupIndex backups are kept"
        );
        assert!(std::fs::metadata(&path).unwrap().len() <= 100);
    }
}
