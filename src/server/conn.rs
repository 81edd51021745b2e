//! One client connection, plain or TLS, as a single stream the drivers read and write in turn.
//!
//! SMTP and POP3 never read and write at the same time, so the drivers keep one stream and their
//! own output buffer (flushed before each read, which is what pipelining needs) instead of split
//! halves. That also makes STARTTLS/STLS a plain move: the TCP stream goes into the TLS acceptor
//! and comes back wrapped.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

/// How long a client may take to finish a TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);

pub enum Conn {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl Conn {
    pub fn is_tls(&self) -> bool {
        matches!(self, Conn::Tls(_))
    }

    /// The negotiated TLS version (`TLSv1.3`, `TLSv1.2`), or `None` on a plain connection.
    pub fn tls_version(&self) -> Option<String> {
        match self {
            Conn::Plain(_) => None,
            Conn::Tls(s) => {
                Some(crate::stream::version_name(s.get_ref().1.protocol_version()).to_string())
            }
        }
    }

    /// Upgrades a plain connection (STARTTLS, STLS, or an implicit-TLS port).
    pub async fn start_tls(self, acceptor: TlsAcceptor) -> io::Result<Conn> {
        match self {
            Conn::Plain(tcp) => {
                let tls = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp))
                    .await
                    .map_err(|_| {
                        io::Error::new(io::ErrorKind::TimedOut, "TLS handshake timed out")
                    })??;
                Ok(Conn::Tls(Box::new(tls)))
            }
            Conn::Tls(_) => Err(io::Error::other("TLS is already on")),
        }
    }

    /// Writes and empties `out`.
    pub async fn flush_out(&mut self, out: &mut Vec<u8>) -> io::Result<()> {
        if !out.is_empty() {
            self.write_all(out).await?;
            out.clear();
        }
        self.flush().await
    }
}

impl AsyncRead for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_flush(cx),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}
