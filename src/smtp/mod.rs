//! SMTP receiver as a sans-IO state machine. (Skeleton: the SMTP helper fills this in.)
//!
//! The driver (`server`) reads bytes from a socket, hands them to `Session::receive`, writes the
//! replies it gets back, and performs the actions (store a message, close). The session knows
//! nothing of sockets, clocks or files: time and policy come through the `Env` trait.

use std::net::IpAddr;

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

pub struct Session {
    params: SessionParams,
}

impl Session {
    pub fn new(params: SessionParams) -> Self {
        Session { params }
    }

    /// The `220` greeting.
    pub fn greeting(&mut self) -> Vec<u8> {
        let _ = &self.params;
        todo!()
    }

    /// Consumes input, pushing replies and actions onto `out`; returns how many bytes of `input`
    /// were consumed. The driver keeps the rest and calls again with more bytes appended.
    pub fn receive(&mut self, input: &[u8], env: &dyn Env, out: &mut Vec<Output>) -> usize {
        let _ = (input, env, out);
        todo!()
    }

    /// Result of an `Output::Store`: `Ok(queue id)` or an error. Returns the reply to send.
    pub fn store_result(&mut self, result: Result<String, StoreError>) -> Vec<u8> {
        let _ = result;
        todo!()
    }

    /// The reply to send when the server's read timeout expires (`421 4.4.2 ...`).
    pub fn timeout_reply(&self) -> Vec<u8> {
        todo!()
    }

    /// The reply to send when the server shuts down (`421 4.3.2 ...`).
    pub fn shutdown_reply(&self) -> Vec<u8> {
        todo!()
    }
}
