//! What a sans-IO protocol session (SMTP or POP3) is told about its connection: our name, the
//! session's id, the client's address, and the three TLS facts that decide whether STARTTLS/STLS
//! is offered and whether a password may be sent in clear text.
//!
//! Both sessions need exactly these facts and the server's connection driver fills them in the
//! same way for both, so they are one struct here, below `smtp` and `pop3` (which may not import
//! each other) and importing nothing of jes. SMTP adds its own settings around it
//! (`smtp::SessionParams`); POP3 needs nothing more.

use std::net::IpAddr;

#[derive(Debug, Clone)]
pub struct ConnParams {
    /// Our name: the greeting, SMTP's `Received:` lines.
    pub hostname: String,
    /// Short unique id for logs (and SMTP's `Received:` line).
    pub session_id: String,
    pub client_ip: IpAddr,
    /// A certificate is loaded, so STARTTLS (SMTP) or STLS (POP3) can be offered while the
    /// connection is not encrypted.
    pub tls_available: bool,
    /// The connection is already encrypted (implicit TLS: ports 465 and 995); STARTTLS and STLS
    /// are then refused.
    pub encrypted: bool,
    /// Passwords (SMTP AUTH, POP3 USER/PASS and AUTH PLAIN) may be sent while the connection is
    /// not encrypted. The driver computes it from `allowClearText` and whether the client is on
    /// loopback; it does not matter once the connection is encrypted.
    pub clear_text_allowed: bool,
}

impl ConnParams {
    /// Parameters as JES 1.x behaved: no TLS, clear-text login allowed. Meant for struct-update
    /// syntax: `ConnParams { tls_available: true, ..ConnParams::new(host, id, ip) }`.
    pub fn new(
        hostname: impl Into<String>,
        session_id: impl Into<String>,
        client_ip: IpAddr,
    ) -> Self {
        ConnParams {
            hostname: hostname.into(),
            session_id: session_id.into(),
            client_ip,
            tls_available: false,
            encrypted: false,
            clear_text_allowed: true,
        }
    }
}
