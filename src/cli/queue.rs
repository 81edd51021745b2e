//! `jes queue list|show|retry|delete`: the administrator's view of the spool, printed.
//!
//! The work is done through the `Queue` interface, as the console does it: on the spool folder
//! (`FileQueue`: `queue::admin` under the queue files' locks, safe next to a running server) or
//! on the PostgreSQL database of `store.url` (`PgQueue`: under the message's lease, the servers
//! woken by `NOTIFY`); `cli::queue_store` finds which. This module turns the results into text. Everything shown comes from files a stranger may have
//! written (a sender's headers), so control characters are escaped before they reach the terminal.

use std::io::Write;
use std::path::Path;

use chrono::{Local, TimeZone};

use crate::event::now_ms;
use tokio::runtime::Runtime;

use super::queue_store::{runtime, QueueStore};
use crate::queue::admin::{header_lines_raw, is_not_found, last_error, retry_entry, Deleted};
use crate::queue::{request_retry, valid_id, BounceFrom, Queue, QueueError, QueuedMessage};

/// Which entries a command applies to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    One(String),
    All,
}

fn out_err(e: std::io::Error) -> String {
    format!("cannot write the output: {e}")
}

/// Text from a file, made safe for a terminal: control characters are shown escaped.
pub(crate) fn printable(text: &str) -> String {
    let mut s = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() && c != '\t' {
            s.extend(c.escape_default());
        } else {
            s.push(c);
        }
    }
    s
}

/// `45s`, `12m`, `3h12m`, `2d4h`.
pub fn format_age(ms: u64) -> String {
    let s = ms / 1000;
    let (d, h, m) = (s / 86_400, s / 3600 % 24, s / 60 % 60);
    if s < 60 {
        format!("{s}s")
    } else if s < 3600 {
        format!("{m}m")
    } else if s < 86_400 {
        format!("{h}h{m:02}m")
    } else {
        format!("{d}d{h}h")
    }
}

fn local_time(ms: u64) -> String {
    let t = i64::try_from(ms)
        .ok()
        .and_then(|ms| Local.timestamp_millis_opt(ms).single());
    match t {
        Some(t) => t.format("%Y-%m-%d %H:%M:%S").to_string(),
        None => format!("{ms} ms"),
    }
}

fn next_attempt(ms: u64, now: u64) -> String {
    if ms <= now {
        "due".to_string()
    } else {
        local_time(ms)
    }
}

pub(crate) fn sender_text(sender: &str) -> String {
    if sender.is_empty() {
        "<>".to_string()
    } else {
        printable(sender)
    }
}

/// The table `jes queue list` prints, for `now` (epoch ms).
pub fn render_list(msgs: &[QueuedMessage], now: u64) -> String {
    let header = [
        "ID",
        "AGE",
        "TRIES",
        "NEXT ATTEMPT",
        "FROM",
        "TO",
        "LAST ERROR",
    ];
    let mut rows: Vec<[String; 7]> = vec![header.map(str::to_string)];
    for m in msgs {
        let to = m
            .recipients
            .iter()
            .map(|r| format!("{} ({})", printable(&r.address), r.state.as_str()))
            .collect::<Vec<_>>()
            .join(", ");
        rows.push([
            m.id.clone(),
            format_age(now.saturating_sub(m.received_ms)),
            m.attempts.to_string(),
            if crate::queue::capture::is_captured(m)
                && !m.recipients.iter().any(|r| r.state.is_pending())
            {
                "held".to_string()
            } else {
                next_attempt(m.next_attempt_ms, now)
            },
            sender_text(&m.sender),
            to,
            printable(last_error(m)),
        ]);
    }
    let mut widths = [0usize; 7];
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut text = String::new();
    for row in &rows {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i + 1 == row.len() {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<w$}  ", w = widths[i]));
            }
        }
        text.push_str(line.trim_end());
        text.push('\n');
    }
    let pending: usize = msgs
        .iter()
        .map(|m| m.recipients.iter().filter(|r| r.state.is_pending()).count())
        .sum();
    text.push_str(&format!(
        "{} message{}, {pending} recipient{} pending\n",
        msgs.len(),
        if msgs.len() == 1 { "" } else { "s" },
        if pending == 1 { "" } else { "s" },
    ));
    text
}

/// The queue of `dir` and the runtime its work runs on.
fn open(dir: &Path) -> Result<(Runtime, QueueStore), String> {
    let rt = runtime()?;
    let store = QueueStore::open(dir, &rt, "jes-queue")?;
    Ok((rt, store))
}

/// `jes queue list`: one line per queued message. Unreadable files are reported after the table
/// (and make the command fail) without hiding the others.
pub fn list(dir: &Path, out: &mut dyn Write) -> Result<(), String> {
    let (rt, store) = open(dir)?;
    let (msgs, errors) = rt
        .block_on(store.queue().list())
        .map_err(|e| e.to_string())?;
    if msgs.is_empty() && errors.is_empty() {
        writeln!(out, "queue is empty ({})", store.location()).map_err(out_err)?;
        return Ok(());
    }
    if !msgs.is_empty() {
        out.write_all(render_list(&msgs, now_ms()).as_bytes())
            .map_err(out_err)?;
    }
    if errors.is_empty() {
        return Ok(());
    }
    for e in &errors {
        writeln!(out, "cannot read {}", printable(e)).map_err(out_err)?;
    }
    Err(format!("{} queue file(s) could not be read", errors.len()))
}

/// `header_lines_raw` made safe for a terminal.
fn header_lines(wire: &[u8]) -> Vec<String> {
    header_lines_raw(wire)
        .iter()
        .map(|l| printable(l))
        .collect()
}

/// Where `show` says the entry is: its file and that file's format, or the database.
fn stored_where(store: &QueueStore, id: &str) -> Result<String, String> {
    match store {
        QueueStore::Files { spool, .. } => {
            let path = spool.path_of(id);
            let format = match std::fs::read(&path) {
                Ok(b) if b.starts_with(b"1.0\r\n") || b.starts_with(b"1.0\n") => "JES 1.0 format",
                Ok(_) => "jes-queue 1 format",
                Err(e) => return Err(format!("{}: {e}", path.display())),
            };
            Ok(format!("file:          {} ({format})\n", path.display()))
        }
        QueueStore::Database { location, .. } => {
            Ok(format!("stored:        database {location}\n"))
        }
    }
}

/// `jes queue show ID`: where the entry is, its fields, each recipient, then the message's
/// headers.
pub fn show(dir: &Path, id: &str, out: &mut dyn Write) -> Result<(), String> {
    let (rt, store) = open(dir)?;
    if !valid_id(id) {
        return Err(store.not_in_queue(id));
    }
    let m = rt.block_on(store.queue().load(id)).map_err(|e| {
        if is_not_found(&e) {
            store.not_in_queue(id)
        } else {
            e.to_string()
        }
    })?;
    let now = now_ms();
    let mut t = stored_where(&store, id)?;
    t.push_str(&format!("from:          <{}>\n", printable(&m.sender)));
    t.push_str(&format!(
        "received:      {} ({} ago)\n",
        local_time(m.received_ms),
        format_age(now.saturating_sub(m.received_ms))
    ));
    t.push_str(&format!("attempts:      {}\n", m.attempts));
    let next = if m.next_attempt_ms <= now {
        format!("{} (due)", local_time(m.next_attempt_ms))
    } else {
        local_time(m.next_attempt_ms)
    };
    t.push_str(&format!("next attempt:  {next}\n"));
    t.push_str(&format!("size:          {} bytes\n", m.message.len()));
    t.push_str("recipients:\n");
    let width = m
        .recipients
        .iter()
        .map(|r| printable(&r.address).chars().count())
        .max()
        .unwrap_or(0);
    for r in &m.recipients {
        let line = format!(
            "  {:<width$}  {:<9}  {}",
            printable(&r.address),
            r.state.as_str(),
            printable(r.last_error.as_deref().unwrap_or(""))
        );
        t.push_str(line.trim_end());
        t.push('\n');
    }
    t.push_str("message headers:\n");
    for l in header_lines(&m.message) {
        t.push_str("  ");
        t.push_str(&l);
        t.push('\n');
    }
    out.write_all(t.as_bytes()).map_err(out_err)
}

/// The ids `target` names: every queued one for `All`.
fn ids_of(store: &QueueStore, rt: &Runtime, target: &Target) -> Result<Vec<String>, String> {
    match (target, store) {
        (Target::One(id), _) => Ok(vec![id.clone()]),
        (Target::All, QueueStore::Files { spool, .. }) => spool
            .list_ids()
            .map_err(|e| format!("cannot read {}: {e}", spool.dir().display())),
        (Target::All, QueueStore::Database { .. }) => Ok(rt
            .block_on(store.queue().list())
            .map_err(|e| e.to_string())?
            .0
            .into_iter()
            .map(|m| m.id)
            .collect()),
    }
}

/// Makes entry `id` due now. `wake`: tell a running server about this one at once; for many
/// entries the spool gets one request for all afterwards (`wake_all`) rather than a file each.
fn make_due(store: &QueueStore, rt: &Runtime, id: &str, wake: bool) -> Result<(), QueueError> {
    if !valid_id(id) {
        return Err(QueueError::Io {
            path: store.entry(id).into(),
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "not a queue id"),
        });
    }
    match store {
        QueueStore::Files { spool, .. } => retry_entry(spool, id, wake),
        // The database's NOTIFY names the message and costs nothing: always sent.
        QueueStore::Database { queue, .. } => rt.block_on(queue.retry(Some(id))).map(|_| ()),
    }
}

/// `jes queue retry ID|--all`: makes the entries due now (under their lease or lock) and asks the
/// running servers to look at once.
pub fn retry(dir: &Path, target: &Target, out: &mut dyn Write) -> Result<(), String> {
    let (rt, store) = open(dir)?;
    let mut done = 0;
    let mut errors = Vec::new();
    for id in ids_of(&store, &rt, target)? {
        match make_due(&store, &rt, &id, *target != Target::All) {
            Ok(()) => {
                done += 1;
                writeln!(out, "{}: due now", store.entry(&id)).map_err(out_err)?;
            }
            Err(e) if is_not_found(&e) && *target == Target::All => {}
            Err(e) if is_not_found(&e) => errors.push(store.not_in_queue(&id)),
            Err(e) => errors.push(e.to_string()),
        }
    }
    if *target == Target::All {
        if let QueueStore::Files { spool, .. } = &store {
            request_retry(spool, None).map_err(|e| e.to_string())?;
        }
        if done == 0 && errors.is_empty() {
            writeln!(out, "queue is empty ({})", store.location()).map_err(out_err)?;
        }
    }
    if done > 0 {
        writeln!(
            out,
            "a running server will try {} within a few seconds",
            if done == 1 { "it" } else { "them" }
        )
        .map_err(out_err)?;
    }
    finish(errors)
}

fn finish(errors: Vec<String>) -> Result<(), String> {
    match errors.len() {
        0 => Ok(()),
        1 => Err(errors.into_iter().next().unwrap_or_default()),
        _ => Err(errors.join("\njes: ")),
    }
}

/// The name bounces are signed with: `hostname` from `mail.conf` when it can be read, else the
/// machine's name (the tools do not require a configuration).
/// Our host name and DKIM keys from the folder's mail.conf, for a deletion's bounce.
fn bounce_from(dir: &Path) -> BounceFrom {
    match crate::config::MailConf::load(&dir.join("mail.conf")) {
        Ok((conf, _)) => BounceFrom {
            hostname: conf.hostname,
            dkim: conf.dkim,
        },
        Err(_) => BounceFrom {
            hostname: crate::config::mail::default_hostname("localhost"),
            dkim: Vec::new(),
        },
    }
}

/// `jes queue delete ID|--all [--bounce]`: removes entries under their lock; with `bounce`, first
/// queues a DSN to the sender for the recipients not yet delivered (from the null sender).
pub fn delete(
    dir: &Path,
    target: &Target,
    bounce: bool,
    out: &mut dyn Write,
) -> Result<(), String> {
    let (rt, store) = open(dir)?;
    let from = bounce.then(|| bounce_from(dir));
    let mut done = 0;
    let mut errors = Vec::new();
    for id in ids_of(&store, &rt, target)? {
        let deleted = match valid_id(&id) {
            true => rt.block_on(store.queue().delete(&id, from.as_ref())),
            false => Err(QueueError::Io {
                path: store.entry(&id).into(),
                source: std::io::Error::new(std::io::ErrorKind::NotFound, "not a queue id"),
            }),
        };
        let result = deleted.map(|(d, _)| match d {
            Deleted::Silently => String::new(),
            Deleted::Bounced { sender, bounce_id } => format!(
                " (bounce to <{}> queued as {})",
                printable(&sender),
                store.entry(&bounce_id)
            ),
            Deleted::NullSender(sender) => {
                format!(" (no bounce: null sender {})", sender_text(&sender))
            }
            Deleted::NonePending => " (no bounce: no recipient pending)".into(),
        });
        match result {
            Ok(note) => {
                done += 1;
                writeln!(out, "deleted {}{note}", store.entry(&id)).map_err(out_err)?;
            }
            Err(e) if is_not_found(&e) && *target == Target::All => {}
            Err(e) if is_not_found(&e) => errors.push(store.not_in_queue(&id)),
            Err(e) => errors.push(e.to_string()),
        }
    }
    if done == 0 && errors.is_empty() {
        writeln!(out, "queue is empty ({})", store.location()).map_err(out_err)?;
    }
    finish(errors)
}

#[cfg(test)]
#[path = "queue_tests.rs"]
mod tests;
