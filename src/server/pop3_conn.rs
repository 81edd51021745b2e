//! The tokio driver of one POP3 session: feeds `pop3::Session`, checks passwords on the bounded
//! pool, opens (and so locks) the mailbox, reads messages and performs deletions at QUIT. The
//! mailbox lock is the `OpenMailbox` value itself: it is released when this task ends, however it ends,
//! and a dropped connection deletes nothing.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;

use super::conn::Conn;
use crate::event::{Event, Kind, MessageFacts};
use crate::pop3::{Listing, OpenFailure, Output, Session, SessionParams};
use crate::shared::{clear_text_allowed, normalize_ip, Shared};
use crate::store::{OpenError, OpenMailbox};

/// Facts of retrieved messages a session keeps for their deletion events.
const RETRIEVED_FACTS_KEPT: usize = 1000;

pub async fn run(
    mut conn: Conn,
    peer: SocketAddr,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
) {
    let started = Instant::now();
    let ip = normalize_ip(peer.ip());
    let session_id = shared.session_id();
    let config = shared.config();
    let mut params = SessionParams::new(config.mail.hostname.clone(), session_id.clone(), ip);
    params.tls_available = shared.tls().is_some();
    params.encrypted = conn.is_tls();
    params.clear_text_allowed = clear_text_allowed(&config, ip);
    let idle = config.mail.pop3_timeout;
    let session_limit = config.mail.pop3_max_session_time;
    drop(config);
    let mut session = Session::new(params);
    let mut wbuf = session.greeting();
    let mut mailbox: Option<Box<dyn OpenMailbox>> = None;
    // Facts of the messages RETR read in this session, by index, for their pop3-deleted events.
    let mut retrieved: HashMap<usize, MessageFacts> = HashMap::new();
    let mut user = String::new();
    let mut buf: Vec<u8> = Vec::new();
    let mut pending: VecDeque<Output> = VecDeque::new();
    let mut out = Vec::new();
    loop {
        loop {
            let consumed = session.receive(&buf, &mut out);
            buf.drain(..consumed);
            pending.extend(out.drain(..));
            let acted = !pending.is_empty();
            while let Some(output) = pending.pop_front() {
                match output {
                    Output::Reply(bytes) => wbuf.extend_from_slice(&bytes),
                    Output::CheckLogin {
                        user: name,
                        password,
                    } => {
                        if conn.flush_out(&mut wbuf).await.is_err() {
                            return;
                        }
                        let result = shared.check_login(ip, &name, &password).await;
                        if result.ok {
                            user = name;
                        }
                        session.login_checked(result.ok, &mut out);
                        if result.disconnect && !result.ok {
                            for o in out.drain(..) {
                                if let Output::Reply(bytes) = o {
                                    wbuf.extend_from_slice(&bytes);
                                }
                            }
                            wbuf.extend_from_slice(
                                b"-ERR [AUTH] too many failed logins, closing\r\n",
                            );
                            let _ = conn.flush_out(&mut wbuf).await;
                            let _ = conn.shutdown().await;
                            return;
                        }
                    }
                    Output::StartTls => {
                        if conn.flush_out(&mut wbuf).await.is_err() {
                            return;
                        }
                        // RFC 2595 §4: nothing sent before the handshake is acted on.
                        buf.clear();
                        pending.clear();
                        let Some(acceptor) = shared.tls() else {
                            session.tls_failed();
                            return;
                        };
                        conn = match conn.start_tls(acceptor).await {
                            Ok(c) => c,
                            Err(e) => {
                                tracing::info!(session = %session_id, client = %ip, "STLS handshake failed: {e}");
                                crate::stats::tls_handshake(false);
                                return;
                            }
                        };
                        crate::stats::tls_handshake(true);
                        session.tls_started();
                    }
                    Output::OpenMailbox { user: name } => {
                        let result = shared.mailboxes.open(&name).await;
                        let reply = match result {
                            Ok(m) => {
                                let listings = m
                                    .messages()
                                    .iter()
                                    .map(|info| Listing {
                                        uid: info.uid.clone(),
                                        size: info.size,
                                    })
                                    .collect();
                                tracing::info!(
                                    session = %session_id, client = %ip, user = %name,
                                    messages = m.messages().len(), "POP3 login"
                                );
                                shared.note_pop_login(ip);
                                mailbox = Some(m);
                                Ok(listings)
                            }
                            Err(OpenError::InUse) => {
                                tracing::info!(session = %session_id, client = %ip, user = %name, "POP3 mailbox in use");
                                Err(OpenFailure::InUse)
                            }
                            Err(e) => {
                                tracing::error!(session = %session_id, user = %name, "cannot open mailbox: {e}");
                                Err(OpenFailure::Temporary(
                                    "mailbox unavailable, try again later".into(),
                                ))
                            }
                        };
                        session.mailbox_opened(reply, &mut out);
                    }
                    Output::Retrieve { index, top } => {
                        let read = match mailbox.as_ref() {
                            Some(m) => m.read(index).await,
                            None => Err(std::io::Error::other("no mailbox open")),
                        };
                        match (&read, mailbox.as_ref()) {
                            (Err(e), _) => {
                                tracing::error!(session = %session_id, user = %user, "cannot read message {}: {e}", index + 1)
                            }
                            // TOP only looks: RETR is what a reader calls retrieving.
                            (Ok(bytes), Some(m)) if top.is_none() => {
                                if let Some(info) = m.messages().get(index) {
                                    let facts = MessageFacts::of_stored(&info.id, bytes, info.size);
                                    crate::outcome::emit(
                                        Event::new(Kind::Pop3Retrieved, &facts, &user)
                                            .in_session(&session_id, ip)
                                            .with_tls(conn.tls_version().as_deref()),
                                    );
                                    // A reader deletes what it read: its pop3-deleted event
                                    // then needs no second look at the file (bounded: past
                                    // that, deletion reads the head again).
                                    if retrieved.len() < RETRIEVED_FACTS_KEPT {
                                        retrieved.insert(index, facts);
                                    }
                                }
                            }
                            _ => {}
                        }
                        session.retrieved(read, &mut out);
                    }
                    Output::Commit { deleted } => {
                        let result = match mailbox.as_ref() {
                            Some(m) => {
                                // What each message was, for its outcome event: known from RETR,
                                // else read before it goes.
                                let mut facts: Vec<MessageFacts> = Vec::new();
                                for &i in &deleted {
                                    if let Some(f) = retrieved.remove(&i) {
                                        facts.push(f);
                                    } else if let Some(info) = m.messages().get(i) {
                                        let head = m.head(i, 16 * 1024).await.unwrap_or_default();
                                        facts.push(MessageFacts::of_stored(
                                            &info.id, &head, info.size,
                                        ));
                                    }
                                }
                                let done = m.delete(&deleted).await.map(|()| facts);
                                match done {
                                    Ok(facts) => {
                                        let tls = conn.tls_version();
                                        let events = facts
                                            .iter()
                                            .map(|f| {
                                                Event::new(Kind::Pop3Deleted, f, &user)
                                                    .in_session(&session_id, ip)
                                                    .with_tls(tls.as_deref())
                                            })
                                            .collect();
                                        crate::outcome::emit_all(events);
                                        Ok(())
                                    }
                                    Err(e) => {
                                        tracing::error!(session = %session_id, user = %user, "cannot delete messages: {e}");
                                        Err(e.to_string())
                                    }
                                }
                            }
                            None => Ok(()),
                        };
                        // Commit is QUIT's UPDATE state: the lock goes before the +OK is written,
                        // or a client that reconnects at once (a poller) can find its own mailbox
                        // still locked, `[IN-USE]`, by the session it has just ended.
                        mailbox = None;
                        session.committed(result, &mut out);
                    }
                    Output::Close => {
                        let _ = conn.flush_out(&mut wbuf).await;
                        let _ = conn.shutdown().await;
                        return;
                    }
                }
                pending.extend(out.drain(..));
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
            tracing::info!(session = %session_id, client = %ip, "POP3 session time limit reached");
            wbuf.extend_from_slice(&session.timeout_reply());
            let _ = conn.flush_out(&mut wbuf).await;
            return;
        }
        buf.reserve(1024);
        let read = tokio::select! {
            r = tokio::time::timeout(idle.min(left), conn.read_buf(&mut buf)) => r,
            _ = stop.changed(), if !*stop.borrow() => {
                // Shutting down: a session that is not in the middle of something ends now,
                // deleting nothing (as a dropped connection would).
                if buf.is_empty() {
                    wbuf.extend_from_slice(b"-ERR [SYS/TEMP] server shutting down\r\n");
                    let _ = conn.flush_out(&mut wbuf).await;
                    return;
                }
                continue;
            }
        };
        match read {
            Err(_elapsed) => {
                tracing::info!(session = %session_id, client = %ip, "POP3 idle timeout");
                wbuf.extend_from_slice(&session.timeout_reply());
                let _ = conn.flush_out(&mut wbuf).await;
                return;
            }
            Ok(Ok(0)) | Ok(Err(_)) => return,
            Ok(Ok(_)) => {}
        }
    }
}
