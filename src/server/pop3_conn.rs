//! The POP3 handler: feeds what the connection read to `pop3::Session`, checks passwords on the
//! bounded pool, opens (and so locks) the mailbox, reads messages and performs deletions at QUIT.
//! Reading, writing, time limits and the TLS upgrade are the connection driver's
//! (`super::connection`). The mailbox lock is the `OpenMailbox` value itself: it is released when
//! this task ends, however it ends, and a dropped connection deletes nothing.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::ops::ControlFlow;
use std::sync::Arc;

use tokio::sync::watch;

use super::connection::{self, Connection, Farewell, Limits, Peer, Protocol};
use crate::event::{Event, Kind, MessageFacts};
use crate::pop3::{Listing, OpenFailure, Output, Session, SessionParams};
use crate::shared::{normalize_ip, Shared};
use crate::store::{OpenError, OpenMailbox};
use crate::stream::Stream;

/// Facts of retrieved messages a session keeps for their deletion events.
const RETRIEVED_FACTS_KEPT: usize = 1000;

pub async fn run(
    stream: Stream,
    peer: SocketAddr,
    shared: Arc<Shared>,
    stop: watch::Receiver<bool>,
) {
    let ip = normalize_ip(peer.ip());
    let session_id = shared.session_id();
    let config = shared.config();
    let params: SessionParams = connection::conn_params(&shared, &config, &session_id, ip, &stream);
    let limits = Limits {
        idle: config.mail.pop3_timeout,
        session: config.mail.pop3_max_session_time,
    };
    drop(config);
    let mut session = Session::new(params);
    let mut conn = Connection::new(Peer { id: session_id, ip }, stream, limits, stop);
    conn.reply(&session.greeting());
    let handler = Handler {
        session,
        shared,
        user: String::new(),
        mailbox: None,
        retrieved: HashMap::new(),
        pending: VecDeque::new(),
    };
    connection::serve(conn, handler).await;
}

/// One POP3 session and what its actions need.
struct Handler {
    session: Session,
    shared: Arc<Shared>,
    /// The user who logged in.
    user: String,
    mailbox: Option<Box<dyn OpenMailbox>>,
    /// Facts of the messages RETR read in this session, by index, for their pop3-deleted events.
    retrieved: HashMap<usize, MessageFacts>,
    /// Outputs of the session not performed yet.
    pending: VecDeque<Output>,
}

impl Protocol for Handler {
    const NAME: &'static str = "POP3";

    async fn feed(&mut self, conn: &mut Connection) -> ControlFlow<()> {
        let mut out = Vec::new();
        loop {
            let consumed = self.session.receive(conn.input(), &mut out);
            conn.consume(consumed);
            self.pending.extend(out.drain(..));
            let acted = !self.pending.is_empty();
            while let Some(output) = self.pending.pop_front() {
                self.act(conn, output, &mut out).await?;
                self.pending.extend(out.drain(..));
            }
            if consumed == 0 && !acted {
                return ControlFlow::Continue(());
            }
        }
    }

    /// A session that is not in the middle of something ends when the server stops, deleting
    /// nothing (as a dropped connection would).
    fn farewell(&self, why: Farewell, unread: &[u8]) -> Option<Vec<u8>> {
        match why {
            Farewell::TimedOut => Some(self.session.timeout_reply()),
            Farewell::Stopping if unread.is_empty() => {
                Some(b"-ERR [SYS/TEMP] server shutting down\r\n".to_vec())
            }
            Farewell::Stopping => None,
        }
    }
}

impl Handler {
    /// Performs one output of the session, pushing what the session says next onto `out`;
    /// `Break` when the session is over.
    async fn act(
        &mut self,
        conn: &mut Connection,
        output: Output,
        out: &mut Vec<Output>,
    ) -> ControlFlow<()> {
        match output {
            Output::Reply(bytes) => conn.reply(&bytes),
            Output::CheckLogin { user, password } => {
                return self.check_login(conn, user, password, out).await;
            }
            Output::StartTls => {
                if let Err(e) = conn.start_tls(self.shared.tls()).await {
                    let peer = &conn.peer;
                    tracing::info!(session = %peer.id, client = %peer.ip, "STLS handshake failed: {e}");
                    self.session.tls_failed();
                    return ControlFlow::Break(());
                }
                // RFC 2595 §4: nothing sent before the handshake is acted on.
                self.pending.clear();
                self.session.tls_started();
            }
            Output::OpenMailbox { user } => {
                let reply = self.open_mailbox(&conn.peer, &user).await;
                self.session.mailbox_opened(reply, out);
            }
            Output::Retrieve { index, top } => {
                let read = self.retrieve(conn, index, top.is_none()).await;
                self.session.retrieved(read, out);
            }
            Output::Commit { deleted } => {
                let result = self.commit(conn, &deleted).await;
                self.session.committed(result, out);
            }
            Output::Close => {
                conn.close().await;
                return ControlFlow::Break(());
            }
        }
        ControlFlow::Continue(())
    }

    async fn check_login(
        &mut self,
        conn: &mut Connection,
        user: String,
        password: String,
        out: &mut Vec<Output>,
    ) -> ControlFlow<()> {
        // Replies before the check go out first.
        if conn.flush().await.is_err() {
            return ControlFlow::Break(());
        }
        // No verdict while the accounts are unknown, and no failure counted for the throttle.
        if self.shared.accounts_unknown() {
            self.session.login_unavailable(out);
            return ControlFlow::Continue(());
        }
        let result = self
            .shared
            .check_login(conn.peer.ip, &user, &password)
            .await;
        if result.ok {
            self.user = user;
        }
        self.session.login_checked(result.ok, out);
        if result.disconnect && !result.ok {
            for output in out.drain(..) {
                if let Output::Reply(bytes) = output {
                    conn.reply(&bytes);
                }
            }
            conn.reply(b"-ERR [AUTH] too many failed logins, closing\r\n");
            conn.close().await;
            return ControlFlow::Break(());
        }
        ControlFlow::Continue(())
    }

    async fn open_mailbox(&mut self, peer: &Peer, user: &str) -> Result<Vec<Listing>, OpenFailure> {
        let (session, client) = (&peer.id, peer.ip);
        match self.shared.mailboxes.open(user).await {
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
                    session = %session, client = %client, user = %user,
                    messages = m.messages().len(), "POP3 login"
                );
                self.shared.note_pop_login(client);
                self.mailbox = Some(m);
                Ok(listings)
            }
            Err(OpenError::InUse) => {
                tracing::info!(session = %session, client = %client, user = %user, "POP3 mailbox in use");
                Err(OpenFailure::InUse)
            }
            Err(e) => {
                tracing::error!(session = %session, user = %user, "cannot open mailbox: {e}");
                Err(OpenFailure::Temporary(
                    "mailbox unavailable, try again later".into(),
                ))
            }
        }
    }

    /// RETR (`retr`) or TOP: reads message `index`; RETR reports `pop3-retrieved`.
    async fn retrieve(
        &mut self,
        conn: &Connection,
        index: usize,
        retr: bool,
    ) -> std::io::Result<Vec<u8>> {
        let read = match self.mailbox.as_ref() {
            Some(m) => m.read(index).await,
            None => Err(std::io::Error::other("no mailbox open")),
        };
        match (&read, self.mailbox.as_ref()) {
            (Err(e), _) => {
                tracing::error!(session = %conn.peer.id, user = %self.user, "cannot read message {}: {e}", index + 1)
            }
            // TOP only looks: RETR is what a reader calls retrieving.
            (Ok(bytes), Some(m)) if retr => {
                if let Some(info) = m.messages().get(index) {
                    let facts = MessageFacts::of_stored(&info.id, bytes, info.size);
                    crate::outcome::emit(
                        Event::new(Kind::Pop3Retrieved, &facts, &self.user)
                            .in_session(&conn.peer.id, conn.peer.ip)
                            .with_tls(conn.tls_version()),
                    );
                    // A reader deletes what it read: its pop3-deleted event then needs no second
                    // look at the file (bounded: past that, deletion reads the head again).
                    if self.retrieved.len() < RETRIEVED_FACTS_KEPT {
                        self.retrieved.insert(index, facts);
                    }
                }
            }
            _ => {}
        }
        read
    }

    /// QUIT's UPDATE state: deletes the messages and reports `pop3-deleted` for each.
    async fn commit(&mut self, conn: &Connection, deleted: &[usize]) -> Result<(), String> {
        // The mailbox (and so its lock) is taken here and closed before the +OK is written, or a
        // client that reconnects at once (a poller, perhaps through another server) can find its
        // own mailbox still locked, `[IN-USE]`, by the session it has just ended.
        let Some(m) = self.mailbox.take() else {
            return Ok(());
        };
        // What each message was, for its outcome event: known from RETR, else read before it goes.
        let mut facts: Vec<MessageFacts> = Vec::new();
        for &i in deleted {
            if let Some(f) = self.retrieved.remove(&i) {
                facts.push(f);
            } else if let Some(info) = m.messages().get(i) {
                let head = m.head(i, 16 * 1024).await.unwrap_or_default();
                facts.push(MessageFacts::of_stored(&info.id, &head, info.size));
            }
        }
        let result = m.delete(deleted).await;
        m.close().await;
        if let Err(e) = result {
            tracing::error!(session = %conn.peer.id, user = %self.user, "cannot delete messages: {e}");
            return Err(e.to_string());
        }
        let events = facts
            .iter()
            .map(|f| {
                Event::new(Kind::Pop3Deleted, f, &self.user)
                    .in_session(&conn.peer.id, conn.peer.ip)
                    .with_tls(conn.tls_version())
            })
            .collect();
        crate::outcome::emit_all(events);
        Ok(())
    }
}
