//! Tests of the DSN: parsed back by hand (un-stuffed, split on the boundary) and checked part by part.

use super::*;
use chrono::TimeZone;

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 25, 12, 0, 0).unwrap()
}

const ORIGINAL: &[u8] = b"X-RecievedDate: Wed Nov 25 11:21:37 UTC 2026\r\n\
From: trackstudio@localhost\r\n\
To: boss@remote.test\r\n\
Subject: Task #2124 changed\r\n\
\r\n\
..a body line with a dot\r\n\
Status: in progress\r\n";

fn rcpt(addr: &str, status: &str, diag: &str, host: Option<&str>) -> FailedRecipient {
    FailedRecipient {
        address: addr.into(),
        status: status.into(),
        diagnostic: diag.into(),
        remote_host: host.map(str::to_string),
        ..Default::default()
    }
}

fn build(failed: &[FailedRecipient], notice: Notice, original: &[u8]) -> Vec<u8> {
    build_dsn(
        "mx.jes.test",
        "trackstudio@localhost",
        original,
        1795605697556,
        failed,
        notice,
        now(),
        "1795605697556000001.dsn@mx.jes.test",
    )
}

/// The lines of a CRLF text (the final CRLF ends the last line).
fn lines(wire: &[u8]) -> Vec<&[u8]> {
    assert!(wire.ends_with(b"\r\n"), "ends with CRLF");
    let mut out = Vec::new();
    let mut start = 0;
    for i in 1..wire.len() {
        if wire[i] == b'\n' && wire[i - 1] == b'\r' {
            out.push(&wire[start..i - 1]);
            start = i + 1;
        }
    }
    out
}

/// Checks the wire-form invariants and returns the un-stuffed text.
fn unstuff(wire: &[u8]) -> String {
    // A bare LF never appears: every LF follows a CR.
    for (i, &b) in wire.iter().enumerate() {
        if b == b'\n' {
            assert!(i > 0 && wire[i - 1] == b'\r', "bare LF at {i}");
        }
    }
    let mut out = Vec::new();
    for l in lines(wire) {
        assert!(l.len() <= 998, "line of {} octets", l.len());
        assert_ne!(l, b".", "no terminating dot");
        out.extend_from_slice(l.strip_prefix(b".").unwrap_or(l));
        out.extend_from_slice(b"\r\n");
    }
    String::from_utf8(out).unwrap()
}

struct Parsed {
    headers: String,
    parts: Vec<(String, String)>,
}

/// Splits the top-level headers and the multipart body on the boundary from Content-Type.
fn parse(text: &str) -> Parsed {
    let (headers, body) = text.split_once("\r\n\r\n").unwrap();
    let unfolded = headers.replace("\r\n\t", " ").replace("\r\n ", " ");
    let ct = unfolded
        .lines()
        .find(|l| l.starts_with("Content-Type:"))
        .unwrap();
    assert!(ct.contains("multipart/report"), "{ct}");
    assert!(ct.contains("report-type=delivery-status"), "{ct}");
    let boundary = ct.split("boundary=\"").nth(1).unwrap();
    let boundary = &boundary[..boundary.find('"').unwrap()];
    let delim = format!("\r\n--{boundary}");
    let body = format!("\r\n{body}");
    let mut pieces: Vec<&str> = body.split(delim.as_str()).collect();
    // Preamble first, then the parts; the last piece is `--` (the close delimiter) and what follows.
    let last = pieces.pop().unwrap();
    assert_eq!(last, "--\r\n", "close delimiter ends the message");
    let parts = pieces[1..]
        .iter()
        .map(|p| {
            let p = p.strip_prefix("\r\n").unwrap();
            let (h, b) = p.split_once("\r\n\r\n").unwrap();
            (h.to_string(), b.to_string())
        })
        .collect();
    Parsed {
        headers: unfolded,
        parts,
    }
}

fn header<'a>(headers: &'a str, name: &str) -> Option<&'a str> {
    headers
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{name}: ")))
}

#[test]
fn null_senders() {
    for s in [
        "",
        "<>",
        " <> ",
        "unknown@example.com",
        "<Unknown@Example.COM>",
        "MAILER-DAEMON@mx.example.org",
        "mailer-daemon@localhost",
        "<Mailer-Daemon@x>",
    ] {
        assert!(is_null_sender(s), "{s:?}");
    }
    for s in [
        "trackstudio@localhost",
        "unknown@example.org",
        "mailer-daemonx@x",
        "x.mailer-daemon@x",
        "postmaster@x",
    ] {
        assert!(!is_null_sender(s), "{s:?}");
    }
}

#[test]
fn failure_has_three_parts_and_the_fields() {
    let failed = [
        rcpt(
            "boss@remote.test",
            "5.1.1",
            "550 5.1.1 <boss@remote.test>: no such user",
            Some("smtp.remote.test"),
        ),
        rcpt("other@remote.test", "5.0.0", "connection refused", None),
    ];
    let wire = build(&failed, Notice::Failure, ORIGINAL);
    let text = unstuff(&wire);
    let p = parse(&text);
    let h = &p.headers;
    assert_eq!(
        header(h, "From"),
        Some("\"Mail Delivery System\" <MAILER-DAEMON@mx.jes.test>")
    );
    assert_eq!(header(h, "To"), Some("<trackstudio@localhost>"));
    assert_eq!(
        header(h, "Subject"),
        Some("Undelivered Mail Returned to Sender")
    );
    assert_eq!(header(h, "Date"), Some("Wed, 25 Nov 2026 12:00:00 +0000"));
    assert_eq!(
        header(h, "Message-ID"),
        Some("<1795605697556000001.dsn@mx.jes.test>")
    );
    assert_eq!(header(h, "Auto-Submitted"), Some("auto-replied"));
    assert_eq!(header(h, "MIME-Version"), Some("1.0"));
    assert_eq!(p.parts.len(), 3);

    let (h1, b1) = &p.parts[0];
    assert!(h1.contains("Content-Type: text/plain"), "{h1}");
    assert!(b1.contains("<boss@remote.test>: host smtp.remote.test said:"));
    assert!(b1.contains("550 5.1.1 <boss@remote.test>: no such user"));
    assert!(b1.contains("<other@remote.test>:\r\nconnection refused"));

    let (h2, b2) = &p.parts[1];
    assert!(h2.contains("Content-Type: message/delivery-status"), "{h2}");
    let groups: Vec<&str> = b2.trim_end().split("\r\n\r\n").collect();
    assert_eq!(groups.len(), 3, "per-message group and one per recipient");
    assert!(groups[0].contains("Reporting-MTA: dns; mx.jes.test"));
    assert!(groups[0].contains("Arrival-Date: Wed, 25 Nov 2026 11:21:37 +0000"));
    let g1 = groups[1];
    assert!(g1.contains("Final-Recipient: rfc822; boss@remote.test"));
    assert!(g1.contains("Action: failed"));
    assert!(g1.contains("Status: 5.1.1"));
    assert!(g1.contains("Remote-MTA: dns; smtp.remote.test"));
    assert!(g1.contains("Diagnostic-Code: smtp; 550 5.1.1 <boss@remote.test>: no such user"));
    let g2 = groups[2];
    assert!(g2.contains("Final-Recipient: rfc822; other@remote.test"));
    assert!(g2.contains("Status: 5.0.0"));
    assert!(!g2.contains("Remote-MTA"));
    assert!(g2.contains("Diagnostic-Code: X-jes; connection refused"));

    let (h3, b3) = &p.parts[2];
    assert!(h3.contains("Content-Type: text/rfc822-headers"), "{h3}");
    assert!(b3.starts_with("X-RecievedDate: Wed Nov 25 11:21:37 UTC 2026\r\n"));
    assert!(b3.contains("Subject: Task #2124 changed\r\n"));
    assert!(!b3.contains("a body line"), "headers only");
}

#[test]
fn delay_notice() {
    let failed = [rcpt(
        "boss@remote.test",
        "4.4.1",
        "421 4.4.1 try later",
        Some("mx.remote.test"),
    )];
    let text = unstuff(&build(&failed, Notice::Delay, ORIGINAL));
    let p = parse(&text);
    assert_eq!(
        header(&p.headers, "Subject"),
        Some("Delayed Mail (still being retried)")
    );
    assert!(p.parts[1].1.contains("Action: delayed"));
    assert!(p.parts[1].1.contains("Status: 4.4.1"));
}

#[test]
fn bad_status_is_replaced() {
    let failed = [rcpt("a@b.test", "550", "550 no", None)];
    let text = unstuff(&build(&failed, Notice::Failure, ORIGINAL));
    assert!(text.contains("Status: 5.0.0\r\n"));
    let text = unstuff(&build(&failed, Notice::Delay, ORIGINAL));
    assert!(text.contains("Status: 4.0.0\r\n"));
}

#[test]
fn original_headers_are_unstuffed_then_stuffed_once() {
    // A header line starting with a dot cannot come from a real client, but the rule must hold.
    let original = b"..X-Odd: dotted\r\nSubject: s\r\n\r\n..body\r\n";
    let wire = build(
        &[rcpt("a@b.test", "5.1.1", "550 no", None)],
        Notice::Failure,
        original,
    );
    let raw = String::from_utf8(wire.clone()).unwrap();
    assert!(raw.contains("\r\n..X-Odd: dotted\r\n"), "stuffed once");
    assert!(!raw.contains("...X-Odd"));
    let p = parse(&unstuff(&wire));
    assert_eq!(p.parts[2].1, ".X-Odd: dotted\r\nSubject: s\r\n");
}

#[test]
fn human_text_line_starting_with_dot_is_stuffed() {
    // The remote reply is quoted unindented, so a wrapped line can start with a dot.
    let diag = format!("550 {} .hidden", "x".repeat(72));
    let wire = build(
        &[rcpt("a@b.test", "5.1.1", &diag, None)],
        Notice::Failure,
        ORIGINAL,
    );
    let raw = String::from_utf8(wire.clone()).unwrap();
    assert!(raw.contains("\r\n..hidden\r\n"), "{raw}");
    let p = parse(&unstuff(&wire));
    assert!(p.parts[0].1.contains("\r\n.hidden\r\n"));
}

#[test]
fn long_diagnostics_and_headers_keep_lines_short() {
    let long_word = "y".repeat(3000);
    let diag = format!("550 5.7.1 {long_word} {}", "word ".repeat(400));
    let mut original = b"Subject: ".to_vec();
    original.extend_from_slice("é".repeat(1500).as_bytes());
    original.extend_from_slice(b"\r\n\r\nbody\r\n");
    let wire = build(
        &[rcpt("a@b.test", "5.7.1", &diag, Some("h.test"))],
        Notice::Failure,
        &original,
    );
    // `unstuff` asserts every line is at most 998 octets; the text stays valid UTF-8.
    let p = parse(&unstuff(&wire));
    assert!(p.parts[1].1.contains("Diagnostic-Code: smtp; 550 5.7.1"));
    assert!(p.parts[1].1.contains("..."), "cut");
    assert!(p.parts[2].0.contains("Content-Transfer-Encoding: 8bit"));
    let unfolded = p.parts[2].1.replace("\r\n ", "");
    assert!(unfolded.starts_with(&format!("Subject: {}", "é".repeat(1500))));
}

#[test]
fn control_characters_cannot_inject_fields() {
    let failed = [rcpt(
        "a@b.test\r\nX-Evil: 1",
        "5.1.1",
        "550 no\r\nX-Evil: 2",
        Some("h\r\nX-Evil: 3"),
    )];
    let text = unstuff(&build(&failed, Notice::Failure, ORIGINAL));
    assert!(!text.contains("\r\nX-Evil"), "{text}");
}

#[test]
fn boundary_avoids_content() {
    let b = pick_boundary(now(), &[]);
    let clash = format!("--{b}");
    let wire = build(
        &[rcpt("a@b.test", "5.1.1", &clash, None)],
        Notice::Failure,
        ORIGINAL,
    );
    let p = parse(&unstuff(&wire));
    assert_eq!(p.parts.len(), 3);
    assert!(p.parts[0].1.contains(&clash));
}

#[test]
fn a_mime_parser_reads_the_report_and_8bit_human_text_is_encoded() {
    let failed = [rcpt(
        "jos\u{e9}@remote.test",
        "5.1.1",
        "550 5.1.1 unbekannter Empf\u{e4}nger",
        Some("mx.remote.test"),
    )];
    let text = unstuff(&build(&failed, Notice::Failure, ORIGINAL));
    let p = parse(&text);
    // The human part goes out in a transfer encoding, not as raw 8-bit bytes under no label.
    let (h1, b1) = &p.parts[0];
    assert!(h1.contains("charset=\"utf-8\""), "{h1}");
    assert!(
        h1.contains("Content-Transfer-Encoding: quoted-printable")
            || h1.contains("Content-Transfer-Encoding: base64"),
        "{h1}"
    );
    assert!(b1.is_ascii(), "{b1}");

    use mail_parser::MimeHeaders;
    let msg = mail_parser::MessageParser::default()
        .parse(text.as_bytes())
        .unwrap();
    let types: Vec<String> = msg
        .parts
        .iter()
        .filter_map(|part| part.content_type())
        .map(|ct| format!("{}/{}", ct.ctype(), ct.subtype().unwrap_or("")))
        .collect();
    assert_eq!(
        types,
        [
            "multipart/report",
            "text/plain",
            "message/delivery-status",
            "text/rfc822-headers"
        ]
    );
    let human = msg.body_text(0).unwrap();
    assert!(
        human.contains("<jos\u{e9}@remote.test>: host mx.remote.test said:"),
        "{human}"
    );
    assert!(
        human.contains("550 5.1.1 unbekannter Empf\u{e4}nger"),
        "{human}"
    );
}

fn build_with(failed: &[FailedRecipient], notice: Notice, options: ReportOptions<'_>) -> Parsed {
    let wire = build_report(
        "mx.jes.test",
        "trackstudio@localhost",
        ORIGINAL,
        1795605697556,
        failed,
        notice,
        now(),
        "1.dsn@mx.jes.test",
        options,
    );
    parse(&unstuff(&wire))
}

/// RFC 3461: the ENVID and each ORCPT, decoded from xtext, in the report; `RET=FULL` returns the
/// whole message (a failure), `RET=HDRS` and no RET its header section only.
#[test]
fn envid_orcpt_and_ret() {
    let mut r = rcpt("boss@remote.test", "5.1.1", "550 5.1.1 no", None);
    r.orcpt = Some("rfc822;Boss+2Bx@remote.test".into());
    let failed = [r, rcpt("plain@remote.test", "5.1.1", "550 5.1.1 no", None)];
    let full = ReportOptions {
        envid: Some("QQ+2B314159"),
        full: true,
    };
    let p = build_with(&failed, Notice::Failure, full);
    let groups: Vec<&str> = p.parts[1].1.trim_end().split("\r\n\r\n").collect();
    assert!(
        groups[0].starts_with("Original-Envelope-Id: QQ+314159\r\n"),
        "{}",
        groups[0]
    );
    assert!(groups[1].contains("Original-Recipient: rfc822;Boss+x@remote.test\r\n"));
    assert!(!groups[2].contains("Original-Recipient"), "{}", groups[2]);
    let (h3, b3) = &p.parts[2];
    assert!(h3.contains("Content-Type: message/rfc822"), "{h3}");
    assert!(b3.contains("Subject: Task #2124 changed\r\n"));
    assert!(
        b3.contains("\r\n.a body line with a dot\r\n"),
        "the body, un-stuffed: {b3}"
    );

    for hdrs in [
        ReportOptions {
            envid: None,
            full: false,
        },
        ReportOptions::of(&crate::dsn::MessageDsn {
            ret: Some(crate::dsn::Ret::Hdrs),
            envid: None,
        }),
    ] {
        let p = build_with(&failed, Notice::Failure, hdrs);
        assert!(!p.parts[1].1.contains("Original-Envelope-Id"));
        let (h3, b3) = &p.parts[2];
        assert!(h3.contains("Content-Type: text/rfc822-headers"), "{h3}");
        assert!(b3.contains("Subject: Task #2124 changed\r\n"));
        assert!(!b3.contains("a body line"), "headers only");
    }
}

/// `NOTIFY=SUCCESS`: `delivered` for a mailbox here, `relayed` to a server without DSN; the
/// message goes back as headers only, whatever RET says (RET is about failures).
#[test]
fn success_report() {
    let mut delivered = rcpt(
        "ann@local.test",
        "2.0.0",
        "250 2.0.0 delivered locally",
        None,
    );
    delivered.action = Some(Action::Delivered);
    let mut relayed = rcpt(
        "boss@remote.test",
        "2.0.0",
        "250 2.0.0 Ok: queued as 4F",
        Some("up.test"),
    );
    relayed.action = Some(Action::Relayed);
    let options = ReportOptions {
        envid: Some("E1"),
        full: true,
    };
    let p = build_with(&[delivered, relayed], Notice::Success, options);
    assert_eq!(
        header(&p.headers, "Subject"),
        Some("Successful Mail Delivery Report")
    );
    let status = &p.parts[1].1;
    let groups: Vec<&str> = status.trim_end().split("\r\n\r\n").collect();
    assert!(groups[0].contains("Original-Envelope-Id: E1"));
    assert!(
        groups[1].contains("Action: delivered\r\nStatus: 2.0.0"),
        "{}",
        groups[1]
    );
    assert!(
        groups[2].contains("Action: relayed\r\nStatus: 2.0.0"),
        "{}",
        groups[2]
    );
    assert!(groups[2].contains("Remote-MTA: dns; up.test"));
    let (h3, b3) = &p.parts[2];
    assert!(h3.contains("Content-Type: text/rfc822-headers"), "{h3}");
    assert!(!b3.contains("a body line"));
}
