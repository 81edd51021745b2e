//! Shared pieces of the fuzz targets: how a fuzz input becomes session parameters and a split into
//! reads, and the fake drivers of the SMTP and POP3 sessions.
//!
//! The drivers do exactly what `server`'s do (drop consumed bytes, answer a Store, login check or
//! mailbox action at once, throw the buffer away at STARTTLS, stop at Close) and check the driver
//! contract on the way, like the ones in `src/smtp/tests.rs` and `src/pop3/tests.rs`. They are
//! copies rather than shared code because those live under `#[cfg(test)]` inside the crate, and
//! the sessions' public API is all a driver needs.

use std::collections::VecDeque;
use std::net::{IpAddr, Ipv4Addr};

/// The first bytes of an input steer the run; the rest is what the client sends.
pub struct Input<'a> {
    /// Eight switches (session parameters).
    pub flags: u8,
    /// Read sizes, cycled: 1 to 256 octets each.
    pub sizes: [usize; 4],
    pub data: &'a [u8],
}

impl<'a> Input<'a> {
    pub const HEADER: usize = 5;

    pub fn new(raw: &'a [u8]) -> Option<Self> {
        if raw.len() < Self::HEADER {
            return None;
        }
        let s = |i: usize| raw[i] as usize + 1;
        Some(Input {
            flags: raw[0],
            sizes: [s(1), s(2), s(3), s(4)],
            data: &raw[Self::HEADER..],
        })
    }

    pub fn flag(&self, bit: u8) -> bool {
        self.flags & (1 << bit) != 0
    }

    /// `data` cut into reads of the given sizes, cycled.
    pub fn chunks(&self) -> Vec<&'a [u8]> {
        let mut out = Vec::new();
        let mut rest = self.data;
        let mut i = 0;
        while !rest.is_empty() {
            let n = self.sizes[i % self.sizes.len()].min(rest.len());
            let (a, b) = rest.split_at(n);
            out.push(a);
            rest = b;
            i += 1;
        }
        out
    }
}

/// Whether `data` contains `word`, ignoring ASCII case.
pub fn contains_ci(data: &[u8], word: &[u8]) -> bool {
    data.windows(word.len())
        .any(|w| w.eq_ignore_ascii_case(word))
}

pub mod smtp {
    use super::*;
    use jes::smtp::{Env, Output, RcptDecision, Session, SessionParams, StoreError};

    pub const USER: &str = "alice@d.test";
    pub const PASSWORD: &str = "secret";

    /// Accepts everything except a few addresses that stand for the other decisions.
    pub struct FuzzEnv;

    impl Env for FuzzEnv {
        fn check_recipient(&self, _sender: &str, rcpt: &str) -> RcptDecision {
            if rcpt.starts_with("nobody@") {
                RcptDecision::UnknownUser
            } else if rcpt.ends_with("@remote.test") {
                RcptDecision::RelayDenied
            } else {
                RcptDecision::Accept
            }
        }
        fn now_rfc5322(&self) -> String {
            "Wed, 25 Nov 2026 12:00:00 +0000".to_string()
        }
        fn new_message_id(&self) -> String {
            "<42.jes@mx.example.test>".to_string()
        }
    }

    pub fn params() -> SessionParams {
        SessionParams::new(
            "mx.example.test",
            "S1",
            IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7)),
        )
    }

    /// Session parameters from the input's switches (bit 7 is left for the caller).
    pub fn params_from(input: &Input) -> SessionParams {
        let mut p = SessionParams {
            max_message_size: [0, 40, 5000][(input.flags as usize >> 6) % 3],
            trusted: input.flag(0),
            submission: input.flag(4),
            require_sender_match: input.flag(5),
            ..params()
        };
        p.conn.tls_available = input.flag(1);
        p.conn.encrypted = input.flag(2);
        p.conn.clear_text_allowed = input.flag(3);
        p
    }

    pub struct Driver {
        pub session: Session,
        pub buf: Vec<u8>,
        pub log: Vec<Output>,
        pub max_buffer: usize,
        pub closed: bool,
        pub tls_ok: bool,
        stores: usize,
    }

    impl Driver {
        pub fn new(params: SessionParams, tls_ok: bool) -> Self {
            let mut session = Session::new(params);
            let greeting = session.greeting();
            Driver {
                session,
                buf: Vec::new(),
                log: vec![Output::Reply(greeting)],
                max_buffer: 0,
                closed: false,
                tls_ok,
                stores: 0,
            }
        }

        pub fn run(params: SessionParams, tls_ok: bool, reads: &[&[u8]]) -> Self {
            let mut d = Driver::new(params, tls_ok);
            for r in reads {
                d.feed(r);
            }
            d
        }

        fn assert_waits(&mut self) {
            let mut more = Vec::new();
            assert_eq!(self.session.receive(&self.buf, &FuzzEnv, &mut more), 0);
            assert!(more.is_empty(), "output while waiting for the driver");
        }

        pub fn feed(&mut self, bytes: &[u8]) {
            if self.closed {
                return;
            }
            self.buf.extend_from_slice(bytes);
            loop {
                let mut out = Vec::new();
                let n = self.session.receive(&self.buf, &FuzzEnv, &mut out);
                assert!(n <= self.buf.len());
                self.buf.drain(..n);
                let mut acted = false;
                for o in out {
                    assert!(
                        !acted,
                        "a second output after a Store, CheckAuth or StartTls"
                    );
                    match o {
                        Output::Store(env) => {
                            self.assert_waits();
                            self.stores += 1;
                            // Every third Store fails, so the error replies are covered too.
                            let result = if self.stores % 3 == 0 {
                                Err(StoreError::Temporary("disk trouble".into()))
                            } else {
                                Ok(format!("Q{}", self.stores))
                            };
                            self.log.push(Output::Store(env));
                            let reply = self.session.store_result(result);
                            self.log.push(Output::Reply(reply));
                            acted = true;
                        }
                        Output::CheckAuth { user, password } => {
                            self.assert_waits();
                            let ok = user.eq_ignore_ascii_case(USER) && password == PASSWORD;
                            self.log.push(Output::CheckAuth { user, password });
                            let reply = self.session.auth_result(ok);
                            self.log.push(Output::Reply(reply));
                            acted = true;
                        }
                        Output::StartTls => {
                            self.assert_waits();
                            self.log.push(Output::StartTls);
                            self.buf.clear();
                            if self.tls_ok {
                                self.session.tls_started();
                            } else {
                                self.session.tls_failed();
                                self.log.push(Output::Close);
                                self.closed = true;
                            }
                            acted = true;
                        }
                        Output::Close => {
                            self.log.push(Output::Close);
                            self.closed = true;
                        }
                        other => self.log.push(other),
                    }
                }
                if self.closed || !acted {
                    break;
                }
            }
            if !self.closed {
                self.max_buffer = self.max_buffer.max(self.buf.len());
            }
        }

        pub fn stores(&self) -> Vec<&jes::smtp::Envelope> {
            self.log
                .iter()
                .filter_map(|o| match o {
                    Output::Store(e) => Some(e),
                    _ => None,
                })
                .collect()
        }
    }
}

pub mod pop3 {
    use super::*;
    use jes::pop3::{Listing, OpenFailure, Output, Session, SessionParams};
    use jes::stored_form::pop3_size as unstuffed_size;

    pub const USER: &str = "trackstudio@127.0.0.1";
    pub const PASS: &str = "secret with  spaces";
    pub const BEGIN_TLS: &[u8] = b"+OK Begin TLS negotiation\r\n";

    const FIRST: &[u8] =
        b"From: a@b.test\r\nSubject: one\r\n\r\n..stuffed\r\nline two\r\n.\r\nlast";
    const SECOND: &[u8] = b"X-DeliveredTo: trackstudio@127.0.0.1\r\nSubject: two\r\n\r\nbody\r\n";

    pub fn params_from(input: &Input) -> SessionParams {
        SessionParams {
            tls_available: input.flag(0),
            encrypted: input.flag(1),
            clear_text_allowed: input.flag(2),
            ..SessionParams::new("mail.example.org", "t1", IpAddr::V4(Ipv4Addr::LOCALHOST))
        }
    }

    pub struct Backend {
        pub params: SessionParams,
        pub tls_ok: bool,
        /// `replies.len()` at each StartTls.
        pub tls_at: Vec<usize>,
        discard: bool,
        open: Result<Vec<Listing>, OpenFailure>,
        files: Vec<Vec<u8>>,
        commit: Result<(), String>,
        pub actions: Vec<Output>,
        pub replies: Vec<u8>,
        pub max_buffer: usize,
    }

    impl Backend {
        /// `variant` picks what the mailbox does: open or in use, commit fails or not.
        pub fn new(params: SessionParams, tls_ok: bool, variant: u8) -> Self {
            let files = vec![FIRST.to_vec(), SECOND.to_vec()];
            let open = if variant & 1 == 0 {
                Ok(files
                    .iter()
                    .zip(["6501300281251615158", "6501300281251615999"])
                    .map(|(f, uid)| Listing {
                        uid: uid.to_string(),
                        size: unstuffed_size(f),
                    })
                    .collect())
            } else {
                Err(OpenFailure::InUse)
            };
            let commit = if variant & 2 == 0 {
                Ok(())
            } else {
                Err("disk trouble".to_string())
            };
            Backend {
                params,
                tls_ok,
                tls_at: Vec::new(),
                discard: false,
                open,
                files,
                commit,
                actions: Vec::new(),
                replies: Vec::new(),
                max_buffer: 0,
            }
        }

        fn closed(&self) -> bool {
            self.actions.contains(&Output::Close)
        }

        fn handle(&mut self, s: &mut Session, out: Vec<Output>) -> bool {
            let mut queue: VecDeque<Output> = out.into();
            let mut acted = false;
            while let Some(o) = queue.pop_front() {
                assert!(!self.closed(), "output after Close: {o:?}");
                let mut more = Vec::new();
                match &o {
                    Output::Reply(bytes) => {
                        assert!(bytes.ends_with(b"\r\n"), "reply without CRLF: {bytes:?}");
                        self.replies.extend_from_slice(bytes);
                        continue;
                    }
                    Output::CheckLogin { user, password } => {
                        s.login_checked(user == USER && password == PASS, &mut more)
                    }
                    Output::OpenMailbox { .. } => s.mailbox_opened(self.open.clone(), &mut more),
                    Output::Retrieve { index, .. } => {
                        let file = self.files.get(*index).cloned();
                        assert!(
                            file.is_some(),
                            "RETR of message {index}, which is not listed"
                        );
                        s.retrieved(Ok(file.unwrap_or_default()), &mut more)
                    }
                    Output::Commit { deleted } => {
                        assert!(deleted.iter().all(|&i| i < self.files.len()));
                        s.committed(self.commit.clone(), &mut more)
                    }
                    Output::StartTls => {
                        self.tls_at.push(self.replies.len());
                        self.discard = true;
                        if self.tls_ok {
                            s.tls_started();
                        } else {
                            s.tls_failed();
                        }
                    }
                    Output::Close => {}
                }
                acted = true;
                self.actions.push(o);
                queue.extend(more);
            }
            acted
        }

        /// Feeds the reads like the driver; returns the client's view.
        pub fn run(&mut self, reads: &[&[u8]]) -> Vec<u8> {
            let mut s = Session::new(self.params.clone());
            self.replies.extend_from_slice(&s.greeting());
            let mut buf = Vec::new();
            for r in reads {
                buf.extend_from_slice(r);
                loop {
                    let mut out = Vec::new();
                    let n = s.receive(&buf, &mut out);
                    assert!(n <= buf.len());
                    buf.drain(..n);
                    let acted = self.handle(&mut s, out);
                    if std::mem::take(&mut self.discard) {
                        buf.clear();
                    }
                    if !acted {
                        break;
                    }
                }
                assert!(!s.is_waiting());
                if !s.is_closed() {
                    self.max_buffer = self.max_buffer.max(buf.len());
                }
            }
            self.replies.clone()
        }
    }
}
