//! POP3 server (RFC 1939, with CAPA from RFC 2449 and response codes from RFC 3206) as a sans-IO
//! state machine.
//!
//! The session never touches sockets, clocks or files: it turns input bytes into replies and
//! actions (`Output`), and the driver in `server` performs the actions and reports back. That keeps
//! the protocol testable byte for byte and lets the mailbox backend change without touching POP3.
//!
//! Driver loop: keep a buffer; `receive(&buf, &mut out)`; drop the consumed bytes; write every
//! `Output::Reply` in order; perform each action and answer it (`login_checked`, `mailbox_opened`,
//! `retrieved`, `committed`); then call `receive` again with what is left, since a pipelining
//! client may already have sent the next commands. `Close` ends the connection. QUIT in
//! TRANSACTION always yields `Commit`, even with nothing deleted, so UPDATE has a single path.
//!
//! Files: `session` (framing and states), `command` (parsing a line), `wire` (stored bytes to a
//! multi-line response, and the size rule the store shares).

mod command;
mod session;
pub mod wire;

#[cfg(test)]
mod tests;

pub use session::{Session, MAX_ERRORS, MAX_LINE};
pub use wire::unstuffed_size;

use std::net::IpAddr;

#[derive(Debug, Clone)]
pub struct SessionParams {
    pub hostname: String,
    pub session_id: String,
    pub client_ip: IpAddr,
}

/// One message as the session sees it (from `store::MessageInfo`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listing {
    pub uid: String,
    /// Octets RETR sends before byte-stuffing.
    pub size: u64,
}

/// Why a mailbox could not be opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpenFailure {
    /// `-ERR [IN-USE]`.
    InUse,
    /// `-ERR [SYS/TEMP]` with this text.
    Temporary(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    Reply(Vec<u8>),
    /// Check these credentials, then call `Session::login_checked`.
    CheckLogin {
        user: String,
        password: String,
    },
    /// Lock and list this mailbox, then call `Session::mailbox_opened`.
    OpenMailbox {
        user: String,
    },
    /// Read message `index` (0-based), then call `Session::retrieved`. `top` is TOP's line count.
    Retrieve {
        index: usize,
        top: Option<usize>,
    },
    /// Delete these messages (0-based), then call `Session::committed`.
    Commit {
        deleted: Vec<usize>,
    },
    Close,
}
