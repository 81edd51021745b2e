//! Listeners: one or more sockets per service (SMTP, submission, SMTPS, POP3, POP3S), and the
//! accept loops that apply the connection limits, do the implicit-TLS handshake and hand each
//! connection to its session driver.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::connection;
use super::{pop3_conn, smtp_conn, StartError};
use crate::config::Config;
use crate::shared::{normalize_ip, LimitHit, Shared};
use crate::stream;

/// What a listening port serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    /// `smtpport`: mail from anyone, STARTTLS offered.
    Smtp,
    /// `submissionport` (587): AUTH required, STARTTLS offered.
    Submission,
    /// `securesmtpport` (465): submission over implicit TLS (RFC 8314).
    SubmissionTls,
    /// `pop3port`.
    Pop3,
    /// `securepop3port` (995).
    Pop3Tls,
}

impl Service {
    pub fn name(self) -> &'static str {
        match self {
            Service::Smtp => "SMTP",
            Service::Submission => "submission",
            Service::SubmissionTls => "SMTPS (submission over TLS)",
            Service::Pop3 => "POP3",
            Service::Pop3Tls => "POP3S",
        }
    }

    pub fn implicit_tls(self) -> bool {
        matches!(self, Service::SubmissionTls | Service::Pop3Tls)
    }

    pub fn is_submission(self) -> bool {
        matches!(self, Service::Submission | Service::SubmissionTls)
    }

    fn is_pop3(self) -> bool {
        matches!(self, Service::Pop3 | Service::Pop3Tls)
    }
}

pub struct Listener {
    pub service: Service,
    pub socket: TcpListener,
}

/// Binds every configured service.
pub fn bind_services(config: &Config) -> Result<Vec<Listener>, StartError> {
    let m = &config.mail;
    let mut wanted = vec![(Service::Smtp, m.smtp_port), (Service::Pop3, m.pop3_port)];
    if let Some(p) = m.submission_port {
        wanted.push((Service::Submission, p));
    }
    if let Some(p) = m.secure_smtp_port {
        wanted.push((Service::SubmissionTls, p));
    }
    if let Some(p) = m.secure_pop3_port {
        wanted.push((Service::Pop3Tls, p));
    }
    let mut out = Vec::new();
    for (service, port) in wanted {
        for socket in bind_all(config, port, service.name())? {
            out.push(Listener { service, socket });
        }
    }
    Ok(out)
}

/// The addresses to listen on for one port: `listen.address`, or every IPv4 and IPv6 address.
fn listen_addrs(config: &Config, port: u16) -> Vec<SocketAddr> {
    if config.mail.listen_addresses.is_empty() {
        vec![
            SocketAddr::from(([0u8; 16], port)),
            SocketAddr::from(([0u8; 4], port)),
        ]
    } else {
        config
            .mail
            .listen_addresses
            .iter()
            .map(|ip| SocketAddr::new(*ip, port))
            .collect()
    }
}

/// Binds every address for a port. Unset `listen.address` tries `[::]` (dual-stack) and `0.0.0.0`
/// and is content with whichever works (one of them fails with EADDRINUSE on a dual-stack host).
fn bind_all(
    config: &Config,
    port: u16,
    what: &'static str,
) -> Result<Vec<TcpListener>, StartError> {
    let wildcard = config.mail.listen_addresses.is_empty();
    let mut listeners = Vec::new();
    let mut first_error = None;
    for addr in listen_addrs(config, port) {
        match bind(addr) {
            Ok(l) => listeners.push(l),
            Err(source) => {
                if !wildcard {
                    return Err(StartError::Bind { addr, what, source });
                }
                first_error.get_or_insert(StartError::Bind { addr, what, source });
            }
        }
    }
    match (listeners.is_empty(), first_error) {
        (true, Some(e)) => Err(e),
        _ => Ok(listeners),
    }
}

fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = match addr {
        SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
        SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(1024)
}

pub async fn accept_loop(
    listener: Listener,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
    tasks: Arc<Mutex<JoinSet<()>>>,
) {
    let service = listener.service;
    loop {
        let accepted = tokio::select! {
            a = listener.socket.accept() => a,
            _ = stop.changed() => return,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                tracing::error!("{} accept failed: {e}", service.name());
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let shared = shared.clone();
        let stop = stop.clone();
        let mut tasks = tasks.lock().unwrap_or_else(|p| p.into_inner());
        // Reap finished sessions so the set does not grow without bound.
        while tasks.try_join_next().is_some() {}
        tasks.spawn(async move {
            let ip = normalize_ip(peer.ip());
            let config = shared.config();
            let (limits, max_total, mut max_per_ip) = if service.is_pop3() {
                (&shared.pop3_limits, config.mail.pop3_max_connections, config.mail.pop3_max_connections_per_ip)
            } else {
                (&shared.smtp_limits, config.mail.smtp_max_connections, config.mail.smtp_max_connections_per_ip)
            };
            // The application server's own address (`limits.exempt`) is never limited per
            // address: its polling must not be refused because it, or a burst of its own
            // notifications, holds many connections. The total still applies to everyone.
            if config.mail.limits_exempt(ip) {
                max_per_ip = usize::MAX;
            }
            let guard = match limits.try_acquire(ip, max_total, max_per_ip) {
                Ok(g) => g,
                Err(hit) => {
                    refuse(stream, service, hit, ip).await;
                    return;
                }
            };
            drop(config);
            let conn = if service.implicit_tls() {
                let Some(acceptor) = shared.tls() else { return };
                match connection::handshake(stream, acceptor).await {
                    Ok(tls) => tls,
                    Err(e) => {
                        tracing::info!(client = %ip, "{} TLS handshake failed: {e}", service.name());
                        return;
                    }
                }
            } else {
                stream::plain(stream)
            };
            let protocol = if service.is_pop3() { "pop3" } else { "smtp" };
            crate::stats::session_opened(protocol);
            if service.is_pop3() {
                pop3_conn::run(conn, peer, shared, stop).await;
            } else {
                smtp_conn::run(conn, peer, shared, stop, service).await;
            }
            crate::stats::session_closed(protocol);
            drop(guard);
        });
    }
}

async fn refuse(
    mut stream: tokio::net::TcpStream,
    service: Service,
    hit: LimitHit,
    ip: std::net::IpAddr,
) {
    let why = match hit {
        LimitHit::Total => "too many connections",
        LimitHit::PerAddress => "too many connections from your address",
    };
    tracing::warn!(client = %ip, "{} connection refused: {why}", service.name());
    let line = if service.is_pop3() {
        format!("-ERR [SYS/TEMP] {why}, try again later\r\n")
    } else {
        format!("421 4.7.0 {why}, try again later\r\n")
    };
    if !service.implicit_tls() {
        let _ =
            tokio::time::timeout(Duration::from_secs(5), stream.write_all(line.as_bytes())).await;
    }
    let _ = stream.shutdown().await;
}

/// The start-up line that says where everything is.
pub fn announce(config: &Config, listeners: &[Listener]) {
    let mut parts = Vec::new();
    for service in [
        Service::Smtp,
        Service::Submission,
        Service::SubmissionTls,
        Service::Pop3,
        Service::Pop3Tls,
    ] {
        let addrs: Vec<String> = listeners
            .iter()
            .filter(|l| l.service == service)
            .filter_map(|l| l.socket.local_addr().ok())
            .map(|a| a.to_string())
            .collect();
        if !addrs.is_empty() {
            parts.push(format!("{} on {}", service.name(), addrs.join(", ")));
        }
    }
    tracing::info!(
        "jes {} started as {}: {}; local domains {}; mail root {}; log {}",
        env!("CARGO_PKG_VERSION"),
        config.mail.hostname,
        parts.join(", "),
        config.mail.domains.join(", "),
        config.store_dir().display(),
        config.log.file.display()
    );
}
