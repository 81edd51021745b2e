//! A scripted SMTP server for the client's tests.
//!
//! A script is followed to the letter: it reads exactly the lines it expects before it answers,
//! so a client that waits for a reply the script has not sent yet (say, one that does not
//! pipeline when the server said PIPELINING) hangs and fails on its timeout instead of passing
//! by luck. Everything the server receives is recorded, decrypted, with a `<TLS>` line where
//! the handshake happened, so tests can check the bytes on the wire exactly.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

use super::{ClientSettings, Target, Timeouts};
use crate::config::mail::DeliveryTls;

#[derive(Debug, Clone)]
pub enum Step {
    /// Write these bytes in one write.
    Send(&'static str),
    /// Read this many lines.
    Recv(usize),
    /// Read message data up to and including the terminating `.` line.
    RecvData,
    /// Read one `BDAT size [LAST]` line and exactly its chunk.
    RecvChunk,
    /// TLS handshake as the server.
    StartTls,
    /// Close the connection.
    Close,
}

pub use Step::*;

/// A self-signed certificate for `localhost`: (certificate PEM, server acceptor).
pub fn self_signed() -> (String, TlsAcceptor) {
    let key = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).expect("rcgen");
    acceptor(&key.cert, &key.signing_key)
}

/// A self-signed certificate made from `params` (names, CA flag, dates), as
/// `openssl req -x509` would make it: (certificate PEM, server acceptor).
pub fn self_signed_with(params: rcgen::CertificateParams) -> (String, TlsAcceptor) {
    let key = rcgen::KeyPair::generate().expect("key");
    let cert = params.self_signed(&key).expect("self-signed");
    acceptor(&cert, &key)
}

fn acceptor(cert: &rcgen::Certificate, key: &rcgen::KeyPair) -> (String, TlsAcceptor) {
    let der = CertificateDer::from(cert.der().to_vec());
    let private = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(vec![der], private)
        .expect("server config");
    (cert.pem(), TlsAcceptor::from(Arc::new(config)))
}

/// A server on 127.0.0.1 that plays one script per connection, in order. The handle yields
/// the transcript of each connection.
pub async fn serve(
    scripts: Vec<Vec<Step>>,
    tls: Option<TlsAcceptor>,
) -> (SocketAddr, JoinHandle<Vec<String>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let handle = tokio::spawn(async move {
        let mut transcripts = Vec::new();
        for script in scripts {
            let (tcp, _) = listener.accept().await.expect("accept");
            let log = Arc::new(Mutex::new(Vec::new()));
            let mut reader = BufReader::new(tcp);
            let rest = play(&mut reader, &script, &log).await;
            if let Some(rest) = rest {
                let acceptor = tls.clone().expect("a TLS acceptor for StartTls");
                // Whatever the client sent before the handshake is dropped with the buffer.
                match acceptor.accept(reader.into_inner()).await {
                    Ok(stream) => {
                        log.lock().unwrap().extend_from_slice(b"<TLS>\r\n");
                        let mut reader = BufReader::new(stream);
                        if play(&mut reader, &script[rest..], &log).await.is_none() {
                            drain(&mut reader, &log).await;
                        }
                    }
                    Err(e) => log
                        .lock()
                        .unwrap()
                        .extend_from_slice(format!("<TLS failed: {e}>\r\n").as_bytes()),
                }
            } else {
                drain(&mut reader, &log).await;
            }
            let bytes = log.lock().unwrap().clone();
            transcripts.push(String::from_utf8_lossy(&bytes).into_owned());
        }
        transcripts
    });
    (addr, handle)
}

/// Plays `script` until its end (`None`) or a `StartTls` (the index after it).
async fn play<S: AsyncRead + AsyncWrite + Unpin>(
    reader: &mut BufReader<S>,
    script: &[Step],
    log: &Arc<Mutex<Vec<u8>>>,
) -> Option<usize> {
    for (i, step) in script.iter().enumerate() {
        match step {
            Send(text) => {
                let stream = reader.get_mut();
                if stream.write_all(text.as_bytes()).await.is_err() {
                    return None;
                }
                let _ = stream.flush().await;
            }
            Recv(n) => {
                for _ in 0..*n {
                    let mut line = Vec::new();
                    match reader.read_until(b'\n', &mut line).await {
                        Ok(0) | Err(_) => return None,
                        Ok(_) => log.lock().unwrap().extend_from_slice(&line),
                    }
                }
            }
            RecvData => loop {
                let mut line = Vec::new();
                match reader.read_until(b'\n', &mut line).await {
                    Ok(0) | Err(_) => return None,
                    Ok(_) => {
                        log.lock().unwrap().extend_from_slice(&line);
                        if line == b".\r\n" {
                            break;
                        }
                    }
                }
            },
            RecvChunk => {
                let mut line = Vec::new();
                match reader.read_until(b'\n', &mut line).await {
                    Ok(0) | Err(_) => return None,
                    Ok(_) => log.lock().unwrap().extend_from_slice(&line),
                }
                let size = String::from_utf8_lossy(&line)
                    .split_ascii_whitespace()
                    .nth(1)
                    .and_then(|n| n.parse::<usize>().ok())
                    .expect("BDAT size");
                let mut chunk = vec![0; size];
                if reader.read_exact(&mut chunk).await.is_err() {
                    return None;
                }
                log.lock().unwrap().extend_from_slice(&chunk);
            }
            StartTls => return Some(i + 1),
            Close => {
                let _ = reader.get_mut().shutdown().await;
                return None;
            }
        }
    }
    None
}

/// After the script: record what else comes (QUIT, RSET…), answer each line, until EOF.
async fn drain<S: AsyncRead + AsyncWrite + Unpin>(
    reader: &mut BufReader<S>,
    log: &Arc<Mutex<Vec<u8>>>,
) {
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            let mut line = Vec::new();
            match reader.read_until(b'\n', &mut line).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    log.lock().unwrap().extend_from_slice(&line);
                    let reply: &[u8] = if line.eq_ignore_ascii_case(b"QUIT\r\n") {
                        b"221 2.0.0 bye\r\n"
                    } else {
                        b"250 2.0.0 ok\r\n"
                    };
                    if reader.get_mut().write_all(reply).await.is_err() {
                        break;
                    }
                }
            }
        }
        let mut rest = Vec::new();
        let _ = reader.read_to_end(&mut rest).await;
    })
    .await;
}

pub fn settings(tls: DeliveryTls, verifying: Arc<rustls::ClientConfig>) -> ClientSettings {
    let t = Duration::from_secs(5);
    ClientSettings {
        helo_name: "jes.test".to_string(),
        tls,
        verifying,
        timeouts: Timeouts {
            connect: t,
            greeting: t,
            command: t,
            mail: t,
            rcpt: t,
            data_init: t,
            data_block: t,
            data_end: t,
        },
    }
}

pub fn target(addr: SocketAddr) -> Target {
    Target {
        host: "localhost".to_string(),
        addr,
        implicit_tls: false,
        credentials: None,
        smart_host: false,
    }
}

/// Captures `tracing` output on this thread (tokio tests run on one thread) while alive.
pub struct Logs {
    buf: Arc<Mutex<Vec<u8>>>,
    _guard: tracing::subscriber::DefaultGuard,
}

impl Logs {
    pub fn capture() -> Logs {
        // tracing caches per call site whether anyone listens. With only thread-scoped
        // subscribers, a call site first reached on another test's thread is cached as
        // "never" and our thread misses it; a global subscriber that listens to everything
        // (and writes nowhere) keeps every call site alive.
        static GLOBAL: std::sync::Once = std::sync::Once::new();
        GLOBAL.call_once(|| {
            let everything = tracing_subscriber::fmt()
                .with_max_level(tracing::Level::TRACE)
                .with_writer(std::io::sink)
                .finish();
            let _ = tracing::subscriber::set_global_default(everything);
        });
        let buf = Arc::new(Mutex::new(Vec::new()));
        let sink = buf.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_max_level(tracing::Level::DEBUG)
            .with_writer(move || Sink(sink.clone()))
            .finish();
        let guard = tracing::subscriber::set_default(subscriber);
        Logs { buf, _guard: guard }
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.buf.lock().unwrap()).into_owned()
    }
}

struct Sink(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Sink {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
