//! Integration tests of what real mail software showed up (issue 19, part 1): a smart host with
//! a self-signed certificate made by `openssl req -x509`, and how long idle connections to it are
//! kept. The smart host is the aiosmtpd upstream (`tests/py/upstream.py`).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::{Server, Upstream, DEFAULT_USERS};

const BODY: &str =
    "From: tracker@localhost\r\nTo: boss@remote.test\r\nSubject: Task #7\r\n\r\nDone.\r\n";

fn run(cmd: &mut Command) {
    let out = cmd.output().expect("run openssl");
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A smart host's certificate made the usual way: OpenSSL 3 marks it `CA:TRUE`.
fn openssl_req_x509(dir: &Path) -> (PathBuf, PathBuf) {
    let (cert, key) = (dir.join("c.pem"), dir.join("k.pem"));
    run(Command::new("openssl")
        .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .args(["-days", "30", "-subj", "/CN=localhost"])
        .args(["-addext", "subjectAltName=DNS:localhost"]));
    let text = Command::new("openssl")
        .args(["x509", "-noout", "-ext", "basicConstraints", "-in"])
        .arg(&cert)
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&text.stdout).contains("CA:TRUE"),
        "the case of the issue: a CA:TRUE certificate"
    );
    (cert, key)
}

/// The same kind of certificate, valid only in January 2025. OpenSSL 3.0's `req` cannot set past
/// dates, so the request is self-signed with `openssl ca`, which can.
fn openssl_expired(dir: &Path) -> (PathBuf, PathBuf) {
    let (cert, key, csr) = (
        dir.join("old.pem"),
        dir.join("old.key"),
        dir.join("old.csr"),
    );
    std::fs::write(dir.join("index.txt"), "").unwrap();
    let conf = dir.join("ca.cnf");
    std::fs::write(
        &conf,
        format!(
            "[ca]\ndefault_ca = d\n[d]\ndatabase = {0}/index.txt\nserial = {0}/serial\n\
             new_certs_dir = {0}\ndefault_md = sha256\npolicy = p\ncopy_extensions = copy\n\
             unique_subject = no\n[p]\ncommonName = supplied\n",
            dir.display()
        ),
    )
    .unwrap();
    run(Command::new("openssl")
        .args(["req", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&csr)
        .args(["-subj", "/CN=localhost"])
        .args(["-addext", "subjectAltName=DNS:localhost"])
        .args(["-addext", "basicConstraints=critical,CA:TRUE"]));
    run(Command::new("openssl")
        .args([
            "ca",
            "-batch",
            "-notext",
            "-selfsign",
            "-create_serial",
            "-config",
        ])
        .arg(&conf)
        .arg("-keyfile")
        .arg(&key)
        .arg("-in")
        .arg(&csr)
        .arg("-out")
        .arg(&cert)
        .args([
            "-startdate",
            "20250101000000Z",
            "-enddate",
            "20250201000000Z",
        ]));
    (cert, key)
}

/// jes relaying to `smart_host` with `smtpdelivery.tls=required` and `cafile` trusted.
fn strict_relay(smart_host: &str, cafile: &Path) -> Server {
    Server::start(
        &format!(
            "defaultsmtpservers={smart_host}\nsmtpdelivery.interval=1\n\
             smtpdelivery.tls=required\nsmtpdelivery.cafile={}\n",
            cafile.display()
        ),
        DEFAULT_USERS,
    )
}

/// Sends one message and waits for its first failed attempt; the queue file's text.
fn first_failure(server: &Server) -> String {
    assert!(server
        .send("tracker@localhost", &["boss@remote.test"], BODY)
        .starts_with("250"));
    let mut text = String::new();
    server.wait_until("a deferred attempt", Duration::from_secs(20), || {
        text = server
            .queue_files()
            .first()
            .and_then(|f| std::fs::read_to_string(f).ok())
            .unwrap_or_default();
        text.contains("Attempts: 1")
    });
    text
}

#[test]
fn a_self_signed_smart_host_in_the_ca_file_gets_the_mail() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = openssl_req_x509(dir.path());
    let up = Upstream::start(&["--tls", cert.to_str().unwrap(), key.to_str().unwrap()]);
    let server = strict_relay(&format!("localhost:{}", up.port), &cert);
    assert!(server
        .send("tracker@localhost", &["boss@remote.test"], BODY)
        .starts_with("250"));
    let got = up.wait_for(1, Duration::from_secs(20));
    assert_eq!(got[0]["tls"], true, "delivered inside TLS");
    assert_eq!(got[0]["rcpt_tos"], serde_json::json!(["boss@remote.test"]));
    server.wait_until("queue empty", Duration::from_secs(10), || {
        server.queue_files().is_empty()
    });
    let log = server.log();
    assert!(
        log.lines()
            .any(|l| l.contains("outcome=\"delivered\"") && l.contains("tls=TLSv1.3")),
        "the delivery line names the TLS version: {log}"
    );
}

#[test]
fn a_pinned_certificate_must_still_be_in_date_and_name_the_host() {
    let dir = tempfile::tempdir().unwrap();
    let (old, old_key) = openssl_expired(dir.path());
    let up = Upstream::start(&["--tls", old.to_str().unwrap(), old_key.to_str().unwrap()]);
    let server = strict_relay(&format!("localhost:{}", up.port), &old);
    let text = first_failure(&server);
    assert!(
        text.contains("451 4.7.5") && text.contains("certificate expired"),
        "{text}"
    );
    assert!(up.received().is_empty(), "nothing sent to an expired host");
    drop(server);

    // In date, but the smart host is named by an address the certificate does not name.
    let (cert, key) = openssl_req_x509(dir.path());
    let up = Upstream::start(&["--tls", cert.to_str().unwrap(), key.to_str().unwrap()]);
    let server = strict_relay(&format!("127.0.0.1:{}", up.port), &cert);
    let text = first_failure(&server);
    assert!(
        text.contains("451 4.7.5") && text.contains("not valid for name"),
        "{text}"
    );
    assert!(up.received().is_empty(), "nothing sent to a misnamed host");
}

/// Two messages one after the other; whether the second came over the first one's connection.
fn second_message_reuses(cache: &str, pause: Duration) -> bool {
    let up = Upstream::start(&[]);
    let server = Server::start(
        &format!(
            "defaultsmtpservers=127.0.0.1:{}\nsmtpdelivery.interval=1\n\
             smtpdelivery.connectioncache={cache}\n",
            up.port
        ),
        DEFAULT_USERS,
    );
    assert!(!server.log().contains("unknown key"), "{}", server.log());
    for n in 1..=2 {
        assert!(server
            .send("tracker@localhost", &["boss@remote.test"], BODY)
            .starts_with("250"));
        up.wait_for(n, Duration::from_secs(20));
        std::thread::sleep(pause);
    }
    let got = up.received();
    got[0]["peer_port"] == got[1]["peer_port"]
}

#[test]
fn idle_smart_host_connections_are_kept_for_connectioncache_seconds() {
    assert!(
        second_message_reuses("30", Duration::ZERO),
        "a connection is reused within the time"
    );
    assert!(
        !second_message_reuses("1", Duration::from_secs(3)),
        "and not after it"
    );
    assert!(
        !second_message_reuses("0", Duration::ZERO),
        "0: a new connection for every message"
    );
}
