//! The one stream type of a mail connection: plain or TLS, server side or client side.
//!
//! SMTP and POP3 start in clear and may switch to TLS in the middle (STARTTLS, STLS), as a server
//! and as the outbound client; the implicit-TLS ports start encrypted. One type for all of them,
//! tokio-util's `Either` over the TCP stream and tokio-rustls's client-or-server `TlsStream`, lets
//! the server's connection driver and the outbound client read and write without caring which it
//! is, with no pass-through code of our own. The TLS side is boxed: rustls's state is large, and
//! an idle plain connection (there may be ten thousand) should not carry room for it.

use tokio::net::TcpStream;
use tokio_rustls::TlsStream;
use tokio_util::either::Either;

/// A connection's byte stream: `Left` in clear, `Right` once TLS is on.
pub type Stream = Either<TcpStream, Box<TlsStream<TcpStream>>>;

/// A stream in clear.
pub fn plain(tcp: TcpStream) -> Stream {
    Either::Left(tcp)
}

/// A stream after a TLS handshake, as a server (`server::TlsStream`) or a client.
pub fn encrypted(tls: impl Into<TlsStream<TcpStream>>) -> Stream {
    Either::Right(Box::new(tls.into()))
}

/// The TCP stream of a connection still in clear (for its TLS handshake), or the stream back when
/// TLS is already on.
pub fn into_plain(stream: Stream) -> Result<TcpStream, Stream> {
    match stream {
        Either::Left(tcp) => Ok(tcp),
        tls => Err(tls),
    }
}

/// The negotiated TLS version as [`version_name`] spells it, or `None` in clear.
pub fn tls_version(stream: &Stream) -> Option<&'static str> {
    match stream {
        Either::Left(_) => None,
        Either::Right(tls) => Some(version_name(tls.get_ref().1.protocol_version())),
    }
}

/// How log lines name a connection's TLS: `TLSv1.3`, `TLSv1.2` (OpenSSL's and Postfix's
/// spelling, which administrators grep for), or `none` for plain text.
pub fn version_name(version: Option<rustls::ProtocolVersion>) -> &'static str {
    match version {
        None => "none",
        Some(rustls::ProtocolVersion::TLSv1_3) => "TLSv1.3",
        Some(rustls::ProtocolVersion::TLSv1_2) => "TLSv1.2",
        // rustls negotiates nothing else; a future version still says TLS was on.
        Some(_) => "TLS",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_names() {
        assert_eq!(version_name(None), "none");
        assert_eq!(
            version_name(Some(rustls::ProtocolVersion::TLSv1_3)),
            "TLSv1.3"
        );
        assert_eq!(
            version_name(Some(rustls::ProtocolVersion::TLSv1_2)),
            "TLSv1.2"
        );
    }

    #[tokio::test]
    async fn a_plain_stream_says_no_tls_and_gives_its_tcp_stream_back() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tcp, _) = tokio::join!(TcpStream::connect(addr), listener.accept());
        let stream = plain(tcp.unwrap());
        assert_eq!(tls_version(&stream), None);
        assert!(into_plain(stream).is_ok());
    }
}
