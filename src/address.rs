//! Mail addresses as jes uses them: parsed from SMTP paths, compared case-insensitively by domain,
//! and turned into directory names only through `mailbox_dir_name`, which refuses anything that
//! could escape or confuse the mail root (`..`, `/`, `\`, NUL, control characters, non-ASCII).

/// The index of the `>` that closes a path `<...>` (given without its `<`), skipping `>` inside
/// quoted strings as SMTP reads a path: `"a> pending b"@c>` ends at the last `>`. `None` if none.
/// Shared by the SMTP command parser and the queue-file reader, which must agree on where an
/// address ends.
pub fn closing_bracket(s: &str) -> Option<usize> {
    let mut quoted = false;
    let mut escaped = false;
    for (i, b) in s.bytes().enumerate() {
        if escaped {
            escaped = false;
        } else if quoted && b == b'\\' {
            escaped = true;
        } else if b == b'"' {
            quoted = !quoted;
        } else if b == b'>' && !quoted {
            return Some(i);
        }
    }
    None
}

/// Canonical form of an address used as a key (accounts, mailboxes): the local part as written,
/// lower-cased (JES and its users treat `Trackstudio@` and `trackstudio@` as one account), and the
/// domain lower-cased.
/// Only ASCII blanks are trimmed: `str::trim` would also drop Unicode ones (`U+0085`, `U+3000`),
/// and then `a@x\u{3000}` would pass `mailbox_dir_name` as `a@x` although it is not ASCII.
pub fn canonical(addr: &str) -> String {
    addr.trim_matches(|c: char| c.is_ascii_whitespace())
        .to_ascii_lowercase()
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

    /// The shrunk case `non_ascii_is_always_refused` found: a Unicode blank at either end was
    /// trimmed away, so a non-ASCII address named the folder of an ASCII one.
    #[test]
    fn regression_unicode_blank_at_an_end_is_refused() {
        for bad in ["a@A\u{85}", "\u{3000}a@x", "a@x\u{a0}"] {
            assert!(mailbox_dir_name(bad).is_err(), "{bad:?} must be refused");
        }
        assert_eq!(mailbox_dir_name(" a@x\t").as_deref(), Ok("a@x"));
    }

    #[test]
    fn domain_and_local_part() {
        assert_eq!(domain_of("a@B.example").as_deref(), Some("b.example"));
        assert_eq!(local_part("a@b"), "a");
        assert_eq!(domain_of("a"), None);
    }
}

/// Property tests: `mailbox_dir_name` is the single gate from an address to a path (DESIGN.md §4
/// rule 4), so it is tried on arbitrary strings, with the hostile characters made likely.
#[cfg(test)]
mod prop_tests {
    use super::*;
    use proptest::prelude::*;
    use std::path::{Component, Path};

    fn hostile_char() -> impl Strategy<Value = char> {
        prop_oneof![
            4 => prop::char::range('a', 'z'),
            2 => prop::char::range('A', 'Z'),
            3 => prop::sample::select(vec![
                '@', '.', '/', '\\', '\0', '\n', '\r', '\t', ' ', '"', '\'', '\u{7f}', '\u{85}',
                'é', 'E', '\u{301}', '\u{ff21}', '\u{ff0f}', '\u{2215}', '\u{ff0e}', 'ı', 'K',
                '\u{212a}', '~', '%', ':', '*', '?',
            ]),
            1 => any::<char>(),
        ]
    }

    fn non_ascii() -> impl Strategy<Value = char> {
        prop_oneof![
            prop::char::range('\u{80}', '\u{10ffff}'),
            prop::sample::select(vec![
                '\u{85}', '\u{a0}', '\u{2028}', '\u{3000}', '\u{301}', '\u{ff21}'
            ]),
        ]
    }

    fn hostile_address() -> impl Strategy<Value = String> {
        prop_oneof![
            400 => prop::collection::vec(hostile_char(), 0..40).prop_map(|v| v.into_iter().collect()),
            200 => ("[a-z./\\\\]{0,8}", "[a-zA-Z.]{0,8}").prop_map(|(l, d)| format!("{l}@{d}")),
            // Rare (10,000 cases stay fast) and long: up to 1 MB.
            2 => (0usize..1_000_000).prop_map(|n| format!("{}@x", "a".repeat(n))),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(10_000))]

        /// A name that passes is one plain path component of printable ASCII that cannot climb
        /// out of `users/`, is its own canonical form, and names the same folder whatever the
        /// case the address was written in; everything else is refused without a panic.
        #[test]
        fn mailbox_dir_names_are_safe_path_components(a in hostile_address()) {
            let _ = (domain_of(&a), local_part(&a));
            match mailbox_dir_name(&a) {
                Ok(name) => {
                    prop_assert!(name.len() <= 254);
                    prop_assert!(name.bytes().all(|b| b.is_ascii_graphic()
                        && !matches!(b, b'/' | b'\\' | b'"' | b'\'' | b'A'..=b'Z')), "{:?}", name);
                    prop_assert!(!name.starts_with('.') && !name.contains(".."), "{:?}", name);
                    let parts: Vec<Component> = Path::new(&name).components().collect();
                    prop_assert_eq!(parts, vec![Component::Normal(name.as_ref())]);
                    prop_assert_eq!(&name, &canonical(&a));
                    prop_assert!(domain_of(&name).is_some() && !local_part(&name).is_empty());
                    prop_assert_eq!(mailbox_dir_name(&name), Ok(name.clone()));
                    prop_assert_eq!(mailbox_dir_name(&a.to_ascii_uppercase()), Ok(name.clone()));
                }
                Err(_) => {
                    prop_assert!(mailbox_dir_name(&a.to_ascii_lowercase()).is_err());
                }
            }
        }

        /// Non-ASCII never passes, so Unicode look-alikes (fullwidth letters, NFD accents, the
        /// Kelvin sign) can never name a second folder for one account.
        #[test]
        fn non_ascii_is_always_refused(a in hostile_address(), c in non_ascii(), at in any::<prop::sample::Index>()) {
            let mut chars: Vec<char> = a.chars().collect();
            chars.insert(at.index(chars.len() + 1), c);
            let s: String = chars.into_iter().collect();
            prop_assert!(mailbox_dir_name(&s).is_err());
        }
    }
}
