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
pub(super) fn protocol(esmtp: bool, encrypted: bool, authenticated: bool) -> &'static str {
    match (esmtp, encrypted, authenticated) {
        (false, _, _) => "SMTP",
        (true, false, false) => "ESMTP",
        (true, true, false) => "ESMTPS",
        (true, false, true) => "ESMTPA",
        (true, true, true) => "ESMTPSA",
    }
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
