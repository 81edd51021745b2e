//! The text of a queue file: JES's format 1.0 (read only) and jes's own `jes-queue 1`.
//!
//! Pure functions, no I/O, so both directions are tested on bytes alone. jes's format is a block of
//! mail-header-like lines an administrator can read at a glance in an editor (who from, who to, how
//! many attempts, when next, and each recipient's last error), an empty line, then the message in
//! wire form, untouched. Times are written as epoch milliseconds (what the parser reads) followed by
//! a UTC date in parentheses for people. JES 1.0 files are read as they are, including JES's null
//! sender `unknown@example.com`: what that means is for the outbound code to decide.
//!
//! DSN parameters (RFC 3461) are optional lines: `Ret:` and `Envid:` for the message, `Notify:`
//! and `Orcpt:` after the `To:` line of the recipient they belong to. A file without them (JES's,
//! or jes's before DSN) reads as a message whose sender asked for nothing.

use super::{QueueRecipient, QueuedMessage, RecipientState};
use crate::address::closing_bracket;
use crate::dsn::{MessageDsn, Notify, Ret};

/// First line of a JES 1.0 queue file.
pub const JES_V1: &str = "1.0";
/// First line of a queue file written by jes.
pub const JES_QUEUE_V1: &str = "jes-queue 1";

/// Why a queue file's text cannot be read, with the 1-based line it concerns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    pub line: usize,
    pub reason: String,
}

fn err(line: usize, reason: impl Into<String>) -> ParseError {
    ParseError {
        line,
        reason: reason.into(),
    }
}

impl RecipientState {
    /// The word used in queue files.
    pub fn as_str(self) -> &'static str {
        match self {
            RecipientState::Pending => "pending",
            RecipientState::Delivered => "delivered",
            RecipientState::Failed => "failed",
            RecipientState::Held => "held",
            RecipientState::Released => "released",
        }
    }

    fn from_word(word: &str) -> Option<Self> {
        match word {
            "pending" => Some(RecipientState::Pending),
            "delivered" => Some(RecipientState::Delivered),
            "failed" => Some(RecipientState::Failed),
            "held" => Some(RecipientState::Held),
            "released" => Some(RecipientState::Released),
            _ => None,
        }
    }
}

/// `1795605697556 (2026-11-25 11:21:37 UTC)`; the date is left out if the number is out of range.
fn time_field(ms: u64) -> String {
    let date = i64::try_from(ms)
        .ok()
        .and_then(chrono::DateTime::from_timestamp_millis);
    match date {
        Some(d) => format!("{ms} ({})", d.format("%Y-%m-%d %H:%M:%S UTC")),
        None => ms.to_string(),
    }
}

/// One line of free text (an SMTP reply): control characters become spaces, so that a multi-line
/// reply cannot break the file apart.
fn one_line(text: &str) -> String {
    let s: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    s.trim().to_string()
}

/// Why an address cannot be written into a queue file, if it cannot. A recipient must also read
/// back as itself from its `To:` line: the line is `<addr> state error`, and an address such as
/// `a> pending b@c` (not one SMTP accepts unquoted) would be read as `a`.
pub fn check_address(addr: &str, null_ok: bool) -> Result<(), String> {
    if addr.is_empty() && !null_ok {
        return Err("empty recipient address".into());
    }
    if addr.chars().any(|c| c.is_control()) {
        return Err(format!("address contains a control character: {addr:?}"));
    }
    if !null_ok {
        let line = format!("<{addr}> {}", RecipientState::Pending.as_str());
        // The address must end by itself: with an unclosed quote (`"a`) the reader would look
        // for its `>` in the error text written after it, which a remote server chose.
        let closes = closing_bracket(&format!("{addr}>")).is_some();
        if !closes || !parse_recipient(&line, 0).is_ok_and(|r| r.address == addr) {
            return Err(format!("address cannot be written unambiguously: {addr:?}"));
        }
    }
    Ok(())
}

/// The file text of `msg` in jes's format. Addresses are written as they are (callers check them
/// with `check_address`); error texts are kept to one line.
pub fn format(msg: &QueuedMessage) -> Vec<u8> {
    let mut head = String::new();
    head.push_str(JES_QUEUE_V1);
    head.push_str("\r\n");
    head.push_str(&format!("From: <{}>\r\n", msg.sender));
    head.push_str(&format!("Received: {}\r\n", time_field(msg.received_ms)));
    head.push_str(&format!("Attempts: {}\r\n", msg.attempts));
    head.push_str(&format!(
        "Next-Attempt: {}\r\n",
        time_field(msg.next_attempt_ms)
    ));
    if msg.delay_warned {
        head.push_str("Delay-Warned: yes\r\n");
    }
    if let Some(ret) = msg.dsn.ret {
        head.push_str(&format!("Ret: {}\r\n", ret.as_str()));
    }
    if let Some(envid) = &msg.dsn.envid {
        head.push_str(&format!("Envid: {}\r\n", one_line(envid)));
    }
    for r in &msg.recipients {
        head.push_str(&format!("To: <{}> {}", r.address, r.state.as_str()));
        if let Some(e) = r.last_error.as_deref().map(one_line) {
            if !e.is_empty() {
                head.push(' ');
                head.push_str(&e);
            }
        }
        head.push_str("\r\n");
        // The recipient's DSN parameters, on lines of their own after its `To:`.
        if let Some(n) = r.dsn.notify {
            head.push_str(&format!("Notify: {}\r\n", n.as_string()));
        }
        if let Some(orcpt) = &r.dsn.orcpt {
            head.push_str(&format!("Orcpt: {}\r\n", one_line(orcpt)));
        }
    }
    head.push_str("\r\n");
    let mut out = head.into_bytes();
    out.extend_from_slice(&msg.message);
    out
}

/// Splits off the line at `pos` (without its CRLF or LF); `None` at the end of the text.
fn next_line(bytes: &[u8], pos: usize) -> Option<(&[u8], usize)> {
    if pos >= bytes.len() {
        return None;
    }
    let rest = &bytes[pos..];
    match rest.iter().position(|&b| b == b'\n') {
        Some(i) => {
            let line = &rest[..i];
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            Some((line, pos + i + 1))
        }
        None => Some((rest, bytes.len())),
    }
}

/// Reads header lines one by one, counting them for error messages.
struct Lines<'a> {
    bytes: &'a [u8],
    pos: usize,
    line: usize,
}

impl<'a> Lines<'a> {
    fn next(&mut self, what: &str) -> Result<&'a str, ParseError> {
        self.line += 1;
        let (line, next) = next_line(self.bytes, self.pos)
            .ok_or_else(|| err(self.line, format!("file ends before the {what} line")))?;
        self.pos = next;
        std::str::from_utf8(line).map_err(|_| err(self.line, format!("{what} is not UTF-8")))
    }

    fn rest(&self) -> Vec<u8> {
        self.bytes[self.pos..].to_vec()
    }
}

fn number<T: std::str::FromStr>(text: &str, line: usize, what: &str) -> Result<T, ParseError> {
    // jes writes `<number> (<date>)`: only the number counts.
    let token = text.split_whitespace().next().unwrap_or("");
    token
        .parse()
        .map_err(|_| err(line, format!("{what} is not a number: {text:?}")))
}

/// Reads a queue file's text in either format; `id` is the digits of its name.
pub fn parse(id: &str, bytes: &[u8]) -> Result<QueuedMessage, ParseError> {
    let mut lines = Lines {
        bytes,
        pos: 0,
        line: 0,
    };
    let first = lines.next("version")?;
    match first.trim() {
        JES_V1 => parse_jes_v1(id, lines),
        JES_QUEUE_V1 => parse_jes_queue_v1(id, lines),
        other => Err(err(1, format!("unknown queue file version {other:?}"))),
    }
}

fn parse_jes_v1(id: &str, mut lines: Lines<'_>) -> Result<QueuedMessage, ParseError> {
    let sender = lines.next("sender")?.trim().to_string();
    let rcpt_line = lines.next("recipients")?;
    let recipients: Vec<QueueRecipient> = rcpt_line
        .split(',')
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .map(|a| QueueRecipient {
            address: a.to_string(),
            state: RecipientState::Pending,
            last_error: None,
            dsn: Default::default(),
        })
        .collect();
    if recipients.is_empty() {
        return Err(err(lines.line, "no recipients"));
    }
    let received_ms = number(lines.next("received time")?, lines.line, "received time")?;
    let next_attempt_ms = number(lines.next("next attempt")?, lines.line, "next attempt")?;
    let attempts = number(lines.next("attempts")?, lines.line, "attempts")?;
    Ok(QueuedMessage {
        id: id.to_string(),
        sender,
        recipients,
        received_ms,
        next_attempt_ms,
        attempts,
        delay_warned: false,
        dsn: Default::default(),
        message: lines.rest(),
    })
}

/// `<addr> state[ error]`. The address ends at the `>` that closes it the way SMTP reads a path
/// (quoted strings may hold `> pending`); failing that, at the first `> ` followed by a state word
/// (addresses from JES files with unbalanced quotes).
fn parse_recipient(value: &str, line: usize) -> Result<QueueRecipient, ParseError> {
    let inner = value
        .strip_prefix('<')
        .ok_or_else(|| err(line, "recipient must be written <address> state"))?;
    let ends = closing_bracket(inner)
        .into_iter()
        .chain(inner.match_indices("> ").map(|(i, _)| i));
    for i in ends {
        if !inner[i..].starts_with("> ") {
            continue;
        }
        let tail = &inner[i + 2..];
        let (word, error) = match tail.split_once(' ') {
            Some((w, e)) => (w, Some(e)),
            None => (tail, None),
        };
        if let Some(state) = RecipientState::from_word(word) {
            let address = inner[..i].to_string();
            if address.is_empty() {
                return Err(err(line, "empty recipient address"));
            }
            let last_error = error.map(str::trim).filter(|e| !e.is_empty());
            return Ok(QueueRecipient {
                address,
                state,
                last_error: last_error.map(str::to_string),
                dsn: Default::default(),
            });
        }
    }
    Err(err(
        line,
        "recipient must be written <address> pending|delivered|failed [last error]",
    ))
}

/// A `Ret:` or `Envid:` line: a DSN parameter of the message.
fn message_dsn(dsn: &mut MessageDsn, key: &str, value: &str, n: usize) -> Result<(), ParseError> {
    let twice = || err(n, format!("{key} appears twice"));
    if key.eq_ignore_ascii_case("ret") {
        if dsn.ret.is_some() {
            return Err(twice());
        }
        let ret = Ret::parse(value);
        dsn.ret = Some(ret.ok_or_else(|| err(n, format!("Ret must be FULL or HDRS: {value:?}")))?);
    } else {
        if dsn.envid.is_some() {
            return Err(twice());
        }
        if !crate::dsn::valid_envid(value) {
            return Err(err(n, format!("Envid is not an ENVID (xtext): {value:?}")));
        }
        dsn.envid = Some(value.to_string());
    }
    Ok(())
}

/// A `Notify:` or `Orcpt:` line: a DSN parameter of the recipient on the `To:` line before it.
fn recipient_dsn(
    last: Option<&mut QueueRecipient>,
    key: &str,
    value: &str,
    n: usize,
) -> Result<(), ParseError> {
    let r = last.ok_or_else(|| err(n, format!("{key} before any To line")))?;
    if key.eq_ignore_ascii_case("notify") {
        if r.dsn.notify.is_some() {
            return Err(err(n, format!("{key} appears twice for one recipient")));
        }
        let notify = Notify::parse(value);
        r.dsn.notify =
            Some(notify.ok_or_else(|| err(n, format!("Notify is not a NOTIFY value: {value:?}")))?);
    } else {
        if r.dsn.orcpt.is_some() {
            return Err(err(n, format!("{key} appears twice for one recipient")));
        }
        if !crate::dsn::valid_orcpt(value) {
            return Err(err(n, format!("Orcpt is not type;xtext: {value:?}")));
        }
        r.dsn.orcpt = Some(value.to_string());
    }
    Ok(())
}

fn parse_jes_queue_v1(id: &str, mut lines: Lines<'_>) -> Result<QueuedMessage, ParseError> {
    let mut sender = None;
    let mut received = None;
    let mut attempts = None;
    let mut next_attempt = None;
    let mut delay_warned = None;
    let mut dsn = MessageDsn::default();
    let mut recipients: Vec<QueueRecipient> = Vec::new();
    loop {
        let text = lines.next("header or empty")?;
        let n = lines.line;
        if text.is_empty() {
            break;
        }
        let (key, value) = text
            .split_once(':')
            .ok_or_else(|| err(n, format!("expected `Key: value`, found {text:?}")))?;
        let value = value.trim();
        let dup = |set: bool| {
            if set {
                Err(err(n, format!("{key} appears twice")))
            } else {
                Ok(())
            }
        };
        match key.trim().to_ascii_lowercase().as_str() {
            "from" => {
                dup(sender.is_some())?;
                let inner = value
                    .strip_prefix('<')
                    .and_then(|v| v.strip_suffix('>'))
                    .ok_or_else(|| err(n, "sender must be written <address> (<> for none)"))?;
                sender = Some(inner.to_string());
            }
            "received" => {
                dup(received.is_some())?;
                received = Some(number(value, n, "Received")?);
            }
            "attempts" => {
                dup(attempts.is_some())?;
                attempts = Some(number(value, n, "Attempts")?);
            }
            "next-attempt" => {
                dup(next_attempt.is_some())?;
                next_attempt = Some(number(value, n, "Next-Attempt")?);
            }
            "delay-warned" => {
                dup(delay_warned.is_some())?;
                delay_warned = Some(match value.to_ascii_lowercase().as_str() {
                    "yes" => true,
                    "no" => false,
                    _ => return Err(err(n, format!("Delay-Warned must be yes or no: {value:?}"))),
                });
            }
            "to" => recipients.push(parse_recipient(value, n)?),
            "ret" | "envid" => message_dsn(&mut dsn, key.trim(), value, n)?,
            "notify" | "orcpt" => recipient_dsn(recipients.last_mut(), key.trim(), value, n)?,
            _ => return Err(err(n, format!("unknown field {key:?}"))),
        }
    }
    let end = lines.line;
    let missing = |what: &str| err(end, format!("{what} line missing before the message"));
    if recipients.is_empty() {
        return Err(missing("To"));
    }
    Ok(QueuedMessage {
        id: id.to_string(),
        sender: sender.ok_or_else(|| missing("From"))?,
        recipients,
        received_ms: received.ok_or_else(|| missing("Received"))?,
        next_attempt_ms: next_attempt.ok_or_else(|| missing("Next-Attempt"))?,
        attempts: attempts.ok_or_else(|| missing("Attempts"))?,
        delay_warned: delay_warned.unwrap_or(false),
        dsn,
        message: lines.rest(),
    })
}
