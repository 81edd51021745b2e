//! Integration tests of the core issue: the real binary, real clients (Python smtplib/poplib, curl).

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::{Server, DEFAULT_USERS};

#[test]
fn trackstudio_receive_flow_with_python_clients() {
    let server = Server::start("", DEFAULT_USERS);
    let out = server.python_ok("trackstudio_flow.py", &[]);
    assert!(out.contains("ok: RETR returns exactly the bytes"), "{out}");
    assert!(server.mailbox_files("trackstudio@127.0.0.1").is_empty());
    let log = server.log();
    assert!(
        log.contains("outcome=\"accepted\""),
        "the log has a line per accepted message:\n{log}"
    );
    assert!(
        log.contains("POP3 login"),
        "the log has a line per POP3 login:\n{log}"
    );
    assert!(
        log.contains("outcome=\"pop3-deleted\""),
        "the log has a line per deletion:\n{log}"
    );
}

#[test]
fn every_refusal() {
    let server = Server::start("smtp.messagesize=1", DEFAULT_USERS);
    server.python_ok("refusals.py", &[]);
    assert!(
        server.mailbox_files("trackstudio@127.0.0.1").is_empty(),
        "the over-size message left nothing behind"
    );
}

#[test]
fn jes_fixture_directory_works_unchanged() {
    let mut server = Server::prepare("", "");
    let fixture = common::repo_path("tests/fixtures/jes-1.6.1/etc");
    std::fs::copy(fixture.join("user.conf"), server.etc.join("user.conf")).unwrap();
    let mbox = server.mailbox("trackstudio@127.0.0.1");
    std::fs::create_dir_all(&mbox).unwrap();
    std::fs::copy(
        fixture.join("users/trackstudio@127.0.0.1/pop6501300281251615158.jmsg"),
        mbox.join("pop6501300281251615158.jmsg"),
    )
    .unwrap();
    server.spawn();
    server.python_ok("fixture_pop.py", &[]);
}

fn curl_available() -> bool {
    Command::new("curl")
        .arg("--version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

#[test]
fn curl_sends_and_reads() {
    assert!(
        curl_available(),
        "curl is required by the test suite (scripts/test installs it)"
    );
    let server = Server::start("", DEFAULT_USERS);
    let msg = server.root.path().join("msg.txt");
    std::fs::write(
        &msg,
        "From: a@example.org\r\nTo: analyst@localhost\r\nSubject: curl\r\nDate: Wed, 25 Nov 2026 12:00:00 +0000\r\nMessage-ID: <c1@example.org>\r\n\r\nHello from curl.\r\n.dot line\r\n",
    )
    .unwrap();
    let sent = Command::new("curl")
        .args(["-sS", &format!("smtp://127.0.0.1:{}", server.smtp_port)])
        .args([
            "--mail-from",
            "a@example.org",
            "--mail-rcpt",
            "analyst@localhost",
            "-T",
        ])
        .arg(&msg)
        .output()
        .unwrap();
    assert!(
        sent.status.success(),
        "curl smtp: {}",
        String::from_utf8_lossy(&sent.stderr)
    );
    let read = Command::new("curl")
        .args([
            "-sS",
            &format!("pop3://127.0.0.1:{}/1", server.pop3_port),
            "-u",
            "analyst@localhost:password",
        ])
        .output()
        .unwrap();
    assert!(
        read.status.success(),
        "curl pop3: {}",
        String::from_utf8_lossy(&read.stderr)
    );
    let body = String::from_utf8_lossy(&read.stdout);
    assert!(
        body.starts_with(
            "X-DeliveredTo: analyst@localhost\r\nReturn-Path: <a@example.org>\r\nReceived: "
        ),
        "{body}"
    );
    assert!(
        body.contains("Hello from curl.\r\n.dot line\r\n"),
        "curl gets the dot line back unstuffed: {body}"
    );
    let uidl = Command::new("curl")
        .args([
            "-sS",
            &format!("pop3://127.0.0.1:{}", server.pop3_port),
            "-u",
            "analyst@localhost:password",
            "-X",
            "UIDL",
        ])
        .output()
        .unwrap();
    let uidl = String::from_utf8_lossy(&uidl.stdout);
    assert!(uidl.starts_with("1 "), "UIDL listing: {uidl}");
}

#[test]
fn smuggling_never_stores_a_second_message() {
    let server = Server::start("", DEFAULT_USERS);
    for payload in [
        &b"Subject: a\r\n\r\nbody\n.\r\nMAIL FROM:<evil@example.org>\r\nRCPT TO:<trackstudio@127.0.0.1>\r\nDATA\r\nSubject: smuggled\r\n\r\nx\r\n.\r\n"[..],
        &b"Subject: a\r\n\r\nbody\r\n.\nMAIL FROM:<evil@example.org>\r\nRCPT TO:<trackstudio@127.0.0.1>\r\nDATA\r\nSubject: smuggled\r\n\r\nx\r\n.\r\n"[..],
    ] {
        let mut c = server.connect(server.smtp_port);
        assert!(c.cmd("EHLO t").starts_with("250"));
        assert!(c.cmd("MAIL FROM:<a@example.org>").starts_with("250"));
        assert!(c.cmd("RCPT TO:<trackstudio@127.0.0.1>").starts_with("250"));
        assert!(c.cmd("DATA").starts_with("354"));
        c.send(payload);
        let reply = c.reply();
        assert!(reply.starts_with("250"), "a bare LF is normalised: {reply}");
        assert!(c.cmd("QUIT").starts_with("221"), "the session goes on after {reply}");
    }
    // One message per DATA: the forged transaction is text of the first message, its lone `.`
    // line stored stuffed (tests/bare_lf.rs has every sequence, relayed and read over POP3 too).
    let files = server.mailbox_files("trackstudio@127.0.0.1");
    assert_eq!(files.len(), 2, "one message per DATA: {files:?}");
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        assert!(
            text.contains("Subject: a\r\n\r\nbody\r\n..\r\nMAIL FROM:<evil@example.org>\r\n"),
            "{text}"
        );
        assert!(!text.contains("\r\n.\r\n"), "{text}");
    }
}

#[test]
fn config_changes_apply_without_restart_and_keep_sessions() {
    let server = Server::start("", DEFAULT_USERS);
    let mut pop = server.connect(server.pop3_port);
    assert!(pop.cmd("USER trackstudio@127.0.0.1").starts_with("+OK"));
    let mut c = server.connect(server.smtp_port);
    assert!(c.cmd("EHLO t").starts_with("250"));
    assert!(c.cmd("MAIL FROM:<a@example.org>").starts_with("250"));
    assert!(c.cmd("RCPT TO:<newbie@localhost>").starts_with("550"));
    let users = server.etc.join("user.conf");
    let mut text = std::fs::read_to_string(&users).unwrap();
    text.push_str("# added while running\nuser.newbie@localhost=pw\n");
    std::fs::write(&users, text).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = c.cmd("RCPT TO:<newbie@localhost>");
        if r.starts_with("250") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "new account not accepted within 10 s: {r}"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    assert!(
        pop.cmd("PASS secret").starts_with("+OK"),
        "the open POP3 session survived the reload"
    );
    // The plaintext password was replaced by a hash, comments kept.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = std::fs::read_to_string(&users).unwrap();
        if text.contains("user.newbie@localhost=$argon2id$") {
            assert!(
                text.contains("# added while running"),
                "comments kept: {text}"
            );
            assert!(
                !text.contains("=secret"),
                "every plaintext password hashed: {text}"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "plaintext password not upgraded: {text}"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    let mut p2 = server.connect(server.pop3_port);
    assert!(p2.cmd("USER newbie@localhost").starts_with("+OK"));
    assert!(
        p2.cmd("PASS pw").starts_with("+OK"),
        "the hashed password still logs in"
    );
}

#[test]
fn bad_configuration_refuses_to_start_naming_file_line_and_key() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("mail.conf"), "smtpport=25\n# no domains\n").unwrap();
    let out = Command::new(common::jes_bin())
        .arg("serve")
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("mail.conf") && err.contains("domains"),
        "{err}"
    );

    std::fs::write(
        dir.path().join("mail.conf"),
        "domains=localhost\nsmtpport=abc\n",
    )
    .unwrap();
    let out = Command::new(common::jes_bin())
        .arg("check")
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("mail.conf:2") && err.contains("smtpport"),
        "{err}"
    );
}

#[test]
fn init_then_check_describes_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let etc = dir.path().join("etc");
    let out = Command::new(common::jes_bin())
        .arg("init")
        .arg(&etc)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = Command::new(common::jes_bin())
        .arg("check")
        .arg(&etc)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("2525") && text.contains("1100"),
        "listeners named: {text}"
    );
    assert!(text.contains("accounts: 2"), "{text}");
    // As the README says: the accounts themselves; values in mail.conf's spelling; TLS as it
    // will be (the sample has no tls.certificate, so jes makes one and offers it).
    assert!(
        text.contains("accounts: 2\n  analyst@localhost\n  trackstudio@127.0.0.1\n"),
        "{text}"
    );
    assert!(text.contains("(level info)"), "{text}");
    assert!(text.contains("allowClearText:  encryptedOnly"), "{text}");
    assert!(
        text.contains("TLS:             STARTTLS (SMTP), STLS (POP3)"),
        "{text}"
    );
    assert!(
        !text.contains("EncryptedOnly") && !text.contains("level Info"),
        "{text}"
    );
    let again = Command::new(common::jes_bin())
        .arg("init")
        .arg(&etc)
        .output()
        .unwrap();
    assert!(!again.status.success(), "init refuses to overwrite");
}

/// The README's one command: `jes demo` writes the sample and serves SMTP, POP3 and the console
/// on its fixed ports (2525, 1100, 8025; the suite's own servers use 20000 and up).
#[test]
fn demo_serves_mail_and_the_console() {
    let dir = tempfile::tempdir().unwrap();
    let etc = dir.path().join("jes-demo/etc");
    let mut child = Command::new(common::jes_bin())
        .arg("demo")
        .arg(&etc)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut health = String::new();
    while Instant::now() < deadline {
        if let Ok(mut s) = std::net::TcpStream::connect("127.0.0.1:8025") {
            use std::io::{Read, Write};
            s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                .unwrap();
            s.read_to_string(&mut health).unwrap();
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let smtp = std::net::TcpStream::connect("127.0.0.1:2525").is_ok();
    let pop3 = std::net::TcpStream::connect("127.0.0.1:1100").is_ok();
    let _ = child.kill();
    let out = child.wait_with_output().unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        health.contains("\"status\":\"ok\""),
        "console health: {health}\n{said}"
    );
    assert!(smtp && pop3, "SMTP and POP3 listen: {said}");
    assert!(said.contains("console: http://127.0.0.1:8025/"), "{said}");
    let conf = std::fs::read_to_string(etc.join("mail.conf")).unwrap();
    assert!(conf.contains("\nhttp.admins=analyst@localhost\n"), "{conf}");
}

/// jes raises its open-file limit to the hard limit (every connection is a descriptor), and what
/// it creates is for its own user only (umask 077), whatever limit and umask it inherits.
#[test]
fn raises_the_open_file_limit_and_keeps_mail_private() {
    use std::os::unix::fs::PermissionsExt;
    let server = Server::prepare("", DEFAULT_USERS).launch_with_soft_nofile(256);
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", server.pid())).unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    let numbers: Vec<&str> = line.split_whitespace().skip(3).take(2).collect();
    assert_eq!(
        numbers[0], numbers[1],
        "soft limit raised to the hard: {line}"
    );
    assert_ne!(numbers[0], "256", "{line}");

    let reply = server.send(
        "a@b.test",
        &["analyst@localhost"],
        "Subject: s\r\n\r\nbody\r\n",
    );
    assert!(reply.starts_with("250"), "{reply}");
    let files = server.mailbox_files("analyst@localhost");
    assert_eq!(files.len(), 1);
    for path in [&files[0], &server.mailbox("analyst@localhost")] {
        let mode = std::fs::metadata(path).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "{} is {mode:o}", path.display());
    }
}

#[test]
fn sigterm_stops_cleanly() {
    let mut server = Server::start("", DEFAULT_USERS);
    let mut c = server.connect(server.smtp_port);
    assert!(c.cmd("EHLO t").starts_with("250"));
    server.signal("TERM");
    let reply = c.reply();
    assert!(
        reply.starts_with("421"),
        "an idle session is told the server is going: {reply}"
    );
    assert!(
        server.wait_exit(Duration::from_secs(15)),
        "clean exit status"
    );
    let leftovers: Vec<_> = walk(&server.etc)
        .into_iter()
        .filter(|p| {
            p.rsplit('/')
                .next()
                .is_some_and(|name| name.starts_with(".tmp"))
        })
        .collect();
    assert!(
        leftovers.is_empty(),
        "no temporary files left: {leftovers:?}"
    );
}

#[test]
fn user_commands_manage_accounts() {
    let server = Server::prepare("", "# accounts\nuser.trackstudio@127.0.0.1=secret\n");
    let run = |args: &[&str], stdin: &str| {
        let mut child = Command::new(common::jes_bin())
            .args(args)
            .arg("--dir")
            .arg(&server.etc)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    };
    assert!(run(&["user", "add", "new@localhost"], "pw1\n")
        .status
        .success());
    assert!(
        !run(&["user", "add", "new@localhost"], "pw1\n")
            .status
            .success(),
        "adding twice fails"
    );
    let list = run(&["user", "list"], "");
    let list = String::from_utf8_lossy(&list.stdout);
    assert!(
        list.contains("new@localhost") && list.contains("trackstudio@127.0.0.1"),
        "{list}"
    );
    let text = std::fs::read_to_string(server.etc.join("user.conf")).unwrap();
    assert!(text.starts_with("# accounts\n"), "comments kept: {text}");
    assert!(
        text.contains("user.new@localhost=$argon2id$"),
        "new password stored hashed: {text}"
    );
    assert!(run(&["user", "passwd", "new@localhost"], "pw2\n")
        .status
        .success());
    assert!(run(&["user", "del", "new@localhost"], "").status.success());
    let text = std::fs::read_to_string(server.etc.join("user.conf")).unwrap();
    assert!(!text.contains("new@localhost"), "{text}");
}

/// On a terminal the password is typed without echo and stored as typed.
#[test]
fn user_add_reads_the_password_from_a_terminal_without_echo() {
    let server = Server::prepare("", "# accounts\n");
    let out = Command::new(common::python3())
        .arg(common::repo_path("tests/py/password_prompt.py"))
        .arg(common::jes_bin())
        .arg(&server.etc)
        .arg("new@localhost")
        .arg("typed-Secret-1")
        .output()
        .unwrap();
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{shown}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(shown.contains("password for new@localhost: "), "{shown}");
    assert!(shown.contains("ECHO-WAS-OFF"), "{shown}");
    assert!(
        !shown.contains("typed-Secret-1"),
        "the password was echoed: {shown}"
    );
    assert!(shown.contains("added new@localhost"), "{shown}");
    assert!(shown.contains("EXIT 0"), "{shown}");
    let text = std::fs::read_to_string(server.etc.join("user.conf")).unwrap();
    let stored = text
        .lines()
        .find_map(|l| l.strip_prefix("user.new@localhost="))
        .unwrap();
    let stored = jes::auth::StoredPassword::parse(stored);
    assert!(stored.verify("typed-Secret-1"), "{text}");
}

fn walk(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p.display().to_string());
            }
        }
    }
    out
}
