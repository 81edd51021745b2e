//! The mail clients administrators actually point at a server: swaks sending (plain, STARTTLS on
//! submission with AUTH, implicit TLS with pipelining, a wrong password) and fetchmail polling
//! over STLS with UIDL and deleting what it fetched, as a tracker does every minute.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::{free_port, Server, DEFAULT_USERS};

fn tool(name: &str) -> &str {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {name}")])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(
        found,
        "{name} is required by the test suite (scripts/install-test-deps installs it)"
    );
    name
}

fn swaks(args: &[&str]) -> Output {
    Command::new(tool("swaks"))
        .args(args)
        .output()
        .expect("run swaks")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn body_of(path: &Path) -> String {
    String::from_utf8_lossy(&std::fs::read(path).expect("read message file")).into_owned()
}

#[test]
fn swaks_over_plain_starttls_and_implicit_tls() {
    let submission = free_port();
    let smtps = free_port();
    let server = Server::start(
        &format!("submissionport={submission}\nsecuresmtpport={smtps}\n"),
        DEFAULT_USERS,
    );
    let smtp = format!("127.0.0.1:{}", server.smtp_port);
    let submission = format!("127.0.0.1:{submission}");
    let smtps = format!("127.0.0.1:{smtps}");

    // The tracker's way in: port 25 equivalent, no login, a local account.
    let out = swaks(&[
        "--server",
        &smtp,
        "--from",
        "tracker@example.org",
        "--to",
        "trackstudio@127.0.0.1",
        "--header",
        "Subject: plain swaks",
        "--body",
        "first",
    ]);
    assert!(out.status.success(), "plain: {}", text(&out));

    // Submission with STARTTLS and AUTH PLAIN.
    let out = swaks(&[
        "--server",
        &submission,
        "--tls",
        "--auth",
        "PLAIN",
        "--auth-user",
        "analyst@localhost",
        "--auth-password",
        "password",
        "--from",
        "analyst@localhost",
        "--to",
        "trackstudio@127.0.0.1",
        "--header",
        "Subject: starttls swaks",
        "--body",
        "second",
    ]);
    let t = text(&out);
    assert!(out.status.success(), "starttls: {t}");
    assert!(t.contains("TLS started"), "STARTTLS was used: {t}");
    assert!(t.contains("235 2.7.0"), "AUTH PLAIN accepted: {t}");

    // Implicit TLS (RFC 8314) with AUTH LOGIN and pipelining.
    let out = swaks(&[
        "--server",
        &smtps,
        "--tls-on-connect",
        "--pipeline",
        "--auth",
        "LOGIN",
        "--auth-user",
        "analyst@localhost",
        "--auth-password",
        "password",
        "--from",
        "analyst@localhost",
        "--to",
        "trackstudio@127.0.0.1",
        "--header",
        "Subject: implicit swaks",
        "--body",
        "third",
    ]);
    let t = text(&out);
    assert!(out.status.success(), "implicit TLS: {t}");
    assert!(t.contains("PIPELINING"), "pipelining offered: {t}");

    // A wrong password is refused and nothing is sent.
    let out = swaks(&[
        "--server",
        &submission,
        "--tls",
        "--auth",
        "PLAIN",
        "--auth-user",
        "analyst@localhost",
        "--auth-password",
        "wrong",
        "--from",
        "analyst@localhost",
        "--to",
        "trackstudio@127.0.0.1",
        "--body",
        "never",
    ]);
    let t = text(&out);
    assert!(!out.status.success(), "a wrong password must fail: {t}");
    assert!(t.contains("535 5.7.8"), "535 for the wrong password: {t}");

    // Submission without AUTH is refused before any mail is taken.
    let out = swaks(&[
        "--server",
        &submission,
        "--tls",
        "--from",
        "analyst@localhost",
        "--to",
        "trackstudio@127.0.0.1",
        "--body",
        "never",
    ]);
    assert!(
        !out.status.success(),
        "submission without AUTH: {}",
        text(&out)
    );

    let files = server.mailbox_files("trackstudio@127.0.0.1");
    assert_eq!(files.len(), 3, "three messages delivered: {files:?}");
    let all: String = files.iter().map(|f| body_of(f)).collect();
    for subject in ["plain swaks", "starttls swaks", "implicit swaks"] {
        assert!(
            all.contains(&format!("Subject: {subject}")),
            "{subject} in {all}"
        );
    }
    assert!(!all.contains("never"), "refused mail was not stored");
}

#[test]
fn fetchmail_polls_over_stls_and_deletes_what_it_fetched() {
    let server = Server::start("", DEFAULT_USERS);
    let sent = server.send(
        "tracker@example.org",
        &["trackstudio@127.0.0.1"],
        "Subject: for fetchmail\r\n\r\nline one\r\n.dot line\r\n",
    );
    assert!(sent.starts_with("250"), "send: {sent}");
    let sent = server.send(
        "tracker@example.org",
        &["trackstudio@127.0.0.1"],
        "Subject: second for fetchmail\r\n\r\nline two\r\n",
    );
    assert!(sent.starts_with("250"), "send: {sent}");

    let work = server.root.path().join("fetchmail");
    std::fs::create_dir_all(&work).expect("mkdir");
    let rc = work.join("fetchmailrc");
    let out_dir = work.join("out");
    std::fs::create_dir_all(&out_dir).expect("mkdir out");
    // sslproto makes fetchmail insist on STLS; the certificate is jes's generated self-signed one.
    std::fs::write(
        &rc,
        format!(
            "poll 127.0.0.1 port {} protocol pop3 uidl\n  user 'trackstudio@127.0.0.1' there with password 'secret' is 'root' here\n  sslproto 'tls1.2+' no sslcertck\n  mda \"/bin/sh -c 'cat > {}/msg.$$'\"\n",
            server.pop3_port,
            out_dir.display()
        ),
    )
    .expect("write fetchmailrc");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&rc, std::fs::Permissions::from_mode(0o600)).expect("chmod");

    let out = Command::new(tool("fetchmail"))
        .arg("-f")
        .arg(&rc)
        .arg("--idfile")
        .arg(work.join("ids"))
        .args(["--nokeep", "-v", "--nosyslog"])
        .env("FETCHMAILHOME", &work)
        .output()
        .expect("run fetchmail");
    let t = text(&out);
    assert!(out.status.success(), "fetchmail: {t}");
    assert!(
        t.contains("POP3> STLS"),
        "fetchmail upgraded with STLS: {t}"
    );
    assert!(t.contains("upgrade to TLS succeeded"), "{t}");

    let mut fetched: Vec<String> = std::fs::read_dir(&out_dir)
        .expect("read out")
        .map(|e| body_of(&e.expect("entry").path()))
        .collect();
    fetched.sort();
    assert_eq!(fetched.len(), 2, "two messages fetched: {fetched:?}");
    assert!(fetched.iter().any(|m| m.contains("line one\r\n.dot line\r\n")
        || m.contains("line one\n.dot line\n")), "dot line unstuffed: {fetched:?}");
    assert!(fetched
        .iter()
        .all(|m| m.contains("X-DeliveredTo: trackstudio@127.0.0.1")));
    assert!(
        server.mailbox_files("trackstudio@127.0.0.1").is_empty(),
        "fetchmail's deletions took effect at QUIT"
    );

    // A second poll finds nothing and still succeeds (fetchmail's exit code 1 means "no mail").
    let again = Command::new("fetchmail")
        .arg("-f")
        .arg(&rc)
        .arg("--idfile")
        .arg(work.join("ids"))
        .args(["--nokeep", "--nosyslog"])
        .env("FETCHMAILHOME", &work)
        .output()
        .expect("run fetchmail again");
    assert_eq!(again.status.code(), Some(1), "no mail: {}", text(&again));
}
