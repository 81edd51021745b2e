//! `jes trace`: the history read from the command line, and `jes trace --forget`.
//!
//! It reads the configuration only to find where the history is: with `store.url`, the database's
//! table (every server's events); otherwise `history.db` in the mail root, opened read-only. It
//! never creates a file (run as root, it would leave files the server cannot write). Timelines
//! are printed oldest message first, so the newest ends next to the prompt.

use std::io::Write;
use std::path::Path;

use crate::config::Config;
use crate::history::render::{messages, timeline, JsonEvent};
use crate::history::{db_path, parse_duration, HistoryStore, PgHistory, Query, SqliteHistory};

/// How `jes trace` ended: events shown, none found, or an error (exit 0, 1, 2).
#[derive(Debug, PartialEq, Eq)]
pub enum Traced {
    Found,
    NothingFound(String),
}

/// Prints the timelines of the messages `query` matches (with events since `since` ago).
pub fn trace(
    dir: &Path,
    query: Option<&str>,
    since: Option<&str>,
    json: bool,
    out: &mut dyn Write,
) -> Result<Traced, String> {
    let query = query.filter(|q| !q.trim().is_empty());
    let since_ms = match since {
        Some(s) => crate::event::now_ms().saturating_sub(parse_duration(s)?),
        None if query.is_none() => {
            return Err("give a QUERY (address, @domain, Message-ID, id or words of the subject) or --since DURATION".into())
        }
        None => 0,
    };
    let (config, _) = Config::load(dir).map_err(|e| e.to_string())?;
    let store = match open(&config, false)? {
        Opened::Store(store) => store,
        Opened::Missing(why) => return Ok(Traced::NothingFound(why)),
    };
    let query = Query::parse(query.unwrap_or(""));
    let records = store
        .history
        .query(&query, since_ms, None)
        .map_err(|e| e.to_string())?;
    if records.is_empty() {
        return Ok(Traced::NothingFound("no matching events".into()));
    }
    let write = |e: std::io::Error| format!("cannot write the output: {e}");
    for message in messages(&records).into_iter().rev() {
        if json {
            for r in message {
                let line = serde_json::to_string(&JsonEvent::of(r)).map_err(|e| e.to_string())?;
                writeln!(out, "{line}").map_err(write)?;
            }
        } else {
            writeln!(out, "{}", timeline(message)).map_err(write)?;
        }
    }
    Ok(Traced::Found)
}

/// Removes every event sent by or to `address` (an erasure request); returns how many.
pub fn forget(dir: &Path, address: &str) -> Result<usize, String> {
    let (config, _) = Config::load(dir).map_err(|e| e.to_string())?;
    match open(&config, true)? {
        Opened::Store(mut store) => store
            .history
            .forget(address.trim())
            .map_err(|e| e.to_string()),
        Opened::Missing(_) => Ok(0),
    }
}

/// An open history, with the runtime a database's connections run on.
struct Store {
    history: Box<dyn HistoryStore>,
    /// Dropped after `history` (fields drop in order).
    _runtime: Option<tokio::runtime::Runtime>,
}

enum Opened {
    Store(Store),
    /// No history to read, and why.
    Missing(String),
}

/// The history `config` names: the database's with `store.url`, else `history.db` (read-only
/// unless `write`). Creates nothing.
fn open(config: &Config, write: bool) -> Result<Opened, String> {
    if let Some(settings) = &config.mail.database {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start the runtime: {e}"))?;
        let db = crate::pg::Database::open(settings)
            .map_err(|e| e.to_string())?
            .without_migration();
        let server = format!("jes trace:{}", std::process::id());
        let history = PgHistory::new(db, runtime.handle().clone(), server);
        if !runtime
            .block_on(history.exists())
            .map_err(|e| e.to_string())?
        {
            return Ok(Opened::Missing(format!(
                "no history: the database {} has no history table yet (no jes server of this version has started on it)",
                history.location()
            )));
        }
        return Ok(Opened::Store(Store {
            history: Box::new(history),
            _runtime: Some(runtime),
        }));
    }
    let path = db_path(&config.store_dir());
    let opened = if write {
        SqliteHistory::open_existing(&path)
    } else {
        SqliteHistory::open_read_only(&path)
    };
    match opened.map_err(|e| e.to_string())? {
        Some(h) => Ok(Opened::Store(Store {
            history: Box::new(h),
            _runtime: None,
        })),
        None => {
            let why = if config.mail.history_days == 0 {
                "history is off (history.days=0 in mail.conf)"
            } else {
                "no events yet"
            };
            Ok(Opened::Missing(format!(
                "no history: {} does not exist ({why})",
                path.display()
            )))
        }
    }
}
