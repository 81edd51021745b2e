//! POP3 server (RFC 1939, with CAPA from RFC 2449, response codes from RFC 3206, STLS from RFC
//! 2595 and AUTH PLAIN from RFC 5034) as a sans-IO state machine.
//!
//! The session never touches sockets, clocks or files: it turns input bytes into replies and
//! actions (`Output`), and the driver in `server` performs the actions and reports back. That keeps
//! the protocol testable byte for byte and lets the mailbox backend change without touching POP3.
//!
//! Driver loop: keep a buffer; `receive(&buf, &mut out)`; drop the consumed bytes; write every
//! `Output::Reply` in order; perform each action and answer it (`login_checked`, `mailbox_opened`,
//! `retrieved`, `committed`, and for `StartTls` see below); then call `receive` again with what is
//! left, since a pipelining client may already have sent the next commands. When no action is
//! pending, fewer than `MAX_AUTH_LINE` bytes are left unconsumed. `Close` ends the connection.
//! QUIT in TRANSACTION always yields `Commit`, even with nothing deleted, so UPDATE has a single
//! path.
//!
//! STLS: after `+OK Begin TLS negotiation` the session pushes `StartTls` and stops reading right
//! after the STLS line. The driver writes the replies, then THROWS AWAY every byte still in its
//! buffer (they arrived in clear text before the handshake and may be an injected command, RFC 2595
//! §4 / RFC 3207 §4.2), performs the handshake, and calls `tls_started` (the session is back in a
//! fresh AUTHORIZATION state, now encrypted, and nothing is sent: the client speaks first) or
//! `tls_failed` (the session is closed; drop the connection without writing anything).
//!
//! Clear-text policy: the driver decides, per connection, whether passwords may be sent without
//! encryption (`SessionParams::clear_text_allowed`, from `allowClearText` with loopback counting as
//! encrypted); the session refuses USER, PASS and AUTH PLAIN with `-ERR [AUTH]` on an unencrypted
//! connection when they are not allowed, and CAPA then advertises neither USER nor SASL. RFC 3206
//! names `[AUTH]` for "an attempt to authenticate in violation of policy", which is exactly this
//! case; Dovecot answers the same way.
//!
//! Files: `session` (framing and states), `command` (parsing a line), `wire` (stored bytes to a
//! multi-line response, and the size rule the store shares).

mod command;
mod session;
pub mod wire;

#[cfg(test)]
mod tests;

pub use session::{Session, MAX_AUTH_LINE, MAX_ERRORS, MAX_LINE};

/// What the session knows of its connection: the facts SMTP's sessions get too, nothing more.
pub use crate::conn_params::ConnParams as SessionParams;

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
    /// STLS was accepted: write the replies, discard the unread input, do the TLS handshake, then
    /// call `Session::tls_started` or `Session::tls_failed`.
    StartTls,
    Close,
}
