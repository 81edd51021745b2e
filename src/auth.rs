//! Passwords: JES's SHA-1 form, argon2id for new ones, plaintext still in a file.
//!
//! `user.conf` must keep working as JES left it, so the JES form (SHA-1, each byte written as a
//! 3-digit decimal of `byte ^ 0x80`) is read and verified, but never written: anything jes stores is
//! an argon2id PHC string, whose `$argon2` prefix can never be mistaken for 60 digits. Plaintext is
//! accepted only until `config::users::upgrade_plaintext` replaces it. Every comparison of secret
//! material is constant-time, and an empty password never verifies (an empty value in `user.conf`
//! disables the account rather than opening it).

use argon2::{Algorithm, Argon2, Params, Version};
use password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use sha1::{Digest, Sha1};
use subtle::ConstantTimeEq;

/// A password as `user.conf` holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoredPassword {
    /// JES 1.x: 60 digits, SHA-1 bytes each written as a 3-digit decimal of (byte XOR 0x80).
    JesSha1([u8; 20]),
    /// A PHC string `$argon2id$...` written by jes.
    Argon2(String),
    /// Plaintext, not yet upgraded (read-only user.conf, or just edited by hand).
    Plain(String),
}

/// argon2id cost for new hashes: 19 MiB, 2 passes, 1 lane (OWASP's minimum recommendation). On the
/// development machine this measured about 22 ms per hash in a release build (2 cores).
pub const ARGON2_M_KIB: u32 = 19_456;
/// See [`ARGON2_M_KIB`].
pub const ARGON2_T: u32 = 2;
/// See [`ARGON2_M_KIB`].
pub const ARGON2_P: u32 = 1;

impl StoredPassword {
    /// Classifies a `user.conf` value.
    pub fn parse(value: &str) -> StoredPassword {
        if let Some(digest) = parse_jes_sha1(value) {
            return StoredPassword::JesSha1(digest);
        }
        if value.starts_with("$argon2") {
            return StoredPassword::Argon2(value.to_string());
        }
        StoredPassword::Plain(value.to_string())
    }

    /// Checks a password. CPU-heavy for argon2: call it off the protocol threads.
    pub fn verify(&self, password: &str) -> bool {
        if password.is_empty() {
            return false;
        }
        match self {
            StoredPassword::JesSha1(digest) => {
                let got: [u8; 20] = Sha1::digest(password.as_bytes()).into();
                bool::from(got.ct_eq(digest))
            }
            StoredPassword::Argon2(phc) => match PasswordHash::new(phc) {
                Ok(parsed) => Argon2::default()
                    .verify_password(password.as_bytes(), &parsed)
                    .is_ok(),
                Err(_) => false,
            },
            StoredPassword::Plain(stored) => {
                !stored.is_empty() && bool::from(stored.as_bytes().ct_eq(password.as_bytes()))
            }
        }
    }

    /// Whether this is plaintext that `upgrade_plaintext` would replace.
    pub fn is_plain(&self) -> bool {
        matches!(self, StoredPassword::Plain(_))
    }
}

/// Exactly 60 ASCII digits, each 3-digit group at most 255.
fn parse_jes_sha1(value: &str) -> Option<[u8; 20]> {
    let bytes = value.as_bytes();
    if bytes.len() != 60 || !bytes.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut digest = [0u8; 20];
    for (i, group) in bytes.chunks(3).enumerate() {
        let n = group
            .iter()
            .fold(0u32, |acc, d| acc * 10 + u32::from(d - b'0'));
        let b = u8::try_from(n).ok()?;
        digest[i] = b ^ 0x80;
    }
    Some(digest)
}

fn hasher() -> Argon2<'static> {
    // The constants are valid argon2 parameters; `Params::DEFAULT` is the same OWASP setting.
    let params = Params::new(ARGON2_M_KIB, ARGON2_T, ARGON2_P, None).unwrap_or(Params::DEFAULT);
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// A new salted argon2id hash (PHC string) for `password`.
pub fn hash_password(password: &str) -> String {
    let salt = SaltString::generate(&mut password_hash::rand_core::OsRng);
    match hasher().hash_password(password.as_bytes(), &salt) {
        Ok(hash) => hash.to_string(),
        // Only reachable with invalid parameters or an over-long password (> 4 GiB).
        Err(e) => panic!("argon2 hashing failed: {e}"),
    }
}

/// JES's 60-digit form of `password` (SHA-1; each byte as a 3-digit decimal of `byte ^ 0x80`).
/// jes never writes it; it exists for compatibility tests and tools.
pub fn jes_sha1_hash(password: &str) -> String {
    Sha1::digest(password.as_bytes())
        .iter()
        .map(|b| format!("{:03}", b ^ 0x80))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const TRACKSTUDIO: &str = "101105122155035158077154104207245074042199207186230191133116";
    const ANALYST: &str = "219042225100073057191191134002165139236120179155254102015088";

    #[test]
    fn jes_fixture_hashes_verify() {
        let ts = StoredPassword::parse(TRACKSTUDIO);
        assert!(matches!(ts, StoredPassword::JesSha1(_)));
        assert!(ts.verify("secret"));
        assert!(!ts.verify("Secret"));
        assert!(!ts.verify(""));
        let an = StoredPassword::parse(ANALYST);
        assert!(an.verify("password"));
        assert!(!an.verify("secret"));
    }

    #[test]
    fn jes_sha1_hash_round_trips() {
        assert_eq!(jes_sha1_hash("secret"), TRACKSTUDIO);
        assert_eq!(jes_sha1_hash("password"), ANALYST);
    }

    #[test]
    fn classification() {
        // A group above 255 cannot be a JES hash.
        let not_hash = "9".repeat(60);
        assert_eq!(
            StoredPassword::parse(&not_hash),
            StoredPassword::Plain(not_hash.clone())
        );
        assert!(StoredPassword::parse(&"1".repeat(59)).is_plain());
        assert!(StoredPassword::parse(&"a".repeat(60)).is_plain());
        assert!(matches!(
            StoredPassword::parse("$argon2id$v=19$m=19456,t=2,p=1$abc$def"),
            StoredPassword::Argon2(_)
        ));
        assert_eq!(
            StoredPassword::parse("secret"),
            StoredPassword::Plain("secret".into())
        );
    }

    #[test]
    fn plain_verify() {
        let p = StoredPassword::parse("secret");
        assert!(p.verify("secret"));
        assert!(!p.verify("secreT"));
        assert!(!p.verify("secret "));
        assert!(!StoredPassword::Plain(String::new()).verify(""));
    }

    #[test]
    fn argon2_round_trip() {
        let h = hash_password("s3cr:et");
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{h}");
        let p = StoredPassword::parse(&h);
        assert!(matches!(p, StoredPassword::Argon2(_)));
        assert!(p.verify("s3cr:et"));
        assert!(!p.verify("s3cr:eT"));
        assert_ne!(h, hash_password("s3cr:et"), "salts must differ");
        assert!(!StoredPassword::Argon2("$argon2id$garbage".into()).verify("x"));
    }
}
