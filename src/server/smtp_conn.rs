//! The SMTP handler: feeds what the connection read to `smtp::Session` and performs the actions
//! it asks for (storing a message through the accept step, checking a password, STARTTLS). Reading,
//! writing, time limits and the TLS upgrade are the connection driver's (`super::connection`).

use std::net::SocketAddr;
use std::ops::ControlFlow;
use std::sync::Arc;

use tokio::sync::watch;

use super::connection::{self, Connection, Farewell, Limits, Peer, Protocol};
use super::Service;
use crate::config::Config;
use crate::delivery::accept::{accept, AcceptError, Incoming, Stores};
use crate::event::{Event, Kind, MessageFacts};
use crate::routing::{self, ClientRights, Decision};
use crate::shared::{normalize_ip, Shared};
use crate::smtp::{Env, Envelope, Output, RcptDecision, Session, SessionParams, StoreError};
use crate::stream::Stream;

struct ConnEnv<'a> {
    config: &'a Config,
    rights: ClientRights,
    /// The accounts are not known yet (`store.url` with the database away since the start):
    /// "no such user" would be a guess, so it becomes "try later".
    accounts_unknown: bool,
}

impl Env for ConnEnv<'_> {
    fn check_recipient(&self, sender: &str, recipient: &str) -> RcptDecision {
        // A refusal is reported by the session's `Output::Refused`, with the reply it sends.
        match routing::decide(self.config, self.rights, sender, recipient) {
            Decision::Accept => RcptDecision::Accept,
            Decision::UnknownUser if self.accounts_unknown => RcptDecision::TryLater,
            Decision::UnknownUser => RcptDecision::UnknownUser,
            Decision::RelayDenied => RcptDecision::RelayDenied,
            Decision::BadAddress(why) => RcptDecision::BadAddress(why),
        }
    }

    fn storage_available(&self) -> bool {
        free_disk_bytes(&self.config.store_dir())
            .is_none_or(|free| free >= self.config.mail.min_disk_free)
    }

    fn now_rfc5322(&self) -> String {
        chrono::Local::now().to_rfc2822()
    }

    fn new_message_id(&self) -> String {
        let now = chrono::Utc::now();
        format!(
            "<{}.{:x}@{}>",
            now.format("%Y%m%d%H%M%S%.6f"),
            rand_u64(),
            self.config
                .mail
                .hostname
                .trim_start_matches('[')
                .trim_end_matches(']')
        )
    }
}

/// Free bytes for unprivileged users on the file system of `dir`; `None` when it cannot be told.
fn free_disk_bytes(dir: &std::path::Path) -> Option<u64> {
    let stat = rustix::fs::statvfs(dir).ok()?;
    Some(stat.f_bavail.saturating_mul(stat.f_frsize))
}

/// Randomness for Message-IDs from the OS. Uniqueness, not secrecy, is what matters, so if the OS
/// ever refused (Linux does not, once booted) a counter still keeps this process's ids apart.
fn rand_u64() -> u64 {
    static FALLBACK: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    getrandom::u64().unwrap_or_else(|_| FALLBACK.fetch_add(1, std::sync::atomic::Ordering::Relaxed))
}

pub async fn run(
    stream: Stream,
    peer: SocketAddr,
    shared: Arc<Shared>,
    stop: watch::Receiver<bool>,
    service: Service,
) {
    let ip = normalize_ip(peer.ip());
    let config = shared.config();
    let trusted_ip = config.mail.relay_ip_allowed(ip) || shared.pop_before_smtp(ip);
    let session_id = shared.session_id();
    let mut params = SessionParams::with(connection::conn_params(
        &shared,
        &config,
        &session_id,
        ip,
        &stream,
    ));
    params.max_message_size = config.mail.max_message_size;
    params.max_header_size = config.mail.max_header_size;
    params.normalize_bare_lf = config.mail.bare_lf == crate::config::BareLf::Normalize;
    params.trusted = trusted_ip;
    params.submission = service.is_submission();
    params.require_sender_match = service.is_submission() && config.mail.submission_sender_match;
    let mut session = Session::new(params);
    session.max_errors = config.mail.max_error_count;
    session.max_recipients = config.mail.max_recipients;
    let limits = Limits {
        idle: config.mail.smtp_timeout,
        session: config.mail.smtp_max_session_time,
    };
    drop(config);
    tracing::debug!(session = %session_id, client = %ip, service = service.name(), "SMTP connection");
    let peer = Peer { id: session_id, ip };
    let mut conn = Connection::new(peer, stream, limits, stop);
    conn.reply(&session.greeting());
    let handler = Handler {
        session,
        trusted_ip,
        shared,
    };
    connection::serve(conn, handler).await;
}

/// One SMTP session and what its actions need.
struct Handler {
    session: Session,
    /// The client's address may relay (`relay.ip`, POP-before-SMTP).
    trusted_ip: bool,
    shared: Arc<Shared>,
}

impl Protocol for Handler {
    const NAME: &'static str = "SMTP";

    async fn feed(&mut self, conn: &mut Connection) -> ControlFlow<()> {
        let mut out = Vec::new();
        loop {
            let config = self.shared.config();
            let env = ConnEnv {
                config: &config,
                rights: ClientRights {
                    may_relay: self.trusted_ip || self.session.authenticated_user().is_some(),
                },
                accounts_unknown: self.shared.accounts_unknown(),
            };
            let consumed = self.session.receive(conn.input(), &env, &mut out);
            drop(config);
            conn.consume(consumed);
            let mut acted = false;
            for output in std::mem::take(&mut out) {
                acted |= self.act(conn, output).await?;
            }
            if consumed == 0 && !acted {
                return ControlFlow::Continue(());
            }
        }
    }

    fn farewell(&self, why: Farewell, unread: &[u8]) -> Option<Vec<u8>> {
        match why {
            Farewell::TimedOut => Some(self.session.timeout_reply()),
            Farewell::Stopping if unread.is_empty() && !self.session.is_in_data() => {
                Some(self.session.shutdown_reply())
            }
            Farewell::Stopping => None,
        }
    }
}

impl Handler {
    /// Performs one output of the session: `Continue(true)` after an action (the session may go
    /// on with input it left), `Continue(false)` after a reply, `Break` when the session is over.
    async fn act(&mut self, conn: &mut Connection, output: Output) -> ControlFlow<(), bool> {
        let Some(action) = reply_or_report(output, conn) else {
            return ControlFlow::Continue(false);
        };
        match action {
            // Given back only when they are actions: these two were answered above.
            Output::Reply(_) | Output::Refused { .. } => return ControlFlow::Continue(false),
            Output::Store(envelope) => {
                // DKIM signs only for clients that proved who they are (the relay address list,
                // POP-before-SMTP, AUTH), never for an envelope sender anyone can claim.
                let may_sign = self.trusted_ip || self.session.authenticated_user().is_some();
                let result = store(&self.shared, conn, envelope, may_sign).await;
                let mut after = Vec::new();
                self.session.stored(result, &mut after);
                for output in after {
                    reply_or_report(output, conn);
                }
            }
            Output::CheckAuth { user, password } => {
                // Replies before the check (the 334 prompts) go out first.
                if conn.flush().await.is_err() {
                    return ControlFlow::Break(());
                }
                // No verdict while the accounts are unknown, and no failure counted.
                if self.shared.accounts_unknown() {
                    conn.reply(&self.session.auth_unavailable());
                    return ControlFlow::Continue(true);
                }
                let peer = &conn.peer;
                let result = self.shared.check_login(peer.ip, &user, &password).await;
                if result.ok {
                    tracing::info!(session = %peer.id, client = %peer.ip, user = %user, "SMTP AUTH");
                }
                conn.reply(&self.session.auth_result(result.ok));
                if result.disconnect && !result.ok {
                    conn.reply(b"421 4.7.0 Too many failed logins, closing\r\n");
                    conn.close().await;
                    return ControlFlow::Break(());
                }
            }
            Output::StartTls => {
                if let Err(e) = conn.start_tls(self.shared.tls()).await {
                    let peer = &conn.peer;
                    tracing::info!(session = %peer.id, client = %peer.ip, "STARTTLS handshake failed: {e}");
                    self.session.tls_failed();
                    return ControlFlow::Break(());
                }
                self.session.tls_started();
            }
            Output::Close => {
                conn.close().await;
                return ControlFlow::Break(());
            }
        }
        ControlFlow::Continue(true)
    }
}

/// Runs the accept step for a message the session finished.
async fn store(
    shared: &Arc<Shared>,
    conn: &Connection,
    envelope: Envelope,
    may_sign: bool,
) -> Result<String, StoreError> {
    let mut message = envelope.header_prefix;
    message.extend_from_slice(&envelope.data);
    let incoming = Incoming {
        sender: envelope.sender,
        recipients: envelope.recipients,
        message,
        session: conn.peer.id.clone(),
        client: conn.peer.ip,
        tls: conn.tls_version().map(str::to_string),
        dsn: envelope.dsn,
        may_sign,
    };
    // Its own task: a session aborted at shutdown must not cut the accept step between the queue
    // and the mailboxes (the take-back would never run).
    let shared = shared.clone();
    let accepting = tokio::spawn(async move {
        let config = shared.config();
        let stores = Stores {
            queue: shared.queue.as_ref(),
            mailboxes: shared.mailboxes.as_ref(),
            runner: &shared.runner,
        };
        accept(&config, &stores, incoming).await
    });
    match accepting.await {
        Ok(Ok(id)) => Ok(id),
        Ok(Err(AcceptError::Full)) => Err(StoreError::Full),
        Ok(Err(AcceptError::Temporary(text))) => Err(StoreError::Temporary(text)),
        Err(e) => Err(StoreError::Temporary(format!("storage task failed: {e}"))),
    }
}

/// A reply goes to the connection and a refusal to the outcome report; any other output (an
/// action for the handler) is given back.
fn reply_or_report(output: Output, conn: &mut Connection) -> Option<Output> {
    match output {
        Output::Reply(bytes) => conn.reply(&bytes),
        Output::Refused {
            sender,
            recipients,
            reply,
        } => report_refused(&conn.peer, &sender, &recipients, &reply),
        other => return Some(other),
    }
    None
}

/// Reports recipients the session refused (one `refused` event each, with our reply).
fn report_refused(peer: &Peer, sender: &str, recipients: &[String], reply: &str) {
    let facts = MessageFacts {
        sender: sender.to_string(),
        ..MessageFacts::default()
    };
    let events = recipients
        .iter()
        .map(|r| {
            Event::new(Kind::Refused, &facts, r)
                .in_session(&peer.id, peer.ip)
                .with_reply(reply)
        })
        .collect();
    crate::outcome::emit_all(events);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_disk_space_is_read_from_the_file_system() {
        let dir = tempfile::tempdir().unwrap();
        let free = free_disk_bytes(dir.path()).unwrap();
        let stat = rustix::fs::statvfs(dir.path()).unwrap();
        assert!(
            free <= stat.f_blocks * stat.f_frsize,
            "at most the whole disk: {free}"
        );
        assert_eq!(free_disk_bytes(&dir.path().join("missing")), None);
    }

    #[test]
    fn message_id_randomness_does_not_repeat() {
        let seen: std::collections::HashSet<u64> = (0..1000).map(|_| rand_u64()).collect();
        assert_eq!(seen.len(), 1000);
        // Random, not a counter: the high half is used too.
        assert!(seen.iter().any(|v| v >> 32 != 0));
    }
}
