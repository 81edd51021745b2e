//! Mail addresses as jes uses them: parsed from SMTP paths, compared case-insensitively by domain,
//! and turned into directory names only through `mailbox_dir_name`, which refuses anything that
//! could escape or confuse the mail root (`..`, `/`, `\`, NUL, control characters, non-ASCII).

/// Canonical form of an address used as a key (accounts, mailboxes): the local part as written,
/// lower-cased (JES and its users treat `Trackstudio@` and `trackstudio@` as one account), and the
/// domain lower-cased.
pub fn canonical(addr: &str) -> String {
    addr.trim().to_ascii_lowercase()
}

/// The domain of an address (after the last `@`), lower-cased; `None` without one.
pub fn domain_of(addr: &str) -> Option<String> {
    let at = addr.rfind('@')?;
    let domain = &addr[at + 1..];
    if domain.is_empty() {
        None
    } else {
        Some(domain.to_ascii_lowercase())
    }
}

/// The local part of an address (before the last `@`).
pub fn local_part(addr: &str) -> &str {
    match addr.rfind('@') {
        Some(at) => &addr[..at],
        None => addr,
    }
}

/// Why an address cannot be a directory name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnsafeAddress {
    #[error("address is empty or longer than 254 octets")]
    Length,
    #[error("address contains a character that cannot appear in a mailbox directory name: {0:?}")]
    Character(char),
    #[error("address starts with a dot or contains '..'")]
    Dots,
    #[error("address has no '@domain'")]
    NoDomain,
}

/// The directory name under `users/` for a mailbox address, or why it cannot be one.
/// Only printable ASCII except `/`, `\` and quotes passes; a leading dot or `..` anywhere fails.
pub fn mailbox_dir_name(addr: &str) -> Result<String, UnsafeAddress> {
    let canon = canonical(addr);
    if canon.is_empty() || canon.len() > 254 {
        return Err(UnsafeAddress::Length);
    }
    if let Some(c) = canon
        .chars()
        .find(|c| !c.is_ascii_graphic() || matches!(c, '/' | '\\' | '"' | '\''))
    {
        return Err(UnsafeAddress::Character(c));
    }
    if canon.starts_with('.') || canon.contains("..") {
        return Err(UnsafeAddress::Dots);
    }
    if domain_of(&canon).is_none() || local_part(&canon).is_empty() {
        return Err(UnsafeAddress::NoDomain);
    }
    Ok(canon)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn safe_names_pass_and_are_lowercased() {
        assert_eq!(
            mailbox_dir_name("TrackStudio@127.0.0.1").as_deref(),
            Ok("trackstudio@127.0.0.1")
        );
    }

    #[test]
    fn hostile_names_are_refused() {
        for bad in [
            "../x@y",
            "a/b@c",
            "a\\b@c",
            "a\0b@c",
            "a\nb@c",
            ".hidden@x",
            "a@..",
            "é@x",
            "\"q\"@x",
            "nodomain",
            "@x",
            "a@",
            "",
        ] {
            assert!(mailbox_dir_name(bad).is_err(), "{bad:?} must be refused");
        }
    }

    #[test]
    fn domain_and_local_part() {
        assert_eq!(domain_of("a@B.example").as_deref(), Some("b.example"));
        assert_eq!(local_part("a@b"), "a");
        assert_eq!(domain_of("a"), None);
    }
}
