//! Property tests of the configuration readers (`mail.conf`, `log.conf`, `user.conf`).
//!
//! Configuration files are written by people, by editors and by JES, so they arrive with every
//! oddity: CR, LF and CRLF mixed, NUL, Latin-1 bytes, backslashes at line ends, megabyte lines.
//! Hand-picked examples cover the cases someone thought of; these cover the rest. The readers
//! must never panic, every error must point at a real line and the key on it (DESIGN.md §4 rule
//! 5), and what jes writes (escaped keys and values, `user.conf` edits) must read back as written.

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::path::Path;

use proptest::prelude::*;

use super::properties::{
    decode_text, escape_key, escape_value, physical_lines, split_blocks, Properties,
};
use super::users::{add_account, remove_account, set_account, Doc, Users};
use super::{ConfigError, LogConf, MailConf, Warning, LOG_KEYS, MAIL_KEYS};
use crate::address::mailbox_dir_name;
use crate::auth::StoredPassword;

const MAIL: &str = "/jes/etc/mail.conf";
const LOG: &str = "/jes/etc/log.conf";
const USERS: &str = "/jes/etc/user.conf";

/// Bytes that matter to the reader, weighted towards separators, escapes and line ends.
fn conf_byte() -> impl Strategy<Value = u8> {
    prop_oneof![
        6 => b'a'..=b'z',
        2 => b'0'..=b'9',
        3 => prop::sample::select(b"=: \t\x0c\\#!.,@/*[]-u".to_vec()),
        2 => prop::sample::select(b"\r\n".to_vec()),
        1 => Just(0u8),
        1 => any::<u8>(),
    ]
}

/// Characters for keys and values: anything, with the ones the syntax cares about (and Unicode
/// blanks and line separators, which `str::trim` knows and the syntax does not) made likely.
fn conf_char() -> impl Strategy<Value = char> {
    prop_oneof![
        4 => any::<char>(),
        4 => prop::char::range('a', 'z'),
        3 => prop::sample::select(vec![
            ' ', '\t', '\u{c}', '\\', '=', ':', '#', '!', '\r', '\n', '\0', '\u{a0}', '\u{85}',
            '\u{2028}', '\u{3000}', '\u{feff}', 'é', 'u',
        ]),
    ]
}

fn conf_string(max: usize) -> impl Strategy<Value = String> {
    prop::collection::vec(conf_char(), 0..max).prop_map(|v| v.into_iter().collect())
}

/// Arbitrary bytes, decoded the way jes decodes a file (UTF-8, else Latin-1).
fn raw_text() -> impl Strategy<Value = String> {
    prop::collection::vec(conf_byte(), 0..400).prop_map(decode_text)
}

fn key_name() -> impl Strategy<Value = String> {
    let mail: Vec<&str> = MAIL_KEYS.iter().map(|k| k.name).collect();
    let log: Vec<&str> = LOG_KEYS
        .iter()
        .map(|k| k.name)
        .chain([
            "log4j.rootLogger",
            "log4j.rootCategory",
            "log4j.appender.R.File",
            "log4j.appender.R.MaxFileSize",
            "log4j.appender.R.MaxBackupIndex",
        ])
        .collect();
    prop_oneof![
        6 => prop::sample::select(mail).prop_map(str::to_string),
        3 => prop::sample::select(log).prop_map(str::to_string),
        2 => "[a-zA-Z0-9.@_-]{0,12}".prop_map(|a| format!("user.{a}")),
        1 => "[a-zA-Z0-9.@]{0,10}".prop_map(|a| format!("userprop.{a}.forwardAddresses")),
        2 => conf_string(12),
    ]
}

fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => "[0-9]{0,6}",
        1 => "[0-9]{18,22}",
        2 => "(true|false|yes|no|on|off|TRUE|maybe)",
        2 => "[0-9*./:a-f\\[\\]]{0,24}",
        2 => "[a-zA-Z0-9@.,/: _-]{0,30}",
        1 => "[0-9]{1,4}(KB|MB|GB|kb|B|x)?",
        1 => "(error|WARN|info|debug|trace|ALL|FATAL|nope)(, ?R)?",
        1 => "\\\\u[0-9a-fA-FxG]{0,4}",
        3 => conf_string(30),
    ]
}

/// One physical or logical line, with its line end.
fn line() -> impl Strategy<Value = String> {
    let sep = prop::sample::select(vec!["=", ":", " ", " = ", "\t:\t", "", "=\\\n  ", "\\"]);
    let eol = prop::sample::select(vec!["\n", "\r\n", "\r", "\\\n", "\\\r\n", "", "\n\n"]);
    prop_oneof![
        10 => (key_name(), sep, value(), eol.clone()).prop_map(|(k, s, v, e)| format!("{k}{s}{v}{e}")),
        1 => ("[#!]", conf_string(20), eol).prop_map(|(c, t, e)| format!("{c}{t}{e}")),
        2 => raw_text(),
    ]
}

/// A line up to a megabyte long: a long value for a known or unknown key, or a long key (the
/// "did you mean" suggestion must stay cheap).
fn long_line() -> impl Strategy<Value = String> {
    (key_name(), 0usize..1_000_000, any::<bool>()).prop_map(|(k, n, long_key)| {
        if long_key {
            format!("{}=1\n", "k".repeat(n))
        } else {
            format!("{k}={}\n", "9".repeat(n))
        }
    })
}

/// A whole file: lines of the above, mostly well-formed, some not; rarely (about 1 in 500, so
/// that 10,000 cases stay within seconds) with a line up to a megabyte long among them.
fn conf_text() -> impl Strategy<Value = String> {
    let lines = || prop::collection::vec(line(), 0..16).prop_map(|l| l.concat());
    prop_oneof![
        800 => lines(),
        200 => raw_text(),
        2 => (lines(), long_line(), lines()).prop_map(|(a, l, b)| format!("{a}\n{l}{b}")),
    ]
}

/// The entries as the properties reader sees them (what error lines and keys must match).
fn entries(path: &str, text: &str) -> Properties {
    Properties::parse(Path::new(path), text).0
}

/// An error names the file, a line that holds an entry, and that entry's key.
fn check_error(
    path: &str,
    text: &str,
    e: &ConfigError,
    known: &[&str],
) -> Result<(), TestCaseError> {
    match e {
        ConfigError::Value {
            path: p, line, key, ..
        } => {
            prop_assert_eq!(p, Path::new(path));
            let props = entries(path, text);
            prop_assert!(
                props
                    .entries
                    .iter()
                    .any(|en| en.line == *line && &en.key == key),
                "error names line {} key {:?}, which no entry has",
                line,
                key
            );
            let shown = e.to_string();
            prop_assert!(
                shown.starts_with(&format!("{path}:{line}: key '")),
                "{}",
                shown
            );
        }
        ConfigError::Missing { path: p, key, .. } => {
            prop_assert_eq!(p, Path::new(path));
            prop_assert!(
                known.contains(&key.as_str()),
                "missing key {:?} is not a known key",
                key
            );
        }
        ConfigError::Io { .. } => prop_assert!(false, "parsing text cannot be an I/O error: {}", e),
    }
    Ok(())
}

fn check_warnings(path: &str, text: &str, warnings: &[Warning]) -> Result<(), TestCaseError> {
    let n = physical_lines(text).len();
    for w in warnings {
        prop_assert_eq!(&w.path, Path::new(path));
        prop_assert!(
            w.line >= 1 && w.line <= n,
            "warning on line {} of {}: {}",
            w.line,
            n,
            w
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(10_000))]

    /// The blocks cover every physical line exactly once, in order, and entries start where
    /// their block does: what `user.conf` rewriting and every line number rely on.
    #[test]
    fn properties_blocks_cover_every_line(text in conf_text()) {
        let lines = physical_lines(&text);
        let mut problems = Vec::new();
        let blocks = split_blocks(&text, &mut |line, _| problems.push(line));
        let mut next = 1;
        for b in &blocks {
            prop_assert_eq!(b.line, next);
            prop_assert!(!b.lines.is_empty());
            for (i, l) in b.lines.iter().enumerate() {
                prop_assert_eq!(l.as_str(), lines[b.line - 1 + i]);
            }
            next += b.lines.len();
        }
        prop_assert_eq!(next - 1, lines.len());
        prop_assert!(problems.iter().all(|&l| l >= 1 && l <= lines.len()));
        let (props, warnings) = Properties::parse(Path::new(MAIL), &text);
        check_warnings(MAIL, &text, &warnings)?;
        for e in &props.entries {
            prop_assert!(e.line >= 1 && e.line <= lines.len());
        }
    }

    /// What jes writes reads back as written, whatever the characters.
    #[test]
    fn escaped_key_and_value_read_back(key in conf_string(16), value in conf_string(24)) {
        let line = format!("{}={}", escape_key(&key), escape_value(&value));
        let (props, warnings) = Properties::parse(Path::new(USERS), &line);
        prop_assert!(warnings.is_empty(), "{:?}", warnings);
        let got: Vec<(&str, &str)> =
            props.entries.iter().map(|e| (e.key.as_str(), e.value.as_str())).collect();
        prop_assert_eq!(got, vec![(key.as_str(), value.as_str())], "line {:?}", line);
    }

    /// mail.conf: never panics; errors name the file, line and key.
    #[test]
    fn mail_conf_errors_name_file_line_and_key(text in conf_text()) {
        let known: Vec<&str> = MAIL_KEYS.iter().map(|k| k.name).collect();
        match MailConf::parse(Path::new(MAIL), &text) {
            Ok((conf, warnings)) => {
                check_warnings(MAIL, &text, &warnings)?;
                prop_assert!(!conf.domains.is_empty());
                if let Some(u) = &conf.default_user {
                    prop_assert_eq!(mailbox_dir_name(u), Ok(u.clone()));
                }
            }
            Err(e) => check_error(MAIL, &text, &e, &known)?,
        }
    }

    /// log.conf: never panics; errors name the file, line and key.
    #[test]
    fn log_conf_errors_name_file_line_and_key(text in conf_text()) {
        let (props, warnings) = Properties::parse(Path::new(LOG), &text);
        match LogConf::from_properties(Path::new(LOG), Path::new("/jes/etc"), &props, warnings) {
            Ok((_, warnings)) => check_warnings(LOG, &text, &warnings)?,
            Err(e) => check_error(LOG, &text, &e, &[])?,
        }
    }

    /// user.conf: never panics; errors name the file, line and key; every account read is a
    /// name that can safely be a mailbox folder.
    #[test]
    fn user_conf_errors_and_accounts(text in conf_text()) {
        match Users::parse(Path::new(USERS), &text) {
            Ok((users, warnings)) => {
                check_warnings(USERS, &text, &warnings)?;
                for addr in users.accounts.keys().chain(users.forwards.keys()) {
                    prop_assert_eq!(mailbox_dir_name(addr), Ok(addr.clone()));
                }
            }
            Err(e) => check_error(USERS, &text, &e, &[])?,
        }
    }
}

/// Addresses for the `user.conf` round trip: case variants of one another, and characters that
/// need escaping in a key.
const ADDRS: &[&str] = &[
    "a@x.test",
    "A@X.test",
    "b.c@x.test",
    "d+e@y.test",
    "trackstudio@127.0.0.1",
    "TrackStudio@127.0.0.1",
    "f=g@x.test",
    "h:i@x.test",
    "j#k@x.test",
    "!l@x.test",
];

fn addr() -> impl Strategy<Value = &'static str> {
    prop::sample::select(ADDRS)
}

/// A stored password as it may stand in user.conf: a hash, JES's digits, or plaintext with
/// anything in it.
fn stored() -> impl Strategy<Value = String> {
    prop_oneof![
        1 => Just("$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA".to_string()),
        1 => "[0-9]{60}",
        // Not empty: an empty password is an error (tested in users_tests).
        3 => conf_string(20).prop_filter("a password", |p| !p.is_empty()),
    ]
}

#[derive(Debug, Clone)]
enum Edit {
    Add(&'static str, String),
    Set(&'static str, String),
    Remove(&'static str),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (addr(), stored()).prop_map(|(a, p)| Edit::Add(a, p)),
        (addr(), stored()).prop_map(|(a, p)| Edit::Set(a, p)),
        addr().prop_map(Edit::Remove),
    ]
}

/// A valid user.conf in one line-end style, with comments, blanks, continuations and forwards.
fn user_conf() -> impl Strategy<Value = (String, Vec<String>)> {
    let entry = prop_oneof![
        3 => (addr(), stored()).prop_map(|(a, p)| format!("user.{}={}", escape_key(a), escape_value(&p))),
        1 => (addr(), "[a-z]{1,5}").prop_map(|(a, p)| format!("user.{} = {p}\\<EOL>   {p}", escape_key(a))),
        1 => (addr(), addr()).prop_map(|(a, b)| format!("userprop.{}.forwardAddresses={b}, {a}", escape_key(a))),
        1 => "[#!][ a-z\\\\]{0,12}",
        1 => Just(String::new()),
    ];
    (
        prop::collection::vec(entry, 0..12),
        prop::sample::select(vec!["\n", "\r\n", "\r"]),
        any::<bool>(),
    )
        .prop_map(|(lines, eol, final_eol)| {
            let comments = lines
                .iter()
                .filter(|l| l.starts_with(['#', '!']))
                .cloned()
                .collect();
            let mut text = lines.join(eol).replace("<EOL>", eol);
            if final_eol && !lines.is_empty() {
                text.push_str(eol);
            }
            (text, comments)
        })
}

fn accounts(text: &str) -> Result<HashMap<String, StoredPassword>, TestCaseError> {
    match Users::parse(Path::new(USERS), text) {
        Ok((u, _)) => Ok(u.accounts),
        Err(e) => Err(TestCaseError::fail(format!("{e} in {text:?}"))),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(10_000))]

    /// user.conf write -> read: after any sequence of add / set password / delete, the file reads
    /// back as exactly the accounts the edits describe, and comments, their order and the line-end
    /// style survive. An unedited file is written back byte for byte.
    #[test]
    fn user_conf_edits_read_back((text, comments) in user_conf(), edits in prop::collection::vec(edit(), 0..8)) {
        let mut doc = Doc::parse(&text);
        prop_assert_eq!(doc.render(), text.clone());
        let mut model = accounts(&text)?;
        let path = Path::new(USERS);
        for e in &edits {
            match e {
                Edit::Add(a, p) => {
                    let name = mailbox_dir_name(a).map_err(|e| TestCaseError::fail(e.to_string()))?;
                    let r = add_account(&mut doc, path, &name, p);
                    match model.entry(name) {
                        Entry::Occupied(_) => prop_assert_eq!(
                            r.map_err(|e| e.kind()),
                            Err(std::io::ErrorKind::AlreadyExists)
                        ),
                        Entry::Vacant(v) => {
                            prop_assert!(r.is_ok());
                            v.insert(StoredPassword::parse(p));
                        }
                    }
                }
                Edit::Set(a, p) => {
                    let name = crate::address::canonical(a);
                    let changed = set_account(&mut doc, &name, p);
                    prop_assert_eq!(changed > 0, model.contains_key(&name));
                    if changed > 0 {
                        model.insert(name, StoredPassword::parse(p));
                    }
                }
                Edit::Remove(a) => {
                    let name = crate::address::canonical(a);
                    remove_account(&mut doc, &name);
                    model.remove(&name);
                }
            }
            let out = doc.render();
            prop_assert_eq!(accounts(&out)?, model.clone(), "after {:?}: {:?}", e, out);
            let kept: Vec<&str> = physical_lines(&out)
                .into_iter()
                .filter(|l| l.starts_with(['#', '!']))
                .collect();
            prop_assert_eq!(&kept, &comments);
            if text.contains("\r\n") {
                prop_assert!(!out.replace("\r\n", "").contains(['\r', '\n']), "{:?}", out);
            }
        }
    }
}

/// The shrunk case `escaped_key_and_value_read_back` found (key "", value "\u{2028}"): a value
/// ending in a Unicode blank lost it, because reading trims every blank `str::trim_end` knows and
/// writing escaped only the ASCII space.
#[test]
fn regression_trailing_unicode_blank_in_value_is_kept() {
    for value in ["\u{2028}", "a\u{a0}", "\u{3000}", "pw \u{2028}"] {
        let line = format!("k={}", escape_value(value));
        let (props, _) = Properties::parse(Path::new(USERS), &line);
        assert_eq!(
            props.get("k").map(|e| e.value.as_str()),
            Some(value),
            "{line:?}"
        );
    }
}

/// A megabyte-long unknown key: the "did you mean" suggestion used to compute an edit distance
/// over the whole key against every known key (seconds per line); it must stay cheap.
#[test]
fn regression_long_unknown_key_is_cheap() {
    let text = format!("{}=1\ndomains=x\n", "k".repeat(1_000_000));
    let start = std::time::Instant::now();
    let (_, warnings) = MailConf::parse(Path::new(MAIL), &text).expect("parses");
    assert_eq!(warnings.len(), 1);
    assert!(
        start.elapsed() < std::time::Duration::from_secs(1),
        "{:?}",
        start.elapsed()
    );
}
