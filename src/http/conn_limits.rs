//! Connection limits for the HTTP listener, which hyper does not have on its own: a cap on open
//! connections in all and from one client address, and a byte-silence timeout on each.
//!
//! They live below HTTP, in the accept loop and the stream, so that no request handler can forget
//! them. Every connection is accepted at once: one over a limit is closed straight away instead of
//! waiting in the kernel's accept queue, where it would sit in front of the administrator's own
//! request. The third guard, a deadline for the whole request head (`HEAD_TIMEOUT`), is hyper's
//! (`http1::Builder::header_read_timeout`, set in `mod.rs`): the silence timeout here restarts on
//! every byte, so a client trickling one header line every few seconds would pass it forever.
//! The console's limits exempt nobody (`limits.exempt` is for the mail ports): the console is
//! for people, and 32 connections are far more than a browser opens.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::{Instant, Sleep};

use crate::shared::{normalize_ip, ConnGuard, ConnLimits, LimitHit};

/// Open HTTP connections at once, from everywhere: each idle one costs a few kilobytes.
pub const MAX_CONNECTIONS: usize = 512;
/// Open HTTP connections from one client address: a browser uses a handful.
pub const MAX_PER_ADDRESS: usize = 32;
/// Time for a whole request head to arrive, from the connection's start or the previous response.
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(10);
/// Silence after which a connection is closed (a request body that stalls).
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// Accepts the next connection within the limits; connections over them are closed at once.
pub async fn accept(
    listener: &TcpListener,
    limits: &Arc<ConnLimits>,
    idle: Duration,
) -> (LimitedStream, SocketAddr) {
    loop {
        match listener.accept().await {
            Ok((stream, addr)) => {
                let ip = normalize_ip(addr.ip());
                match limits.try_acquire(ip, MAX_CONNECTIONS, MAX_PER_ADDRESS) {
                    Ok(guard) => {
                        let _ = stream.set_nodelay(true);
                        return (LimitedStream::new(stream, guard, idle), addr);
                    }
                    // Dropping the stream closes it; a flood must not flood the log too.
                    Err(LimitHit::PerAddress) => {
                        tracing::debug!(client = %ip, "HTTP console: too many connections from one address; closed")
                    }
                    Err(LimitHit::Total) => {
                        tracing::debug!(client = %ip, "HTTP console: too many connections; closed")
                    }
                }
            }
            // Out of descriptors and the like: wait instead of spinning, as axum does.
            Err(e) => {
                tracing::warn!("HTTP console: accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// A TCP stream that fails its reads with `TimedOut` after `idle` without a byte, and gives its
/// place in the limits back when dropped.
pub struct LimitedStream {
    stream: TcpStream,
    idle: Duration,
    deadline: Pin<Box<Sleep>>,
    _guard: ConnGuard,
}

impl LimitedStream {
    fn new(stream: TcpStream, guard: ConnGuard, idle: Duration) -> Self {
        LimitedStream {
            stream,
            idle,
            deadline: Box::pin(tokio::time::sleep(idle)),
            _guard: guard,
        }
    }
}

impl AsyncRead for LimitedStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.stream).poll_read(cx, buf) {
            Poll::Ready(result) => {
                if result.is_ok() && buf.filled().len() > before {
                    let next = Instant::now() + self.idle;
                    self.deadline.as_mut().reset(next);
                }
                Poll::Ready(result)
            }
            Poll::Pending => match self.deadline.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "HTTP connection idle too long",
                ))),
                Poll::Pending => Poll::Pending,
            },
        }
    }
}

impl AsyncWrite for LimitedStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn listener() -> (TcpListener, SocketAddr, Arc<ConnLimits>) {
        let inner = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = inner.local_addr().unwrap();
        (inner, addr, Arc::new(ConnLimits::default()))
    }

    #[tokio::test]
    async fn a_silent_connection_times_out_and_a_talking_one_does_not() {
        let (l, addr, limits) = listener().await;
        let mut client = TcpStream::connect(addr).await.unwrap();
        let (mut server, _) = accept(&l, &limits, Duration::from_millis(200)).await;
        // Bytes keep arriving more often than the idle time: no timeout.
        for _ in 0..4 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            client.write_all(b"x").await.unwrap();
            let mut one = [0u8; 1];
            server.read_exact(&mut one).await.unwrap();
        }
        let mut rest = [0u8; 1];
        let err = server.read(&mut rest).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
    }

    #[tokio::test]
    async fn connections_beyond_the_per_address_cap_are_closed_at_once() {
        let (l, addr, limits) = listener().await;
        let mut held = Vec::new();
        let mut clients = Vec::new();
        for _ in 0..MAX_PER_ADDRESS {
            clients.push(TcpStream::connect(addr).await.unwrap());
            held.push(accept(&l, &limits, IDLE_TIMEOUT).await.0);
        }
        assert_eq!(limits.open(), MAX_PER_ADDRESS);
        // One more from the same address: accepted and closed, and `accept` goes on waiting.
        let mut over = TcpStream::connect(addr).await.unwrap();
        let waited = tokio::time::timeout(
            Duration::from_millis(300),
            accept(&l, &limits, IDLE_TIMEOUT),
        )
        .await;
        assert!(waited.is_err(), "no connection over the cap is handed out");
        let mut buf = [0u8; 1];
        let n = tokio::time::timeout(Duration::from_secs(2), over.read(&mut buf))
            .await
            .expect("the extra connection is closed, not left waiting");
        assert!(matches!(n, Ok(0) | Err(_)), "closed: {n:?}");
        // A place comes back when a connection ends.
        held.pop();
        let _again = TcpStream::connect(addr).await.unwrap();
        let next =
            tokio::time::timeout(Duration::from_secs(2), accept(&l, &limits, IDLE_TIMEOUT)).await;
        assert!(next.is_ok(), "a freed place is used again");
    }
}
