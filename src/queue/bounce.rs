//! Bounces: RFC 3464 delivery status notifications, built as bytes with no I/O.
//!
//! JES sent a free-text bounce that neither people nor programs could rely on; a DSN has a human
//! part, a machine-readable `message/delivery-status` part and the original header section, so an
//! application can match a bounce to the mail it sent. The result is in the queue's wire form (CRLF,
//! dot-stuffed) so it is enqueued like any accepted message. It is pure so that its structure is
//! tested on bytes alone, and every line stays below SMTP's 998-octet limit whatever the remote
//! server replied.

use chrono::{DateTime, Utc};
use mail_builder::headers::address::Address;
use mail_builder::headers::content_type::ContentType;
use mail_builder::headers::date::Date;
use mail_builder::headers::raw::Raw;
use mail_builder::headers::text::Text;
use mail_builder::mime::MimePart;
use mail_builder::MessageBuilder;

/// One recipient the notice is about.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FailedRecipient {
    pub address: String,
    /// Enhanced status code, e.g. `5.1.1`.
    pub status: String,
    /// The remote server's reply (e.g. `550 5.1.1 no such user`) or jes's own reason.
    pub diagnostic: String,
    /// The server that gave the reply, when there was one.
    pub remote_host: Option<String>,
    /// The sender's `ORCPT=` for this recipient, as sent (`rfc822;xtext`): the report's
    /// `Original-Recipient:`.
    pub orcpt: Option<String>,
    /// What happened, when the notice's kind does not say it alone (a success report: `delivered`
    /// or `relayed`).
    pub action: Option<Action>,
}

/// The `Action:` of one recipient in a report (RFC 3464 §2.3.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Failed,
    Delayed,
    /// Delivered into a mailbox here.
    Delivered,
    /// Handed to a server that does not offer DSN: no further report will come (RFC 3461 §5.2.2).
    Relayed,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Failed => "failed",
            Action::Delayed => "delayed",
            Action::Delivered => "delivered",
            Action::Relayed => "relayed",
        }
    }
}

/// What the sender asked the report to carry (RFC 3461): the `ENVID` (xtext, as sent), and whether
/// the whole message goes back (`RET=FULL`) rather than its header section.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReportOptions<'a> {
    pub envid: Option<&'a str>,
    pub full: bool,
}

impl<'a> ReportOptions<'a> {
    /// What the sender asked for at MAIL (`ENVID=`, `RET=`).
    pub fn of(dsn: &'a crate::dsn::MessageDsn) -> ReportOptions<'a> {
        ReportOptions {
            envid: dsn.envid.as_deref(),
            full: dsn.ret == Some(crate::dsn::Ret::Full),
        }
    }
}

/// Largest message a report returns whole (`RET=FULL`); a bigger one goes back as its header
/// section, as RFC 3461 §4.3 allows (Postfix's `bounce_size_limit` does the same).
pub const MAX_RETURNED: usize = 10 * 1024 * 1024;

/// What the notice reports: a final failure, a delay while retries go on, or a success the sender
/// asked to hear of (`NOTIFY=SUCCESS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Notice {
    Failure,
    Delay,
    Success,
}

/// True for a sender that must never receive a bounce: the null sender (empty or `<>`), JES 1.0's
/// stand-in for it (`unknown@example.com`), and any `MAILER-DAEMON@…` (bounces of bounces loop).
pub fn is_null_sender(sender: &str) -> bool {
    let s = sender.trim();
    let s = s
        .strip_prefix('<')
        .and_then(|s| s.strip_suffix('>'))
        .unwrap_or(s)
        .trim();
    if s.is_empty() || s.eq_ignore_ascii_case("unknown@example.com") {
        return true;
    }
    match s.rsplit_once('@') {
        Some((local, _)) => local.eq_ignore_ascii_case("mailer-daemon"),
        None => s.eq_ignore_ascii_case("mailer-daemon"),
    }
}

/// Longest line we write, without CRLF (RFC 5322 allows 998).
const MAX_LINE: usize = 998;
/// Width the human text is wrapped to: short enough that mail-builder can send it as 7bit (it
/// encodes a text part with longer lines as quoted-printable).
const WRAP: usize = 72;
/// Width folded fields of the delivery report are wrapped to.
const FIELD_WRAP: usize = 76;
/// Longest diagnostic kept; a reply beyond this is noise and is cut.
const MAX_DIAGNOSTIC: usize = 800;

/// Builds the notice to `original_sender` about `failed`. `original` is the queued message in wire
/// form; `message_id` may be given with or without angle brackets. Returns the DSN in wire form
/// (CRLF, dot-stuffed, no terminating dot).
///
/// mail-builder writes the header section and the MIME structure. The report's parts are given
/// to it as bytes with their transfer encoding named, so that it writes them unchanged: RFC 3464
/// defines `message/delivery-status` as 7bit fields, and the original's header section goes back
/// as it came (8bit only when it has 8-bit bytes). The human part is plain text, which
/// mail-builder encodes as needed (quoted-printable for a long or non-ASCII diagnostic).
#[allow(clippy::too_many_arguments)]
pub fn build_dsn(
    hostname: &str,
    original_sender: &str,
    original: &[u8],
    original_received_ms: u64,
    failed: &[FailedRecipient],
    notice: Notice,
    now: DateTime<Utc>,
    message_id: &str,
) -> Vec<u8> {
    build_report(
        hostname,
        original_sender,
        original,
        original_received_ms,
        failed,
        notice,
        now,
        message_id,
        ReportOptions::default(),
    )
}

/// `build_dsn` with what the sender asked for (RFC 3461): the `ENVID` as `Original-Envelope-Id`,
/// each recipient's `ORCPT` as `Original-Recipient`, and the whole message instead of its header
/// section for a failure report under `RET=FULL`.
#[allow(clippy::too_many_arguments)]
pub fn build_report(
    hostname: &str,
    original_sender: &str,
    original: &[u8],
    original_received_ms: u64,
    failed: &[FailedRecipient],
    notice: Notice,
    now: DateTime<Utc>,
    message_id: &str,
    options: ReportOptions<'_>,
) -> Vec<u8> {
    let hostname = clean(hostname);
    let sender = clean(
        original_sender
            .trim()
            .trim_start_matches('<')
            .trim_end_matches('>'),
    );
    let (returned_type, returned_what, headers) = returned(original, notice, options.full);
    let human = crlf(&human_part(&hostname, failed, notice));
    let status = crlf(&status_part(
        &hostname,
        original_received_ms,
        failed,
        notice,
        options.envid,
    ));

    let boundary = pick_boundary(now, &[human.as_bytes(), status.as_bytes(), &headers]);
    let message_id = clean(
        message_id
            .trim()
            .trim_start_matches('<')
            .trim_end_matches('>'),
    );
    let subject = match notice {
        Notice::Failure => "Undelivered Mail Returned to Sender",
        Notice::Delay => "Delayed Mail (still being retried)",
        Notice::Success => "Successful Mail Delivery Report",
    };

    let human_type = ContentType::new("text/plain").attribute("charset", charset(human.as_bytes()));
    let parts = vec![
        MimePart::new(human_type, human.as_str())
            .header("Content-Description", Text::new("Notification")),
        MimePart::new("message/delivery-status", status.as_bytes())
            .header("Content-Description", Text::new("Delivery report"))
            .transfer_encoding(bits(status.as_bytes())),
        MimePart::new(returned_type, headers.as_slice())
            .header("Content-Description", Text::new(returned_what))
            .transfer_encoding(bits(&headers)),
    ];
    // Written as is (not as a ContentType, which quotes every parameter): the unquoted
    // `report-type=delivery-status` is what bounce processors look for.
    let report = MimePart::raw(parts).header(
        "Content-Type",
        Raw::new(format!(
            "multipart/report; report-type=delivery-status; boundary=\"{boundary}\""
        )),
    );
    let mut out = Vec::new();
    MessageBuilder::new()
        .from(Address::new_address(
            Some("Mail Delivery System"),
            format!("MAILER-DAEMON@{hostname}"),
        ))
        .to(Address::new_address(None::<&str>, sender))
        .subject(subject)
        .date(Date::new(now.timestamp()))
        .message_id(message_id)
        .header("Auto-Submitted", Raw::new("auto-replied"))
        .body(report)
        .serialize(&mut out);
    dot_stuff(&out)
}

/// What a report gives back of the original: its content type, description and bytes. The whole
/// message (`message/rfc822`, un-stuffed) only for a failure under `RET=FULL` and up to
/// `MAX_RETURNED`; otherwise the header section.
fn returned(original: &[u8], notice: Notice, full: bool) -> (&'static str, &'static str, Vec<u8>) {
    if full && notice == Notice::Failure && original.len() <= MAX_RETURNED {
        let whole = crate::stored_form::unstuff(original);
        return ("message/rfc822", "Undelivered message", whole);
    }
    let what = match notice {
        Notice::Success => "Message headers",
        _ => "Undelivered message headers",
    };
    ("text/rfc822-headers", what, original_headers(original))
}

/// `text` with CRLF line ends, every line ended.
fn crlf(text: &str) -> String {
    text.lines().map(|l| format!("{l}\r\n")).collect()
}

/// The transfer encoding that names what `bytes` are: `7bit`, or `8bit` when a byte has the high
/// bit set. Lines are already short and CRLF-ended.
fn bits(bytes: &[u8]) -> &'static str {
    if bytes.is_ascii() {
        "7bit"
    } else {
        "8bit"
    }
}

/// Control characters become spaces so that a value can never start a new line or field.
fn clean(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect::<String>()
        .trim()
        .to_string()
}

fn charset(bytes: &[u8]) -> &'static str {
    if bytes.is_ascii() {
        "us-ascii"
    } else {
        "utf-8"
    }
}

/// The diagnostic cleaned to one line and cut to `MAX_DIAGNOSTIC` bytes on a character boundary.
fn short_diagnostic(text: &str) -> String {
    let mut s = clean(text);
    if s.len() > MAX_DIAGNOSTIC {
        let mut end = MAX_DIAGNOSTIC;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
        s.push_str("...");
    }
    s
}

/// Splits `text` into lines of at most `width` bytes at spaces; a word longer than `MAX_LINE - 8`
/// bytes is cut (on a character boundary) so that no line can exceed the limit.
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut cur = String::new();
    for word in text.split(' ').filter(|w| !w.is_empty()) {
        let mut word = word;
        while word.len() > MAX_LINE - 8 {
            let mut end = MAX_LINE - 8;
            while !word.is_char_boundary(end) {
                end -= 1;
            }
            if !cur.is_empty() {
                lines.push(std::mem::take(&mut cur));
            }
            lines.push(word[..end].to_string());
            word = &word[end..];
        }
        if !cur.is_empty() && cur.len() + 1 + word.len() > width {
            lines.push(std::mem::take(&mut cur));
        }
        if !cur.is_empty() {
            cur.push(' ');
        }
        cur.push_str(word);
    }
    if !cur.is_empty() {
        lines.push(cur);
    }
    lines
}

/// `Name: value`, folded at spaces (continuation lines start with a space, RFC 5322 §2.2.3).
fn field(name: &str, value: &str) -> String {
    let first = format!("{name}: {value}");
    wrap(&first, FIELD_WRAP).join("\n ")
}

fn human_part(hostname: &str, failed: &[FailedRecipient], notice: Notice) -> String {
    let mut text = format!("This is the mail system at host {hostname}.\n\n");
    let intro = match notice {
        Notice::Failure => {
            "I'm sorry to have to inform you that your message could not be delivered to one or \
             more recipients. Its headers are attached below; the reason for each \
             recipient follows."
        }
        Notice::Delay => {
            "Your message could not be delivered yet to one or more recipients. The mail system \
             will keep trying; you do not need to send it again. The last reason for each \
             recipient follows."
        }
        Notice::Success => {
            "Your message was successfully delivered to the destination(s) listed below. If \
             the message was delivered to a mailbox you will receive no further notifications; \
             if it was relayed to a system that does not report deliveries, this is the last \
             report you will receive."
        }
    };
    for l in wrap(intro, WRAP) {
        text.push_str(&l);
        text.push('\n');
    }
    for r in failed {
        text.push('\n');
        let who = match &r.remote_host {
            Some(h) => format!("<{}>: host {} said:", clean(&r.address), clean(h)),
            None => format!("<{}>:", clean(&r.address)),
        };
        for l in wrap(&who, WRAP) {
            text.push_str(&l);
            text.push('\n');
        }
        // The reply is quoted as the server gave it, not indented: it is what the sender needs.
        for l in wrap(&short_diagnostic(&r.diagnostic), WRAP) {
            text.push_str(&l);
            text.push('\n');
        }
    }
    text
}

/// `d.d.d` with a class of 2, 4 or 5 (RFC 3463); anything else is replaced.
fn valid_status(s: &str) -> bool {
    let parts: Vec<&str> = s.split('.').collect();
    parts.len() == 3
        && matches!(parts[0], "2" | "4" | "5")
        && parts[1..]
            .iter()
            .all(|p| (1..=3).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit()))
}

fn status_part(
    hostname: &str,
    received_ms: u64,
    failed: &[FailedRecipient],
    notice: Notice,
    envid: Option<&str>,
) -> String {
    let mut text = String::new();
    let mut push = |s: String| {
        text.push_str(&s);
        text.push('\n');
    };
    if let Some(envid) = envid {
        // RFC 3464 §2.2.1: the ENVID, decoded from xtext, case and spelling kept.
        push(field(
            "Original-Envelope-Id",
            &clean(&crate::dsn::decode(envid)),
        ));
    }
    push(field("Reporting-MTA", &format!("dns; {hostname}")));
    let arrival = i64::try_from(received_ms)
        .ok()
        .and_then(DateTime::<Utc>::from_timestamp_millis);
    if let Some(a) = arrival {
        push(field("Arrival-Date", &a.to_rfc2822()));
    }
    let (action, default_status) = match notice {
        Notice::Failure => (Action::Failed, "5.0.0"),
        Notice::Delay => (Action::Delayed, "4.0.0"),
        Notice::Success => (Action::Delivered, "2.0.0"),
    };
    for r in failed {
        push(String::new());
        if let Some(orcpt) = &r.orcpt {
            push(field(
                "Original-Recipient",
                &clean(&crate::dsn::orcpt_for_report(orcpt)),
            ));
        }
        push(field(
            "Final-Recipient",
            &format!("rfc822; {}", clean(&r.address)),
        ));
        push(field("Action", r.action.unwrap_or(action).as_str()));
        let status = r.status.trim();
        push(field(
            "Status",
            if valid_status(status) {
                status
            } else {
                default_status
            },
        ));
        if let Some(h) = &r.remote_host {
            push(field("Remote-MTA", &format!("dns; {}", clean(h))));
        }
        let diag = short_diagnostic(&r.diagnostic);
        if !diag.is_empty() {
            // `smtp` only for what is an SMTP reply; jes's own reasons are marked as such.
            let is_reply = diag.len() >= 3 && diag.as_bytes()[..3].iter().all(u8::is_ascii_digit);
            let kind = if is_reply { "smtp" } else { "X-jes" };
            push(field("Diagnostic-Code", &format!("{kind}; {diag}")));
        }
    }
    text
}

/// The original's header section, un-stuffed, with CRLF line ends, each line under the limit (a
/// longer one is folded with a leading space, which keeps it a header line).
fn original_headers(wire: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut rest = wire;
    while !rest.is_empty() {
        let (line, next) = match rest.iter().position(|&b| b == b'\n') {
            Some(i) => (&rest[..i], &rest[i + 1..]),
            None => (rest, &rest[rest.len()..]),
        };
        rest = next;
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let line = line.strip_prefix(b".").unwrap_or(line);
        if line.is_empty() {
            break;
        }
        let mut line = line;
        while line.len() > MAX_LINE - 1 {
            let mut cut = MAX_LINE - 1;
            // Never in the middle of a UTF-8 sequence.
            while cut > 1 && (line[cut] & 0xC0) == 0x80 {
                cut -= 1;
            }
            out.extend_from_slice(&line[..cut]);
            out.extend_from_slice(b"\r\n ");
            line = &line[cut..];
        }
        out.extend_from_slice(line);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// A boundary that occurs in none of the parts.
fn pick_boundary(now: DateTime<Utc>, parts: &[&[u8]]) -> String {
    let mut boundary = format!("=_jes-dsn-{}", now.timestamp_millis());
    while parts
        .iter()
        .any(|p| p.windows(boundary.len()).any(|w| w == boundary.as_bytes()))
    {
        boundary.push('_');
    }
    boundary
}

/// Every line that starts with `.` gets another (RFC 5321 §4.5.2).
fn dot_stuff(text: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len() + 16);
    let mut at_start = true;
    for &b in text {
        if at_start && b == b'.' {
            out.push(b'.');
        }
        out.push(b);
        at_start = b == b'\n';
    }
    out
}

#[cfg(test)]
#[path = "bounce_tests.rs"]
mod tests;
