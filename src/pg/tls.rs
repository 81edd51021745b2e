//! The rustls connector behind `sslmode`: what each libpq mode checks of the server's certificate.
//!
//! `prefer` and `require` encrypt without checking the certificate (libpq's meaning), except
//! that `require` with an `sslrootcert` checks the chain as `verify-ca` does (libpq does the
//! same when a root certificate is there). `verify-ca` checks the chain against `sslrootcert`
//! (or the system's roots) but not the name; `verify-full` checks both. Handshake signatures are
//! always checked.

use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, Error, RootCertStore, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use tokio_postgres_rustls::MakeRustlsConnect;

use super::url::SslMode;

/// The connector for `mode` (also used, unused, with `disable`: tokio-postgres then never
/// starts TLS).
pub fn connector(mode: SslMode, root_cert: Option<&Path>) -> Result<MakeRustlsConnect, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let check = match (mode, root_cert) {
        (SslMode::Disable | SslMode::Prefer, _) | (SslMode::Require, None) => Check::Nothing,
        (SslMode::Require | SslMode::VerifyCa, _) => Check::Chain(webpki(root_cert, &provider)?),
        (SslMode::VerifyFull, _) => Check::Full(webpki(root_cert, &provider)?),
    };
    let verifier = Verifier {
        check,
        provider: provider.clone(),
    };
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS configuration: {e}"))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    Ok(MakeRustlsConnect::new(config))
}

/// A chain verifier over `root_cert` (PEM), or over the system's roots without one.
fn webpki(
    root_cert: Option<&Path>,
    provider: &Arc<CryptoProvider>,
) -> Result<Arc<WebPkiServerVerifier>, String> {
    let mut roots = RootCertStore::empty();
    match root_cert {
        Some(path) => {
            let name = path.display();
            let certs = CertificateDer::pem_file_iter(path).map_err(|e| format!("{name}: {e}"))?;
            for cert in certs {
                let cert = cert.map_err(|e| format!("{name}: {e}"))?;
                roots.add(cert).map_err(|e| format!("{name}: {e}"))?;
            }
            if roots.is_empty() {
                return Err(format!("{name}: no certificates in the file"));
            }
        }
        None => {
            let native = rustls_native_certs::load_native_certs();
            roots.add_parsable_certificates(native.certs);
            if roots.is_empty() {
                return Err("no sslrootcert and no system CA certificates to verify the database server with".into());
            }
        }
    }
    WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| format!("certificate verifier: {e}"))
}

#[derive(Debug)]
enum Check {
    Nothing,
    /// The chain, not the name (`verify-ca`).
    Chain(Arc<WebPkiServerVerifier>),
    Full(Arc<WebPkiServerVerifier>),
}

#[derive(Debug)]
struct Verifier {
    check: Check,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        match &self.check {
            Check::Nothing => Ok(ServerCertVerified::assertion()),
            Check::Full(v) => {
                v.verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
            }
            Check::Chain(v) => {
                match v.verify_server_cert(end_entity, intermediates, server_name, ocsp, now) {
                    Err(Error::InvalidCertificate(
                        CertificateError::NotValidForName
                        | CertificateError::NotValidForNameContext { .. },
                    )) => Ok(ServerCertVerified::assertion()),
                    other => other,
                }
            }
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
