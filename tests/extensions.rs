//! Integration tests of issue 19's SMTP extensions: CHUNKING and BINARYMIME (RFC 3030), SMTPUTF8
//! (RFC 6531) and DSN (RFC 3461), with Python's smtplib as the client and Debian's Postfix 3.7 (or
//! an aiosmtpd upstream without DSN) as the upstream jes relays to.
//!
//! Postfix is started by the test in a temporary folder on a free loopback port, as
//! `bench/bench.py` runs it: its own `main.cf` and `master.cf` (`postfix -c`), no chroot, mail for
//! `remote.test` into a virtual Maildir, the log in a file. Its master must start as root (it
//! drops to the `postfix` user itself); without root or without `/usr/sbin/postfix` those tests
//! print `SKIPPED ...` and pass, as `tests/deb_package.rs` does.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{free_port, Server, Upstream, DEFAULT_USERS};

/// A Postfix instance of its own: `remote.test` is delivered into `vmail/<user>/Maildir/new`.
struct Postfix {
    dir: tempfile::TempDir,
    conf: PathBuf,
    port: u16,
}

impl Postfix {
    /// `None` (after printing why) where Postfix cannot be run by this test.
    fn start(extra: &str) -> Option<Postfix> {
        if !Path::new("/usr/sbin/postfix").exists() {
            println!("SKIPPED postfix: /usr/sbin/postfix is not installed");
            return None;
        }
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            println!("SKIPPED postfix: its master must start as root");
            return None;
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let base = dir.path();
        set_mode(base, 0o755); // Postfix's unprivileged daemons must reach their folders
        let (conf, queue, data, vmail) = (
            base.join("conf"),
            base.join("queue"),
            base.join("data"),
            base.join("vmail"),
        );
        for d in [&conf, &queue, &data, &vmail] {
            std::fs::create_dir_all(d).expect("mkdir");
        }
        chown(&data, "postfix");
        chown(&vmail, "nobody");
        let port = free_port();
        let master = std::fs::read_to_string("/etc/postfix/master.cf").expect("master.cf");
        let master = master.replacen("smtp      inet", &format!("127.0.0.1:{port} inet"), 1);
        assert!(master.contains(&format!("127.0.0.1:{port} inet")));
        std::fs::write(conf.join("master.cf"), master).expect("write master.cf");
        std::fs::write(
            conf.join("main.cf"),
            format!(
                "compatibility_level = 3.6\nqueue_directory = {q}\ndata_directory = {d}\n\
                 mail_owner = postfix\nmyhostname = postfix.test\nmydomain = postfix.test\n\
                 inet_interfaces = 127.0.0.1\ninet_protocols = ipv4\nmydestination =\n\
                 mynetworks = 127.0.0.0/8\nalias_maps =\nalias_database =\n\
                 local_recipient_maps =\nbiff = no\nvirtual_mailbox_domains = remote.test\n\
                 virtual_mailbox_base = {v}\nvirtual_mailbox_maps = texthash:{c}/vmailbox\n\
                 virtual_uid_maps = static:65534\nvirtual_gid_maps = static:65534\n\
                 maillog_file = {b}/maillog\nmaillog_file_prefixes = {b}\n\
                 smtpd_recipient_restrictions = permit_mynetworks, reject_unauth_destination\n\
                 smtp_tls_security_level = none\n{extra}\n",
                q = queue.display(),
                d = data.display(),
                v = vmail.display(),
                c = conf.display(),
                b = base.display(),
            ),
        )
        .expect("write main.cf");
        let vmailbox = "boss@remote.test boss/Maildir/\n\u{438}\u{432}\u{430}\u{43d}@remote.test ivan/Maildir/\n";
        std::fs::write(conf.join("vmailbox"), vmailbox).expect("write vmailbox");
        let run = |args: &[&str]| {
            let out = Command::new("postfix")
                .arg("-c")
                .arg(&conf)
                .args(args)
                .output();
            let out = out.expect("run postfix");
            assert!(
                out.status.success(),
                "postfix {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        let out = Command::new("postconf")
            .arg("-c")
            .arg(&conf)
            .args(["-F", "*/*/chroot = n"])
            .output()
            .expect("postconf");
        assert!(out.status.success());
        run(&["check"]);
        run(&["start"]);
        let postfix = Postfix { dir, conf, port };
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "postfix did not listen");
            std::thread::sleep(Duration::from_millis(100));
        }
        Some(postfix)
    }

    /// The files delivered to `user@remote.test`, waiting up to 30 s for `n` of them.
    fn wait_for_mail(&self, user: &str, n: usize) -> Vec<Vec<u8>> {
        let new = self.dir.path().join(format!("vmail/{user}/Maildir/new"));
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let mut files: Vec<PathBuf> = std::fs::read_dir(&new)
                .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
                .unwrap_or_default();
            if files.len() >= n {
                files.sort();
                return files
                    .iter()
                    .map(|f| std::fs::read(f).expect("read"))
                    .collect();
            }
            assert!(
                Instant::now() < deadline,
                "postfix delivered {} of {n} messages\nmaillog:\n{}",
                files.len(),
                self.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("maillog")).unwrap_or_default()
    }

    /// Changes one `main.cf` setting of the running instance (`postconf -e`, then a reload).
    fn set(&self, setting: &str) {
        let out = Command::new("postconf")
            .arg("-c")
            .arg(&self.conf)
            .args(["-e", setting])
            .output()
            .expect("postconf");
        assert!(out.status.success(), "postconf -e {setting}");
        let out = Command::new("postfix")
            .arg("-c")
            .arg(&self.conf)
            .arg("reload")
            .output()
            .expect("postfix reload");
        assert!(out.status.success(), "postfix reload");
    }
}

impl Drop for Postfix {
    fn drop(&mut self) {
        let _ = Command::new("postfix")
            .arg("-c")
            .arg(&self.conf)
            .arg("stop")
            .output();
    }
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

fn chown(path: &Path, user: &str) {
    let out = Command::new("chown")
        .arg(user)
        .arg(path)
        .output()
        .expect("chown");
    assert!(out.status.success(), "chown {user} {}", path.display());
}

/// jes relaying everything that is not local to `port` on the loopback.
fn relay_to(port: u16) -> Server {
    Server::start(
        &format!(
            "defaultsmtpservers=127.0.0.1:{port}\nsmtpdelivery.interval=1\nsmtpdelivery.tls=off\n"
        ),
        DEFAULT_USERS,
    )
}

/// Everything after the first empty line: the body, which no hop changes.
fn body(message: &[u8]) -> &[u8] {
    let at = message
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|p| p + 4)
        .or_else(|| message.windows(2).position(|w| w == b"\n\n").map(|p| p + 2))
        .expect("a header section");
    &message[at..]
}

/// UTF-8 account and IDN domain, each written in the other form from the one mail uses.
const UTF8_USERS: &str = "user.\u{418}\u{432}\u{430}\u{43d}@\u{43f}\u{440}\u{438}\u{43c}\u{435}\u{440}.\u{440}\u{444}=\u{43f}\u{430}\u{440}\u{43e}\u{43b}\u{44c}\n";

#[test]
fn smtplib_smtputf8_and_poplib_utf8() {
    // A later `domains=` line replaces the harness's `domains=localhost,127.0.0.1`.
    let domains =
        "domains=localhost,127.0.0.1,\u{43f}\u{440}\u{438}\u{43c}\u{435}\u{440}.\u{440}\u{444}";
    let server = Server::start(domains, UTF8_USERS);
    let out = server.python_ok("smtputf8.py", &[]);
    assert!(out.contains("ok: Received: says UTF8SMTP"), "{out}");
    // The U-label domain is kept as A-labels.
    let log = server.log();
    assert!(
        log.contains("local domains localhost, 127.0.0.1, xn--e1afmkfd.xn--p1ai"),
        "{log}"
    );
}

#[test]
fn smtplib_bdat_stores_what_data_stores() {
    let server = Server::start("", DEFAULT_USERS);
    server.python_ok("chunking.py", &[]);
}

/// BDAT into jes, BDAT out to Postfix (which offers CHUNKING), the body unchanged at the end;
/// a binary message, which Postfix cannot take (no BINARYMIME), bounces with 5.6.3.
#[test]
fn postfix_upstream_gets_bdat_and_binary_bounces() {
    let Some(postfix) = Postfix::start("") else {
        return;
    };
    let server = relay_to(postfix.port);
    let text = "Subject: chunked\r\n\r\n.a dot line\r\n..\r\n8-bit: Gr\u{fc}\u{df}e\r\nend\r\n";
    let mut c = server.connect(server.smtp_port);
    let ehlo = c.cmd("EHLO client.test");
    assert!(
        ehlo.contains("CHUNKING") && ehlo.contains("BINARYMIME"),
        "{ehlo}"
    );
    assert!(c
        .cmd("MAIL FROM:<analyst@localhost> BODY=8BITMIME")
        .starts_with("250"));
    assert!(c.cmd("RCPT TO:<boss@remote.test>").starts_with("250"));
    let (a, b) = text.as_bytes().split_at(17);
    c.send(format!("BDAT {}\r\n", a.len()).as_bytes());
    c.send(a);
    assert!(c.reply().starts_with("250"));
    c.send(format!("BDAT {} LAST\r\n", b.len()).as_bytes());
    c.send(b);
    assert!(c.reply().starts_with("250"));

    let got = postfix.wait_for_mail("boss", 1);
    // Maildir files end lines with LF.
    let sent = String::from_utf8_lossy(body(text.as_bytes())).replace("\r\n", "\n");
    assert_eq!(body(&got[0]), sent.as_bytes(), "the body Postfix stored");
    // Postfix counts the commands of a session when it ends.
    server.wait_until(
        "jes's session with Postfix to end",
        Duration::from_secs(20),
        || {
            postfix
                .log()
                .contains("disconnect from localhost[127.0.0.1] ehlo=1 mail=1")
        },
    );
    let log = postfix.log();
    assert!(
        log.contains("ehlo=1 mail=1 rcpt=1 bdat=1 "),
        "jes sent the message to Postfix with BDAT:\n{log}"
    );

    // Binary content: Postfix does not say BINARYMIME, so the recipient bounces with 5.6.3.
    assert!(c
        .cmd("MAIL FROM:<analyst@localhost> BODY=BINARYMIME")
        .starts_with("250"));
    assert!(c.cmd("RCPT TO:<boss@remote.test>").starts_with("250"));
    let binary = b"Subject: bin\r\n\r\n\x00\n\x01\r\n";
    c.send(format!("BDAT {} LAST\r\n", binary.len()).as_bytes());
    c.send(binary);
    assert!(c.reply().starts_with("250"));
    let _ = c.cmd("QUIT");
    server.wait_until("the 5.6.3 bounce", Duration::from_secs(30), || {
        server.mailbox_files("analyst@localhost").iter().any(|f| {
            std::fs::read_to_string(f)
                .unwrap_or_default()
                .contains("5.6.3")
        })
    });
    assert_eq!(
        postfix.wait_for_mail("boss", 1).len(),
        1,
        "nothing more reached Postfix"
    );
}

/// Sends `content` over SMTP with `mail_params` (e.g. ` SMTPUTF8`); asserts each step is 250.
fn send_raw(server: &Server, from: &str, mail_params: &str, to: &str, content: &str) {
    let mut c = server.connect(server.smtp_port);
    assert!(c.cmd("EHLO client.test").starts_with("250"));
    let r = c.cmd(&format!("MAIL FROM:<{from}>{mail_params}"));
    assert!(r.starts_with("250"), "{r}");
    let r = c.cmd(&format!("RCPT TO:<{to}>"));
    assert!(r.starts_with("250"), "{r}");
    assert!(c.cmd("DATA").starts_with("354"));
    c.send(format!("{content}.\r\n").as_bytes());
    let r = c.reply();
    assert!(r.starts_with("250"), "{r}");
    let _ = c.cmd("QUIT");
}

const IVAN: &str = "\u{438}\u{432}\u{430}\u{43d}@remote.test";
const UTF8_MESSAGE: &str =
    "Subject: \u{417}\u{430}\u{434}\u{430}\u{447}\u{430}\r\n\r\n\u{422}\u{435}\u{43b}\u{43e}\r\n";

/// SMTPUTF8 relayed to Postfix, which offers it: the UTF-8 recipient and header arrive.
#[test]
fn postfix_upstream_gets_smtputf8() {
    let Some(postfix) = Postfix::start("") else {
        return;
    };
    let server = relay_to(postfix.port);
    send_raw(
        &server,
        "analyst@localhost",
        " SMTPUTF8",
        IVAN,
        UTF8_MESSAGE,
    );
    let got = postfix.wait_for_mail("ivan", 1);
    let text = String::from_utf8_lossy(&got[0]).into_owned();
    assert!(
        text.contains("Subject: \u{417}\u{430}\u{434}\u{430}\u{447}\u{430}\n"),
        "{text}"
    );
    assert!(text.contains(&format!("Delivered-To: {IVAN}")), "{text}");
}

/// Postfix with `smtputf8_enable = no` does not offer SMTPUTF8: what needs it bounces with
/// 5.6.7 (a UTF-8 recipient; a message that asked for SMTPUTF8 and has a UTF-8 header), and an
/// ASCII message, 8-bit body and all, goes as before.
#[test]
fn postfix_without_smtputf8_bounces_only_what_needs_it() {
    let Some(postfix) = Postfix::start("smtputf8_enable = no") else {
        return;
    };
    let server = relay_to(postfix.port);
    send_raw(
        &server,
        "analyst@localhost",
        " SMTPUTF8",
        IVAN,
        UTF8_MESSAGE,
    );
    send_raw(
        &server,
        "analyst@localhost",
        " SMTPUTF8",
        "boss@remote.test",
        UTF8_MESSAGE,
    );
    let legacy = "Subject: plain\r\n\r\n8-bit body: Gr\u{fc}\u{df}e\r\n";
    send_raw(
        &server,
        "analyst@localhost",
        " BODY=8BITMIME",
        "boss@remote.test",
        legacy,
    );
    let got = postfix.wait_for_mail("boss", 1);
    assert!(String::from_utf8_lossy(&got[0]).contains("Subject: plain"));
    server.wait_until("two 5.6.7 bounces", Duration::from_secs(30), || {
        server
            .mailbox_files("analyst@localhost")
            .iter()
            .filter(|f| {
                std::fs::read_to_string(f)
                    .unwrap_or_default()
                    .contains("5.6.7")
            })
            .count()
            == 2
    });
    assert_eq!(
        postfix.wait_for_mail("boss", 1).len(),
        1,
        "only the ASCII message reached Postfix"
    );
    assert!(
        !postfix.log().contains(IVAN),
        "nothing went to the UTF-8 recipient"
    );
}

/// DSN against Python's smtplib, with an aiosmtpd upstream that does not offer DSN: `delivered`
/// and `relayed` success reports, no bounce for NOTIFY=NEVER, RET=HDRS/FULL, ENVID and ORCPT in
/// every report, 501/555 for bad parameters (`tests/py/dsn.py` says what it checks).
#[test]
fn smtplib_dsn_reports() {
    let upstream = Upstream::start(&["--reject", "bad@remote.test=550"]);
    let server = relay_to(upstream.port);
    let log = upstream.log.display().to_string();
    let out = server.python_ok("dsn.py", &[&log]);
    assert!(out.contains("ok: DSN acceptance"), "{out}");
}

/// Postfix offers DSN: jes passes RET, ENVID, NOTIFY and ORCPT on as the client gave them (its
/// smtpd log of the commands shows them), sends no `relayed` report itself, and the `delivered`
/// report Postfix then sends (relayed back to jes) carries the ENVID and the ORCPT.
#[test]
fn postfix_upstream_gets_the_dsn_parameters() {
    let Some(postfix) = Postfix::start("debug_peer_list = 127.0.0.1") else {
        return;
    };
    let server = relay_to(postfix.port);
    // Postfix's own reports (to analyst@localhost) come back to jes.
    postfix.set(&format!("relayhost = [127.0.0.1]:{}", server.smtp_port));
    let mut c = server.connect(server.smtp_port);
    let ehlo = c.cmd("EHLO client.test");
    for ext in ["DSN", "SMTPUTF8", "CHUNKING"] {
        assert!(ehlo.contains(ext), "EHLO offers {ext}: {ehlo}");
    }
    let r = c.cmd("MAIL FROM:<analyst@localhost> RET=HDRS ENVID=pf+2B1");
    assert!(r.starts_with("250"), "{r}");
    let r = c
        .cmd("RCPT TO:<boss@remote.test> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;Boss+2Bx@remote.test");
    assert!(r.starts_with("250"), "{r}");
    assert!(c.cmd("DATA").starts_with("354"));
    c.send(b"Subject: dsn via postfix\r\n\r\nbody\r\n.\r\n");
    assert!(c.reply().starts_with("250"));
    let _ = c.cmd("QUIT");

    postfix.wait_for_mail("boss", 1);
    let log = postfix.log();
    assert!(
        log.lines().any(
            |l| l.contains("< localhost[127.0.0.1]: MAIL FROM:<analyst@localhost> ")
                && l.ends_with(" RET=HDRS ENVID=pf+2B1")
        ),
        "Postfix got RET and ENVID:\n{log}"
    );
    assert!(
        log.contains(
            "RCPT TO:<boss@remote.test> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;Boss+2Bx@remote.test"
        ),
        "Postfix got NOTIFY and ORCPT:\n{log}"
    );
    // Postfix's `delivered` report reaches the sender through jes.
    let mut report = String::new();
    server.wait_until("Postfix's success report", Duration::from_secs(30), || {
        report = server
            .mailbox_files("analyst@localhost")
            .iter()
            .map(|f| std::fs::read_to_string(f).unwrap_or_default())
            .find(|t| t.contains("Reporting-MTA: dns; postfix.test"))
            .unwrap_or_default();
        !report.is_empty()
    });
    assert!(report.contains("Original-Envelope-Id: pf+1"), "{report}");
    assert!(
        report.contains("Original-Recipient: rfc822;Boss+x@remote.test"),
        "{report}"
    );
    assert!(report.contains("Action: delivered"), "{report}");
    assert!(
        !server
            .mailbox_files("analyst@localhost")
            .iter()
            .any(|f| std::fs::read_to_string(f)
                .unwrap_or_default()
                .contains("Action: relayed")),
        "jes sent no `relayed` report for a server that offers DSN"
    );
}

/// `msmtp --dsn-notify=success --dsn-return=headers` (it refuses to send when the server does not
/// offer DSN): the local delivery gets a `delivered` report.
#[test]
fn msmtp_dsn_notify() {
    if !Path::new("/usr/bin/msmtp").exists() {
        println!("SKIPPED msmtp_dsn_notify: msmtp is not installed (scripts/install-test-deps)");
        return;
    }
    let server = Server::start("", DEFAULT_USERS);
    let mut child = Command::new("msmtp")
        .args([
            "--host=127.0.0.1",
            &format!("--port={}", server.smtp_port),
            "--tls=off",
            "--auth=off",
            "--from=analyst@localhost",
            "--dsn-notify=success",
            "--dsn-return=headers",
            "trackstudio@127.0.0.1",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run msmtp");
    use std::io::Write;
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"Subject: msmtp dsn\n\nhello\n")
        .expect("write");
    let out = child.wait_with_output().expect("msmtp");
    assert!(
        out.status.success(),
        "msmtp: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    server.wait_until("the delivered report", Duration::from_secs(30), || {
        server.mailbox_files("analyst@localhost").iter().any(|f| {
            let t = std::fs::read_to_string(f).unwrap_or_default();
            t.contains("Action: delivered")
                && t.contains("Final-Recipient: rfc822; trackstudio@127.0.0.1")
        })
    });
}

/// A queued message whose sender asked `NOTIFY=FAILURE` for one recipient (no DELAY in an
/// explicit list) and nothing for the other: the delay warning names only the other, with the
/// ENVID. The parameters are read from the queue file's `Envid:` and `Notify:` lines.
#[test]
fn delay_notice_only_where_notify_allows() {
    let up = Upstream::start(&[]);
    up.set_mode("defer");
    let mut server = Server::prepare(
        &format!(
            "defaultsmtpservers=127.0.0.1:{}\nsmtpdelivery.interval=1\nsmtpdelivery.delaywarning=4",
            up.port
        ),
        DEFAULT_USERS,
    );
    let received = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as u64
        - 5 * 3600 * 1000;
    let smtp = server.etc.join("smtp");
    std::fs::create_dir_all(&smtp).expect("mkdir");
    let file = smtp.join("smtp1795000000000000002.ser");
    std::fs::write(
        &file,
        format!(
            "jes-queue 1\r\nFrom: <analyst@localhost>\r\nReceived: {received}\r\nAttempts: 2\r\n\
             Next-Attempt: {received}\r\nEnvid: stuck+2B1\r\n\
             To: <boss@remote.test> pending 421 4.4.2 timeout\r\nNotify: FAILURE\r\n\
             To: <other@remote.test> pending 421 4.4.2 timeout\r\n\r\nSubject: s\r\n\r\nb\r\n"
        ),
    )
    .expect("write queue file");
    server.spawn();
    server.wait_until("the delay warning", Duration::from_secs(20), || {
        !server.mailbox_files("analyst@localhost").is_empty()
    });
    server.wait_until("the flag saved", Duration::from_secs(10), || {
        std::fs::read_to_string(&file)
            .unwrap_or_default()
            .contains("Delay-Warned: yes")
    });
    let files = server.mailbox_files("analyst@localhost");
    assert_eq!(files.len(), 1, "one warning");
    let warning = std::fs::read_to_string(&files[0]).expect("read");
    assert!(warning.contains("Action: delayed"), "{warning}");
    assert!(
        warning.contains("Original-Envelope-Id: stuck+1"),
        "{warning}"
    );
    assert!(
        warning.contains("Final-Recipient: rfc822; other@remote.test"),
        "{warning}"
    );
    assert!(
        !warning.contains("boss@remote.test"),
        "NOTIFY=FAILURE: no delay notice for boss: {warning}"
    );
    let text = std::fs::read_to_string(&file).expect("read");
    assert!(text.contains("Notify: FAILURE\r\n"), "kept: {text}");
}
