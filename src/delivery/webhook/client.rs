//! One webhook POST over hyper's connection-level client: a fresh connection per call (a call is
//! rare next to its 10 s budget, and a fresh connection follows DNS and certificate changes), no
//! redirects (a 3xx is an answer, and not a 2xx), the whole exchange under one timeout.
//!
//! `https://` is verified by the same rustls configuration as outbound SMTP
//! (`delivery::client::verifying_config`: the system roots plus `smtpdelivery.cafile`), strictly:
//! no opportunistic fallback for an application endpoint. hyper and hyper-util are already the
//! console's server; their client halves avoid a second HTTP stack (reqwest would bring its own).

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::Request;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};

/// The whole call: connect, TLS, request, response head.
pub const TIMEOUT: Duration = Duration::from_secs(10);
/// How much of a response body is read (for the log line); the rest is dropped.
const BODY_MAX: usize = 200;

pub const USER_AGENT: &str = concat!("jes/", env!("CARGO_PKG_VERSION"), " (webhook)");

/// What the receiver answered.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    /// The status line and the start of the body, for the log and the history.
    pub summary: String,
    pub ip: Option<IpAddr>,
    pub tls: Option<String>,
}

/// Why there was no answer, with what is known of the connection.
#[derive(Debug, Clone)]
pub struct Failure {
    pub reason: String,
    pub ip: Option<IpAddr>,
}

/// Makes calls; keeps the verifying TLS configuration for the `smtpdelivery.cafile` it was built
/// for (loading the system roots reads a folder of files).
#[derive(Default)]
pub struct Client {
    tls: Mutex<Option<(Option<PathBuf>, Arc<rustls::ClientConfig>)>>,
}

impl Client {
    fn tls_config(
        &self,
        cafile: Option<&std::path::Path>,
    ) -> Result<Arc<rustls::ClientConfig>, String> {
        let mut cached = self.tls.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((path, config)) = cached.as_ref() {
            if path.as_deref() == cafile {
                return Ok(config.clone());
            }
        }
        let config = crate::delivery::client::verifying_config(cafile)?;
        *cached = Some((cafile.map(PathBuf::from), config.clone()));
        Ok(config)
    }

    /// POSTs `body` to `url` with `headers` (besides Host, Content-Type, Content-Length and
    /// User-Agent), within [`TIMEOUT`].
    pub async fn post(
        &self,
        url: &str,
        headers: &[(&str, String)],
        body: Vec<u8>,
        cafile: Option<&std::path::Path>,
    ) -> Result<Answer, Failure> {
        let mut ip = None;
        let result =
            tokio::time::timeout(TIMEOUT, self.exchange(url, headers, body, cafile, &mut ip)).await;
        match result {
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(reason)) => Err(Failure { reason, ip }),
            Err(_) => Err(Failure {
                reason: format!("no answer within {} s", TIMEOUT.as_secs()),
                ip,
            }),
        }
    }

    async fn exchange(
        &self,
        url: &str,
        headers: &[(&str, String)],
        body: Vec<u8>,
        cafile: Option<&std::path::Path>,
        ip: &mut Option<IpAddr>,
    ) -> Result<Answer, String> {
        let uri: hyper::Uri = url.parse().map_err(|e| format!("bad URL: {e}"))?;
        let https = uri.scheme_str() == Some("https");
        let host = uri.host().ok_or("the URL has no host")?;
        // `[::1]` in a URL is `::1` to connect to and to name in TLS.
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host((bare, port))
            .await
            .map_err(|e| format!("cannot resolve {bare}: {e}"))?
            .collect();
        let mut last = format!("{bare} has no address");
        let mut tcp = None;
        for addr in addrs {
            match tokio::net::TcpStream::connect(addr).await {
                Ok(s) => {
                    *ip = Some(addr.ip());
                    tcp = Some(s);
                    break;
                }
                Err(e) => last = format!("cannot connect to {addr}: {e}"),
            }
        }
        let tcp = tcp.ok_or(last)?;
        let _ = tcp.set_nodelay(true);
        let authority = uri
            .authority()
            .map(|a| a.as_str().to_string())
            .unwrap_or_default();
        let path = uri
            .path_and_query()
            .map(|p| p.as_str().to_string())
            .unwrap_or_else(|| "/".into());
        let mut request = Request::post(path)
            .header(hyper::header::HOST, authority)
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .header(hyper::header::USER_AGENT, USER_AGENT)
            .header(hyper::header::CONTENT_LENGTH, body.len());
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        let request = request
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| format!("cannot build the request: {e}"))?;
        if https {
            let config = self.tls_config(cafile)?;
            let name = rustls::pki_types::ServerName::try_from(bare.to_string())
                .map_err(|e| format!("{bare} cannot be a TLS name: {e}"))?;
            let stream = tokio_rustls::TlsConnector::from(config)
                .connect(name, tcp)
                .await
                .map_err(|e| format!("TLS with {bare}: {e}"))?;
            let version = Some(
                crate::stream::version_name(stream.get_ref().1.protocol_version()).to_string(),
            );
            let mut answer = send(stream, request).await?;
            answer.tls = version;
            answer.ip = *ip;
            Ok(answer)
        } else {
            let mut answer = send(tcp, request).await?;
            answer.ip = *ip;
            Ok(answer)
        }
    }
}

async fn send<S>(stream: S, request: Request<Full<Bytes>>) -> Result<Answer, String>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("HTTP: {e}"))?;
    let driver = tokio::spawn(conn);
    let result = async {
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| format!("HTTP: {e}"))?;
        let status = response.status();
        let mut summary = format!(
            "HTTP {} {}",
            status.as_u16(),
            status.canonical_reason().unwrap_or("")
        )
        .trim_end()
        .to_string();
        // A short look at the body: receivers often say why they refused.
        let mut body = response.into_body();
        let mut seen = Vec::new();
        while seen.len() < BODY_MAX {
            match body.frame().await {
                Some(Ok(frame)) => {
                    if let Some(data) = frame.data_ref() {
                        seen.extend_from_slice(data);
                    }
                }
                _ => break,
            }
        }
        let text: String = String::from_utf8_lossy(&seen)
            .chars()
            .filter(|c| !c.is_control())
            .take(BODY_MAX)
            .collect();
        if !text.trim().is_empty() {
            summary = format!("{summary}: {}", text.trim());
        }
        Ok(Answer {
            status: status.as_u16(),
            summary,
            ip: None,
            tls: None,
        })
    }
    .await;
    driver.abort();
    result
}
