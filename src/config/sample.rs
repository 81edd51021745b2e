//! The commented sample configuration `jes init` writes.
//!
//! `mail.conf` is generated from `super::MAIL_KEYS`, the same table the unknown-key check uses, so
//! the sample documents exactly the keys jes understands, with their real defaults. Keys left at
//! their default are written commented out, which makes the file a reference without pinning
//! today's defaults into every installation. Existing files are never overwritten: `jes init` on
//! a live folder must not destroy accounts.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::path::Path;

use super::{KeyInfo, LOG_KEYS, MAIL_KEYS};

/// The sample `user.conf`: two accounts whose plaintext passwords jes hashes at first start.
pub const SAMPLE_USER_CONF: &str = "\
# Accounts: user.ADDRESS=password. Plaintext passwords are replaced by salted argon2id hashes
# the first time jes reads this file (comments and order are kept); JES 1.x SHA-1 hashes work too.
# Forwards: userprop.ADDRESS.forwardAddresses=a@example.com,b@example.com
# (list the address itself to keep a copy here as well).
# Manage accounts with: jes user add|passwd|del|list
user.trackstudio@127.0.0.1=secret
user.analyst@localhost=password
";

/// Wraps `text` into `# ` comment lines of at most ~98 characters.
fn comment(out: &mut String, text: &str) {
    let mut line = String::from("#");
    for word in text.split_whitespace() {
        if line.len() + 1 + word.len() > 98 && line.len() > 1 {
            out.push_str(&line);
            out.push('\n');
            line = String::from("#");
        }
        line.push(' ');
        line.push_str(word);
    }
    out.push_str(&line);
    out.push('\n');
}

fn key_block(out: &mut String, k: &KeyInfo, value: Option<&str>) {
    let mut text = k.meaning.to_string();
    if !k.default.is_empty() {
        text.push_str(&format!(" (default: {})", k.default));
    }
    if !k.applies_note().is_empty() {
        text.push(' ');
        text.push_str(k.applies_note());
    }
    comment(out, &text);
    match value {
        Some(v) => out.push_str(&format!("{}={v}\n\n", k.name)),
        None => out.push_str(&format!("#{}={}\n\n", k.name, k.default)),
    }
}

/// The sample `mail.conf` text.
pub fn sample_mail_conf(smtp_port: u16, pop3_port: u16) -> String {
    let mut out = String::from(
        "# jes configuration (Java .properties syntax, as JES used).\n\
         # Lines starting with # are comments; a commented key shows its default.\n\
         # Changes are picked up within seconds, without a restart, except for the keys marked\n\
         # \"Read at start\" (the addresses and ports jes listens on).\n\
         # `jes check` shows what jes makes of this file.\n\n",
    );
    let smtp = smtp_port.to_string();
    let pop3 = pop3_port.to_string();
    for k in MAIL_KEYS {
        let value = match k.name {
            "domains" => Some("localhost,127.0.0.1"),
            "hostname" => Some("localhost"),
            "relay.ipaddresses" => Some("127.0.0.1,::1"),
            // A sample with well-known passwords must not be reachable from the network.
            "listen.address" => Some("127.0.0.1"),
            // New installs keep passwords off unencrypted network connections (loopback counts as safe).
            "allowClearText" => Some("encryptedOnly"),
            "smtpport" => Some(smtp.as_str()),
            "pop3port" => Some(pop3.as_str()),
            _ => None,
        };
        key_block(&mut out, k, value);
    }
    out
}

/// The sample `log.conf` text.
pub fn sample_log_conf() -> String {
    let mut out = String::from(
        "# Logging. JES's log4j keys still work (log4j.rootCategory=LEVEL, APPENDER and\n\
         # log4j.appender.APPENDER.File / MaxFileSize / MaxBackupIndex); so do the plain keys below.\n\
         log4j.rootCategory=info, R\n\n",
    );
    for k in LOG_KEYS {
        key_block(&mut out, k, None);
    }
    out
}

/// Writes `mail.conf`, `user.conf` and `log.conf` into `dir` (created if missing). Refuses, before
/// writing anything, if any of them exists.
pub fn write_sample(dir: &Path, smtp_port: u16, pop3_port: u16) -> io::Result<()> {
    let files = [
        ("mail.conf", sample_mail_conf(smtp_port, pop3_port)),
        ("user.conf", SAMPLE_USER_CONF.to_string()),
        ("log.conf", sample_log_conf()),
    ];
    for (name, _) in &files {
        let path = dir.join(name);
        if path.symlink_metadata().is_ok() {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{} already exists; not overwriting it", path.display()),
            ));
        }
    }
    fs::create_dir_all(dir)?;
    for (name, text) in &files {
        let path = dir.join(name);
        let mut opts = OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        if *name == "user.conf" {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut f = opts
            .open(&path)
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, Level};

    #[test]
    fn sample_loads_cleanly() {
        let dir = tempfile::tempdir().unwrap();
        write_sample(dir.path(), 2525, 1110).unwrap();
        let (c, w) = Config::load(dir.path()).unwrap();
        assert!(w.is_empty(), "{w:?}");
        assert_eq!((c.mail.smtp_port, c.mail.pop3_port), (2525, 1110));
        assert_eq!(c.mail.domains, vec!["localhost", "127.0.0.1"]);
        assert_eq!(c.mail.hostname, "localhost");
        assert!(c.mail.relay_ip_allowed("::1".parse().unwrap()));
        assert!(c.mail.relay_ip_allowed("127.0.0.1".parse().unwrap()));
        assert!(c
            .users
            .password("trackstudio@127.0.0.1")
            .is_some_and(|p| p.verify("secret")));
        assert!(c
            .users
            .password("analyst@localhost")
            .is_some_and(|p| p.verify("password")));
        assert_eq!(c.log.level, Level::Info);
        assert_eq!(c.mail.max_message_size, 5 << 20);
    }

    #[test]
    fn every_key_is_documented_and_defaults_parse() {
        let text = sample_mail_conf(25, 110);
        for k in MAIL_KEYS {
            assert!(text.contains(&format!("{}=", k.name)), "{} missing", k.name);
        }
        // Uncommenting every defaulted key must give a valid file with no warnings.
        let uncommented: String = text
            .lines()
            .map(|l| match l.strip_prefix('#') {
                Some(rest)
                    if MAIL_KEYS
                        .iter()
                        .any(|k| !k.is_family() && rest.starts_with(&format!("{}=", k.name))) =>
                {
                    rest
                }
                _ => l,
            })
            .map(|l| format!("{l}\n"))
            .collect();
        let (c, w) =
            crate::config::MailConf::parse(Path::new("/x/mail.conf"), &uncommented).unwrap();
        // max.valid.rcpt and smtp.maxrecipients are both set: the one expected warning.
        assert_eq!(w.len(), 1, "{w:?}");
        assert_eq!(c.threads, 5);
    }

    /// The sample's words about TLS ports and restarts are true: the TLS ports work without
    /// tls.certificate (jes makes one), and the listening ports are read at start only.
    #[test]
    fn sample_says_what_needs_a_restart_and_what_tls_needs() {
        let text = sample_mail_conf(25, 110);
        assert!(!text.contains("Needs tls.certificate"), "{text}");
        let block = |key: &str| {
            let end = text.find(&format!("#{key}=")).unwrap();
            let start = text[..end].rfind("\n\n").map_or(0, |i| i + 2);
            text[start..end]
                .split_whitespace()
                .filter(|w| *w != "#")
                .collect::<Vec<_>>()
                .join(" ")
        };
        for key in ["securesmtpport", "securepop3port"] {
            assert!(
                block(key).contains("self-signed certificate jes makes"),
                "{key}"
            );
        }
        for key in [
            "http.port",
            "http.address",
            "submissionport",
            "securesmtpport",
        ] {
            assert!(
                block(key).contains("needs a restart"),
                "{key}: {}",
                block(key)
            );
        }
        assert!(!block("smtp.messagesize").contains("restart"));
    }

    #[test]
    fn refuses_to_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("user.conf"), "user.keep@x=me\n").unwrap();
        let e = write_sample(dir.path(), 2525, 1110).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AlreadyExists);
        assert!(e.to_string().contains("user.conf"), "{e}");
        assert!(!dir.path().join("mail.conf").exists(), "nothing written");
        assert_eq!(
            fs::read_to_string(dir.path().join("user.conf")).unwrap(),
            "user.keep@x=me\n"
        );
    }
}
