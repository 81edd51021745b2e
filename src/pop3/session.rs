//! The POP3 session: line framing and the AUTHORIZATION / TRANSACTION / UPDATE states.
//!
//! Everything slow or fallible outside the protocol (checking a password, locking a mailbox,
//! reading or deleting files) is an `Output` action that the driver performs and answers through a
//! method; while one is outstanding the session reads no further input. That keeps pipelined
//! commands in order without the session ever holding a queue of its own: the unread commands stay
//! in the driver's buffer until the answer comes back.
//!
//! Framing is done here, not in the driver, so that the line-length rule (255 octets, RFC 2449) is
//! enforced in one place and the driver's buffer stays small: a line that cannot fit is consumed and
//! dropped as it arrives, and answered only once its end is seen, so replies keep their order and do
//! not depend on how the input was split into reads. AUTH lines (the command and the continuation
//! line of RFC 5034) may be up to 1,024 octets, since a base64 PLAIN response with a long password
//! does not fit in 255; which limit applies depends only on the state and the line's first octets,
//! so it too is the same however the input is split.
//!
//! STLS is an action like the others, with one difference: the bytes after the STLS line are never
//! read by this session at all. `receive` stops right after the line, and the driver discards its
//! buffer before the handshake, so a command injected behind STLS in clear text is never executed
//! (the STARTTLS injection bugs of 2011). `tls_started` then starts AUTHORIZATION afresh, forgetting
//! any USER, and the session is encrypted from then on.
//!
//! Login (USER/PASS or AUTH PLAIN) is allowed when the connection is encrypted or the driver says
//! clear text is acceptable here; otherwise those commands get `-ERR [AUTH]` and CAPA hides them.
//! Both ways of logging in end in the same `CheckLogin` action and the same follow-up.

use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine;

use super::command::{self, Command, MsgArg};
use super::wire;
use super::{Listing, OpenFailure, Output, SessionParams};

/// Longest command line accepted, line end included (RFC 2449 §4).
pub const MAX_LINE: usize = 255;

/// Longest AUTH command or AUTH continuation line accepted, line end included.
pub const MAX_AUTH_LINE: usize = 1024;

/// Bad commands tolerated in one session; the one that reaches this count ends the session.
pub const MAX_ERRORS: u32 = 20;

/// The capabilities that do not depend on the connection (CAPA adds STLS, USER and SASL).
/// `UTF8 USER` (RFC 6856): UTF8 is understood, and USER, PASS and AUTH take UTF-8 names (they
/// always did: accounts may have UTF-8 names, in NFC). Messages are served as stored whether or not
/// the client said UTF8: jes does not downgrade (RFC 6857), and a tracker that never says UTF8 must
/// still get its mail.
const CAPABILITIES: &str = "TOP\r\nUIDL\r\nRESP-CODES\r\nPIPELINING\r\nAUTH-RESP-CODE\r\n\
UTF8 USER\r\nEXPIRE NEVER\r\nIMPLEMENTATION jes\r\n.\r\n";

const INVALID_LOGIN: &str = "-ERR [AUTH] Invalid user name or password";

/// Base64 as clients send it: standard alphabet, padding optional.
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

#[derive(Debug)]
enum State {
    /// `user` is set right after an accepted USER and cleared by any other command.
    Authorization {
        user: Option<String>,
    },
    /// `AUTH PLAIN` without an initial response: `+ ` was sent, the next line is the response.
    AuthPlain,
    /// STLS was accepted: waiting for `tls_started` or `tls_failed`, reading nothing.
    StartingTls,
    CheckingLogin {
        user: String,
    },
    OpeningMailbox {
        user: String,
    },
    Transaction,
    Retrieving {
        index: usize,
        top: Option<usize>,
    },
    /// QUIT was given in TRANSACTION: the UPDATE state, waiting for the deletions.
    Committing,
    Closed,
}

/// The mailbox as listed at login; numbers are positions in `messages` plus one and never change.
#[derive(Debug, Default)]
struct Maildrop {
    messages: Vec<Listing>,
    deleted: Vec<bool>,
}

impl Maildrop {
    fn live(&self) -> impl Iterator<Item = (usize, &Listing)> {
        self.messages
            .iter()
            .enumerate()
            .filter(|(i, _)| !self.deleted[*i])
    }

    fn totals(&self) -> (usize, u64) {
        self.live()
            .fold((0, 0), |(n, size), (_, m)| (n + 1, size + m.size))
    }
}

pub struct Session {
    params: SessionParams,
    state: State,
    maildrop: Maildrop,
    errors: u32,
    /// Inside a line that is already too long: drop input up to its LF.
    discarding: bool,
}

impl Session {
    pub fn new(params: SessionParams) -> Self {
        Session {
            params,
            state: State::Authorization { user: None },
            maildrop: Maildrop::default(),
            errors: 0,
            discarding: false,
        }
    }

    pub fn greeting(&mut self) -> Vec<u8> {
        format!(
            "+OK {} POP3 server ready\r\n",
            printable(&self.params.hostname)
        )
        .into_bytes()
    }

    /// Consumes input, pushing outputs; returns bytes consumed. While an action is pending
    /// (CheckLogin, OpenMailbox, Retrieve, Commit, StartTls) it consumes nothing more: after
    /// answering the action, call `receive` again with the unconsumed bytes (pipelined commands) —
    /// except after `StartTls`, where the unconsumed bytes must be thrown away. Once `Close` has
    /// been pushed, all input is consumed and ignored. Unconsumed bytes never exceed
    /// `MAX_AUTH_LINE - 1` unless an action is pending.
    pub fn receive(&mut self, input: &[u8], out: &mut Vec<Output>) -> usize {
        let mut used = 0;
        while used < input.len() && self.reading() {
            let rest = &input[used..];
            let limit = self.line_limit(rest);
            if self.discarding {
                match rest.iter().position(|&b| b == b'\n') {
                    Some(i) => {
                        used += i + 1;
                        self.discarding = false;
                        self.line_too_long(out);
                    }
                    None => used = input.len(),
                }
                continue;
            }
            let window = &rest[..rest.len().min(limit)];
            match window.iter().position(|&b| b == b'\n') {
                Some(i) => {
                    used += i + 1;
                    let line = &rest[..i];
                    self.line(line.strip_suffix(b"\r").unwrap_or(line), out);
                }
                None if window.len() == limit => {
                    used += limit;
                    self.discarding = true;
                }
                None => break,
            }
        }
        if matches!(self.state, State::Closed) {
            input.len()
        } else {
            used
        }
    }

    /// Result of `CheckLogin`; pushes the reply or the next action onto `out`.
    pub fn login_checked(&mut self, ok: bool, out: &mut Vec<Output>) {
        let State::CheckingLogin { user } = &mut self.state else {
            return;
        };
        let user = std::mem::take(user);
        if ok {
            out.push(Output::OpenMailbox { user: user.clone() });
            self.state = State::OpeningMailbox { user };
        } else {
            self.state = State::Authorization { user: None };
            self.bad(INVALID_LOGIN, out);
        }
    }

    /// Result of `CheckLogin` when the accounts cannot be read (their database is away): no
    /// verdict on the password, `-ERR [SYS/TEMP]` (RFC 3206) so the client tries again later.
    pub fn login_unavailable(&mut self, out: &mut Vec<Output>) {
        if !matches!(self.state, State::CheckingLogin { .. }) {
            return;
        }
        self.state = State::Authorization { user: None };
        reply(out, "-ERR [SYS/TEMP] accounts unavailable, try again later");
    }

    /// The TLS handshake after `StartTls` succeeded: AUTHORIZATION starts again (RFC 2595 §4),
    /// encrypted. Nothing is sent; the client speaks next. The driver must already have thrown away
    /// the bytes it had not passed to `receive`.
    pub fn tls_started(&mut self) {
        if matches!(self.state, State::StartingTls) {
            self.params.encrypted = true;
            self.discarding = false;
            self.state = State::Authorization { user: None };
        }
    }

    /// The TLS handshake after `StartTls` failed: the session is closed (no `Close` is pushed; the
    /// driver drops the connection, as nothing can be written on it any more).
    pub fn tls_failed(&mut self) {
        if matches!(self.state, State::StartingTls) {
            self.state = State::Closed;
        }
    }

    /// Result of `OpenMailbox`; pushes the reply onto `out`.
    pub fn mailbox_opened(
        &mut self,
        result: Result<Vec<Listing>, OpenFailure>,
        out: &mut Vec<Output>,
    ) {
        let State::OpeningMailbox { user } = &mut self.state else {
            return;
        };
        let user = std::mem::take(user);
        match result {
            Ok(messages) => {
                let deleted = vec![false; messages.len()];
                self.maildrop = Maildrop { messages, deleted };
                let (n, size) = self.maildrop.totals();
                let user = printable(&user);
                reply(out, format!("+OK {user} has {n} messages ({size} octets)"));
                self.state = State::Transaction;
            }
            Err(failure) => {
                self.state = State::Authorization { user: None };
                let text = match failure {
                    OpenFailure::InUse => {
                        "-ERR [IN-USE] Mailbox is locked by another session".to_string()
                    }
                    OpenFailure::Temporary(t) => format!("-ERR [SYS/TEMP] {}", printable(&t)),
                };
                reply(out, text);
            }
        }
    }

    /// Result of `Retrieve`: the stored bytes (wire form, already dot-stuffed as JES and jes store
    /// them). Pushes the complete response (`+OK`, lines, `.`) onto `out`.
    pub fn retrieved(&mut self, stored: std::io::Result<Vec<u8>>, out: &mut Vec<Output>) {
        let State::Retrieving { index, top } = self.state else {
            return;
        };
        self.state = State::Transaction;
        let Ok(stored) = stored else {
            let n = index + 1;
            reply(out, format!("-ERR [SYS/TEMP] cannot read message {n}"));
            return;
        };
        let mut response = match top {
            None => {
                let size = self.maildrop.messages.get(index).map_or(0, |m| m.size);
                format!("+OK {size} octets\r\n").into_bytes()
            }
            Some(_) => b"+OK top of message follows\r\n".to_vec(),
        };
        wire::encode(&stored, top, &mut response);
        response.extend_from_slice(b".\r\n");
        out.push(Output::Reply(response));
    }

    /// Result of `Commit`; pushes the reply and `Close`.
    pub fn committed(&mut self, result: Result<(), String>, out: &mut Vec<Output>) {
        if !matches!(self.state, State::Committing) {
            return;
        }
        let text = match result {
            Ok(()) => format!(
                "+OK {} POP3 server signing off ({} messages left)",
                printable(&self.params.hostname),
                self.maildrop.totals().0
            ),
            Err(_) => "-ERR [SYS/TEMP] some deleted messages not removed".to_string(),
        };
        reply(out, text);
        self.close(out);
    }

    /// Reply when the 10-minute idle timer expires.
    pub fn timeout_reply(&self) -> Vec<u8> {
        b"-ERR [SYS/TEMP] idle timeout, signing off\r\n".to_vec()
    }

    /// True while an action is outstanding and `receive` will not read.
    pub fn is_waiting(&self) -> bool {
        !self.reading() && !self.is_closed()
    }

    /// True once `Close` has been pushed.
    pub fn is_closed(&self) -> bool {
        matches!(self.state, State::Closed)
    }

    fn reading(&self) -> bool {
        matches!(
            self.state,
            State::Authorization { .. } | State::AuthPlain | State::Transaction
        )
    }

    /// The longest line accepted at the start of `rest`: AUTH lines may be longer than commands.
    fn line_limit(&self, rest: &[u8]) -> usize {
        let auth_command = rest.len() >= 5 && rest[..5].eq_ignore_ascii_case(b"AUTH ");
        if matches!(self.state, State::AuthPlain) || auth_command {
            MAX_AUTH_LINE
        } else {
            MAX_LINE
        }
    }

    /// USER/PASS and AUTH PLAIN may be used now.
    fn login_allowed(&self) -> bool {
        self.params.encrypted || self.params.clear_text_allowed
    }

    fn stls_allowed(&self) -> bool {
        self.params.tls_available && !self.params.encrypted
    }

    /// `-ERR [AUTH]` for a login attempt that the clear-text policy forbids.
    fn refuse_clear_text(&mut self, out: &mut Vec<Output>) {
        let text = if self.stls_allowed() {
            "-ERR [AUTH] Plaintext authentication is disallowed on an unencrypted connection; use STLS"
        } else {
            "-ERR [AUTH] Plaintext authentication is disallowed on an unencrypted connection"
        };
        self.bad(text, out);
    }

    fn capabilities(&self) -> Vec<u8> {
        let mut text = String::from("+OK Capability list follows\r\n");
        if self.login_allowed() {
            text.push_str("USER\r\nSASL PLAIN\r\n");
        }
        if self.stls_allowed() && matches!(self.state, State::Authorization { .. }) {
            text.push_str("STLS\r\n");
        }
        text.push_str(CAPABILITIES);
        text.into_bytes()
    }

    fn close(&mut self, out: &mut Vec<Output>) {
        out.push(Output::Close);
        self.state = State::Closed;
    }

    /// Answers a client mistake; the `MAX_ERRORS`th ends the session instead.
    fn bad(&mut self, text: &str, out: &mut Vec<Output>) {
        self.errors += 1;
        if self.errors >= MAX_ERRORS {
            reply(out, "-ERR too many errors");
            self.close(out);
        } else {
            reply(out, text);
        }
    }

    fn line_too_long(&mut self, out: &mut Vec<Output>) {
        match &mut self.state {
            State::Authorization { user } => *user = None,
            // An over-long AUTH response ends the exchange.
            State::AuthPlain => self.state = State::Authorization { user: None },
            _ => {}
        }
        self.bad("-ERR line too long", out);
    }

    fn line(&mut self, line: &[u8], out: &mut Vec<Output>) {
        if matches!(self.state, State::AuthPlain) {
            self.state = State::Authorization { user: None };
            if line == b"*" {
                reply(out, "-ERR authentication cancelled");
            } else {
                self.auth_plain(line, out);
            }
            return;
        }
        let command = command::parse(line);
        match &mut self.state {
            State::Authorization { user } => {
                let user = user.take();
                self.authorization(command, user, out);
            }
            State::Transaction => self.transaction(command, out),
            _ => {}
        }
    }

    /// `user` is the name of an immediately preceding USER, already cleared from the state.
    fn authorization(&mut self, command: Command<'_>, user: Option<String>, out: &mut Vec<Output>) {
        match command {
            Command::User(_) | Command::Pass(_) if !self.login_allowed() => {
                self.refuse_clear_text(out)
            }
            Command::User(name) => match std::str::from_utf8(name) {
                Ok(name) if !name.is_empty() => {
                    self.state = State::Authorization {
                        user: Some(name.to_string()),
                    };
                    reply(out, "+OK send PASS");
                }
                Ok(_) => self.bad("-ERR user name required", out),
                Err(_) => self.bad(INVALID_LOGIN, out),
            },
            Command::Pass(password) => match (user, std::str::from_utf8(password)) {
                (None, _) => self.bad("-ERR send USER first", out),
                (Some(user), Ok(password)) => {
                    out.push(Output::CheckLogin {
                        user: user.clone(),
                        password: password.to_string(),
                    });
                    self.state = State::CheckingLogin { user };
                }
                // No account has a password that is not text.
                (Some(_), Err(_)) => self.bad(INVALID_LOGIN, out),
            },
            Command::Auth(None) => {
                let list = if self.login_allowed() {
                    "+OK\r\nPLAIN\r\n.\r\n"
                } else {
                    "+OK\r\n.\r\n"
                };
                out.push(Output::Reply(list.as_bytes().to_vec()));
            }
            Command::Auth(Some((mechanism, initial))) => {
                if !mechanism.eq_ignore_ascii_case(b"PLAIN") {
                    self.bad("-ERR unsupported authentication mechanism", out);
                } else if !self.login_allowed() {
                    self.refuse_clear_text(out);
                } else if let Some(initial) = initial {
                    self.auth_plain(initial, out);
                } else {
                    self.state = State::AuthPlain;
                    reply(out, "+ ");
                }
            }
            Command::Stls => {
                if self.params.encrypted {
                    self.bad("-ERR connection is already encrypted", out);
                } else if !self.params.tls_available {
                    self.bad("-ERR STLS not available", out);
                } else {
                    reply(out, "+OK Begin TLS negotiation");
                    out.push(Output::StartTls);
                    self.state = State::StartingTls;
                }
            }
            Command::Quit => {
                let host = printable(&self.params.hostname);
                reply(out, format!("+OK {host} POP3 server signing off"));
                self.close(out);
            }
            Command::Capa => out.push(Output::Reply(self.capabilities())),
            Command::Utf8 => reply(out, "+OK UTF8 enabled"),
            Command::Unknown => self.bad("-ERR unknown command", out),
            Command::Syntax(text) => self.bad(text, out),
            _ => self.bad("-ERR command not valid in this state", out),
        }
    }

    fn transaction(&mut self, command: Command<'_>, out: &mut Vec<Output>) {
        match command {
            Command::Stat => {
                let (n, size) = self.maildrop.totals();
                reply(out, format!("+OK {n} {size}"));
            }
            Command::List(None) => {
                let (n, size) = self.maildrop.totals();
                let mut text = format!("+OK {n} messages ({size} octets)\r\n");
                for (i, m) in self.maildrop.live() {
                    text.push_str(&format!("{} {}\r\n", i + 1, m.size));
                }
                text.push_str(".\r\n");
                out.push(Output::Reply(text.into_bytes()));
            }
            Command::List(Some(arg)) => {
                if let Some(i) = self.live(arg, out) {
                    let size = self.maildrop.messages[i].size;
                    reply(out, format!("+OK {} {size}", i + 1));
                }
            }
            Command::Uidl(None) => {
                let mut text = String::from("+OK unique-id listing follows\r\n");
                for (i, m) in self.maildrop.live() {
                    text.push_str(&format!("{} {}\r\n", i + 1, printable(&m.uid)));
                }
                text.push_str(".\r\n");
                out.push(Output::Reply(text.into_bytes()));
            }
            Command::Uidl(Some(arg)) => {
                if let Some(i) = self.live(arg, out) {
                    let uid = printable(&self.maildrop.messages[i].uid);
                    reply(out, format!("+OK {} {uid}", i + 1));
                }
            }
            Command::Retr(arg) => self.retrieve(arg, None, out),
            Command::Top(arg, lines) => self.retrieve(arg, Some(lines), out),
            Command::Dele(arg) => {
                if let Some(i) = self.number(arg, out) {
                    if self.maildrop.deleted[i] {
                        reply(out, format!("-ERR message {} already deleted", i + 1));
                    } else {
                        self.maildrop.deleted[i] = true;
                        reply(out, format!("+OK message {} deleted", i + 1));
                    }
                }
            }
            Command::Noop => reply(out, "+OK"),
            Command::Rset => {
                self.maildrop.deleted.fill(false);
                reply(out, "+OK");
            }
            Command::Quit => {
                let deleted = (0..self.maildrop.messages.len())
                    .filter(|&i| self.maildrop.deleted[i])
                    .collect();
                out.push(Output::Commit { deleted });
                self.state = State::Committing;
            }
            Command::Capa => out.push(Output::Reply(self.capabilities())),
            Command::Unknown => self.bad("-ERR unknown command", out),
            Command::Syntax(text) => self.bad(text, out),
            Command::User(_)
            | Command::Pass(_)
            | Command::Auth(_)
            | Command::Stls
            | Command::Utf8 => self.bad("-ERR command not valid in this state", out),
        }
    }

    /// A PLAIN response (RFC 4616: `authzid NUL authcid NUL password`, base64; `=` is empty), from
    /// `AUTH PLAIN <initial>` or the continuation line. The state is AUTHORIZATION on entry.
    fn auth_plain(&mut self, encoded: &[u8], out: &mut Vec<Output>) {
        let encoded = if encoded == b"=" { &b""[..] } else { encoded };
        let Ok(decoded) = BASE64.decode(encoded) else {
            self.bad("-ERR invalid base64 in authentication data", out);
            return;
        };
        let parts: Vec<&[u8]> = decoded.split(|&b| b == 0).collect();
        let [authzid, authcid, password] = parts[..] else {
            self.bad("-ERR malformed PLAIN response", out);
            return;
        };
        match (std::str::from_utf8(authcid), std::str::from_utf8(password)) {
            // Acting for another user (a different authorization identity) is not supported.
            (Ok(user), Ok(password))
                if !user.is_empty() && (authzid.is_empty() || authzid == authcid) =>
            {
                out.push(Output::CheckLogin {
                    user: user.to_string(),
                    password: password.to_string(),
                });
                self.state = State::CheckingLogin {
                    user: user.to_string(),
                };
            }
            _ => self.bad(INVALID_LOGIN, out),
        }
    }

    fn retrieve(&mut self, arg: MsgArg, top: Option<usize>, out: &mut Vec<Output>) {
        if let Some(index) = self.live(arg, out) {
            out.push(Output::Retrieve { index, top });
            self.state = State::Retrieving { index, top };
        }
    }

    /// The 0-based index of message number `arg`, deleted or not; otherwise answers `-ERR`.
    fn number(&mut self, arg: MsgArg, out: &mut Vec<Output>) -> Option<usize> {
        match arg {
            None => {
                self.bad("-ERR no such message", out);
                None
            }
            Some(n) if n == 0 || n > self.maildrop.messages.len() => {
                reply(out, "-ERR no such message");
                None
            }
            Some(n) => Some(n - 1),
        }
    }

    /// Like `number`, but a message marked deleted does not exist.
    fn live(&mut self, arg: MsgArg, out: &mut Vec<Output>) -> Option<usize> {
        let i = self.number(arg, out)?;
        if self.maildrop.deleted[i] {
            reply(out, "-ERR no such message");
            return None;
        }
        Some(i)
    }
}

fn reply(out: &mut Vec<Output>, text: impl Into<String>) {
    let mut bytes = text.into().into_bytes();
    bytes.extend_from_slice(b"\r\n");
    out.push(Output::Reply(bytes));
}

/// Text from outside the protocol (host names, user names, error texts, UIDs) made safe to put in
/// a reply line: control characters, which could end or split the line, become `?`.
fn printable(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}
