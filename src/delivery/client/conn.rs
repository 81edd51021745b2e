//! Opening an outbound connection: TCP, greeting, EHLO, STARTTLS, AUTH.
//!
//! Kept thin on purpose: bytes go into one buffer of our own and [`protocol::parse_reply`] says
//! when a reply is complete, so nothing is hidden in a `BufReader` when TLS starts and the bytes
//! a server (or a man in the middle) sent ahead of the handshake can be thrown away for certain
//! (RFC 3207 §4.2). Every read and write has the RFC 5321 §4.5.3.2 timeout of its stage; a
//! timeout or an I/O error marks the connection broken, and a broken connection is never used
//! again.

use std::io;
use std::time::Duration;

use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;
use tokio_rustls::TlsConnector;

use super::protocol::{self, Extensions, Response};
use super::{tls, AttemptError, ClientSettings, Reply, Target, Timeouts};
use crate::config::mail::DeliveryTls;
use crate::stream::{self, Stream};

/// Whether and how the connection is encrypted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsState {
    /// Plain text.
    None,
    /// TLS with a certificate that verified for the host name.
    Verified,
    /// TLS, but the certificate did not verify (opportunistic policy); the reason.
    Unverified(String),
}

/// An open, greeted (EHLO done, TLS and AUTH as configured) SMTP connection.
pub struct Connection {
    /// `None` only while switching to TLS, and for good when that failed (then `broken` is set).
    pub(super) stream: Option<Stream>,
    /// Bytes read but not yet parsed.
    pub(super) buf: Vec<u8>,
    pub(super) host: String,
    pub(super) timeouts: Timeouts,
    pub(super) greeting: Reply,
    pub(super) ext: Extensions,
    pub(super) tls: TlsState,
    /// A read or write failed or timed out: the dialogue is out of step, never reuse it.
    pub(super) broken: bool,
}

/// How one try at opening ended badly.
enum OpenError {
    Attempt(AttemptError),
    /// The STARTTLS handshake failed; the opportunistic policy may try again in clear.
    Handshake(String),
}

impl From<AttemptError> for OpenError {
    fn from(e: AttemptError) -> Self {
        OpenError::Attempt(e)
    }
}

impl Connection {
    /// Connects, reads the greeting, EHLO (HELO fallback), STARTTLS per policy, AUTH if configured.
    pub async fn open(
        target: &Target,
        settings: &ClientSettings,
    ) -> Result<Connection, AttemptError> {
        match Self::open_once(target, settings, true).await {
            Ok(conn) => Ok(conn),
            Err(OpenError::Attempt(e)) => Err(e),
            Err(OpenError::Handshake(reason)) if settings.tls == DeliveryTls::Opportunistic => {
                tracing::warn!(
                    "{}: STARTTLS handshake failed ({reason}); connecting again without TLS",
                    target.host
                );
                match Self::open_once(target, settings, false).await {
                    Ok(conn) => Ok(conn),
                    Err(OpenError::Attempt(e)) => Err(e),
                    Err(OpenError::Handshake(reason)) => Err(AttemptError::Tls(reason)),
                }
            }
            Err(OpenError::Handshake(reason)) => Err(AttemptError::Tls(reason)),
        }
    }

    /// The server's greeting.
    pub fn remote_greeting(&self) -> &Reply {
        &self.greeting
    }

    /// The extensions of the last EHLO (after STARTTLS: the second one).
    pub fn extensions(&self) -> &Extensions {
        &self.ext
    }

    /// Whether the connection is encrypted, and whether the certificate verified.
    pub fn tls_state(&self) -> &TlsState {
        &self.tls
    }

    /// The negotiated TLS version (`TLSv1.3`, `TLSv1.2`), or `None` in plain text.
    pub fn tls_version(&self) -> Option<String> {
        let version = self.stream.as_ref().and_then(stream::tls_version);
        version.map(str::to_string)
    }

    async fn open_once(
        target: &Target,
        settings: &ClientSettings,
        try_starttls: bool,
    ) -> Result<Connection, OpenError> {
        let t = settings.timeouts;
        let host = target.host.clone();
        let tcp = match timeout(t.connect, TcpStream::connect(target.addr)).await {
            Ok(Ok(tcp)) => tcp,
            Ok(Err(e)) => return Err(network(&host, "connect", e).into()),
            Err(_) => {
                return Err(AttemptError::Network(format!("{host}: connect: timed out")).into())
            }
        };
        let _ = tcp.set_nodelay(true);
        let mut conn = Connection {
            stream: Some(stream::plain(tcp)),
            buf: Vec::new(),
            host,
            timeouts: t,
            greeting: Reply {
                code: 0,
                text: String::new(),
            },
            ext: Extensions::default(),
            tls: TlsState::None,
            broken: false,
        };
        if target.implicit_tls {
            // No clear-text fallback on a TLS port: a failed handshake is a TLS error.
            let strict = matches!(settings.tls, DeliveryTls::Verify | DeliveryTls::Required);
            conn.start_tls(target, settings, strict)
                .await
                .map_err(|e| match e {
                    OpenError::Handshake(r) => OpenError::Attempt(AttemptError::Tls(r)),
                    other => other,
                })?;
        }

        let greeting = conn.read_reply(t.greeting, "greeting").await?;
        conn.greeting = greeting.reply();
        match greeting.class() {
            2 => {}
            5 => return Err(refused("greeting", greeting.reply()).into()),
            _ => return Err(temporary("greeting", greeting.reply()).into()),
        }
        check_loop(&greeting, settings)?;
        conn.hello(settings).await?;
        if !target.implicit_tls {
            conn.starttls_as_configured(target, settings, try_starttls)
                .await?;
        }
        if let Some((user, password)) = &target.credentials {
            conn.log_in(target, user, password).await?;
        }
        Ok(conn)
    }

    /// STARTTLS after the first EHLO as `smtpdelivery.tls` says (see the module comment), and
    /// EHLO again inside TLS.
    async fn starttls_as_configured(
        &mut self,
        target: &Target,
        settings: &ClientSettings,
        try_starttls: bool,
    ) -> Result<(), OpenError> {
        let t = self.timeouts;
        match settings.tls {
            DeliveryTls::Off => {}
            DeliveryTls::Opportunistic if !try_starttls || !self.ext.starttls => {}
            DeliveryTls::Opportunistic => {
                let reply = self.command("STARTTLS\r\n", t.command, "STARTTLS").await?;
                if reply.code == 220 {
                    self.start_tls(target, settings, false).await?;
                    self.hello(settings).await?;
                } else {
                    tracing::warn!(
                        "{}: STARTTLS refused ({}); going on without TLS",
                        self.host,
                        reply.reply()
                    );
                }
            }
            DeliveryTls::Verify | DeliveryTls::Required => {
                if !self.ext.starttls {
                    let msg = format!("{}: the server does not offer STARTTLS", self.host);
                    return Err(AttemptError::Tls(msg).into());
                }
                let reply = self.command("STARTTLS\r\n", t.command, "STARTTLS").await?;
                if reply.code != 220 {
                    let msg = format!("{}: STARTTLS refused: {}", self.host, reply.reply());
                    return Err(AttemptError::Tls(msg).into());
                }
                self.start_tls(target, settings, true).await?;
                self.hello(settings).await?;
            }
        }
        Ok(())
    }

    /// AUTH with the target's credentials: never in clear text to an MX, only with a warning to
    /// a smart host that offers no STARTTLS.
    async fn log_in(
        &mut self,
        target: &Target,
        user: &str,
        password: &str,
    ) -> Result<(), OpenError> {
        if self.tls == TlsState::None {
            if !target.smart_host {
                let msg = format!("{}: not sending credentials without TLS", self.host);
                return Err(AttemptError::Tls(msg).into());
            }
            tracing::warn!(
                "{}: sending AUTH credentials without TLS (the smart host offers no STARTTLS)",
                self.host
            );
        }
        self.auth(user, password).await?;
        Ok(())
    }

    /// EHLO, or HELO when the server does not know EHLO.
    async fn hello(&mut self, settings: &ClientSettings) -> Result<(), AttemptError> {
        let t = self.timeouts.command;
        let name = &settings.helo_name;
        let reply = self.command(&protocol::ehlo(name), t, "EHLO").await?;
        match reply.class() {
            2 => {
                check_loop(&reply, settings)?;
                self.ext = Extensions::parse(&reply.lines);
                Ok(())
            }
            5 => {
                let reply = self.command(&protocol::helo(name), t, "HELO").await?;
                match reply.class() {
                    2 => {
                        self.ext = Extensions::default();
                        Ok(())
                    }
                    5 => Err(refused("HELO", reply.reply())),
                    _ => Err(temporary("HELO", reply.reply())),
                }
            }
            _ => Err(temporary("EHLO", reply.reply())),
        }
    }

    /// The TLS handshake over the current TCP stream; `strict` fails on a bad certificate.
    async fn start_tls(
        &mut self,
        target: &Target,
        settings: &ClientSettings,
        strict: bool,
    ) -> Result<(), OpenError> {
        // RFC 3207 §4.2: nothing received before the handshake counts.
        if !self.buf.is_empty() {
            tracing::warn!(
                "{}: discarding {} bytes the server sent ahead of the TLS handshake",
                self.host,
                self.buf.len()
            );
            self.buf.clear();
        }
        let name = match server_name(&target.host) {
            Some(name) => name,
            None if strict => {
                let msg = format!("{}: not a host name a certificate can prove", target.host);
                return Err(AttemptError::Tls(msg).into());
            }
            None => ServerName::IpAddress(target.addr.ip().into()),
        };
        let tcp = match self.stream.take().map(stream::into_plain) {
            Some(Ok(tcp)) => tcp,
            Some(Err(tls)) => {
                self.stream = Some(tls);
                self.broken = true;
                return Err(AttemptError::Tls(format!("{}: TLS is already on", self.host)).into());
            }
            None => return Err(unusable(&self.host).into()),
        };
        let limit = self.timeouts.command;
        let (result, unverified) = if strict {
            let connector = TlsConnector::from(settings.verifying.clone());
            (timeout(limit, connector.connect(name, tcp)).await, None)
        } else {
            let connector = TlsConnector::from(tls::for_lenient_handshake(&settings.verifying));
            tls::lenient(timeout(limit, connector.connect(name, tcp))).await
        };
        let stream = match result {
            Ok(Ok(stream)) => stream,
            Ok(Err(e)) => {
                self.broken = true;
                return Err(OpenError::Handshake(format!(
                    "{}: TLS handshake: {e}",
                    self.host
                )));
            }
            Err(_) => {
                self.broken = true;
                return Err(OpenError::Handshake(format!(
                    "{}: TLS handshake timed out",
                    self.host
                )));
            }
        };
        self.stream = Some(stream::encrypted(stream));
        self.tls = match unverified {
            None => TlsState::Verified,
            Some(reason) => {
                tracing::warn!(
                    "{}: certificate not verified ({reason}); delivering encrypted anyway",
                    self.host
                );
                TlsState::Unverified(reason)
            }
        };
        Ok(())
    }

    /// AUTH PLAIN if offered, else AUTH LOGIN.
    async fn auth(&mut self, user: &str, password: &str) -> Result<(), AttemptError> {
        let t = self.timeouts.command;
        let reply = if self.ext.offers_auth("PLAIN") {
            self.command(&protocol::auth_plain(user, password), t, "AUTH")
                .await?
        } else if self.ext.offers_auth("LOGIN") {
            let mut reply = self.command("AUTH LOGIN\r\n", t, "AUTH").await?;
            for value in [user, password] {
                if reply.code != 334 {
                    break;
                }
                reply = self
                    .command(&protocol::auth_login_line(value), t, "AUTH")
                    .await?;
            }
            reply
        } else if self.ext.auth.is_empty() {
            let reply = protocol::synthetic(530, "5.7.0 server offers no AUTH");
            return Err(refused("AUTH", reply));
        } else {
            let text = format!(
                "5.7.0 no AUTH mechanism in common (server offers {})",
                self.ext.auth.join(" ")
            );
            return Err(refused("AUTH", protocol::synthetic(504, &text)));
        };
        match reply.class() {
            2 => Ok(()),
            4 => Err(temporary("AUTH", reply.reply())),
            5 => Err(refused("AUTH", reply.reply())),
            _ => {
                // A challenge we cannot answer: cancel the exchange (RFC 4954 §4).
                let _ = self.command("*\r\n", t, "AUTH").await;
                Err(refused("AUTH", reply.reply()))
            }
        }
    }

    /// Writes one command line (or several, pipelined) and reads one reply.
    pub(super) async fn command(
        &mut self,
        line: &str,
        limit: Duration,
        what: &str,
    ) -> Result<Response, AttemptError> {
        self.write(line.as_bytes(), self.timeouts.command, what)
            .await?;
        self.read_reply(limit, what).await
    }

    pub(super) async fn write(
        &mut self,
        bytes: &[u8],
        limit: Duration,
        what: &str,
    ) -> Result<(), AttemptError> {
        let stream = match self.stream.as_mut() {
            Some(stream) if !self.broken => stream,
            _ => return Err(unusable(&self.host)),
        };
        let result = timeout(limit, async {
            stream.write_all(bytes).await?;
            stream.flush().await
        })
        .await;
        match result {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => {
                self.broken = true;
                Err(network(&self.host, what, e))
            }
            Err(_) => {
                self.broken = true;
                Err(AttemptError::Network(format!(
                    "{}: {what}: timed out",
                    self.host
                )))
            }
        }
    }

    /// Reads one complete reply within `limit`.
    pub(super) async fn read_reply(
        &mut self,
        limit: Duration,
        what: &str,
    ) -> Result<Response, AttemptError> {
        let Connection {
            stream,
            buf,
            broken,
            host,
            ..
        } = self;
        let stream = match stream {
            Some(stream) if !*broken => stream,
            _ => return Err(unusable(host)),
        };
        let result = timeout(limit, async {
            loop {
                match protocol::parse_reply(buf) {
                    Ok(Some((reply, used))) => {
                        buf.drain(..used);
                        return Ok(reply);
                    }
                    Ok(None) => {}
                    Err(e) => return Err(e.to_string()),
                }
                let mut chunk = [0u8; 4096];
                match stream.read(&mut chunk).await {
                    Ok(0) => return Err("connection closed by the server".to_string()),
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    Err(e) => return Err(e.to_string()),
                }
            }
        })
        .await;
        let error = match result {
            Ok(Ok(reply)) => {
                tracing::trace!("{}: {what}: {}", self.host, reply.reply());
                return Ok(reply);
            }
            Ok(Err(e)) => e,
            Err(_) => "timed out".to_string(),
        };
        self.broken = true;
        Err(AttemptError::Network(format!(
            "{}: {what}: {error}",
            self.host
        )))
    }
}

/// The name to check the certificate against: a DNS name (a trailing dot dropped) or an IP.
fn server_name(host: &str) -> Option<ServerName<'static>> {
    let host = host.strip_suffix('.').unwrap_or(host);
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    ServerName::try_from(host.to_string()).ok()
}

fn check_loop(reply: &Response, settings: &ClientSettings) -> Result<(), AttemptError> {
    match protocol::server_name(&reply.lines) {
        Some(name) if name.eq_ignore_ascii_case(&settings.helo_name) => Err(AttemptError::Loop(
            format!("the server calls itself {name}"),
        )),
        _ => Ok(()),
    }
}

/// A connection whose dialogue is out of step, or whose TLS handshake failed: never used again.
fn unusable(host: &str) -> AttemptError {
    AttemptError::Network(format!("{host}: connection broken"))
}

fn network(host: &str, what: &str, e: io::Error) -> AttemptError {
    AttemptError::Network(format!("{host}: {what}: {e}"))
}

pub(super) fn refused(stage: &'static str, reply: Reply) -> AttemptError {
    AttemptError::Refused { stage, reply }
}

pub(super) fn temporary(stage: &'static str, reply: Reply) -> AttemptError {
    AttemptError::Temporary { stage, reply }
}
