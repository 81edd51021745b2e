//! `jes trace`: the history read from the command line, and `jes trace --forget`.
//!
//! It reads the configuration only to find the mail root, opens `history.db` read-only and never
//! creates a file (run as root, it would leave files the server cannot write). Timelines are
//! printed oldest message first, so the newest ends next to the prompt.

use std::io::Write;
use std::path::Path;

use crate::config::Config;
use crate::history::render::{messages, timeline, JsonEvent};
use crate::history::{db_path, parse_duration, HistoryStore, Query, SqliteHistory};

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
    let path = db_path(&config.store_dir());
    let Some(store) = SqliteHistory::open_read_only(&path).map_err(|e| e.to_string())? else {
        let why = if config.mail.history_days == 0 {
            "history is off (history.days=0 in mail.conf)"
        } else {
            "no events yet"
        };
        return Ok(Traced::NothingFound(format!(
            "no history: {} does not exist ({why})",
            path.display()
        )));
    };
    let query = Query::parse(query.unwrap_or(""));
    let records = store
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
    let path = db_path(&config.store_dir());
    match SqliteHistory::open_existing(&path).map_err(|e| e.to_string())? {
        Some(mut store) => store.forget(address.trim()).map_err(|e| e.to_string()),
        None => Ok(0),
    }
}
