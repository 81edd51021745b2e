//! DKIM signing (issue 17): keys made by `jes dkim keygen`, messages relayed through an
//! independent upstream (aiosmtpd), and every signature checked by an independent verifier
//! (Python's dkimpy, tests/py/dkim_verify.py) against the records keygen printed.

mod common;

use std::io::Write as _;
use std::time::Duration;

use common::{Server, Upstream, DEFAULT_USERS};

/// 8-bit text, a 990-octet line, a line starting with a dot, and an attachment.
fn message(from: &str) -> String {
    let long: String = "x".repeat(988);
    format!(
        "From: Tracker <{from}>\r\nTo: boss@remote.test\r\nSubject: Task #7 geändert\r\n\
         Date: Wed, 25 Nov 2026 12:00:00 +0000\r\nMessage-ID: <dkim1@example.org>\r\n\
         MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n\
         --b1\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n\
         Grüße aus Köln: naïve café\r\n.a line that starts with a dot\r\n{long}\r\n\r\n\
         --b1\r\nContent-Type: application/octet-stream; name=\"report.bin\"\r\n\
         Content-Disposition: attachment; filename=\"report.bin\"\r\nContent-Transfer-Encoding: base64\r\n\r\n\
         AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJygpKissLS4vMDEyMzQ1Njc4\r\n\
         OTo7PD0+P0BBQkNERUZHSElKS0xNTk9QUVJTVFVWV1hZWltcXV5fYGFiY2RlZmdoaWprbG1ubw==\r\n\
         --b1--\r\n"
    )
}

/// Runs `jes dkim keygen` and returns (record name, bare TXT value) from what it printed.
fn keygen(server: &Server, domain: &str, selector: &str, algorithm: &str) -> (String, String) {
    let (ok, out) = server.jes(&[
        "dkim",
        "keygen",
        domain,
        "--selector",
        selector,
        "--algorithm",
        algorithm,
    ]);
    assert!(ok, "{out}");
    let conf = format!("dkim.{domain}={selector}:dkim/{domain}.{selector}.key");
    assert!(out.contains(&conf), "{out}");
    let value = out
        .lines()
        .skip_while(|l| !l.contains("with the value:"))
        .nth(1)
        .unwrap_or_else(|| panic!("no bare value in:\n{out}"))
        .trim()
        .to_string();
    assert!(value.starts_with("v=DKIM1; k="), "{value}");
    // The zone-file form holds the same value in strings of at most 255 octets.
    let zone = out
        .lines()
        .find(|l| l.contains("IN TXT ("))
        .unwrap_or_else(|| panic!("no zone line in:\n{out}"));
    let strings: Vec<&str> = zone.split('"').skip(1).step_by(2).collect();
    assert!(strings.iter().all(|s| s.len() <= 255), "{zone}");
    assert_eq!(strings.concat(), value);
    let path = server.etc.join(format!("dkim/{domain}.{selector}.key"));
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&path).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600);
    (format!("{selector}._domainkey.{domain}"), value)
}

fn append_conf(server: &Server, lines: &str) {
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(server.etc.join("mail.conf"))
        .unwrap();
    writeln!(f, "{lines}").unwrap();
}

/// dkimpy's verdict for each signature of `bytes`, one line each.
fn verify(server: &Server, bytes: &[u8], records: &[(String, String)]) -> String {
    let file = server
        .root
        .path()
        .join(format!("verify-{}.eml", rand_suffix()));
    std::fs::write(&file, bytes).unwrap();
    let mut args: Vec<String> = vec![file.display().to_string()];
    args.extend(records.iter().map(|(n, v)| format!("{n}={v}")));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    server.python_ok("dkim_verify.py", &args)
}

fn rand_suffix() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

#[test]
fn rsa_and_ed25519_signatures_verify_with_dkimpy_and_an_altered_message_fails() {
    let up = Upstream::start(&["--reject", "typo@remote.test=550"]);
    let server = Server::prepare(
        &format!(
            "defaultsmtpservers=127.0.0.1:{}\nsmtpdelivery.interval=1",
            up.port
        ),
        DEFAULT_USERS,
    );
    let rsa = keygen(&server, "example.org", "rsa1", "rsa");
    let ed = keygen(&server, "example.org", "ed1", "ed25519");
    // jes's own notices are From MAILER-DAEMON@ its hostname.
    let own = keygen(&server, "jes.test", "n1", "ed25519");
    // A second keygen under the same name refuses and leaves the key alone.
    let key = server.etc.join("dkim/example.org.rsa1.key");
    let before = std::fs::read(&key).unwrap();
    let (ok, out) = server.jes(&["dkim", "keygen", "example.org", "--selector", "rsa1"]);
    assert!(!ok && out.contains("never overwritten"), "{out}");
    assert_eq!(std::fs::read(&key).unwrap(), before);
    append_conf(
        &server,
        "dkim.example.org=rsa1:dkim/example.org.rsa1.key, ed1:dkim/example.org.ed1.key\n\
         dkim.jes.test=n1:dkim/jes.test.n1.key\n\
         dkim.other.test=s1:dkim/missing.key",
    );
    // jes check prints each record and warns about the missing key.
    let check = std::process::Command::new(common::jes_bin())
        .arg("check")
        .arg(&server.etc)
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&check.stdout).to_string();
    assert!(check.status.success(), "{out}");
    assert!(out.contains(&format!("TXT {}: {}", rsa.0, rsa.1)), "{out}");
    assert!(out.contains(&format!("TXT {}: {}", ed.0, ed.1)), "{out}");
    assert!(
        out.lines()
            .any(|l| l.starts_with("warning:") && l.contains("DKIM key s1 of other.test")),
        "{out}"
    );
    let server = server.launch();

    let body = message("tracker@example.org");
    assert!(server
        .send("tracker@example.org", &["boss@remote.test"], &body)
        .starts_with("250"));
    let got = up.wait_for(1, Duration::from_secs(30));
    let data: Vec<u8> = got[0]["data"]
        .as_str()
        .unwrap()
        .chars()
        .map(|c| c as u32 as u8)
        .collect();
    let text = String::from_utf8_lossy(&data).to_string();
    assert_eq!(text.matches("DKIM-Signature:").count(), 2, "{text}");
    assert!(text.contains("\r\n.a line that starts with a dot\r\n"));
    let records = [rsa.clone(), ed.clone()];
    let verdict = verify(&server, &data, &records);
    assert_eq!(
        verdict.lines().collect::<Vec<_>>(),
        ["ok rsa1 rsa-sha256", "ok ed1 ed25519-sha256"],
        "{verdict}\n{text}"
    );
    // Altered after signing: one body word changed; both signatures fail.
    let altered = text.replacen("naïve", "naive", 1);
    assert_ne!(altered, text);
    let verdict = verify(&server, altered.as_bytes(), &records);
    assert_eq!(
        verdict.lines().collect::<Vec<_>>(),
        ["FAIL rsa1 rsa-sha256", "FAIL ed1 ed25519-sha256"],
        "{verdict}"
    );
    // A second From: added above the signed one fails too (From is oversigned).
    let forged = format!("From: ceo@example.org\r\n{text}");
    let verdict = verify(&server, forged.as_bytes(), &records);
    assert!(!verdict.contains("ok "), "{verdict}");

    // Another From: domain has no key: no signature.
    assert!(server
        .send(
            "tracker@example.org",
            &["boss@remote.test"],
            &message("a@unsigned.test")
        )
        .starts_with("250"));
    let got = up.wait_for(2, Duration::from_secs(30));
    let second = got[1]["data"].as_str().unwrap();
    assert!(!second.contains("DKIM-Signature"), "{second}");

    // jes's own bounce to a local sender carries the hostname's signature.
    assert!(server
        .send(
            "trackstudio@127.0.0.1",
            &["typo@remote.test"],
            &message("trackstudio@127.0.0.1")
        )
        .starts_with("250"));
    server.wait_until("the bounce", Duration::from_secs(30), || {
        !server.mailbox_files("trackstudio@127.0.0.1").is_empty()
    });
    let files = server.mailbox_files("trackstudio@127.0.0.1");
    let dsn = std::fs::read(&files[0]).unwrap();
    let verdict = verify(&server, &dsn, &[own]);
    assert_eq!(
        verdict.trim(),
        "ok n1 ed25519-sha256",
        "{}",
        String::from_utf8_lossy(&dsn)
    );
}

#[test]
fn no_signature_for_mail_relayed_only_by_its_envelope_sender() {
    let up = Upstream::start(&[]);
    let server = Server::prepare(
        &format!(
            "defaultsmtpservers=127.0.0.1:{}\nsmtpdelivery.interval=1",
            up.port
        ),
        DEFAULT_USERS,
    );
    keygen(&server, "example.org", "ed1", "ed25519");
    // The same server, but 127.0.0.1 may relay only as a listed sender: unauthenticated.
    let conf = std::fs::read_to_string(server.etc.join("mail.conf")).unwrap();
    let conf = conf.replace(
        "relay.ipaddresses=127.0.0.1",
        "relay.emailaddresses=tracker@example.org",
    );
    std::fs::write(server.etc.join("mail.conf"), conf).unwrap();
    append_conf(&server, "dkim.example.org=ed1:dkim/example.org.ed1.key");
    let server = server.launch();
    assert!(server
        .send(
            "tracker@example.org",
            &["boss@remote.test"],
            &message("tracker@example.org")
        )
        .starts_with("250"));
    let got = up.wait_for(1, Duration::from_secs(30));
    let data = got[0]["data"].as_str().unwrap();
    assert!(data.contains("Subject: Task #7"), "{data}");
    assert!(
        !data.contains("DKIM-Signature"),
        "signed for an unauthenticated client:\n{data}"
    );
}
