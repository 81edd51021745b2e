//! `smtp.barelf=normalize` (the default) against the smuggling sequences, seen three ways: the bytes
//! jes stores, what a smart host receives when jes relays the message, and what a POP3 client
//! reads. None of them may end the message early or let a second message in; a bare CR is still
//! refused. `smtp.barelf=reject` refuses every message with a bare LF.

mod common;

use common::{Server, Upstream, DEFAULT_USERS};
use std::time::Duration;

const LOCAL: &str = "trackstudio@127.0.0.1";
const REMOTE: &str = "someone@remote.test";

/// The sequences that end DATA for some server somewhere, each with the line that must follow it
/// in the stored (wire-form) message when bare LFs are normalised.
const SEQUENCES: &[(&[u8], &[u8])] = &[
    (b"\n.\n", b"\r\n..\r\n"),
    (b"\n.\r\n", b"\r\n..\r\n"),
    (b"\r\n.\n", b"\r\n..\r\n"),
    (b"\n..\n", b"\r\n..\r\n"),
    (b"\r\n\x00.\r\n", b"\r\n\x00.\r\n"),
    (b"\n.\r\n.\n", b"\r\n..\r\n..\r\n"),
];

/// Sequences with a bare CR: refused whatever `smtp.barelf` says.
const BARE_CR: &[&[u8]] = &[b"\r.\r\n", b"\r.\r", b"\r\n.\r", b"\r\n.\rX"];

/// One DATA whose body is `first`, the sequence, then a forged second transaction; returns the
/// reply to the real end.
fn send_smuggled(server: &Server, sequence: &[u8], rcpts: &[&str]) -> String {
    let mut c = server.connect(server.smtp_port);
    assert!(c.cmd("EHLO t").starts_with("250"));
    assert!(c.cmd("MAIL FROM:<a@example.org>").starts_with("250"));
    for r in rcpts {
        assert!(c.cmd(&format!("RCPT TO:<{r}>")).starts_with("250"));
    }
    assert!(c.cmd("DATA").starts_with("354"));
    let mut data = b"Subject: a\r\n\r\nfirst".to_vec();
    data.extend_from_slice(sequence);
    data.extend_from_slice(&forged());
    data.extend_from_slice(b".\r\n");
    c.send(&data);
    let reply = c.reply();
    let noop = c.cmd("NOOP");
    assert!(
        noop.starts_with("250"),
        "the session goes on after {reply}: {noop}"
    );
    assert!(c.cmd("QUIT").starts_with("221"));
    reply
}

fn forged() -> Vec<u8> {
    format!("MAIL FROM:<evil@example.org>\r\nRCPT TO:<{LOCAL}>\r\nDATA\r\nSubject: smuggled\r\n\r\nx\r\n")
        .into_bytes()
}

/// The body as a client sees it after undoing dot-stuffing, as POP3 clients and SMTP servers do.
fn unstuffed(wire: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for line in wire.split_inclusive(|&b| b == b'\n') {
        out.extend_from_slice(line.strip_prefix(b".").unwrap_or(line));
    }
    out
}

/// Reads message 1 over POP3 up to the first line that ends the multi-line answer, as every POP3
/// client does, and deletes it; returns the lines in between, still stuffed.
fn pop3_retr_and_delete(server: &Server) -> Vec<u8> {
    let mut p = server.connect(server.pop3_port);
    assert!(p.cmd(&format!("USER {LOCAL}")).starts_with("+OK"));
    assert!(p.cmd("PASS secret").starts_with("+OK"));
    let stat = p.cmd("STAT");
    assert!(stat.starts_with("+OK 1 "), "one message per DATA: {stat}");
    let first = p.cmd("RETR 1");
    assert!(first.starts_with("+OK"), "{first}");
    let mut body = Vec::new();
    loop {
        let line = p.line();
        assert!(!line.is_empty(), "connection closed inside RETR");
        if line == ".\r\n" {
            break;
        }
        body.extend_from_slice(line.as_bytes());
    }
    // Whatever followed the end would be read as the reply to the next command.
    assert!(
        p.cmd("NOOP").starts_with("+OK"),
        "nothing after the end of RETR"
    );
    assert!(p.cmd("DELE 1").starts_with("+OK"));
    assert!(p.cmd("QUIT").starts_with("+OK"));
    body
}

#[test]
fn normalised_smuggling_stays_one_message_stored_relayed_and_read() {
    let up = Upstream::start(&[]);
    let server = Server::start(
        &format!(
            "defaultsmtpservers=127.0.0.1:{}\nsmtpdelivery.interval=1\n",
            up.port
        ),
        DEFAULT_USERS,
    );
    for (n, (sequence, stored_line)) in SEQUENCES.iter().enumerate() {
        let reply = send_smuggled(&server, sequence, &[LOCAL, REMOTE]);
        assert!(reply.starts_with("250"), "{sequence:?}: {reply}");

        let mut expected = b"Subject: a\r\n\r\nfirst".to_vec();
        expected.extend_from_slice(stored_line);
        expected.extend_from_slice(&forged());

        // 1. The stored bytes: one file, ending with the whole message in wire form.
        let files = server.mailbox_files(LOCAL);
        assert_eq!(files.len(), 1, "{sequence:?}: one message per DATA");
        let stored = std::fs::read(&files[0]).unwrap();
        assert!(stored.ends_with(&expected), "{sequence:?}: {stored:?}");
        assert!(
            !stored.windows(5).any(|w| w == b"\r\n.\r\n"),
            "{sequence:?}"
        );

        // 2. What the smart host receives: one transaction, the whole body.
        let got = up.wait_for(n + 1, Duration::from_secs(20));
        assert_eq!(
            got.len(),
            n + 1,
            "{sequence:?}: one relayed transaction per DATA"
        );
        let data = got[n]["data"].as_str().unwrap();
        let relayed: Vec<u8> = data.chars().map(|c| c as u32 as u8).collect();
        assert!(
            relayed.ends_with(&unstuffed(&expected)),
            "{sequence:?}: upstream got {data:?}"
        );
        assert_eq!(got[n]["rcpt_tos"], serde_json::json!([REMOTE]));

        // 3. A POP3 read: the whole message before the end line, nothing after it.
        let body = pop3_retr_and_delete(&server);
        assert!(
            body.ends_with(&expected),
            "{sequence:?}: RETR gave {body:?}"
        );
    }
    // No message was ever addressed from the forged transaction.
    assert!(up
        .received()
        .iter()
        .all(|t| t["mail_from"] == "a@example.org"));
}

#[test]
fn bare_cr_is_refused_under_either_setting() {
    for setting in ["", "smtp.barelf=reject\n"] {
        let server = Server::start(setting, DEFAULT_USERS);
        for sequence in BARE_CR {
            let reply = send_smuggled(&server, sequence, &[LOCAL]);
            assert!(
                reply.starts_with("550 5.6.11"),
                "{setting}{sequence:?}: {reply}"
            );
        }
        assert!(server.mailbox_files(LOCAL).is_empty(), "{setting}");
    }
}

#[test]
fn reject_refuses_a_bare_lf() {
    let server = Server::start("smtp.barelf=reject\n", DEFAULT_USERS);
    // The text before each sequence ends in a letter, so an LF first in it is bare too.
    let has_bare_lf =
        |s: &[u8]| (0..s.len()).any(|i| s[i] == b'\n' && (i == 0 || s[i - 1] != b'\r'));
    let mut accepted = 0;
    for (sequence, _) in SEQUENCES {
        let reply = send_smuggled(&server, sequence, &[LOCAL]);
        if has_bare_lf(sequence) {
            assert!(reply.starts_with("550 5.6.11"), "{sequence:?}: {reply}");
        } else {
            assert!(reply.starts_with("250"), "{sequence:?}: {reply}");
            accepted += 1;
        }
    }
    assert_eq!(accepted, 1, "only the NUL sequence has no bare LF");
    assert_eq!(server.mailbox_files(LOCAL).len(), accepted);
}
