//! The server's TLS certificate for STARTTLS, STLS and the implicit-TLS ports.
//!
//! The certificate and key come from `tls.certificate` / `tls.key` (PEM). Without them, jes makes a
//! self-signed certificate for its host name on first start and keeps it in `<config>/tls/`, so
//! passwords never have to cross the network in clear even on a fresh install, and the same
//! certificate survives restarts (clients that pinned it keep working). The files are watched by
//! modification time: a renewed certificate is picked up without a restart, and a broken one
//! leaves the running certificate in place.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::config::Config;

/// Where the certificate and key are, and whether jes made them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub certificate: PathBuf,
    pub key: PathBuf,
    pub generated: bool,
}

impl TlsFiles {
    pub fn for_config(config: &Config) -> TlsFiles {
        match (&config.mail.tls_certificate, &config.mail.tls_key) {
            (Some(certificate), Some(key)) => TlsFiles {
                certificate: certificate.clone(),
                key: key.clone(),
                generated: false,
            },
            _ => TlsFiles {
                certificate: config.generated_tls_dir().join("selfsigned-cert.pem"),
                key: config.generated_tls_dir().join("selfsigned-key.pem"),
                generated: true,
            },
        }
    }

    /// Modification times of both files: a change means "reload".
    pub fn stamp(&self) -> Option<(SystemTime, SystemTime)> {
        let m = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
        Some((m(&self.certificate)?, m(&self.key)?))
    }
}

/// A loaded certificate, ready for handshakes.
pub struct ServerTls {
    pub files: TlsFiles,
    pub config: Arc<ServerConfig>,
    pub stamp: Option<(SystemTime, SystemTime)>,
}

/// Loads the configured certificate, or makes (first start) and loads the self-signed one.
pub fn load_or_create(config: &Config) -> Result<ServerTls, String> {
    let files = TlsFiles::for_config(config);
    if files.generated && !(files.certificate.exists() && files.key.exists()) {
        create_self_signed(config, &files)?;
        tracing::info!(
            "made a self-signed TLS certificate for {} in {} (set tls.certificate and tls.key to use your own)",
            config.mail.hostname,
            files.certificate.display()
        );
    }
    let server_config = load(&files)?;
    Ok(ServerTls {
        stamp: files.stamp(),
        files,
        config: server_config,
    })
}

fn load(files: &TlsFiles) -> Result<Arc<ServerConfig>, String> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&files.certificate)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| {
            format!(
                "{}: cannot read the certificate: {e}",
                files.certificate.display()
            )
        })?;
    if certs.is_empty() {
        return Err(format!(
            "{}: no certificate in the file",
            files.certificate.display()
        ));
    }
    let key = PrivateKeyDer::from_pem_file(&files.key)
        .map_err(|e| format!("{}: cannot read the private key: {e}", files.key.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup: {e}"))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| {
            format!(
                "{} and {} do not make a usable certificate: {e}",
                files.certificate.display(),
                files.key.display()
            )
        })?;
    Ok(Arc::new(config))
}

/// Checks, without writing anything, that `load_or_create` would succeed on the certificate:
/// the configured (or already made) files are readable, parse, and the key matches; or, on a
/// first start, that a self-signed certificate can be made for `hostname` and the domains.
/// Whether `tls/` can be written is the folder check's business (`crate::preflight`).
pub fn check(config: &Config) -> Result<(), String> {
    let files = TlsFiles::for_config(config);
    if files.generated && !(files.certificate.exists() && files.key.exists()) {
        make_self_signed(config).map(|_| ())
    } else {
        load(&files).map(|_| ())
    }
}

/// A self-signed certificate for `hostname` and the local domains, in memory.
fn make_self_signed(config: &Config) -> Result<rcgen::CertifiedKey<rcgen::KeyPair>, String> {
    let unbracket = crate::config::hostname::unbracket;
    let mut names = vec![unbracket(&config.mail.hostname).to_string()];
    for d in &config.mail.domains {
        let d = unbracket(d).to_string();
        if !names.contains(&d) {
            names.push(d);
        }
    }
    // The subject names the host (rcgen's default subject is a fixed placeholder), so that a
    // client showing the certificate tells an administrator whose it is.
    (|| {
        let mut params = rcgen::CertificateParams::new(names.clone())?;
        let mut subject = rcgen::DistinguishedName::new();
        subject.push(rcgen::DnType::CommonName, names[0].clone());
        subject.push(rcgen::DnType::OrganizationName, "jes self-signed");
        params.distinguished_name = subject;
        let signing_key = rcgen::KeyPair::generate()?;
        let cert = params.self_signed(&signing_key)?;
        Ok::<_, rcgen::Error>(rcgen::CertifiedKey { cert, signing_key })
    })()
    .map_err(|e| {
        format!(
            "cannot make a self-signed certificate for {}: {e}",
            names.join(", ")
        )
    })
}

fn create_self_signed(config: &Config, files: &TlsFiles) -> Result<(), String> {
    let made = make_self_signed(config)?;
    if let Some(dir) = files.certificate.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    write_private(&files.key, made.signing_key.serialize_pem().as_bytes())?;
    write_private(&files.certificate, made.cert.pem().as_bytes())?;
    Ok(())
}

/// Writes a file readable by its owner only, durably (directory fsync included).
fn write_private(path: &Path, bytes: &[u8]) -> Result<(), String> {
    crate::durable::replace_file(path, bytes, false).map_err(|e| e.to_string())
}

/// Reloads when the files changed; returns the new state or None when nothing changed.
pub fn reload_if_changed(
    current: &ServerTls,
    config: &Config,
) -> Option<Result<ServerTls, String>> {
    let files = TlsFiles::for_config(config);
    if files == current.files && files.stamp() == current.stamp {
        return None;
    }
    Some(load_or_create(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config_in(dir: &Path) -> Config {
        std::fs::write(
            dir.join("mail.conf"),
            "domains=localhost\nhostname=mail.example.test\n",
        )
        .unwrap();
        Config::load(dir).unwrap().0
    }

    #[test]
    fn makes_a_self_signed_certificate_once_and_keeps_it() {
        let dir = tempfile::tempdir().unwrap();
        let config = config_in(dir.path());
        let first = load_or_create(&config).unwrap();
        assert!(first.files.generated);
        let pem = std::fs::read_to_string(&first.files.certificate).unwrap();
        let second = load_or_create(&config).unwrap();
        assert_eq!(
            std::fs::read_to_string(&second.files.certificate).unwrap(),
            pem,
            "kept across starts"
        );
        assert!(
            reload_if_changed(&second, &config).is_none(),
            "no change, no reload"
        );
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&first.files.key)
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "the key is private: {mode:o}");
    }

    #[test]
    fn a_broken_certificate_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("c.pem"), "not a certificate").unwrap();
        std::fs::write(dir.path().join("k.pem"), "not a key").unwrap();
        std::fs::write(
            dir.path().join("mail.conf"),
            "domains=localhost\ntls.certificate=c.pem\ntls.key=k.pem\n",
        )
        .unwrap();
        let config = Config::load(dir.path()).unwrap().0;
        let err = load_or_create(&config).err().expect("an error");
        assert!(err.contains("c.pem"), "{err}");
    }
}
