//! Passwords: JES's SHA-1 form, argon2id for new ones, plaintext still in a file.
//! (Skeleton: the config helper fills this in.)

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

impl StoredPassword {
    /// Classifies a `user.conf` value.
    pub fn parse(value: &str) -> StoredPassword {
        let _ = value;
        todo!()
    }

    /// Checks a password. CPU-heavy for argon2: call it off the protocol threads.
    pub fn verify(&self, password: &str) -> bool {
        let _ = password;
        todo!()
    }
}

/// A new salted argon2id hash (PHC string) for `password`.
pub fn hash_password(password: &str) -> String {
    let _ = password;
    todo!()
}
