//! Accounts in PostgreSQL (issue 14, item 4): with `store.url`, the accounts, forwards and other
//! user properties are rows every server on the database reads, changed by `jes user --dir` on
//! any folder that names it; `user.conf` beside it is ignored with a warning. Real PostgreSQL
//! (`common/postgres.rs`), real jes servers, Python's poplib and smtplib as the clients.

mod common;
#[path = "common/postgres.rs"]
mod pg;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{jes_bin, Server, DEFAULT_USERS};
use pg::Postgres;

/// Within this every server must see a change (the promise).
const SEEN_WITHIN: Duration = Duration::from_secs(5);

const NEW: &str = "clerk@localhost";
const TARGET: &str = "desk@localhost";

/// A server on database `jes` of `pg`, with the harness's usual user.conf beside store.url.
fn prepare(pg: &Postgres) -> Server {
    // The harness's accounts stay in user.conf, which these servers must ignore.
    let server = pg.server_on(&pg.url("jes"), "smtpdelivery.interval=1\n", None);
    std::fs::write(server.etc.join("user.conf"), DEFAULT_USERS).unwrap();
    server
}

/// `jes user ARGS --dir` the server's folder, with `password` on stdin: (success, output).
fn jes_user(server: &Server, args: &[&str], password: Option<&str>) -> (bool, String) {
    let mut child = Command::new(jes_bin())
        .arg("user")
        .args(args)
        .arg("--dir")
        .arg(&server.etc)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    if let Some(p) = password {
        stdin.write_all(format!("{p}\n").as_bytes()).unwrap();
    }
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn jes_user_ok(server: &Server, args: &[&str], password: Option<&str>) -> String {
    let (ok, out) = jes_user(server, args, password);
    assert!(ok, "jes user {args:?}: {out}");
    out
}

/// POP3 USER/PASS and SMTP AUTH with `user` and `password` on `server`: (pop3, smtp) accepted.
fn logins(server: &Server, user: &str, password: &str) -> (bool, bool) {
    let out = server.python_ok("accounts.py", &["login", user, password]);
    let v: serde_json::Value =
        serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{e}: {out}"));
    (v["pop3"] == true, v["smtp"] == true)
}

/// Waits (at most `SEEN_WITHIN` from `since`) until both servers answer `want` for the login.
fn both_see(
    servers: [&Server; 2],
    user: &str,
    password: &str,
    want: bool,
    since: Instant,
    what: &str,
) {
    for server in servers {
        let left = SEEN_WITHIN.saturating_sub(since.elapsed());
        server.wait_until(what, left, || {
            logins(server, user, password) == (want, want)
        });
    }
    assert!(
        since.elapsed() <= SEEN_WITHIN,
        "{what}: {:?}",
        since.elapsed()
    );
}

fn check(server: &Server) -> (bool, String) {
    common::jes_run(&["check", &server.etc.display().to_string()])
}

#[test]
fn accounts_in_the_database_are_seen_by_every_server_within_5_s() {
    let Some(pg) = Postgres::start("accounts_in_the_database_are_seen_by_every_server_within_5_s")
    else {
        return;
    };
    let (a, b) = (prepare(&pg).launch(), prepare(&pg).launch());

    // user.conf beside store.url is ignored, and the log says so, naming it; its account is
    // not one.
    for s in [&a, &b] {
        let warning = format!(
            "{}: ignored: with store.url",
            s.etc.join("user.conf").display()
        );
        assert!(s.log().contains(&warning), "{}", s.log());
    }
    assert_eq!(
        logins(&b, "trackstudio@127.0.0.1", "secret"),
        (false, false)
    );

    // Added through A's folder: B (and A) accept it within 5 s, over POP3 and SMTP AUTH.
    let out = jes_user_ok(&a, &["add", NEW], Some("first-pw"));
    assert!(
        out.contains(&format!(
            "added {NEW} to the database postgresql://jes@127.0.0.1"
        )),
        "{out}"
    );
    assert!(!out.contains(pg::PASSWORD), "{out}");
    both_see(
        [&b, &a],
        NEW,
        "first-pw",
        true,
        Instant::now(),
        "the new account",
    );
    let (ok, out) = jes_user(&b, &["add", NEW], Some("again"));
    assert!(!ok && out.contains("already has an account"), "{out}");

    // A new password through B's folder: both take it and refuse the old one within 5 s.
    jes_user_ok(&b, &["passwd", NEW], Some("second-pw"));
    let changed = Instant::now();
    both_see(
        [&a, &b],
        NEW,
        "second-pw",
        true,
        changed,
        "the new password",
    );
    both_see(
        [&a, &b],
        NEW,
        "first-pw",
        false,
        changed,
        "the old password refused",
    );
    let stored = pg.psql(
        "jes",
        &format!("SELECT password FROM jes_accounts WHERE address = '{NEW}'"),
    );
    assert!(stored.starts_with("$argon2id$"), "stored hashed: {stored}");

    // A forward set in the database routes mail: to NEW through A, read as TARGET from B.
    jes_user_ok(&a, &["add", TARGET], Some("desk-pw"));
    let (ok, out) = jes_user(
        &a,
        &["set", NEW, "forwardAddresses", "not an address"],
        None,
    );
    assert!(
        !ok && out.contains("is not a mail address"),
        "refused as user.conf would: {out}"
    );
    jes_user_ok(&a, &["set", NEW, "forwardAddresses", TARGET], None);
    let revision = pg.psql("jes", "SELECT revision FROM jes_accounts_revision");
    a.wait_until("A has the forward", SEEN_WITHIN, || {
        a.log()
            .contains(&format!("(revision {revision}): 2 accounts"))
    });
    let sent = a.python_ok("cluster.py", &["send", NEW, "forwarded-by-the-database"]);
    assert!(sent.contains("\"refused\": []"), "{sent}");
    let got = b.python_ok("cluster.py", &["fetch", TARGET, "desk-pw"]);
    assert!(got.contains("forwarded-by-the-database"), "{got}");
    let own = b.python_ok("cluster.py", &["fetch", NEW, "second-pw"]);
    assert_eq!(own.trim(), "[]", "forwarded without a copy: {own}");

    // jes user list and jes check show the database's accounts, not user.conf's.
    let list = jes_user_ok(&b, &["list"], None);
    assert_eq!(
        list.lines().collect::<Vec<_>>(),
        vec![NEW, TARGET],
        "{list}"
    );
    let (ok, out) = check(&a);
    assert!(ok, "{out}");
    assert!(
        out.contains("accounts: 2 in the database postgresql://jes@127.0.0.1"),
        "{out}"
    );
    assert!(out.contains(&format!("  {NEW} -> {TARGET}")), "{out}");
    assert!(out.contains("user.conf: ignored: with store.url"), "{out}");
    assert!(!out.contains("trackstudio@127.0.0.1"), "{out}");
    assert!(!out.contains(pg::PASSWORD), "{out}");

    // Deleted through B's folder: both refuse it within 5 s; its properties go with it.
    jes_user_ok(&b, &["del", NEW], None);
    both_see(
        [&a, &b],
        NEW,
        "second-pw",
        false,
        Instant::now(),
        "the deleted account refused",
    );
    assert_eq!(
        pg.psql(
            "jes",
            &format!("SELECT COUNT(*) FROM jes_account_props WHERE address = '{NEW}'")
        ),
        "0"
    );
    let (ok, out) = jes_user(&a, &["del", NEW], None);
    assert!(!ok && out.contains("has no account"), "{out}");

    // A change by hand in SQL counts too (the triggers move the revision), and a value
    // user.conf's reader refuses is refused the same way, naming the key: the running accounts
    // stay until it is fixed.
    pg.psql(
        "jes",
        "INSERT INTO jes_account_props VALUES ('desk@localhost', 'forwardAddresses', 'nonsense')",
    );
    let refused =
        "key 'userprop.desk@localhost.forwardAddresses': \"nonsense\" is not a mail address";
    a.wait_until("A refuses the bad row", SEEN_WITHIN, || {
        a.log().contains(refused)
    });
    assert!(logins(&a, TARGET, "desk-pw").0, "{}", a.log());
    pg.psql("jes", "DELETE FROM jes_account_props");
    a.wait_until("A reads the accounts again", SEEN_WITHIN, || {
        a.log().contains("the accounts can be read again")
    });

    // The database goes away: the accounts known stay (SMTP AUTH needs no database), and the
    // log says so once, however many polls fail.
    let before = a.log().len();
    pg.stop();
    std::thread::sleep(Duration::from_secs(5));
    assert!(logins(&a, TARGET, "desk-pw").1, "{}", a.log());
    let told = a.log()[before..]
        .matches("cannot read the accounts")
        .count();
    assert_eq!(told, 1, "{}", a.log());
    assert!(
        a.log().contains("the 1 accounts known stay in use"),
        "{}",
        a.log()
    );
    let (ok, out) = check(&a);
    assert!(!ok, "{out}");
    assert!(
        out.contains("accounts: in the database, which cannot be read"),
        "{out}"
    );
}
