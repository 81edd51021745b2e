//! Unit tests of the DATA phase: the terminator, smuggling, wire form, size, loops and the header
//! prefix. Each smuggling case is also fed one byte at a time, since a split read is exactly where
//! a terminator scanner goes wrong.

use super::tests::{ehloed, params, with_conn, Driver, MSGID, NOW};
use super::*;
use std::net::{IpAddr, Ipv6Addr};

const START: &[u8] = b"MAIL FROM:<a@b.test>\r\nRCPT TO:<c@d.test>\r\nDATA\r\n";

/// Runs `START`, then `data`, in one piece and byte by byte (default `smtp.barelf=normalize`);
/// both runs must agree.
fn send(data: &[u8]) -> Driver {
    send_as(params(), data)
}

/// `send` with `smtp.barelf=reject`.
fn send_rejecting(data: &[u8]) -> Driver {
    send_as(
        SessionParams {
            normalize_bare_lf: false,
            ..params()
        },
        data,
    )
}

fn send_as(p: SessionParams, data: &[u8]) -> Driver {
    let ehloed = || {
        let mut d = Driver::new(p.clone());
        d.feed(b"EHLO client.test\r\n");
        d
    };
    let mut whole = ehloed();
    whole.feed(START);
    whole.feed(data);
    let mut bytes = ehloed();
    for b in START.iter().chain(data) {
        bytes.feed(&[*b]);
    }
    assert_eq!(whole.log, bytes.log);
    assert_eq!(whole.buf, bytes.buf);
    whole
}

#[test]
fn body_kept_in_wire_form() {
    let mut body = b"Subject: t\r\n\r\n..\r\n...\r\n..x\r\n".to_vec();
    body.extend_from_slice(&[b'y'; 999]);
    body.extend_from_slice(b"\r\n\x80\xff\xe9 8-bit\r\n\x00nul\r\nend");
    body.extend_from_slice(b"\r\n");
    let mut input = body.clone();
    input.extend_from_slice(b".\r\n");
    let d = send(&input);
    assert_eq!(d.stores().len(), 1);
    assert_eq!(d.stores()[0].data, body);
    assert_eq!(d.last(), "250 2.0.0 OK queued as Q1\r\n");
}

#[test]
fn empty_message_and_dot_right_after_data() {
    let d = send(b".\r\n");
    assert_eq!(d.stores()[0].data, b"");
    let d = send(b"\r\n.\r\n");
    assert_eq!(d.stores()[0].data, b"\r\n");
}

#[test]
fn text_without_final_crlf_is_not_ended_by_dot() {
    // "x.\r\n" is not a terminator: the dot is not at a line start.
    let d = send(b"x.\r\n.\r\n");
    assert_eq!(d.stores()[0].data, b"x.\r\n");
}

#[test]
fn smuggling_never_makes_a_second_message() {
    let forged = b"MAIL FROM:<evil@x.test>\r\nRCPT TO:<c@d.test>\r\nDATA\r\nforged\r\n";
    for inner in [
        &b"\n.\r\n"[..],
        b"\r\n.\n",
        b"\r.\r\n",
        b"\n.\n",
        b"\r\n.\r",
        b"\r\n.\rX",
    ] {
        let mut input = b"Subject: a\r\n\r\nfirst".to_vec();
        input.extend_from_slice(inner);
        input.extend_from_slice(forged);
        input.extend_from_slice(b".\r\nNOOP\r\n");
        let d = send_rejecting(&input);
        assert!(d.stores().is_empty(), "{inner:?}");
        let r = d.replies();
        assert_eq!(
            r[r.len() - 2],
            "550 5.6.11 Message contains bare LF or CR; lines must end with CRLF\r\n",
            "{inner:?}"
        );
        assert_eq!(r[r.len() - 1], "250 2.0.0 OK\r\n");
    }
}

#[test]
fn bare_cr_or_lf_anywhere_refuses_the_message() {
    for data in [
        &b"a\nb\r\n.\r\n"[..],
        b"a\rb\r\n.\r\n",
        b"a\r\r\n.\r\n",
        b"\n.\r\n\r\n.\r\n",
    ] {
        let d = send_rejecting(data);
        assert!(d.stores().is_empty(), "{data:?}");
        assert!(d.last().starts_with("550 5.6.11"), "{data:?}");
    }
    // The transaction is gone afterwards.
    let mut d = send_rejecting(b"a\nb\r\n.\r\n");
    d.feed(b"RCPT TO:<c@d.test>\r\n");
    assert!(d.last().starts_with("503 5.5.1"));
}

/// `smtp.barelf=normalize`: each smuggling sequence that has only bare LFs becomes content (a bare
/// LF is a line end, stored as CRLF; a lone `.` line stored stuffed), the forged commands are text
/// of the one message, and the session goes on.
#[test]
fn normalised_bare_lf_never_ends_the_message_early() {
    let forged = b"MAIL FROM:<evil@x.test>\r\nRCPT TO:<c@d.test>\r\nDATA\r\nforged\r\n";
    for (inner, stored) in [
        (&b"\n.\r\n"[..], &b"\r\n..\r\n"[..]),
        (b"\r\n.\n", b"\r\n..\r\n"),
        (b"\n.\n", b"\r\n..\r\n"),
        (b"\n..\r\n", b"\r\n..\r\n"),
        (b"\n..\n", b"\r\n..\r\n"),
        (b"\n\n.\n\n", b"\r\n\r\n..\r\n\r\n"),
        (b"\n.\r\n.\n", b"\r\n..\r\n..\r\n"),
        (b"\r\n\x00.\r\n", b"\r\n\x00.\r\n"),
        (b"\r\n.x\n", b"\r\n.x\r\n"),
    ] {
        let mut input = b"Subject: a\r\n\r\nfirst".to_vec();
        input.extend_from_slice(inner);
        input.extend_from_slice(forged);
        input.extend_from_slice(b".\r\nNOOP\r\n");
        let d = send(&input);
        assert_eq!(d.stores().len(), 1, "{inner:?}");
        let mut expected = b"Subject: a\r\n\r\nfirst".to_vec();
        expected.extend_from_slice(stored);
        expected.extend_from_slice(forged);
        assert_eq!(d.stores()[0].data, expected, "{inner:?}");
        // Stored as sent on by RETR and the relay client: no line is a lone dot, no LF is bare.
        let data = &d.stores()[0].data;
        assert!(!data.windows(5).any(|w| w == b"\r\n.\r\n"), "{inner:?}");
        assert!(data
            .iter()
            .enumerate()
            .all(|(i, &b)| b != b'\n' || data[i - 1] == b'\r'));
        let r = d.replies();
        assert_eq!(r[r.len() - 2], "250 2.0.0 OK queued as Q1\r\n", "{inner:?}");
        assert_eq!(r[r.len() - 1], "250 2.0.0 OK\r\n");
    }
}

/// After a lone `.` line that a bare LF began, the next `CRLF . CRLF` still ends the message.
#[test]
fn normalised_lone_dot_line_then_the_real_end() {
    let d = send(b"a\n.\r\n.\r\nNOOP\r\n");
    assert_eq!(d.stores()[0].data, b"a\r\n..\r\n");
    assert_eq!(d.last(), "250 2.0.0 OK\r\n");
    // A lone `.` ended by a bare LF right after DATA is a dot, not an empty message.
    let d = send(b".\nx\r\n.\r\n");
    assert_eq!(d.stores()[0].data, b"..\r\nx\r\n");
}

/// A bare CR is refused under `normalize` too, with a reply that names only CR.
#[test]
fn bare_cr_is_refused_when_lf_is_normalised() {
    for data in [
        &b"a\r.\r\n\r\n.\r\n"[..],
        b"a\r.\r\r\n.\r\n",
        b"a\r\n.\rX\r\n.\r\n",
        b"a\rb\r\n.\r\n",
        b"a\n\rb\n.\r\n\r\n.\r\n",
    ] {
        let mut input = data.to_vec();
        input.extend_from_slice(b"NOOP\r\n");
        let d = send(&input);
        assert!(d.stores().is_empty(), "{data:?}");
        let r = d.replies();
        assert_eq!(
            r[r.len() - 2],
            "550 5.6.11 Message contains bare CR; lines must end with CRLF\r\n",
            "{data:?}"
        );
        assert_eq!(r[r.len() - 1], "250 2.0.0 OK\r\n");
    }
}

/// An empty line ended by a bare LF ends the header section, so the header limit stops there.
#[test]
fn normalised_empty_line_ends_the_header_section() {
    let p = SessionParams {
        max_header_size: 30,
        ..params()
    };
    let mut data = b"Subject: a\n\n".to_vec();
    data.extend_from_slice(&[b'x'; 100]);
    data.extend_from_slice(b"\r\n.\r\n");
    let d = send_as(p.clone(), &data);
    assert_eq!(d.stores().len(), 1, "{:?}", d.replies());
    assert_eq!(&d.stores()[0].data[..14], b"Subject: a\r\n\r\n");
    // Without the empty line it is all header, and too big.
    let mut data = b"Subject: a\n".to_vec();
    data.extend_from_slice(&[b'x'; 100]);
    data.extend_from_slice(b"\r\n.\r\n");
    assert!(send_as(p, &data).last().starts_with("552 5.3.4"));
}

#[test]
fn oversize_is_consumed_then_refused_and_session_goes_on() {
    let mut d = Driver::new(SessionParams {
        max_message_size: 100,
        ..params()
    });
    d.feed(b"EHLO c.test\r\n");
    d.feed(START);
    for _ in 0..100 {
        d.feed(&[b'z'; 1000]);
        d.feed(b"\r\n");
        assert!(d.buf.is_empty());
    }
    d.feed(b".\r\n");
    assert_eq!(d.last(), "552 5.3.4 Message size exceeds fixed limit\r\n");
    assert!(d.stores().is_empty());
    // Exactly the limit is fine.
    d.feed(START);
    let mut body = vec![b'q'; 98];
    body.extend_from_slice(b"\r\n");
    d.feed(&body);
    d.feed(b".\r\n");
    assert_eq!(d.stores().len(), 1);
    assert_eq!(d.stores()[0].data, body);
}

fn received_lines(n: usize) -> Vec<u8> {
    let mut data = Vec::new();
    for i in 0..n {
        let name = if i % 2 == 0 { "Received" } else { "rEcEiVeD" };
        data.extend_from_slice(format!("{name}: from h{i} by x; {NOW}\r\n").as_bytes());
    }
    data
}

#[test]
fn loop_detection() {
    let mut data = received_lines(MAX_RECEIVED_HEADERS);
    data.extend_from_slice(b"\r\nbody\r\n.\r\n");
    let d = send(&data);
    assert!(d.stores().is_empty());
    assert_eq!(
        d.last(),
        "554 5.4.6 Too many Received headers: mail loop\r\n"
    );

    let mut data = received_lines(MAX_RECEIVED_HEADERS - 1);
    data.extend_from_slice(b"Subject: x\r\n\r\n");
    data.extend_from_slice(&received_lines(5)); // in the body: not counted
    data.extend_from_slice(b".\r\n");
    assert_eq!(send(&data).stores().len(), 1);

    // No empty line: the whole message is the header section.
    let mut data = received_lines(MAX_RECEIVED_HEADERS);
    data.extend_from_slice(b".\r\n");
    assert!(send(&data).stores().is_empty());
}

#[test]
fn received_prefix_untrusted() {
    let mut d = ehloed();
    d.feed(START);
    d.feed(b"Subject: x\r\n\r\nhi\r\n.\r\n");
    d.feed(START);
    d.feed(b"Subject: y\r\n\r\nhi\r\n.\r\n");
    let stores = d.stores();
    let expected = format!(
        "Received: from client.test ([192.0.2.7])\r\n\tby mx.example.test (jes) with ESMTP id \
         S1-1\r\n\tfor <c@d.test>; {NOW}\r\n"
    );
    assert_eq!(String::from_utf8_lossy(&stores[0].header_prefix), expected);
    assert!(String::from_utf8_lossy(&stores[1].header_prefix).contains("id S1-2\r\n"));
    assert_eq!(stores[0].data, b"Subject: x\r\n\r\nhi\r\n");
}

#[test]
fn received_prefix_helo_two_recipients_ipv6() {
    let mut d = Driver::new(with_conn(params(), |c| {
        c.client_ip = IpAddr::V6(Ipv6Addr::LOCALHOST)
    }));
    d.feed(b"HELO old.test\r\nMAIL FROM:<>\r\nRCPT TO:<c@d.test>\r\nRCPT TO:<e@d.test>\r\n");
    d.feed(b"DATA\r\n.\r\n");
    let expected = format!(
        "Received: from old.test ([IPv6:::1])\r\n\tby mx.example.test (jes) with SMTP id \
         S1-1;\r\n\t{NOW}\r\n"
    );
    assert_eq!(
        String::from_utf8_lossy(&d.stores()[0].header_prefix),
        expected
    );
    for line in expected.split("\r\n") {
        assert!(line.len() < 998);
    }
}

#[test]
fn ipv4_mapped_client_shown_as_ipv4() {
    let mut d = Driver::new(with_conn(params(), |c| {
        c.client_ip = "::ffff:10.1.2.3".parse().unwrap()
    }));
    d.feed(b"EHLO c.test\r\n");
    d.feed(START);
    d.feed(b".\r\n");
    let prefix = String::from_utf8_lossy(&d.stores()[0].header_prefix).into_owned();
    assert!(
        prefix.starts_with("Received: from c.test ([10.1.2.3])\r\n"),
        "{prefix}"
    );
}

fn prefix_for(trusted: bool, data: &[u8]) -> String {
    let mut d = Driver::new(SessionParams {
        trusted,
        ..params()
    });
    d.feed(b"EHLO c.test\r\n");
    d.feed(START);
    d.feed(data);
    let stores = d.stores();
    assert_eq!(stores.len(), 1);
    let prefix = String::from_utf8_lossy(&stores[0].header_prefix).into_owned();
    let received_end = prefix.find(&format!("; {NOW}\r\n")).unwrap() + NOW.len() + 4;
    prefix[received_end..].to_string()
}

#[test]
fn trusted_clients_get_date_and_message_id() {
    let bare = b"Subject: x\r\n\r\nDate: not a header\r\n.\r\n";
    assert_eq!(
        prefix_for(true, bare),
        format!("Date: {NOW}\r\nMessage-ID: {MSGID}\r\n")
    );
    assert_eq!(prefix_for(false, bare), "");
    let with_both = b"date: x\r\nMESSAGE-ID: <a@b>\r\n\r\nhi\r\n.\r\n";
    assert_eq!(prefix_for(true, with_both), "");
    let with_date = b"Date : x\r\n\r\n.\r\n";
    assert_eq!(
        prefix_for(true, with_date),
        format!("Message-ID: {MSGID}\r\n")
    );
    let folded_id = b"Message-ID:\r\n <a@b>\r\n.\r\n";
    assert_eq!(prefix_for(true, folded_id), format!("Date: {NOW}\r\n"));
}

#[test]
fn nothing_consumed_while_store_pending() {
    let mut s = Session::new(params());
    let env = super::tests::FakeEnv { storage: true };
    let mut out = Vec::new();
    let input = b"EHLO c\r\nMAIL FROM:<>\r\nRCPT TO:<c@d.test>\r\nDATA\r\n.\r\nNOOP\r\n";
    let n = s.receive(input, &env, &mut out);
    assert_eq!(&input[n..], b"NOOP\r\n");
    assert!(matches!(out.last(), Some(Output::Store(_))));
    assert!(s.is_store_pending());
    assert_eq!(s.receive(&input[n..], &env, &mut out), 0);
    assert_eq!(
        s.store_result(Ok("X".into())),
        b"250 2.0.0 OK queued as X\r\n"
    );
    out.clear();
    assert_eq!(s.receive(&input[n..], &env, &mut out), 6);
    assert_eq!(out, [Output::Reply(b"250 2.0.0 OK\r\n".to_vec())]);
}

#[test]
fn is_in_data() {
    let mut d = ehloed();
    d.feed(START);
    assert!(d.session.is_in_data());
    d.feed(b"x\r\n.\r");
    assert!(d.session.is_in_data());
    d.feed(b"\n");
    assert!(!d.session.is_in_data());
}
