//! Mail addresses as jes uses them: parsed from SMTP paths, compared case-insensitively by domain,
//! and turned into directory names only through `mailbox_dir_name`, which refuses anything that
//! could escape or confuse the mail root (`..`, `/`, `\`, NUL, control characters, invisible or
//! look-alike separators).
//!
//! Internationalised addresses (RFC 6531) have one canonical form, which is also their folder
//! name: the local part lower-cased and in Unicode NFC (so a name typed composed or decomposed is
//! one account), the domain in its IDNA A-label form (`пример.рф` and `xn--e1afmkfd.xn--p1ai` are
//! one domain). An ASCII address is canonicalised exactly as before (ASCII lower case, nothing
//! else), so JES's folders keep their names.

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
    let addr = addr.trim_matches(|c: char| c.is_ascii_whitespace());
    if addr.is_ascii() {
        return addr.to_ascii_lowercase();
    }
    match addr.rfind('@') {
        Some(at) => format!(
            "{}@{}",
            nfc(&addr[..at].to_lowercase()),
            ascii_domain(&addr[at + 1..])
        ),
        None => nfc(&addr.to_lowercase()),
    }
}

/// Unicode NFC (composed) form.
pub fn nfc(s: &str) -> String {
    icu_normalizer::ComposingNormalizerBorrowed::new_nfc()
        .normalize(s)
        .into_owned()
}

/// A domain in the form it is compared in: lower case, IDNA A-labels for Unicode labels. A
/// Unicode domain without a valid IDNA form stays Unicode (lower-cased, NFC), and so never
/// matches an ASCII domain nor passes `mailbox_dir_name`.
pub fn ascii_domain(domain: &str) -> String {
    if domain.is_ascii() {
        return domain.to_ascii_lowercase();
    }
    match idna::domain_to_ascii(domain) {
        Ok(ascii) if ascii.is_ascii() && !ascii.is_empty() => ascii,
        _ => nfc(&domain.to_lowercase()),
    }
}

/// The address in ASCII, if it has an ASCII form: an ASCII local part and a domain with an IDNA
/// form. What an SMTP server without SMTPUTF8 can be given; `None` when only SMTPUTF8 can carry it.
pub fn ascii_form(addr: &str) -> Option<String> {
    if addr.is_ascii() {
        return Some(addr.to_string());
    }
    let at = addr.rfind('@')?;
    let (local, domain) = (&addr[..at], &addr[at + 1..]);
    if !local.is_ascii() {
        return None;
    }
    let domain = ascii_domain(domain);
    domain.is_ascii().then(|| format!("{local}@{domain}"))
}

/// Characters outside ASCII that a folder name may not hold: controls, blanks, invisible and
/// direction-changing format characters, private-use and non-characters, and the look-alikes of
/// `/`, `\` and `.` (a name must read as what it is in a listing).
pub fn unsafe_in_name(c: char) -> bool {
    c.is_control()
        || c.is_whitespace()
        || matches!(c,
            '\u{ad}' | '\u{34f}' | '\u{61c}' | '\u{115f}' | '\u{1160}' | '\u{17b4}' | '\u{17b5}'
            | '\u{180b}'..='\u{180f}' | '\u{200b}'..='\u{200f}' | '\u{2028}'..='\u{202e}'
            | '\u{2060}'..='\u{206f}' | '\u{3164}' | '\u{fe00}'..='\u{fe0f}' | '\u{feff}'
            | '\u{ffa0}' | '\u{fff0}'..='\u{ffff}' | '\u{e000}'..='\u{f8ff}'
            | '\u{f0000}'..='\u{10ffff}' | '\u{e0000}'..='\u{e0fff}' | '\u{fdd0}'..='\u{fdef}'
            // slash, backslash and dot look-alikes
            | '\u{2044}' | '\u{2215}' | '\u{29f8}' | '\u{29f9}' | '\u{ff0f}' | '\u{ff3c}'
            | '\u{2024}' | '\u{2025}' | '\u{2026}' | '\u{fe52}' | '\u{ff0e}' | '\u{3002}'
            | '\u{ff61}')
        || (c as u32) & 0xfffe == 0xfffe
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

/// The directory name under `users/` for a mailbox address (its canonical form), or why it
/// cannot be one. Only printable ASCII except `/`, `\` and quotes passes, and in the local part
/// of an internationalised address, Unicode other than `unsafe_in_name`; the domain is always
/// ASCII (A-labels); a leading dot or `..` anywhere fails.
pub fn mailbox_dir_name(addr: &str) -> Result<String, UnsafeAddress> {
    let canon = canonical(addr);
    if canon.is_empty() || canon.len() > 254 {
        return Err(UnsafeAddress::Length);
    }
    let domain_start = canon.rfind('@').map_or(canon.len(), |at| at + 1);
    if let Some((_, c)) = canon.char_indices().find(|&(i, c)| {
        let unicode_ok = c as u32 >= 0x80 && i < domain_start && !unsafe_in_name(c);
        !(c.is_ascii_graphic() || unicode_ok) || matches!(c, '/' | '\\' | '"' | '\'')
    }) {
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
            "a@é/..",
            "a\u{200b}b@x",
            "a\u{202e}b@x",
            "a\u{2215}b@x",
            "a\u{ff0e}\u{ff0e}@x",
            "a\u{3000}b@x",
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

    /// RFC 6531 addresses: one folder per account however it is written (composed or decomposed,
    /// any case, U-label or A-label domain), and a plain name in the listing.
    #[test]
    fn internationalised_addresses_have_one_canonical_folder() {
        let folder = "иван@xn--e1afmkfd.xn--p1ai";
        for written in [
            "Иван@пример.рф",
            "иван@ПРИМЕР.РФ",
            "иван@xn--e1afmkfd.xn--p1ai",
            "ИВАН@XN--E1AFMKFD.XN--P1AI",
        ] {
            assert_eq!(
                mailbox_dir_name(written).as_deref(),
                Ok(folder),
                "{written}"
            );
        }
        // "é" composed (U+00E9) and decomposed (e U+0301): one account.
        assert_eq!(
            canonical("jos\u{e9}@x.test"),
            canonical("jose\u{301}@x.test")
        );
        assert_eq!(
            mailbox_dir_name("JOSE\u{301}@x.test").as_deref(),
            Ok("jos\u{e9}@x.test")
        );
        assert_eq!(
            ascii_form("a@пример.рф").as_deref(),
            Some("a@xn--e1afmkfd.xn--p1ai")
        );
        assert_eq!(ascii_form("иван@x.test"), None);
        assert_eq!(ascii_form("a@b.test").as_deref(), Some("a@b.test"));
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
                    prop_assert!(name.chars().all(|c| (c.is_ascii_graphic() || (!c.is_ascii() && !unsafe_in_name(c)))
                        && !matches!(c, '/' | '\\' | '"' | '\'' | 'A'..='Z')), "{:?}", name);
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

        /// An address with non-ASCII in it gives one plain path component or nothing: its
        /// folder's domain is ASCII (A-labels), nothing unsafe is in its local part, and its
        /// decomposed (NFD) spelling names the very same folder, so NFD accents cannot make a
        /// second folder for one account.
        #[test]
        fn non_ascii_names_one_safe_folder(a in hostile_address(), c in non_ascii(), at in any::<prop::sample::Index>()) {
            let mut chars: Vec<char> = a.chars().collect();
            chars.insert(at.index(chars.len() + 1), c);
            let s: String = chars.into_iter().collect();
            if let Ok(name) = mailbox_dir_name(&s) {
                let at = name.rfind('@').expect("a domain");
                prop_assert!(name[at..].bytes().all(|b| b.is_ascii_graphic()), "{:?}", name);
                prop_assert!(!name.chars().any(|c| unsafe_in_name(c)
                    || matches!(c, '/' | '\\' | '"' | '\'') || c.is_ascii_uppercase()), "{:?}", name);
                prop_assert!(!name.starts_with('.') && !name.contains(".."), "{:?}", name);
                let parts: Vec<Component> = Path::new(&name).components().collect();
                prop_assert_eq!(parts, vec![Component::Normal(name.as_ref())]);
                prop_assert_eq!(mailbox_dir_name(&name), Ok(name.clone()));
                let nfd: String = icu_normalizer::DecomposingNormalizerBorrowed::new_nfd()
                    .normalize(&s)
                    .into_owned();
                prop_assert_eq!(mailbox_dir_name(&nfd), Ok(name.clone()));
            }
        }
    }
}
