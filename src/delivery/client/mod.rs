//! The outbound SMTP client: relays queued mail to a smart host or an MX.
//!
//! The queue runner decides where and when; this module only speaks SMTP to one host and
//! reports, per recipient, what the server said. It never bounces on its own: every failure of
//! a whole attempt is an [`AttemptError`] that defers, and only a server's 5xx about a recipient
//! or a message ([`RecipientOutcome::Failed`]) can lead to a bounce. The protocol text lives in
//! the sans-IO `protocol` module; `conn` (opening) and `session` (transactions) are the thin
//! tokio part; `tls` builds the rustls configurations, including the opportunistic policy.

mod conn;
#[cfg(test)]
mod fake;
mod protocol;
mod session;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_ext;
mod tls;
#[cfg(test)]
mod tls_tests;

pub use conn::{Connection, TlsState};
pub use protocol::{enhanced_code, Extensions};
pub use tls::{insecure_config, verifying_config};

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::config::mail::DeliveryTls;

/// An SMTP reply as the remote server gave it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub code: u16,
    /// The text after the code, lines joined with a space (enhanced status code included).
    pub text: String,
}

impl Reply {
    /// The enhanced status code (RFC 3463) the text starts with, e.g. `5.1.1`.
    pub fn enhanced_code(&self) -> Option<&str> {
        protocol::enhanced_code(&self.text)
    }
}

impl std::fmt::Display for Reply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.code, self.text)
    }
}

/// Where to connect.
#[derive(Debug, Clone)]
pub struct Target {
    /// Host name for TLS (SNI, certificate check) and logs.
    pub host: String,
    /// The address to connect to (already resolved).
    pub addr: SocketAddr,
    /// Implicit TLS (port 465).
    pub implicit_tls: bool,
    /// AUTH PLAIN/LOGIN credentials (smart hosts only).
    pub credentials: Option<(String, String)>,
    /// A configured smart host: AUTH may go in clear to it (with a warning).
    pub smart_host: bool,
}

/// Timeouts of RFC 5321 §4.5.3.2.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    pub connect: Duration,
    pub greeting: Duration,
    pub command: Duration,
    pub mail: Duration,
    pub rcpt: Duration,
    pub data_init: Duration,
    pub data_block: Duration,
    pub data_end: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: Duration::from_secs(30),
            greeting: Duration::from_secs(300),
            command: Duration::from_secs(300),
            mail: Duration::from_secs(300),
            rcpt: Duration::from_secs(300),
            data_init: Duration::from_secs(120),
            data_block: Duration::from_secs(180),
            data_end: Duration::from_secs(600),
        }
    }
}

/// Settings shared by all outbound connections.
#[derive(Clone)]
pub struct ClientSettings {
    /// Our name for EHLO (`hostname`).
    pub helo_name: String,
    pub tls: DeliveryTls,
    /// Verifying TLS configuration: system roots plus `smtpdelivery.cafile`.
    pub verifying: Arc<rustls::ClientConfig>,
    pub timeouts: Timeouts,
}

/// One message to send over an open connection.
#[derive(Debug, Clone, Copy)]
pub struct Outgoing<'a> {
    /// Envelope sender; empty for `<>`.
    pub sender: &'a str,
    pub recipients: &'a [String],
    /// Wire form: CRLF, dot-stuffed, without the terminating dot.
    pub message: &'a [u8],
    /// DSN parameters (RFC 3461), passed on when the server offers DSN.
    pub dsn: &'a crate::dsn::Dsn,
}

/// What became of one recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecipientOutcome {
    Delivered(Reply),
    /// 5xx to RCPT or to the end of DATA: bounce now.
    Failed(Reply),
    /// 4xx: retry later.
    Deferred(Reply),
}

/// Why a whole attempt failed; every variant defers the message (none bounces it).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AttemptError {
    /// Could not connect, or the connection broke, or a timeout: try the next host.
    #[error("{0}")]
    Network(String),
    /// TLS could not be set up as the policy requires.
    #[error("TLS: {0}")]
    Tls(String),
    /// A 5xx at the greeting, EHLO, STARTTLS, AUTH or MAIL FROM: our setup or the host is wrong.
    #[error("{stage} refused: {reply}")]
    Refused { stage: &'static str, reply: Reply },
    /// A 4xx before any recipient was accepted.
    #[error("{stage}: {reply}")]
    Temporary { stage: &'static str, reply: Reply },
    /// The server greets with our own name: mail would loop back to us (4.4.6).
    #[error("mail loops back to myself ({0})")]
    Loop(String),
}
