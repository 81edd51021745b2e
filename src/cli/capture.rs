//! `jes capture list|show|release|delete`: the mail capture mode holds, printed and handled.
//!
//! The work is `queue::capture`'s, through the `Queue` interface: a `FileQueue` over the
//! configuration's spool (under the same locks as the running server, which a release wakes
//! through a retry request) or the `PgQueue` of its `store.url` (the servers woken by `NOTIFY`);
//! `cli::queue_store` finds which. Text from messages is escaped as in `jes queue`.

use std::io::Write;
use std::path::Path;

use tokio::runtime::Runtime;

use super::queue::{format_age, printable, sender_text, Target};
use super::queue_store::{runtime, QueueStore};
use crate::event::{now_ms, Event, Kind, MessageFacts};
use crate::queue::capture::{self, ReleaseError};
use crate::queue::{Queue, QueuedMessage};

fn out_err(e: std::io::Error) -> String {
    format!("cannot write the output: {e}")
}

/// The queue of configuration folder `dir`, as the server uses it (the spool, or the database
/// of `store.url`), and the runtime its work runs on.
fn queue_of(dir: &Path) -> Result<(Runtime, QueueStore), String> {
    let rt = runtime()?;
    let store = QueueStore::open(dir, &rt, "jes-capture")?;
    Ok((rt, store))
}

/// One line per captured message: id, age, sender, held recipients, subject.
pub fn list(dir: &Path, out: &mut dyn Write) -> Result<(), String> {
    let (rt, store) = queue_of(dir)?;
    let (msgs, errors) = rt
        .block_on(capture::list(store.queue()))
        .map_err(|e| e.to_string())?;
    let now = now_ms();
    for m in &msgs {
        writeln!(
            out,
            "{}  {:>6}  {}  -> {}  {}",
            m.id,
            format_age(now.saturating_sub(m.received_ms)),
            sender_text(&m.sender),
            printable(&capture::held(m).join(", ")),
            printable(&subject(m))
        )
        .map_err(out_err)?;
    }
    for e in errors {
        writeln!(out, "unreadable: {}", printable(&e)).map_err(out_err)?;
    }
    writeln!(
        out,
        "{} captured message{}",
        msgs.len(),
        if msgs.len() == 1 { "" } else { "s" }
    )
    .map_err(out_err)
}

fn subject(m: &QueuedMessage) -> String {
    crate::event::MessageFacts::of(&m.id, &m.sender, &m.message, m.received_ms)
        .subject
        .unwrap_or_default()
}

/// A captured message: its envelope, then the message as the recipient would read it.
pub fn show(dir: &Path, id: &str, out: &mut dyn Write) -> Result<(), String> {
    let (rt, store) = queue_of(dir)?;
    let m = load_captured(store.queue(), &rt, id)?;
    writeln!(out, "id:      {}", m.id).map_err(out_err)?;
    writeln!(out, "from:    {}", sender_text(&m.sender)).map_err(out_err)?;
    for r in &m.recipients {
        writeln!(
            out,
            "to:      {} ({})",
            printable(&r.address),
            r.state.as_str()
        )
        .map_err(out_err)?;
    }
    writeln!(out).map_err(out_err)?;
    let text = String::from_utf8_lossy(&crate::stored_form::unstuff(&m.message)).to_string();
    for line in text.split("\r\n") {
        writeln!(out, "{}", printable(line)).map_err(out_err)?;
    }
    Ok(())
}

fn load_captured(q: &dyn Queue, rt: &Runtime, id: &str) -> Result<QueuedMessage, String> {
    if !crate::queue::valid_id(id) {
        return Err(format!("no captured message {id}"));
    }
    let m = rt
        .block_on(q.load(id))
        .map_err(|e| match e.is_not_found() {
            true => format!("no captured message {id}"),
            false => e.to_string(),
        })?;
    if !capture::is_captured(&m) {
        return Err(format!(
            "message {id} is queued but not held by capture mode"
        ));
    }
    Ok(m)
}

fn ids(q: &dyn Queue, target: &Target, rt: &Runtime) -> Result<Vec<String>, String> {
    Ok(match target {
        Target::One(id) => vec![id.clone()],
        Target::All => rt
            .block_on(capture::list(q))
            .map_err(|e| e.to_string())?
            .0
            .into_iter()
            .map(|m| m.id)
            .collect(),
    })
}

/// Releases one message or all: they go out now (the running server is woken), even while
/// capture stays on; `to` replaces their held recipients.
pub fn release(
    dir: &Path,
    target: &Target,
    to: Option<&str>,
    out: &mut dyn Write,
) -> Result<(), String> {
    if let Some(to) = to {
        crate::queue::check_address(to, false).map_err(|e| format!("--to: {e}"))?;
        if !to.contains('@') {
            return Err(format!("--to: {to:?} is not an address"));
        }
    }
    let (rt, store) = queue_of(dir)?;
    let q = store.queue();
    let owner = format!("jes-capture:{}", std::process::id());
    let mut failed = 0;
    let mut events = Vec::new();
    for id in ids(q, target, &rt)? {
        match rt.block_on(capture::release(q, &id, to, &owner)) {
            Ok(r) => {
                writeln!(
                    out,
                    "released {id}: {} -> {}",
                    r.held.join(", "),
                    r.to.join(", ")
                )
                .map_err(out_err)?;
                let m = &r.message;
                let facts = MessageFacts::of(&m.id, &m.sender, &m.message, m.received_ms);
                let reply = format!("released by jes capture (held for {})", r.held.join(", "));
                events.extend(r.to.iter().map(|a| {
                    Event::new(Kind::Released, &facts, a)
                        .with_reply(&reply)
                        .with_attempt(m.attempts)
                }));
            }
            Err(e @ (ReleaseError::NotFound(_) | ReleaseError::NotHeld(_)))
                if *target == Target::All =>
            {
                // Delivered or deleted since the list was read.
                let _ = e;
            }
            Err(e) => {
                failed += 1;
                writeln!(out, "{e}").map_err(out_err)?;
            }
        }
    }
    if let Err(e) = record_in_history(dir, &events) {
        writeln!(
            out,
            "warning: the releases are not in the delivery history: {e}"
        )
        .map_err(out_err)?;
    }
    match failed {
        0 => Ok(()),
        n => Err(format!("{n} message(s) not released")),
    }
}

/// Adds `events` to the mail root's history (as the server's writer would), when history is on.
/// The server's own events (held, delivered) are written by the server.
fn record_in_history(dir: &Path, events: &[Event]) -> Result<(), String> {
    use crate::history::{HistoryStore, Record, SqliteHistory};
    let Ok((conf, _)) = crate::config::MailConf::load(&dir.join("mail.conf")) else {
        return Ok(());
    };
    if events.is_empty() || conf.history_days == 0 {
        return Ok(());
    }
    let root = conf.store_dir.clone().unwrap_or_else(|| dir.to_path_buf());
    let path = crate::history::db_path(&root);
    let Some(mut h) = SqliteHistory::open_existing(&path).map_err(|e| e.to_string())? else {
        return Ok(());
    };
    let records: Vec<Record> = events
        .iter()
        .map(|e| Record::of(e, conf.history_subjects))
        .collect();
    h.append(&records).map_err(|e| e.to_string())
}

/// Deletes one captured message or all, without telling anybody: capture mode is for mail that
/// was never meant to reach its recipients.
pub fn delete(dir: &Path, target: &Target, out: &mut dyn Write) -> Result<(), String> {
    let (rt, store) = queue_of(dir)?;
    let q = store.queue();
    let mut failed = 0;
    for id in ids(q, target, &rt)? {
        if let Err(e) = load_captured(q, &rt, &id) {
            if *target == Target::All {
                continue;
            }
            return Err(e);
        }
        match rt.block_on(q.delete(&id, None)) {
            Ok(_) => writeln!(out, "deleted {id}").map_err(out_err)?,
            Err(e) => {
                failed += 1;
                writeln!(out, "{id}: {e}").map_err(out_err)?;
            }
        }
    }
    match failed {
        0 => Ok(()),
        n => Err(format!("{n} message(s) not deleted")),
    }
}
