//! SMTP receiver as a sans-IO state machine.
//!
//! The driver (`server`) reads bytes from a socket, hands them to `Session::receive`, writes the
//! replies it gets back, and performs the actions (store a message, close). The session knows
//! nothing of sockets, clocks or files: time and policy come through the `Env` trait. Keeping IO
//! out means every protocol pitfall (smuggling, over-long lines, pipelining, split reads) can be
//! tested byte by byte without sockets, and the same machine serves plain and TLS connections.
//!
//! Layout: this file holds the public types and the session's state; `session` runs commands,
//! `command` parses command arguments (paths, parameters), `data` finds the end of DATA and checks
//! the message, `headers` looks at the header section and builds the `Received:` prefix, `reply`
//! formats reply lines.

use std::net::IpAddr;

mod command;
mod data;
mod headers;
mod reply;
mod session;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_data;
#[cfg(test)]
mod tests_prop;

use data::DataReceiver;

/// Command lines are at most this many octets, CRLF included (RFC 5321 §4.5.3.1.4).
pub const MAX_COMMAND_LINE: usize = 512;
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
    /// Our name: greeting, `Received:` lines.
    pub hostname: String,
    /// Short unique id for logs and the `Received:` line.
    pub session_id: String,
    pub client_ip: IpAddr,
    /// Maximum message size in octets (`smtp.messagesize`); 0 means unlimited.
    pub max_message_size: u64,
    /// A trusted client (may relay by IP, or logged in): gets `Date:` / `Message-ID:` added when missing.
    pub trusted: bool,
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
}

/// The `BODY=` parameter of MAIL (RFC 6152), kept with the transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Body {
    SevenBit,
    EightBitMime,
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
}

enum State {
    Command,
    Data(DataReceiver),
    /// An `Output::Store` is out; no input is consumed until `store_result`.
    StorePending,
    Closed,
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
}

impl Session {
    pub fn new(params: SessionParams) -> Self {
        Session {
            params,
            max_errors: DEFAULT_MAX_ERRORS,
            max_recipients: DEFAULT_MAX_RECIPIENTS,
            state: State::Command,
            helo: None,
            transaction: None,
            discarding_long_line: false,
            errors: 0,
            messages: 0,
        }
    }

    /// The `220` greeting.
    pub fn greeting(&mut self) -> Vec<u8> {
        format!("220 {} ESMTP jes\r\n", self.params.hostname).into_bytes()
    }

    /// Consumes input, pushing replies and actions onto `out`; returns how many bytes of `input`
    /// were consumed. The driver keeps the rest and calls again with more bytes appended.
    pub fn receive(&mut self, input: &[u8], env: &dyn Env, out: &mut Vec<Output>) -> usize {
        self.run(input, env, out)
    }

    /// Result of an `Output::Store`: `Ok(queue id)` or an error. Returns the reply to send.
    pub fn store_result(&mut self, result: Result<String, StoreError>) -> Vec<u8> {
        if matches!(self.state, State::StorePending) {
            self.state = State::Command;
        }
        self.transaction = None;
        match result {
            Ok(id) => reply::reply(250, "2.0.0", &format!("OK queued as {}", reply::clean(&id))),
            Err(StoreError::Full) => reply::reply(452, "4.3.1", "Insufficient system storage"),
            Err(StoreError::Temporary(text)) if text.trim().is_empty() => {
                reply::reply(451, "4.3.0", "Temporary failure, try again later")
            }
            Err(StoreError::Temporary(text)) => reply::reply(451, "4.3.0", &reply::clean(&text)),
        }
    }

    /// The reply to send when the server's read timeout expires (`421 4.4.2 ...`).
    pub fn timeout_reply(&self) -> Vec<u8> {
        let text = format!("{} Error: timeout exceeded", self.params.hostname);
        reply::reply(421, "4.4.2", &text)
    }

    /// The reply to send when the server shuts down (`421 4.3.2 ...`).
    pub fn shutdown_reply(&self) -> Vec<u8> {
        let text = format!("{} Service shutting down", self.params.hostname);
        reply::reply(421, "4.3.2", &text)
    }

    /// True while message content is being received (after `354`, before the final dot).
    pub fn is_in_data(&self) -> bool {
        matches!(self.state, State::Data(_))
    }

    /// True between an `Output::Store` and the matching `store_result`.
    pub fn is_store_pending(&self) -> bool {
        matches!(self.state, State::StorePending)
    }

    /// True once the session has asked for the connection to be closed.
    pub fn is_closed(&self) -> bool {
        matches!(self.state, State::Closed)
    }

    /// The `BODY=` of the current transaction (also while its Store is pending), if given.
    pub fn body(&self) -> Option<Body> {
        self.transaction.as_ref().and_then(|t| t.body)
    }
}
