//! TLS client configurations for outbound delivery.
//!
//! Opportunistic TLS (RFC 7435, Postfix's "may") wants two answers from one handshake: encrypt
//! whatever the certificate, and still know (and log) whether it verified. rustls offers no way
//! to take the verifier back out of a finished `ClientConfig`, and a failed handshake kills the
//! connection, so the configuration built here carries [`Verifier`]: it always runs the
//! real webpki check, and fails the handshake on a bad certificate *unless* the handshake runs
//! inside [`lenient`], in which case it writes the reason down for the caller and goes on. The
//! leniency is a tokio task-local, so it belongs to exactly one handshake and can never leak
//! into a strict one running concurrently on the same shared configuration.
//!
//! A certificate in `smtpdelivery.cafile` is both a trust anchor and a pin: a smart host that
//! presents exactly that certificate is trusted even when webpki would refuse it as an end entity
//! (the self-signed `CA:TRUE` certificates OpenSSL 3 makes), with its dates and name still checked.

use std::cell::RefCell;
use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{
    verify_tls12_signature, verify_tls13_signature, CryptoProvider, WebPkiSupportedAlgorithms,
};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::ParsedCertificate;
use rustls::{CertificateError, DigitallySignedStruct, Error, RootCertStore, SignatureScheme};
use rustls_pki_types::pem::PemObject;

tokio::task_local! {
    /// Set while a lenient handshake runs: where the certificate's verification error goes.
    static LENIENT: RefCell<Option<String>>;
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A configuration that verifies server certificates against the system's roots plus the
/// certificates of `extra_ca` (PEM; `smtpdelivery.cafile`), each of which is also accepted as the
/// server's own certificate when presented as such (pinning: see [`verify_pinned`]). System roots that fail to load are
/// logged, not fatal; an unreadable `extra_ca` is an error.
pub fn verifying_config(extra_ca: Option<&Path>) -> Result<Arc<rustls::ClientConfig>, String> {
    let mut roots = RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    for e in &native.errors {
        tracing::warn!("loading the system's CA certificates: {e}");
    }
    let (added, ignored) = roots.add_parsable_certificates(native.certs);
    if ignored > 0 {
        tracing::warn!("{ignored} of the system's CA certificates could not be used");
    }
    let mut pinned = Vec::new();
    if let Some(path) = extra_ca {
        let name = path.display();
        let certs = CertificateDer::pem_file_iter(path).map_err(|e| format!("{name}: {e}"))?;
        for cert in certs {
            let cert = cert.map_err(|e| format!("{name}: {e}"))?;
            roots
                .add(cert.clone())
                .map_err(|e| format!("{name}: {e}"))?;
            pinned.push(cert);
        }
        if pinned.is_empty() {
            return Err(format!("{name}: no certificates in the file"));
        }
    }
    if roots.is_empty() {
        tracing::warn!("no CA certificates: no server certificate will verify");
    } else {
        tracing::debug!("{} CA certificates ({added} from the system)", roots.len());
    }
    let provider = provider();
    let inner = if roots.is_empty() {
        None
    } else {
        let verifier =
            WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                .build()
                .map_err(|e| format!("certificate verifier: {e}"))?;
        Some(verifier)
    };
    let verifier = Verifier {
        policy: Some(Policy {
            webpki: inner,
            pinned,
        }),
        provider: provider.clone(),
    };
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS configuration: {e}"))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// A configuration that accepts any certificate (the handshake signatures are still checked).
/// For tests and for callers that want encryption only.
pub fn insecure_config() -> Arc<rustls::ClientConfig> {
    let provider = provider();
    let verifier = Verifier {
        policy: None,
        provider: provider.clone(),
    };
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("the ring provider supports the default protocol versions")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    Arc::new(config)
}

/// Runs `handshake` so that a certificate that does not verify (with a configuration from
/// [`verifying_config`]) is accepted; returns the handshake's result and the verification error,
/// if there was one. Configurations from elsewhere stay strict.
pub async fn lenient<F: Future>(handshake: F) -> (F::Output, Option<String>) {
    LENIENT
        .scope(RefCell::new(None), async {
            let out = handshake.await;
            let error = LENIENT.with(|slot| slot.borrow_mut().take());
            (out, error)
        })
        .await
}

/// The one certificate verifier behind both configurations. The handshake signatures are
/// always checked (they prove the server holds the certificate's key); `policy` decides what
/// makes the certificate itself acceptable: `None` accepts any ([`insecure_config`]).
#[derive(Debug)]
struct Verifier {
    policy: Option<Policy>,
    provider: Arc<CryptoProvider>,
}

/// The webpki chain check (`webpki` is `None` with no roots at all), or a certificate pinned in
/// `smtpdelivery.cafile`; strict unless inside [`lenient`].
#[derive(Debug)]
struct Policy {
    webpki: Option<Arc<WebPkiServerVerifier>>,
    pinned: Vec<CertificateDer<'static>>,
}

/// A certificate the administrator put in `smtpdelivery.cafile` and the server presents as its
/// own. webpki refuses a CA certificate as an end entity (`CaUsedAsEndEntity`), and that is
/// exactly what `openssl req -x509` makes since OpenSSL 3 (`CA:TRUE`): the usual self-signed
/// smart host would never verify. Byte-equal DER is a stronger tie than any chain, so such a
/// certificate is trusted whatever its CA flag; what a chain check would still catch, dates and
/// name, is checked here.
fn verify_pinned(
    cert: &CertificateDer<'_>,
    server_name: &ServerName<'_>,
    now: UnixTime,
) -> Result<ServerCertVerified, Error> {
    let bad = |e: CertificateError| Error::InvalidCertificate(e);
    let (_, parsed) = x509_parser::parse_x509_certificate(cert)
        .map_err(|_| bad(CertificateError::BadEncoding))?;
    let validity = parsed.validity();
    // Before 1970 counts as 0: such a date only ever starts a validity period.
    let unix = |t: x509_parser::time::ASN1Time| {
        UnixTime::since_unix_epoch(Duration::from_secs(t.timestamp().max(0).unsigned_abs()))
    };
    let (not_before, not_after) = (unix(validity.not_before), unix(validity.not_after));
    if now < not_before {
        let e = CertificateError::NotValidYetContext {
            time: now,
            not_before,
        };
        return Err(bad(e));
    }
    if now > not_after {
        return Err(bad(CertificateError::ExpiredContext {
            time: now,
            not_after,
        }));
    }
    let parsed = ParsedCertificate::try_from(cert)?;
    rustls::client::verify_server_name(&parsed, server_name)?;
    Ok(ServerCertVerified::assertion())
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        let Some(Policy { webpki, pinned }) = &self.policy else {
            return Ok(ServerCertVerified::assertion());
        };
        let chained = match webpki {
            Some(webpki) => webpki.verify_server_cert(
                end_entity,
                intermediates,
                server_name,
                ocsp_response,
                now,
            ),
            None => Err(Error::InvalidCertificate(CertificateError::UnknownIssuer)),
        };
        let result = match chained {
            Err(_) if pinned.iter().any(|p| p.as_ref() == end_entity.as_ref()) => {
                verify_pinned(end_entity, server_name, now)
            }
            other => other,
        };
        // Inside [`lenient`] a certificate that did not verify is written down and accepted.
        result.or_else(|e| {
            let reason = e.to_string();
            match LENIENT.try_with(|slot| *slot.borrow_mut() = Some(reason)) {
                Ok(()) => Ok(ServerCertVerified::assertion()),
                Err(_) => Err(e),
            }
        })
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_tls12_signature(message, cert, dss, self.algorithms())
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_tls13_signature(message, cert, dss, self.algorithms())
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms().supported_schemes()
    }
}

impl Verifier {
    /// The provider's signature algorithms, for the handshake signatures.
    fn algorithms(&self) -> &WebPkiSupportedAlgorithms {
        &self.provider.signature_verification_algorithms
    }
}

/// `config` for one lenient handshake: without session resumption, so that a session whose
/// certificate did not verify is never resumed later as though it had been checked.
pub fn for_lenient_handshake(config: &Arc<rustls::ClientConfig>) -> Arc<rustls::ClientConfig> {
    let mut config = (**config).clone();
    config.resumption = rustls::client::Resumption::disabled();
    Arc::new(config)
}
