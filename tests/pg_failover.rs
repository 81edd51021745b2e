//! The database going away and coming back (issue 15, item 1): a real PostgreSQL from Debian's
//! packages (`common/postgres.rs`), crashed, restarted and failed over under a real jes server;
//! raw SMTP and POP3 connections while it is away, Python's poplib to count what survived.
//!
//! The clusters here run with `synchronous_commit=on` (`Options::durable`): a crash of the
//! database loses no commit, so anything lost would be jes's doing.

mod common;
#[path = "common/postgres.rs"]
mod pg;

use std::collections::BTreeSet;
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Server, DEFAULT_USERS};
use pg::{Options, Postgres};

const USER: &str = "trackstudio@127.0.0.1";
const PASS: &str = "secret";
/// How soon after the database is back jes must take mail again.
const RESUME: Duration = Duration::from_secs(10);

fn durable(test: &str) -> Option<Postgres> {
    Postgres::start_opts(
        test,
        Options {
            durable: true,
            ..Options::default()
        },
    )
}

/// A server whose store.url is `url` (password from a 0600 file), not started yet.
fn prepare(pg: &Postgres, url: &str) -> Server {
    pg.server_on(url, "smtpdelivery.interval=1\n", Some(DEFAULT_USERS))
}

/// One message over a fresh SMTP connection; the final reply (of DATA, or of the first command
/// that failed), or the connection error. Never panics: a refusal is what the caller studies.
fn try_send(port: u16, subject: &str) -> String {
    use std::io::{BufRead, BufReader, Write};
    let Ok(stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return "connect failed".into();
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut w = stream;
    let mut reply = || -> String {
        let mut all = String::new();
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return format!("closed after {all:?}");
            }
            all.push_str(&line);
            if line.len() < 4 || line.as_bytes()[3] != b'-' {
                return all;
            }
        }
    };
    let greeting = reply();
    if !greeting.starts_with("220") {
        return greeting;
    }
    let data = format!(
        "From: reporter@example.org\r\nTo: {USER}\r\nSubject: {subject}\r\nMessage-ID: <{subject}@example.org>\r\n\r\nbody of {subject}\r\n.\r\n"
    );
    for (cmd, want) in [
        ("EHLO client.test\r\n".to_string(), "250"),
        ("MAIL FROM:<reporter@example.org>\r\n".to_string(), "250"),
        (format!("RCPT TO:<{USER}>\r\n"), "250"),
        ("DATA\r\n".to_string(), "354"),
        (data, "250"),
    ] {
        if w.write_all(cmd.as_bytes()).is_err() {
            return "write failed".into();
        }
        let r = reply();
        if !r.starts_with(want) {
            return r;
        }
        if want == "250" && cmd.ends_with(".\r\n") {
            let _ = w.write_all(b"QUIT\r\n");
            return r;
        }
    }
    unreachable!("the loop returns at the end of DATA")
}

/// The reply to PASS over a fresh POP3 connection.
fn pop3_login(server: &Server) -> String {
    let mut c = server.connect(server.pop3_port);
    let _ = c.cmd(&format!("USER {USER}"));
    let r = c.cmd(&format!("PASS {PASS}"));
    let _ = c.cmd("QUIT");
    r
}

/// The reply to SMTP AUTH PLAIN over a fresh connection.
fn smtp_auth(server: &Server) -> String {
    use base64::Engine;
    let mut c = server.connect(server.smtp_port);
    let _ = c.cmd("EHLO client.test");
    let token = base64::engine::general_purpose::STANDARD.encode(format!("\0{USER}\0{PASS}"));
    let r = c.cmd(&format!("AUTH PLAIN {token}"));
    let _ = c.cmd("QUIT");
    r
}

/// The subjects in the mailbox, through Python's poplib.
fn subjects(server: &Server) -> BTreeSet<String> {
    let out = server.python_ok("cluster.py", &["fetch", USER, PASS]);
    let seen: Vec<serde_json::Value> =
        serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{e}: {out}"));
    seen.iter()
        .map(|m| m["subject"].as_str().unwrap_or("").to_string())
        .collect()
}

/// Sends `subject` until it gets a `250` (returning how long that took) or `within` runs out.
fn wait_for_250(port: u16, subject: &str, within: Duration) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() < within {
        if try_send(port, subject).starts_with("250") {
            return Some(start.elapsed());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    None
}

#[test]
fn serve_starts_while_the_database_is_down_and_takes_mail_once_it_is_up() {
    let Some(pg) = durable("serve_starts_while_the_database_is_down_and_takes_mail_once_it_is_up")
    else {
        return;
    };
    // The accounts are in the database (and so is the schema) before it goes away.
    let server = prepare(&pg, &pg.url("jes"));
    pg.stop();
    let server = server.launch();
    assert!(
        server.log().contains("starting without it"),
        "{}",
        server.log()
    );

    let r = try_send(server.smtp_port, "while-down");
    assert!(r.starts_with("4"), "SMTP while the database is down: {r}");
    let r = pop3_login(&server);
    assert!(
        r.starts_with("-ERR [SYS/TEMP]"),
        "POP3 while the database is down: {r}"
    );
    // SMTP AUTH: a temporary failure (RFC 4954's 454), not "credentials invalid".
    let r = smtp_auth(&server);
    assert!(
        r.starts_with("454 4.7.0"),
        "SMTP AUTH while the database is down: {r}"
    );

    pg.start_again();
    let took = wait_for_250(server.smtp_port, "after-start", RESUME)
        .unwrap_or_else(|| panic!("no 250 within {RESUME:?}\n{}", server.log()));
    println!("first 250 {took:?} after the database started");
    assert!(
        server.log().contains("accounts changed from"),
        "{}",
        server.log()
    );
    let seen = subjects(&server);
    assert!(seen.contains("after-start"), "{seen:?}");
    assert!(!seen.contains("while-down"), "{seen:?}");
    assert!(pop3_login(&server).starts_with("+OK"));
    let r = smtp_auth(&server);
    assert!(
        r.starts_with("235"),
        "SMTP AUTH once the accounts are known: {r}"
    );
}

#[test]
fn a_database_crash_under_load_loses_nothing_acknowledged() {
    let Some(pg) = durable("a_database_crash_under_load_loses_nothing_acknowledged") else {
        return;
    };
    let server = prepare(&pg, &pg.url("jes")).launch();
    assert!(try_send(server.smtp_port, "warm-up").starts_with("250"));

    // One client sends without pause; every reply is kept.
    let replies: Arc<Mutex<Vec<(String, String, Instant)>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let sender = {
        let (replies, stop, port) = (replies.clone(), stop.clone(), server.smtp_port);
        std::thread::spawn(move || {
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let subject = format!("load-{n}");
                let r = try_send(port, &subject);
                replies.lock().unwrap().push((subject, r, Instant::now()));
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };
    let count = |f: &dyn Fn(&str) -> bool| {
        replies
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, r, _)| f(r))
            .count()
    };
    let wait = |what: &str, cond: &dyn Fn() -> bool| {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !cond() {
            assert!(Instant::now() < deadline, "timed out: {what}");
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    wait("some mail accepted before the crash", &|| {
        count(&|r| r.starts_with("250")) >= 10
    });

    // Crash the database (pg_ctl -m immediate); while it is away mail gets 4xx, POP3 [SYS/TEMP].
    pg.stop();
    let down = Instant::now();
    wait("a 4xx while the database is down", &|| {
        replies
            .lock()
            .unwrap()
            .iter()
            .any(|(_, r, at)| *at > down && r.starts_with('4'))
    });
    let r = pop3_login(&server);
    assert!(
        r.starts_with("-ERR [SYS/TEMP]"),
        "POP3 while the database is down: {r}"
    );
    std::thread::sleep(Duration::from_secs(2));

    pg.start_again();
    let back = Instant::now();
    wait("a 250 after the database is back", &|| {
        replies
            .lock()
            .unwrap()
            .iter()
            .any(|(_, r, at)| *at > back && r.starts_with("250"))
    });
    let resumed = replies
        .lock()
        .unwrap()
        .iter()
        .find(|(_, r, at)| *at > back && r.starts_with("250"))
        .map(|(_, _, at)| at.duration_since(back))
        .unwrap();
    println!("first 250 {resumed:?} after the database was back");
    assert!(resumed <= RESUME, "resumed after {resumed:?}");
    std::thread::sleep(Duration::from_secs(1));
    stop.store(true, Ordering::Relaxed);
    sender.join().unwrap();

    let replies = replies.lock().unwrap().clone();
    let refused_hard: Vec<_> = replies
        .iter()
        .filter(|(_, r, _)| !r.starts_with("250") && !r.starts_with('4'))
        .collect();
    assert!(
        refused_hard.is_empty(),
        "an outage must never give a permanent refusal or a dropped connection: {refused_hard:?}"
    );
    let acknowledged: BTreeSet<String> = replies
        .iter()
        .filter(|(_, r, _)| r.starts_with("250"))
        .map(|(s, _, _)| s.clone())
        .collect();
    let tried: BTreeSet<String> = replies.iter().map(|(s, _, _)| s.clone()).collect();
    let seen = subjects(&server);
    let lost: Vec<_> = acknowledged.difference(&seen).collect();
    assert!(
        lost.is_empty(),
        "answered 250 but not in the mailbox: {lost:?}"
    );
    // What is there was sent (a 4xx whose commit reached the disk may be there too: the client
    // would send it again, which SMTP allows).
    let mut expected = tried.clone();
    expected.insert("warm-up".into());
    assert!(
        seen.is_subset(&expected),
        "{:?}",
        seen.difference(&expected)
    );
    println!(
        "{} acknowledged, {} refused with 4xx, {} in the mailbox",
        acknowledged.len(),
        replies.len() - acknowledged.len(),
        seen.len()
    );
    assert!(
        replies.len() > acknowledged.len(),
        "the outage refused nothing"
    );
}

/// A URL naming both, for whichever takes writes (as an administrator writes it for a failover).
fn both_hosts(primary: &Postgres, standby: &Postgres) -> String {
    format!(
        "postgresql://jes@127.0.0.1:{},127.0.0.1:{}/jes?sslmode=disable&target_session_attrs=read-write",
        primary.port, standby.port
    )
}

/// The failover: the standby is promoted and the old primary, still up with jes's connections
/// open, is fenced read-only (as a failover tool does before it is rebuilt).
fn fail_over(primary: &Postgres, standby: &Postgres) {
    standby.promote();
    primary.psql(
        "postgres",
        "ALTER SYSTEM SET default_transaction_read_only = on",
    );
    primary.psql("postgres", "SELECT pg_reload_conf()");
}

#[test]
fn after_a_failover_read_only_connections_are_dropped_and_mail_goes_to_the_new_primary() {
    let Some(primary) = durable(
        "after_a_failover_read_only_connections_are_dropped_and_mail_goes_to_the_new_primary",
    ) else {
        return;
    };
    let standby = primary.standby(true);
    let url = both_hosts(&primary, &standby);
    let server = prepare(&primary, &url).launch();
    for n in 0..3 {
        let r = try_send(server.smtp_port, &format!("before-{n}"));
        assert!(r.starts_with("250"), "{r}");
    }
    server.wait_until(
        "the standby has replayed the first three messages",
        Duration::from_secs(20),
        || standby.psql("jes", "SELECT COUNT(*) FROM jes_mail") == "3",
    );

    fail_over(&primary, &standby);

    let took = wait_for_250(server.smtp_port, "after-failover", RESUME)
        .unwrap_or_else(|| panic!("no 250 within {RESUME:?}\n{}", server.log()));
    println!("first 250 {took:?} after the failover");
    let log = server.log();
    assert!(log.contains("SQLSTATE 25006"), "{log}");
    // The message went to the new primary, and the POP3 view is read from it.
    assert_eq!(
        standby.psql("jes", "SELECT COUNT(*) FROM jes_mail"),
        "4",
        "the new primary holds all four messages"
    );
    let seen = subjects(&server);
    let want: BTreeSet<String> = ["before-0", "before-1", "before-2", "after-failover"]
        .into_iter()
        .map(String::from)
        .collect();
    assert_eq!(seen, want);
}

/// The `LISTEN` connection follows a failover too: it writes nothing, so only its own check
/// (`SHOW transaction_read_only` every 5 s) moves it off the fenced old primary. The proof is a
/// retry requested with `jes queue retry` (a `NOTIFY` on the new primary) reaching the server
/// while its own scan of the queue is ten minutes away.
#[test]
fn after_a_failover_the_server_hears_the_new_primarys_notifications() {
    let Some(primary) = durable("after_a_failover_the_server_hears_the_new_primarys_notifications")
    else {
        return;
    };
    let standby = primary.standby(true);
    let url = both_hosts(&primary, &standby);
    let upstream = common::Upstream::start(&[]);
    upstream.set_mode("defer");
    let server = primary
        .server_on(
            &url,
            &format!(
                "smtpdelivery.interval=600\ndefaultsmtpservers=127.0.0.1:{}\n",
                upstream.port
            ),
            Some(DEFAULT_USERS),
        )
        .launch();
    let r = server.send(
        "app@localhost",
        &["someone@remote.test"],
        "Subject: stuck\r\n\r\nbody\r\n",
    );
    assert!(r.starts_with("250"), "{r}");
    // Deferred and released (the release does not wait for the WAL: a failover just after it
    // would leave the lease to run out, which is not what this test is about).
    server.wait_until(
        "the first attempt deferred and released, replayed on the standby",
        Duration::from_secs(20),
        || {
            standby.psql(
                "jes",
                "SELECT attempts FROM jes_queue WHERE lease_owner IS NULL",
            ) == "1"
        },
    );

    fail_over(&primary, &standby);
    upstream.set_mode("accept");

    // Ask again every 2 s: a NOTIFY sent before the listener moved is lost (the scan would
    // find it, in ten minutes), one sent after it is heard at once.
    let started = Instant::now();
    let mut asked = 0;
    while upstream.received().is_empty() && started.elapsed() < Duration::from_secs(40) {
        let (ok, out) = server.jes(&["queue", "retry", "--all"]);
        assert!(ok, "{out}");
        asked += 1;
        std::thread::sleep(Duration::from_secs(2));
    }
    assert_eq!(
        upstream.received().len(),
        1,
        "the retry never reached the server after the failover ({asked} asked)\n{}",
        server.log()
    );
    println!("relayed {:?} after the failover", started.elapsed());
    assert!(
        server.log().contains("has become read-only"),
        "{}",
        server.log()
    );
    server.wait_until(
        "the queue empty on the new primary",
        Duration::from_secs(20),
        || standby.psql("jes", "SELECT COUNT(*) FROM jes_queue") == "0",
    );
}
