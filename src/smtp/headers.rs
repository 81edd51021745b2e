//! The little the receiver needs to know about a message's header section, and the header lines it
//! adds in front. Headers are only looked at, never rewritten: the message is kept exactly as it
//! came (RFC 5321 §6.3: `Received:` is prepended, nothing else is changed for untrusted clients),
//! and what the server adds goes into `Envelope::header_prefix`, which the store writes first.

use std::net::IpAddr;

/// What the header section says about loops and missing fields.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct HeaderFacts {
    pub received: usize,
    pub has_date: bool,
    pub has_message_id: bool,
}

/// Looks at the header section of a message in wire form (CRLF lines, dot-stuffed): the lines up to
/// the first empty one, or all of them when there is none.
pub(super) fn scan(data: &[u8]) -> HeaderFacts {
    let mut facts = HeaderFacts::default();
    for line in data.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            break;
        }
        // A line starting with a dot arrives stuffed; the header name is after the extra dot.
        let line = line.strip_prefix(b".").unwrap_or(line);
        if line.first().is_some_and(|&b| b == b' ' || b == b'\t') {
            continue; // continuation of a folded field
        }
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let name = line[..colon].trim_ascii_end();
        if name.eq_ignore_ascii_case(b"received") {
            facts.received += 1;
        } else if name.eq_ignore_ascii_case(b"date") {
            facts.has_date = true;
        } else if name.eq_ignore_ascii_case(b"message-id") {
            facts.has_message_id = true;
        }
    }
    facts
}

/// What goes into the `Received:` line.
pub(super) struct Trace<'a> {
    pub helo: &'a str,
    /// The `with` protocol type, from [`protocol`].
    pub protocol: &'static str,
    pub client_ip: IpAddr,
    pub hostname: &'a str,
    pub id: &'a str,
    /// Named in `for <...>` only when the message has exactly this one recipient.
    pub single_recipient: Option<&'a str>,
    pub now: &'a str,
}

/// The `with` type of RFC 3848 (the IANA "Mail Transmission Types"): `ESMTP` plus `S` for TLS
/// (STARTTLS or a TLS port) and `A` for a logged-in client, so that a reader of the header can see
/// how the message came. After HELO there is no extension and no suffix (the registry has no
/// `SMTPS`): plain `SMTP`, which is also what a HELO client on a TLS port gets.
///
/// A transaction with `SMTPUTF8` is `UTF8SMTP`, `UTF8SMTPS`, `UTF8SMTPA` or `UTF8SMTPSA`
/// (RFC 6531 §4.3); delivery reads that back from our own `Received:` line
/// ([`received_with_smtputf8`]) to know that the message asked for SMTPUTF8.
pub(super) fn protocol(
    esmtp: bool,
    encrypted: bool,
    authenticated: bool,
    utf8: bool,
) -> &'static str {
    match (esmtp, utf8, encrypted, authenticated) {
        (false, _, _, _) => "SMTP",
        (true, false, false, false) => "ESMTP",
        (true, false, true, false) => "ESMTPS",
        (true, false, false, true) => "ESMTPA",
        (true, false, true, true) => "ESMTPSA",
        (true, true, false, false) => "UTF8SMTP",
        (true, true, true, false) => "UTF8SMTPS",
        (true, true, false, true) => "UTF8SMTPA",
        (true, true, true, true) => "UTF8SMTPSA",
    }
}

/// Whether a stored message's first header field is a `Received:` line of ours (or any) whose
/// `with` is one of RFC 6531's `UTF8SMTP` types: the message was received with SMTPUTF8.
pub fn received_with_smtputf8(message: &[u8]) -> bool {
    // The field may be folded over a few lines; ours is three lines, well within 1,000 octets.
    let head = &message[..message.len().min(1000)];
    let mut field = Vec::new();
    for (i, line) in head.split(|&b| b == b'\n').enumerate() {
        let continuation = line.first().is_some_and(|&b| b == b' ' || b == b'\t');
        if i > 0 && !continuation {
            break;
        }
        field.extend_from_slice(line);
        field.push(b' ');
    }
    let field = String::from_utf8_lossy(&field);
    if !field
        .get(..9)
        .is_some_and(|n| n.eq_ignore_ascii_case("received:"))
    {
        return false;
    }
    field
        .split_ascii_whitespace()
        .collect::<Vec<_>>()
        .windows(2)
        .any(|w| {
            w[0].eq_ignore_ascii_case("with") && w[1].to_ascii_uppercase().starts_with("UTF8SMTP")
        })
}

/// `Received: from HELO ([IP])` CRLF TAB `by HOST (jes) with PROTOCOL id ID` CRLF TAB
/// `for <RCPT>; DATE` CRLF, folded so that each line stays far below 998 octets (the HELO name and
/// the address are each bounded by the 512-octet command line).
pub(super) fn received(t: &Trace<'_>) -> String {
    let ip = match t.client_ip.to_canonical() {
        IpAddr::V4(a) => a.to_string(),
        IpAddr::V6(a) => format!("IPv6:{a}"),
    };
    let mut s = format!(
        "Received: from {} ([{}])\r\n\tby {} (jes) with {} id {}",
        t.helo, ip, t.hostname, t.protocol, t.id
    );
    match t.single_recipient {
        Some(rcpt) => s.push_str(&format!("\r\n\tfor <{}>; {}\r\n", rcpt, t.now)),
        None => s.push_str(&format!(";\r\n\t{}\r\n", t.now)),
    }
    s
}
