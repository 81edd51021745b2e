//! Unit tests of the security commands and rules: STARTTLS (and the command injection it invites,
//! RFC 3207 §4.2), AUTH PLAIN and LOGIN with the clear-text policy, submission, the sender check
//! and the header size limit. All go through the fake driver of `tests`, which throws its buffer
//! away at StartTls exactly as the real one must.

use super::tests::{params, with_conn, Driver, MSGID, NOW, PASSWORD, USER};
use super::*;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;

fn b64(s: &str) -> String {
    STANDARD.encode(s)
}

/// `AUTH PLAIN` with an initial response for `user` / `password`.
fn plain(user: &str, password: &str) -> String {
    format!("AUTH PLAIN {}\r\n", b64(&format!("\0{user}\0{password}")))
}

fn tls_params() -> SessionParams {
    with_conn(params(), |c| c.tls_available = true)
}

/// A driver with `p`, after EHLO.
fn ehloed_with(p: SessionParams) -> Driver {
    let mut d = Driver::new(p);
    d.feed(b"EHLO client.test\r\n");
    d
}

/// The replies after the first `skip` ones.
fn replies_from(d: &Driver, skip: usize) -> Vec<String> {
    d.replies().split_off(skip)
}

fn assert_starts(replies: &[String], expected: &[&str]) {
    assert_eq!(replies.len(), expected.len(), "{replies:?}");
    for (r, e) in replies.iter().zip(expected) {
        assert!(
            r.starts_with(e),
            "{r:?} should start with {e:?} in {replies:?}"
        );
    }
}

#[test]
fn starttls_advertised_before_and_not_after() {
    let mut d = ehloed_with(tls_params());
    assert!(d.last().contains("250-STARTTLS\r\n"), "{}", d.last());
    d.feed(b"STARTTLS\r\n");
    assert_eq!(d.last(), "220 2.0.0 Ready to start TLS\r\n");
    assert!(d.log.contains(&Output::StartTls));
    assert!(d.session.is_encrypted());
    d.feed(b"EHLO client.test\r\n");
    assert!(!d.last().contains("STARTTLS"), "{}", d.last());
    assert!(d.last().contains("250-AUTH PLAIN LOGIN\r\n"));
    // Nothing to offer without a certificate, nor on implicit TLS.
    let d = ehloed_with(params());
    assert!(!d.last().contains("STARTTLS"));
    let d = ehloed_with(with_conn(tls_params(), |c| c.encrypted = true));
    assert!(!d.last().contains("STARTTLS"));
}

#[test]
fn ehlo_and_transaction_forgotten_after_tls() {
    let mut d = ehloed_with(tls_params());
    d.feed(b"MAIL FROM:<a@b.test>\r\n");
    d.feed(b"STARTTLS\r\n");
    d.feed(b"MAIL FROM:<a@b.test>\r\nRCPT TO:<c@d.test>\r\n");
    assert_starts(
        &replies_from(&d, 2),
        &["250 2.1.0", "220 2.0.0", "503 5.5.1", "503 5.5.1"],
    );
    d.feed(b"EHLO client.test\r\nMAIL FROM:<a@b.test>\r\n");
    assert_eq!(d.last(), "250 2.1.0 OK\r\n");
}

#[test]
fn starttls_injection_is_thrown_away() {
    let mut d = ehloed_with(tls_params());
    d.feed(b"STARTTLS\r\nRSET\r\nMAIL FROM:<evil@b.test>\r\n");
    assert_eq!(replies_from(&d, 2), ["220 2.0.0 Ready to start TLS\r\n"]);
    assert!(d.buf.is_empty());
    d.feed(b"NOOP\r\n");
    assert_eq!(
        replies_from(&d, 2),
        ["220 2.0.0 Ready to start TLS\r\n", "250 2.0.0 OK\r\n"]
    );

    // The session itself: consumes exactly the STARTTLS line, then nothing until tls_started.
    let mut s = Session::new(tls_params());
    let env = super::tests::FakeEnv { storage: true };
    let mut out = Vec::new();
    let input = b"EHLO c.test\r\nSTARTTLS\r\nRSET\r\n";
    let n = s.receive(input, &env, &mut out);
    assert_eq!(n, input.len() - b"RSET\r\n".len());
    assert_eq!(out.len(), 3);
    assert_eq!(out[2], Output::StartTls);
    assert!(s.is_tls_pending());
    out.clear();
    assert_eq!(s.receive(b"RSET\r\n", &env, &mut out), 0);
    assert!(out.is_empty());
    s.tls_started();
    assert!(!s.is_tls_pending());
    assert_eq!(s.receive(b"RSET\r\n", &env, &mut out), 6);
    assert_eq!(out, [Output::Reply(b"250 2.0.0 OK\r\n".to_vec())]);
}

#[test]
fn starttls_errors() {
    let mut d = ehloed_with(tls_params());
    d.feed(b"STARTTLS now\r\n");
    assert_eq!(d.last(), "501 5.5.4 Syntax: STARTTLS\r\n");
    let mut d = ehloed_with(params());
    d.feed(b"STARTTLS\r\n");
    assert_eq!(d.last(), "502 5.5.1 STARTTLS not available\r\n");
    let mut d = ehloed_with(with_conn(tls_params(), |c| c.encrypted = true));
    d.feed(b"STARTTLS\r\n");
    assert_eq!(d.last(), "503 5.5.1 TLS already active\r\n");
    let mut d = ehloed_with(tls_params());
    d.feed(b"STARTTLS\r\n");
    d.feed(b"EHLO c.test\r\nSTARTTLS\r\n");
    assert_eq!(d.last(), "503 5.5.1 TLS already active\r\n");
    // tls_started without a pending StartTls changes nothing.
    let mut d = ehloed_with(tls_params());
    d.session.tls_started();
    assert!(!d.session.is_encrypted());
    d.feed(b"MAIL FROM:<a@b.test>\r\n");
    assert_eq!(d.last(), "250 2.1.0 OK\r\n");
}

#[test]
fn failed_handshake_closes() {
    let mut d = ehloed_with(tls_params());
    d.tls_ok = false;
    d.feed(b"STARTTLS\r\nNOOP\r\n");
    assert!(d.closed && d.session.is_closed());
    let mut out = Vec::new();
    assert_eq!(d.session.receive(b"NOOP\r\n", &d.env, &mut out), 0);
    assert!(out.is_empty());
}

#[test]
fn auth_plain_with_initial_response() {
    let mut d = ehloed_with(params());
    d.feed(plain(USER, PASSWORD).as_bytes());
    assert_eq!(d.last(), "235 2.7.0 Authentication successful\r\n");
    assert_eq!(d.session.authenticated_user(), Some(USER));
    assert!(d.log.contains(&Output::CheckAuth {
        user: USER.into(),
        password: PASSWORD.into()
    }));
    // A logged-in client is trusted: Date and Message-ID are added.
    d.feed(b"MAIL FROM:<alice@d.test>\r\nRCPT TO:<c@d.test>\r\nDATA\r\nSubject: x\r\n\r\n.\r\n");
    let prefix = String::from_utf8_lossy(&d.stores()[0].header_prefix).into_owned();
    assert!(prefix.contains(&format!("Date: {NOW}\r\n")), "{prefix}");
    assert!(
        prefix.contains(&format!("Message-ID: {MSGID}\r\n")),
        "{prefix}"
    );
}

#[test]
fn auth_plain_with_challenge() {
    let mut d = ehloed_with(params());
    d.feed(b"auth plain\r\n");
    assert_eq!(d.last(), "334 \r\n");
    d.feed(format!("{}\r\n", b64(&format!("{USER}\0{USER}\0{PASSWORD}"))).as_bytes());
    assert_eq!(d.last(), "235 2.7.0 Authentication successful\r\n");
}

#[test]
fn auth_login() {
    let mut d = ehloed_with(params());
    d.feed(b"AUTH LOGIN\r\n");
    assert_eq!(d.last(), "334 VXNlcm5hbWU6\r\n");
    d.feed(format!("{}\r\n", b64(USER)).as_bytes());
    assert_eq!(d.last(), "334 UGFzc3dvcmQ6\r\n");
    d.feed(format!("{}\r\n", b64(PASSWORD)).as_bytes());
    assert_eq!(d.last(), "235 2.7.0 Authentication successful\r\n");
    assert_eq!(d.session.authenticated_user(), Some(USER));
    // The user name as initial response, everything in one write.
    let mut d = ehloed_with(params());
    d.feed(format!("AUTH LOGIN {}\r\n{}\r\nNOOP\r\n", b64(USER), b64(PASSWORD)).as_bytes());
    assert_starts(
        &replies_from(&d, 2),
        &["334 UGFzc3dvcmQ6", "235 2.7.0", "250 2.0.0"],
    );
}

#[test]
fn auth_failure_counts_as_error() {
    let mut d = ehloed_with(params());
    d.feed(plain(USER, "wrong").as_bytes());
    assert_eq!(d.last(), "535 5.7.8 Authentication credentials invalid\r\n");
    assert_eq!(d.session.authenticated_user(), None);
    d.feed(b"MAIL FROM:<a@b.test>\r\n");
    assert_eq!(d.last(), "250 2.1.0 OK\r\n");

    let mut d = ehloed_with(params());
    d.session.max_errors = 2;
    d.feed(format!("{}{}NOOP\r\n", plain(USER, "x"), plain(USER, "y")).as_bytes());
    assert_starts(&replies_from(&d, 2), &["535 5.7.8", "535 5.7.8"]);
    assert!(d.last().ends_with("421 4.7.0 Too many errors\r\n"));
    assert_eq!(d.log.last(), Some(&Output::Close));
    assert!(d.closed && d.session.is_closed());
    assert_eq!(d.buf, b"NOOP\r\n");
}

#[test]
fn auth_while_the_accounts_are_unknown_is_a_temporary_failure() {
    let mut d = ehloed_with(params());
    d.session.max_errors = 1;
    d.accounts_unknown = true;
    // Twice: a temporary failure is not a bad command, so max_errors=1 does not close.
    d.feed(format!("{}{}", plain(USER, PASSWORD), plain(USER, PASSWORD)).as_bytes());
    assert_starts(&replies_from(&d, 2), &["454 4.7.0", "454 4.7.0"]);
    assert!(!d.closed && !d.session.is_closed());
    assert_eq!(d.session.authenticated_user(), None);
    // The session goes on, and once the accounts are known the same login succeeds.
    d.accounts_unknown = false;
    d.feed(plain(USER, PASSWORD).as_bytes());
    assert_eq!(d.last(), "235 2.7.0 Authentication successful\r\n");
    assert_eq!(d.session.authenticated_user(), Some(USER));
}

#[test]
fn auth_needs_encryption_unless_allowed() {
    let p = with_conn(tls_params(), |c| c.clear_text_allowed = false);
    let mut d = ehloed_with(p.clone());
    assert!(!d.last().contains("AUTH"), "{}", d.last());
    d.feed(plain(USER, PASSWORD).as_bytes());
    assert_eq!(
        d.last(),
        "538 5.7.11 Encryption required for requested authentication mechanism\r\n"
    );
    assert!(!d.log.iter().any(|o| matches!(o, Output::CheckAuth { .. })));
    d.feed(b"STARTTLS\r\n");
    d.feed(b"EHLO client.test\r\n");
    assert!(d.last().contains("250-AUTH PLAIN LOGIN\r\n"));
    d.feed(plain(USER, PASSWORD).as_bytes());
    assert_eq!(d.last(), "235 2.7.0 Authentication successful\r\n");
    // Implicit TLS.
    let mut d = ehloed_with(with_conn(p, |c| c.encrypted = true));
    d.feed(plain(USER, PASSWORD).as_bytes());
    assert_eq!(d.last(), "235 2.7.0 Authentication successful\r\n");
}

#[test]
fn starttls_forgets_the_login() {
    let mut d = ehloed_with(tls_params());
    d.feed(plain(USER, PASSWORD).as_bytes());
    assert_eq!(d.session.authenticated_user(), Some(USER));
    d.feed(b"STARTTLS\r\n");
    assert_eq!(d.session.authenticated_user(), None);
}

#[test]
fn auth_errors() {
    let mut d = Driver::new(params());
    d.feed(plain(USER, PASSWORD).as_bytes());
    assert_eq!(d.last(), "503 5.5.1 Error: send EHLO first\r\n");
    let mut d = ehloed_with(params());
    d.feed(b"AUTH\r\nAUTH CRAM-MD5\r\nAUTH PLAIN a b\r\n");
    assert_starts(
        &replies_from(&d, 2),
        &["501 5.5.4", "504 5.5.4", "501 5.5.4"],
    );
    d.feed(b"AUTH PLAIN\r\n*\r\nAUTH LOGIN\r\n*\r\n");
    assert_starts(
        &replies_from(&d, 5),
        &[
            "334 ",
            "501 5.0.0 Authentication cancelled",
            "334 ",
            "501 5.0.0",
        ],
    );
    d.feed(b"AUTH PLAIN !!!!\r\nAUTH PLAIN\r\nnot base64\r\nAUTH LOGIN\r\n\xff\r\n");
    assert_starts(
        &replies_from(&d, 9),
        &["501 5.5.2", "334 ", "501 5.5.2", "334 ", "501 5.5.2"],
    );
    for malformed in ["alice\0secret", "\0\0secret", "\0alice\0", "a\0b\0c\0d"] {
        d.feed(format!("AUTH PLAIN {}\r\n", b64(malformed)).as_bytes());
        assert!(
            d.last().starts_with("501 5.5.2"),
            "{malformed:?}: {}",
            d.last()
        );
    }
    d.feed(
        format!(
            "AUTH PLAIN {}\r\n",
            b64(&format!("bob\0{USER}\0{PASSWORD}"))
        )
        .as_bytes(),
    );
    assert!(d.last().starts_with("535 5.7.8"), "{}", d.last());
    // An empty user name for LOGIN, `=` as empty initial response for PLAIN.
    d.feed(b"AUTH LOGIN =\r\nAUTH PLAIN =\r\n");
    assert_starts(
        &d.replies()[d.replies().len() - 2..],
        &["501 5.5.2", "501 5.5.2"],
    );
    assert!(!d.log.iter().any(|o| matches!(o, Output::CheckAuth { .. })));
    // Inside a transaction, and a second time.
    let mut d = ehloed_with(params());
    d.feed(b"MAIL FROM:<a@b.test>\r\n");
    d.feed(plain(USER, PASSWORD).as_bytes());
    assert!(d.last().starts_with("503 5.5.1"), "{}", d.last());
    d.feed(b"RSET\r\n");
    d.feed(plain(USER, PASSWORD).as_bytes());
    d.feed(plain(USER, PASSWORD).as_bytes());
    assert_eq!(d.last(), "503 5.5.1 Already authenticated\r\n");
}

#[test]
fn auth_lines_may_be_long() {
    // An AUTH command line longer than 512 octets is read whole (here: a wrong password).
    let mut d = ehloed_with(params());
    d.feed(plain(USER, &"p".repeat(5000)).as_bytes());
    assert!(d.last().starts_with("535 5.7.8"), "{}", d.last());
    // An exchange line too.
    d.feed(b"AUTH LOGIN\r\n");
    d.feed(format!("{}\r\n{}\r\n", b64(USER), b64(&"p".repeat(9000))).as_bytes());
    assert!(d.last().starts_with("535 5.7.8"), "{}", d.last());
    // Past 12,288 octets: refused, and the exchange is over.
    d.feed(b"AUTH PLAIN\r\n");
    let mut long = vec![b'A'; MAX_AUTH_LINE + 100];
    long.extend_from_slice(b"\r\nNOOP\r\n");
    d.feed(&long);
    assert!(d.max_buffer < MAX_AUTH_LINE);
    assert_starts(
        &d.replies()[d.replies().len() - 3..],
        &["334 ", "500 5.5.6", "250 2.0.0"],
    );
    let mut line = format!("AUTH PLAIN {}", "A".repeat(MAX_AUTH_LINE)).into_bytes();
    line.extend_from_slice(b"\r\nNOOP\r\n");
    d.feed(&line);
    assert_starts(
        &d.replies()[d.replies().len() - 2..],
        &["500 5.5.2", "250 2.0.0"],
    );
    // Other commands keep their 512.
    d.feed(format!("NOOP {}\r\n", "x".repeat(600)).as_bytes());
    assert!(d.last().starts_with("500 5.5.2"));
}

#[test]
fn auth_then_pipelined_commands() {
    let mut d = ehloed_with(params());
    d.feed(
        format!(
            "{}MAIL FROM:<a@b.test>\r\nRCPT TO:<c@d.test>\r\n",
            plain(USER, PASSWORD)
        )
        .as_bytes(),
    );
    assert_starts(
        &replies_from(&d, 2),
        &["235 2.7.0", "250 2.1.0", "250 2.1.5"],
    );
}

#[test]
fn submission_requires_auth() {
    let p = SessionParams {
        submission: true,
        ..params()
    };
    let mut d = ehloed_with(p);
    d.feed(b"MAIL FROM:<alice@d.test>\r\n");
    assert_eq!(d.last(), "530 5.7.0 Authentication required\r\n");
    d.feed(b"RCPT TO:<c@d.test>\r\n");
    assert!(d.last().starts_with("503 5.5.1"));
    d.feed(plain(USER, "wrong").as_bytes());
    d.feed(b"MAIL FROM:<alice@d.test>\r\n");
    assert_eq!(d.last(), "530 5.7.0 Authentication required\r\n");
    d.feed(plain(USER, PASSWORD).as_bytes());
    d.feed(b"MAIL FROM:<alice@d.test>\r\n");
    assert_eq!(d.last(), "250 2.1.0 OK\r\n");
}

#[test]
fn sender_must_match_login() {
    let p = SessionParams {
        require_sender_match: true,
        ..params()
    };
    let mut d = ehloed_with(p.clone());
    // Not logged in: the rule does not apply (relay rules do, elsewhere).
    d.feed(b"MAIL FROM:<bob@d.test>\r\nRSET\r\n");
    assert_starts(&replies_from(&d, 2), &["250 2.1.0", "250 2.0.0"]);
    d.feed(plain(USER, PASSWORD).as_bytes());
    d.feed(b"MAIL FROM:<bob@d.test>\r\n");
    assert_eq!(
        d.last(),
        "553 5.7.1 Sender address <bob@d.test> not owned by alice@d.test\r\n"
    );
    d.feed(b"MAIL FROM:<>\r\n");
    assert_eq!(
        d.last(),
        "553 5.7.1 Sender address <> not owned by alice@d.test\r\n"
    );
    d.feed(b"MAIL FROM:<Alice@D.TEST>\r\n");
    assert_eq!(d.last(), "250 2.1.0 OK\r\n");
    // Off: any sender after login.
    let mut d = ehloed_with(params());
    d.feed(plain(USER, PASSWORD).as_bytes());
    d.feed(b"MAIL FROM:<bob@d.test>\r\n");
    assert_eq!(d.last(), "250 2.1.0 OK\r\n");
}

/// Sends one message with `header` and a body, in one piece and byte by byte; both must agree.
fn message_with_header(max_header_size: u64, header: &[u8]) -> Driver {
    let p = SessionParams {
        max_header_size,
        ..params()
    };
    let mut input = b"MAIL FROM:<a@b.test>\r\nRCPT TO:<c@d.test>\r\nDATA\r\n".to_vec();
    input.extend_from_slice(header);
    input.extend_from_slice(b"\r\n");
    input.extend_from_slice(&b"body line\r\n".repeat(50));
    input.extend_from_slice(b".\r\nNOOP\r\n");
    let mut whole = ehloed_with(p.clone());
    whole.feed(&input);
    let mut bytes = ehloed_with(p);
    for b in &input {
        bytes.feed(&[*b]);
    }
    assert_eq!(whole.log, bytes.log);
    whole
}

#[test]
fn header_size_limit() {
    let header = b"Subject: x\r\nX-Pad: ".to_vec();
    let mut header = header;
    header.extend_from_slice(&[b'y'; 60]);
    header.extend_from_slice(b"\r\n"); // 81 octets, 83 with the empty line
    let d = message_with_header(83, &header);
    assert_eq!(d.stores().len(), 1);
    assert_eq!(d.replies()[5], "250 2.0.0 OK queued as Q1\r\n");
    let d = message_with_header(82, &header);
    assert!(d.stores().is_empty());
    assert_starts(
        &replies_from(&d, 2),
        &[
            "250 2.1.0",
            "250 2.1.5",
            "354 ",
            "552 5.3.4 Message header exceeds fixed limit",
            "250 2.0.0",
        ],
    );
    // A long body does not count; 0 means no limit.
    let d = message_with_header(83, &header);
    assert_eq!(d.stores()[0].data.len(), 83 + 550);
    let d = message_with_header(0, &[b"X: y\r\n".as_slice(); 1000].concat());
    assert_eq!(d.stores().len(), 1);
    // No empty line at all: the whole message is header.
    let p = SessionParams {
        max_header_size: 100,
        ..params()
    };
    let mut d = ehloed_with(p);
    d.feed(b"MAIL FROM:<a@b.test>\r\nRCPT TO:<c@d.test>\r\nDATA\r\n");
    d.feed(&b"X-Long: header\r\n".repeat(20));
    d.feed(b".\r\n");
    assert_eq!(d.last(), "552 5.3.4 Message header exceeds fixed limit\r\n");
}

/// The `with` word of the `Received:` line of one message sent after `setup` (EHLO/HELO, STARTTLS,
/// AUTH as the test needs).
fn received_with(p: SessionParams, setup: &[&[u8]]) -> String {
    let mut d = Driver::new(p);
    for step in setup {
        d.feed(step);
    }
    d.feed(b"MAIL FROM:<a@b.test>\r\nRCPT TO:<c@d.test>\r\nDATA\r\n.\r\n");
    let stores = d.stores();
    assert_eq!(stores.len(), 1, "{:?}", d.replies());
    let prefix = String::from_utf8_lossy(&stores[0].header_prefix).into_owned();
    let after = prefix.split(" (jes) with ").nth(1).unwrap();
    after.split(' ').next().unwrap().to_string()
}

#[test]
fn received_names_tls_and_auth_as_rfc_3848_says() {
    let auth = plain(USER, PASSWORD);
    let ehlo: &[u8] = b"EHLO client.test\r\n";
    let starttls: &[u8] = b"STARTTLS\r\n";
    assert_eq!(received_with(tls_params(), &[ehlo]), "ESMTP");
    assert_eq!(
        received_with(tls_params(), &[ehlo, starttls, ehlo]),
        "ESMTPS"
    );
    assert_eq!(
        received_with(tls_params(), &[ehlo, auth.as_bytes()]),
        "ESMTPA"
    );
    assert_eq!(
        received_with(tls_params(), &[ehlo, starttls, ehlo, auth.as_bytes()]),
        "ESMTPSA"
    );
    let implicit = with_conn(params(), |c| c.encrypted = true);
    assert_eq!(received_with(implicit.clone(), &[ehlo]), "ESMTPS");
    assert_eq!(received_with(implicit, &[b"HELO client.test\r\n"]), "SMTP");
    assert_eq!(received_with(params(), &[b"HELO client.test\r\n"]), "SMTP");
}
