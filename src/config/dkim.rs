//! The `dkim.DOMAIN=SELECTOR:KEYFILE[,SELECTOR:KEYFILE...]` keys of `mail.conf`.
//!
//! The key is a family (one per signing domain), so these entries are not in `MAIL_KEYS`; the
//! unknown-key check lets the `dkim.` prefix through. A malformed entry stops the load (file, line
//! and key named) like any bad value; a key file that is missing or unreadable does not: the
//! server still runs and sends that domain's mail with the keys that work (or unsigned), and
//! `jes check` and the log say which key failed. A mail server that stops because of a DKIM key
//! file stops all local mail with it.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::properties::Properties;
use super::{ConfigError, Warning};
use crate::dkim::{keygen::valid_selector, DomainKey, Key};

/// Every `dkim.*` entry's keys, in file order, each read from its file.
/// A key file that cannot be used becomes a warning (the server's log, `jes check`).
pub(super) fn parse(
    path: &Path,
    props: &Properties,
    warnings: &mut Vec<Warning>,
) -> Result<Vec<DomainKey>, ConfigError> {
    let folder = path.parent().unwrap_or(Path::new("."));
    let mut keys = Vec::new();
    for e in &props.entries {
        let Some(domain) = e.key.strip_prefix("dkim.") else {
            continue;
        };
        let err = |reason: String| ConfigError::Value {
            path: path.to_path_buf(),
            line: e.line,
            key: e.key.clone(),
            reason,
        };
        let domain = crate::address::ascii_domain(domain.trim_end_matches('.'));
        if domain.is_empty() || !domain.contains('.') {
            return Err(err(format!("{domain:?} is not a domain name")));
        }
        let items: Vec<&str> = e
            .value
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect();
        if items.is_empty() {
            return Err(err(
                "give SELECTOR:KEYFILE, e.g. s202611:dkim/example.org.s202611.key".into(),
            ));
        }
        for item in items {
            let Some((selector, file)) = item.split_once(':') else {
                return Err(err(format!("{item:?} is not SELECTOR:KEYFILE")));
            };
            let (selector, file) = (selector.trim(), file.trim());
            if !valid_selector(selector) || file.is_empty() {
                return Err(err(format!("{item:?} is not SELECTOR:KEYFILE")));
            }
            let file = PathBuf::from(file);
            let file = if file.is_absolute() {
                file
            } else {
                folder.join(file)
            };
            let key = Key::read(&file).map(Arc::new);
            if let Err(why) = &key {
                warnings.push(Warning {
                    path: path.to_path_buf(),
                    line: e.line,
                    message: format!(
                        "DKIM key {selector} of {domain} cannot be used, mail from {domain} goes out without it: {why}"
                    ),
                });
            }
            keys.push(DomainKey {
                domain: domain.clone(),
                selector: selector.to_string(),
                path: file,
                key,
            });
        }
    }
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::super::{ConfigError, MailConf};

    #[test]
    fn entries_keys_and_errors() {
        let dir = tempfile::tempdir().unwrap();
        let g = crate::dkim::keygen::generate(
            dir.path(),
            "example.org",
            "s1",
            crate::dkim::keygen::Algorithm::Ed25519,
        )
        .unwrap();
        assert!(g.path.starts_with(dir.path().join("dkim")));
        let path = dir.path().join("mail.conf");
        let text =
            "domains=localhost\ndkim.Example.ORG=s1:dkim/example.org.s1.key, s2:nothing.key\n";
        let (conf, warnings) = MailConf::parse(&path, text).unwrap();
        assert_eq!(conf.dkim.len(), 2);
        assert_eq!(conf.dkim[0].domain, "example.org");
        assert!(conf.dkim[0].key.is_ok());
        assert!(conf.dkim[1].key.is_err());
        // The unreadable key is one warning on its line, and no "unknown key" warning.
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert_eq!(warnings[0].line, 2);
        assert!(warnings[0].message.contains("DKIM key s2 of example.org"));

        for bad in [
            "dkim.example.org=nofile",
            "dkim.example.org=",
            "dkim.x=s1:k",
            "dkim.example.org=a/b:k",
        ] {
            let text = format!("domains=localhost\n{bad}\n");
            match MailConf::parse(&path, &text) {
                Err(ConfigError::Value { line: 2, key, .. }) => assert!(key.starts_with("dkim.")),
                other => panic!("{bad}: {other:?}"),
            }
        }
    }
}
