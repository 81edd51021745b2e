//! Configuration accidents on a running server and configurations `jes check` must refuse.
//!
//! A tester moved `user.conf` away and truncated it while jes ran: every local recipient got
//! `550` and POP3 logins failed. Here the server must keep its accounts (with an ERROR in the
//! log), apply a deliberate "no accounts" (a file with a comment), wait for a file being written
//! to hold still, and refuse a non-ASCII host name on reload. And every configuration that stops
//! `jes serve` must also fail `jes check`.

mod common;

use std::io::Write;
use std::time::{Duration, Instant};

use common::{Server, DEFAULT_USERS};

/// Longer than two polls of the configuration (2 s each) plus the settling poll.
const PAST_RELOAD: Duration = Duration::from_secs(7);

const TS: &str = "trackstudio@127.0.0.1";

/// RCPT's reply for `rcpt` on a fresh SMTP session.
fn rcpt_reply(server: &Server, rcpt: &str) -> String {
    let mut c = server.connect(server.smtp_port);
    assert!(c.cmd("EHLO t").starts_with("250"));
    assert!(c.cmd("MAIL FROM:<a@example.org>").starts_with("250"));
    let r = c.cmd(&format!("RCPT TO:<{rcpt}>"));
    let _ = c.cmd("QUIT");
    r
}

fn pop3_login(server: &Server, user: &str, pass: &str) -> String {
    let mut p = server.connect(server.pop3_port);
    assert!(p.cmd(&format!("USER {user}")).starts_with("+OK"));
    let r = p.cmd(&format!("PASS {pass}"));
    let _ = p.cmd("QUIT");
    r
}

/// The account still receives mail and still logs in.
fn assert_account_works(server: &Server, when: &str) {
    let reply = server.send("a@example.org", &[TS], "Subject: t\r\n\r\nbody\r\n");
    assert!(
        reply.starts_with("250"),
        "{when}: mail refused: {reply}\nlog:\n{}",
        server.log()
    );
    let login = pop3_login(server, TS, "secret");
    assert!(
        login.starts_with("+OK"),
        "{when}: POP3 login failed: {login}\nlog:\n{}",
        server.log()
    );
}

fn error_lines(server: &Server, needle: &str) -> usize {
    server
        .log()
        .lines()
        .filter(|l| l.contains("ERROR") && l.contains(needle))
        .count()
}

#[test]
fn losing_user_conf_keeps_the_running_accounts() {
    let server = Server::start("", DEFAULT_USERS);
    let users = server.etc.join("user.conf");
    // Wait for the start's password upgrade to have rewritten the file.
    server.wait_until("passwords hashed", Duration::from_secs(10), || {
        std::fs::read_to_string(&users).is_ok_and(|t| !t.contains("=secret"))
    });
    let saved = std::fs::read(&users).unwrap();

    // 1. Moved away.
    std::fs::rename(&users, server.etc.join("user.conf.moved")).unwrap();
    std::thread::sleep(PAST_RELOAD);
    assert_account_works(&server, "user.conf moved away");
    assert_eq!(
        error_lines(
            &server,
            "user.conf does not exist: keeping the 2 running accounts"
        ),
        1,
        "one ERROR for the missing file:\n{}",
        server.log()
    );

    // 2. Back, then truncated to zero bytes; then only a byte-order mark and blanks.
    std::fs::write(&users, &saved).unwrap();
    std::thread::sleep(PAST_RELOAD);
    std::fs::File::create(&users).unwrap();
    std::thread::sleep(PAST_RELOAD);
    assert_account_works(&server, "user.conf truncated");
    std::fs::write(&users, b"\xEF\xBB\xBF\n  \n").unwrap();
    std::thread::sleep(PAST_RELOAD);
    assert_account_works(&server, "user.conf holding a byte-order mark and blanks");
    assert_eq!(
        error_lines(&server, "user.conf is empty"),
        2,
        "an ERROR for each blank state:\n{}",
        server.log()
    );

    // 3. An account with an empty password: the reload is refused, the accounts stay.
    std::fs::write(
        &users,
        "user.trackstudio@127.0.0.1=secret\nuser.broken@localhost\n",
    )
    .unwrap();
    std::thread::sleep(PAST_RELOAD);
    assert_account_works(&server, "user.conf with an empty password");
    assert!(
        error_lines(&server, "user.conf:2: key 'user.broken@localhost'") >= 1,
        "{}",
        server.log()
    );

    // 4. A deliberate "no accounts": a comment and no account applies.
    std::fs::write(&users, "# nobody gets mail here any more\n").unwrap();
    server.wait_until("no accounts applied", Duration::from_secs(10), || {
        rcpt_reply(&server, TS).starts_with("550")
    });
    assert!(pop3_login(&server, TS, "secret").starts_with("-ERR"));
    assert!(server
        .log()
        .contains("INFO configuration reloaded: 0 accounts"));
}

#[test]
fn a_file_still_being_written_is_applied_once_it_holds_still() {
    let server = Server::start("", DEFAULT_USERS);
    let users = server.etc.join("user.conf");
    server.wait_until("passwords hashed", Duration::from_secs(10), || {
        std::fs::read_to_string(&users).is_ok_and(|t| !t.contains("=secret"))
    });
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&users)
        .unwrap();
    f.write_all(b"user.newbie@localhost=pw\n").unwrap();
    // Keep writing (a slow copy) for longer than three polls: nothing may be applied meanwhile.
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(7) {
        std::thread::sleep(Duration::from_millis(500));
        f.write_all(b"# still copying\n").unwrap();
        let r = rcpt_reply(&server, "newbie@localhost");
        assert!(
            r.starts_with("550"),
            "applied after {:?} while the file was still changing: {r}",
            start.elapsed()
        );
    }
    drop(f);
    // Held still: applied within two polls or so.
    let still = Instant::now();
    server.wait_until("the new account", Duration::from_secs(8), || {
        rcpt_reply(&server, "newbie@localhost").starts_with("250")
    });
    assert!(
        still.elapsed() >= Duration::from_millis(1500),
        "applied {:?} after the last write, before holding still for a poll",
        still.elapsed()
    );
}
