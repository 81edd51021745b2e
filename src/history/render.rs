//! Records as people and programs read them: a timeline in plain words per message (`jes trace`),
//! and one JSON object per event with the same fields everywhere (`jes trace --json`, the API).

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;

use super::Record;

/// One event as JSON: the fields `jes trace --json` and `GET /api/history` print.
#[derive(Debug, Serialize)]
pub struct JsonEvent<'a> {
    /// RFC 3339, UTC.
    pub time: String,
    pub id: &'a str,
    pub message_id: Option<&'a str>,
    pub event: &'a str,
    pub sender: &'a str,
    pub recipient: &'a str,
    pub subject: Option<&'a str>,
    pub size: u64,
    pub attempt: u32,
    pub remote_host: Option<&'a str>,
    pub remote_ip: Option<&'a str>,
    pub tls: Option<&'a str>,
    pub reply: &'a str,
    pub status: Option<&'a str>,
    /// The server that reported it (its `node.name`) in the database's history; null in
    /// `history.db`, which one server writes.
    pub node: Option<&'a str>,
}

impl<'a> JsonEvent<'a> {
    pub fn of(r: &'a Record) -> JsonEvent<'a> {
        JsonEvent {
            time: rfc3339(r.time_ms),
            id: &r.id,
            message_id: r.message_id.as_deref(),
            event: &r.event,
            sender: &r.sender,
            recipient: &r.recipient,
            subject: r.subject.as_deref(),
            size: r.size,
            attempt: r.attempt,
            remote_host: r.remote_host.as_deref(),
            remote_ip: r.remote_ip.as_deref(),
            tls: r.tls.as_deref(),
            reply: &r.reply,
            status: r.status.as_deref(),
            node: r.server.as_deref(),
        }
    }
}

/// Epoch milliseconds as RFC 3339 in UTC (`2026-11-30T11:46:03.123Z`).
pub fn rfc3339(ms: u64) -> String {
    let ms = i64::try_from(ms).unwrap_or(i64::MAX);
    DateTime::<Utc>::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn clock(ms: u64) -> String {
    let ms = i64::try_from(ms).unwrap_or(i64::MAX);
    DateTime::<Utc>::from_timestamp_millis(ms)
        .unwrap_or_default()
        .format("%Y-%m-%d %H:%M:%S")
        .to_string()
}

/// Consecutive records of one message (as `HistoryStore::query` returns them) grouped.
pub fn messages(records: &[Record]) -> Vec<&[Record]> {
    let mut out = Vec::new();
    let mut start = 0;
    for i in 1..=records.len() {
        let split =
            i == records.len() || records[i].id != records[start].id || records[i].id.is_empty();
        if split {
            out.push(&records[start..i]);
            start = i;
        }
    }
    out
}

/// One message's timeline: a heading (id, Message-ID, sender, subject, size), then one line per
/// event, oldest first, in UTC, its time followed by the server that reported it when the
/// history says (the database's, which several servers write): `12:01:21 UTC (mx-a)  <bob@...>`.
pub fn timeline(events: &[Record]) -> String {
    let Some(first) = events.first() else {
        return String::new();
    };
    let mut s = String::new();
    if first.id.is_empty() {
        s.push_str("message without an id (refused)");
    } else {
        s.push_str(&format!("message {}", first.id));
    }
    if let Some(m) = &first.message_id {
        s.push_str(&format!(" {m}"));
    }
    s.push_str(&format!(" from <{}>", first.sender));
    if let Some(subject) = &first.subject {
        s.push_str(&format!(", subject {subject:?}"));
    }
    if first.size > 0 {
        s.push_str(&format!(", {} bytes", first.size));
    }
    s.push('\n');
    for e in events {
        let by = e
            .server
            .as_deref()
            .map(|node| format!(" ({node})"))
            .unwrap_or_default();
        s.push_str(&format!(
            "  {} UTC{by}  <{}> {}\n",
            clock(e.time_ms),
            e.recipient,
            words(e)
        ));
    }
    s
}

/// What happened, in plain words: "relayed to smtp.corp.example [10.0.0.5] with TLS 1.3: 250 ...".
pub fn words(e: &Record) -> String {
    let at = |prep: &str| {
        server(e)
            .map(|s| format!(" {prep} {s}"))
            .unwrap_or_default()
    };
    let reply = if e.reply.is_empty() {
        String::new()
    } else {
        format!(": {}", e.reply)
    };
    let attempt = if e.attempt > 0 {
        format!(" (attempt {})", e.attempt)
    } else {
        String::new()
    };
    match e.event.as_str() {
        "accepted" => format!("accepted{reply}"),
        "refused" => format!("refused{reply}"),
        "delivered-locally" => "delivered into the local mailbox".to_string(),
        "delivered" => format!("relayed{}{attempt}{reply}", at("to")),
        "deferred" => format!("deferred{}{attempt}{reply}", at("at")),
        "bounced" => format!("bounced{}{attempt}{reply}", at("by")),
        "expired" => format!("expired: given up after {} attempts{reply}", e.attempt),
        "delay-notice" => "the sender was told the message is delayed".to_string(),
        "deleted-admin" => "deleted by an administrator".to_string(),
        "pop3-retrieved" => "read by a POP3 client".to_string(),
        "pop3-deleted" => "deleted by a POP3 client".to_string(),
        "webhook-sent" => format!("webhook called{}{attempt}{reply}", at("at")),
        "webhook-failed" => format!("webhook call failed{}{attempt}{reply}", at("at")),
        "webhook-expired" => format!("webhook call given up{attempt}{reply}"),
        "webhook-deleted" => "deleted after its webhook call (webhook.delete)".to_string(),
        other => format!("{other}{reply}"),
    }
}

/// "host [ip] with TLS 1.3", or what is known of it; `None` when no server was reached.
fn server(e: &Record) -> Option<String> {
    let mut s = match (&e.remote_host, &e.remote_ip) {
        (Some(h), Some(ip)) if h != ip => format!("{h} [{ip}]"),
        (Some(h), _) => h.clone(),
        (None, Some(ip)) => format!("[{ip}]"),
        (None, None) => return None,
    };
    match e.tls.as_deref() {
        Some(v) => s.push_str(&format!(
            " with TLS {}",
            v.strip_prefix("TLSv").unwrap_or(v)
        )),
        None => s.push_str(" without TLS"),
    }
    Some(s)
}
