use super::*;

fn key_file(dir: &Path, algorithm: keygen::Algorithm) -> DomainKey {
    let g = keygen::generate(dir, "example.org", "s1", algorithm).unwrap();
    DomainKey {
        domain: "example.org".into(),
        selector: "s1".into(),
        key: Key::read(&g.path).map(Arc::new),
        path: g.path,
    }
}

const MSG: &[u8] = b"Received: from x\r\nFrom: App <app@Example.ORG>\r\nTo: a@b.test\r\nSubject: hi\r\n\r\n..dot line\r\nbody\r\n";

#[test]
fn signs_with_every_key_of_the_from_domain_and_oversigns_from() {
    let dir = tempfile::tempdir().unwrap();
    let rsa = key_file(dir.path(), keygen::Algorithm::Rsa);
    let g = keygen::generate(dir.path(), "example.org", "s2", keygen::Algorithm::Ed25519).unwrap();
    let ed = DomainKey {
        domain: "example.org".into(),
        selector: "s2".into(),
        key: Key::read(&g.path).map(Arc::new),
        path: g.path,
    };
    let signed = sign_stored(&[rsa, ed], MSG).unwrap();
    let text = String::from_utf8(signed.clone()).unwrap();
    assert_eq!(text.matches("DKIM-Signature:").count(), 2, "{text}");
    assert!(text.contains("a=rsa-sha256"));
    assert!(text.contains("a=ed25519-sha256"));
    assert!(text.contains("c=relaxed/relaxed"));
    assert!(!text.contains("x="));
    // From listed twice (oversigned), To and Subject once; the stored message follows unchanged.
    let h = text.split("h=").nth(1).unwrap().split(';').next().unwrap();
    let h: String = h.chars().filter(|c| !c.is_whitespace()).collect();
    assert_eq!(h.to_ascii_lowercase().matches("from").count(), 2, "{h}");
    assert!(signed.ends_with(MSG));
}

#[test]
fn no_key_for_the_from_domain_leaves_the_message_alone() {
    let dir = tempfile::tempdir().unwrap();
    let rsa = key_file(dir.path(), keygen::Algorithm::Ed25519);
    let other = b"From: a@other.test\r\n\r\nx\r\n";
    assert!(sign_stored(std::slice::from_ref(&rsa), other).is_none());
    assert!(sign_stored(&[rsa], b"Subject: no from\r\n\r\nx\r\n").is_none());
}

#[test]
fn keygen_refuses_to_overwrite_and_writes_0600() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let g = keygen::generate(dir.path(), "example.org", "s1", keygen::Algorithm::Ed25519).unwrap();
    let mode = std::fs::metadata(&g.path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let before = std::fs::read(&g.path).unwrap();
    assert!(keygen::generate(dir.path(), "example.org", "s1", keygen::Algorithm::Rsa).is_err());
    assert_eq!(std::fs::read(&g.path).unwrap(), before);
    assert!(keygen::generate(dir.path(), "example.org", "../x", keygen::Algorithm::Rsa).is_err());
    assert!(keygen::generate(dir.path(), "a/b.org", "s3", keygen::Algorithm::Rsa).is_err());
}

#[test]
fn zone_strings_are_at_most_255_octets() {
    let dir = tempfile::tempdir().unwrap();
    let g = keygen::generate(dir.path(), "example.org", "s1", keygen::Algorithm::Rsa).unwrap();
    assert!(g.record.len() > 255, "an RSA 2048 record needs two strings");
    let zone = g.zone_line();
    let strings: Vec<&str> = zone.split('"').skip(1).step_by(2).collect();
    assert!(strings.len() >= 2);
    assert!(strings.iter().all(|s| s.len() <= 255));
    assert_eq!(strings.concat(), g.record);
    assert!(zone.starts_with("s1._domainkey.example.org. IN TXT ("));
    assert_eq!(g.conf_line(), "dkim.example.org=s1:dkim/example.org.s1.key");
}

#[test]
fn reads_opendkim_pkcs1_keys() {
    // opendkim-genkey writes `BEGIN RSA PRIVATE KEY` (PKCS#1), as keygen does for RSA.
    let dir = tempfile::tempdir().unwrap();
    let g = keygen::generate(dir.path(), "example.org", "s1", keygen::Algorithm::Rsa).unwrap();
    let pem = std::fs::read_to_string(&g.path).unwrap();
    assert!(pem.starts_with("-----BEGIN RSA PRIVATE KEY-----"));
    assert!(matches!(Key::from_pem(pem.as_bytes()), Ok(Key::Rsa(_))));
    assert!(Key::from_pem(b"not a key").is_err());
}
