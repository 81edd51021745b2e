//! The registry against the parser and the README: the defaults the parser uses are the ones the
//! table says, and the README's key tables list exactly the table's keys with the same defaults.

use std::path::Path;

use super::*;
use crate::config::{LogConf, MailConf};

fn mail_debug(text: &str) -> String {
    let (conf, _) = MailConf::parse(Path::new("/etc/jes/mail.conf"), text).unwrap();
    format!("{conf:?}")
}

fn log_debug(text: &str) -> String {
    let path = Path::new("/etc/jes/log.conf");
    let (props, warnings) = crate::config::properties::Properties::parse(path, text);
    let (conf, _) =
        LogConf::from_properties(path, Path::new("/etc/jes"), &props, warnings).unwrap();
    format!("{conf:?}")
}

/// Writing a key's default out changes nothing: the parser's built-in default is the table's.
#[test]
fn the_parser_defaults_are_the_tables() {
    let base = "domains=a.test\n";
    let plain = mail_debug(base);
    // The comparison can fail: a value other than the default shows.
    assert_ne!(plain, mail_debug(&format!("{base}smtpport=26\n")));
    for k in MAIL_KEYS.iter().filter(|k| !k.default.is_empty()) {
        let written = mail_debug(&format!("{base}{}={}\n", k.name, k.default));
        assert_eq!(plain, written, "mail.conf {}={}", k.name, k.default);
    }
    let plain = log_debug("");
    assert_ne!(plain, log_debug("log.maxbackups=6\n"));
    for k in LOG_KEYS.iter().filter(|k| !k.default.is_empty()) {
        let written = log_debug(&format!("{}={}\n", k.name, k.default));
        assert_eq!(plain, written, "log.conf {}={}", k.name, k.default);
    }
}

/// The rows of the README table under `heading`: (key, default cell, whole row).
fn readme_rows(heading: &str) -> Vec<(String, String, String)> {
    let readme = include_str!("../../README.md");
    let start = readme
        .find(heading)
        .unwrap_or_else(|| panic!("README has no {heading:?}"));
    let section = &readme[start + heading.len()..];
    let section = &section[..section.find("\n#").unwrap_or(section.len())];
    let mut rows = Vec::new();
    for line in section.lines().filter(|l| l.starts_with("| `")) {
        let cells: Vec<&str> = line.split(" | ").collect();
        let first = cells[0].trim_start_matches("| ");
        let key = first
            .strip_prefix('`')
            .and_then(|k| k.strip_suffix('`'))
            .filter(|k| !k.contains('`'))
            .unwrap_or_else(|| panic!("one key in backticks per row: {line}"));
        rows.push((key.to_string(), cells[1].replace('`', ""), line.to_string()));
    }
    rows
}

fn check_readme(heading: &str, table: &[KeyInfo]) {
    let rows = readme_rows(heading);
    let mut in_readme: Vec<&str> = rows.iter().map(|(k, _, _)| k.as_str()).collect();
    let mut in_table: Vec<&str> = table.iter().map(|k| k.name).collect();
    in_readme.sort_unstable();
    in_table.sort_unstable();
    assert_eq!(
        in_readme, in_table,
        "README {heading} keys against the registry"
    );
    for (key, default, row) in &rows {
        let k = lookup(table, key).unwrap();
        if k.default.is_empty() {
            assert!(
                default.starts_with("*("),
                "{key}: unset by default, so *(...)*: {row}"
            );
        } else {
            assert!(
                *default == k.default || default.starts_with(&format!("{} (", k.default)),
                "{key}: the README says {default:?}, the registry {:?}",
                k.default
            );
        }
        let says_restart =
            row.to_lowercase().contains("restart") || row.to_lowercase().contains("read at start");
        assert_eq!(
            says_restart,
            k.applies == Applies::Restart,
            "{key}: the README and the registry disagree on whether a change needs a restart"
        );
    }
}

#[test]
fn the_readme_tables_are_the_registry() {
    check_readme("### mail.conf", MAIL_KEYS);
    check_readme("### log.conf", LOG_KEYS);
    check_readme("### user.conf", USER_KEYS);
}

#[test]
fn families_and_aliases() {
    let dkim = key("dkim.DOMAIN", "", "", false);
    assert!(dkim.matches("dkim.example.org"));
    assert!(!dkim.matches("dkim."));
    assert!(!dkim.matches("dkimx.example.org"));
    let fwd = lookup(USER_KEYS, "userprop.a@b.test.forwardAddresses").unwrap();
    assert_eq!(fwd.name, "userprop.ADDRESS.forwardAddresses");
    assert_eq!(
        lookup(USER_KEYS, "user.a@b.test").unwrap().name,
        "user.ADDRESS"
    );
    assert!(lookup(USER_KEYS, "userprop.a@b.test.colour").is_none());
    assert!(lookup(MAIL_KEYS, "smtpport").is_some_and(|k| k.matches("smtpport")));
    for k in MAIL_KEYS.iter().chain(LOG_KEYS).chain(USER_KEYS) {
        if let Some(target) = k.alias_of {
            assert!(
                lookup(MAIL_KEYS, target).is_some(),
                "{} names {target}",
                k.name
            );
        }
    }
}
