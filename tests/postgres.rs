//! Several jes servers on one PostgreSQL (issue 14): a real PostgreSQL from Debian's packages
//! (`common/postgres.rs`), real jes servers, Python's smtplib and poplib as the clients.

mod common;
#[path = "common/postgres.rs"]
mod pg;

use std::process::Command;
use std::time::{Duration, Instant};

use common::{jes_bin, Server, DEFAULT_USERS};
use pg::Postgres;

const USER: &str = "trackstudio@127.0.0.1";
const PASS: &str = "secret";
const LEASE: u64 = 5;

/// A server on database `db` of `pg`, not started yet, with the harness's accounts in the
/// database (with store.url, user.conf is ignored).
fn prepare(pg: &Postgres, db: &str, extra: &str) -> Server {
    let server = prepare_bare(pg, db, extra);
    pg::add_accounts(&server.etc, DEFAULT_USERS);
    server
}

/// `prepare` without touching the database.
fn prepare_bare(pg: &Postgres, db: &str, extra: &str) -> Server {
    pg.server_on(
        &pg.url(db),
        &format!("smtpdelivery.interval=1\nstore.leaseseconds={LEASE}\n{extra}"),
        None,
    )
}

/// Two servers started at the same moment on a fresh database: the schema is made once. The
/// accounts are added once both run, and both have them before this returns.
fn two_servers(pg: &Postgres) -> (Server, Server) {
    let (a, b) = (prepare_bare(pg, "jes", ""), prepare_bare(pg, "jes", ""));
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(|| a.launch());
        let b = s.spawn(|| b.launch());
        (a.join().unwrap(), b.join().unwrap())
    });
    pg::add_accounts(&a.etc, DEFAULT_USERS);
    for server in [&a, &b] {
        server.wait_until("the accounts", Duration::from_secs(5), || {
            server.log().contains(": 2 accounts")
        });
    }
    (a, b)
}

/// The newest schema version in migrations/ (V<n>__*.sql): what this jes brings a database to.
fn known_version() -> u32 {
    std::fs::read_dir(common::repo_path("migrations"))
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().to_string_lossy().to_string();
            name.strip_prefix('V')?.split("__").next()?.parse().ok()
        })
        .max()
        .unwrap()
}

/// `jes check DIR`: (success, stdout + stderr).
fn check(server: &Server) -> (bool, String) {
    common::jes_run(&["check", &server.etc.display().to_string()])
}

fn fetch(server: &Server, dele: bool) -> Vec<serde_json::Value> {
    let mut args = vec!["fetch", USER, PASS];
    if dele {
        args.push("dele");
    }
    let out = server.python_ok("cluster.py", &args);
    serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{e}: {out}"))
}

/// A POP3 login over a raw connection: the reply to PASS.
fn login(server: &Server) -> (common::Raw, String) {
    let mut c = server.connect(server.pop3_port);
    assert!(c.cmd(&format!("USER {USER}")).starts_with("+OK"));
    let r = c.cmd(&format!("PASS {PASS}"));
    (c, r)
}

#[test]
fn smtp_to_one_server_pop3_from_another_one_session_across_servers() {
    let Some(pg) =
        Postgres::start("smtp_to_one_server_pop3_from_another_one_session_across_servers")
    else {
        return;
    };
    let (mut a, b) = two_servers(&pg);
    let migrations = std::fs::read_dir(common::repo_path("migrations"))
        .unwrap()
        .count();
    assert_eq!(
        pg.psql("jes", "SELECT COUNT(*) FROM jes_schema_history"),
        migrations.to_string(),
        "the schema is made once though both servers started together"
    );

    // SMTP to A; POP3 from B sees it, with LIST's size what RETR sends.
    let sent = a.python_ok("cluster.py", &["send", USER, "cluster-one"]);
    assert!(sent.contains("\"refused\": []"), "{sent}");
    let seen = fetch(&b, false);
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0]["subject"], "cluster-one");
    assert_eq!(seen[0]["list"], seen[0]["retr"], "{seen:?}");
    let uid = seen[0]["uid"].as_str().unwrap().to_string();
    // Stable UIDLs: A shows the same one.
    assert_eq!(fetch(&a, false)[0]["uid"], uid.as_str());

    // A session on A makes B answer [IN-USE], and the other way round.
    let (mut on_a, r) = login(&a);
    assert!(r.starts_with("+OK"), "{r}");
    let (_, r) = login(&b);
    assert!(
        r.starts_with("-ERR [IN-USE]"),
        "B while A holds the mailbox: {r}"
    );
    assert!(on_a.cmd("QUIT").starts_with("+OK"));
    // The session's row goes when it ends (not only when its lease runs out).
    b.wait_until(
        "B can open the mailbox after A's QUIT",
        Duration::from_secs(3),
        || {
            let (mut c, r) = login(&b);
            let _ = c.cmd("QUIT");
            r.starts_with("+OK")
        },
    );

    // kill -9 of A while it holds the mailbox: B gets it within store.leaseseconds. B's own
    // session row goes just after its QUIT's +OK (a task of the session's end): A may have to
    // wait for that, well within the lease.
    let mut on_a = None;
    a.wait_until(
        "A can open the mailbox after B's QUIT",
        Duration::from_secs(3),
        || {
            let (c, r) = login(&a);
            on_a = r.starts_with("+OK").then_some(c);
            on_a.is_some()
        },
    );
    let _on_a = on_a;
    a.kill9();
    let killed = Instant::now();
    let (_, r) = login(&b);
    assert!(r.starts_with("-ERR [IN-USE]"), "just after the kill: {r}");
    b.wait_until(
        "B can open the mailbox once A's lease ran out",
        Duration::from_secs(LEASE + 3),
        || {
            let (mut c, r) = login(&b);
            let _ = c.cmd("QUIT");
            r.starts_with("+OK")
        },
    );
    assert!(killed.elapsed() <= Duration::from_secs(LEASE + 2));

    // Deleted at QUIT on B; the shared body goes with the last copy.
    let gone = fetch(&b, true);
    assert_eq!(gone[0]["uid"], uid.as_str());
    assert!(fetch(&b, false).is_empty());
    assert_eq!(pg.psql("jes", "SELECT COUNT(*) FROM jes_mail"), "0");
    assert_eq!(pg.psql("jes", "SELECT COUNT(*) FROM jes_bodies"), "0");

    // jes check: connects, shows the schema version, never the password.
    let (ok, out) = check(&b);
    assert!(ok, "{out}");
    assert!(
        out.contains(&format!(
            "database: connected, schema version {}",
            known_version()
        )),
        "{out}"
    );
    assert!(
        out.contains("store:           PostgreSQL postgresql://jes@127.0.0.1"),
        "{out}"
    );
    assert!(!out.contains(pg::PASSWORD), "{out}");
}

#[test]
fn a_message_for_two_mailboxes_is_stored_once() {
    let Some(pg) = Postgres::start("a_message_for_two_mailboxes_is_stored_once") else {
        return;
    };
    let a = prepare(&pg, "jes", "").launch();
    let reply = a.send(
        "app@localhost",
        &[USER, "analyst@localhost"],
        "Subject: both\r\n\r\nhello\r\n",
    );
    assert!(reply.starts_with("250"), "{reply}");
    assert_eq!(pg.psql("jes", "SELECT COUNT(*) FROM jes_mail"), "2");
    assert_eq!(pg.psql("jes", "SELECT COUNT(*) FROM jes_bodies"), "1");
}

#[test]
fn a_schema_newer_than_the_server_is_refused_naming_both_versions() {
    let Some(pg) =
        Postgres::start("a_schema_newer_than_the_server_is_refused_naming_both_versions")
    else {
        return;
    };
    // The first server makes the schema; then a "later release" adds version 99.
    let mut a = prepare(&pg, "jes", "").launch();
    a.signal("TERM");
    assert!(a.wait_exit(Duration::from_secs(15)));
    pg.psql(
        "jes",
        "INSERT INTO jes_schema_history (version, name, applied_on, checksum) VALUES (99, 'future', '', '0')",
    );
    let b = prepare_bare(&pg, "jes", "");
    let out = Command::new(jes_bin())
        .arg("serve")
        .arg(&b.etc)
        .arg("--quiet")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        text.contains(&format!(
            "schema is version 99, newer than this jes knows ({})",
            known_version()
        )),
        "{text}"
    );
    let (ok, out) = check(&b);
    assert!(!ok);
    assert!(
        out.contains(&format!(
            "version 99, newer than this jes knows ({})",
            known_version()
        )),
        "{out}"
    );
}

#[test]
fn a_password_file_others_can_read_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let Some(pg) = Postgres::start("a_password_file_others_can_read_is_refused") else {
        return;
    };
    let b = prepare(&pg, "jes", "");
    let pw = b.etc.join("pgpass");
    std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o644)).unwrap();
    let (ok, out) = check(&b);
    assert!(!ok, "{out}");
    assert!(out.contains("must be readable by its owner only"), "{out}");
}

/// Sends one-recipient messages numbered `numbers` over one SMTP connection to `port`, recording in
/// `accepted` each number answered 250; stops quietly when the server goes away.
fn inject(
    port: u16,
    numbers: std::ops::Range<usize>,
    to: &str,
    accepted: &std::sync::Mutex<Vec<usize>>,
) {
    use std::io::{BufRead, BufReader, Write};
    let Ok(stream) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return;
    };
    let mut out = stream.try_clone().unwrap();
    let mut input = BufReader::new(stream);
    // The final line of a reply (multi-line replies have "NNN-" before it).
    let mut reply = || -> Option<String> {
        loop {
            let mut line = String::new();
            if input.read_line(&mut line).ok()? == 0 {
                return None;
            }
            if line.as_bytes().get(3) != Some(&b'-') {
                return Some(line);
            }
        }
    };
    let mut cmd = |out: &mut std::net::TcpStream, text: &str, want: &str| -> Option<()> {
        out.write_all(text.as_bytes()).ok()?;
        reply()?.starts_with(want).then_some(())
    };
    let mut run = || -> Option<()> {
        cmd(&mut out, "", "220")?;
        cmd(&mut out, "EHLO client.test\r\n", "250")?;
        for i in numbers.clone() {
            cmd(&mut out, "MAIL FROM:<app@localhost>\r\n", "250")?;
            cmd(&mut out, &format!("RCPT TO:<{to}>\r\n"), "250")?;
            cmd(&mut out, "DATA\r\n", "354")?;
            let body = format!("Subject: relay-{i}\r\n\r\nmessage {i}\r\n.\r\n");
            cmd(&mut out, &body, "250")?;
            accepted.lock().unwrap().push(i);
        }
        cmd(&mut out, "QUIT\r\n", "221")
    };
    let _ = run();
}

#[test]
fn relayed_mail_survives_kill_9_of_one_server() {
    let Some(pg) = Postgres::start("relayed_mail_survives_kill_9_of_one_server") else {
        return;
    };
    const N: usize = 2000;
    const CONCURRENCY: usize = 4;
    let upstream = common::Upstream::start(&[]);
    let extra = format!(
        "defaultsmtpservers=127.0.0.1:{}\nsmtpdelivery.concurrency={CONCURRENCY}\n",
        upstream.port
    );
    let mut a = prepare(&pg, "jes", &extra).launch();
    let b = prepare(&pg, "jes", &extra).launch();
    // Mail goes to A while A and B relay it; A is killed part way through the injection.
    let accepted = std::sync::Mutex::new(Vec::new());
    let before_kill = std::thread::scope(|s| {
        let port = a.smtp_port;
        let accepted = &accepted;
        s.spawn(move || inject(port, 0..N, "someone@remote.test", accepted));
        let deadline = Instant::now() + Duration::from_secs(120);
        while accepted.lock().unwrap().len() < N / 2 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let before = upstream.received().len();
        a.kill9();
        before
    });
    let by_a = accepted.lock().unwrap().len();
    println!("A answered 250 to {by_a} messages; upstream had {before_kill} when A was killed");
    assert!((N / 2..N).contains(&by_a), "{by_a}");
    // The rest of the 2,000 go to B (the number in DATA at the kill is sent again).
    inject(b.smtp_port, by_a..N, "someone@remote.test", &accepted);
    let accepted = accepted.into_inner().unwrap();
    assert_eq!(accepted.len(), N);

    // B finishes the work: A's claims run out after store.leaseseconds.
    let subject_of = |t: &serde_json::Value| -> Option<usize> {
        let data = t["data"].as_str()?;
        let at = data.find("Subject: relay-")? + "Subject: relay-".len();
        data[at..]
            .split(|c: char| !c.is_ascii_digit())
            .next()?
            .parse()
            .ok()
    };
    let deadline = Instant::now() + Duration::from_secs(180);
    let (unique, copies) = loop {
        let got = upstream.received();
        let mut copies = std::collections::BTreeMap::<usize, usize>::new();
        for i in got.iter().filter_map(subject_of) {
            *copies.entry(i).or_default() += 1;
        }
        let seen: Vec<usize> = copies.keys().copied().collect();
        let all = accepted.iter().all(|i| seen.binary_search(i).is_ok());
        if all || Instant::now() > deadline {
            break (seen, copies);
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let missing: Vec<&usize> = accepted
        .iter()
        .filter(|i| unique.binary_search(i).is_err())
        .collect();
    assert!(
        missing.is_empty(),
        "every message answered 250 reaches the upstream; missing: {missing:?}"
    );
    // The one message in DATA at the kill may or may not have been committed.
    assert!(unique.len() <= accepted.len() + 1);
    // Number `by_a` was in DATA at the kill and sent again to B: when A had committed it, it is
    // in the queue twice, as two messages, and reaches the upstream twice without any attempt
    // repeated. Any other copy is an attempt repeated: a message relayed by A whose removal
    // the kill lost, at most one per attempt A had in flight.
    let repeated: Vec<(usize, usize)> = copies
        .iter()
        .map(|(&i, &n)| {
            (
                i,
                if i == by_a {
                    n.saturating_sub(2)
                } else {
                    n - 1
                },
            )
        })
        .filter(|&(_, extra)| extra > 0)
        .collect();
    let duplicates: usize = repeated.iter().map(|&(_, extra)| extra).sum();
    println!(
        "{duplicates} attempts repeated (messages relayed by A whose completion the kill lost): \
         {repeated:?}; number {by_a} (in DATA at the kill) reached the upstream {} time(s)",
        copies.get(&by_a).copied().unwrap_or(0)
    );
    assert!(
        duplicates <= CONCURRENCY,
        "{duplicates} attempts repeated, more than A had in flight ({CONCURRENCY}): {repeated:?}"
    );
    b.wait_until("the shared queue is empty", Duration::from_secs(30), || {
        pg.psql("jes", "SELECT COUNT(*) FROM jes_queue") == "0"
    });
    // A killed between a commit and its removal of the body: at most one body per attempt in
    // flight is left, and the next server start sweeps them.
    let orphans: usize = pg
        .psql("jes", "SELECT COUNT(*) FROM jes_bodies")
        .parse()
        .unwrap();
    assert!(orphans <= CONCURRENCY, "{orphans} bodies left");
    let _c = prepare(&pg, "jes", &extra).launch();
    assert_eq!(pg.psql("jes", "SELECT COUNT(*) FROM jes_bodies"), "0");
}

#[test]
fn while_the_database_is_away_pop3_says_sys_temp_and_smtp_4xx() {
    let Some(pg) = Postgres::start("while_the_database_is_away_pop3_says_sys_temp_and_smtp_4xx")
    else {
        return;
    };
    let a = prepare(&pg, "jes", "").launch();
    let r = a.send("app@localhost", &[USER], "Subject: before\r\n\r\nx\r\n");
    assert!(r.starts_with("250"), "{r}");
    pg.stop();
    let (_, r) = login(&a);
    assert!(r.starts_with("-ERR [SYS/TEMP]"), "{r}");
    let r = a.send("app@localhost", &[USER], "Subject: during\r\n\r\nx\r\n");
    assert!(r.starts_with('4'), "{r}");
}

#[test]
fn sslmode_verify_full_checks_the_database_certificate() {
    let Some(pg) =
        Postgres::start_with("sslmode_verify_full_checks_the_database_certificate", true)
    else {
        return;
    };
    let cert = pg.tls_cert();
    let with = |query: &str| {
        let server = Server::prepare("", DEFAULT_USERS);
        let pw = pg.password_file(&server.etc);
        let conf = server.etc.join("mail.conf");
        let mut text = std::fs::read_to_string(&conf).unwrap();
        text.push_str(&format!(
            "store.url=postgresql://jes@127.0.0.1:{}/jes?{query}\nstore.passwordfile={}\n",
            pg.port,
            pw.display()
        ));
        std::fs::write(&conf, text).unwrap();
        check(&server)
    };
    // The certificate names 127.0.0.1 and is its own root: verify-full passes with it as
    // sslrootcert, and fails against the system's roots.
    let (ok, out) = with(&format!(
        "sslmode=verify-full&sslrootcert={}",
        cert.display()
    ));
    assert!(ok, "{out}");
    assert!(out.contains("database: connected"), "{out}");
    let (ok, out) = with("sslmode=verify-full");
    assert!(!ok, "{out}");
    assert!(out.contains("cannot use the database"), "{out}");
    // require encrypts without checking the certificate (libpq's meaning).
    let (ok, out) = with("sslmode=require");
    assert!(ok, "{out}");
}

/// More deliveries at once than the pool has connections: a claim must not hold its connection
/// while it asks for another (it did: every attempt waited for a second connection the others
/// held, and the pool stalled until its 30 s wait ran out, refusing mail with 451 meanwhile).
#[test]
fn more_deliveries_at_once_than_pooled_connections_do_not_stall() {
    let Some(pg) = Postgres::start("more_deliveries_at_once_than_pooled_connections_do_not_stall")
    else {
        return;
    };
    const N: usize = 40;
    let upstream = common::Upstream::start(&[]);
    let extra = format!(
        "defaultsmtpservers=127.0.0.1:{}\nsmtpdelivery.concurrency=10\nstore.maxconnections=2\n",
        upstream.port
    );
    let a = prepare(&pg, "jes", &extra).launch();
    let accepted = std::sync::Mutex::new(Vec::new());
    inject(a.smtp_port, 0..N, "someone@remote.test", &accepted);
    assert_eq!(accepted.into_inner().unwrap().len(), N, "{}", a.log());
    let got = upstream.wait_for(N, Duration::from_secs(20));
    assert_eq!(got.len(), N, "{}", a.log());
    assert!(!a.log().contains("waiting for a slot"), "{}", a.log());
}
