//! Addresses never become paths unchecked (DESIGN.md §4 rule 4), tried from outside against a
//! running `jes serve`: every hostile address form (quoting, `..`, `/`, `\`, NUL, control
//! characters, Unicode look-alikes in NFC, NFD and fullwidth, very long local parts) as RCPT for a
//! local and a remote domain, as MAIL FROM, as POP3 USER, and as `jes queue` ids and `jes user add`
//! names. The whole temporary root is walked before and after: nothing may appear outside
//! `users/<known account>/`, `smtp/` and the log folder, every refusal must be a protocol error
//! (never a dropped connection), and the server must keep serving. Case variants of an existing
//! account must reach that same account, as JES compared addresses case-insensitively.
//! Since issue 19 (SMTPUTF8) a UTF-8 name that is safe (`josé`, fullwidth letters) may be an
//! account; its NFC and NFD spellings are then one account and one folder.

mod common;

use common::*;
use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

const ACCOUNT: &str = "trackstudio@127.0.0.1";

/// Mailbox folders that may be created: the accounts, and postmaster (RFC 5321 §4.5.1).
const KNOWN: &[&str] = &[
    "trackstudio@127.0.0.1",
    "analyst@localhost",
    "postmaster@localhost",
    "postmaster@127.0.0.1",
];

/// Local parts an attacker would try, as raw bytes (some are not UTF-8 once sent).
fn hostile_locals() -> Vec<Vec<u8>> {
    let mut v: Vec<Vec<u8>> = [
        "\"../x\"",
        "\"../../../tmp/pwned\"",
        "../x",
        "..",
        "\"..\"",
        "a/b",
        "\"a/b\"",
        "a\\b",
        "\"a\\\\b\"",
        ".hidden",
        "\"trackstudio/../analyst\"",
        "\"a\\\"b\"",
        "jos\u{e9}",              // NFC
        "jose\u{301}",            // NFD
        "ｔｒａｃｋｓｔｕｄｉｏ", // fullwidth
        "trackstudio\u{200b}",
        "\u{212a}", // Kelvin sign, lower-cases to 'k' in Unicode
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect();
    v.push(b"a\0b".to_vec());
    v.push(b"\"a\0b\"".to_vec());
    v.push(b"a\x01b".to_vec());
    v.push(b"\"a\x7fb\"".to_vec());
    v.push(b"a\tb".to_vec());
    v.push(b"\xff\xfe".to_vec());
    v.push(b"caf\xe9".to_vec()); // Latin-1
    v.push(vec![b'a'; 65]);
    v.push(vec![b'a'; 300]);
    v.push(vec![b'a'; 5000]);
    v
}

/// Hostile local parts at `domain`.
fn hostile_addresses(domain: &str) -> Vec<Vec<u8>> {
    hostile_locals()
        .into_iter()
        .map(|mut l| {
            l.extend_from_slice(format!("@{domain}").as_bytes());
            l
        })
        .collect()
}

/// The account's local part at hostile domains (none of them is ours, so they are remote).
fn hostile_domains() -> Vec<Vec<u8>> {
    let mut v = Vec::new();
    for d in [
        "..",
        "../../tmp",
        "127.0.0.1/../..",
        "[../..]",
        "x\\..",
        "\u{ff11}27.0.0.1",
    ] {
        v.push(format!("trackstudio@{d}").into_bytes());
    }
    v
}

/// Case variants of the account: they must all reach it.
/// Hostile-looking local parts that are safe UTF-8 names, so `jes user add` may take them (as
/// the NFC `josé`, the fullwidth `ｔｒａｃｋｓｔｕｄｉｏ`, or `k` for the Kelvin sign).
const LEGITIMATE_UTF8: &[&str] = &[
    "jos\u{e9}",
    "jose\u{301}",
    "ｔｒａｃｋｓｔｕｄｉｏ",
    "\u{212a}",
];

const CASE_VARIANTS: &[&str] = &[
    "TrackStudio@127.0.0.1",
    "TRACKSTUDIO@127.0.0.1",
    "trackStudio@127.0.0.1",
];

/// Every path under `root`, relative to it.
fn walk(root: &Path) -> BTreeSet<PathBuf> {
    let mut out = BTreeSet::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if let Ok(rel) = p.strip_prefix(root) {
                out.insert(rel.to_path_buf());
            }
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(p);
            }
        }
    }
    out
}

/// Whether a path that appeared is one jes may create: in a known mailbox, in the queue, or a log.
fn allowed(rel: &Path) -> bool {
    let s = rel.to_string_lossy();
    if s == "jes/etc/users" || s.starts_with("jes/etc/smtp") || s.starts_with("jes/log") {
        return true;
    }
    KNOWN.iter().any(|k| {
        let dir = format!("jes/etc/users/{k}");
        s == dir || s.starts_with(&format!("{dir}/"))
    })
}

/// A raw connection that sends bytes and reads replies leniently (nothing may be assumed UTF-8).
struct Conn {
    w: TcpStream,
    r: BufReader<TcpStream>,
}

impl Conn {
    fn open(port: u16) -> Conn {
        let w =
            TcpStream::connect(("127.0.0.1", port)).expect("connect: the server must keep serving");
        w.set_read_timeout(Some(Duration::from_secs(10))).ok();
        let r = BufReader::new(w.try_clone().expect("clone"));
        let mut c = Conn { w, r };
        let greeting = c.reply();
        assert!(
            greeting.starts_with("220") || greeting.starts_with("+OK"),
            "greeting: {greeting:?}"
        );
        c
    }

    /// One reply (SMTP multi-line aware); empty if the connection was closed.
    fn reply(&mut self) -> String {
        let mut all = String::new();
        loop {
            let mut line = Vec::new();
            match self.r.read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => return all,
                Ok(_) => {}
            }
            let line = String::from_utf8_lossy(&line).to_string();
            all.push_str(&line);
            if line.len() < 4 || line.as_bytes()[3] != b'-' {
                return all;
            }
        }
    }

    fn cmd(&mut self, parts: &[&[u8]]) -> String {
        let mut bytes = parts.concat();
        bytes.extend_from_slice(b"\r\n");
        if self.w.write_all(&bytes).is_err() {
            return String::new();
        }
        self.reply()
    }
}

/// A protocol answer, not a dropped connection.
fn answered(reply: &str, what: &str) {
    assert!(
        reply.len() >= 3
            && (reply.starts_with(|c: char| c.is_ascii_digit())
                || reply.starts_with('+')
                || reply.starts_with('-')),
        "{what}: no protocol reply (connection dropped?): {reply:?}"
    );
}

/// One SMTP transaction; returns (MAIL reply, RCPT reply, final reply if DATA was reached).
fn transaction(
    server: &Server,
    from: &[u8],
    rcpt: &[u8],
    token: &str,
) -> (String, String, Option<String>) {
    let mut c = Conn::open(server.smtp_port);
    assert!(c.cmd(&[b"EHLO hostile.test"]).starts_with("250"));
    let mail = c.cmd(&[b"MAIL FROM:<", from, b">"]);
    answered(&mail, "MAIL");
    if !mail.starts_with("250") {
        return (mail, String::new(), None);
    }
    let rc = c.cmd(&[b"RCPT TO:<", rcpt, b">"]);
    answered(&rc, "RCPT");
    if !rc.starts_with("250") {
        let _ = c.cmd(&[b"QUIT"]);
        return (mail, rc, None);
    }
    assert!(c.cmd(&[b"DATA"]).starts_with("354"));
    let body = format!("Subject: hostile {token}\r\n\r\ntoken {token}\r\n.");
    let done = c.cmd(&[body.as_bytes()]);
    answered(&done, "end of DATA");
    let _ = c.cmd(&[b"QUIT"]);
    (mail, rc, Some(done))
}

fn tokens_in(server: &Server, account: &str) -> BTreeSet<String> {
    server
        .mailbox_files(account)
        .iter()
        .filter_map(|f| {
            let text = String::from_utf8_lossy(&std::fs::read(f).ok()?).to_string();
            text.lines()
                .find_map(|l| l.strip_prefix("Subject: hostile "))
                .map(|t| t.trim().to_string())
        })
        .collect()
}

fn show(b: &[u8]) -> String {
    let s = String::from_utf8_lossy(b);
    if s.len() > 60 {
        format!(
            "{}...({} bytes)",
            s.chars().take(60).collect::<String>(),
            b.len()
        )
    } else {
        format!("{s:?}")
    }
}

/// `jes ARGS --dir ETC` with `stdin` as its input (a password for `user add`).
fn jes_with_stdin(server: &Server, args: &[&str], stdin: &str) -> (bool, String) {
    let mut child = Command::new(jes_bin())
        .args(args)
        .arg("--dir")
        .arg(&server.etc)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run jes");
    if let Some(mut i) = child.stdin.take() {
        let _ = i.write_all(stdin.as_bytes());
    }
    let out = child.wait_with_output().expect("jes output");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn hostile_addresses_never_become_paths() {
    // The smart host is a closed port: relayed mail stays in smtp/, and no DNS is asked.
    // max.pass.attempts is raised so that the many failed POP3 logins from 127.0.0.1 are not
    // slowed down by the login throttle (which is not under test here).
    let server = Server::start(
        &format!(
            "defaultsmtpservers=127.0.0.1:{}\nmax.pass.attempts=1000\n",
            free_port()
        ),
        DEFAULT_USERS,
    );
    // A first message makes the account's folder exist, so the walk starts from a steady state.
    let (_, _, done) = transaction(&server, b"setup@example.org", ACCOUNT.as_bytes(), "setup");
    assert!(done.is_some_and(|d| d.starts_with("250")));
    let root = server.root.path().to_path_buf();
    let before = walk(&root);
    let user_conf = std::fs::read(server.etc.join("user.conf")).expect("user.conf");
    let mut n = 0;
    let mut token = || {
        n += 1;
        format!("t{n}")
    };

    // RCPT at a local domain: refused with a 5xx (never a 250 that stores somewhere odd).
    for domain in ["127.0.0.1", "localhost"] {
        for a in hostile_addresses(domain) {
            let (_, rc, _) = transaction(&server, b"probe@example.org", &a, &token());
            assert!(
                rc.starts_with('5'),
                "RCPT {} at a local domain: {rc:?}",
                show(&a)
            );
        }
    }
    // RCPT at a remote domain: refused, or queued in smtp/ (the address is data, not a path).
    for a in hostile_addresses("remote.test")
        .into_iter()
        .chain(hostile_domains())
    {
        let (_, rc, done) = transaction(&server, b"probe@example.org", &a, &token());
        if let Some(d) = done {
            assert!(
                d.starts_with("250") || d.starts_with('5'),
                "relayed {}: {d:?}",
                show(&a)
            );
        } else {
            assert!(rc.starts_with('5'), "relayed RCPT {}: {rc:?}", show(&a));
        }
    }
    // A quoted local part holding `> pending ` is one address (SMTP skips a `>` inside quotes);
    // its queue file must keep it whole (the queue property tests found it cut at that `>`).
    let quoted = "\"a> pending x\"@remote.test";
    let (_, rc, done) = transaction(&server, b"probe@example.org", quoted.as_bytes(), &token());
    assert!(rc.starts_with("250"), "RCPT {quoted}: {rc:?}");
    assert!(
        done.is_some_and(|d| d.starts_with("250")),
        "DATA for {quoted}"
    );
    let (ok, out) = server.jes(&["queue", "list"]);
    assert!(
        ok && out.contains(&format!("{quoted} (pending)")),
        "jes queue list: {out}"
    );

    // MAIL FROM: refused, or the mail lands in the account it was sent to.
    for a in hostile_addresses("example.org")
        .into_iter()
        .chain(hostile_addresses("127.0.0.1"))
    {
        let t = token();
        let (mail, _, done) = transaction(&server, &a, ACCOUNT.as_bytes(), &t);
        if let Some(d) = done {
            assert!(d.starts_with("250"), "MAIL FROM {}: {d:?}", show(&a));
            assert!(
                tokens_in(&server, ACCOUNT).contains(&t),
                "MAIL FROM {}: not delivered",
                show(&a)
            );
        } else {
            assert!(mail.starts_with('5'), "MAIL FROM {}: {mail:?}", show(&a));
        }
    }

    // Case variants reach the one account.
    for (i, v) in CASE_VARIANTS.iter().enumerate() {
        let t = format!("case{i}");
        let (_, rc, done) = transaction(&server, b"probe@example.org", v.as_bytes(), &t);
        assert!(rc.starts_with("250"), "RCPT {v}: {rc:?}");
        assert!(done.is_some_and(|d| d.starts_with("250")), "DATA for {v}");
        assert!(
            tokens_in(&server, ACCOUNT).contains(&t),
            "{v} did not reach {ACCOUNT}"
        );
    }

    // POP3 USER: hostile names never log in; case variants log into the same mailbox.
    for a in hostile_addresses("127.0.0.1") {
        let mut c = Conn::open(server.pop3_port);
        let user = c.cmd(&[b"USER ", &a]);
        answered(&user, "USER");
        if user.starts_with("+OK") {
            let pass = c.cmd(&[b"PASS secret"]);
            assert!(
                pass.starts_with("-ERR"),
                "USER {} logged in: {pass:?}",
                show(&a)
            );
        }
        let _ = c.cmd(&[b"QUIT"]);
    }
    let stat = |user: &str| {
        let mut c = Conn::open(server.pop3_port);
        assert!(c.cmd(&[b"USER ", user.as_bytes()]).starts_with("+OK"));
        let pass = c.cmd(&[b"PASS secret"]);
        assert!(pass.starts_with("+OK"), "PASS for {user}: {pass:?}");
        let stat = c.cmd(&[b"STAT"]);
        let _ = c.cmd(&[b"QUIT"]);
        stat
    };
    let expected = stat(ACCOUNT);
    for v in CASE_VARIANTS {
        assert_eq!(stat(v), expected, "USER {v} must open {ACCOUNT}'s mailbox");
    }

    // jes queue: ids are digits only. (NUL cannot be passed in argv at all.)
    for id in [
        "../x",
        "1/../../x",
        "../../../etc/passwd",
        "..",
        "/tmp/x",
        "1\\..",
        "-1",
        "1e3",
        "１２３",
        "\u{1}",
    ] {
        for action in ["show", "retry", "delete"] {
            let (ok, out) = server.jes(&["queue", action, id]);
            assert!(!ok, "jes queue {action} {id:?} succeeded: {out}");
        }
    }
    // jes user add: hostile names refused; a case variant is the existing account.
    let names: Vec<String> = hostile_locals()
        .iter()
        .filter_map(|l| String::from_utf8(l.clone()).ok())
        .filter(|l| !l.contains('\0'))
        // 65 octets is one more than RFC 5321 allows in a local part, but it is a harmless
        // folder name (the gate's limit is 254 for the whole address) and JES-era files may
        // hold one: `user add` may accept it. The 300- and 5,000-octet ones must be refused.
        .filter(|l| l.len() != 65)
        .filter(|l| !LEGITIMATE_UTF8.contains(&l.as_str()))
        .map(|l| format!("{l}@127.0.0.1"))
        .chain(["x@../..", "x@a/b", "../x"].map(String::from))
        .chain(CASE_VARIANTS.iter().map(|s| s.to_string()))
        .collect();
    for name in &names {
        let (ok, out) = jes_with_stdin(&server, &["user", "add", name], "pw\n");
        assert!(!ok, "jes user add {name:?} succeeded: {out}");
    }
    assert_eq!(
        std::fs::read(server.etc.join("user.conf")).expect("user.conf"),
        user_conf,
        "refused `jes user add`s left user.conf unchanged"
    );
    // A UTF-8 name is an account; its decomposed spelling, in any case, is that same account.
    let (ok, out) = jes_with_stdin(&server, &["user", "add", "jos\u{e9}@127.0.0.1"], "pw\n");
    assert!(ok, "jes user add josé: {out}");
    let (ok, out) = jes_with_stdin(&server, &["user", "add", "JOSE\u{301}@127.0.0.1"], "pw\n");
    assert!(!ok, "the NFD spelling of josé is the same account: {out}");

    // Nothing appeared outside the known mailboxes, the queue and the log.
    let after = walk(&root);
    let odd: Vec<&PathBuf> = after.difference(&before).filter(|p| !allowed(p)).collect();
    assert!(
        odd.is_empty(),
        "paths created outside users/<account>/, smtp/ and log/: {odd:?}"
    );
    let gone: Vec<&PathBuf> = before.difference(&after).filter(|p| !allowed(p)).collect();
    assert!(gone.is_empty(), "paths removed: {gone:?}");
    let new: Vec<&PathBuf> = after.difference(&before).collect();
    eprintln!(
        "{} hostile forms tried; {} new paths, all in known mailboxes, smtp/ or log/: {:?}",
        n,
        new.len(),
        &new[..new.len().min(8)]
    );
    // And the server still serves.
    let (_, _, done) = transaction(&server, b"final@example.org", ACCOUNT.as_bytes(), "final");
    assert!(
        done.is_some_and(|d| d.starts_with("250")),
        "the server stopped serving"
    );
}

/// Found by `hostile_addresses_never_become_paths` (one run in four on a loaded machine): a POP3
/// login right after the previous session's QUIT was answered `+OK` got `[IN-USE]`, because the
/// mailbox lock was released only when the finished session's task ended, after the reply went
/// out. The race is narrow: this loop does not reproduce it on every machine, but it fails if the
/// lock outlives the `+OK` for long.
#[test]
fn regression_login_right_after_quit_is_not_in_use() {
    let server = Server::start("", DEFAULT_USERS);
    let (_, _, done) = transaction(&server, b"a@example.org", ACCOUNT.as_bytes(), "x");
    assert!(done.is_some_and(|d| d.starts_with("250")));
    for i in 0..500 {
        let mut c = Conn::open(server.pop3_port);
        assert!(c.cmd(&[b"USER ", ACCOUNT.as_bytes()]).starts_with("+OK"));
        let pass = c.cmd(&[b"PASS secret"]);
        assert!(
            pass.starts_with("+OK"),
            "login {i} right after a QUIT: {pass:?}"
        );
        assert!(c.cmd(&[b"STAT"]).starts_with("+OK"));
        assert!(c.cmd(&[b"QUIT"]).starts_with("+OK"));
    }
}
