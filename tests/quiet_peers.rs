//! A green test run stays quiet, so that a real failure stands out: the upstream SMTP peer
//! (tests/py/upstream.py, aiosmtpd) prints nothing about what the tests do on purpose, AUTH
//! without TLS and a client that refuses its certificate, which used to print UserWarnings and a
//! `TLSV1_ALERT_UNKNOWN_CA` traceback in every run.

mod common;

use common::{free_port, python3, repo_path, self_signed};
use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};

/// A client that verifies the certificate against the system's CAs: the handshake with the
/// upstream's self-signed certificate fails on the client's side, as jes's does under
/// `smtpdelivery.tls=verify`.
const REFUSING_CLIENT: &str = r#"
import smtplib, ssl, sys
s = smtplib.SMTP("127.0.0.1", int(sys.argv[1]), timeout=10)
s.ehlo("client.test")
try:
    s.starttls(context=ssl.create_default_context())
    sys.exit("the handshake should have failed")
except ssl.SSLError:
    print("refused")
"#;

#[test]
fn upstream_peer_prints_nothing_for_what_tests_do_on_purpose() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = self_signed(dir.path());
    let port = free_port();
    let mut up = Command::new(python3())
        .arg(repo_path("tests/py/upstream.py"))
        .arg(port.to_string())
        .arg(dir.path().join("log.jsonl"))
        .args(["--auth", "user:pass", "--tls"])
        .arg(&cert)
        .arg(&key)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut ready = String::new();
    BufReader::new(up.stdout.as_mut().unwrap())
        .read_line(&mut ready)
        .unwrap();
    assert_eq!(ready.trim(), "ready");

    let out = Command::new(python3())
        .args(["-c", REFUSING_CLIENT, &port.to_string()])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "refused",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The upstream logs the failed handshake as the connection ends; give it a moment.
    std::thread::sleep(std::time::Duration::from_millis(500));
    up.kill().unwrap();
    up.wait().unwrap();
    let mut err = String::new();
    up.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    assert_eq!(err, "", "the upstream peer printed this in a green run");
}
