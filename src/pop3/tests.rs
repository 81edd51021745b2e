//! Session tests through a fake driver that behaves like `server`'s: a buffer, `receive`, and every
//! action answered at once from an in-memory mailbox. Whole transcripts are compared byte for byte,
//! because what a POP3 client sees is exactly the concatenated replies. Each chunk given to `run` is
//! one read; on `StartTls` the fake driver throws away what is left of its buffer (the rest of that
//! read) and completes the "handshake" at once, so later chunks stand for data read inside TLS.

use super::*;
use proptest::prelude::*;
use std::collections::VecDeque;

const FIXTURE: &[u8] = include_bytes!("testdata/pop6501300281251615158.jmsg");
const USER: &str = "trackstudio@127.0.0.1";
const PASS: &str = "secret with  spaces";
const SECOND: &[u8] = b"X-DeliveredTo: trackstudio@127.0.0.1\r\nSubject: two\r\n\r\nbody\r\n";

struct Backend {
    params: SessionParams,
    /// Whether the TLS handshake after `StartTls` succeeds.
    tls_ok: bool,
    /// `replies.len()` at each `StartTls`.
    tls_at: Vec<usize>,
    /// Set by `StartTls`: the driver must drop its unread input.
    discard: bool,
    open: Result<Vec<Listing>, OpenFailure>,
    files: Vec<Vec<u8>>,
    commit: Result<(), String>,
    /// The accounts cannot be read (their database is away): no verdict on a password.
    accounts_unknown: bool,
    /// Every action and `Close`, in order.
    actions: Vec<Output>,
    replies: Vec<u8>,
}

impl Backend {
    fn new() -> Self {
        let files = vec![FIXTURE.to_vec(), SECOND.to_vec()];
        let uids = ["6501300281251615158", "6501300281251615999"];
        let open = Ok(files
            .iter()
            .zip(uids)
            .map(|(f, uid)| Listing {
                uid: uid.to_string(),
                size: crate::stored_form::pop3_size(f),
            })
            .collect());
        Backend {
            params: params(),
            tls_ok: true,
            tls_at: Vec::new(),
            discard: false,
            open,
            files,
            commit: Ok(()),
            accounts_unknown: false,
            actions: Vec::new(),
            replies: Vec::new(),
        }
    }

    fn closed(&self) -> bool {
        self.actions.contains(&Output::Close)
    }

    /// Performs outputs like the driver; returns whether any action was answered.
    fn handle(&mut self, s: &mut Session, out: Vec<Output>) -> bool {
        let mut queue: VecDeque<Output> = out.into();
        let mut acted = false;
        while let Some(o) = queue.pop_front() {
            assert!(!self.closed(), "output after Close: {o:?}");
            let mut more = Vec::new();
            match &o {
                Output::Reply(bytes) => {
                    assert!(bytes.ends_with(b"\r\n"));
                    self.replies.extend_from_slice(bytes);
                    continue;
                }
                Output::CheckLogin { .. } if self.accounts_unknown => {
                    s.login_unavailable(&mut more)
                }
                Output::CheckLogin { user, password } => {
                    s.login_checked(user == USER && password == PASS, &mut more)
                }
                Output::OpenMailbox { .. } => s.mailbox_opened(self.open.clone(), &mut more),
                Output::Retrieve { index, .. } => {
                    s.retrieved(Ok(self.files[*index].clone()), &mut more)
                }
                Output::Commit { .. } => s.committed(self.commit.clone(), &mut more),
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

    /// Feeds `chunks` one read at a time, like the driver; returns the client's view.
    fn run(&mut self, chunks: &[&[u8]]) -> String {
        let mut s = Session::new(self.params.clone());
        self.replies.extend_from_slice(&s.greeting());
        let mut buf = Vec::new();
        for chunk in chunks {
            buf.extend_from_slice(chunk);
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
            assert!(
                buf.len() < MAX_AUTH_LINE || s.is_closed(),
                "buffer grew to {}",
                buf.len()
            );
        }
        String::from_utf8_lossy(&self.replies).into_owned()
    }
}

fn params() -> SessionParams {
    SessionParams::new("mail.example.org", "t1", "127.0.0.1".parse().unwrap())
}

fn session() -> Session {
    Session::new(params())
}

/// Runs a transcript given as one read per line.
fn run_lines(backend: &mut Backend, lines: &[&str]) -> String {
    let lines: Vec<String> = lines.iter().map(|l| format!("{l}\r\n")).collect();
    let chunks: Vec<&[u8]> = lines.iter().map(|l| l.as_bytes()).collect();
    backend.run(&chunks)
}

fn login() -> Vec<&'static str> {
    vec!["USER trackstudio@127.0.0.1", "PASS secret with  spaces"]
}

const GREETING: &str = "+OK mail.example.org POP3 server ready\r\n";
const LOGGED_IN: &str =
    "+OK send PASS\r\n+OK trackstudio@127.0.0.1 has 2 messages (410 octets)\r\n";

#[test]
fn trackstudio_flow() {
    let mut b = Backend::new();
    let mut script = login();
    script.extend(["STAT", "LIST", "UIDL", "RETR 1", "DELE 1", "QUIT"]);
    let text = run_lines(&mut b, &script);
    let fixture = String::from_utf8(FIXTURE.to_vec()).unwrap();
    let expected = format!(
        "{GREETING}{LOGGED_IN}+OK 2 410\r\n\
         +OK 2 messages (410 octets)\r\n1 350\r\n2 60\r\n.\r\n\
         +OK unique-id listing follows\r\n1 6501300281251615158\r\n2 6501300281251615999\r\n.\r\n\
         +OK 350 octets\r\n{fixture}.\r\n\
         +OK message 1 deleted\r\n\
         +OK mail.example.org POP3 server signing off (1 messages left)\r\n"
    );
    assert_eq!(text, expected);
    assert_eq!(
        b.actions,
        vec![
            Output::CheckLogin {
                user: USER.into(),
                password: PASS.into()
            },
            Output::OpenMailbox { user: USER.into() },
            Output::Retrieve {
                index: 0,
                top: None
            },
            Output::Commit { deleted: vec![0] },
            Output::Close,
        ]
    );
}

#[test]
fn retr_sends_stored_dots_once() {
    let mut b = Backend::new();
    let mut script = login();
    script.push("retr 1");
    let text = run_lines(&mut b, &script);
    assert!(text.contains("\r\n..A line that starts with a dot\r\nLast line.\r\n.\r\n"));
    assert!(!text.contains("...A"));
}

#[test]
fn retr_adds_missing_line_end_and_stuffs_lone_dot() {
    let mut b = Backend::new();
    b.files[1] = b"Subject: x\n\n.\nend".to_vec();
    let mut script = login();
    script.push("RETR 2");
    let text = run_lines(&mut b, &script);
    assert!(text.ends_with("+OK 60 octets\r\nSubject: x\r\n\r\n..\r\nend\r\n.\r\n"));
}

#[test]
fn top_sends_header_and_k_lines() {
    let mut b = Backend::new();
    let mut script = login();
    script.extend(["TOP 1 1", "TOP 1 0", "TOP 3 1", "TOP 1 x"]);
    let text = run_lines(&mut b, &script);
    let header = "X-DeliveredTo: trackstudio@127.0.0.1\r\n";
    let tail = "Message-ID: <fixture-1@example.org>\r\n\r\n";
    let first = format!("+OK top of message follows\r\n{header}");
    assert_eq!(text.matches(&first).count(), 2);
    assert!(text.contains(&format!("{tail}First line.\r\n.\r\n")));
    assert!(text.contains(&format!("{tail}.\r\n")));
    assert!(text.ends_with("-ERR no such message\r\n-ERR invalid line count\r\n"));
    let tops: Vec<_> = b
        .actions
        .iter()
        .filter(|a| matches!(a, Output::Retrieve { .. }))
        .collect();
    assert_eq!(tops.len(), 2);
    assert_eq!(
        tops[0],
        &Output::Retrieve {
            index: 0,
            top: Some(1)
        }
    );
}

#[test]
fn bad_password_returns_to_authorization() {
    let mut b = Backend::new();
    let mut script = vec![
        "USER trackstudio@127.0.0.1",
        "PASS wrong",
        "PASS secret with  spaces",
    ];
    script.extend(login());
    script.push("STAT");
    let text = run_lines(&mut b, &script);
    assert_eq!(
        text,
        format!(
            "{GREETING}+OK send PASS\r\n-ERR [AUTH] Invalid user name or password\r\n\
             -ERR send USER first\r\n{LOGGED_IN}+OK 2 410\r\n"
        )
    );
}

#[test]
fn a_login_while_the_accounts_are_unknown_is_a_temporary_failure() {
    let mut b = Backend::new();
    b.accounts_unknown = true;
    let mut script = login();
    script.push("PASS secret");
    let text = run_lines(&mut b, &script);
    assert_eq!(
        text,
        format!(
            "{GREETING}+OK send PASS\r\n-ERR [SYS/TEMP] accounts unavailable, try again later\r\n\
             -ERR send USER first\r\n"
        )
    );
    // Once they are known, the same client logs in.
    b.accounts_unknown = false;
    b.replies.clear();
    let text = run_lines(&mut b, &login());
    assert_eq!(text, format!("{GREETING}{LOGGED_IN}"));
}

#[test]
fn locked_or_failing_mailbox() {
    let mut b = Backend::new();
    b.open = Err(OpenFailure::InUse);
    let mut script = login();
    script.extend(["STAT", "QUIT"]);
    let text = run_lines(&mut b, &script);
    assert_eq!(
        text,
        format!(
            "{GREETING}+OK send PASS\r\n-ERR [IN-USE] Mailbox is locked by another session\r\n\
             -ERR command not valid in this state\r\n\
             +OK mail.example.org POP3 server signing off\r\n"
        )
    );
    assert!(!b.actions.iter().any(|a| matches!(a, Output::Commit { .. })));

    let mut b = Backend::new();
    b.open = Err(OpenFailure::Temporary("disk\r\ntrouble".into()));
    let text = run_lines(&mut b, &login());
    assert!(text.ends_with("-ERR [SYS/TEMP] disk??trouble\r\n"));
}

#[test]
fn deleted_messages_vanish_from_stat_list_and_uidl() {
    let mut b = Backend::new();
    let mut script = login();
    script.extend([
        "DELE 1", "DELE 1", "STAT", "LIST", "LIST 1", "UIDL 1", "RETR 1", "LIST 2", "UIDL",
    ]);
    let text = run_lines(&mut b, &script);
    assert_eq!(
        text,
        format!(
            "{GREETING}{LOGGED_IN}+OK message 1 deleted\r\n-ERR message 1 already deleted\r\n\
             +OK 1 60\r\n+OK 1 messages (60 octets)\r\n2 60\r\n.\r\n\
             -ERR no such message\r\n-ERR no such message\r\n-ERR no such message\r\n\
             +OK 2 60\r\n+OK unique-id listing follows\r\n2 6501300281251615999\r\n.\r\n"
        )
    );
}

#[test]
fn bad_message_numbers() {
    let mut b = Backend::new();
    let mut script = login();
    script.extend([
        "LIST 0",
        "LIST 3",
        "LIST abc",
        "DELE 99999999999999999999999",
        "RETR",
    ]);
    let text = run_lines(&mut b, &script);
    assert_eq!(
        text,
        format!(
            "{GREETING}{LOGGED_IN}{}-ERR message number required\r\n",
            "-ERR no such message\r\n".repeat(4)
        )
    );
}

#[test]
fn rset_undeletes() {
    let mut b = Backend::new();
    let mut script = login();
    script.extend(["DELE 1", "DELE 2", "STAT", "RSET", "STAT", "QUIT"]);
    let text = run_lines(&mut b, &script);
    assert!(text.contains("+OK 0 0\r\n+OK\r\n+OK 2 410\r\n"));
    assert!(text.ends_with("signing off (2 messages left)\r\n"));
    assert!(b.actions.contains(&Output::Commit { deleted: vec![] }));
}

#[test]
fn dropped_session_commits_nothing() {
    let mut b = Backend::new();
    let mut script = login();
    script.extend(["DELE 1", "DELE 2"]);
    run_lines(&mut b, &script);
    assert!(!b
        .actions
        .iter()
        .any(|a| matches!(a, Output::Commit { .. } | Output::Close)));
}

#[test]
fn failed_commit_is_reported() {
    let mut b = Backend::new();
    b.commit = Err("EIO".into());
    let mut script = login();
    script.extend(["DELE 2", "QUIT", "NOOP"]);
    let text = run_lines(&mut b, &script);
    assert!(text.ends_with(
        "+OK message 2 deleted\r\n-ERR [SYS/TEMP] some deleted messages not removed\r\n"
    ));
    assert_eq!(b.actions.last(), Some(&Output::Close));
}

#[test]
fn capa_noop_and_state_checks() {
    let mut b = Backend::new();
    let mut script = vec!["CAPA", "NOOP", "STAT", "PASS x", "USER", "HELO", "utf8"];
    script.extend(login());
    script.extend(["capa", "noop", "USER x", "PASS y", "UTF8"]);
    let text = run_lines(&mut b, &script);
    let capa = "+OK Capability list follows\r\nUSER\r\nSASL PLAIN\r\nTOP\r\nUIDL\r\nRESP-CODES\r\n\
                PIPELINING\r\nAUTH-RESP-CODE\r\nUTF8 USER\r\nEXPIRE NEVER\r\nIMPLEMENTATION jes\r\n.\r\n";
    let invalid = "-ERR command not valid in this state\r\n";
    assert_eq!(
        text,
        format!(
            "{GREETING}{capa}{invalid}{invalid}-ERR send USER first\r\n-ERR user name required\r\n\
             -ERR unknown command\r\n+OK UTF8 enabled\r\n{LOGGED_IN}{capa}+OK\r\n{invalid}{invalid}{invalid}"
        )
    );
}

#[test]
fn pipelined_commands_in_one_read() {
    let mut script = login();
    script.extend([
        "STAT", "RETR 2", "TOP 1 0", "DELE 2", "LIST", "QUIT", "STAT",
    ]);
    let mut one = Backend::new();
    let all: String = script.iter().map(|l| format!("{l}\r\n")).collect();
    let together = one.run(&[all.as_bytes()]);
    let mut each = Backend::new();
    assert_eq!(together, run_lines(&mut each, &script));
    assert_eq!(one.actions, each.actions);
    assert!(together.ends_with("(1 messages left)\r\n"));
}

#[test]
fn over_long_line_is_dropped_and_answered_once() {
    let long = format!("USER {}\r\n", "x".repeat(400));
    let input = format!("{long}NOOP\r\nLIST {}\r\nQUIT\r\n", "1".repeat(249));
    let mut b = Backend::new();
    let text = b.run(&[input.as_bytes()]);
    let expected = format!(
        "{GREETING}-ERR line too long\r\n-ERR command not valid in this state\r\n\
         -ERR line too long\r\n+OK mail.example.org POP3 server signing off\r\n"
    );
    assert_eq!(text, expected);
    let mut b = Backend::new();
    let chunks: Vec<&[u8]> = input.as_bytes().chunks(7).collect();
    assert_eq!(b.run(&chunks), expected);
    // 255 octets with CRLF is still a command.
    let mut b = Backend::new();
    let ok = format!("USER {}\r\nQUIT\r\n", "u".repeat(248));
    assert!(b.run(&[ok.as_bytes()]).contains("+OK send PASS"));
}

#[test]
fn too_many_errors_close_the_session() {
    let mut b = Backend::new();
    let input = "BAD\r\n".repeat(25);
    let text = b.run(&[input.as_bytes()]);
    assert_eq!(
        text,
        format!(
            "{GREETING}{}-ERR too many errors\r\n",
            "-ERR unknown command\r\n".repeat(MAX_ERRORS as usize - 1)
        )
    );
    assert_eq!(b.actions, vec![Output::Close]);
}

#[test]
fn odd_bytes_and_timeout() {
    let mut b = Backend::new();
    let text = b.run(&[b"USER \xff\xfe\r\nUSER a\r\nPASS \xc3\x28\r\n\x00\x01\n"]);
    let auth = "-ERR [AUTH] Invalid user name or password\r\n";
    assert_eq!(
        text,
        format!("{GREETING}{auth}+OK send PASS\r\n{auth}-ERR unknown command\r\n")
    );
    assert!(b.actions.is_empty());
    assert_eq!(
        session().timeout_reply(),
        b"-ERR [SYS/TEMP] idle timeout, signing off\r\n"
    );
}

const CAPA_TAIL: &str =
    "TOP\r\nUIDL\r\nRESP-CODES\r\nPIPELINING\r\nAUTH-RESP-CODE\r\nUTF8 USER\r\n\
                         EXPIRE NEVER\r\nIMPLEMENTATION jes\r\n.\r\n";
const CAPA_HEAD: &str = "+OK Capability list follows\r\n";
const BEGIN_TLS: &str = "+OK Begin TLS negotiation\r\n";
const REFUSED: &str =
    "-ERR [AUTH] Plaintext authentication is disallowed on an unencrypted connection; use STLS\r\n";
const INVALID: &str = "-ERR [AUTH] Invalid user name or password\r\n";
const NOT_HERE: &str = "-ERR command not valid in this state\r\n";

/// A backend whose sessions offer STLS on a clear connection, with clear-text login as given.
fn tls_backend(clear_text_allowed: bool) -> Backend {
    let mut b = Backend::new();
    b.params = SessionParams {
        tls_available: true,
        clear_text_allowed,
        ..params()
    };
    b
}

fn b64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// The PLAIN response for `user` and `password` with an empty authorization identity.
fn plain(user: &str, password: &str) -> String {
    b64(format!("\0{user}\0{password}").as_bytes())
}

fn check_logins(b: &Backend) -> Vec<&Output> {
    b.actions
        .iter()
        .filter(|a| matches!(a, Output::CheckLogin { .. }))
        .collect()
}

#[test]
fn capa_before_and_after_stls() {
    let mut b = tls_backend(false);
    let text = run_lines(&mut b, &["CAPA", "STLS", "CAPA"]);
    assert_eq!(
        text,
        format!(
            "{GREETING}{CAPA_HEAD}STLS\r\n{CAPA_TAIL}{BEGIN_TLS}\
             {CAPA_HEAD}USER\r\nSASL PLAIN\r\n{CAPA_TAIL}"
        )
    );
    assert_eq!(b.actions, vec![Output::StartTls]);

    // Clear text allowed: everything is offered before STLS.
    let mut b = tls_backend(true);
    let text = run_lines(&mut b, &["CAPA"]);
    assert!(text.ends_with(&format!(
        "{CAPA_HEAD}USER\r\nSASL PLAIN\r\nSTLS\r\n{CAPA_TAIL}"
    )));

    // Implicit TLS: no STLS, login offered even when clear text is not allowed.
    let mut b = Backend::new();
    b.params = SessionParams {
        tls_available: true,
        encrypted: true,
        clear_text_allowed: false,
        ..params()
    };
    let text = run_lines(&mut b, &["CAPA", "STLS"]);
    assert_eq!(
        text,
        format!(
            "{GREETING}{CAPA_HEAD}USER\r\nSASL PLAIN\r\n{CAPA_TAIL}\
             -ERR connection is already encrypted\r\n"
        )
    );
}

#[test]
fn stls_injection_is_never_executed() {
    // Driving the session directly: STLS and USER in one read.
    let mut s = Session::new(SessionParams {
        tls_available: true,
        ..params()
    });
    let input = b"STLS\r\nUSER x\r\n";
    let mut out = Vec::new();
    assert_eq!(s.receive(input, &mut out), 6);
    assert_eq!(out, vec![Output::Reply(BEGIN_TLS.into()), Output::StartTls]);
    assert!(s.is_waiting());
    // Even a driver that forgets to drop its buffer gets nothing read before the handshake.
    let mut out = Vec::new();
    assert_eq!(s.receive(&input[6..], &mut out), 0);
    assert!(out.is_empty());
    s.tls_started();
    assert!(!s.is_waiting());
    // USER x was thrown away with the buffer: PASS has no USER to go with.
    let mut out = Vec::new();
    assert_eq!(s.receive(b"PASS y\r\n", &mut out), 8);
    assert_eq!(
        out,
        vec![Output::Reply(b"-ERR send USER first\r\n".to_vec())]
    );

    // Through the fake driver, which drops the rest of the read as the real one must.
    let mut b = tls_backend(true);
    let text = b.run(&[b"STLS\r\nUSER x\r\n", b"PASS y\r\n"]);
    assert_eq!(
        text,
        format!("{GREETING}{BEGIN_TLS}-ERR send USER first\r\n")
    );
    assert_eq!(b.tls_at, vec![GREETING.len() + BEGIN_TLS.len()]);
    assert!(check_logins(&b).is_empty());

    // A USER given before STLS is forgotten too.
    let mut b = tls_backend(true);
    let text = run_lines(
        &mut b,
        &[
            "USER trackstudio@127.0.0.1",
            "STLS",
            &format!("PASS {PASS}"),
        ],
    );
    assert_eq!(
        text,
        format!("{GREETING}+OK send PASS\r\n{BEGIN_TLS}-ERR send USER first\r\n")
    );
    assert!(check_logins(&b).is_empty());
}

#[test]
fn clear_text_login_refused_until_tls() {
    let mut b = tls_backend(false);
    let mut script = vec![
        "USER trackstudio@127.0.0.1".to_string(),
        format!("PASS {PASS}"),
        format!("AUTH PLAIN {}", plain(USER, PASS)),
        "AUTH PLAIN".into(),
        "AUTH".into(),
        "STLS".into(),
        "AUTH".into(),
    ];
    script.extend(login().iter().map(|l| l.to_string()));
    script.push("STAT".into());
    let lines: Vec<&str> = script.iter().map(String::as_str).collect();
    let text = run_lines(&mut b, &lines);
    assert_eq!(
        text,
        format!(
            "{GREETING}{}+OK\r\n.\r\n{BEGIN_TLS}+OK\r\nPLAIN\r\n.\r\n{LOGGED_IN}+OK 2 410\r\n",
            REFUSED.repeat(4)
        )
    );
    assert_eq!(
        check_logins(&b),
        vec![&Output::CheckLogin {
            user: USER.into(),
            password: PASS.into()
        }]
    );

    // Without a certificate there is nothing to point the client to.
    let mut b = Backend::new();
    b.params.clear_text_allowed = false;
    let text = run_lines(&mut b, &["USER a", "STLS", "CAPA"]);
    assert_eq!(
        text,
        format!(
            "{GREETING}-ERR [AUTH] Plaintext authentication is disallowed on an unencrypted \
             connection\r\n-ERR STLS not available\r\n{CAPA_HEAD}{CAPA_TAIL}"
        )
    );
    assert!(b.actions.is_empty());
}

#[test]
fn stls_refused_in_transaction_and_failed_handshake_closes() {
    let mut b = tls_backend(true);
    let mut script = login();
    script.extend(["STLS", "CAPA", "QUIT"]);
    let text = run_lines(&mut b, &script);
    assert!(text.contains(&format!(
        "has 2 messages (410 octets)\r\n{NOT_HERE}{CAPA_HEAD}USER\r\nSASL PLAIN\r\n{CAPA_TAIL}"
    )));
    assert!(!b.actions.contains(&Output::StartTls));

    let mut b = tls_backend(true);
    b.tls_ok = false;
    let text = b.run(&[b"STLS\r\nNOOP\r\n", b"QUIT\r\n"]);
    assert_eq!(text, format!("{GREETING}{BEGIN_TLS}"));
    assert_eq!(b.actions, vec![Output::StartTls]);

    // tls_started or tls_failed out of turn change nothing.
    let mut s = Session::new(SessionParams {
        tls_available: true,
        ..params()
    });
    s.tls_started();
    s.tls_failed();
    let mut out = Vec::new();
    s.receive(b"CAPA\r\n", &mut out);
    let capa = format!("{CAPA_HEAD}USER\r\nSASL PLAIN\r\nSTLS\r\n{CAPA_TAIL}");
    assert_eq!(out, vec![Output::Reply(capa.into())]);
}

#[test]
fn auth_plain_logs_in_like_pass() {
    // With an initial response.
    let mut b = Backend::new();
    let auth = format!("AUTH PLAIN {}", plain(USER, PASS));
    let text = run_lines(&mut b, &[&auth, "STAT"]);
    let opened = "+OK trackstudio@127.0.0.1 has 2 messages (410 octets)\r\n";
    assert_eq!(text, format!("{GREETING}{opened}+OK 2 410\r\n"));
    let mut by_pass = Backend::new();
    run_lines(&mut by_pass, &login());
    assert_eq!(b.actions, by_pass.actions);

    // With a continuation line, lower-case mechanism, authzid equal to authcid, no padding.
    let mut b = Backend::new();
    let response = b64(format!("{USER}\0{USER}\0{PASS}").as_bytes());
    let response = response.trim_end_matches('=');
    let text = run_lines(&mut b, &["auth plain", response, "STAT"]);
    assert_eq!(text, format!("{GREETING}+ \r\n{opened}+OK 2 410\r\n"));
}

#[test]
fn auth_plain_failures() {
    let mut b = Backend::new();
    let wrong = plain(USER, "wrong");
    let other_authzid = b64(format!("admin\0{USER}\0{PASS}").as_bytes());
    let script = [
        format!("AUTH PLAIN {wrong}"),
        "AUTH PLAIN".into(),
        "*".into(),
        "AUTH PLAIN".into(),
        "not base64!".into(),
        format!("AUTH PLAIN {}", b64(b"no nul at all")),
        "AUTH PLAIN =".into(),
        format!("AUTH PLAIN {other_authzid}"),
        format!("AUTH PLAIN {}", b64(b"\0\xff\xfe\0x")),
        format!("AUTH PLAIN {}", b64(format!("\0\0{PASS}").as_bytes())),
        "AUTH LOGIN".into(),
        "AUTH PLAIN a b".into(),
        // The exchange really ended: these are commands again.
        "*".into(),
        "STAT".into(),
    ];
    let lines: Vec<&str> = script.iter().map(String::as_str).collect();
    let text = run_lines(&mut b, &lines);
    assert_eq!(
        text,
        format!(
            "{GREETING}{INVALID}+ \r\n-ERR authentication cancelled\r\n+ \r\n\
             -ERR invalid base64 in authentication data\r\n\
             -ERR malformed PLAIN response\r\n-ERR malformed PLAIN response\r\n\
             {INVALID}{INVALID}{INVALID}\
             -ERR unsupported authentication mechanism\r\n-ERR too many arguments\r\n\
             -ERR unknown command\r\n{NOT_HERE}"
        )
    );
    assert_eq!(
        check_logins(&b),
        vec![&Output::CheckLogin {
            user: USER.into(),
            password: "wrong".into()
        }]
    );
}

#[test]
fn auth_in_transaction_is_refused() {
    let mut b = Backend::new();
    let mut script = login();
    let auth = format!("AUTH PLAIN {}", plain(USER, PASS));
    script.extend(["AUTH", &auth, "AUTH PLAIN", "STAT"]);
    let text = run_lines(&mut b, &script);
    assert!(text.ends_with(&format!("{}+OK 2 410\r\n", NOT_HERE.repeat(3))));
    assert_eq!(check_logins(&b).len(), 1);
}

#[test]
fn auth_lines_may_be_long() {
    let long_password = "p".repeat(700);
    let response = plain(USER, &long_password);
    assert!(response.len() > MAX_LINE && response.len() + 13 < MAX_AUTH_LINE);
    let mut b = Backend::new();
    let auth = format!("AUTH PLAIN {response}");
    let text = run_lines(&mut b, &["AUTH PLAIN", &response, &auth]);
    assert_eq!(text, format!("{GREETING}+ \r\n{INVALID}{INVALID}"));
    assert_eq!(check_logins(&b).len(), 2);

    // Past 1,024 octets the line is dropped and the exchange ends.
    let too_long = plain(USER, &"p".repeat(800));
    assert!(too_long.len() + 2 > MAX_AUTH_LINE);
    let mut b = Backend::new();
    let input = format!("AUTH PLAIN\r\n{too_long}\r\nNOOP\r\nAUTH PLAIN {too_long}\r\nQUIT\r\n");
    let expected = format!(
        "{GREETING}+ \r\n-ERR line too long\r\n{NOT_HERE}-ERR line too long\r\n\
         +OK mail.example.org POP3 server signing off\r\n"
    );
    assert_eq!(b.run(&[input.as_bytes()]), expected);
    let mut b = Backend::new();
    let chunks: Vec<&[u8]> = input.as_bytes().chunks(100).collect();
    assert_eq!(b.run(&chunks), expected);
    assert!(check_logins(&b).is_empty());

    // Other commands keep the 255-octet limit.
    let mut b = Backend::new();
    let user = format!("USER {}\r\n", "u".repeat(300));
    assert!(b
        .run(&[user.as_bytes()])
        .ends_with("-ERR line too long\r\n"));
}

/// Splits `input` at the given points (taken modulo its length).
fn split<'a>(input: &'a [u8], cuts: &[usize]) -> Vec<&'a [u8]> {
    let mut points: Vec<usize> = cuts.iter().map(|c| c % (input.len() + 1)).collect();
    points.sort_unstable();
    let mut chunks = Vec::new();
    let mut start = 0;
    for p in points.into_iter().chain([input.len()]) {
        chunks.push(&input[start..p]);
        start = p;
    }
    chunks
}

fn token() -> impl Strategy<Value = Vec<u8>> {
    const COMMANDS: &[&str] = &[
        "USER trackstudio@127.0.0.1\r\n",
        "PASS secret with  spaces\r\n",
        "PASS nope\r\n",
        "STAT\r\n",
        "LIST\r\n",
        "LIST 2\r\n",
        "UIDL 1\r\n",
        "RETR 1\r\n",
        "TOP 2 1\r\n",
        "DELE 1\r\n",
        "RSET\r\n",
        "NOOP\r\n",
        "CAPA\r\n",
        "QUIT\r\n",
        "STLS\r\n",
        "AUTH\r\n",
        "AUTH PLAIN\r\n",
        // PLAIN for trackstudio@127.0.0.1 / secret with  spaces, as a command and as a response.
        "AUTH PLAIN AHRyYWNrc3R1ZGlvQDEyNy4wLjAuMQBzZWNyZXQgd2l0aCAgc3BhY2Vz\r\n",
        "AHRyYWNrc3R1ZGlvQDEyNy4wLjAuMQBzZWNyZXQgd2l0aCAgc3BhY2Vz\r\n",
        "AUTH PLAIN =\r\n",
        "AUTH LOGIN\r\n",
        "*\r\n",
        "\r\n",
        "\n",
        ".",
    ];
    prop_oneof![
        3 => prop::sample::select(COMMANDS).prop_map(|c| c.as_bytes().to_vec()),
        1 => prop::collection::vec(any::<u8>(), 0..40),
        1 => (200usize..400).prop_map(|n| vec![b'a'; n]),
        1 => (200usize..1100).prop_map(|n| {
            let mut line = b"AUTH PLAIN ".to_vec();
            line.resize(n, b'A');
            line
        }),
    ]
}

/// Session parameters; with `tls_available` false, STLS is always refused.
fn any_params(tls_available: bool) -> impl Strategy<Value = SessionParams> {
    (any::<bool>(), any::<bool>()).prop_map(move |(encrypted, clear_text_allowed)| SessionParams {
        tls_available,
        encrypted,
        clear_text_allowed,
        ..params()
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(10_000))]

    /// Any bytes, however they are split into reads, give the same replies and actions as the
    /// same bytes in one read, and never a panic.
    /// (Without a certificate: an accepted STLS drops the rest of its read, so with one the replies
    /// do depend on the reads, by design; see the next test.)
    #[test]
    fn replies_do_not_depend_on_reads(
        tokens in prop::collection::vec(token(), 0..24),
        cuts in prop::collection::vec(any::<usize>(), 0..12),
        params in any_params(false),
    ) {
        let input = tokens.concat();
        let mut whole = Backend::new();
        whole.params = params.clone();
        let expected = whole.run(&[&input]);
        let mut pieces = Backend::new();
        pieces.params = params;
        prop_assert_eq!(pieces.run(&split(&input, &cuts)), expected);
        prop_assert_eq!(pieces.actions, whole.actions);
    }

    /// With STLS on offer, any input split anyhow never panics, keeps the buffer bounded (checked
    /// in `run`), and STLS is accepted at most once, right after `+OK Begin TLS negotiation` and
    /// with nothing from the same read answered before the handshake.
    #[test]
    fn stls_with_any_input(
        tokens in prop::collection::vec(token(), 0..24),
        cuts in prop::collection::vec(any::<usize>(), 0..12),
        params in any_params(true),
        tls_ok in any::<bool>(),
    ) {
        let input = tokens.concat();
        let mut b = Backend::new();
        b.params = params;
        b.tls_ok = tls_ok;
        b.run(&split(&input, &cuts));
        prop_assert!(b.tls_at.len() <= 1);
        for &at in &b.tls_at {
            prop_assert!(b.replies[..at].ends_with(BEGIN_TLS.as_bytes()));
            prop_assert!(!b.params.encrypted);
        }
    }

    /// A session logging in with AUTH PLAIN (after a failure, a cancel and bad base64), split
    /// anywhere, gives exactly the transcript of one line per read.
    #[test]
    fn auth_plain_transcript_split_anywhere(
        cuts in prop::collection::vec(any::<usize>(), 0..20),
    ) {
        let wrong = format!("AUTH PLAIN {}", plain(USER, "wrong"));
        let good = plain(USER, PASS);
        let script = [&wrong, "AUTH PLAIN", "*", "AUTH PLAIN", "@@@", "AUTH", "auth plain",
                      &good, "CAPA", "STAT", "RETR 2", "DELE 2", "QUIT"];
        let all: String = script.iter().map(|l| format!("{l}\r\n")).collect();
        let mut each = Backend::new();
        let expected = run_lines(&mut each, &script);
        prop_assert!(expected.contains("+OK trackstudio@127.0.0.1 has 2 messages"));
        let mut b = Backend::new();
        prop_assert_eq!(b.run(&split(all.as_bytes(), &cuts)), expected);
        prop_assert_eq!(b.actions, each.actions);
    }

    /// A valid session split anywhere gives exactly the transcript of one command per read.
    #[test]
    fn valid_transcript_split_anywhere(cuts in prop::collection::vec(any::<usize>(), 0..20)) {
        let mut script = login();
        script.extend(["CAPA", "STAT", "LIST", "UIDL", "RETR 1", "TOP 2 0", "DELE 1", "LIST 1",
                       "RSET", "DELE 2", "NOOP", "QUIT"]);
        let all: String = script.iter().map(|l| format!("{l}\r\n")).collect();
        let mut each = Backend::new();
        let expected = run_lines(&mut each, &script);
        let mut b = Backend::new();
        prop_assert_eq!(b.run(&split(all.as_bytes(), &cuts)), expected);
        prop_assert_eq!(b.actions, each.actions);
    }
}
