//! DKIM signing (RFC 6376; Ed25519 per RFC 8463, RSA-SHA256).
//!
//! Keys are read once per configuration load (start and reload), so a message costs one
//! signature per key and no file access. `mail-auth` canonicalises and signs, with ring
//! underneath for both algorithms; this module only decides what to sign with and which headers.
//! Every key a domain lists signs: RSA and Ed25519 side by side (receivers that do not verify
//! Ed25519 yet still find the RSA one), and an old and a new selector during a rotation.
//!
//! What is signed: `c=relaxed/relaxed` (survives the header re-folding and trailing-space changes
//! of relays), no `l=` (anyone could append to the body) and no `x=` (a retry hours later must not
//! carry an expired signature), the usual header set where present, and `From` once more than it
//! occurs, so that nobody can add a second `From:` above the signed one.
//! Whether a message may be signed at all is the caller's decision (`delivery::accept`).

pub mod keygen;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use mail_auth::common::crypto::{Algorithm, Ed25519Key, RsaKey, Sha256, SigningKey};
use mail_auth::common::headers::{HeaderWriter, Writable};
use mail_auth::dkim::{Canonicalization, DkimSigner};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::PrivateKeyDer;

/// The headers signed when present (RFC 6376 §5.4.1's recommendations, plus the MIME ones that
/// change how the body reads).
const SIGNED_HEADERS: &[&str] = &[
    "From",
    "Reply-To",
    "Subject",
    "Date",
    "To",
    "Cc",
    "Message-ID",
    "In-Reply-To",
    "References",
    "MIME-Version",
    "Content-Type",
    "Content-Transfer-Encoding",
];

/// A private key read from a file.
pub enum Key {
    Rsa(RsaKey<Sha256>),
    Ed25519(Ed25519Key),
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.algorithm_name())
    }
}

impl Key {
    /// Reads a PEM private key: PKCS#8 (RSA or Ed25519, what `jes dkim keygen` and OpenSSL
    /// write) or PKCS#1 (`BEGIN RSA PRIVATE KEY`, what OpenDKIM's `opendkim-genkey` writes).
    pub fn from_pem(pem: &[u8]) -> Result<Key, String> {
        let der = PrivateKeyDer::from_pem_slice(pem)
            .map_err(|e| format!("no PEM private key found ({e})"))?;
        match der {
            PrivateKeyDer::Pkcs1(k) => RsaKey::<Sha256>::from_der(k.secret_pkcs1_der())
                .map(Key::Rsa)
                .map_err(|e| format!("not a usable RSA key: {e}")),
            PrivateKeyDer::Pkcs8(k) => {
                let der = k.secret_pkcs8_der();
                if let Ok(rsa) = RsaKey::<Sha256>::from_pkcs8_der(der) {
                    return Ok(Key::Rsa(rsa));
                }
                // OpenSSL writes PKCS#8 v1 (no public key inside): ring checks it only when v2.
                Ed25519Key::from_pkcs8_maybe_unchecked_der(der)
                    .map(Key::Ed25519)
                    .map_err(|_| "a PKCS#8 key that is neither RSA nor Ed25519".to_string())
            }
            _ => Err("an EC key: DKIM signs with RSA or Ed25519".into()),
        }
    }

    /// Reads a key file.
    pub fn read(path: &Path) -> Result<Key, String> {
        let pem =
            std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        Key::from_pem(&pem).map_err(|e| format!("{}: {e}", path.display()))
    }

    pub fn algorithm_name(&self) -> &'static str {
        match self {
            Key::Rsa(_) => "rsa-sha256",
            Key::Ed25519(_) => "ed25519-sha256",
        }
    }

    /// The `p=` value: the SubjectPublicKeyInfo for RSA, the raw 32-byte key for Ed25519
    /// (RFC 8463 §4.2).
    pub fn public_key(&self) -> Vec<u8> {
        match self {
            Key::Rsa(k) => keygen::rsa_spki(&k.public_key()),
            Key::Ed25519(k) => k.public_key(),
        }
    }

    /// The TXT record's value: `v=DKIM1; k=rsa; p=...`.
    pub fn record(&self) -> String {
        use base64::Engine as _;
        let k = match self {
            Key::Rsa(_) => "rsa",
            Key::Ed25519(_) => "ed25519",
        };
        let p = base64::engine::general_purpose::STANDARD.encode(self.public_key());
        format!("v=DKIM1; k={k}; p={p}")
    }
}

/// A borrowed key for `mail-auth`'s signer (which owns its key), so the configuration's keys sign
/// without being copied per message.
struct Borrowed<'a>(&'a Key);

impl SigningKey for Borrowed<'_> {
    type Hasher = Sha256;

    fn sign(&self, input: impl Writable) -> mail_auth::Result<Vec<u8>> {
        match self.0 {
            Key::Rsa(k) => k.sign(input),
            Key::Ed25519(k) => k.sign(input),
        }
    }

    fn algorithm(&self) -> Algorithm {
        match self.0 {
            Key::Rsa(_) => Algorithm::RsaSha256,
            Key::Ed25519(_) => Algorithm::Ed25519Sha256,
        }
    }
}

/// One `dkim.DOMAIN=SELECTOR:KEYFILE` entry, with its key as read (or why it could not be).
#[derive(Debug, Clone)]
pub struct DomainKey {
    /// Lower case, IDNA A-labels: compared with the `From:` domain in that form.
    pub domain: String,
    pub selector: String,
    pub path: PathBuf,
    pub key: Result<Arc<Key>, String>,
}

impl DomainKey {
    /// The DNS name the public key is published under.
    pub fn record_name(&self) -> String {
        format!("{}._domainkey.{}", self.selector, self.domain)
    }
}

/// The domain of the message's first `From:` address, lower case in A-labels; `None` without one.
pub fn from_domain(message: &[u8]) -> Option<String> {
    let parsed = mail_parser::MessageParser::new().parse_headers(message)?;
    let address = parsed.from()?.first()?.address()?;
    let (_, domain) = address.rsplit_once('@')?;
    Some(crate::address::ascii_domain(domain.trim_end_matches('.')))
}

/// The `DKIM-Signature:` header fields (CRLF-terminated, folded) that `keys` give `message`
/// (unstuffed, CRLF). A key that cannot sign is logged and left out.
pub fn signatures(keys: &[&DomainKey], message: &[u8]) -> Vec<u8> {
    let mut headers: Vec<String> = Vec::new();
    if let Some(head) = mail_parser::MessageParser::new().parse_headers(message) {
        for name in SIGNED_HEADERS {
            let present = head
                .headers()
                .iter()
                .any(|h| h.name().eq_ignore_ascii_case(name));
            if present {
                headers.push((*name).to_string());
            }
        }
    }
    // Oversigning: one `From` more than the message has, which the verifier reads as "and no
    // other From above it". mail-auth lists a name it did not find as signed-empty.
    headers.push("From".into());
    let mut out = Vec::new();
    for dk in keys {
        let Ok(key) = &dk.key else { continue };
        let signer = DkimSigner::from_key(Borrowed(key))
            .domain(dk.domain.clone())
            .selector(dk.selector.clone())
            .headers(headers.clone())
            .header_canonicalization(Canonicalization::Relaxed)
            .body_canonicalization(Canonicalization::Relaxed);
        match signer.sign(message) {
            Ok(sig) => out.extend_from_slice(sig.to_header().as_bytes()),
            Err(e) => tracing::error!(
                domain = %dk.domain,
                selector = %dk.selector,
                "cannot DKIM-sign a message: {e}"
            ),
        }
    }
    out
}

/// `stored` (wire form) with a signature by every usable key of its `From:` domain in front; `None`
/// when that domain has no key (or the message no `From:`), so the caller keeps its own copy.
pub fn sign_stored(keys: &[DomainKey], stored: &[u8]) -> Option<Vec<u8>> {
    if keys.is_empty() {
        return None;
    }
    let plain = crate::stored_form::unstuff(stored);
    let domain = from_domain(&plain)?;
    let mine: Vec<&DomainKey> = keys
        .iter()
        .filter(|k| k.domain == domain && k.key.is_ok())
        .collect();
    if mine.is_empty() {
        return None;
    }
    let sigs = signatures(&mine, &plain);
    if sigs.is_empty() {
        return None;
    }
    // Header lines never start with a dot, so the signature needs no stuffing.
    let mut out = sigs;
    out.extend_from_slice(stored);
    Some(out)
}

#[cfg(test)]
mod tests;
