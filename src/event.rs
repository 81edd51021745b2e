//! The outcome event: what became of one recipient's copy of one message, in one vocabulary.
//!
//! Every fate a message can meet is one [`Kind`], defined here once; the log, the metrics, the
//! console's `/api/events`, the delivery history and `jes trace` all speak these names.
//! An [`Event`] carries everything an administrator asks about a notification ("did it reach bob,
//! what did the organisation's server answer?"): the message's one id, Message-ID, sender,
//! recipient, size, subject, the remote host and address, TLS, the full reply and its enhanced
//! status, and the attempt. This module is data only; `outcome::emit` is the one place that reports
//! an event. It sits low (stats keeps recent events for the console) and imports nothing of jes.

use std::net::IpAddr;
use std::time::{SystemTime, UNIX_EPOCH};

/// What became of a recipient's copy. The names are the ones the log, `/api/events` and the
/// metrics use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// Answered 250 over SMTP; the copy is in the queue or a mailbox.
    Accepted,
    /// Refused with our reply: at RCPT (unknown user, relaying denied) or after DATA (too big,
    /// mail loop, storage failure).
    Refused,
    /// Written into a local mailbox.
    DeliveredLocally,
    /// Relayed: the next server answered 250 (kept as today's `delivered`).
    Delivered,
    /// A temporary failure; the queue tries again.
    Deferred,
    /// A permanent failure; the sender gets a bounce (unless the sender is `<>`).
    Bounced,
    /// Still undelivered after `smtpdelivery.threshold` attempts: given up, bounced.
    Expired,
    /// The sender was told the message is delayed (`smtpdelivery.delaywarning`).
    DelayNotice,
    /// An administrator deleted the message (queue or mailbox).
    DeletedAdmin,
    /// A POP3 client read the message (RETR).
    Pop3Retrieved,
    /// A POP3 client deleted the message (DELE, committed by QUIT).
    Pop3Deleted,
    /// The mailbox's webhook was called and answered 2xx (`delivery::webhook`).
    WebhookSent,
    /// A webhook call failed (no answer within 10 s, not 2xx); it is tried again.
    WebhookFailed,
    /// A webhook call still failed after a day of retries: given up.
    WebhookExpired,
    /// The message was deleted from its mailbox after its webhook call succeeded
    /// (`userprop.ADDRESS.webhook.delete=true`).
    WebhookDeleted,
    /// Capture mode kept a recipient back instead of sending (issue 17).
    Held,
    /// An administrator released a held recipient (to the address the event names).
    Released,
}

impl Kind {
    /// Every kind, in the order a message meets them.
    pub const ALL: [Kind; 17] = [
        Kind::Accepted,
        Kind::Refused,
        Kind::DeliveredLocally,
        Kind::Delivered,
        Kind::Deferred,
        Kind::Bounced,
        Kind::Expired,
        Kind::DelayNotice,
        Kind::DeletedAdmin,
        Kind::Pop3Retrieved,
        Kind::Pop3Deleted,
        Kind::WebhookSent,
        Kind::WebhookFailed,
        Kind::WebhookExpired,
        Kind::WebhookDeleted,
        Kind::Held,
        Kind::Released,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Accepted => "accepted",
            Kind::Refused => "refused",
            Kind::DeliveredLocally => "delivered-locally",
            Kind::Delivered => "delivered",
            Kind::Deferred => "deferred",
            Kind::Bounced => "bounced",
            Kind::Expired => "expired",
            Kind::DelayNotice => "delay-notice",
            Kind::DeletedAdmin => "deleted-admin",
            Kind::Pop3Retrieved => "pop3-retrieved",
            Kind::Pop3Deleted => "pop3-deleted",
            Kind::WebhookSent => "webhook-sent",
            Kind::WebhookFailed => "webhook-failed",
            Kind::WebhookExpired => "webhook-expired",
            Kind::WebhookDeleted => "webhook-deleted",
            Kind::Held => "held",
            Kind::Released => "released",
        }
    }

    pub fn parse(name: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.as_str() == name)
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The facts of one message that every event about it repeats.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MessageFacts {
    /// The message's one id: its queue id, and the stem of its mailbox files' names.
    pub id: String,
    /// The `Message-ID:` header, with its angle brackets, if the message has one.
    pub message_id: Option<String>,
    /// Envelope sender; empty for `<>`.
    pub sender: String,
    /// The decoded `Subject:`, at most `SUBJECT_MAX` characters.
    pub subject: Option<String>,
    /// Octets as stored (wire form).
    pub size: u64,
    /// When the message was accepted (epoch ms); 0 when unknown.
    pub received_ms: u64,
}

/// Longest subject an event keeps, in characters.
pub const SUBJECT_MAX: usize = 200;
/// How much of a message is looked at for its headers.
const HEADER_SCAN_MAX: usize = 64 * 1024;

impl MessageFacts {
    /// The facts of `message` (wire form, headers first), read from its header section only.
    pub fn of(id: &str, sender: &str, message: &[u8], received_ms: u64) -> MessageFacts {
        let head = header_section(message);
        MessageFacts {
            id: id.to_string(),
            message_id: header(head, "message-id").map(|v| v.trim().to_string()),
            sender: sender.to_string(),
            subject: header(head, "subject").map(|raw| decode_subject(&raw)),
            size: message.len() as u64,
            received_ms,
        }
    }
}

impl MessageFacts {
    /// The facts of a message stored in a mailbox with id `id` (`store::MessageInfo::id`), from
    /// its first bytes `head` (the sender is in the `Return-Path:` line the mailbox copy starts
    /// with) and its stored `size`.
    pub fn of_stored(id: &str, head: &[u8], size: u64) -> MessageFacts {
        let mut facts = MessageFacts::of(id, "", head, 0);
        let section = header_section(head);
        if let Some(rp) = header(section, "return-path") {
            let rp = rp.trim();
            facts.sender = rp
                .strip_prefix('<')
                .and_then(|r| r.strip_suffix('>'))
                .unwrap_or(rp)
                .to_string();
        }
        facts.size = size;
        facts
    }
}

/// The bytes up to the blank line that ends the header section (at most `HEADER_SCAN_MAX`).
fn header_section(message: &[u8]) -> &[u8] {
    let head = &message[..message.len().min(HEADER_SCAN_MAX)];
    match head.windows(4).position(|w| w == b"\r\n\r\n") {
        Some(end) => &head[..end + 2],
        None => head,
    }
}

/// The unfolded value of the first header `name` (lower case), as text (invalid UTF-8 replaced).
fn header(head: &[u8], name: &str) -> Option<String> {
    let mut value: Option<String> = None;
    for line in head.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if let Some(v) = value.as_mut() {
            if line.first().is_some_and(|b| *b == b' ' || *b == b'\t') {
                v.push(' ');
                v.push_str(String::from_utf8_lossy(line).trim());
                continue;
            }
            break;
        }
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        if line[..colon].eq_ignore_ascii_case(name.as_bytes()) {
            value = Some(
                String::from_utf8_lossy(&line[colon + 1..])
                    .trim()
                    .to_string(),
            );
        }
    }
    value
}

/// A subject with RFC 2047 encoded words decoded (by mail-parser), control characters dropped,
/// cut to `SUBJECT_MAX` characters.
fn decode_subject(raw: &str) -> String {
    let decoded = if raw.contains("=?") {
        let mini = format!("Subject: {raw}\r\n\r\n");
        mail_parser::MessageParser::new()
            .parse_headers(mini.as_bytes())
            .and_then(|m| m.subject().map(str::to_string))
            .unwrap_or_else(|| raw.to_string())
    } else {
        raw.to_string()
    };
    decoded
        .chars()
        .filter(|c| !c.is_control())
        .take(SUBJECT_MAX)
        .collect()
}

/// One recipient's outcome. Built with [`Event::new`] and the `with_*` setters; reported with
/// `outcome::emit`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// Epoch milliseconds.
    pub time_ms: u64,
    pub kind: Kind,
    pub message: MessageFacts,
    pub recipient: String,
    /// The server we talked to (smart host or MX), when there was one.
    pub remote_host: Option<String>,
    pub remote_ip: Option<IpAddr>,
    /// The TLS version of the connection the outcome came over (`TLSv1.3`), if any.
    pub tls: Option<String>,
    /// The full reply that decided it: ours (refused, accepted) or the remote's.
    pub reply: String,
    /// The enhanced status code (`5.1.1`), when the reply has one.
    pub status: Option<String>,
    /// Delivery attempt number (1 for the first); 0 where none applies.
    pub attempt: u32,
    /// The SMTP or POP3 session, for events that happen in one.
    pub session: Option<String>,
    /// The client's address, for events that happen in a session.
    pub client_ip: Option<IpAddr>,
}

impl Event {
    pub fn new(kind: Kind, message: &MessageFacts, recipient: &str) -> Event {
        Event {
            time_ms: now_ms(),
            kind,
            message: message.clone(),
            recipient: recipient.to_string(),
            remote_host: None,
            remote_ip: None,
            tls: None,
            reply: String::new(),
            status: None,
            attempt: 0,
            session: None,
            client_ip: None,
        }
    }

    /// Sets the reply and takes its enhanced status code from it (`550 5.1.1 ...` -> `5.1.1`).
    pub fn with_reply(mut self, reply: &str) -> Event {
        self.status = enhanced_status(reply).map(str::to_string);
        self.reply = reply.trim_end().to_string();
        self
    }

    pub fn with_remote(mut self, host: Option<&str>, ip: Option<IpAddr>) -> Event {
        self.remote_host = host.map(str::to_string);
        self.remote_ip = ip;
        self
    }

    pub fn with_tls(mut self, tls: Option<&str>) -> Event {
        self.tls = tls.map(str::to_string);
        self
    }

    pub fn with_attempt(mut self, attempt: u32) -> Event {
        self.attempt = attempt;
        self
    }

    pub fn in_session(mut self, session: &str, client: IpAddr) -> Event {
        self.session = Some(session.to_string());
        self.client_ip = Some(client);
        self
    }

    /// Seconds from acceptance to this event, when the acceptance time is known.
    pub fn latency_secs(&self) -> Option<f64> {
        (self.message.received_ms > 0)
            .then(|| self.time_ms.saturating_sub(self.message.received_ms) as f64 / 1000.0)
    }
}

/// The enhanced status code (RFC 3463) a reply carries after its code: `550 5.1.1 no` -> `5.1.1`.
/// Replies without one give `None`.
pub fn enhanced_status(reply: &str) -> Option<&str> {
    if !matches!(reply.as_bytes().get(3), Some(b' ' | b'-')) {
        return None;
    }
    enhanced_code(reply.get(4..)?)
}

/// The enhanced status code at the start of a reply's text (`5.1.1 no such user` -> `5.1.1`):
/// class 2, 4 or 5, then two numbers of one to three digits. The one rule for the whole server
/// A fresh message id `<millis><6-digit counter>`, distinct for every call in this process: the
/// one id of a message's log lines, events, queue entry and mailbox copies. Time keeps ids ordered
/// and unique across restarts; the counter keeps them unique within a millisecond and across
/// threads. Digits only, so an id is safe in any file name or key.
pub fn new_id() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed) % 1_000_000;
    format!("{}{:06}", now_ms(), n)
}

/// (the SMTP client reads upstream replies with it too).
pub fn enhanced_code(text: &str) -> Option<&str> {
    let word = text.split(' ').next()?;
    let mut parts = word.split('.');
    let class = parts.next()?;
    let subject = parts.next()?;
    let detail = parts.next()?;
    let digits = |s: &str, max: usize| {
        !s.is_empty() && s.len() <= max && s.bytes().all(|b| b.is_ascii_digit())
    };
    let ok = parts.next().is_none()
        && matches!(class, "2" | "4" | "5")
        && digits(subject, 3)
        && digits(detail, 3);
    ok.then_some(word)
}

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip_and_are_unique() {
        for k in Kind::ALL {
            assert_eq!(Kind::parse(k.as_str()), Some(k));
        }
        let mut names: Vec<_> = Kind::ALL.iter().map(|k| k.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Kind::ALL.len());
    }

    #[test]
    fn facts_come_from_the_header_section_only() {
        let msg = b"Received: from x\r\nMessage-ID: <a.1@h>\r\nSubject: =?UTF-8?B?0J/RgNC40LLQtdGC?=\r\n folded\r\n\r\nSubject: body, not a header\r\n";
        let f = MessageFacts::of("17", "s@x.test", msg, 5);
        assert_eq!(f.message_id.as_deref(), Some("<a.1@h>"));
        assert_eq!(f.subject.as_deref(), Some("Привет folded"));
        assert_eq!(f.size, msg.len() as u64);
        let none = MessageFacts::of("1", "", b"X: y\r\n\r\nSubject: no\r\n", 0);
        assert_eq!(none.subject, None);
        assert_eq!(none.message_id, None);
    }

    #[test]
    fn stored_facts_take_the_sender_from_return_path() {
        let head = b"X-DeliveredTo: bob@x\r\nReturn-Path: <app@y.test>\r\nSubject: hi\r\n\r\n";
        let f = MessageFacts::of_stored("1795605697556000001", head, 42);
        assert_eq!(f.id, "1795605697556000001");
        assert_eq!(f.sender, "app@y.test");
        assert_eq!(f.subject.as_deref(), Some("hi"));
        assert_eq!(f.size, 42);
        let jes = MessageFacts::of_stored("123456", b"Return-Path: <>\r\n\r\n", 7);
        assert_eq!((jes.id.as_str(), jes.sender.as_str()), ("123456", ""));
    }

    #[test]
    fn subject_is_cut_and_cleaned() {
        let long = format!("Subject: {}\x07\r\n\r\n", "é".repeat(300));
        let f = MessageFacts::of("1", "", long.as_bytes(), 0);
        let s = f.subject.unwrap();
        assert_eq!(s.chars().count(), SUBJECT_MAX);
        assert!(!s.contains('\x07'));
    }

    #[test]
    fn enhanced_status_codes() {
        assert_eq!(enhanced_status("550 5.1.1 no such user"), Some("5.1.1"));
        assert_eq!(
            enhanced_status("250 2.0.0 Ok: queued as 4XyZ"),
            Some("2.0.0")
        );
        assert_eq!(enhanced_status("451 try later"), None);
        assert_eq!(enhanced_status("550 5.x.1 odd"), None);
        assert_eq!(enhanced_status("55"), None);
        assert_eq!(enhanced_status("550"), None);
        assert_eq!(enhanced_status("connection refused"), None);
    }
}
