//! The tokio driver of one SMTP session: reads bytes, feeds `smtp::Session`, writes its replies,
//! and performs its actions (storing a message through the accept step). Replies are buffered and
//! flushed only before the driver would block on a read, which is what PIPELINING needs.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;

use super::conn::Conn;
use super::Service;
use crate::config::Config;
use crate::delivery::accept::{accept, AcceptError, Incoming, Stores};
use crate::event::{Event, Kind, MessageFacts};
use crate::routing::{self, ClientRights, Decision};
use crate::shared::{clear_text_allowed, normalize_ip, Shared};
use crate::smtp::{Env, Envelope, Output, RcptDecision, Session, SessionParams, StoreError};

struct ConnEnv<'a> {
    config: &'a Config,
    rights: ClientRights,
}

impl Env for ConnEnv<'_> {
    fn check_recipient(&self, sender: &str, recipient: &str) -> RcptDecision {
        // A refusal is reported by the session's `Output::Refused`, with the reply it sends.
        match routing::decide(self.config, self.rights, sender, recipient) {
            Decision::Accept => RcptDecision::Accept,
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
    mut conn: Conn,
    peer: SocketAddr,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
    service: Service,
) {
    let started = Instant::now();
    let ip = normalize_ip(peer.ip());
    let config = shared.config();
    let trusted_ip = config.mail.relay_ip_allowed(ip) || shared.pop_before_smtp(ip);
    let session_id = shared.session_id();
    let mut params = SessionParams::new(config.mail.hostname.clone(), session_id.clone(), ip);
    params.max_message_size = config.mail.max_message_size;
    params.max_header_size = config.mail.max_header_size;
    params.normalize_bare_lf = config.mail.bare_lf == crate::config::BareLf::Normalize;
    params.trusted = trusted_ip;
    params.tls_available = shared.tls().is_some();
    params.encrypted = conn.is_tls();
    params.clear_text_auth = clear_text_allowed(&config, ip);
    params.submission = service.is_submission();
    params.require_sender_match = service.is_submission() && config.mail.submission_sender_match;
    let mut session = Session::new(params);
    session.max_errors = config.mail.max_error_count;
    session.max_recipients = config.mail.max_recipients;
    let idle = config.mail.smtp_timeout;
    let session_limit = config.mail.smtp_max_session_time;
    drop(config);
    tracing::debug!(session = %session_id, client = %ip, service = service.name(), "SMTP connection");
    // Reads go straight into `buf`'s spare capacity: an idle session holds only what it was
    // sent, not a read buffer per connection (10,000 idle connections must stay small).
    let mut buf: Vec<u8> = Vec::new();
    let mut wbuf: Vec<u8> = session.greeting();
    let mut out = Vec::new();
    loop {
        // Run the session over everything buffered, until it needs more input.
        loop {
            let config = shared.config();
            let env = ConnEnv {
                config: &config,
                rights: ClientRights {
                    may_relay: trusted_ip || session.authenticated_user().is_some(),
                },
            };
            let consumed = session.receive(&buf, &env, &mut out);
            drop(config);
            buf.drain(..consumed);
            let mut acted = false;
            for output in std::mem::take(&mut out) {
                let Some(output) = reply_or_report(output, &mut wbuf, &session_id, ip) else {
                    continue;
                };
                match output {
                    Output::Reply(_) | Output::Refused { .. } => {}
                    Output::Store(envelope) => {
                        let tls = conn.tls_version();
                        let may_sign = trusted_ip || session.authenticated_user().is_some();
                        let result =
                            store(&shared, &session_id, ip, (tls, may_sign), envelope).await;
                        let mut after = Vec::new();
                        session.stored(result, &mut after);
                        for output in after {
                            reply_or_report(output, &mut wbuf, &session_id, ip);
                        }
                        acted = true;
                    }
                    Output::CheckAuth { user, password } => {
                        // Replies before the check (the 334 prompts) go out first.
                        if conn.flush_out(&mut wbuf).await.is_err() {
                            return;
                        }
                        let result = shared.check_login(ip, &user, &password).await;
                        if result.ok {
                            tracing::info!(session = %session_id, client = %ip, user = %user, "SMTP AUTH");
                        }
                        wbuf.extend_from_slice(&session.auth_result(result.ok));
                        if result.disconnect && !result.ok {
                            wbuf.extend_from_slice(
                                b"421 4.7.0 Too many failed logins, closing\r\n",
                            );
                            let _ = conn.flush_out(&mut wbuf).await;
                            let _ = conn.shutdown().await;
                            return;
                        }
                        acted = true;
                    }
                    Output::StartTls => {
                        if conn.flush_out(&mut wbuf).await.is_err() {
                            return;
                        }
                        // RFC 3207 §4.2: whatever the client sent before the handshake is discarded.
                        buf.clear();
                        let Some(acceptor) = shared.tls() else {
                            session.tls_failed();
                            return;
                        };
                        conn = match conn.start_tls(acceptor).await {
                            Ok(c) => c,
                            Err(e) => {
                                tracing::info!(session = %session_id, client = %ip, "STARTTLS handshake failed: {e}");
                                crate::stats::tls_handshake(false);
                                return;
                            }
                        };
                        crate::stats::tls_handshake(true);
                        session.tls_started();
                        acted = true;
                    }
                    Output::Close => {
                        let _ = conn.flush_out(&mut wbuf).await;
                        let _ = conn.shutdown().await;
                        return;
                    }
                }
            }
            if consumed == 0 && !acted {
                break;
            }
        }
        if conn.flush_out(&mut wbuf).await.is_err() {
            return;
        }
        let left = session_limit.saturating_sub(started.elapsed());
        if left.is_zero() {
            tracing::info!(session = %session_id, client = %ip, "SMTP session time limit reached");
            wbuf.extend_from_slice(&session.timeout_reply());
            let _ = conn.flush_out(&mut wbuf).await;
            return;
        }
        let read = tokio::select! {
            r = tokio::time::timeout(idle.min(left), read_more(&mut conn, &mut buf)) => r,
            _ = stop.changed(), if !*stop.borrow() => {
                if buf.is_empty() && !session.is_in_data() {
                    wbuf.extend_from_slice(&session.shutdown_reply());
                    let _ = conn.flush_out(&mut wbuf).await;
                    return;
                }
                continue;
            }
        };
        match read {
            Err(_elapsed) => {
                tracing::info!(session = %session_id, client = %ip, "SMTP timeout");
                wbuf.extend_from_slice(&session.timeout_reply());
                let _ = conn.flush_out(&mut wbuf).await;
                return;
            }
            Ok(Ok(0)) | Ok(Err(_)) => return,
            Ok(Ok(_)) => {}
        }
        if *stop.borrow() && buf.is_empty() && !session.is_in_data() {
            wbuf.extend_from_slice(&session.shutdown_reply());
            let _ = conn.flush_out(&mut wbuf).await;
            return;
        }
    }
}

/// Reads what the client sent into `buf`, growing it only when needed; an empty buffer is freed
/// so that a session waiting between commands costs no buffer at all.
async fn read_more(conn: &mut Conn, buf: &mut Vec<u8>) -> std::io::Result<usize> {
    if buf.is_empty() && buf.capacity() > 64 * 1024 {
        *buf = Vec::new();
    }
    buf.reserve(if buf.is_empty() { 1024 } else { 16 * 1024 });
    conn.read_buf(buf).await
}

/// Runs the accept step for a message the session finished.
async fn store(
    shared: &Arc<Shared>,
    session_id: &str,
    ip: std::net::IpAddr,
    (tls, may_sign): (Option<String>, bool),
    envelope: Envelope,
) -> Result<String, StoreError> {
    let mut message = envelope.header_prefix;
    message.extend_from_slice(&envelope.data);
    let incoming = Incoming {
        sender: envelope.sender,
        recipients: envelope.recipients,
        message,
        session: session_id.to_string(),
        client: ip,
        tls,
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

/// A reply goes into the output buffer and a refusal to the outcome report; any other output
/// (an action for the driver) is given back.
fn reply_or_report(
    output: Output,
    wbuf: &mut Vec<u8>,
    session_id: &str,
    ip: std::net::IpAddr,
) -> Option<Output> {
    match output {
        Output::Reply(bytes) => wbuf.extend_from_slice(&bytes),
        Output::Refused {
            sender,
            recipients,
            reply,
        } => report_refused(session_id, ip, &sender, &recipients, &reply),
        other => return Some(other),
    }
    None
}

/// Reports recipients the session refused (one `refused` event each, with our reply).
fn report_refused(
    session_id: &str,
    ip: std::net::IpAddr,
    sender: &str,
    recipients: &[String],
    reply: &str,
) {
    let facts = MessageFacts {
        sender: sender.to_string(),
        ..MessageFacts::default()
    };
    let events = recipients
        .iter()
        .map(|r| {
            Event::new(Kind::Refused, &facts, r)
                .in_session(session_id, ip)
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
