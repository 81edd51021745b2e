//! `jes dkim keygen`: a new key pair and the DNS record that publishes it.
//!
//! RSA keys come from RustCrypto's `rsa` (ring signs with RSA but cannot make a key) and are
//! written as PKCS#1 PEM, the form OpenDKIM writes, so the file also works there; Ed25519 keys
//! come from ring (through mail-auth) as PKCS#8. The private key is created with mode 0600 and
//! never overwrites a file: a key replaced by mistake breaks every signature already in DNS.
//! The printing is `crate::cli::dkim`'s.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use super::Key;

/// `--algorithm`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    Rsa,
    Ed25519,
}

/// What `generate` made.
#[derive(Debug)]
pub struct Generated {
    pub domain: String,
    pub selector: String,
    /// Where the private key was written.
    pub path: PathBuf,
    /// The key file as `mail.conf` names it (relative to the configuration folder).
    pub conf_path: String,
    /// `v=DKIM1; k=...; p=...`.
    pub record: String,
}

impl Generated {
    /// `dkim.DOMAIN=SELECTOR:FILE`.
    pub fn conf_line(&self) -> String {
        format!("dkim.{}={}:{}", self.domain, self.selector, self.conf_path)
    }

    /// The record in zone-file form: the value cut into strings of at most 255 octets (RFC 1035
    /// character-strings), which DNS servers join back into one.
    pub fn zone_line(&self) -> String {
        let strings: Vec<String> = self
            .record
            .as_bytes()
            .chunks(255)
            .map(|c| format!("\"{}\"", String::from_utf8_lossy(c)))
            .collect();
        format!(
            "{}._domainkey.{}. IN TXT ( {} )",
            self.selector,
            self.domain,
            strings.join(" ")
        )
    }
}

/// The default selector: the year and month, `s202611`, so that a rotation's selectors sort.
pub fn default_selector(now: chrono::DateTime<chrono::Utc>) -> String {
    format!("s{}", now.format("%Y%m"))
}

/// Whether `s` can be a selector: dot-separated DNS labels of letters, digits and hyphens (so it
/// is also a safe part of a file name).
pub fn valid_selector(s: &str) -> bool {
    s.len() <= 63 && valid_labels(s)
}

/// Dot-separated labels of 1-63 letters, digits and hyphens, not starting or ending with one.
fn valid_labels(s: &str) -> bool {
    !s.is_empty()
        && s.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

/// Makes a key for `domain` under `selector` in `dir/dkim/` (made if missing).
pub fn generate(
    dir: &Path,
    domain: &str,
    selector: &str,
    algorithm: Algorithm,
) -> Result<Generated, String> {
    let domain = crate::address::ascii_domain(domain.trim_end_matches('.'));
    if !domain.contains('.') || domain.len() > 253 || !valid_labels(&domain) {
        return Err(format!(
            "{domain:?} is not a domain name such as example.org"
        ));
    }
    if !valid_selector(selector) {
        return Err(format!(
            "{selector:?} is not a selector: use letters, digits and hyphens (such as s202611)"
        ));
    }
    let file = format!("{domain}.{selector}.key");
    let keys = dir.join("dkim");
    std::fs::create_dir_all(&keys).map_err(|e| format!("cannot create {}: {e}", keys.display()))?;
    let path = keys.join(&file);
    if path.exists() {
        return Err(format!(
            "{} exists; a key is never overwritten (choose another --selector)",
            path.display()
        ));
    }
    let pem = match algorithm {
        Algorithm::Rsa => rsa_pem()?,
        Algorithm::Ed25519 => {
            let der = mail_auth::common::crypto::Ed25519Key::generate_pkcs8()
                .map_err(|e| format!("cannot make an Ed25519 key: {e}"))?;
            pem_block("PRIVATE KEY", &der)
        }
    };
    // Read back through the signing path: what is written is what `mail.conf` will load.
    let key = Key::from_pem(pem.as_bytes())?;
    write_new_private(&path, pem.as_bytes())?;
    Ok(Generated {
        domain,
        selector: selector.to_string(),
        path,
        conf_path: format!("dkim/{file}"),
        record: key.record(),
    })
}

/// A new RSA 2048 key as PKCS#1 PEM.
fn rsa_pem() -> Result<String, String> {
    use rsa::pkcs1::{EncodeRsaPrivateKey, LineEnding};
    let mut rng = rsa::rand_core::OsRng;
    let key = rsa::RsaPrivateKey::new(&mut rng, 2048)
        .map_err(|e| format!("cannot make an RSA key: {e}"))?;
    let pem = key
        .to_pkcs1_pem(LineEnding::LF)
        .map_err(|e| format!("cannot encode the RSA key: {e}"))?;
    Ok(pem.to_string())
}

/// Creates `path` with mode 0600 (never replacing a file) and makes it durable.
fn write_new_private(path: &Path, bytes: &[u8]) -> Result<(), String> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let err = |e: std::io::Error| format!("cannot write {}: {e}", path.display());
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(err)?;
    f.write_all(bytes).map_err(err)?;
    f.sync_all().map_err(err)?;
    if let Some(parent) = path.parent() {
        if let Ok(d) = std::fs::File::open(parent) {
            let _ = d.sync_all();
        }
    }
    Ok(())
}

fn pem_block(label: &str, der: &[u8]) -> String {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut s = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        s.push_str(&String::from_utf8_lossy(line));
        s.push('\n');
    }
    s.push_str(&format!("-----END {label}-----\n"));
    s
}

/// An RSA public key in PKCS#1 (`RSAPublicKey`, what ring gives) wrapped as a
/// SubjectPublicKeyInfo, the form DKIM's `p=` carries (RFC 6376 §3.6.1).
pub fn rsa_spki(pkcs1: &[u8]) -> Vec<u8> {
    // AlgorithmIdentifier { rsaEncryption, NULL }
    const ALGORITHM: &[u8] = &[
        0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00,
    ];
    let mut bits = vec![0u8]; // no unused bits
    bits.extend_from_slice(pkcs1);
    let mut inner = ALGORITHM.to_vec();
    inner.extend(der(0x03, &bits));
    der(0x30, &inner)
}

/// One DER element: tag, definite length, contents.
fn der(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let n = content.len();
    if n < 0x80 {
        out.push(n as u8);
    } else {
        let bytes: Vec<u8> = n
            .to_be_bytes()
            .iter()
            .copied()
            .skip_while(|b| *b == 0)
            .collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend(bytes);
    }
    out.extend_from_slice(content);
    out
}
