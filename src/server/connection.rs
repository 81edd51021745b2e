//! The connection driver SMTP and POP3 share, in the shape of mini-redis's `connection.rs` and
//! `server.rs`: a [`Connection`] owns the client's stream and both buffers and does everything
//! about a connection that is not the protocol; [`serve`] is the one loop every session runs.
//!
//! The loop: let the protocol's handler feed what was read to its sans-IO session and perform
//! the actions the session asks for; then write the buffered replies and wait for more input,
//! within the idle and session time limits, or for the server to stop. Replies are written only
//! before the driver would wait (a read, or an action that waits, like a password check), which
//! is what PIPELINING wants: a batch of commands is answered in one write. The input buffer is
//! the framing: the session consumes whole lines (and, for SMTP, DATA and BDAT content) from it
//! and leaves a partial one for the next read; its size limits are the session's own.
//!
//! SMTP and POP3 never read and write at the same time, so the stream is not split; that makes
//! STARTTLS/STLS a plain move too: the TCP stream goes into the TLS acceptor and comes back
//! wrapped.

use std::io;
use std::net::IpAddr;
use std::ops::ControlFlow;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

use crate::config::Config;
use crate::conn_params::ConnParams;
use crate::shared::{clear_text_allowed, Shared};
use crate::stream::{self, Stream};

/// How long a client may take to finish a TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);

/// An input buffer the session has emptied is given back above this size: a session waiting
/// between commands should not keep the memory of a large message.
const KEPT_INPUT_CAPACITY: usize = 64 * 1024;

/// One protocol's side of a session: its sans-IO session and the actions it performs.
pub trait Protocol {
    /// How log lines name the protocol (`SMTP`, `POP3`).
    const NAME: &'static str;

    /// Runs the session over the input the connection holds, performing its actions, until it
    /// needs more input (`Continue`) or the session is over (`Break`, the connection closed).
    async fn feed(&mut self, conn: &mut Connection) -> ControlFlow<()>;

    /// The reply that ends the session early, or `None` to go on: always one on a timeout; when
    /// the server stops, `None` while the session is in the middle of something (`unread`: the
    /// input it has not consumed).
    fn farewell(&self, why: Farewell, unread: &[u8]) -> Option<Vec<u8>>;
}

/// Why a session would end before the client or the session ends it.
pub enum Farewell {
    /// The client was silent too long, or the session ran out of time.
    TimedOut,
    /// The server is shutting down.
    Stopping,
}

/// What an SMTP or POP3 session is told about its connection, filled the same way for both.
pub fn conn_params(
    shared: &Shared,
    config: &Config,
    session_id: &str,
    ip: IpAddr,
    stream: &Stream,
) -> ConnParams {
    ConnParams {
        tls_available: shared.tls().is_some(),
        encrypted: stream::tls_version(stream).is_some(),
        clear_text_allowed: clear_text_allowed(config, ip),
        ..ConnParams::new(config.mail.hostname.clone(), session_id, ip)
    }
}

/// Who a session is with, for its log lines and outcome events.
pub struct Peer {
    /// The session id log lines and events carry.
    pub id: String,
    pub ip: IpAddr,
}

/// Runs one session to its end.
pub async fn serve<P: Protocol>(mut conn: Connection, mut handler: P) {
    loop {
        if handler.feed(&mut conn).await.is_break() {
            return;
        }
        let why = match conn.read().await {
            Read::Input => continue,
            Read::Closed => return,
            Read::TimedOut(why) => {
                let peer = &conn.peer;
                tracing::info!(session = %peer.id, client = %peer.ip, "{} {why}", P::NAME);
                Farewell::TimedOut
            }
            Read::Stopping => Farewell::Stopping,
        };
        if let Some(last) = handler.farewell(why, conn.input()) {
            conn.reply(&last);
            return conn.close().await;
        }
    }
}

/// The time limits of a session.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Silence allowed while waiting for input.
    pub idle: Duration,
    /// The whole session, however busy.
    pub session: Duration,
}

/// What waiting for input ended with.
enum Read {
    /// More input is buffered.
    Input,
    /// The client closed the connection, or it failed.
    Closed,
    /// The client was silent too long, or the session ran out of time (which, for the log).
    TimedOut(&'static str),
    /// The server is shutting down.
    Stopping,
}

/// A client connection: who it is with, its stream, what the client sent that the session has
/// not consumed yet, and the replies not written yet.
pub struct Connection {
    pub peer: Peer,
    /// `None` only while switching to TLS, and for good when that failed.
    stream: Option<Stream>,
    input: Vec<u8>,
    output: Vec<u8>,
    limits: Limits,
    started: Instant,
    stop: watch::Receiver<bool>,
}

impl Connection {
    pub fn new(
        peer: Peer,
        stream: Stream,
        limits: Limits,
        stop: watch::Receiver<bool>,
    ) -> Connection {
        Connection {
            peer,
            stream: Some(stream),
            input: Vec::new(),
            output: Vec::new(),
            limits,
            started: Instant::now(),
            stop,
        }
    }

    /// The negotiated TLS version (`TLSv1.3`, `TLSv1.2`), or `None` in clear.
    pub fn tls_version(&self) -> Option<&'static str> {
        self.stream.as_ref().and_then(stream::tls_version)
    }

    /// What the client sent that the session has not consumed yet.
    pub fn input(&self) -> &[u8] {
        &self.input
    }

    /// Drops the first `n` bytes of the input: the session has consumed them.
    pub fn consume(&mut self, n: usize) {
        self.input.drain(..n);
    }

    /// Buffers a reply; it is written before the next wait.
    pub fn reply(&mut self, bytes: &[u8]) {
        self.output.extend_from_slice(bytes);
    }

    /// Writes the buffered replies.
    pub async fn flush(&mut self) -> io::Result<()> {
        let stream = self.stream.as_mut().ok_or(io::ErrorKind::NotConnected)?;
        if !self.output.is_empty() {
            stream.write_all(&self.output).await?;
            self.output.clear();
        }
        stream.flush().await
    }

    /// Writes the buffered replies and closes the connection.
    pub async fn close(&mut self) {
        let _ = self.flush().await;
        if let Some(stream) = self.stream.as_mut() {
            let _ = stream.shutdown().await;
        }
    }

    /// STARTTLS or STLS: writes the buffered replies (the one inviting the handshake), throws away
    /// whatever the client sent ahead of the handshake (RFC 3207 §4.2, RFC 2595 §4: nothing sent
    /// before it is acted on), and switches the stream to TLS. After an error the connection is
    /// gone. `None`: no certificate is loaded.
    pub async fn start_tls(&mut self, acceptor: Option<TlsAcceptor>) -> io::Result<()> {
        self.flush().await?;
        self.input.clear();
        let acceptor = acceptor.ok_or_else(|| io::Error::other("no certificate loaded"))?;
        let tcp = match self.stream.take().map(stream::into_plain) {
            Some(Ok(tcp)) => tcp,
            Some(Err(tls)) => {
                self.stream = Some(tls);
                return Err(io::Error::other("TLS is already on"));
            }
            None => return Err(io::ErrorKind::NotConnected.into()),
        };
        self.stream = Some(handshake(tcp, acceptor).await?);
        Ok(())
    }

    /// Writes the buffered replies, then waits for more input within the time limits, or for the
    /// server to stop.
    async fn read(&mut self) -> Read {
        if self.flush().await.is_err() {
            return Read::Closed;
        }
        let left = self.limits.session.saturating_sub(self.started.elapsed());
        if left.is_zero() {
            return Read::TimedOut("session time limit reached");
        }
        let Some(stream) = self.stream.as_mut() else {
            return Read::Closed;
        };
        // Reads go straight into the input buffer's spare capacity, grown only when needed: an
        // idle session holds only what it was sent (10,000 idle connections must stay small).
        if self.input.is_empty() && self.input.capacity() > KEPT_INPUT_CAPACITY {
            self.input = Vec::new();
        }
        self.input.reserve(if self.input.is_empty() {
            1024
        } else {
            16 * 1024
        });
        let stop = &mut self.stop;
        let wait = self.limits.idle.min(left);
        tokio::select! {
            read = tokio::time::timeout(wait, stream.read_buf(&mut self.input)) => match read {
                Err(_elapsed) => Read::TimedOut("idle timeout"),
                Ok(Ok(0)) | Ok(Err(_)) => Read::Closed,
                Ok(Ok(_)) => Read::Input,
            },
            _ = stop.changed(), if !*stop.borrow() => Read::Stopping,
        }
    }
}

/// A server-side TLS handshake (STARTTLS, STLS, the implicit-TLS ports) within
/// [`HANDSHAKE_TIMEOUT`], counted in the metrics whichever way it ends.
pub async fn handshake(tcp: TcpStream, acceptor: TlsAcceptor) -> io::Result<Stream> {
    let result = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
        Ok(result) => result,
        Err(_) => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "TLS handshake timed out",
        )),
    };
    crate::stats::tls_handshake(result.is_ok());
    result.map(stream::encrypted)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ops::ControlFlow::{Break, Continue};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    /// A protocol that answers each line with its length and `QUIT` with `bye`: the driver alone.
    struct Lengths;

    impl Protocol for Lengths {
        const NAME: &'static str = "TEST";

        async fn feed(&mut self, conn: &mut Connection) -> ControlFlow<()> {
            while let Some(end) = conn.input().iter().position(|&b| b == b'\n') {
                let line = conn.input()[..end].to_vec();
                conn.consume(end + 1);
                if line == b"QUIT" {
                    conn.reply(b"bye\n");
                    conn.close().await;
                    return Break(());
                }
                conn.reply(format!("{}\n", line.len()).as_bytes());
            }
            Continue(())
        }

        fn farewell(&self, why: Farewell, unread: &[u8]) -> Option<Vec<u8>> {
            match why {
                Farewell::TimedOut => Some(b"timeout\n".to_vec()),
                Farewell::Stopping => unread.is_empty().then(|| b"stopping\n".to_vec()),
            }
        }
    }

    const LONG: Duration = Duration::from_secs(60);

    /// A client stream, the session's task, and the server's stop switch.
    async fn session(
        idle: Duration,
        session: Duration,
    ) -> (TcpStream, tokio::task::JoinHandle<()>, watch::Sender<bool>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, addr) = listener.accept().await.unwrap();
        let (stop, stopping) = watch::channel(false);
        let peer = Peer {
            id: "test".into(),
            ip: addr.ip(),
        };
        let conn = Connection::new(
            peer,
            stream::plain(server),
            Limits { idle, session },
            stopping,
        );
        (client, tokio::spawn(serve(conn, Lengths)), stop)
    }

    /// Everything the server writes until it closes (a hang fails the test, not the run).
    async fn read_to_end(client: &mut TcpStream) -> String {
        let mut text = String::new();
        let reading = client.read_to_string(&mut text);
        let read = tokio::time::timeout(Duration::from_secs(20), reading).await;
        read.expect("the session ends").unwrap();
        text
    }

    #[tokio::test]
    async fn pipelined_lines_are_answered_in_order_and_a_split_line_waits_for_its_end() {
        let (mut client, task, _stop) = session(LONG, LONG).await;
        client.write_all(b"a\nbb\ncc").await.unwrap();
        let mut first = [0u8; 4];
        client.read_exact(&mut first).await.unwrap();
        assert_eq!(&first, b"1\n2\n");
        client.write_all(b"c\nQUIT\n").await.unwrap();
        assert_eq!(read_to_end(&mut client).await, "3\nbye\n");
        task.await.unwrap();
    }

    #[tokio::test]
    async fn a_silent_client_gets_the_farewell_after_the_idle_time() {
        let idle = Duration::from_millis(300);
        let (mut client, task, _stop) = session(idle, LONG).await;
        client.write_all(b"abc\n").await.unwrap();
        let started = Instant::now();
        assert_eq!(read_to_end(&mut client).await, "3\ntimeout\n");
        assert!(started.elapsed() >= idle, "{:?}", started.elapsed());
        task.await.unwrap();
    }

    #[tokio::test]
    async fn a_busy_client_is_cut_at_the_session_limit() {
        let limit = Duration::from_millis(400);
        let (mut client, task, _stop) = session(LONG, limit).await;
        let started = Instant::now();
        let mut answers = String::new();
        // Busy: a line every 50 ms, each answered, until the server ends the session.
        while started.elapsed() < Duration::from_secs(20) && !answers.ends_with("timeout\n") {
            if client.write_all(b"x\n").await.is_err() {
                break;
            }
            let mut byte = [0u8; 1];
            while let Ok(1) = client.read(&mut byte).await {
                answers.push(byte[0] as char);
                if byte[0] == b'\n' {
                    break;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(answers.starts_with("1\n1\n"), "{answers:?}");
        assert!(answers.ends_with("timeout\n"), "{answers:?}");
        assert!(started.elapsed() >= limit, "{:?}", started.elapsed());
        task.await.unwrap();
    }

    #[tokio::test]
    async fn stopping_ends_a_resting_session_and_lets_one_with_unread_input_finish() {
        let (mut client, task, stop) = session(LONG, LONG).await;
        client.write_all(b"a\n").await.unwrap();
        let mut answer = [0u8; 2];
        client.read_exact(&mut answer).await.unwrap();
        stop.send(true).unwrap();
        assert_eq!(read_to_end(&mut client).await, "stopping\n");
        task.await.unwrap();

        let (mut client, task, stop) = session(LONG, LONG).await;
        client.write_all(b"partial").await.unwrap();
        // Until the session has read it, "partial" is not unread input yet.
        tokio::time::sleep(Duration::from_millis(200)).await;
        stop.send(true).unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
        client.write_all(b"\nQUIT\n").await.unwrap();
        assert_eq!(read_to_end(&mut client).await, "7\nbye\n");
        task.await.unwrap();
    }
}
