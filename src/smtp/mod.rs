//! SMTP receiver as a sans-IO state machine.
//!
//! The driver (`server`) reads bytes from a socket, hands them to `Session::receive`, writes the
//! replies it gets back, and performs the actions (store a message, close). The session knows
//! nothing of sockets, clocks or files: time and policy come through the `Env` trait. Keeping IO
//! out means every protocol pitfall (smuggling, over-long lines, pipelining, split reads) can be
//! tested byte by byte without sockets, and the same machine serves plain and TLS connections.
//!
//! Driver contract. Call `receive` with everything buffered; drop the consumed bytes; perform the
//! outputs in order. Three outputs hand control to the driver, and until it answers, `receive`
//! consumes nothing:
//! - `Store`: store the message, send `store_result`'s reply.
//! - `CheckAuth`: check the password (on a bounded pool, with any per-address delay), send
//!   `auth_result`'s reply. The session then counts as logged in (`authenticated_user`); the driver
//!   decides what that allows (relaying, through its `Env`).
//! - `StartTls`: the `220` before it has been sent; flush it, throw away every byte buffered or
//!   read so far (RFC 3207 §4.2: the session consumed exactly up to the end of the STARTTLS line,
//!   and nothing after it may be taken as a command), run the handshake, then call `tls_started`
//!   (the session starts over without EHLO) or `tls_failed` and close.
//!
//! After each of these answers, and after every read, call `receive` again: it may have more
//! replies, or a `Close` (too many failed logins). After `Close`, send what came before and close.
//!
//! Layout: this file holds the public types, the session's state and the driver's calls back into
//! it; `session` runs commands (STARTTLS and AUTH included), `command` parses command arguments
//! (paths, parameters), `session_auth` runs STARTTLS and AUTH, `bdat` takes BDAT chunks
//! (CHUNKING, RFC 3030), `auth` decodes the SASL PLAIN and LOGIN responses, `data` finds the end of
//! DATA and checks the message, `headers` looks at the header section and builds the `Received:`
//! prefix, `reply` formats reply lines. Tests: `tests` (commands and the fake driver), `tests_data`
//! (DATA), `tests_sec` (STARTTLS, AUTH, submission, header limit), `tests_prop` (property tests),
//! `tests_dsn` (the DSN parameters of RFC 3461).

use std::net::IpAddr;

use crate::conn_params::ConnParams;

mod auth;
mod bdat;
mod command;
mod data;
mod headers;
mod reply;
mod session;
mod session_auth;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_bdat;
#[cfg(test)]
mod tests_data;
#[cfg(test)]
mod tests_dsn;
#[cfg(test)]
mod tests_prop;
#[cfg(test)]
mod tests_sec;
#[cfg(test)]
mod tests_utf8;

use data::DataReceiver;
pub use headers::received_with_smtputf8;

/// Command lines are at most this many octets, CRLF included (RFC 5321 §4.5.3.1.4).
pub const MAX_COMMAND_LINE: usize = 512;
/// The AUTH command line and the lines of an AUTH exchange may be this long (RFC 4954 §4).
pub const MAX_AUTH_LINE: usize = 12288;
/// Default limit on the header section of a message, in octets (`552 5.3.4` beyond it).
pub const DEFAULT_MAX_HEADER_SIZE: u64 = 1024 * 1024;
/// Default number of bad commands after which a session is closed with `421 4.7.0`.
pub const DEFAULT_MAX_ERRORS: u32 = 20;
/// Default cap on recipients per message (`452 4.5.3` beyond it).
pub const DEFAULT_MAX_RECIPIENTS: usize = 1000;
/// A message with this many `Received:` header lines or more is refused as a mail loop
/// (RFC 5321 §6.3 asks for a threshold of at least 100).
pub const MAX_RECEIVED_HEADERS: usize = 100;

/// What a session needs to know about its connection and the server.
#[derive(Debug, Clone)]
pub struct SessionParams {
    /// Our name, the session id, the client's address and the TLS facts, as POP3 gets them.
    /// `conn.clear_text_allowed`: AUTH may be used on an unencrypted connection.
    pub conn: ConnParams,
    /// Maximum message size in octets (`smtp.messagesize`); 0 means unlimited.
    pub max_message_size: u64,
    /// A trusted client (may relay by IP, or logged in): gets `Date:` / `Message-ID:` added when missing.
    pub trusted: bool,
    /// Submission (ports 587 and 465): MAIL needs a successful AUTH first (`530 5.7.0`).
    pub submission: bool,
    /// A logged-in client's envelope sender must be its login address, case-insensitively; the null
    /// sender is refused too (`553 5.7.1`).
    pub require_sender_match: bool,
    /// Maximum size of a message's header section in octets; 0 means unlimited.
    pub max_header_size: u64,
    /// `smtp.barelf=normalize`: a bare LF in DATA ends a line (stored as CRLF) instead of refusing
    /// the message. Only `CRLF . CRLF` ends DATA either way, and a bare CR is always refused.
    pub normalize_bare_lf: bool,
}

impl SessionParams {
    /// Safe defaults for everything but the names: no TLS, not encrypted, clear-text AUTH allowed
    /// (`ConnParams::new`), not submission, no sender check, 1 MiB of header, no size limit, not
    /// trusted, bare LF normalised (`smtp.barelf`'s default). Use struct update syntax for the
    /// rest: `SessionParams { trusted: true, ..SessionParams::new(h, id, ip) }`.
    pub fn new(
        hostname: impl Into<String>,
        session_id: impl Into<String>,
        client_ip: IpAddr,
    ) -> Self {
        SessionParams::with(ConnParams::new(hostname, session_id, client_ip))
    }

    /// The same defaults around a connection's facts.
    pub fn with(conn: ConnParams) -> Self {
        SessionParams {
            conn,
            max_message_size: 0,
            trusted: false,
            submission: false,
            require_sender_match: false,
            max_header_size: DEFAULT_MAX_HEADER_SIZE,
            normalize_bare_lf: true,
        }
    }
}

/// The answer of the server's policy to one RCPT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RcptDecision {
    /// Local account, forward, catch-all, or a relay the client may use.
    Accept,
    /// Local domain, no such account, no catch-all: `550 5.1.1`.
    UnknownUser,
    /// Another domain and the client may not relay: `550 5.7.1`.
    RelayDenied,
    /// Address cannot be handled (unsafe characters, ...): `553 5.1.3` with this text.
    BadAddress(String),
    /// Cannot be decided now (the accounts are not known yet: their database is away):
    /// `451 4.3.0`, so the client tries again instead of bouncing.
    TryLater,
}

/// Policy and time, supplied by the driver (tests use a fake).
pub trait Env {
    /// `sender` is empty for the null sender.
    fn check_recipient(&self, sender: &str, recipient: &str) -> RcptDecision;
    /// Current time as an RFC 5322 date, e.g. `Wed, 25 Nov 2026 12:00:00 +0000`.
    fn now_rfc5322(&self) -> String;
    /// A fresh `<unique@hostname>` for a missing Message-ID.
    fn new_message_id(&self) -> String;
    /// Whether the spool has room for another message. When it returns false, MAIL is answered
    /// `452 4.3.1` before any data is taken (DESIGN §4.4). Defaults to true.
    fn storage_available(&self) -> bool {
        true
    }
}

/// A message ready to be stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// Envelope sender, empty for `<>`.
    pub sender: String,
    pub recipients: Vec<String>,
    /// Header lines the server adds in front (`Received:`, and `Date:` / `Message-ID:` when added), CRLF-terminated.
    pub header_prefix: Vec<u8>,
    /// The message as received: CRLF lines, still dot-stuffed, without the terminating `.CRLF`.
    pub data: Vec<u8>,
    /// The DSN parameters of MAIL and of each RCPT (RFC 3461).
    pub dsn: crate::dsn::Dsn,
}

/// Why storing failed, as the driver reports it back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreError {
    /// Disk full: `452 4.3.1`.
    Full,
    /// Anything else temporary: `451 4.3.0`.
    Temporary(String),
}

/// What the session asks the driver to do, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Bytes to send to the client.
    Reply(Vec<u8>),
    /// Store this message, then call `Session::store_result`. The session consumes no input until then.
    Store(Envelope),
    /// Close the connection (after sending the replies before it).
    Close,
    /// Start TLS now: the `220` went out just before this. Throw away all buffered input, shake
    /// hands, then call `Session::tls_started` (or `tls_failed`). No input is consumed until then.
    StartTls,
    /// Check this login (SMTP AUTH), then call `Session::auth_result`. No input is consumed until then.
    CheckAuth { user: String, password: String },
    /// For the outcome report only (nothing to do for the client): these recipients were refused
    /// with `reply` (at RCPT, or the whole message after DATA). The reply itself is in a `Reply`.
    Refused {
        sender: String,
        recipients: Vec<String>,
        reply: String,
    },
}

/// The `BODY=` parameter of MAIL (RFC 6152), kept with the transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Body {
    SevenBit,
    EightBitMime,
    /// RFC 3030: binary content, which only BDAT may carry (DATA gets `503 5.5.1`).
    BinaryMime,
}

pub struct Session {
    params: SessionParams,
    /// Bad commands (syntax, sequence, unknown, over-long) after which the session answers
    /// `421 4.7.0` and closes. Defaults to `DEFAULT_MAX_ERRORS`.
    pub max_errors: u32,
    /// Recipients accepted per message. Defaults to `DEFAULT_MAX_RECIPIENTS`.
    pub max_recipients: usize,
    state: State,
    /// Set by HELO/EHLO; kept by RSET and after a message.
    helo: Option<Helo>,
    /// Set by MAIL; cleared by RSET, EHLO/HELO and at the end of a message.
    transaction: Option<Transaction>,
    /// Inside a command line longer than `MAX_COMMAND_LINE`, whose start was thrown away.
    discarding_long_line: bool,
    errors: u32,
    /// Messages handed to the driver so far; numbers the `Received:` id.
    messages: u64,
    /// The connection is TLS: implicit from the start, or after `tls_started`.
    encrypted: bool,
    /// Set by `auth_result(true)`; cleared by `tls_started`.
    auth_user: Option<String>,
    /// A BDAT transaction failed (a chunk over the size limit): the BDATs the client may already
    /// have pipelined behind it get `503` without counting as bad commands, until RSET, MAIL,
    /// EHLO/HELO or their `LAST`.
    chunks_failed: bool,
}

enum State {
    Command,
    Data(DataReceiver),
    /// Inside a BDAT chunk: its octets are taken as they are, whatever they hold (`bdat`).
    Chunk(bdat::Chunk),
    /// An `Output::Store` is out; no input is consumed until `store_result`.
    StorePending,
    /// Inside an AUTH exchange: `334` sent, waiting for the client's line.
    Auth(AuthStep),
    /// An `Output::CheckAuth` for this user is out; no input is consumed until `auth_result`.
    AuthPending(String),
    /// An `Output::StartTls` is out; no input is consumed until `tls_started`.
    TlsPending,
    /// `auth_result` ended the session: the next `receive` gives `Output::Close`.
    Closing,
    Closed,
}

/// What the next line of an AUTH exchange is.
enum AuthStep {
    /// The PLAIN response (`authzid NUL authcid NUL password`).
    Plain,
    /// LOGIN's user name.
    LoginUser,
    /// LOGIN's password, for this user.
    LoginPassword(String),
}

struct Helo {
    name: String,
    esmtp: bool,
}

struct Transaction {
    sender: String,
    recipients: Vec<String>,
    body: Option<Body>,
    /// The `AUTH=` parameter of MAIL: accepted, kept, not used yet.
    #[allow(dead_code)]
    auth: Option<String>,
    /// The content of the BDAT chunks so far; `None` until the first BDAT (then DATA is refused).
    chunks: Option<Box<bdat::Chunks>>,
    /// MAIL said `SMTPUTF8` (RFC 6531): UTF-8 addresses are allowed, and the `Received:` line
    /// says `UTF8SMTP...`, which is how delivery later knows the message asked for it.
    smtputf8: bool,
    /// `RET=` and `ENVID=` of MAIL, and the `NOTIFY=` / `ORCPT=` of each recipient accepted.
    dsn: crate::dsn::Dsn,
}

impl Session {
    pub fn new(params: SessionParams) -> Self {
        Session {
            max_errors: DEFAULT_MAX_ERRORS,
            max_recipients: DEFAULT_MAX_RECIPIENTS,
            state: State::Command,
            helo: None,
            transaction: None,
            discarding_long_line: false,
            errors: 0,
            messages: 0,
            encrypted: params.conn.encrypted,
            auth_user: None,
            chunks_failed: false,
            params,
        }
    }

    /// The `220` greeting.
    pub fn greeting(&mut self) -> Vec<u8> {
        format!("220 {} ESMTP jes\r\n", self.params.conn.hostname).into_bytes()
    }

    /// Consumes input, pushing replies and actions onto `out`; returns how many bytes of `input`
    /// were consumed. The driver keeps the rest and calls again with more bytes appended.
    pub fn receive(&mut self, input: &[u8], env: &dyn Env, out: &mut Vec<Output>) -> usize {
        self.run(input, env, out)
    }

    /// Result of an `Output::Store`: `Ok(message id)` or an error. Returns the reply to send
    /// (what `stored` pushes as `Output::Reply`, without the `Refused` report).
    pub fn store_result(&mut self, result: Result<String, StoreError>) -> Vec<u8> {
        let mut out = Vec::new();
        self.stored(result, &mut out);
        out.into_iter()
            .filter_map(|o| match o {
                Output::Reply(bytes) => Some(bytes),
                _ => None,
            })
            .flatten()
            .collect()
    }

    /// Result of an `Output::Store`: `Ok(message id)` or an error. Pushes the reply, and on an
    /// error an `Output::Refused` for every recipient of the message.
    pub fn stored(&mut self, result: Result<String, StoreError>, out: &mut Vec<Output>) {
        if matches!(self.state, State::StorePending) {
            self.state = State::Command;
        }
        let tx = self.transaction.take();
        let (code, enhanced, text) = match result {
            Ok(id) => (250, "2.0.0", format!("OK queued as {}", reply::clean(&id))),
            Err(StoreError::Full) => (452, "4.3.1", "Insufficient system storage".to_string()),
            Err(StoreError::Temporary(text)) if text.trim().is_empty() => (
                451,
                "4.3.0",
                "Temporary failure, try again later".to_string(),
            ),
            Err(StoreError::Temporary(text)) => (451, "4.3.0", reply::clean(&text)),
        };
        let bytes = reply::reply(code, enhanced, &text);
        if code != 250 {
            if let Some(tx) = tx {
                out.push(Output::Refused {
                    sender: tx.sender,
                    recipients: tx.recipients,
                    reply: String::from_utf8_lossy(&bytes).trim_end().to_string(),
                });
            }
        }
        out.push(Output::Reply(bytes));
    }

    /// The reply to send when the server's read timeout expires (`421 4.4.2 ...`).
    pub fn timeout_reply(&self) -> Vec<u8> {
        let text = format!("{} Error: timeout exceeded", self.params.conn.hostname);
        reply::reply(421, "4.4.2", &text)
    }

    /// The reply to send when the server shuts down (`421 4.3.2 ...`).
    pub fn shutdown_reply(&self) -> Vec<u8> {
        let text = format!("{} Service shutting down", self.params.conn.hostname);
        reply::reply(421, "4.3.2", &text)
    }

    /// True while message content is being received (after `354`, before the final dot, or
    /// inside a BDAT chunk).
    pub fn is_in_data(&self) -> bool {
        matches!(self.state, State::Data(_) | State::Chunk(_))
    }

    /// True between an `Output::Store` and the matching `store_result`.
    pub fn is_store_pending(&self) -> bool {
        matches!(self.state, State::StorePending)
    }

    /// True once the session has asked for the connection to be closed (or will at the next
    /// `receive`).
    pub fn is_closed(&self) -> bool {
        matches!(self.state, State::Closed | State::Closing)
    }

    /// True between an `Output::StartTls` and `tls_started` / `tls_failed`.
    pub fn is_tls_pending(&self) -> bool {
        matches!(self.state, State::TlsPending)
    }

    /// True between an `Output::CheckAuth` and `auth_result`.
    pub fn is_auth_pending(&self) -> bool {
        matches!(self.state, State::AuthPending(_))
    }

    /// True when the connection is TLS (implicit, or after STARTTLS).
    pub fn is_encrypted(&self) -> bool {
        self.encrypted
    }

    /// The login of a successful AUTH, if any.
    pub fn authenticated_user(&self) -> Option<&str> {
        self.auth_user.as_deref()
    }

    /// The TLS handshake after `Output::StartTls` succeeded. The session starts over as right
    /// after the greeting (no EHLO, no transaction, no login; RFC 3207 §4.2), now encrypted. Does
    /// nothing unless a StartTls is pending.
    pub fn tls_started(&mut self) {
        if !matches!(self.state, State::TlsPending) {
            return;
        }
        self.state = State::Command;
        self.encrypted = true;
        self.helo = None;
        self.transaction = None;
        self.auth_user = None;
        self.discarding_long_line = false;
    }

    /// The TLS handshake failed: the driver closes the connection; the session is over.
    pub fn tls_failed(&mut self) {
        self.state = State::Closed;
    }

    /// The `BODY=` of the current transaction (also while its Store is pending), if given.
    pub fn body(&self) -> Option<Body> {
        self.transaction.as_ref().and_then(|t| t.body)
    }
}
