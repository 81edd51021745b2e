//! Unit tests of the command phase, plus the small fake driver and `Env` every test file uses.
//! The fake driver does exactly what the real one must (drop consumed bytes, perform a Store or a
//! login check at once, throw its buffer away at StartTls, stop at Close), so the tests exercise
//! the driver contract, not just the parser.

use super::*;
use std::collections::VecDeque;
use std::net::{IpAddr, Ipv4Addr};

pub(super) const NOW: &str = "Wed, 25 Nov 2026 12:00:00 +0000";
pub(super) const MSGID: &str = "<42.jes@mx.example.test>";
/// The one login the fake driver accepts.
pub(super) const USER: &str = "alice@d.test";
pub(super) const PASSWORD: &str = "secret";

/// Accepts everything except a few addresses that stand for the other decisions.
pub(super) struct FakeEnv {
    pub storage: bool,
}

impl Env for FakeEnv {
    fn check_recipient(&self, _sender: &str, rcpt: &str) -> RcptDecision {
        if rcpt.starts_with("nobody@") {
            RcptDecision::UnknownUser
        } else if rcpt.ends_with("@remote.test") {
            RcptDecision::RelayDenied
        } else if rcpt.starts_with("bad@") {
            RcptDecision::BadAddress("Address contains unsafe characters".into())
        } else if rcpt.starts_with("later@") {
            RcptDecision::TryLater
        } else {
            RcptDecision::Accept
        }
    }
    fn now_rfc5322(&self) -> String {
        NOW.to_string()
    }
    fn new_message_id(&self) -> String {
        MSGID.to_string()
    }
    fn storage_available(&self) -> bool {
        self.storage
    }
}

pub(super) fn params() -> SessionParams {
    SessionParams::new(
        "mx.example.test",
        "S1",
        IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7)),
    )
}

/// `p` with its connection's facts (`p.conn`, shared with POP3) changed by `change`.
pub(super) fn with_conn(
    mut p: SessionParams,
    change: impl FnOnce(&mut ConnParams),
) -> SessionParams {
    change(&mut p.conn);
    p
}

/// A driver as the server would be, logging everything the session asks for.
pub(super) struct Driver {
    pub session: Session,
    pub env: FakeEnv,
    pub buf: Vec<u8>,
    pub log: Vec<Output>,
    /// Results for the next Stores; `Ok("Q<n>")` when empty.
    pub results: VecDeque<Result<String, StoreError>>,
    pub max_buffer: usize,
    pub closed: bool,
    /// Whether the next TLS handshake succeeds.
    pub tls_ok: bool,
    /// Whether logins get no verdict (the server's accounts are unknown).
    pub accounts_unknown: bool,
    stores: usize,
}

impl Driver {
    pub fn new(params: SessionParams) -> Self {
        let mut session = Session::new(params);
        let greeting = session.greeting();
        Driver {
            session,
            env: FakeEnv { storage: true },
            buf: Vec::new(),
            log: vec![Output::Reply(greeting)],
            results: VecDeque::new(),
            max_buffer: 0,
            closed: false,
            tls_ok: true,
            accounts_unknown: false,
            stores: 0,
        }
    }

    pub fn feed(&mut self, bytes: &[u8]) {
        if self.closed {
            return;
        }
        self.buf.extend_from_slice(bytes);
        loop {
            let mut out = Vec::new();
            let n = self.session.receive(&self.buf, &self.env, &mut out);
            assert!(n <= self.buf.len());
            self.buf.drain(..n);
            let mut stored = false;
            for o in out {
                assert!(
                    !stored,
                    "a second output after a Store, CheckAuth or StartTls"
                );
                match o {
                    Output::Store(env) => {
                        self.stores += 1;
                        // While the Store is pending, nothing is consumed.
                        let mut more = Vec::new();
                        assert_eq!(self.session.receive(&self.buf, &self.env, &mut more), 0);
                        assert!(more.is_empty());
                        let result = self
                            .results
                            .pop_front()
                            .unwrap_or_else(|| Ok(format!("Q{}", self.stores)));
                        self.log.push(Output::Store(env));
                        let reply = self.session.store_result(result);
                        self.log.push(Output::Reply(reply));
                        stored = true;
                    }
                    Output::CheckAuth { user, password } => {
                        self.assert_waits();
                        let ok = user.eq_ignore_ascii_case(USER) && password == PASSWORD;
                        self.log.push(Output::CheckAuth { user, password });
                        let reply = if self.accounts_unknown {
                            self.session.auth_unavailable()
                        } else {
                            self.session.auth_result(ok)
                        };
                        self.log.push(Output::Reply(reply));
                        stored = true;
                    }
                    Output::StartTls => {
                        self.assert_waits();
                        self.log.push(Output::StartTls);
                        // Everything read before the handshake is thrown away.
                        self.buf.clear();
                        if self.tls_ok {
                            self.session.tls_started();
                        } else {
                            self.session.tls_failed();
                            self.log.push(Output::Close);
                            self.closed = true;
                        }
                        stored = true;
                    }
                    Output::Close => {
                        self.log.push(Output::Close);
                        self.closed = true;
                    }
                    reply => self.log.push(reply),
                }
            }
            if self.closed || !stored {
                break;
            }
        }
        // After Close the driver stops reading; what it holds then does not matter.
        if !self.closed {
            self.max_buffer = self.max_buffer.max(self.buf.len());
        }
    }

    /// While the session waits for the driver, it consumes nothing and says nothing.
    fn assert_waits(&mut self) {
        let mut more = Vec::new();
        assert_eq!(self.session.receive(&self.buf, &self.env, &mut more), 0);
        assert!(more.is_empty());
    }

    /// Every reply so far (the greeting first), one string each.
    pub fn replies(&self) -> Vec<String> {
        self.log
            .iter()
            .filter_map(|o| match o {
                Output::Reply(r) => Some(String::from_utf8_lossy(r).into_owned()),
                _ => None,
            })
            .collect()
    }

    /// The last reply.
    pub fn last(&self) -> String {
        self.replies().pop().unwrap_or_default()
    }

    pub fn stores(&self) -> Vec<&Envelope> {
        self.log
            .iter()
            .filter_map(|o| match o {
                Output::Store(e) => Some(e),
                _ => None,
            })
            .collect()
    }
}

/// A driver after `EHLO client.test`.
pub(super) fn ehloed() -> Driver {
    let mut d = Driver::new(params());
    d.feed(b"EHLO client.test\r\n");
    d
}

/// Replies to `input` after EHLO, the greeting and EHLO reply left out.
pub(super) fn after_ehlo(input: &[u8]) -> Vec<String> {
    let mut d = ehloed();
    d.feed(input);
    d.replies().split_off(2)
}

fn assert_starts(replies: &[String], expected: &[&str]) {
    assert_eq!(replies.len(), expected.len(), "{replies:?}");
    for (r, e) in replies.iter().zip(expected) {
        assert!(
            r.starts_with(e),
            "{r:?} should start with {e:?} in {replies:?}"
        );
        assert!(r.ends_with("\r\n"));
    }
}

#[test]
fn greeting_and_ehlo() {
    let mut d = Driver::new(SessionParams {
        max_message_size: 5 * 1024 * 1024,
        ..params()
    });
    d.feed(b"ehlo client.test\r\n");
    assert_eq!(
        d.replies(),
        [
            "220 mx.example.test ESMTP jes\r\n",
            "250-mx.example.test\r\n250-PIPELINING\r\n250-SIZE 5242880\r\n250-8BITMIME\r\n\
             250-BINARYMIME\r\n250-CHUNKING\r\n250-AUTH PLAIN LOGIN\r\n250-ENHANCEDSTATUSCODES\r\n\
             250-SMTPUTF8\r\n250 DSN\r\n"
        ]
    );
    let mut d = Driver::new(params());
    d.feed(b"EHLO client.test\r\n");
    assert!(d.last().contains("250-SIZE\r\n"));
}

#[test]
fn helo_has_no_enhanced_code_and_works() {
    let mut d = Driver::new(params());
    d.feed(b"HELO client.test\r\nMAIL FROM:<a@b.test>\r\n");
    assert_eq!(
        d.replies()[1..],
        ["250 mx.example.test\r\n", "250 2.1.0 OK\r\n"]
    );
}

#[test]
fn helo_needs_a_printable_name() {
    let mut d = Driver::new(params());
    d.feed(b"EHLO\r\nHELO \x01x\r\nEHLO h\xc3\xa9.test\r\n");
    assert_starts(&d.replies()[1..], &["501 5.5.4", "501 5.5.4", "501 5.5.4"]);
}

#[test]
fn simple_commands() {
    let r = after_ehlo(
        b"NOOP\r\nnoop whatever\r\nVRFY postmaster\r\nVRFY\r\nEXPN list\r\nHELP\r\n\
          TURN\r\nETRN x\r\nFOO\r\n\r\nRSET\r\nRSET x\r\n",
    );
    assert_starts(
        &r,
        &[
            "250 2.0.0",
            "250 2.0.0",
            "252 2.5.0",
            "501 5.5.4",
            "502 5.5.1",
            "214 2.0.0",
            "502 5.5.1",
            "502 5.5.1",
            "500 5.5.1",
            "500 5.5.2",
            "250 2.0.0",
            "501 5.5.4",
        ],
    );
}

#[test]
fn quit_closes_and_consumes_nothing_after() {
    let mut d = ehloed();
    d.feed(b"quit\r\nNOOP\r\n");
    assert_eq!(d.last(), "221 2.0.0 Bye\r\n");
    assert_eq!(d.log.last(), Some(&Output::Close));
    assert_eq!(d.buf, b"NOOP\r\n");
    let mut out = Vec::new();
    assert_eq!(d.session.receive(b"NOOP\r\n", &d.env, &mut out), 0);
    assert!(out.is_empty() && d.session.is_closed());
}

#[test]
fn sequence_errors() {
    let mut d = Driver::new(params());
    d.feed(b"MAIL FROM:<a@b.test>\r\nRCPT TO:<c@d.test>\r\nDATA\r\n");
    assert_starts(&d.replies()[1..], &["503 5.5.1", "503 5.5.1", "503 5.5.1"]);
    let r = after_ehlo(
        b"RCPT TO:<c@d.test>\r\nMAIL FROM:<a@b.test>\r\nMAIL FROM:<a@b.test>\r\nDATA\r\n\
          RCPT TO:<nobody@d.test>\r\nDATA\r\n",
    );
    assert_starts(
        &r,
        &[
            "503 5.5.1",
            "250 2.1.0",
            "503 5.5.1",
            "554 5.5.1",
            "550 5.1.1",
            "554 5.5.1",
        ],
    );
}

#[test]
fn rset_keeps_ehlo_and_ehlo_resets_transaction() {
    let r = after_ehlo(
        b"MAIL FROM:<a@b.test>\r\nRSET\r\nRCPT TO:<c@d.test>\r\nMAIL FROM:<a@b.test>\r\n\
          EHLO again.test\r\nRCPT TO:<c@d.test>\r\nMAIL FROM:<a@b.test>\r\n",
    );
    assert_starts(
        &r,
        &[
            "250 2.1.0",
            "250 2.0.0",
            "503 5.5.1",
            "250 2.1.0",
            "250-",
            "503 5.5.1",
            "250 2.1.0",
        ],
    );
}

/// The sender the session accepted for `line`, via the stored envelope.
fn sender_of(mail: &str) -> Result<String, String> {
    let mut d = ehloed();
    d.feed(format!("{mail}\r\nRCPT TO:<c@d.test>\r\nDATA\r\n.\r\n").as_bytes());
    match d.stores().first() {
        Some(e) => Ok(e.sender.clone()),
        None => Err(d.replies()[2].clone()),
    }
}

#[test]
fn sender_paths() {
    assert_eq!(sender_of("MAIL FROM:<>").unwrap(), "");
    assert_eq!(sender_of("mail from:<a@b.test>").unwrap(), "a@b.test");
    assert_eq!(sender_of("MAIL FROM: <a@b.test>").unwrap(), "a@b.test");
    assert_eq!(sender_of("MAIL FROM:a@b.test").unwrap(), "a@b.test");
    assert_eq!(
        sender_of("MAIL FROM:<\"john doe\"@example.com>").unwrap(),
        "\"john doe\"@example.com"
    );
    assert_eq!(
        sender_of("MAIL FROM:<\"a>b\"@example.com>").unwrap(),
        "\"a>b\"@example.com"
    );
    assert_eq!(
        sender_of("MAIL FROM:<@a.test,@b.test:user@c.test>").unwrap(),
        "user@c.test"
    );
    assert_eq!(
        sender_of("MAIL FROM:<user@[127.0.0.1]>").unwrap(),
        "user@[127.0.0.1]"
    );
    assert_eq!(
        sender_of("MAIL FROM:<user@[IPv6:::1]>").unwrap(),
        "user@[IPv6:::1]"
    );
    for bad in [
        "MAIL FROM:<a@b.test",
        "MAIL FROM:<a b@c.test>",
        "MAIL FROM:<a@>",
        "MAIL FROM:<@c.test>",
        "MAIL FROM:<a@b..test>",
        "MAIL FROM:<user>",
        "MAIL FROM:<a\u{202e}@b.test> SMTPUTF8",
    ] {
        let reply = sender_of(bad).unwrap_err();
        assert!(reply.starts_with("501 5.1.7"), "{bad}: {reply}");
    }
    for bad in [
        "MAIL TO:<a@b.test>",
        "MAIL",
        "MAIL FROM:",
        "MAIL FROM:<a@b.test>x",
    ] {
        let reply = sender_of(bad).unwrap_err();
        assert!(reply.starts_with("501 5.5.4"), "{bad}: {reply}");
    }
}

#[test]
fn mail_parameters() {
    let mut d = Driver::new(SessionParams {
        max_message_size: 1000,
        ..params()
    });
    d.feed(b"EHLO c.test\r\n");
    let tx = |p: &str| format!("MAIL FROM:<a@b.test> {p}\r\nRSET\r\n");
    for (p, code) in [
        ("SIZE=1000", "250 2.1.0"),
        ("size=1001", "552 5.3.4"),
        ("SIZE=99999999999999999999999", "552 5.3.4"),
        ("SIZE=x", "501 5.5.4"),
        ("BODY=8BITMIME", "250 2.1.0"),
        ("body=7bit SIZE=10", "250 2.1.0"),
        ("BODY=BINARYMIME", "250 2.1.0"),
        ("BODY=BINARY", "501 5.5.4"),
        ("AUTH=<>", "250 2.1.0"),
        ("AUTH=a+40b.test", "250 2.1.0"),
        ("AUTH", "501 5.5.4"),
        ("SMTPUTF8", "250 2.1.0"),
        ("SMTPUTF8=yes", "555 5.5.4"),
        ("RET=HDRS", "250 2.1.0"),
        ("RET=ALL", "501 5.5.4"),
        ("FOO=BAR", "555 5.5.4"),
        ("=x", "501 5.5.4"),
    ] {
        let before = d.replies().len();
        d.feed(tx(p).as_bytes());
        let r = &d.replies()[before];
        assert!(r.starts_with(code), "{p}: {r}");
    }
    d.feed(b"MAIL FROM:<a@b.test> BODY=8BITMIME\r\n");
    assert_eq!(d.session.body(), Some(Body::EightBitMime));
    d.feed(b"RCPT TO:<c@d.test> XNOTIFY=NEVER\r\n");
    assert!(d.last().starts_with("555 5.5.4"));
}

#[test]
fn a_recipient_that_cannot_be_decided_now_is_refused_for_now() {
    let r = after_ehlo(b"MAIL FROM:<a@b.test>\r\nRCPT TO:<later@d.test>\r\nRCPT TO:<c@d.test>\r\n");
    assert_eq!(
        r[1],
        "451 4.3.0 <later@d.test>: accounts unavailable, try again later\r\n"
    );
    assert!(r[2].starts_with("250 2.1.5"), "{r:?}");
}

#[test]
fn recipients() {
    let r = after_ehlo(
        b"MAIL FROM:<>\r\nRCPT TO:<c@d.test>\r\nRCPT TO:<postmaster>\r\nRCPT TO:<PostMaster>\r\n\
          RCPT TO:<nobody@d.test>\r\nRCPT TO:<x@remote.test>\r\nRCPT TO:<bad@d.test>\r\n\
          RCPT TO:<>\r\nRCPT TO:<joe>\r\nRCPT TO:\r\nRCPT TO: <e@d.test>\r\nRCPT TO:f@d.test\r\n",
    );
    assert_eq!(r[4], "550 5.1.1 <nobody@d.test>: no such user here\r\n");
    assert_eq!(r[5], "550 5.7.1 <x@remote.test>: relaying denied\r\n");
    assert_eq!(r[6], "553 5.1.3 Address contains unsafe characters\r\n");
    assert_starts(
        &r,
        &[
            "250 2.1.0",
            "250 2.1.5",
            "250 2.1.5",
            "250 2.1.5",
            "550 5.1.1",
            "550 5.7.1",
            "553 5.1.3",
            "501 5.1.3",
            "501 5.1.3",
            "501 5.5.4",
            "250 2.1.5",
            "250 2.1.5",
        ],
    );
}

#[test]
fn postmaster_reaches_the_policy_without_domain() {
    let mut d = ehloed();
    d.feed(b"MAIL FROM:<>\r\nRCPT TO:<Postmaster>\r\nDATA\r\n.\r\n");
    assert_eq!(d.stores()[0].recipients, ["postmaster"]);
}

#[test]
fn recipient_cap() {
    let mut d = ehloed();
    d.feed(b"MAIL FROM:<a@b.test>\r\n");
    for i in 0..DEFAULT_MAX_RECIPIENTS {
        d.feed(format!("RCPT TO:<u{i}@d.test>\r\n").as_bytes());
        assert!(d.last().starts_with("250 2.1.5"));
    }
    d.feed(b"RCPT TO:<one-more@d.test>\r\n");
    assert_eq!(d.last(), "452 4.5.3 Too many recipients\r\n");
    d.feed(b"DATA\r\n.\r\n");
    assert_eq!(d.stores()[0].recipients.len(), DEFAULT_MAX_RECIPIENTS);
}

#[test]
fn store_results_and_reset() {
    let mut d = ehloed();
    d.results.extend([
        Ok("ABC123".to_string()),
        Err(StoreError::Full),
        Err(StoreError::Temporary("disk\r\nhiccup".into())),
        Err(StoreError::Temporary(String::new())),
    ]);
    let msg = b"MAIL FROM:<a@b.test>\r\nRCPT TO:<c@d.test>\r\nDATA\r\nHi\r\n.\r\n";
    for _ in 0..4 {
        d.feed(msg);
    }
    d.feed(b"RCPT TO:<c@d.test>\r\n");
    let r = d.replies();
    assert_eq!(r[5], "250 2.0.0 OK queued as ABC123\r\n");
    assert_eq!(r[9], "452 4.3.1 Insufficient system storage\r\n");
    assert_eq!(r[13], "451 4.3.0 disk  hiccup\r\n");
    assert_eq!(r[17], "451 4.3.0 Temporary failure, try again later\r\n");
    assert!(r[18].starts_with("503 5.5.1"));
    assert_eq!(d.stores().len(), 4);
}

#[test]
fn timeout_and_shutdown() {
    let s = Session::new(params());
    assert_eq!(
        s.timeout_reply(),
        b"421 4.4.2 mx.example.test Error: timeout exceeded\r\n"
    );
    assert_eq!(
        s.shutdown_reply(),
        b"421 4.3.2 mx.example.test Service shutting down\r\n"
    );
}

#[test]
fn too_many_errors_close() {
    let mut d = ehloed();
    for _ in 0..DEFAULT_MAX_ERRORS - 1 {
        d.feed(b"BOGUS\r\n");
    }
    assert!(!d.closed);
    d.feed(b"RCPT TO:<a@b.test>\r\nNOOP\r\n");
    let r = d.replies();
    assert!(r[r.len() - 2].starts_with("503 5.5.1"));
    assert_eq!(r[r.len() - 1], "421 4.7.0 Too many errors\r\n");
    assert_eq!(d.log.last(), Some(&Output::Close));
    assert_eq!(d.buf, b"NOOP\r\n");
}

#[test]
fn error_limit_is_configurable() {
    let mut d = ehloed();
    d.session.max_errors = 2;
    d.feed(b"X\r\nY\r\n");
    assert!(d.closed);
}

#[test]
fn pipelined_batch_answered_in_order() {
    let mut d = ehloed();
    d.feed(
        b"MAIL FROM:<a@b.test>\r\nRCPT TO:<c@d.test>\r\nRCPT TO:<nobody@d.test>\r\n\
          RCPT TO:<e@d.test>\r\nDATA\r\nSubject: x\r\n\r\nbody\r\n.\r\nMAIL FROM:<>\r\n\
          RCPT TO:<c@d.test>\r\nDATA\r\n.\r\nQUIT\r\n",
    );
    assert_starts(
        &d.replies()[2..],
        &[
            "250 2.1.0",
            "250 2.1.5",
            "550 5.1.1",
            "250 2.1.5",
            "354 ",
            "250 2.0.0 OK queued as Q1",
            "250 2.1.0",
            "250 2.1.5",
            "354 ",
            "250 2.0.0 OK queued as Q2",
            "221 2.0.0",
        ],
    );
    let stores = d.stores();
    assert_eq!(stores[0].recipients, ["c@d.test", "e@d.test"]);
    assert_eq!(stores[0].data, b"Subject: x\r\n\r\nbody\r\n");
    assert_eq!(stores[1].sender, "");
    assert!(d.buf.is_empty() && d.closed);
}

#[test]
fn non_utf8_commands() {
    let r = after_ehlo(b"\xff\xfe\r\nMAIL FROM:<\xe9@b.test>\r\nNOOP\r\n");
    assert_starts(&r, &["500 5.5.2", "500 5.5.2", "250 2.0.0"]);
}

#[test]
fn long_command_line() {
    let mut d = ehloed();
    let mut line = vec![b'A'; 598];
    line.extend_from_slice(b"\r\nNOOP\r\n");
    d.feed(&line);
    assert_starts(&d.replies()[2..], &["500 5.5.2 Line too long", "250 2.0.0"]);
    assert!(d.max_buffer < 512);
    // 510 octets and CRLF is the longest line allowed; one more is too long.
    let mut d = ehloed();
    d.feed(format!("NOOP {}\r\nNOOP {}\r\n", "x".repeat(505), "x".repeat(506)).as_bytes());
    assert_starts(&d.replies()[2..], &["250 2.0.0", "500 5.5.2"]);
}

#[test]
fn megabyte_garbage_line() {
    let mut d = ehloed();
    let chunk = vec![b'z'; 4096];
    for _ in 0..256 {
        d.feed(&chunk);
        assert!(d.buf.len() < 512);
    }
    assert_eq!(d.replies().len(), 2);
    d.feed(b"\r\nNOOP\r\n");
    assert_starts(&d.replies()[2..], &["500 5.5.2", "250 2.0.0"]);
}

#[test]
fn no_storage_refuses_mail() {
    let mut d = ehloed();
    d.env.storage = false;
    d.feed(b"MAIL FROM:<a@b.test>\r\n");
    assert_eq!(d.last(), "452 4.3.1 Insufficient system storage\r\n");
}

#[test]
fn bare_lf_command_lines_are_accepted() {
    let r = after_ehlo(b"NOOP\nMAIL FROM:<a@b.test>\n");
    assert_starts(&r, &["250 2.0.0", "250 2.1.0"]);
}
