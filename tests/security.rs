//! Integration tests of the security issue: TLS (STARTTLS, STLS, implicit), AUTH, submission, the
//! clear-text policy, limits and hostile clients, with Python's smtplib/poplib and raw sockets.

mod common;

use std::time::Duration;

use common::{free_port, Server, DEFAULT_USERS};

struct Ports {
    submission: u16,
    smtps: u16,
    pop3s: u16,
}

fn tls_server(extra: &str) -> (Server, Ports) {
    let ports = Ports {
        submission: free_port(),
        smtps: free_port(),
        pop3s: free_port(),
    };
    let server = Server::start(
        &format!(
            "submissionport={}\nsecuresmtpport={}\nsecurepop3port={}\n{extra}",
            ports.submission, ports.smtps, ports.pop3s
        ),
        DEFAULT_USERS,
    );
    (server, ports)
}

fn env(ports: &Ports) -> Vec<(&'static str, String)> {
    vec![
        ("JES_SUBMISSION_PORT", ports.submission.to_string()),
        ("JES_SMTPS_PORT", ports.smtps.to_string()),
        ("JES_POP3S_PORT", ports.pop3s.to_string()),
    ]
}

#[test]
fn starttls_stls_and_implicit_tls_with_a_generated_certificate() {
    let (server, ports) = tls_server("");
    server.python_env_ok("security.py", &["tls"], &env(&ports));
    assert!(
        server.etc.join("tls/selfsigned-cert.pem").exists(),
        "the certificate is kept in the configuration directory"
    );
    assert!(
        server.log().contains("made a self-signed TLS certificate"),
        "and the log says so"
    );
    // Each accepted line says how the message came: three over TLS, one in clear.
    assert!(server
        .send(
            "someone@example.org",
            &["analyst@localhost"],
            "Subject: plain\r\n\r\nhi\r\n"
        )
        .starts_with("250"));
    let log = server.log();
    let accepted: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("outcome=\"accepted\""))
        .collect();
    let with = |tls: &str| accepted.iter().filter(|l| l.contains(tls)).count();
    assert_eq!(
        (accepted.len(), with("tls=TLSv1.3"), with("tls=none")),
        (4, 3, 1),
        "{log}"
    );
}

#[test]
fn auth_success_failure_submission_and_relay() {
    let (server, ports) = tls_server("");
    server.python_env_ok("security.py", &["auth"], &env(&ports));
}

#[test]
fn clear_text_never_refuses_passwords_until_tls() {
    let (server, ports) = tls_server("allowClearText=never");
    server.python_env_ok("security.py", &["cleartext_never"], &env(&ports));
}

#[test]
fn starttls_injection_is_thrown_away() {
    let server = Server::start("", DEFAULT_USERS);
    server.python_ok("hostile.py", &["starttls_injection"]);
}

#[test]
fn huge_lines_and_random_bytes_leave_the_server_serving() {
    let server = Server::start("", DEFAULT_USERS);
    server.python_ok("hostile.py", &["garbage"]);
}

#[test]
fn idle_connections_do_not_lock_out_the_tracker() {
    let server = Server::start("", DEFAULT_USERS);
    server.python_ok("hostile.py", &["idle_flood"]);
}

#[test]
fn brute_force_is_slowed_per_address_and_never_locks_the_account() {
    let server = Server::start("max.pass.attempts=3", DEFAULT_USERS);
    server.python_ok("hostile.py", &["brute_force"]);
    let log = server.log();
    assert!(
        log.contains("client=127.0.0.2") && log.contains("waiting"),
        "the attacker was slowed: {log}"
    );
    assert!(
        !log.lines()
            .any(|l| l.contains("waiting") && l.contains("client=127.0.0.1 ")),
        "the tracker's address was never slowed"
    );
}

#[test]
fn slow_clients_are_cut_at_the_session_time_limit() {
    let server = Server::start("smtp.maxsessiontime=3", DEFAULT_USERS);
    server.python_ok("hostile.py", &["slowloris"]);
}

#[test]
fn recipient_error_and_header_limits() {
    let server = Server::start(
        "max.valid.rcpt=2\nmax.error.count=3\nsmtp.maxheadersize=1",
        DEFAULT_USERS,
    );
    let mut c = server.connect(server.smtp_port);
    assert!(c.cmd("EHLO t").starts_with("250"));
    assert!(c.cmd("MAIL FROM:<a@example.org>").starts_with("250"));
    assert!(c.cmd("RCPT TO:<trackstudio@127.0.0.1>").starts_with("250"));
    assert!(c.cmd("RCPT TO:<analyst@localhost>").starts_with("250"));
    let r = c.cmd("RCPT TO:<postmaster@localhost>");
    assert!(r.starts_with("452 4.5.3"), "max.valid.rcpt: {r}");
    assert!(c.cmd("DATA").starts_with("354"));
    let header = format!("Subject: {}\r\n\r\nbody\r\n.\r\n", "h".repeat(2000));
    c.send(header.as_bytes());
    let r = c.reply();
    assert!(r.starts_with("552"), "smtp.maxheadersize: {r}");
    for _ in 0..2 {
        assert!(c.cmd("BOGUS").starts_with("500"));
    }
    assert!(
        c.cmd("BOGUS").starts_with("500"),
        "the third error is answered"
    );
    let r = c.reply();
    assert!(
        r.starts_with("421 4.7.0"),
        "then max.error.count closes the session: {r}"
    );
    assert_eq!(c.reply(), "", "the connection is closed");
    std::thread::sleep(Duration::from_millis(100));
    assert!(server.mailbox_files("trackstudio@127.0.0.1").is_empty());
}

/// `openssl s_client -servername 127.0.0.1` sends the IP address as SNI, as msmtp does for
/// `host 127.0.0.1`: rustls ignores it and used to log a WARN for every such connection.
#[test]
fn an_ip_address_as_sni_is_no_warning() {
    use std::io::Write as _;
    use std::process::{Command, Stdio};
    // An unknown key: a real warning, which must still reach the log.
    let (server, ports) = tls_server("nosuchkey=1");
    for _ in 0..3 {
        let mut child = Command::new("openssl")
            .args(["s_client", "-quiet", "-connect"])
            .arg(format!("127.0.0.1:{}", ports.smtps))
            .args(["-servername", "127.0.0.1"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("openssl s_client");
        child.stdin.take().unwrap().write_all(b"QUIT\r\n").unwrap();
        let out = child.wait_with_output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("221 "), "the TLS session worked: {text}");
    }
    let log = server.log();
    assert!(
        log.lines()
            .any(|l| l.contains("WARN") && l.contains("unknown key 'nosuchkey'")),
        "other warnings are still logged: {log}"
    );
    assert!(!log.contains("Illegal SNI"), "{log}");
}
