//! The configuration readers (`mail.conf`, `user.conf`, `log.conf`, chosen by the first byte) on
//! arbitrary text. What `src/config/prop_tests.rs` asserts: no panic; the properties blocks
//! cover every physical line once, in order; every warning names the file and a line it has;
//! every error names the file, a line holding an entry and that entry's key (or a known key that
//! is missing); a mail.conf that loads has a domain and a safe default user; every account and
//! forward in a user.conf that loads is a safe mailbox folder name.
#![no_main]

use std::path::Path;

use jes::address::mailbox_dir_name;
use jes::config::properties::{physical_lines, split_blocks, Properties};
use jes::config::{ConfigError, LogConf, MailConf, Users, Warning, MAIL_KEYS};
use libfuzzer_sys::fuzz_target;

const MAIL: &str = "/jes/etc/mail.conf";
const LOG: &str = "/jes/etc/log.conf";
const USERS: &str = "/jes/etc/user.conf";

fn check_error(path: &str, text: &str, e: &ConfigError, known: &[&str]) {
    match e {
        ConfigError::Value {
            path: p, line, key, ..
        } => {
            assert_eq!(p, Path::new(path));
            let (props, _) = Properties::parse(Path::new(path), text);
            assert!(
                props
                    .entries
                    .iter()
                    .any(|en| en.line == *line && &en.key == key),
                "error names line {line} key {key:?}, which no entry has"
            );
            let shown = e.to_string();
            assert!(
                shown.starts_with(&format!("{path}:{line}: key '")),
                "{shown}"
            );
        }
        ConfigError::Missing { path: p, key, .. } => {
            assert_eq!(p, Path::new(path));
            assert!(
                known.contains(&key.as_str()),
                "missing key {key:?} is unknown"
            );
        }
        ConfigError::Io { .. } => panic!("parsing text cannot be an I/O error: {e}"),
    }
}

fn check_warnings(path: &str, text: &str, warnings: &[Warning]) {
    let n = physical_lines(text).len();
    for w in warnings {
        assert_eq!(w.path, Path::new(path));
        assert!(
            w.line >= 1 && w.line <= n,
            "warning on line {} of {n}: {w}",
            w.line
        );
    }
}

/// The blocks cover every physical line exactly once, in order: what `user.conf` rewriting and
/// every line number rely on.
fn check_blocks(text: &str) {
    let lines = physical_lines(text);
    let mut problems = Vec::new();
    let blocks = split_blocks(text, &mut |line, _| problems.push(line));
    let mut next = 1;
    for b in &blocks {
        assert_eq!(b.line, next);
        assert!(!b.lines.is_empty());
        for (i, l) in b.lines.iter().enumerate() {
            assert_eq!(l.as_str(), lines[b.line - 1 + i]);
        }
        next += b.lines.len();
    }
    assert_eq!(next - 1, lines.len());
    assert!(problems.iter().all(|&l| l >= 1 && l <= lines.len()));
}

fuzz_target!(|raw: &[u8]| {
    let Some((&which, rest)) = raw.split_first() else {
        return;
    };
    // The readers get text: the files are read as UTF-8, with Latin-1 as the fallback.
    let text: String = match std::str::from_utf8(rest) {
        Ok(s) => s.to_string(),
        Err(_) => rest.iter().map(|&b| b as char).collect(),
    };
    check_blocks(&text);
    match which % 3 {
        0 => {
            let known: Vec<&str> = MAIL_KEYS.iter().map(|k| k.name).collect();
            match MailConf::parse(Path::new(MAIL), &text) {
                Ok((conf, warnings)) => {
                    check_warnings(MAIL, &text, &warnings);
                    assert!(!conf.domains.is_empty());
                    if let Some(u) = &conf.default_user {
                        assert_eq!(mailbox_dir_name(u), Ok(u.clone()));
                    }
                }
                Err(e) => check_error(MAIL, &text, &e, &known),
            }
        }
        1 => {
            let (props, warnings) = Properties::parse(Path::new(LOG), &text);
            let lines = physical_lines(&text).len();
            for en in &props.entries {
                assert!(
                    en.line >= 1 && en.line <= lines,
                    "entry on line {}",
                    en.line
                );
            }
            match LogConf::from_properties(Path::new(LOG), Path::new("/jes/etc"), &props, warnings)
            {
                Ok((_, warnings)) => check_warnings(LOG, &text, &warnings),
                Err(e) => check_error(LOG, &text, &e, &[]),
            }
        }
        _ => match Users::parse(Path::new(USERS), &text) {
            Ok((users, warnings)) => {
                check_warnings(USERS, &text, &warnings);
                for addr in users.accounts.keys().chain(users.forwards.keys()) {
                    assert_eq!(mailbox_dir_name(addr), Ok(addr.clone()));
                }
            }
            Err(e) => check_error(USERS, &text, &e, &[]),
        },
    }
});
