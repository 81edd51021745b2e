//! Unit tests of `check`: `jes check`'s words for each setting (the integration test
//! config_accidents runs the command itself).

use std::collections::HashMap;

use super::*;
use crate::config::Users;

fn summary(mail_conf: &str) -> String {
    match MailConf::parse(Path::new("/x/mail.conf"), mail_conf) {
        Ok((c, _)) => mail_summary(&c),
        Err(e) => panic!("{e}"),
    }
}

#[test]
fn summary_mentions_the_essentials() {
    let s = summary("domains=localhost,127.0.0.1\nrelay.ipaddresses=127.0.0.1\nhostname=mx.test\n");
    for want in [
        "mx.test",
        "port 25",
        "port 110",
        "localhost, 127.0.0.1",
        "127.0.0.1",
        "all addresses",
        "MX",
    ] {
        assert!(s.contains(want), "{want} missing from\n{s}");
    }
}

#[test]
fn limits_exempt_defaults_to_the_relay_addresses() {
    let s = summary("domains=a\nrelay.ipaddresses=127.0.0.1\n");
    assert!(s.contains("limits exempt:   127.0.0.1"), "{s}");
    let s = summary("domains=a\nrelay.ipaddresses=127.0.0.1\nlimits.exempt=none\n");
    assert!(s.contains("limits exempt:   none"), "{s}");
}

#[test]
fn smart_host_passwords_are_masked() {
    let s = summary(
        "domains=a\ndefaultsmtpservers=smtp.example.com:587/user:pa:ss, relay.example.org\n",
    );
    assert!(
        s.contains("via smtp.example.com:587/user:***, relay.example.org:25"),
        "{s}"
    );
    assert!(!s.contains("pa:ss"), "{s}");
}

#[test]
fn bare_lf() {
    let s = summary("domains=a\nsmtp.barelf=reject\n");
    assert!(s.contains("bare LF in data: reject"), "{s}");
    let s = summary("domains=a\n");
    assert!(s.contains("bare LF in data: normalize"), "{s}");
}

/// `jes check` speaks the configuration's language: TLS as it will be (a certificate always, made
/// when none is configured), values as mail.conf spells them, never Rust's Debug names.
#[test]
fn summary_tells_the_truth_about_tls_in_config_spelling() {
    let s = summary("domains=a\nhostname=mx.a.test\nallowClearText=encryptedOnly\n");
    assert!(
        s.contains("TLS:             STARTTLS (SMTP), STLS (POP3)\n"),
        "{s}"
    );
    assert!(s.contains("self-signed for mx.a.test"), "{s}");
    assert!(!s.contains("off (no tls.certificate)"), "{s}");
    assert!(s.contains("allowClearText:  encryptedOnly ("), "{s}");
    assert!(s.contains("smtpdelivery.tls opportunistic"), "{s}");
    for debug in ["EncryptedOnly", "Opportunistic", "Normalize"] {
        assert!(!s.contains(debug), "{debug} in {s}");
    }
    let s = summary(
        "domains=a\nsecuresmtpport=465\nsecurepop3port=995\ntls.certificate=c.pem\n\
                tls.key=k.pem\nallowClearText=never\nsmtpdelivery.tls=required\n",
    );
    assert!(
        s.contains("implicit TLS on port 465 (SMTP), implicit TLS on port 995 (POP3)"),
        "{s}"
    );
    assert!(s.contains("certificate    /x/c.pem (key /x/k.pem)"), "{s}");
    assert!(s.contains("allowClearText:  never"), "{s}");
    assert!(s.contains("smtpdelivery.tls required"), "{s}");
}

#[test]
fn history() {
    let s = summary("domains=a\n");
    assert!(s.contains("history:         30 days, in history.db"), "{s}");
    let s = summary("domains=a\nhistory.days=0\nhistory.subjects=false\n");
    assert!(s.contains("history:         off (history.days=0)"), "{s}");
}

#[test]
fn http_console() {
    let s = summary("domains=a\n");
    assert!(s.contains("HTTP console:    off (no http.port)\n"), "{s}");
    let s = summary("domains=a\nhttp.port=8025\nhttp.address=::1\nhttp.admins=Admin@x.test\n");
    assert!(
        s.contains("HTTP console:    http://[::1]:8025/ (admins admin@x.test; /metrics public)\n"),
        "{s}"
    );
}

#[test]
fn accounts_with_their_forwards_and_forward_only_addresses() {
    let users = Users {
        accounts: HashMap::from([
            ("b@x".to_string(), crate::auth::StoredPassword::parse("p")),
            ("a@x".to_string(), crate::auth::StoredPassword::parse("p")),
        ]),
        forwards: HashMap::from([
            (
                "b@x".to_string(),
                vec!["c@y".to_string(), "d@y".to_string()],
            ),
            ("z@x".to_string(), vec!["a@x".to_string()]),
        ]),
        webhooks: HashMap::new(),
    };
    assert_eq!(
        crate::cli::user::summary(&users, ""),
        "accounts: 2\n  a@x\n  b@x -> c@y, d@y\n  z@x (forward only) -> a@x\n"
    );
}
